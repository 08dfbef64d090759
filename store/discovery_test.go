package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// discoveryClock is a settable clock for the store, so LastSeen resolution is testable
// without sleeping.
type discoveryClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *discoveryClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *discoveryClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openDiscoveryStore(t *testing.T) (*Store, *discoveryClock) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "bootyard.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	clock := &discoveryClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	s.now = clock.now
	return s, clock
}

var (
	discMAC  = node.MAC{0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01}
	uefiBoot = node.BootInfo{Arch: 7, Firmware: "uefi", VendorClass: "PXEClient:Arch:00007:UNDI:003016"}
)

func TestRecordBoot_UnknownMACBecomesADiscoveredNodeWithAnEvent(t *testing.T) {
	ctx := context.Background()
	s, clock := openDiscoveryStore(t)
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
		t.Fatal(err)
	}
	n, err := s.NodeByMAC(ctx, discMAC)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.now()
	if n.Name != node.DefaultName(discMAC) || n.State != node.StateDiscovered {
		t.Errorf("node = %s (%s), want %s (discovered)", n.Name, n.State, node.DefaultName(discMAC))
	}
	want := uefiBoot
	want.FirstSeen, want.LastSeen = now, now
	if n.Boot != want {
		t.Errorf("Boot = %+v, want %+v", n.Boot, want)
	}
	if !n.LastSeen.Equal(now) || !n.CreatedAt.Equal(now) {
		t.Errorf("LastSeen %v CreatedAt %v, want %v", n.LastSeen, n.CreatedAt, now)
	}
	events, err := s.Events(ctx, n.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].To != node.StateDiscovered {
		t.Errorf("events = %+v, want one transition to discovered", events)
	}
}

func TestRecordBoot_RepeatsWithinTheResolutionWriteNothing(t *testing.T) {
	ctx := context.Background()
	s, clock := openDiscoveryStore(t)
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
		t.Fatal(err)
	}
	first, _ := s.NodeByMAC(ctx, discMAC)

	tests := []struct {
		name      string
		advance   time.Duration
		seen      node.BootInfo
		wantWrite bool
	}{
		{"same info soon after", time.Second, uefiBoot, false},
		{"less informative info soon after", time.Second, node.BootInfo{}, false},
		{"new user class soon after", time.Second, node.BootInfo{UserClass: "iPXE"}, true},
		{"same info after the resolution", lastSeenResolution, uefiBoot, true},
		{"firmware changed (BIOS is arch 0)", time.Second, node.BootInfo{Firmware: "bios", Arch: 0}, true},
	}
	prev := first
	for _, tt := range tests {
		clock.advance(tt.advance)
		if err := s.RecordBoot(ctx, discMAC, tt.seen); err != nil {
			t.Fatal(err)
		}
		n, _ := s.NodeByMAC(ctx, discMAC)
		wrote := !n.UpdatedAt.Equal(prev.UpdatedAt)
		if wrote != tt.wantWrite {
			t.Errorf("%s: wrote = %v, want %v", tt.name, wrote, tt.wantWrite)
		}
		if wrote && !n.LastSeen.Equal(clock.now()) {
			t.Errorf("%s: LastSeen = %v, want %v", tt.name, n.LastSeen, clock.now())
		}
		if !n.Boot.FirstSeen.Equal(first.Boot.FirstSeen) {
			t.Errorf("%s: FirstSeen moved to %v", tt.name, n.Boot.FirstSeen)
		}
		prev = n
	}
	if prev.Boot.Firmware != "bios" || prev.Boot.Arch != 0 || prev.Boot.UserClass != "iPXE" || prev.Boot.VendorClass != uefiBoot.VendorClass {
		t.Errorf("merged Boot = %+v", prev.Boot)
	}
}

func TestRecordBoot_KnownNodeKeepsItsStateAndGetsBootInfo(t *testing.T) {
	ctx := context.Background()
	s, _ := openDiscoveryStore(t)
	if _, err := s.ImportNode(ctx, node.Node{Name: "worker-1", MACs: []node.MAC{discMAC}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
		t.Fatal(err)
	}
	n, _ := s.GetNode(ctx, "worker-1")
	if n.State != node.StateRegistered || n.Boot.Firmware != "uefi" || n.Boot.FirstSeen.IsZero() {
		t.Errorf("node = %s with Boot %+v, want registered with the boot recorded", n.State, n.Boot)
	}
}

func TestRecordBoot_ConcurrentFirstBootsCreateOneNode(t *testing.T) {
	ctx := context.Background()
	s, _ := openDiscoveryStore(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.RecordBoot(ctx, discMAC, uefiBoot)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	nodes, _ := s.ListNodes(ctx)
	events, _ := s.Events(ctx, node.DefaultName(discMAC), 0)
	if len(nodes) != 1 || len(events) != 1 {
		t.Errorf("%d nodes and %d events, want 1 and 1", len(nodes), len(events))
	}
}

func TestRecordBoot_ImportingADiscoveredMACKeepsItsBootAndHistory(t *testing.T) {
	ctx := context.Background()
	s, _ := openDiscoveryStore(t)
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
		t.Fatal(err)
	}
	n, err := s.ImportNode(ctx, node.Node{Name: "gpu-1", MACs: []node.MAC{discMAC}, Role: node.RoleServer}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if n.State != node.StateRegistered || n.Boot.Firmware != "uefi" {
		t.Errorf("imported node = %s, Boot %+v", n.State, n.Boot)
	}
	events, _ := s.Events(ctx, "gpu-1", 0)
	if len(events) != 2 || events[0].To != node.StateDiscovered || events[1].To != node.StateRegistered {
		t.Errorf("history = %+v, want discovered then registered", events)
	}
}

func TestRecordBoot_RefusesTheZeroMACAndCancelledContexts(t *testing.T) {
	s, _ := openDiscoveryStore(t)
	if err := s.RecordBoot(context.Background(), node.MAC{}, uefiBoot); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("zero MAC: %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

func BenchmarkRecordBootRepeat(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "bootyard.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendMACEvents_EventsFollowTheMACThroughAnImport(t *testing.T) {
	ctx := context.Background()
	s, clock := openDiscoveryStore(t)
	if err := s.RecordBoot(ctx, discMAC, uefiBoot); err != nil {
		t.Fatal(err)
	}
	// Queued while the machine was still node-…, written after the import renamed it.
	queued := MACEvent{MAC: discMAC, Event: node.NewEvent(node.DefaultName(discMAC), node.EventBoot, "script served", "ipxe", clock.now())}
	if _, err := s.ImportNode(ctx, node.Node{Name: "gpu-1", MACs: []node.MAC{discMAC}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	stranger := MACEvent{MAC: node.MAC{0x52, 0x54, 0, 0, 0, 9}, Event: node.NewEvent("x", node.EventBoot, "lost", "ipxe", clock.now())}
	dropped, err := s.AppendMACEvents(ctx, queued, stranger)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := s.Events(ctx, "gpu-1", 1)
	if dropped != 1 || len(events) != 1 || events[0].Reason != "script served" || events[0].Node != "gpu-1" {
		t.Errorf("dropped %d, last event %+v; want the queued event under gpu-1 and the stranger's dropped", dropped, events)
	}
	if _, err := s.Events(ctx, node.DefaultName(discMAC), 0); err == nil {
		t.Error("events written under the old name")
	}
}

func TestNodeCache_NeverStaleAndVersionChangesWithTheNode(t *testing.T) {
	ctx := context.Background()
	s, _ := openDiscoveryStore(t)
	c := s.NewNodeCache().(*NodeCache)
	if _, _, err := c.NodeByMAC(ctx, discMAC); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("unknown MAC: %v, want ErrNotFound", err)
	}
	if _, err := s.ImportNode(ctx, node.Node{Name: "w1", MACs: []node.MAC{discMAC}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	n1, v1, err := c.NodeByMAC(ctx, discMAC)
	if err != nil || n1.State != node.StateRegistered {
		t.Fatalf("after import: %v %s", err, n1.State)
	}
	if _, v, _ := c.NodeByMAC(ctx, discMAC); v != v1 {
		t.Errorf("unchanged node: version %d → %d", v1, v)
	}
	if _, err := s.UpdateNode(ctx, "w1", func(n *node.Node) ([]node.Event, error) {
		ev, err := n.Transition(node.StateProvisioning, "test", "test", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	n2, v2, _ := c.NodeByMAC(ctx, discMAC)
	if n2.State != node.StateProvisioning || v2 == v1 {
		t.Errorf("after a change: %s version %d (was %d), want provisioning and a new version", n2.State, v2, v1)
	}
	if err := s.RemoveNode(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.NodeByMAC(ctx, discMAC); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("after removal: %v, want ErrNotFound", err)
	}
}
