package kubestore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/pivot"
	"github.com/bootyard/bootyard/pivot/pivottest"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/scaletest"
)

// pivotNodes is the size of the pivot test: small by default, the 10,000 with
// BOOTYARD_PIVOT_NODES=10000 (the README's figure).
func pivotNodes(t *testing.T) int {
	v := os.Getenv("BOOTYARD_PIVOT_NODES")
	if v == "" {
		return 60
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 {
		t.Fatalf("BOOTYARD_PIVOT_NODES=%q: want a number of at least 10", v)
	}
	return n
}

// childrenCPU is the user and system CPU the running child processes of this test (the
// kube-apiserver and etcd) have used, from /proc: getrusage counts only children that
// have exited.
func childrenCPU(t *testing.T) time.Duration {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	var ticks int64
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // not a process, or gone
		}
		// After the command's ")": state, ppid, ... utime (11th), stime (12th).
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 || f[1] != self {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += utime + stime
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

func exportOf(t *testing.T, src pivot.Exporter) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := pivot.Export(context.Background(), src, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPivot_BboltIntoKubernetesExportsIdentically moves a bbolt inventory (nodes in
// several states with a deletion half done, discovered machines, histories, images,
// settings with the join token, leases, BMC passwords) into the Kubernetes store: the
// target's export is byte-identical to the source's, and the same file again changes
// nothing.
func TestPivot_BboltIntoKubernetesExportsIdentically(t *testing.T) {
	ctx := context.Background()
	n := pivotNodes(t)
	src, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pivottest.Seed(t, src, n)
	file := exportOf(t, src)

	api := startAPI(t)
	dst := openIn(t, api, "pivot", store.Limits{})
	empty := exportOf(t, dst)
	reqs := api.Requests(t)
	dry, err := pivot.Import(ctx, dst, bytes.NewReader(file), pivot.Options{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v (%+v)", err, dry.Failures)
	}
	if w := writesSince(t, api, reqs); len(w) != 0 {
		t.Fatalf("the dry run wrote: %s", kubetest.FormatRequests(w))
	}
	nodes := n + 100 // the seed's discovered machines
	if got := dry.Counts[store.RecordNode][store.ImportCreated]; got != nodes {
		t.Fatalf("the dry run would create %d nodes, want %d", got, nodes)
	}
	if after := exportOf(t, dst); !bytes.Equal(after, empty) {
		t.Fatalf("a dry run wrote to the store: %s", pivottest.FirstDiff(empty, after))
	}

	reqs = api.Requests(t)
	start, cpu, apiCPU := time.Now(), scaletest.CPU(), childrenCPU(t)
	rep, err := pivot.Import(ctx, dst, bytes.NewReader(file), pivot.Options{})
	took, cpu, apiCPU := time.Since(start), scaletest.CPU()-cpu, childrenCPU(t)-apiCPU
	if err != nil {
		t.Fatalf("import: %v (%+v)", err, rep.Failures)
	}
	writes := writesSince(t, api, reqs)
	checkPivotWrites(t, file, writes)
	if got := rep.Counts[store.RecordNode][store.ImportCreated]; got != nodes {
		t.Fatalf("created %d nodes, want %d", got, nodes)
	}
	second := exportOf(t, dst)
	if !bytes.Equal(file, second) {
		t.Fatalf("the Kubernetes store's export differs from the bbolt store's: %s", pivottest.FirstDiff(file, second))
	}
	// On a shared machine the CPU spent says more than the wall clock: the importer's, and
	// the API server's and etcd's (this test's child processes).
	total := 0
	for _, c := range writes {
		total += c
	}
	t.Logf("pivot of %d nodes (+100 discovered) into the Kubernetes store: %d records in %v (%.0f records/s); %d writes (%s); CPU: importer %v, kube-apiserver+etcd %v (%.2f ms a write)",
		n, len(rep.Changes), took.Round(time.Millisecond), float64(len(rep.Changes))/took.Seconds(), total, kubetest.FormatRequests(writes),
		cpu.Round(time.Millisecond), apiCPU.Round(time.Millisecond), float64(apiCPU.Microseconds())/1000/float64(max(total, 1)))

	// A second store on the same namespace (a fresh CLI run): the same file changes nothing.
	again := openIn(t, api, "pivot", store.Limits{})
	reqs = api.Requests(t)
	rep, err = pivot.Import(ctx, again, bytes.NewReader(file), pivot.Options{})
	if err != nil {
		t.Fatalf("second import: %v (%+v)", err, rep.Failures)
	}
	if w := writesSince(t, api, reqs); len(w) != 0 {
		t.Fatalf("the second import wrote: %s", kubetest.FormatRequests(w))
	}
	if len(rep.Changes) != 0 || rep.Counts[store.RecordNode][store.ImportUnchanged] != nodes {
		t.Fatalf("the second import changed %d records (first: %+v), want none", len(rep.Changes), rep.Changes[:min(3, len(rep.Changes))])
	}
	if third := exportOf(t, again); !bytes.Equal(file, third) {
		t.Fatalf("export after a second import differs: %s", pivottest.FirstDiff(file, third))
	}

	// The target uses what it got: the join token, a BMC password, the history's numbers.
	c, err := dst.ClusterSettings(ctx)
	if err != nil || c.Token.Reveal() != "K10join::server:s3cr3t" {
		t.Fatalf("settings in the target: token %q, %v", c.Token.Reveal(), err)
	}
	if pw, err := dst.NodeSecret(ctx, "n00025", node.BMCPasswordKey); err != nil || string(pw) != "bmc-pw-25" {
		t.Fatalf("n00025's BMC password in the target: %q, %v", pw, err)
	}
	before, err := dst.Events(ctx, "n00000", 0)
	if err != nil || len(before) == 0 {
		t.Fatalf("n00000's history: %v, %v", before, err)
	}
	if err := dst.AppendEvents(ctx, node.NewEvent("n00000", node.EventLog, "after the pivot", "agent", time.Now().UTC())); err != nil {
		t.Fatal(err)
	}
	after, _ := dst.Events(ctx, "n00000", 0)
	if len(after) != len(before)+1 || after[len(after)-1].Seq <= before[len(before)-1].Seq || after[len(after)-1].Reason != "after the pivot" {
		t.Fatalf("the history after the pivot: %+v", after[max(0, len(after)-3):])
	}
}

// writesSince is the store's writes (bootyard.io objects and Secrets) the API server
// served since before (a Requests snapshot); the API server's own upkeep (its Lease,
// endpoints) is not counted.
func writesSince(t *testing.T, api *kubetest.API, before map[kubetest.RequestKey]int) map[kubetest.RequestKey]int {
	t.Helper()
	out := map[kubetest.RequestKey]int{}
	for k, n := range kubetest.RequestsSince(before, api.Requests(t)) {
		if k.IsWrite() && (k.Group == "bootyard.io" || k.Group == "" && k.Resource == "secrets") {
			out[k] = n
		}
	}
	return out
}

// checkPivotWrites bounds what an import of file into an empty namespace may cost: the
// API server's CPU goes per request, so each write the model does not need is time. A
// node is its object and its status (a create drops the status of a resource with a
// status subresource), each event one object, each node's secrets one Secret; nothing
// else of a node is written, and no spec is written twice.
func checkPivotWrites(t *testing.T, file []byte, writes map[kubetest.RequestKey]int) {
	t.Helper()
	var nodes, events, nodeSecrets int
	for _, line := range bytes.Split(bytes.TrimSpace(file), []byte("\n"))[1:] {
		var rec store.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind != store.RecordNode {
			continue
		}
		nodes++
		events += len(rec.Events)
		if len(rec.Secrets) > 0 {
			nodeSecrets++
		}
	}
	key := func(verb, resource, sub string) kubetest.RequestKey {
		return kubetest.RequestKey{Verb: verb, Group: "bootyard.io", Resource: resource, Subresource: sub}
	}
	for _, tt := range []struct {
		what string
		key  kubetest.RequestKey
		want int
	}{
		{"node creates", key("POST", "bootyardnodes", ""), nodes},
		{"node status writes", key("PUT", "bootyardnodes", "status"), nodes},
		{"node spec rewrites", key("PUT", "bootyardnodes", ""), 0},
		{"node patches", key("PATCH", "bootyardnodes", ""), 0},
		{"event creates", key("POST", "bootyardevents", ""), events},
		{"event rewrites", key("PUT", "bootyardevents", ""), 0},
		{"event deletions", key("DELETE", "bootyardevents", ""), 0},
	} {
		if got := writes[tt.key]; got != tt.want {
			t.Errorf("%s: %d, want %d (%s)", tt.what, got, tt.want, tt.key)
		}
	}
	// The settings' two Secrets (join token, admin password hash) besides the nodes'.
	secrets := kubetest.RequestKey{Verb: "POST", Resource: "secrets"}
	if got := writes[secrets]; got > nodeSecrets+2 {
		t.Errorf("secret creates: %d, want at most %d", got, nodeSecrets+2)
	}
}

// TestImportRecord_KubernetesRefusesWhatItCannotHoldAndWritesNothing: a node record whose
// MAC another node owns, or whose history the store cannot number, fails alone and
// leaves the store as it was.
func TestImportRecord_KubernetesRefusesWhatItCannotHoldAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	api := startAPI(t)
	s := openIn(t, api, "refuse", store.Limits{})
	owner := node.Node{Name: "owner", Role: node.RoleWorker, MACs: []node.MAC{pivottest.MAC(1)}}
	if _, err := s.ImportNode(ctx, owner, "test"); err != nil {
		t.Fatal(err)
	}
	before := exportOf(t, s)
	now := time.Now().UTC()
	record := func(name string, mac node.MAC, seq uint64) store.Record {
		n := node.Node{Name: name, Role: node.RoleWorker, MACs: []node.MAC{mac}, State: node.StateRegistered, StateSince: now, CreatedAt: now, UpdatedAt: now}
		return store.Record{Kind: store.RecordNode, Node: &n, Events: []node.Event{{Seq: seq, Time: now, Node: name, Type: node.EventTransition, To: node.StateRegistered, Reason: "imported"}},
			Secrets: map[string][]byte{node.BMCPasswordKey: []byte("pw")}}
	}
	tests := []struct {
		name    string
		rec     store.Record
		wantErr error
	}{
		{"a MAC another node owns", record("thief", pivottest.MAC(1), 1), node.ErrConflict},
		{"a sequence number past int64", record("far", pivottest.MAC(2), 1<<63), node.ErrInvalid},
		{"a secret without a value", func() store.Record { r := record("empty", pivottest.MAC(3), 1); r.Secrets["k"] = nil; return r }(), node.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dryRun := range []bool{true, false} {
				out, err := s.ImportRecord(ctx, tt.rec, dryRun)
				if !errors.Is(err, tt.wantErr) || out != store.ImportFailed {
					t.Fatalf("dry run %v: %s, %v; want failed, %v", dryRun, out, err, tt.wantErr)
				}
			}
			if after := exportOf(t, s); !bytes.Equal(before, after) {
				t.Fatalf("a refused record changed the store: %s", pivottest.FirstDiff(before, after))
			}
		})
	}
}
