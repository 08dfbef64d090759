package machine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// bootWrite is one queued write: a boot record, an event, or both.
type bootWrite struct {
	mac    node.MAC
	seen   node.BootInfo
	record bool
	event  node.Event // zero Type means none; the store names it after mac's owner
}

// bootWriter owns the writes the script endpoint does not wait for. Requests append them
// to one pending list, and one goroutine hands what has gathered to up to
// maxInflightWrites concurrent writes; bbolt's Batch merges those into one transaction,
// so while one commit waits for its fsync the next batch is already forming. A rack
// booting at once costs a few commits, not one fsync per request. When the pending list
// is full, writes are dropped (and counted) rather than blocking the boot path.
//
// The list grows with what is pending instead of being a channel sized for the worst
// burst: a channel of 8,192 writes was 2.4 MB held for the server's life per handler,
// the largest single item of the heap during a storm (and the collector's heap goal is
// twice the live heap).
type bootWriter struct {
	inv     IPXEInventory
	log     *slog.Logger
	wake    chan struct{} // one token: "pending is not empty"
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64

	mu      sync.Mutex
	pending []bootWrite
}

const (
	// maxPendingWrites bounds what waits for a free writer: about a minute of a hundred
	// machines polling, or a few seconds at benchmark rates with a slow disk.
	maxPendingWrites  = 1 << 16
	maxInflightWrites = 4
	// batchCap is a new batch's capacity; batches grow by append and are recycled
	// with what they grew to.
	batchCap = 64
	// maxRecycledCap is the largest batch kept for reuse (about 300 KB).
	maxRecycledCap = 1024
)

func newBootWriter(inv IPXEInventory, log *slog.Logger) *bootWriter {
	bw := &bootWriter{inv: inv, log: log, wake: make(chan struct{}, 1),
		flushes: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		pending: make([]bootWrite, 0, batchCap)}
	go bw.run()
	return bw
}

func (bw *bootWriter) enqueue(w bootWrite) {
	bw.mu.Lock()
	if len(bw.pending) >= maxPendingWrites {
		bw.mu.Unlock()
		bw.drop()
		return
	}
	bw.pending = append(bw.pending, w)
	bw.mu.Unlock()
	select {
	case bw.wake <- struct{}{}:
	default: // a wake-up is already due
	}
}

func (bw *bootWriter) drop() {
	if n := bw.dropped.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8… drops, not each one
		bw.log.Warn("boot event queue full, dropping", slog.Uint64("dropped", n))
	}
}

func (bw *bootWriter) run() {
	defer close(bw.done)
	// Batches are recycled: at benchmark rates, growing a fresh slice per commit cost
	// more than the commit's own work.
	free := make(chan []bootWrite, maxInflightWrites+2)
	fresh := func() []bootWrite {
		select {
		case b := <-free:
			return b[:0]
		default:
			return make([]bootWrite, 0, batchCap)
		}
	}
	recycle := func(b []bootWrite) {
		if cap(b) > maxRecycledCap {
			return // a burst's batch: let the collector have it
		}
		clear(b) // drop references to strings before the slice is reused
		select {
		case free <- b[:0]:
		default:
		}
	}
	inflight := 0
	written := make(chan struct{}, maxInflightWrites)
	start := func() {
		if inflight == maxInflightWrites {
			return
		}
		bw.mu.Lock()
		batch := bw.pending
		if len(batch) == 0 {
			bw.mu.Unlock()
			return
		}
		bw.pending = fresh()
		bw.mu.Unlock()
		inflight++
		go func() {
			bw.write(batch)
			recycle(batch)
			written <- struct{}{}
		}()
	}
	// settle writes everything collected so far and waits for it.
	settle := func() {
		for ; inflight > 0; inflight-- {
			<-written
		}
		bw.mu.Lock()
		batch := bw.pending
		bw.pending = fresh()
		bw.mu.Unlock()
		bw.write(batch)
		recycle(batch)
	}
	for {
		select {
		case <-bw.wake:
			start()
		case <-written:
			inflight--
			start()
		case ack := <-bw.flushes:
			settle()
			close(ack)
		case <-bw.stop:
			settle()
			return
		}
	}
}

func (bw *bootWriter) write(batch []bootWrite) {
	if len(batch) == 0 {
		return
	}
	// The request that queued these is gone; the writes belong to the appliance.
	ctx := context.Background()
	var events []store.MACEvent
	recorded := make(map[node.MAC]bool)
	for _, w := range batch {
		if w.record && !recorded[w.mac] {
			recorded[w.mac] = true
			if err := bw.inv.RecordBoot(ctx, w.mac, w.seen); err != nil {
				bw.log.Warn("record boot", slog.String("mac", w.mac.String()), slog.Any("err", err))
			}
		}
		if w.event.Type != "" {
			events = append(events, store.MACEvent{MAC: w.mac, Event: w.event})
		}
	}
	if len(events) > 0 {
		// Named by MAC inside the write: an import or rename since the request must not
		// leave the event under a name that no longer exists.
		dropped, err := bw.inv.AppendMACEvents(ctx, events...)
		if err != nil {
			bw.log.Error("write boot events", slog.Int("events", len(events)), slog.Any("err", err))
		} else if dropped > 0 {
			bw.log.Info("boot events for removed nodes dropped", slog.Int("events", dropped))
		}
	}
}

func (bw *bootWriter) flush() {
	ack := make(chan struct{})
	select {
	case bw.flushes <- ack:
		<-ack
	case <-bw.done:
	}
}

func (bw *bootWriter) close() {
	bw.once.Do(func() { close(bw.stop) })
	<-bw.done
}
