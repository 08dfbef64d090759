package store

import (
	"context"

	"github.com/bootyard/bootyard/node"
)

// CountNodes counts nodes by state, for metrics: the counters kept with the state index,
// so a scrape of /metrics costs the same at 100,000 nodes as at 10.
func (s *Store) CountNodes(ctx context.Context) (map[node.State]int, error) {
	return s.StateCounts(ctx)
}
