// Package store persists Bootyard's inventory in one bbolt file: nodes with their MAC and
// name indexes, events, settings and (for the boot package) leases. It knows node/, nothing else.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bootyard/bootyard/node"
)

// Bucket names. Indexes live beside the records they index and are written in the same
// transaction, so they can never disagree with them.
var (
	bucketMeta     = []byte("meta")
	bucketNodes    = []byte("nodes")     // name → node JSON
	bucketMACIndex = []byte("mac_index") // mac (6 bytes) → name
	bucketEvents   = []byte("events")    // name → sub-bucket: seq (8 bytes BE) → event JSON
	bucketSettings = []byte("settings")  // key → JSON
	// bucketDiscovered indexes discovered nodes by last-seen time (8 bytes BE Unix
	// nanoseconds, then the name) → empty: the longest-unseen is its first key.
	bucketDiscovered = []byte("discovered_index")
	// bucketEventTotals holds each node's history size: name → count, bytes (8 bytes BE each).
	bucketEventTotals = []byte("event_totals")
	keySchema         = []byte("schema_version")
	keyDiscovered     = []byte("discovered_count") // in meta: entries in bucketDiscovered
)

// allBuckets are created at open, so read transactions never meet a missing bucket.
var allBuckets = append([][]byte{bucketMeta, bucketNodes, bucketMACIndex, bucketEvents, bucketSettings, bucketDiscovered, bucketEventTotals}, indexBuckets...)

// migration upgrades the file from schema version i to i+1 (index i in migrations).
type migration func(tx *bolt.Tx) error

// migrations is the ordered list of schema upgrades. Version 1 is the first layout; a
// later layout appends a function here and never edits an old one.
var migrations = []migration{
	func(tx *bolt.Tx) error { return nil }, // 0 → 1: buckets created by open
	indexBoundedState,                      // 1 → 2: discovered index and history sizes
	buildIndexes,                           // 2 → 3: state, role, label and IP indexes, counts by state
	buildIndexes,                           // 3 → 4: the same and the image index
}

// SchemaVersion is the version this build writes.
func SchemaVersion() int { return len(migrations) }

// Options tune Open.
type Options struct {
	// LockTimeout bounds the wait for the file lock: a second Bootyard on the same data
	// directory must fail at once with a clear message, not hang.
	LockTimeout time.Duration
	Logger      *slog.Logger
	// OnUpdate, when set, is called after each committed import or node update with the
	// node before (zero for a new one) and after: metrics observe install and wipe
	// durations from it, DHCP refreshes its reservations. It runs on the writer's
	// goroutine: it must be quick and must not call the store.
	OnUpdate func(before, after node.Node)
	// Limits bound what machines can make the store keep; zero fields take the defaults.
	Limits Limits
}

// Store is the bbolt-backed inventory. It is safe for concurrent use.
type Store struct {
	db       *bolt.DB
	log      *slog.Logger
	now      func() time.Time
	onUpdate func(before, after node.Node)
	limits   Limits
	bounds   boundCounters
	resv     reservationsCache
}

// ErrLocked means another process holds the database file.
var ErrLocked = errors.New("database is in use by another process")

// Open opens (creating if needed) the store file at path and runs pending migrations.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	limits, err := opts.Limits.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// The freelist is rebuilt at open instead of written at every commit: DHCP
		// commits a group of leases every millisecond or so, and rewriting a freelist
		// that grows with the lease count made those commits slower as leases grew.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Growing the memory map blocks every transaction while it is remapped; starting
		// at 64 MiB (address space, not memory) covers 50,000 leases and their nodes
		// without a remap on the DHCP path.
		InitialMmapSize: 64 << 20,
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: %w (is another bootyard serve running on this data directory?)", path, ErrLocked)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, log: opts.Logger, now: func() time.Time { return time.Now().UTC() }, onUpdate: opts.OnUpdate, limits: limits}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		current := 0
		if v := meta.Get(keySchema); v != nil {
			current = int(decodeUint(v))
		}
		if current > len(migrations) {
			return fmt.Errorf("store schema version %d is newer than this build understands (%d): refusing to touch it", current, len(migrations))
		}
		for v := current; v < len(migrations); v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migrate store schema %d → %d: %w", v, v+1, err)
			}
			s.log.Info("store schema migrated", slog.Int("from", v), slog.Int("to", v+1))
		}
		return meta.Put(keySchema, encodeUint(uint64(len(migrations))))
	})
}

// Close closes the database file; in-flight transactions finish first.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// ctxErr is checked before each transaction: bbolt itself does not take a context, so a
// cancelled request stops before it queues for the write lock.
// updated reports a committed change to the OnUpdate hook.
func (s *Store) updated(before, after node.Node) {
	if s.onUpdate != nil {
		s.onUpdate(before, after)
	}
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func encodeUint(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func decodeUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
