package store

import (
	"fmt"
	"sync/atomic"

	"github.com/bootyard/bootyard/node"
)

// Limits bound the records that machines, not operators, make the store keep: anyone on
// the provisioning network can network-boot with a new MAC, and an agent can post log
// lines, so neither may grow the file without end.
type Limits struct {
	// MaxDiscovered caps discovered-but-not-imported nodes; past it the longest-unseen
	// one is forgotten (its record and history). Imported nodes are never evicted.
	MaxDiscovered int
	// MaxNodeEvents and MaxNodeEventBytes cap each node's history (events and agent log
	// lines, counted by their stored size): the oldest entries are dropped first.
	MaxNodeEvents     int
	MaxNodeEventBytes int
}

// Default limits: a thousand unknown machines is more than one provisioning network
// boots at once, and a few thousand entries hold several complete install logs.
const (
	DefaultMaxDiscovered     = 1000
	DefaultMaxNodeEvents     = 5000
	DefaultMaxNodeEventBytes = 4 << 20
)

// WithDefaults fills zero fields and refuses negative ones.
func (l Limits) WithDefaults() (Limits, error) {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"max discovered", &l.MaxDiscovered, DefaultMaxDiscovered},
		{"max node events", &l.MaxNodeEvents, DefaultMaxNodeEvents},
		{"max node event bytes", &l.MaxNodeEventBytes, DefaultMaxNodeEventBytes},
	} {
		if *f.v < 0 {
			return l, fmt.Errorf("%s %d: %w: want a positive number (0 for the default %d)", f.name, *f.v, node.ErrInvalid, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return l, nil
}

// BoundStats counts what the limits threw away since the store was opened.
type BoundStats struct {
	DiscoveredEvicted uint64 // discovered nodes forgotten to stay under MaxDiscovered
	EventsDropped     uint64 // history entries dropped to stay under the per-node caps
}

type boundCounters struct {
	discoveredEvicted, eventsDropped atomic.Uint64
}

// BoundStats returns the eviction counters, for metrics.
func (s *Store) BoundStats() BoundStats {
	return BoundStats{DiscoveredEvicted: s.bounds.discoveredEvicted.Load(), EventsDropped: s.bounds.eventsDropped.Load()}
}
