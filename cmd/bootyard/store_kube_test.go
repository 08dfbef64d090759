package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/node"
)

// TestStoreCommands_PivotIntoKubernetes is the pivot as an operator runs it: export the
// appliance's bbolt store, import into the Kubernetes store (dry run first), export that
// and compare; a second import changes nothing.
func TestStoreCommands_PivotIntoKubernetes(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	st, err := openStoreFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportNode(ctx, node.Node{Name: "s1", Role: node.RoleServer, MACs: []node.MAC{{0x02, 0, 0, 0, 0, 1}}}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetNodeSecret(ctx, "s1", node.BMCPasswordKey, []byte("bmc-secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.0.0.1:6443", node.Secret("join-token-in-clear")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	file := filepath.Join(t.TempDir(), "inventory.jsonl")
	if out, err := runBootyard(t, "", "store", "export", "--data", src, "-o", file); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	exported, _ := os.ReadFile(file)

	api := kubetest.Start(t)
	api.InstallCRDs(t, filepath.Join(kubetest.Root(t), "deploy", "crds"))
	const ns = "pivot"
	if _, err := api.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kube := []string{"--kubeconfig", api.AdminKubeconfig, "--store-namespace", ns}
	out, err := runBootyard(t, "", append([]string{"store", "import", "--to", "kubernetes", "-f", file, "--dry-run"}, kube...)...)
	if err != nil || !strings.Contains(out, "node s1 would be created") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if empty, err := runBootyard(t, "", append([]string{"store", "export", "--from", "kubernetes"}, kube...)...); err != nil || strings.Contains(empty, `"kind":"node"`) {
		t.Fatalf("the dry run wrote nodes: %v\n%s", err, empty)
	}
	for _, want := range []string{"node: 1 created, 0 updated, 0 unchanged, 0 failed", "node: 0 created, 0 updated, 1 unchanged, 0 failed"} {
		out, err := runBootyard(t, "", append([]string{"store", "import", "--to", "kubernetes", "-f", file}, kube...)...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("import: %v\n%s\nwant %q", err, out, want)
		}
	}
	back := filepath.Join(t.TempDir(), "back.jsonl")
	if out, err := runBootyard(t, "", append([]string{"store", "export", "--from", "kubernetes", "-o", back}, kube...)...); err != nil {
		t.Fatalf("export from kubernetes: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(back); string(got) != string(exported) {
		t.Fatalf("the Kubernetes store's export differs from the bbolt store's:\n%s\n---\n%s", got, exported)
	}
	if _, err := runBootyard(t, "", "store", "import", "--to", "kubernetes", "-f", file, "--kubeconfig", "none"); err == nil || !strings.Contains(err.Error(), "--kubeconfig none") {
		t.Fatalf("--kubeconfig none: %v", err)
	}
}
