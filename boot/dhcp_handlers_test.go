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
		return served.Load() == 40 && h.active.Load() == 0
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
		waitUntil(t, "the handler waits for the next packet", func() bool { return h.free.Load() == 1 })
		if n := h.active.Load(); n != 1 {
			t.Fatalf("after packet %d, %d handlers, want the one", i, n)
		}
	}
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
				t.Fatalf("packet %d was never served (%d handlers counted)", sent, h.active.Load())
			}
			runtime.Gosched()
		}
	}
}
