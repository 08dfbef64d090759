package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// inProcessCLI runs the CLI's commands in this process against a real API server over a
// real store, so the import and list commands are tested end to end without building the
// binary.
func inProcessCLI(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	cli, _ := inProcessCLIStore(t)
	return cli
}

// inProcessCLIStore is inProcessCLI with the store behind the API, for a test to set what
// no command can (an inspection).
func inProcessCLIStore(t *testing.T) (func(args ...string) (string, error), *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const token = "cli-bulk-test-token-0123456789"
	srv, err := web.New(web.Config{AdminToken: token, Logger: slog.New(slog.DiscardHandler)}, web.Deps{Inventory: st})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCommand(&out, &out)
		root.SetArgs(append([]string{"--server", ts.URL, "--admin-token", token, "--data-dir", t.TempDir()}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}, st
}

func TestNodeImportFile_ReportsBadLinesAndImportsNothingThenEverything(t *testing.T) {
	cli := inProcessCLI(t)
	dir := t.TempDir()
	var good strings.Builder
	good.WriteString("mac,name,role,ip,labels\n")
	for i := range 30 {
		fmt.Fprintf(&good, "52:54:00:07:01:%02x,r7-%02d,worker,10.7.1.%d/24,rack=r%d\n", i, i, i+1, 7+i%2)
	}
	bad := good.String() + "52:54:00:07:01:ff,r7-bad,chef,,\nnot-a-mac,r7-bad2,worker,,\n"
	badFile, goodFile := filepath.Join(dir, "bad.csv"), filepath.Join(dir, "rack7.csv")
	for f, s := range map[string]string{badFile: bad, goodFile: good.String()} {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cli("node", "import", "-f", badFile)
	if err == nil || !strings.Contains(out, "line 32: role \"chef\"") || !strings.Contains(out, "line 33: mac") || !strings.Contains(out, "imported nothing") {
		t.Fatalf("bad file: err=%v\n%s", err, out)
	}
	if out, _ := cli("node", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("nodes after a refused import: %s", out)
	}
	if out, err := cli("node", "import", "-f", goodFile); err != nil || !strings.Contains(out, "30 created") {
		t.Fatalf("good file: %v\n%s", err, out)
	}
	if out, err := cli("node", "import", "-f", goodFile); err != nil || !strings.Contains(out, "30 unchanged") {
		t.Fatalf("the same file again: %v\n%s", err, out)
	}

	// node list walks every page (pages of 4 here) and filters by selector and state.
	var listed []node.Node
	out, err = cli("node", "list", "-o", "json", "--chunk-size", "4", "-l", "rack=r7")
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 15 {
		t.Fatalf("list -l rack=r7: %v, %d nodes\n%s", err, len(listed), out)
	}
	for i := 1; i < len(listed); i++ {
		if listed[i-1].Name >= listed[i].Name || listed[i].Labels["rack"] != "r7" {
			t.Fatalf("list out of order or unfiltered at %d: %s, %s", i, listed[i-1].Name, listed[i].Name)
		}
	}
	out, err = cli("node", "list", "--limit", "5", "--chunk-size", "2", "--state", "registered")
	if err != nil || strings.Count(out, "r7-") != 5 || !strings.Contains(out, "10.7.1.1/24") {
		t.Fatalf("list --limit 5: %v\n%s", err, out)
	}
	if out, err := cli("node", "list", "-l", "rack in (r7"); err == nil || !strings.Contains(out+err.Error(), "HTTP 422") {
		t.Fatalf("a bad selector: %v\n%s", err, out)
	}
}
