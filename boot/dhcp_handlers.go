package boot

import (
	"sync"
	"sync/atomic"
)

// handlerPool runs the packet handlers on demand, up to max at once, instead of max
// goroutines parked for the server's life. A REQUEST's handler waits for its lease's
// group commit, so a storm needs hundreds of handlers at once (DHCPConfig.Workers);
// the rest of the time nearly all would sit idle, each holding a stack of 8 KiB or more
// (2 MiB for 256) that the collector also counts towards its heap goal. A handler now
// leaves when the queue is empty and submit starts one when none is free.
type handlerPool struct {
	work   chan packet
	max    int32
	active atomic.Int32 // handlers running or about to; may pass max by the few leaving
	wg     sync.WaitGroup
	serve  func(packet)
}

func newHandlerPool(max, queue int, serve func(packet)) *handlerPool {
	return &handlerPool{work: make(chan packet, queue), max: int32(max), serve: serve}
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
		n := h.active.Load()
		if n >= h.max {
			return true // every handler is busy; one takes p when it finishes (see run)
		}
		if h.active.CompareAndSwap(n, n+1) {
			h.wg.Add(1)
			go h.run()
			return true
		}
	}
}

// run handles queued packets until the queue is empty or closed.
func (h *handlerPool) run() {
	defer h.wg.Done()
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
		h.active.Add(-1)
		// A packet queued after the look above may have found this handler still
		// counted, and submit then started none: one more look before leaving.
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
