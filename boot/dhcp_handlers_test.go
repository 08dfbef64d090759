package boot

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDHCPHandlers_NoneStaysOnceIdle(t *testing.T) {
	var served atomic.Int64
	h := newHandlerPool(8, 64, time.Millisecond, func(packet) { served.Add(1) })
	for range 40 {
		if !h.submit(packet{}) {
			t.Fatal("a queue of 64 refused the 40 packets submitted")
		}
	}
	waitUntil(t, "every packet is served and no handler is left", func() bool {
		running, _ := h.counts()
		return served.Load() == 40 && running == 0
	})
	h.close()
}

func TestDHCPHandlers_AWaitingHandlerTakesTheNextPacket(t *testing.T) {
	// One client's exchanges, one packet at a time: one handler serves them all, with
	// no goroutine started per packet.
	var served atomic.Int64
	h := newHandlerPool(8, 64, time.Hour, func(packet) { served.Add(1) })
	defer h.close()
	for i := int64(1); i <= 100; i++ {
		if !h.submit(packet{}) {
			t.Fatal("the queue refused a packet")
		}
		waitUntil(t, fmt.Sprintf("packet %d is served", i), func() bool { return served.Load() == i })
		waitUntil(t, "the handler waits for the next packet", func() bool { _, waiting := h.counts(); return waiting == 1 })
		if n, _ := h.counts(); n != 1 {
			t.Fatalf("after packet %d, %d handlers, want the one", i, n)
		}
	}
}

func TestDHCPHandlers_ABurstGetsAHandlerPerPacket(t *testing.T) {
	// One handler waits; five packets come at once, each held (as a REQUEST waits for
	// its commit): five handlers must take them, not the one in turn.
	gate := make(chan struct{})
	var busy atomic.Int32
	h := newHandlerPool(8, 64, time.Hour, func(packet) { busy.Add(1); <-gate; busy.Add(-1) })
	defer h.close()
	defer close(gate) // before close, so that a failure does not leave handlers blocked
	h.submit(packet{})
	waitUntil(t, "the first packet is taken", func() bool { return busy.Load() == 1 })
	gate <- struct{}{}
	waitUntil(t, "its handler waits for the next", func() bool { _, waiting := h.counts(); return busy.Load() == 0 && waiting == 1 })
	for range 5 {
		if !h.submit(packet{}) {
			t.Fatal("the queue refused a packet")
		}
	}
	waitUntil(t, "five handlers hold the five packets", func() bool { return busy.Load() == 5 })
}

func TestDHCPHandlers_AtMostMaxAtOnceAndTheQueueIsServedInFull(t *testing.T) {
	const limit, total = 4, 20
	gate := make(chan struct{})
	var mu sync.Mutex
	busy, most, served := 0, 0, 0
	h := newHandlerPool(limit, total, time.Hour, func(packet) {
		mu.Lock()
		busy++
		most = max(most, busy)
		mu.Unlock()
		<-gate
		mu.Lock()
		busy--
		served++
		mu.Unlock()
	})
	for range total {
		if !h.submit(packet{}) {
			t.Fatal("the queue refused a packet it had room for")
		}
	}
	waitUntil(t, fmt.Sprintf("%d handlers are busy", limit), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return busy == limit
	})
	// The busy handlers took limit packets out of the queue: room for that many more.
	for range limit {
		if !h.submit(packet{}) {
			t.Fatal("the queue refused a packet it had room for")
		}
	}
	if h.submit(packet{}) {
		t.Error("a full queue took another packet")
	}
	close(gate)
	h.close()
	if most != limit || served != total+limit {
		t.Errorf("%d handlers at once and %d packets served, want %d and %d", most, served, limit, total+limit)
	}
}

func TestDHCPHandlers_NoPacketIsLeftInTheQueueWithNoHandler(t *testing.T) {
	// Handlers leave as fast as packets come (no idle wait): a packet queued just as the
	// last handler gave up waiting must still be taken, not left until the next one. Each
	// packet is submitted as the previous one is served, which is when handlers leave
	// (a stress test: the window is a few instructions wide, so a regression shows as a
	// failure now and then, not every run).
	var served atomic.Int64
	h := newHandlerPool(2, 4, 0, func(packet) { served.Add(1) })
	defer h.close()
	deadline := time.Now().Add(20 * time.Second)
	for sent := int64(1); sent <= 100_000; sent++ {
		if !h.submit(packet{}) {
			t.Fatalf("packet %d refused with the queue empty", sent)
		}
		for served.Load() != sent {
			if time.Now().After(deadline) {
				running, waiting := h.counts()
				t.Fatalf("packet %d was never served (%d handlers, %d waiting)", sent, running, waiting)
			}
			runtime.Gosched()
		}
	}
}

// counts is how many handlers run and how many of them wait for a packet.
func (h *handlerPool) counts() (running, waiting int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.running, len(h.waiting)
}
