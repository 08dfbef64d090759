package boot

import (
	"slices"
	"sync"
	"time"
)

// handlerPool runs the packet handlers on demand, up to max at once, instead of max
// goroutines parked for the server's life. A REQUEST's handler waits for its lease's
// group commit, so a storm needs hundreds of handlers at once (DHCPConfig.Workers);
// the rest of the time nearly all would sit idle, each holding a stack of 8 KiB or more
// (2 MiB for 256) that the collector also counts towards its heap goal.
//
// A packet goes to a waiting handler if there is one, else to a new handler while fewer
// than max run, else to the queue that busy handlers drain before they wait. A handler
// that has waited handlerIdle for a packet leaves. Handlers do not leave the moment they
// are done: a goroutine started for nearly every packet made 50 clients' exchanges a
// quarter slower (BenchmarkDHCPDORA). Every packet has a handler of its own while fewer
// than max are busy: one held by a commit never makes the packets behind it wait.
type handlerPool struct {
	max   int
	idle  time.Duration
	serve func(packet)
	wg    sync.WaitGroup

	mu      sync.Mutex
	waiting []*handler // most recently waiting last: the busiest few stay, the rest leave
	running int
	queue   []packet // only while max handlers are busy; at most qmax
	qmax    int
	closed  bool
}

// handler is one waiting goroutine's mailbox: submit hands it one packet.
type handler struct{ next chan packet }

// handlerIdle is how long a handler waits for a packet before it leaves: longer than
// the gaps between a busy server's packets, much shorter than a storm.
const handlerIdle = 500 * time.Millisecond

func newHandlerPool(max, queue int, idle time.Duration, serve func(packet)) *handlerPool {
	return &handlerPool{max: max, qmax: queue, idle: idle, serve: serve}
}

// submit hands p to a handler, or queues it while every handler is busy; false when the
// queue is full (or the pool closed).
func (h *handlerPool) submit(p packet) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	if n := len(h.waiting); n > 0 {
		w := h.waiting[n-1]
		h.waiting[n-1] = nil
		h.waiting = h.waiting[:n-1]
		h.mu.Unlock()
		w.next <- p // buffered: never blocks
		return true
	}
	if h.running < h.max {
		h.running++
		h.wg.Add(1)
		h.mu.Unlock()
		go h.run(p)
		return true
	}
	if len(h.queue) >= h.qmax {
		h.mu.Unlock()
		return false
	}
	h.queue = append(h.queue, p)
	h.mu.Unlock()
	return true
}

// run serves p, then whatever is queued or handed to it, until it has waited h.idle
// for a packet or the pool is closed.
func (h *handlerPool) run(p packet) {
	defer h.wg.Done()
	self := &handler{next: make(chan packet, 1)}
	idle := time.NewTimer(h.idle)
	defer idle.Stop()
	for {
		h.serve(p)
		h.mu.Lock()
		if len(h.queue) > 0 {
			p = h.queue[0]
			h.queue[0] = packet{}
			h.queue = h.queue[1:]
			if len(h.queue) == 0 {
				h.queue = nil // let the backing array go
			}
			h.mu.Unlock()
			continue
		}
		if h.closed {
			h.running--
			h.mu.Unlock()
			return
		}
		h.waiting = append(h.waiting, self)
		h.mu.Unlock()
		idle.Reset(h.idle)
		var ok bool
		select {
		case p, ok = <-self.next:
		case <-idle.C:
			h.mu.Lock()
			if i := slices.Index(h.waiting, self); i >= 0 {
				h.waiting = slices.Delete(h.waiting, i, i+1)
				h.running--
				h.mu.Unlock()
				return
			}
			// submit (or close) took this handler as its timer fired: the packet is in
			// the mailbox, or the mailbox is closed.
			h.mu.Unlock()
			p, ok = <-self.next
		}
		if !ok { // closed while waiting
			h.mu.Lock()
			h.running--
			h.mu.Unlock()
			return
		}
	}
}

// close refuses further packets and waits until the handlers have served what they
// were given and what is queued.
func (h *handlerPool) close() {
	h.mu.Lock()
	h.closed = true
	waiting := h.waiting
	h.waiting = nil
	h.mu.Unlock()
	for _, w := range waiting {
		close(w.next)
	}
	h.wg.Wait()
}
