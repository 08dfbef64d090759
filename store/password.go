package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// keyAdminPassword holds the bcrypt hash of the web password of user admin. The store
// keeps bytes only; hashing and checking belong to the web package.
var keyAdminPassword = []byte("admin_password")

// AdminPasswordHash returns the stored hash, or nil when no password was ever set.
func (s *Store) AdminPasswordHash(ctx context.Context) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSettings).Get(keyAdminPassword); v != nil {
			out = append([]byte(nil), v...) // v is only valid inside the transaction
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read admin password: %w", err)
	}
	return out, nil
}

// SetAdminPasswordHash replaces the stored hash.
func (s *Store) SetAdminPasswordHash(ctx context.Context, hash []byte) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(hash) == 0 {
		return fmt.Errorf("set admin password: empty hash")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSettings).Put(keyAdminPassword, hash)
	})
}
