package boot

import (
	"net/netip"
	"sync"
)

// transferSlots bounds the transfers in flight, in all and per client address. pin/tftp
// opens a socket and two datagram buffers for every request before our handler runs and
// keeps them until the handler returns; a client that sends requests and never ACKs
// holds each for Timeout × Retries. Past a cap the handler refuses at once, so what a
// flood costs is released as fast as it arrives. The per-address map only holds
// addresses with a transfer in flight, so it is bounded by the total cap.
type transferSlots struct {
	mu        sync.Mutex
	total     int
	max       int
	perClient int
	byClient  map[netip.Addr]int
}

func newTransferSlots(max, perClient int) *transferSlots {
	return &transferSlots{max: max, perClient: perClient, byClient: make(map[netip.Addr]int)}
}

// acquire takes a slot for client; false means a cap is reached.
func (t *transferSlots) acquire(client netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total >= t.max || t.byClient[client] >= t.perClient {
		return false
	}
	t.total++
	t.byClient[client]++
	return true
}

func (t *transferSlots) release(client netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if n := t.byClient[client] - 1; n > 0 {
		t.byClient[client] = n
	} else {
		delete(t.byClient, client)
	}
}
