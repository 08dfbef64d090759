package pivot

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/pivot/pivottest"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/scaletest"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{LockTimeout: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func export(t *testing.T, s *store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Export(context.Background(), s, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPivot_TenThousandNodesExportImportExportIsIdentical(t *testing.T) {
	ctx := context.Background()
	n := scaletest.Nodes(t, 10000)
	src := openStore(t)
	pivottest.Seed(t, src, n)

	start := time.Now()
	first := export(t, src)
	exportTook := time.Since(start)

	dst := openStore(t)
	start = time.Now()
	rep, err := Import(ctx, dst, bytes.NewReader(first), Options{})
	importTook := time.Since(start)
	if err != nil {
		t.Fatalf("import: %v (%+v)", err, rep.Failures)
	}
	nodes := n + 100
	if got := rep.Counts[store.RecordNode][store.ImportCreated]; got != nodes {
		t.Fatalf("created %d nodes, want %d", got, nodes)
	}
	second := export(t, dst)
	if !bytes.Equal(first, second) {
		t.Fatalf("the target's export differs from the source's: %s", pivottest.FirstDiff(first, second))
	}
	t.Logf("pivot of %d nodes (+100 discovered, 1001 leases): export %d MiB in %v, import in %v (%.0f records/s)",
		n, len(first)>>20, exportTook.Round(time.Millisecond), importTook.Round(time.Millisecond),
		float64(len(rep.Changes))/importTook.Seconds())

	// The same file again: nothing changes, no event is added twice.
	again, err := Import(ctx, dst, bytes.NewReader(first), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes) != 0 || again.Counts[store.RecordNode][store.ImportUnchanged] != nodes {
		t.Fatalf("second import changed %d records (first: %+v), want none", len(again.Changes), again.Changes[:min(3, len(again.Changes))])
	}
	if third := export(t, dst); !bytes.Equal(first, third) {
		t.Fatalf("export after a second import differs: %s", pivottest.FirstDiff(first, third))
	}
	// The secrets made it (the export holds them in clear; this checks the target uses them).
	c, err := dst.ClusterSettings(ctx)
	if err != nil || c.Token.Reveal() != "K10join::server:s3cr3t" || c.InstallEnv["HTTPS_PROXY"] != "http://u:pw@proxy:3128" {
		t.Fatalf("settings in the target: token %q env %v, %v", c.Token.Reveal(), c.InstallEnv, err)
	}
	if pw, err := dst.NodeSecret(ctx, "n00025", node.BMCPasswordKey); err != nil || string(pw) != "bmc-pw-25" {
		t.Fatalf("n00025's BMC password in the target: %q, %v", pw, err)
	}
}

func TestImport_DryRunSaysWhatWouldChangeAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	pivottest.Seed(t, src, 20)
	file := export(t, src)
	dst := openStore(t)
	empty := export(t, dst)

	rep, err := Import(ctx, dst, bytes.NewReader(file), Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Counts[store.RecordNode][store.ImportCreated]; got != 120 {
		t.Fatalf("dry run would create %d nodes, want 120", got)
	}
	if after := export(t, dst); !bytes.Equal(after, empty) {
		t.Fatalf("a dry run wrote to the store: %s", pivottest.FirstDiff(empty, after))
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node n00000 would be created", "lease 10.1.0.0 would be created", "node: 120 would be created, 0 would be updated, 0 unchanged, 0 failed"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("dry-run report lacks %q:\n%s", want, text.String())
		}
	}
}

func TestImport_BadInput(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	pivottest.Seed(t, src, 5)
	file := export(t, src)
	lines := strings.SplitAfter(string(file), "\n")

	tests := []struct {
		name        string
		input       string
		wantErr     error
		wantNodes   int // nodes in the target afterwards
		wantFailure int // line of the reported failure, 0 for none
	}{
		{"empty file", "", node.ErrInvalid, 0, 0},
		{"no header", strings.Join(lines[1:], ""), node.ErrInvalid, 0, 0},
		{"a newer format version", strings.Replace(lines[0], `"version":1`, `"version":2`, 1) + strings.Join(lines[1:], ""), node.ErrInvalid, 0, 0},
		{"a damaged line among good ones", lines[0] + lines[1] + "{\"kind\":\"node\",\"node\":{\n" + strings.Join(lines[2:], ""), ErrRecordsFailed, 105, 3},
		{"a second header", lines[0] + lines[0] + strings.Join(lines[1:], ""), ErrRecordsFailed, 105, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := openStore(t)
			rep, err := Import(ctx, dst, strings.NewReader(tt.input), Options{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Import = %v, want %v", err, tt.wantErr)
			}
			if got, _ := dst.ListNodes(ctx); len(got) != tt.wantNodes {
				t.Fatalf("%d nodes in the target, want %d", len(got), tt.wantNodes)
			}
			if tt.wantFailure != 0 && (len(rep.Failures) != 1 || rep.Failures[0].Line != tt.wantFailure) {
				t.Fatalf("failures %+v, want one at line %d", rep.Failures, tt.wantFailure)
			}
		})
	}
}
