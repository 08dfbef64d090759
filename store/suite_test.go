package store_test

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/storetest"
)

// TestSuite runs the backend-independent store suite against a bbolt file; kubestore
// runs the same suite against the Kubernetes API.
func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, limits store.Limits) store.Backend {
		s, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{LockTimeout: 2 * time.Second,
			Logger: slog.New(slog.DiscardHandler), Limits: limits})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
