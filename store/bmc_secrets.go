package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// bucketNodeSecrets holds each node's secrets (the BMC password): name → sub-bucket:
// key → value. They live apart from the node record so that nothing that reads a node
// (API, pages, events, exports) can carry one out; they go with the node when it is
// removed and follow it when it is renamed.
var bucketNodeSecrets = []byte("node_secrets")

// SetNodeSecret stores value under key for the node named nodeName, which must exist. An
// empty value deletes the key.
func (s *Store) SetNodeSecret(ctx context.Context, nodeName, key string, value []byte) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("node %s secret: %w: empty key", nodeName, node.ErrInvalid)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := getNode(tx, nodeName); err != nil {
			return err
		}
		root, err := tx.CreateBucketIfNotExists(bucketNodeSecrets)
		if err != nil {
			return err
		}
		if len(value) == 0 {
			if b := root.Bucket([]byte(nodeName)); b != nil {
				return b.Delete([]byte(key))
			}
			return nil
		}
		b, err := root.CreateBucketIfNotExists([]byte(nodeName))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), bytes.Clone(value))
	})
}

// NodeSecret returns the secret key of the node named nodeName; node.ErrNotFound when
// none is stored.
func (s *Store) NodeSecret(ctx context.Context, nodeName, key string) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if root := tx.Bucket(bucketNodeSecrets); root != nil {
			if b := root.Bucket([]byte(nodeName)); b != nil {
				if v := b.Get([]byte(key)); v != nil {
					out = bytes.Clone(v) // v is only valid inside the transaction
					return nil
				}
			}
		}
		return fmt.Errorf("node %s secret %s: %w", nodeName, key, node.ErrNotFound)
	})
	return out, err
}

// NodeSecrets returns every secret of the node named nodeName by key (empty when it has
// none): what an export carries so a pivot moves the BMC passwords with their nodes.
func (s *Store) NodeSecrets(ctx context.Context, nodeName string) (map[string][]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out map[string][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = storedNodeSecrets(tx, nodeName)
		return err
	})
	return out, err
}

// storedNodeSecrets reads the node's secrets bucket (nil when it has none).
func storedNodeSecrets(tx *bolt.Tx, nodeName string) (map[string][]byte, error) {
	root := tx.Bucket(bucketNodeSecrets)
	if root == nil {
		return nil, nil
	}
	b := root.Bucket([]byte(nodeName))
	if b == nil {
		return nil, nil
	}
	var out map[string][]byte
	err := b.ForEach(func(k, v []byte) error {
		if out == nil {
			out = map[string][]byte{}
		}
		out[string(k)] = bytes.Clone(v) // k and v are only valid inside the transaction
		return nil
	})
	return out, err
}

// replaceNodeSecrets makes secrets the node's whole set of secrets.
func replaceNodeSecrets(tx *bolt.Tx, nodeName string, secrets map[string][]byte) error {
	if err := deleteNodeSecrets(tx, nodeName); err != nil {
		return err
	}
	if len(secrets) == 0 {
		return nil
	}
	root, err := tx.CreateBucketIfNotExists(bucketNodeSecrets)
	if err != nil {
		return err
	}
	b, err := root.CreateBucket([]byte(nodeName))
	if err != nil {
		return fmt.Errorf("secrets of %s: %w", nodeName, err)
	}
	for k, v := range secrets {
		if err := b.Put([]byte(k), bytes.Clone(v)); err != nil {
			return err
		}
	}
	return nil
}

// sameBMC reports whether two nodes' BMC settings are equal (both absent, or the same).
func sameBMC(a, b *node.BMC) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// deleteNodeSecrets drops every secret of the node named name.
func deleteNodeSecrets(tx *bolt.Tx, name string) error {
	root := tx.Bucket(bucketNodeSecrets)
	if root == nil || root.Bucket([]byte(name)) == nil {
		return nil
	}
	return root.DeleteBucket([]byte(name))
}

// moveNodeSecrets carries a node's secrets to its new name (rename, discovered → imported).
func moveNodeSecrets(tx *bolt.Tx, from, to string) error {
	root := tx.Bucket(bucketNodeSecrets)
	if root == nil || from == to {
		return nil
	}
	src := root.Bucket([]byte(from))
	if src == nil {
		return nil
	}
	if err := deleteNodeSecrets(tx, to); err != nil {
		return err
	}
	dst, err := root.CreateBucket([]byte(to))
	if err != nil {
		return err
	}
	if err := src.ForEach(func(k, v []byte) error { return dst.Put(bytes.Clone(k), bytes.Clone(v)) }); err != nil {
		return fmt.Errorf("move secrets %s → %s: %w", from, to, err)
	}
	return root.DeleteBucket([]byte(from))
}
