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

// bootWriter owns the writes the script endpoint does not wait for. One goroutine collects
// them and hands what it has to up to maxInflightWrites concurrent writes; bbolt's Batch
// merges those into one transaction, so while one commit waits for its fsync the next
// batch is already forming. A rack booting at once costs a few commits, not one fsync
// per request. When even the pending buffer is full, writes are dropped (and counted)
// rather than blocking the boot path.
type bootWriter struct {
	inv     IPXEInventory
	log     *slog.Logger
	queue   chan bootWrite
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

const (
	// bootQueueLen is the hand-off from requests to the collecting goroutine.
	bootQueueLen = 8192
	// maxPendingWrites bounds what waits for a free writer: about a minute of a hundred
	// machines polling, or a few seconds at benchmark rates with a slow disk.
	maxPendingWrites  = 1 << 16
	maxInflightWrites = 4
)

func newBootWriter(inv IPXEInventory, log *slog.Logger) *bootWriter {
	bw := &bootWriter{inv: inv, log: log, queue: make(chan bootWrite, bootQueueLen),
		flushes: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go bw.run()
	return bw
}

func (bw *bootWriter) enqueue(w bootWrite) {
	select {
	case bw.queue <- w:
	default:
		bw.drop()
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
	free := make(chan []bootWrite, maxInflightWrites+1)
	fresh := func() []bootWrite {
		select {
		case b := <-free:
			return b[:0]
		default:
			return make([]bootWrite, 0, 1024)
		}
	}
	pending := fresh()
	inflight := 0
	written := make(chan struct{}, maxInflightWrites)
	start := func() {
		if len(pending) == 0 || inflight == maxInflightWrites {
			return
		}
		batch := pending
		pending = fresh()
		inflight++
		go func() {
			bw.write(batch)
			clear(batch) // drop references to strings before the slice is reused
			select {
			case free <- batch:
			default:
			}
			written <- struct{}{}
		}()
	}
	// settle writes everything collected so far and waits for it.
	settle := func() {
		pending = bw.drain(pending)
		for ; inflight > 0; inflight-- {
			<-written
		}
		pending = bw.drain(pending)
		bw.write(pending)
		pending = pending[:0]
	}
	for {
		select {
		case w := <-bw.queue:
			pending = bw.drain(bw.take(pending, w))
			start()
		case <-written:
			inflight--
			pending = bw.drain(pending)
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

func (bw *bootWriter) take(pending []bootWrite, w bootWrite) []bootWrite {
	if len(pending) >= maxPendingWrites {
		bw.drop()
		return pending
	}
	return append(pending, w)
}

// drain takes what is queued without waiting.
func (bw *bootWriter) drain(pending []bootWrite) []bootWrite {
	for {
		select {
		case w := <-bw.queue:
			pending = bw.take(pending, w)
		default:
			return pending
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
