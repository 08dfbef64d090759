package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

var keyCluster = []byte("cluster")

// clusterRecord is the stored form of node.ClusterSettings: the token is kept as a plain
// string here because node.Secret refuses to marshal its value.
type clusterRecord struct {
	node.ClusterSettings
	Token string `json:"token"`
}

// ClusterSettings returns the join settings (zero values when never set).
func (s *Store) ClusterSettings(ctx context.Context) (node.ClusterSettings, error) {
	if err := ctxErr(ctx); err != nil {
		return node.ClusterSettings{}, err
	}
	var out node.ClusterSettings
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = getClusterSettings(tx)
		return err
	})
	return out, err
}

// UpdateClusterSettings applies fn and stores the result if it validates.
func (s *Store) UpdateClusterSettings(ctx context.Context, fn func(*node.ClusterSettings) error) (node.ClusterSettings, error) {
	if err := ctxErr(ctx); err != nil {
		return node.ClusterSettings{}, err
	}
	var out node.ClusterSettings
	err := s.db.Update(func(tx *bolt.Tx) error {
		c, err := getClusterSettings(tx)
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return err
		}
		v, err := json.Marshal(clusterRecord{ClusterSettings: c, Token: c.Token.Reveal()})
		if err != nil {
			return fmt.Errorf("encode cluster settings: %w", err)
		}
		out = c
		return tx.Bucket(bucketSettings).Put(keyCluster, v)
	})
	return out, err
}

func getClusterSettings(tx *bolt.Tx) (node.ClusterSettings, error) {
	v := tx.Bucket(bucketSettings).Get(keyCluster)
	if v == nil {
		return node.ClusterSettings{}, nil
	}
	var rec clusterRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return node.ClusterSettings{}, fmt.Errorf("decode cluster settings: %w", err)
	}
	c := rec.ClusterSettings
	c.Token = node.Secret(rec.Token)
	return c, nil
}
