package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func rowsOf(specs ...node.Node) []ImportRow {
	rows := make([]ImportRow, len(specs))
	for i, n := range specs {
		rows[i] = ImportRow{Line: i + 2, Node: n}
	}
	return rows
}

func outcomes(results []ImportResult) []ImportOutcome {
	var out []ImportOutcome
	for _, r := range results {
		out = append(out, r.Outcome)
	}
	return out
}

func TestImportNodes_OneBadRowImportsNothingAndNamesItsLine(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNode(ctx, workerSpec("taken", coreMAC(99)), "api"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		bad     node.Node
		wantErr error
	}{
		{"invalid name", workerSpec("Not_A_Name", coreMAC(3)), node.ErrInvalid},
		{"MAC of a live node", workerSpec("w3", coreMAC(99)), node.ErrConflict},
		{"name of a live node", workerSpec("taken", coreMAC(3)), node.ErrConflict},
		{"MAC of an earlier row", workerSpec("w3", coreMAC(1)), node.ErrConflict},
		{"name of an earlier row", workerSpec("w1", coreMAC(3)), node.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := rowsOf(workerSpec("w1", coreMAC(1)), workerSpec("w2", coreMAC(2)), tt.bad)
			results, err := s.ImportNodes(ctx, rows, ImportOptions{Source: "test"})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ImportNodes = %v, want %v", err, tt.wantErr)
			}
			want := []ImportOutcome{ImportSkipped, ImportSkipped, ImportFailed}
			if got := outcomes(results); !slices.Equal(got, want) {
				t.Fatalf("outcomes %v, want %v", got, want)
			}
			if results[2].Line != 4 || results[2].Error == "" {
				t.Fatalf("failed row reported as %+v, want line 4 with a reason", results[2])
			}
			if names := nodeNames(t, s); !slices.Equal(names, []string{"taken"}) {
				t.Fatalf("nodes after a refused import: %v", names)
			}
		})
	}
	closeAndCheck(t, s)
}

func TestImportNodes_ContinueOnErrorWritesTheGoodRows(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	rows := rowsOf(workerSpec("w1", coreMAC(1)), workerSpec("w2", coreMAC(1)), workerSpec("w3", coreMAC(3)))
	results, err := s.ImportNodes(ctx, rows, ImportOptions{ContinueOnError: true})
	if !errors.Is(err, node.ErrConflict) {
		t.Fatalf("ImportNodes = %v, want the conflict of line 3 reported", err)
	}
	if got, want := outcomes(results), []ImportOutcome{ImportCreated, ImportFailed, ImportCreated}; !slices.Equal(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if names := nodeNames(t, s); !slices.Equal(names, []string{"w1", "w3"}) {
		t.Fatalf("nodes %v, want [w1 w3]", names)
	}
	closeAndCheck(t, s)
}

func TestImportNodes_SameRowsAgainChangeNothingAndAnEditedRowConflicts(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	rows := rowsOf(inventorySpec(0), inventorySpec(1), inventorySpec(2))
	if _, err := s.ImportNodes(ctx, rows, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	results, err := s.ImportNodes(ctx, rows, ImportOptions{})
	if err != nil {
		t.Fatalf("second import of the same rows: %v", err)
	}
	if got := outcomes(results); !slices.Equal(got, []ImportOutcome{ImportUnchanged, ImportUnchanged, ImportUnchanged}) {
		t.Fatalf("outcomes %v, want all unchanged", got)
	}
	after, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if !before[i].UpdatedAt.Equal(after[i].UpdatedAt) {
			t.Fatalf("node %s was rewritten by an idempotent re-import", after[i].Name)
		}
	}
	edited := inventorySpec(1)
	edited.Labels["rack"] = "r9"
	if _, err := s.ImportNodes(ctx, rowsOf(edited), ImportOptions{}); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("re-import with another label = %v, want ErrConflict", err)
	}
	closeAndCheck(t, s)
}

func TestImportNodes_OnlyTheFirstServerStartsTheClusterAndDiscoveredRecordsAreTakenOver(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if err := s.RecordBoot(ctx, coreMAC(2), node.BootInfo{Firmware: "uefi"}); err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(serverSpec("s2", coreMAC(2)), serverSpec("s1", coreMAC(1)), workerSpec("w1", coreMAC(3)))
	results, err := s.ImportNodes(ctx, rows, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(results); !slices.Equal(got, []ImportOutcome{ImportCreated, ImportCreated, ImportCreated}) {
		t.Fatalf("outcomes %v", got)
	}
	var inits []string
	for _, name := range []string{"s1", "s2"} {
		n, err := s.GetNode(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if n.ClusterInit {
			inits = append(inits, name)
		}
		if name == "s2" && n.Boot.Firmware != "uefi" {
			t.Fatalf("s2 lost what its discovered record knew: %+v", n.Boot)
		}
	}
	if !slices.Equal(inits, []string{"s1"}) {
		t.Fatalf("cluster-init nodes %v, want exactly the first server in name order [s1]", inits)
	}
	if names := nodeNames(t, s); !slices.Equal(names, []string{"s1", "s2", "w1"}) {
		t.Fatalf("nodes %v: the discovered record should have become s2", names)
	}
	closeAndCheck(t, s)
}

func TestImportNodes_DryRunSaysWhatWouldHappenAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	if _, err := s.ImportNodes(ctx, rowsOf(inventorySpec(0)), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(inventorySpec(0), inventorySpec(1), workerSpec("bad", coreMAC(1)))
	for _, tc := range []struct {
		name string
		opts ImportOptions
		want []ImportOutcome
	}{
		{"all or nothing", ImportOptions{DryRun: true}, []ImportOutcome{ImportSkipped, ImportSkipped, ImportFailed}},
		{"continue on error", ImportOptions{DryRun: true, ContinueOnError: true}, []ImportOutcome{ImportUnchanged, ImportCreated, ImportFailed}},
	} {
		results, err := s.ImportNodes(ctx, rows, tc.opts)
		if !errors.Is(err, node.ErrConflict) {
			t.Fatalf("%s: %v, want the conflict of line 4", tc.name, err)
		}
		if got := outcomes(results); !slices.Equal(got, tc.want) {
			t.Fatalf("%s: outcomes %v, want %v", tc.name, got, tc.want)
		}
	}
	if names := nodeNames(t, s); !slices.Equal(names, []string{inventorySpec(0).Name}) {
		t.Fatalf("a dry run wrote: %v", names)
	}
	closeAndCheck(t, s)
}
