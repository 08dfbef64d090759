package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// CountNodes counts nodes by state, for metrics.
func (s *Store) CountNodes(ctx context.Context) (map[node.State]int, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	counts := make(map[node.State]int, len(node.States))
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			// Only the state is needed; decoding into a one-field struct skips the rest.
			var n struct {
				State node.State `json:"state"`
			}
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %s: %w", k, err)
			}
			counts[n.State]++
			return nil
		})
	})
	return counts, err
}
