package boot

import (
	"net/netip"
	"sync"
	"time"

	"github.com/bootyard/bootyard/node"
)

// Sightings remembers, for a short time, the addresses Bootyard saw each MAC use in its
// own DHCP and proxyDHCP exchanges (the client's ciaddr, the address it requested, the
// yiaddr we gave it). In proxy mode another server hands out the addresses and Bootyard
// has no lease to compare with; what it saw on the wire is the next best proof that a
// later HTTP request from that address is the machine itself. DHCP cannot authenticate
// a MAC: this only keeps other hosts on the network from claiming a node's secrets.
//
// The record is bounded (at most maxMACs MACs, maxAddrsPerMAC addresses each, the
// oldest dropped first) and expires after ttl, so a flood of made-up MACs costs a fixed
// amount of memory.
type Sightings struct {
	ttl     time.Duration
	maxMACs int
	now     func() time.Time

	mu    sync.Mutex
	byMAC map[node.MAC]*macSightings
}

// macSightings are one MAC's recent addresses, newest last.
type macSightings struct {
	addrs []sighting
}

type sighting struct {
	addr netip.Addr
	at   time.Time
}

const (
	// DefaultSightingTTL covers a machine's whole boot: firmware PXE, iPXE, the agent or
	// the installed OS asking again minutes later.
	DefaultSightingTTL = 30 * time.Minute
	// DefaultMaxSightings is far above any rack, far below what hurts memory.
	DefaultMaxSightings = 16384
	maxAddrsPerMAC      = 4
)

// NewSightings builds an empty record; ttl and maxMACs 0 mean the defaults, now nil the
// wall clock.
func NewSightings(ttl time.Duration, maxMACs int, now func() time.Time) *Sightings {
	if ttl <= 0 {
		ttl = DefaultSightingTTL
	}
	if maxMACs <= 0 {
		maxMACs = DefaultMaxSightings
	}
	if now == nil {
		now = time.Now
	}
	return &Sightings{ttl: ttl, maxMACs: maxMACs, now: now, byMAC: make(map[node.MAC]*macSightings)}
}

// Saw records that mac used addr. Invalid, unspecified and broadcast addresses are ignored.
func (s *Sightings) Saw(mac node.MAC, addr netip.Addr) {
	if s == nil || !addr.IsValid() || addr.IsUnspecified() || addr == broadcast {
		return
	}
	addr = addr.Unmap()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byMAC[mac]
	if m == nil {
		if len(s.byMAC) >= s.maxMACs {
			s.evictLocked(now)
		}
		m = &macSightings{}
		s.byMAC[mac] = m
	}
	for i, sg := range m.addrs {
		if sg.addr == addr {
			m.addrs = append(m.addrs[:i], m.addrs[i+1:]...)
			break
		}
	}
	if len(m.addrs) >= maxAddrsPerMAC {
		m.addrs = m.addrs[1:]
	}
	m.addrs = append(m.addrs, sighting{addr: addr, at: now})
}

// Seen reports whether mac was seen using addr within the TTL.
func (s *Sightings) Seen(mac node.MAC, addr netip.Addr) bool {
	if s == nil {
		return false
	}
	addr = addr.Unmap()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byMAC[mac]
	if m == nil {
		return false
	}
	for _, sg := range m.addrs {
		if sg.addr == addr && now.Sub(sg.at) < s.ttl {
			return true
		}
	}
	return false
}

// Len is how many MACs are on record, for tests and metrics.
func (s *Sightings) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byMAC)
}

// evictLocked makes room: expired MACs go first; if none expired, the one seen least
// recently.
func (s *Sightings) evictLocked(now time.Time) {
	var oldest node.MAC
	var oldestAt time.Time
	for mac, m := range s.byMAC {
		last := m.addrs[len(m.addrs)-1].at
		if now.Sub(last) >= s.ttl {
			delete(s.byMAC, mac)
			continue
		}
		if oldestAt.IsZero() || last.Before(oldestAt) {
			oldest, oldestAt = mac, last
		}
	}
	if len(s.byMAC) >= s.maxMACs {
		delete(s.byMAC, oldest)
	}
}
