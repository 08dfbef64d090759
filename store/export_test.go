package store

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// exportAll collects a store's records.
func exportAll(t *testing.T, s *Store) []Record {
	t.Helper()
	var out []Record
	if err := s.ExportRecords(context.Background(), func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("export: %v", err)
	}
	return out
}

// seedPivotSource is a small inventory with one of everything an export carries.
func seedPivotSource(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.0.0.1:6443", node.Secret("K10secret::server:abc")
		c.InstallEnv = map[string]string{"INSTALL_LLMOS_VERSION": "v1.2.3", "HTTPS_PROXY": "http://user:pw@proxy:3128"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdminPasswordHash(ctx, []byte("$2a$10$hashhashhash")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddImage(ctx, Image{Name: "llmos", Kind: ImageInstaller, Kernel: "/srv/vmlinuz", Initrd: "/srv/initrd"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportNode(ctx, serverSpec("s1", coreMAC(1)), "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateNode(ctx, "s1", func(n *node.Node) ([]node.Event, error) {
		ev, err := n.Transition(node.StateProvisioning, "script served", "ipxe", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNodeSecret(ctx, "s1", node.BMCPasswordKey, []byte("bmc-pw")); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordBoot(ctx, coreMAC(2), node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLeases(ctx, Lease{IP: netip.MustParseAddr("10.0.0.50"), MAC: coreMAC(2), State: LeaseActive, Expires: time.Now().Add(time.Hour).UTC(), Hostname: "pxe"},
		Lease{IP: netip.MustParseAddr("10.0.0.51"), State: LeaseDeclined, Expires: time.Now().Add(time.Minute).UTC()}); err != nil {
		t.Fatal(err)
	}
}

func TestImportRecord_OutcomesAndIdempotence(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, tempStorePath(t))
	seedPivotSource(t, src)
	recs := exportAll(t, src)
	dst := openTestStore(t, tempStorePath(t))

	tests := []struct {
		name   string
		dryRun bool
		want   ImportOutcome
	}{
		{"dry run into an empty store says created", true, ImportCreated},
		{"import creates", false, ImportCreated},
		{"the same records again change nothing", false, ImportUnchanged},
		{"a dry run of them says unchanged", true, ImportUnchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range recs[1:] {
				got, err := dst.ImportRecord(ctx, r, tt.dryRun)
				if err != nil {
					t.Fatalf("import %s %s: %v", r.Kind, r.Name(), err)
				}
				if got != tt.want {
					t.Errorf("import %s %s = %s, want %s", r.Kind, r.Name(), got, tt.want)
				}
			}
		})
	}
	// The target now holds what the source holds: secrets, states, history, leases.
	c, err := dst.ClusterSettings(ctx)
	if err != nil || c.Token.Reveal() != "K10secret::server:abc" || c.InstallEnv["HTTPS_PROXY"] != "http://user:pw@proxy:3128" || c.DefaultImage != "llmos" {
		t.Fatalf("settings after import: %+v (token %q), %v", c, c.Token.Reveal(), err)
	}
	if h, _ := dst.AdminPasswordHash(ctx); string(h) != "$2a$10$hashhashhash" {
		t.Fatalf("admin password hash after import: %q", h)
	}
	n, err := dst.NodeByMAC(ctx, coreMAC(1))
	if err != nil || n.State != node.StateProvisioning || !n.ClusterInit {
		t.Fatalf("s1 after import: %+v, %v", n, err)
	}
	if pw, err := dst.NodeSecret(ctx, "s1", node.BMCPasswordKey); err != nil || string(pw) != "bmc-pw" {
		t.Fatalf("s1's BMC password after import: %q, %v", pw, err)
	}
	evs, _ := dst.Events(ctx, "s1", 0)
	if len(evs) != 2 {
		t.Fatalf("s1 history after two imports: %d events, want 2 (no duplicates)", len(evs))
	}
	if mac, err := dst.MACForIP(ctx, netip.MustParseAddr("10.0.0.50")); err != nil || mac != coreMAC(2) {
		t.Fatalf("lease after import: %s, %v", mac, err)
	}
	// The history continues from the imported numbers.
	if err := dst.AppendEvents(ctx, node.NewEvent("s1", node.EventLog, "after the pivot", "agent", time.Now())); err != nil {
		t.Fatal(err)
	}
	evs, _ = dst.Events(ctx, "s1", 0)
	if evs[2].Seq != evs[1].Seq+1 {
		t.Fatalf("event after the pivot has seq %d, want %d", evs[2].Seq, evs[1].Seq+1)
	}
	closeAndCheck(t, dst)
}

func TestImportRecord_NodeSecretsAreReplacedWithTheNode(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, tempStorePath(t))
	seedPivotSource(t, src)
	var rec Record
	for _, r := range exportAll(t, src) {
		if r.Kind == RecordNode && r.Node.Name == "s1" {
			rec = r
		}
	}
	if got := string(rec.Secrets[node.BMCPasswordKey]); got != "bmc-pw" {
		t.Fatalf("the export of s1 carries secrets %v, want its BMC password", rec.Secrets)
	}
	dst := openTestStore(t, tempStorePath(t))
	if out, err := dst.ImportRecord(ctx, rec, false); err != nil || out != ImportCreated {
		t.Fatalf("first import: %s, %v", out, err)
	}
	// A key the target has and the record lacks goes: the record is the node's whole set.
	if err := dst.SetNodeSecret(ctx, "s1", "stale", []byte("x")); err != nil {
		t.Fatal(err)
	}
	changed := rec
	changed.Secrets = map[string][]byte{node.BMCPasswordKey: []byte("rotated")}
	tests := []struct {
		name   string
		rec    Record
		dryRun bool
		want   ImportOutcome
		wantPw string
	}{
		{"a dry run of another password says updated and writes nothing", changed, true, ImportUpdated, "bmc-pw"},
		{"another password replaces the set", changed, false, ImportUpdated, "rotated"},
		{"the same again is unchanged", changed, false, ImportUnchanged, "rotated"},
		{"the original set comes back", rec, false, ImportUpdated, "bmc-pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := dst.ImportRecord(ctx, tt.rec, tt.dryRun)
			if err != nil || out != tt.want {
				t.Fatalf("import = %s, %v; want %s", out, err, tt.want)
			}
			got, err := dst.NodeSecrets(ctx, "s1")
			if err != nil || string(got[node.BMCPasswordKey]) != tt.wantPw {
				t.Fatalf("secrets %q, %v; want password %q", got, err, tt.wantPw)
			}
			if _, ok := got["stale"]; ok && !tt.dryRun {
				t.Fatalf("a key the record lacks survived its import: %q", got)
			}
		})
	}
	bad := rec
	bad.Secrets = map[string][]byte{"empty": nil}
	if _, err := dst.ImportRecord(ctx, bad, false); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("a secret with an empty value: %v, want ErrInvalid", err)
	}
}

func TestImportRecord_ChangedNodeIsReplacedWithItsHistory(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, tempStorePath(t))
	seedPivotSource(t, src)
	dst := openTestStore(t, tempStorePath(t))
	for _, r := range exportAll(t, src)[1:] {
		if _, err := dst.ImportRecord(ctx, r, false); err != nil {
			t.Fatal(err)
		}
	}
	// The source moves on after a first import; the second import brings the change.
	if _, err := src.UpdateNode(ctx, "s1", func(n *node.Node) ([]node.Event, error) {
		n.Labels = map[string]string{"rack": "r7"}
		ev, err := n.Transition(node.StateInstalled, "agent done", "agent", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	var s1 Record
	for _, r := range exportAll(t, src) {
		if r.Kind == RecordNode && r.Node.Name == "s1" {
			s1 = r
		}
	}
	if got, err := dst.ImportRecord(ctx, s1, false); err != nil || got != ImportUpdated {
		t.Fatalf("import of the changed node = %s, %v; want updated", got, err)
	}
	n, _ := dst.GetNode(ctx, "s1")
	evs, _ := dst.Events(ctx, "s1", 0)
	if n.State != node.StateInstalled || n.Labels["rack"] != "r7" || len(evs) != 3 {
		t.Fatalf("s1 after the update: state %s labels %v, %d events; want installed, rack r7, 3", n.State, n.Labels, len(evs))
	}
	for _, st := range []node.State{node.StateInstalled, node.StateProvisioning} {
		page, err := dst.QueryNodes(ctx, NodeQuery{State: st})
		if want := map[node.State]int{node.StateInstalled: 1}[st]; err != nil || page.Total != want {
			t.Fatalf("state index after the update lists %d %s nodes (%v), want %d", page.Total, st, err, want)
		}
	}
	closeAndCheck(t, dst)
}

func TestImportRecord_BadOrConflictingRecordWritesNothing(t *testing.T) {
	ctx := context.Background()
	dst := openTestStore(t, tempStorePath(t))
	if _, err := dst.ImportNode(ctx, workerSpec("owner", coreMAC(9)), "test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	thief := node.Node{Name: "thief", MACs: []node.MAC{coreMAC(9)}, Role: node.RoleWorker, State: node.StateRegistered, StateSince: now, CreatedAt: now, UpdatedAt: now}
	good := thief
	good.Name, good.MACs = "good", []node.MAC{coreMAC(10)}
	tests := []struct {
		name string
		rec  Record
		want error
	}{
		{"a MAC another node owns", Record{Kind: RecordNode, Node: &thief}, node.ErrConflict},
		{"an invalid node", Record{Kind: RecordNode, Node: &node.Node{Name: "Bad_Name"}}, node.ErrInvalid},
		{"events of another node", Record{Kind: RecordNode, Node: &good, Events: []node.Event{{Seq: 1, Node: "owner", Type: node.EventLog}}}, node.ErrInvalid},
		{"events out of order", Record{Kind: RecordNode, Node: &good, Events: []node.Event{{Seq: 2, Node: "good"}, {Seq: 1, Node: "good"}}}, node.ErrInvalid},
		{"an unknown lease state", Record{Kind: RecordLease, Lease: &LeaseRecord{IP: netip.MustParseAddr("10.0.0.9"), State: "stolen"}}, node.ErrInvalid},
		{"a kind this build does not know", Record{Kind: "bmc", Node: &good}, node.ErrInvalid},
		{"two parts in one record", Record{Kind: RecordNode, Node: &good, Image: &Image{Name: "x"}}, node.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := dst.ImportRecord(ctx, tt.rec, false)
			if !errors.Is(err, tt.want) || out != ImportFailed {
				t.Fatalf("ImportRecord = %s, %v; want failed, %v", out, err, tt.want)
			}
		})
	}
	if names := nodeNames(t, dst); len(names) != 1 || names[0] != "owner" {
		t.Fatalf("nodes after refused records: %v, want only owner", names)
	}
	if ls, _ := dst.Leases(ctx); len(ls) != 0 {
		t.Fatalf("leases after a refused record: %v", ls)
	}
	closeAndCheck(t, dst)
}
