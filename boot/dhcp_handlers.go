package boot

import (
	"sync"
	"sync/atomic"
	"time"
)

// handlerPool runs the packet handlers on demand, up to max at once, instead of max
// goroutines parked for the server's life. A REQUEST's handler waits for its lease's
// group commit, so a storm needs hundreds of handlers at once (DHCPConfig.Workers);
// the rest of the time nearly all would sit idle, each holding a stack of 8 KiB or more
// (2 MiB for 256) that the collector also counts towards its heap goal. A handler that
// has found no packet for handlerIdle leaves, and submit starts one when none is idle.
// Handlers do not leave the moment the queue is empty: a goroutine started for every
// packet made 50 clients' exchanges a quarter slower (BenchmarkDHCPDORA).
type handlerPool struct {
	work   chan packet
	max    int32
	idle   time.Duration
	active atomic.Int32 // handlers running or about to; may pass max by the few leaving
	free   atomic.Int32 // handlers waiting for a packet
	wg     sync.WaitGroup
	serve  func(packet)
}

// handlerIdle is how long a handler waits for a packet before it leaves: longer than
// the gaps between a busy server's packets, much shorter than a storm.
const handlerIdle = 500 * time.Millisecond

func newHandlerPool(max, queue int, idle time.Duration, serve func(packet)) *handlerPool {
	return &handlerPool{work: make(chan packet, queue), max: int32(max), idle: idle, serve: serve}
}

// submit queues p and makes sure a handler will take it; false when the queue is full.
// Only the readers call it, and never after close.
func (h *handlerPool) submit(p packet) bool {
	select {
	case h.work <- p:
	default:
		return false
	}
	for {
		if h.free.Load() > 0 {
			return true // a waiting handler takes p (or, leaving, looks once more: see run)
		}
		n := h.active.Load()
		if n >= h.max {
			return true // every handler is busy; one takes p when it finishes
		}
		if h.active.CompareAndSwap(n, n+1) {
			h.wg.Add(1)
			go h.run()
			return true
		}
	}
}

// run handles queued packets until none has come for h.idle or the queue is closed.
func (h *handlerPool) run() {
	defer h.wg.Done()
	idle := time.NewTimer(h.idle)
	defer idle.Stop()
	for {
		select {
		case p, ok := <-h.work:
			if !ok {
				h.active.Add(-1)
				return
			}
			h.serve(p)
			continue
		default:
		}
		idle.Reset(h.idle)
		h.free.Add(1)
		select {
		case p, ok := <-h.work:
			h.free.Add(-1)
			if !ok {
				h.active.Add(-1)
				return
			}
			h.serve(p)
			continue
		case <-idle.C:
		}
		h.free.Add(-1)
		h.active.Add(-1)
		// A packet queued just now may have found this handler still counted (free or
		// active), and submit then started none: one more look before leaving.
		select {
		case p, ok := <-h.work:
			if !ok {
				return
			}
			h.active.Add(1)
			h.serve(p)
		default:
			return
		}
	}
}

// close ends the queue and waits until the handlers have served what it held.
func (h *handlerPool) close() {
	close(h.work)
	h.wg.Wait()
}
