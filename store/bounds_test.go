package store

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

func openLimitedStore(t *testing.T, limits Limits) *Store {
	t.Helper()
	s, err := Open(tempStorePath(t), Options{LockTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler), Limits: limits})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// randomMACs are n distinct unicast MACs, as a flood of made-up clients would send.
func randomMACs(n int, seed uint64) []node.MAC {
	r := rand.New(rand.NewPCG(seed, seed))
	seen := make(map[node.MAC]bool, n)
	out := make([]node.MAC, 0, n)
	for len(out) < n {
		var m node.MAC
		v := r.Uint64()
		for i := range m {
			m[i] = byte(v >> (8 * i))
		}
		m[0] &^= 1 // a group address is refused at the edge; a flood would not get this far with one
		if m.IsZero() || seen[m] {
			continue
		}
		seen[m] = true
		out = append(out, m)
	}
	return out
}

// recordAll boots every MAC once, LastSeen base+i seconds, from several goroutines at a
// time (so bbolt batches the commits, as concurrent DHCP and iPXE requests do).
func recordAll(t *testing.T, s *Store, macs []node.MAC, base time.Time) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, len(macs))
	for range 16 {
		wg.Go(func() {
			for i := range work {
				seen := node.BootInfo{Firmware: "bios", LastSeen: base.Add(time.Duration(i) * time.Second)}
				if err := s.RecordBoot(ctx, macs[i], seen); err != nil {
					errs <- fmt.Errorf("boot %d (%s): %w", i, macs[i], err)
				}
			}
		})
	}
	for i := range macs {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDiscovery_AFloodOfRandomMACsKeepsTheNewestUpToTheCap(t *testing.T) {
	ctx := context.Background()
	s := openLimitedStore(t, Limits{}) // the default cap, 1,000
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

	// Imported nodes older than every discovered one: never evicted, never counted.
	imported := []node.Node{serverSpec("cp-1", coreMAC(1)), workerSpec("w-1", coreMAC(2))}
	for _, n := range imported {
		if _, err := s.ImportNode(ctx, n, "api"); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordBoot(ctx, n.MACs[0], node.BootInfo{Firmware: "bios", LastSeen: base.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// A discovered machine imported after the flood began keeps its record too.
	late := coreMAC(3)
	if err := s.RecordBoot(ctx, late, node.BootInfo{Firmware: "uefi", LastSeen: base.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportNode(ctx, workerSpec("late", late), "api"); err != nil {
		t.Fatal(err)
	}

	macs := randomMACs(2000, 11)
	recordAll(t, s, macs, base)

	if got, want := s.BoundStats().DiscoveredEvicted, uint64(1000); got != want {
		t.Errorf("evictions counted = %d, want %d", got, want)
	}
	all, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	discovered := map[node.MAC]bool{}
	for _, n := range all {
		if n.State == node.StateDiscovered {
			discovered[n.MACs[0]] = true
		}
	}
	if len(discovered) != DefaultMaxDiscovered {
		t.Fatalf("%d discovered nodes after 2,000 random MACs, want the cap %d", len(discovered), DefaultMaxDiscovered)
	}
	// LastSeen is base+i: the first thousand were the longest unseen.
	for i, m := range macs {
		if want := i >= 1000; discovered[m] != want {
			t.Fatalf("MAC %d (%s) discovered = %v, want %v (the longest-unseen go first)", i, m, discovered[m], want)
		}
		if i < 1000 {
			if _, err := s.Events(ctx, node.DefaultName(m), 0); err == nil {
				t.Fatalf("evicted MAC %d still has a history", i)
			}
		}
	}
	for _, name := range []string{"cp-1", "w-1", "late"} {
		n, err := s.GetNode(ctx, name)
		if err != nil || n.State != node.StateRegistered {
			t.Errorf("imported node %s = %s, %v; want it kept, registered", name, n.State, err)
		}
	}
	closeAndCheck(t, s)
}

func TestDiscovery_ABootMovesADiscoveredNodeToTheBackOfTheQueue(t *testing.T) {
	ctx := context.Background()
	s := openLimitedStore(t, Limits{MaxDiscovered: 3})
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	macs := randomMACs(5, 7)
	boot := func(i int, at time.Duration) {
		t.Helper()
		if err := s.RecordBoot(ctx, macs[i], node.BootInfo{Firmware: "bios", LastSeen: base.Add(at)}); err != nil {
			t.Fatal(err)
		}
	}
	boot(0, 0)
	boot(1, time.Minute)
	boot(2, 2*time.Minute)
	boot(0, 3*time.Minute) // seen again: now the most recent
	boot(3, 4*time.Minute) // evicts 1, the longest unseen
	boot(4, 5*time.Minute) // evicts 2
	for i, want := range []bool{true, false, false, true, true} {
		_, err := s.NodeByMAC(ctx, macs[i])
		if (err == nil) != want {
			t.Errorf("MAC %d kept = %v, want %v", i, err == nil, want)
		}
	}
	if got := s.BoundStats().DiscoveredEvicted; got != 2 {
		t.Errorf("evictions = %d, want 2", got)
	}
	closeAndCheck(t, s)
}

func TestDiscovery_LoweringTheCapEvictsDownToItAtTheNextDiscovery(t *testing.T) {
	ctx := context.Background()
	path := tempStorePath(t)
	s, err := Open(path, Options{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxDiscovered: 10}})
	if err != nil {
		t.Fatal(err)
	}
	macs := randomMACs(11, 3)
	recordAll(t, s, macs[:10], time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	s.Close()
	s, err = Open(path, Options{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxDiscovered: 4}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RecordBoot(ctx, macs[10], node.BootInfo{Firmware: "bios", LastSeen: time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	for i, m := range macs {
		_, err := s.NodeByMAC(ctx, m)
		if want := i >= 7; (err == nil) != want {
			t.Errorf("MAC %d kept = %v, want %v", i, err == nil, want)
		}
	}
	if got := s.BoundStats().DiscoveredEvicted; got != 7 {
		t.Errorf("evictions = %d, want 7", got)
	}
	closeAndCheck(t, s)
}

func TestOpen_RefusesNegativeLimits(t *testing.T) {
	for _, l := range []Limits{{MaxDiscovered: -1}, {MaxNodeEvents: -1}, {MaxNodeEventBytes: -5}} {
		if s, err := Open(tempStorePath(t), Options{Limits: l}); err == nil {
			s.Close()
			t.Errorf("Open with %+v succeeded, want an error", l)
		}
	}
}

// logLine is an agent log event of about size bytes once stored.
func logLine(name string, i, size int) node.Event {
	prefix := fmt.Sprintf("line %06d ", i)
	return node.NewEvent(name, node.EventLog, prefix+strings.Repeat("x", max(0, size-len(prefix)-120)), "agent",
		time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Millisecond))
}

func TestEvents_RingKeepsTheNewestWithinBothCaps(t *testing.T) {
	tests := []struct {
		name      string
		limits    Limits
		lineBytes int
		posts     int
		wantKept  int
	}{
		{"count binds", Limits{MaxNodeEvents: 20, MaxNodeEventBytes: 1 << 20}, 200, 60, 20},
		{"bytes bind", Limits{MaxNodeEvents: 5000, MaxNodeEventBytes: 10_000}, 1000, 60, 10},
		{"under both caps nothing is dropped", Limits{MaxNodeEvents: 100, MaxNodeEventBytes: 1 << 20}, 200, 60, 61},
		{"a line bigger than the byte cap is kept alone", Limits{MaxNodeEvents: 50, MaxNodeEventBytes: 500}, 2000, 20, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openLimitedStore(t, tt.limits)
			if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
				t.Fatal(err)
			}
			for i := range tt.posts {
				if err := s.AppendEvents(ctx, logLine("w1", i, tt.lineBytes)); err != nil {
					t.Fatal(err)
				}
			}
			evs, err := s.Events(ctx, "w1", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tt.wantKept {
				t.Fatalf("%d events kept, want %d", len(evs), tt.wantKept)
			}
			// The newest survive, in order: the last is the last line posted.
			if last := evs[len(evs)-1]; !strings.HasPrefix(last.Reason, fmt.Sprintf("line %06d ", tt.posts-1)) {
				t.Errorf("newest kept event = %.20q, want line %d", last.Reason, tt.posts-1)
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].Seq != evs[i-1].Seq+1 {
					t.Fatalf("kept events are not the newest contiguous run: seq %d then %d", evs[i-1].Seq, evs[i].Seq)
				}
			}
			var stored uint64
			err = s.db.View(func(tx *bolt.Tx) error {
				tot := getEventTotals(tx, "w1")
				stored = tot.bytes
				if tot.count != uint64(len(evs)) {
					t.Errorf("recorded count %d, kept %d", tot.count, len(evs))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > 1 && stored > uint64(tt.limits.MaxNodeEventBytes) {
				t.Errorf("stored bytes %d over the cap %d", stored, tt.limits.MaxNodeEventBytes)
			}
			wantDropped := uint64(tt.posts + 1 - tt.wantKept) // +1: the import event
			if got := s.BoundStats().EventsDropped; got != wantDropped {
				t.Errorf("dropped events counted = %d, want %d", got, wantDropped)
			}
			closeAndCheck(t, s)
		})
	}
}

// usedBytes is the file's high-water mark: the pages bbolt has ever handed out. The file
// itself grows in 16 MiB steps ahead of it, so its size says less.
func usedBytes(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEvents_TenThousandLogPostsKeepTheFileAtTheRingsSize(t *testing.T) {
	ctx := context.Background()
	s := openLimitedStore(t, Limits{}) // the defaults: 5,000 entries, 4 MiB per node
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	const posts, lineBytes = 10_000, 600 // 5,000 × 600 B = 3 MB: the entry cap binds first
	post := func(from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		work := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range work {
					if err := s.AppendEvents(ctx, logLine("w1", i, lineBytes)); err != nil {
						t.Error(err)
					}
				}
			})
		}
		for i := from; i < to; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	post(0, 6000) // the ring is full after 5,000
	full := usedBytes(t, s)
	post(6000, posts)
	after := usedBytes(t, s)

	evs, err := s.Events(ctx, "w1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != DefaultMaxNodeEvents {
		t.Errorf("%d events kept after %d posts, want the cap %d", len(evs), posts, DefaultMaxNodeEvents)
	}
	var tot eventTotals
	_ = s.db.View(func(tx *bolt.Tx) error { tot = getEventTotals(tx, "w1"); return nil })
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ring full: %d KiB of pages in use; after %d more posts: %d KiB; stored history %d entries, %d KiB; file %d KiB",
		full>>10, posts-6000, after>>10, tot.count, tot.bytes>>10, fi.Size()>>10)
	if tot.count != DefaultMaxNodeEvents || tot.bytes > DefaultMaxNodeEventBytes {
		t.Errorf("stored history %d entries, %d bytes; want %d entries within %d bytes", tot.count, tot.bytes, DefaultMaxNodeEvents, DefaultMaxNodeEventBytes)
	}
	// 4,000 more posts of 600 bytes would add 2.4 MB without the ring; with it the pages
	// the dropped lines held are reused. A few pages of slack cover the B+tree's shape
	// changing (splits and merges) between the two measurements.
	if growth := after - full; growth > 64<<10 {
		t.Errorf("pages in use grew by %d KiB after the ring was full, want the file to stop growing (pages reused)", growth>>10)
	}
	closeAndCheck(t, s)
}

func TestOpen_SchemaOneFileGetsItsDiscoveredIndexAndHistorySizes(t *testing.T) {
	ctx := context.Background()
	path := tempStorePath(t)
	s := openTestStore(t, path)
	recordAll(t, s, randomMACs(5, 5), time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	if _, err := s.ImportNode(ctx, workerSpec("w1", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.AppendEvents(ctx, logLine("w1", i, 300)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Make it look like a schema 1 file: no index, no sizes.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketDiscovered, bucketEventTotals} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Delete(keyDiscovered); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, encodeUint(1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err = Open(path, Options{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxDiscovered: 4}})
	if err != nil {
		t.Fatal(err)
	}
	// The rebuilt index evicts the longest unseen at the next discovery: 5 + 1 → 4.
	if err := s.RecordBoot(ctx, coreMAC(9), node.BootInfo{Firmware: "bios", LastSeen: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if got := s.BoundStats().DiscoveredEvicted; got != 2 {
		t.Errorf("evictions after the migration = %d, want 2", got)
	}
	closeAndCheck(t, s)
	if v, _ := readSchemaVersion(t, path); v != uint64(SchemaVersion()) {
		t.Errorf("schema version %d, want %d", v, SchemaVersion())
	}
}

func TestNodeCache_HoldsAtMostItsCapWhateverMACsAsk(t *testing.T) {
	ctx := context.Background()
	s := openLimitedStore(t, Limits{MaxDiscovered: 50})
	macs := randomMACs(200, 13)
	recordAll(t, s, macs, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	c := s.NewNodeCache().(*NodeCache)
	c.max = 16
	found := 0
	for _, m := range macs {
		if _, _, err := c.NodeByMAC(ctx, m); err == nil {
			found++
		}
		c.mu.RLock()
		n := len(c.entries)
		c.mu.RUnlock()
		if n > c.max {
			t.Fatalf("cache holds %d entries, cap %d", n, c.max)
		}
	}
	if found != 50 {
		t.Errorf("%d MACs found through the cache, want the 50 the cap kept", found)
	}
	// A full cache still answers right: every kept node again, through evictions.
	for _, m := range macs[150:] {
		n, _, err := c.NodeByMAC(ctx, m)
		if err != nil || !n.HasMAC(m) {
			t.Fatalf("NodeByMAC(%s) = %s, %v after the cache filled", m, n.Name, err)
		}
	}
}

func TestRecordBoot_StoresOnlyPrintableBootText(t *testing.T) {
	ctx := context.Background()
	s := openLimitedStore(t, Limits{})
	mac := coreMAC(7)
	if err := s.RecordBoot(ctx, mac, node.BootInfo{Firmware: "ipxe\x1b[2J", VendorClass: "PXEClient\x07\u202e", UserClass: "iPXE\nx", IP: "10.0.0.5\x00"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.NodeByMAC(ctx, mac)
	if err != nil {
		t.Fatal(err)
	}
	want := node.BootInfo{Firmware: "ipxe?[2J", VendorClass: "PXEClient??", UserClass: "iPXE?x", IP: "10.0.0.5?"}
	if got := n.Boot; got.Firmware != want.Firmware || got.VendorClass != want.VendorClass || got.UserClass != want.UserClass || got.IP != want.IP {
		t.Errorf("boot info stored as %+v, want %+v", got, want)
	}
	evs, err := s.Events(ctx, n.Name, 0)
	if err != nil || len(evs) != 1 || strings.ContainsAny(evs[0].Reason, "\x1b\x07\n\u202e") {
		t.Errorf("discovery event %+v, %v: want one, printable", evs, err)
	}
}

// BenchmarkDiscover_AtTheCap is the cost of one new discovered node once the cap is
// reached (record, event, index, eviction of the longest unseen), inside one
// transaction so fsyncs do not hide it. It stays flat as the cap grows: eviction is a
// cursor seek on the last-seen index, not a scan of the records.
func BenchmarkDiscover_AtTheCap(b *testing.B) {
	for _, limit := range []int{1000, 20_000} {
		b.Run(fmt.Sprintf("cap=%d", limit), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "bootyard.db"), Options{Logger: slog.New(slog.DiscardHandler), Limits: Limits{MaxDiscovered: limit}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			mac := func(i int) node.MAC { return node.MAC{0x02, 0xbe, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} }
			seen := func(i int) node.BootInfo {
				return node.BootInfo{Firmware: "bios", LastSeen: base.Add(time.Duration(i) * time.Second)}
			}
			if err := s.db.Update(func(tx *bolt.Tx) error {
				for i := range limit {
					if err := s.discover(tx, mac(i), seen(i)); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			err = s.db.Update(func(tx *bolt.Tx) error {
				i := limit
				for b.Loop() {
					if err := s.discover(tx, mac(i), seen(i)); err != nil {
						return err
					}
					i++
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

func TestIndexBoundedState_RunTwiceRebuildsInsteadOfDoubleCounting(t *testing.T) {
	ctx := context.Background()
	s := openLimitedStore(t, Limits{})
	recordAll(t, s, randomMACs(4, 9), time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	if err := s.AppendEvents(ctx, logLine(node.DefaultName(randomMACs(4, 9)[0]), 0, 300)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.db.Update(indexBoundedState); err != nil {
			t.Fatal(err)
		}
	}
	var count int
	_ = s.db.View(func(tx *bolt.Tx) error { count = discoveredCount(tx); return nil })
	if count != 4 {
		t.Fatalf("discovered count after two rebuilds = %d, want 4", count)
	}
	closeAndCheck(t, s)
}
