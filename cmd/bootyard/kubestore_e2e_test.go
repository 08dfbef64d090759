package main

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/internal/kubetest"
)

// TestServe_KubernetesStoreKeepsTheInventoryOnTheAPI runs `serve --store kubernetes`
// against a real API server: what the CLI imports is a BootyardNode, and a second server
// with an empty data directory (another replica) serves the same inventory.
func TestServe_KubernetesStoreKeepsTheInventoryOnTheAPI(t *testing.T) {
	api := kubetest.Start(t)
	ctx := context.Background()
	const ns = "inventory"
	if _, err := api.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	args := []string{"--store", "kubernetes", "--store-namespace", ns, "--kubeconfig", api.AdminKubeconfig}
	// Before the CRDs are installed, serve stops at once and says so.
	noCRDs := exec.Command(bin, append([]string{"serve", "--data", t.TempDir(), "--listen", freePort(t)}, args...)...)
	if out, err := noCRDs.CombinedOutput(); err == nil || !strings.Contains(string(out), "deploy/crds") {
		t.Errorf("serve without the CRDs: %v\n%s", err, out)
	}
	api.InstallCRDs(t, filepath.Join(kubetest.Root(t), "deploy", "crds"))
	cli := func(addr, data string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--server", "http://" + addr, "--data-dir", data}, args...)...)
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	dataA, addrA := t.TempDir(), freePort(t)
	startServer(t, bin, dataA, addrA, args...)
	if out, err := cli(addrA, dataA, "node", "import", "52:54:00:12:34:56", "--role", "server", "--name", "cp-1"); err != nil || !strings.Contains(out, "cluster-init") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := cli(addrA, dataA, "cluster", "set", "--server-url", "https://10.20.0.10:6443", "--token", "K10x::server:e2e-secret"); err != nil {
		t.Fatalf("cluster set: %v\n%s", err, out)
	}
	raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/apis/bootyard.io/v1alpha1/namespaces", ns, "bootyardnodes", "cp-1").DoRaw(ctx)
	if err != nil || !strings.Contains(string(raw), "52:54:00:12:34:56") || !strings.Contains(string(raw), `"registered"`) {
		t.Fatalf("the import is not a BootyardNode: %v\n%s", err, raw)
	}
	if _, err := os.Stat(filepath.Join(dataA, "bootyard.db")); !os.IsNotExist(err) {
		t.Errorf("serve --store kubernetes wrote a bbolt file: %v", err)
	}

	dataB, addrB := t.TempDir(), freePort(t)
	startServer(t, bin, dataB, addrB, args...)
	out, err := cli(addrB, dataB, "node", "show", "cp-1")
	if err != nil || !strings.Contains(out, "registered") || !strings.Contains(out, "52:54:00:12:34:56") {
		t.Errorf("the second replica does not serve the node: %v\n%s", err, out)
	}
	if out, err := cli(addrB, dataB, "cluster", "show"); err != nil || !strings.Contains(out, "https://10.20.0.10:6443") {
		t.Errorf("the second replica does not serve the settings: %v\n%s", err, out)
	}

	t.Run("ReplicasShareOneServerJoinTurn", func(t *testing.T) { testReplicasShareOneJoinTurn(t, api.AdminKubeconfig, ns) })

	cmd := exec.Command(bin, "serve", "--data", t.TempDir(), "--listen", freePort(t), "--store", "etcd")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `--store "etcd"`) {
		t.Errorf("an unknown store: %v\n%s", err, out)
	}
}

// testReplicasShareOneJoinTurn opens the store as serve does (openStore) twice on one
// API server, as two replicas: the join queue that comes with the Kubernetes store is the
// one on the API server, so a server granted its turn by one replica makes the other
// answer "wait"; beside bbolt each appliance keeps its own queue. With an in-memory queue
// wired beside the Kubernetes store, both servers would go at once.
func testReplicasShareOneJoinTurn(t *testing.T, kubeconfig, ns string) {
	ctx := t.Context()
	open := func(backend string) joinTurns {
		o := &serveOptions{dataDir: t.TempDir(), store: storeOptions{backend: backend, namespace: ns}}
		o.cluster.kubeconfig = kubeconfig
		st, turns, err := o.openStore(ctx, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatalf("open the %s store: %v", backend, err)
		}
		t.Cleanup(func() { st.Close() })
		return turns
	}
	take := func(turns joinTurns, name string) (bool, string) {
		t.Helper()
		ok, holder, err := turns.Take(ctx, name, time.Hour)
		if err != nil {
			t.Fatalf("%s takes a turn: %v", name, err)
		}
		return ok, holder
	}

	a, b := open(storeKubernetes), open(storeKubernetes)
	if ok, _ := take(a, "cp-2"); !ok {
		t.Fatal("cp-2 is refused the first turn on replica A")
	}
	if ok, holder := take(b, "cp-3"); ok || holder != "cp-2" {
		t.Errorf("replica B: cp-3 got ok=%v holder=%q while cp-2 holds the turn on replica A; want wait for cp-2", ok, holder)
	}
	if err := a.Release(ctx, "cp-2"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := take(b, "cp-3"); !ok {
		t.Error("replica B: cp-3 waits after cp-2 released its turn on replica A")
	}
	if err := b.Release(ctx, "cp-3"); err != nil {
		t.Fatal(err)
	}

	// bbolt: one appliance, its own queue in memory.
	x, y := open(storeBbolt), open(storeBbolt)
	if ok, _ := take(x, "cp-2"); !ok {
		t.Fatal("bbolt: cp-2 is refused the first turn")
	}
	if ok, holder := take(x, "cp-3"); ok || holder != "cp-2" {
		t.Errorf("bbolt: cp-3 got ok=%v holder=%q from the appliance where cp-2 holds the turn", ok, holder)
	}
	if ok, _ := take(y, "cp-3"); !ok {
		t.Error("bbolt: a second appliance's queue is not its own")
	}
}
