package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func runBootyard(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand(&out, &out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestStoreCommands_ExportImportRoundTripWithDryRun(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	st, err := openStoreFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"s1", "w1", "w2"} {
		role := node.RoleWorker
		if i == 0 {
			role = node.RoleServer
		}
		if _, err := st.ImportNode(ctx, node.Node{Name: name, Role: role, MACs: []node.MAC{{0x02, 0, 0, 0, 0, byte(i + 1)}}}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.0.0.1:6443", node.Secret("join-token-in-clear")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	file := filepath.Join(t.TempDir(), "inventory.jsonl")
	if out, err := runBootyard(t, "", "store", "export", "--data", src, "-o", file); err != nil || !strings.Contains(out, "exported 1 settings, 0 images, 3 nodes, 0 leases") {
		t.Fatalf("export: %v\n%s", err, out)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file mode %v (%v), want 0600: it holds the join token", fi.Mode().Perm(), err)
	}
	exported, _ := os.ReadFile(file)
	if !bytes.Contains(exported, []byte("join-token-in-clear")) {
		t.Fatal("the export lacks the join token: the target could not join nodes")
	}

	out, err := runBootyard(t, "", "store", "import", "--data", dst, "-f", file, "--dry-run")
	if err != nil || !strings.Contains(out, "node w2 would be created") || !strings.Contains(out, "node: 3 would be created") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	empty, err := runBootyard(t, "", "store", "export", "--data", dst)
	if err != nil || strings.Contains(empty, `"kind":"node"`) {
		t.Fatalf("the dry run wrote nodes: %v\n%s", err, empty)
	}

	for _, want := range []string{"node: 3 created, 0 updated, 0 unchanged, 0 failed", "node: 0 created, 0 updated, 3 unchanged, 0 failed"} {
		out, err := runBootyard(t, string(exported), "store", "import", "--data", dst)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("import from standard input: %v\n%s\nwant %q", err, out, want)
		}
	}
	again, err := runBootyard(t, "", "store", "export", "--data", dst)
	if err != nil {
		t.Fatal(err)
	}
	// The command's own summary line goes to the same buffer here: compare the records.
	if got := again[:strings.LastIndex(again, "exported ")]; got != string(exported) {
		t.Fatalf("the target's export differs from the source's:\n%s\n---\n%s", got, exported)
	}
}

func TestStoreCommands_RefuseAStoreAServerHolds(t *testing.T) {
	data := t.TempDir()
	st, err := store.Open(filepath.Join(data, "bootyard.db"), store.Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, args := range [][]string{{"store", "export", "--data", data}, {"store", "import", "--data", data, "--dry-run"}} {
		if _, err := runBootyard(t, "", args...); !errors.Is(err, store.ErrLocked) {
			t.Errorf("%v while the store is open elsewhere: %v, want ErrLocked", args, err)
		}
	}
}
