package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// coreMAC is the i-th of a family of locally administered MACs, distinct for every i.
func coreMAC(i int) node.MAC { return node.MAC{0x02, 0xb0, 0x07, byte(i >> 16), byte(i >> 8), byte(i)} }

// serverSpec and workerSpec are what an operator imports.
func serverSpec(name string, macs ...node.MAC) node.Node {
	return node.Node{Name: name, MACs: macs, Role: node.RoleServer}
}

func workerSpec(name string, macs ...node.MAC) node.Node {
	return node.Node{Name: name, MACs: macs, Role: node.RoleWorker}
}

// tempStorePath is a fresh database file in the test's own directory.
func tempStorePath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "bootyard.db")
}

// openTestStore opens the store at path and closes it when the test ends (closing twice
// is harmless, so tests may close it earlier to reopen or inspect the file).
func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{LockTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// closeAndCheck closes s and checks the file's indexes against its records.
func closeAndCheck(t *testing.T, s *Store) {
	t.Helper()
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	checkIndexes(t, path)
}

// checkIndexes opens the closed store file read-only and checks that the MAC index and
// the node records agree both ways: every mac_index entry names a node that lists that
// MAC, and every MAC a node lists is indexed to that node. It also checks that each
// record is stored under its own name and that no history outlives its node.
func checkIndexes(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("checkIndexes: open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		nodes, idx, events := tx.Bucket(bucketNodes), tx.Bucket(bucketMACIndex), tx.Bucket(bucketEvents)
		if nodes == nil || idx == nil || events == nil {
			t.Errorf("checkIndexes: missing bucket (nodes %v, mac_index %v, events %v)", nodes != nil, idx != nil, events != nil)
			return nil
		}
		byName := map[string]node.Node{}
		if err := nodes.ForEach(func(k, v []byte) error {
			var n node.Node
			if err := json.Unmarshal(v, &n); err != nil {
				t.Errorf("checkIndexes: node %q does not decode: %v", k, err)
				return nil
			}
			if n.Name != string(k) {
				t.Errorf("checkIndexes: record under key %q is named %q", k, n.Name)
			}
			if err := n.Validate(); err != nil {
				t.Errorf("checkIndexes: stored node %q does not validate: %v", k, err)
			}
			byName[string(k)] = n
			return nil
		}); err != nil {
			return err
		}
		if err := idx.ForEach(func(k, v []byte) error {
			mac, ok := node.MACFromBytes(k)
			if !ok {
				t.Errorf("checkIndexes: mac_index key %x is not 6 bytes", k)
				return nil
			}
			n, found := byName[string(v)]
			switch {
			case !found:
				t.Errorf("checkIndexes: mac_index %s → %q, which is not a node", mac, v)
			case !n.HasMAC(mac):
				t.Errorf("checkIndexes: mac_index %s → %q, which lists only %v", mac, v, n.MACs)
			}
			return nil
		}); err != nil {
			return err
		}
		for name, n := range byName {
			for _, m := range n.MACs {
				if owner := idx.Get(m[:]); string(owner) != name {
					t.Errorf("checkIndexes: node %q lists %s but mac_index says %q", name, m, owner)
				}
			}
		}
		checkSecondaryIndexes(t, tx, byName)
		if err := events.ForEach(func(k, v []byte) error {
			if _, ok := byName[string(k)]; !ok {
				t.Errorf("checkIndexes: events kept for %q, which is not a node", k)
			}
			return nil
		}); err != nil {
			return err
		}
		checkBoundedState(t, tx, byName)
		return nil
	})
	if err != nil {
		t.Fatalf("checkIndexes: %v", err)
	}
}

func TestOpen_InventorySurvivesCloseAndReopen(t *testing.T) {
	ctx := context.Background()
	path := tempStorePath(t)
	s := openTestStore(t, path)

	spec := serverSpec("gpu-01", coreMAC(1), coreMAC(2))
	spec.IP = netip.MustParsePrefix("10.20.0.31/24")
	spec.Gateway = netip.MustParseAddr("10.20.0.1")
	spec.DNS = []netip.Addr{netip.MustParseAddr("10.20.0.2")}
	spec.Labels = map[string]string{"gpu": "a100"}
	spec.Taints = []node.Taint{{Key: "dedicated", Value: "gpu", Effect: node.EffectNoSchedule}}
	imported, err := s.ImportNode(ctx, spec, "test")
	if err != nil {
		t.Fatal(err)
	}
	worker, err := s.ImportNode(ctx, workerSpec("cpu-01", coreMAC(3)), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.20.0.31:6443", "K10-secret"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventsBefore, err := s.Events(ctx, "gpu-01", 0)
	if err != nil {
		t.Fatal(err)
	}
	closeAndCheck(t, s)

	s = openTestStore(t, path)
	nodes, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []node.Node{worker, imported} // sorted by name
	if !reflect.DeepEqual(nodes, want) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", nodes, want)
	}
	byMAC, err := s.NodeByMAC(ctx, coreMAC(2))
	if err != nil || byMAC.Name != "gpu-01" {
		t.Fatalf("NodeByMAC after reopen = %s, %v", byMAC.Name, err)
	}
	eventsAfter, err := s.Events(ctx, "gpu-01", 0)
	if err != nil || !reflect.DeepEqual(eventsAfter, eventsBefore) {
		t.Fatalf("events after reopen = %+v, %v; want %+v", eventsAfter, err, eventsBefore)
	}
	settings, err := s.ClusterSettings(ctx)
	if err != nil || settings.Token.Reveal() != "K10-secret" || settings.ServerURL != "https://10.20.0.31:6443" {
		t.Fatalf("cluster settings after reopen = %+v (token %q), %v", settings, settings.Token.Reveal(), err)
	}
	closeAndCheck(t, s)
}

func TestOpen_SecondOpenerFailsWithErrLocked(t *testing.T) {
	path := tempStorePath(t)
	s := openTestStore(t, path)

	second, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want an error wrapping ErrLocked", err)
	}

	// The first opener is unharmed and, once it closes, the file opens again.
	if _, err := s.ImportNode(context.Background(), serverSpec("s1", coreMAC(1)), "test"); err != nil {
		t.Fatalf("first opener after the refused second: %v", err)
	}
	s.Close()
	again := openTestStore(t, path)
	closeAndCheck(t, again)
}

// readSchemaVersion reads the schema version of a closed store file.
func readSchemaVersion(t *testing.T, path string) (uint64, bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v []byte
	if err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			v = append(v, b.Get(keySchema)...)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(v) == 0 {
		return 0, false
	}
	if len(v) != 8 {
		t.Fatalf("schema version is %d bytes, want 8", len(v))
	}
	return decodeUint(v), true
}

// writeSchemaVersion writes the schema version by hand, as an older or newer build would.
func writeSchemaVersion(t *testing.T, path string, version uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchema, encodeUint(version))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_WritesTheSchemaVersion(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
	}{
		{"new file", func(t *testing.T, path string) {}},
		{"existing bbolt file without a version", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}},
		{"file at the current version", func(t *testing.T, path string) { writeSchemaVersion(t, path, uint64(SchemaVersion())) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempStorePath(t)
			tt.prepare(t, path)
			s := openTestStore(t, path)
			closeAndCheck(t, s)
			v, ok := readSchemaVersion(t, path)
			if !ok || v != uint64(SchemaVersion()) {
				t.Fatalf("schema version on disk = %d (present %v), want %d", v, ok, SchemaVersion())
			}
		})
	}
	if SchemaVersion() < 1 {
		t.Fatalf("SchemaVersion() = %d, want at least 1", SchemaVersion())
	}
}

func TestOpen_RefusesAFileFromANewerBuild(t *testing.T) {
	path := tempStorePath(t)
	s := openTestStore(t, path)
	if _, err := s.ImportNode(context.Background(), serverSpec("s1", coreMAC(1)), "test"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	newer := uint64(SchemaVersion() + 1)
	writeSchemaVersion(t, path, newer)

	refused, err := Open(path, Options{LockTimeout: 2 * time.Second})
	if err == nil {
		refused.Close()
		t.Fatal("Open of a file with a newer schema version succeeded")
	}
	if errors.Is(err, ErrLocked) {
		t.Fatalf("Open = %v: the refusal must not look like a lock", err)
	}
	// Refused means untouched: the version stays what the newer build wrote, and the
	// file is not left locked.
	if v, _ := readSchemaVersion(t, path); v != newer {
		t.Fatalf("schema version after the refused open = %d, want %d", v, newer)
	}
	checkIndexes(t, path)
}

func TestStore_CancelledContextStopsBeforeTheTransaction(t *testing.T) {
	s := openTestStore(t, tempStorePath(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"ImportNode", func() error { _, err := s.ImportNode(ctx, serverSpec("s1", coreMAC(1)), "test"); return err }},
		{"UpdateNode", func() error {
			_, err := s.UpdateNode(ctx, "s1", func(*node.Node) ([]node.Event, error) { return nil, nil })
			return err
		}},
		{"RemoveNode", func() error { return s.RemoveNode(ctx, "s1") }},
		{"GetNode", func() error { _, err := s.GetNode(ctx, "s1"); return err }},
		{"ListNodes", func() error { _, err := s.ListNodes(ctx); return err }},
		{"Events", func() error { _, err := s.Events(ctx, "s1", 0); return err }},
		{"AppendEvents", func() error {
			return s.AppendEvents(ctx, node.NewEvent("s1", node.EventLog, "x", "test", time.Now()))
		}},
		{"ClusterSettings", func() error { _, err := s.ClusterSettings(ctx); return err }},
		{"DeleteNode", func() error { _, _, err := s.DeleteNode(ctx, "s1", node.DeleteOptions{Confirm: "s1"}); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", c.name, err)
		}
	}
	closeAndCheck(t, s)
}

// checkBoundedState checks that the discovered index lists exactly the discovered nodes
// under their LastSeen, that its count is right, and that each node's history size
// record matches its history.
func checkBoundedState(t *testing.T, tx *bolt.Tx, byName map[string]node.Node) {
	t.Helper()
	indexed := 0
	if err := tx.Bucket(bucketDiscovered).ForEach(func(k, _ []byte) error {
		indexed++
		n, ok := byName[string(k[8:])]
		if !ok || n.State != node.StateDiscovered || !bytes.Equal(discoveredKey(&n), k) {
			t.Errorf("checkIndexes: discovered index entry %x (%q) matches no discovered node", k[:8], k[8:])
		}
		return nil
	}); err != nil {
		t.Errorf("checkIndexes: %v", err)
	}
	want := 0
	for _, n := range byName {
		if n.State == node.StateDiscovered {
			want++
			if tx.Bucket(bucketDiscovered).Get(discoveredKey(&n)) == nil {
				t.Errorf("checkIndexes: discovered node %q is not in the discovered index", n.Name)
			}
		}
	}
	if indexed != want || discoveredCount(tx) != want {
		t.Errorf("checkIndexes: %d discovered nodes, %d index entries, count says %d", want, indexed, discoveredCount(tx))
	}
	events := tx.Bucket(bucketEvents)
	if err := tx.Bucket(bucketEventTotals).ForEach(func(k, _ []byte) error {
		var have eventTotals
		if b := events.Bucket(k); b != nil {
			_ = b.ForEach(func(_, v []byte) error { have.count++; have.bytes += uint64(len(v)); return nil })
		}
		if got := getEventTotals(tx, string(k)); got != have {
			t.Errorf("checkIndexes: history size of %q recorded as %+v, is %+v", k, got, have)
		}
		return nil
	}); err != nil {
		t.Errorf("checkIndexes: %v", err)
	}
	if err := events.ForEachBucket(func(k []byte) error {
		if tx.Bucket(bucketEventTotals).Get(k) == nil {
			t.Errorf("checkIndexes: history of %q has no size record", k)
		}
		return nil
	}); err != nil {
		t.Errorf("checkIndexes: %v", err)
	}
}
