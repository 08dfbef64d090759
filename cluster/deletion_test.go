package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// deleteThroughAPI does what DELETE /api/v1/nodes/NAME does with a cluster connected:
// the store moves the node to deleting, then the controller is handed the rest.
func deleteThroughAPI(t *testing.T, st *store.Store, c *Controller, name string, mode node.DeleteMode, force bool) {
	t.Helper()
	ctx := context.Background()
	if err := c.CheckDeletion(ctx, name); err != nil && !force {
		t.Fatalf("live quorum check: %v", err)
	}
	n, removed, err := st.DeleteNode(ctx, name, node.DeleteOptions{Confirm: name, Force: force, Mode: mode, ClusterConnected: c.Connected(), Source: "api"})
	if err != nil || removed || n.State != node.StateDeleting {
		t.Fatalf("delete %s: state %s, removed %v, err %v", name, n.State, removed, err)
	}
	c.StartDeletion(ctx, name, force)
}

// clusterEvents are the reasons of the events the last deletion run wrote (after the
// last move to deleting), in order, with its final transition as "→ state: reason".
func clusterEvents(t *testing.T, st *store.Store, name string) []string {
	var out []string
	started := false
	for _, e := range events(t, st, name) {
		if e.Type == node.EventTransition && e.To == node.StateDeleting {
			started, out = true, nil
			continue
		}
		if !started || e.Source != source {
			continue
		}
		switch e.Type {
		case node.EventTransition:
			out = append(out, "→ "+string(e.To)+": "+e.Reason)
		case node.EventWarning:
			out = append(out, "warning "+e.Reason)
		case node.EventCluster:
			if !strings.HasPrefix(e.Reason, "Kubernetes Node") { // status updates are not steps
				out = append(out, e.Reason)
			}
		}
	}
	return out
}

// wantPrefixes checks got line by line against the expected beginnings.
func wantPrefixes(t *testing.T, got []string, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("events:\n  %s\nwant %d lines beginning:\n  %s", strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("event %d = %q, want it to begin %q", i, got[i], want[i])
		}
	}
}

func TestDeletion_EveryStepIsAnEvent(t *testing.T) {
	tests := []struct {
		name        string
		mode        node.DeleteMode
		helperPhase corev1.PodPhase // what the fake kubelet makes of the helper pod; "" never runs it
		helperExit  int32           // the helper container's exit status when it failed
		failPodGets bool            // every GET of a pod fails, as a client rate limiter at its deadline does
		keepsNode   bool            // the Kubernetes Node must still be there at the end
		force       bool
		wantState   node.State
		want        []string
	}{
		{
			name: "reinstall with a live node", mode: node.DeleteReinstall, helperPhase: corev1.PodRunning, wantState: node.StateWiping,
			want: []string{
				"removing from the cluster: quorum check, cordon, drain, network boot, delete Node",
				"quorum check: not an etcd member",
				"cordon: Node gpu-1 cordoned",
				"drain: 1 pods evicted",
				"network boot: pod bootyard-netboot-gpu-1-g1 set the next boot to the network",
				"delete Node: Node gpu-1 deleted",
				"→ wiping: removed from the cluster",
			},
		},
		{
			name: "reinstall with a dead node goes on after the reboot timeout", mode: node.DeleteReinstall, wantState: node.StateWiping,
			want: []string{
				"removing from the cluster",
				"quorum check:",
				"cordon: Node gpu-1 cordoned",
				"drain: 1 pods evicted",
				"warning network boot: pod bootyard-netboot-gpu-1-g1 did not run within 1.5s (node down?)",
				"delete Node: Node gpu-1 deleted",
				"→ wiping:",
			},
		},
		{
			// The API refusing to answer (here every look at the pod) is no answer about
			// the pod: the wait runs to its timeout and the deletion goes on.
			name: "reinstall when every look at the reboot pod fails goes on after the timeout", mode: node.DeleteReinstall,
			failPodGets: true, wantState: node.StateWiping,
			want: []string{
				"removing from the cluster",
				"quorum check:",
				"cordon:",
				"drain:",
				"warning network boot: pod bootyard-netboot-gpu-1-g1 did not run within",
				"delete Node: Node gpu-1 deleted",
				"→ wiping:",
			},
		},
		{
			name: "uninstall keeps the OS and ends deleted", mode: node.DeleteUninstall, helperPhase: corev1.PodSucceeded, wantState: node.StateDeleted,
			want: []string{
				"removing from the cluster: quorum check, cordon, drain, uninstall, delete Node",
				"quorum check:",
				"cordon: Node gpu-1 cordoned",
				"drain: 1 pods evicted",
				"uninstall: pod bootyard-uninstall-gpu-1-g1 ran llmos-uninstall.sh and removed the join data (exit status 0)",
				"delete Node: Node gpu-1 deleted",
				"→ deleted: LLMOS uninstalled",
			},
		},
		{
			name: "uninstall on a dead node fails, saying what to do instead, and keeps the Node", mode: node.DeleteUninstall, wantState: node.StateFailed,
			keepsNode: true,
			want: []string{
				"removing from the cluster",
				"quorum check:",
				"cordon:",
				"drain:",
				"→ failed: removal from the cluster stopped at uninstall: pod bootyard-uninstall-gpu-1-g1 did not run within 1.5s (node down?)",
			},
		},
		{
			name: "uninstall whose pod never reports, and no report from the host, fails, the Node kept", mode: node.DeleteUninstall,
			helperPhase: corev1.PodRunning, wantState: node.StateFailed, keepsNode: true,
			want: []string{
				"removing from the cluster",
				"quorum check:",
				"cordon:",
				"drain:",
				"→ failed: removal from the cluster stopped at uninstall: pod bootyard-uninstall-gpu-1-g1 still running after 1.5s and no report from the host: the uninstall's exit status is unknown",
			},
		},
		{
			name: "uninstall whose pod never reports goes on when forced, with a warning", mode: node.DeleteUninstall, force: true,
			helperPhase: corev1.PodRunning, wantState: node.StateDeleted,
			want: []string{
				"removing from the cluster",
				"quorum check: skipped (forced)",
				"cordon:",
				"drain:",
				"warning uninstall: pod bootyard-uninstall-gpu-1-g1 still running after 1.5s and no report from the host, exit status unknown",
				"delete Node: Node gpu-1 deleted",
				"→ deleted:",
			},
		},
		{
			name: "uninstall that exits 3 fails with the status and the log tail, and keeps the Node", mode: node.DeleteUninstall,
			helperPhase: corev1.PodFailed, helperExit: 3, wantState: node.StateFailed, keepsNode: true,
			want: []string{
				"removing from the cluster",
				"quorum check:",
				"cordon:",
				"drain:",
				"→ failed: removal from the cluster stopped at uninstall: pod bootyard-uninstall-gpu-1-g1: exit status 3 (Error): bootyard: LLMOS is installed",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			importNode(t, st, "gpu-1", node.RoleWorker, "52:54:00:00:00:11", node.StateActive)
			cs := fakeCluster(kubeNode("gpu-1", true), pod("default", "train-0", "gpu-1", nil))
			if tt.helperPhase != "" {
				setHelperStatus(cs, tt.helperPhase, tt.helperExit, "bootyard: LLMOS is installed (/etc/systemd/system/llmos.service) but llmos-uninstall.sh is in none of: /usr/local/bin /opt/bin\n")
			}
			if tt.failPodGets {
				cs.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, errors.New("client rate limiter Wait returned an error: rate: Wait(n=1) would exceed context deadline")
				})
			}
			c := startController(t, cs, st, testConfig(nil))

			deleteThroughAPI(t, st, c, "gpu-1", tt.mode, tt.force)
			eventually(t, "gpu-1 leaves deleting", func() bool { return nodeState(t, st, "gpu-1").State != node.StateDeleting })

			n := nodeState(t, st, "gpu-1")
			if n.State != tt.wantState {
				t.Fatalf("state %s (%s), want %s", n.State, n.StateReason, tt.wantState)
			}
			wantPrefixes(t, clusterEvents(t, st, "gpu-1"), tt.want)
			_, err := cs.CoreV1().Nodes().Get(context.Background(), "gpu-1", metav1.GetOptions{})
			if tt.keepsNode && err != nil {
				t.Errorf("Node object: %v, want it kept", err)
			}
			if !tt.keepsNode && !apierrors.IsNotFound(err) {
				t.Errorf("Node object still there (err %v)", err)
			}
			if tt.wantState != node.StateFailed && n.Cluster != nil {
				t.Errorf("cluster status %+v kept after the node left the cluster", n.Cluster)
			}
		})
	}
}

func TestDeletion_AFailedStepStopsTheSequenceAndARetryResumesIt(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "db-1", node.RoleWorker, "52:54:00:00:00:21", node.StateActive)
	cs := fakeCluster(kubeNode("db-1", true),
		pod("default", "db-0", "db-1", map[string]string{"app": "db"}), budget("default", "db", 0))
	setHelperStatus(cs, corev1.PodRunning, 0, "")
	c := startController(t, cs, st, testConfig(nil))
	ctx := context.Background()

	deleteThroughAPI(t, st, c, "db-1", node.DeleteReinstall, false)
	eventually(t, "the drain fails", func() bool { return nodeState(t, st, "db-1").State == node.StateFailed })
	n := nodeState(t, st, "db-1")
	if n.FailedFrom != node.StateDeleting || !strings.Contains(n.StateReason, "stopped at drain: drain timed out") || !strings.Contains(n.StateReason, "default/db-0") {
		t.Fatalf("failed from %s: %q; want the drain step and the pod named", n.FailedFrom, n.StateReason)
	}
	k, err := cs.CoreV1().Nodes().Get(ctx, "db-1", metav1.GetOptions{})
	if err != nil || !k.Spec.Unschedulable {
		t.Fatalf("after a failed drain the Node must stay, cordoned: %v, %+v", err, k)
	}

	// The operator makes room in the budget and retries, as POST .../retry does.
	b := budget("default", "db", 1)
	if _, err := cs.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	retryNode(t, st, "db-1")
	eventually(t, "the resumed deletion finishes", func() bool { return nodeState(t, st, "db-1").State == node.StateWiping })
	got := clusterEvents(t, st, "db-1")
	// The second run starts after the retry's own deleting transition.
	wantPrefixes(t, got, []string{
		"removing from the cluster",
		"quorum check: done before this run",
		"cordon: done before this run",
		"drain: 1 pods evicted",
		"network boot: pod bootyard-netboot-db-1-g1 set the next boot",
		"delete Node: Node db-1 deleted",
		"→ wiping:",
	})
}

func TestDeletion_ForceDeletesPodsTheBudgetProtects(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "db-2", node.RoleWorker, "52:54:00:00:00:22", node.StateActive)
	cs := fakeCluster(kubeNode("db-2", true),
		pod("default", "db-0", "db-2", map[string]string{"app": "db"}), budget("default", "db", 0))
	c := startController(t, cs, st, testConfig(nil))

	deleteThroughAPI(t, st, c, "db-2", node.DeleteReinstall, true)
	eventually(t, "db-2 leaves deleting", func() bool { return nodeState(t, st, "db-2").State != node.StateDeleting })
	if n := nodeState(t, st, "db-2"); n.State != node.StateWiping {
		t.Fatalf("state %s (%s), want wiping", n.State, n.StateReason)
	}
	wantPrefixes(t, clusterEvents(t, st, "db-2"), []string{
		"removing from the cluster: quorum check, cordon, drain, network boot, delete Node (forced)",
		"quorum check: skipped (forced)",
		"cordon:",
		"warning drain: 0 pods evicted, 1 deleted after the drain timeout (forced)",
		"warning network boot:",
		"delete Node:",
		"→ wiping:",
	})
}

func TestCheckDeletion_RefusesWhatTheLiveServersCannotAfford(t *testing.T) {
	tests := []struct {
		name    string
		servers []*corev1.Node
		target  string
		refused bool
	}{
		{"3 servers all Ready: removing one leaves a majority", []*corev1.Node{
			kubeNode("cp-1", true, "control-plane", "etcd"), kubeNode("cp-2", true, "control-plane", "etcd"), kubeNode("cp-3", true, "control-plane", "etcd")}, "cp-2", false},
		{"3 servers, one NotReady: removing a Ready one is refused", []*corev1.Node{
			kubeNode("cp-1", true, "control-plane", "etcd"), kubeNode("cp-2", true, "control-plane", "etcd"), kubeNode("cp-3", false, "control-plane", "etcd")}, "cp-2", true},
		{"3 servers, one NotReady: removing the NotReady one is allowed", []*corev1.Node{
			kubeNode("cp-1", true, "control-plane", "etcd"), kubeNode("cp-2", true, "control-plane", "etcd"), kubeNode("cp-3", false, "control-plane", "etcd")}, "cp-3", false},
		{"a worker never counts against quorum", []*corev1.Node{
			kubeNode("cp-1", true, "control-plane", "etcd"), kubeNode("cp-2", false, "control-plane", "etcd"), kubeNode("cp-3", true)}, "cp-3", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			var objs []runtime.Object
			for i, k := range tt.servers {
				role := node.RoleServer
				if !isServer(k) {
					role = node.RoleWorker
				}
				importNode(t, st, k.Name, role, "52:54:00:00:01:0"+string(rune('1'+i)), node.StateActive)
				objs = append(objs, k)
			}
			c := startController(t, fakeCluster(objs...), st, testConfig(nil))
			err := c.CheckDeletion(context.Background(), tt.target)
			if tt.refused != errors.Is(err, node.ErrRefused) {
				t.Fatalf("CheckDeletion(%s) = %v, refused want %v", tt.target, err, tt.refused)
			}
		})
	}
}

// The API hands over --force just after its transaction; a pass can start the sequence
// in between. The force must still count.
func TestDeletion_ForceHandedOverAfterTheSequenceStartedStillCounts(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "db-3", node.RoleWorker, "52:54:00:00:00:23", node.StateActive)
	cs := fakeCluster(kubeNode("db-3", true),
		pod("default", "db-0", "db-3", map[string]string{"app": "db"}), budget("default", "db", 0))
	c := startController(t, cs, st, testConfig(nil))
	ctx := context.Background()

	if _, _, err := st.DeleteNode(ctx, "db-3", node.DeleteOptions{Confirm: "db-3", Force: true, ClusterConnected: true, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the sequence starts on its own", func() bool {
		return slices.ContainsFunc(clusterEvents(t, st, "db-3"), func(e string) bool { return strings.HasPrefix(e, "cordon:") })
	})
	c.StartDeletion(ctx, "db-3", true)
	eventually(t, "db-3 leaves deleting", func() bool { return nodeState(t, st, "db-3").State != node.StateDeleting })
	if n := nodeState(t, st, "db-3"); n.State != node.StateWiping {
		t.Fatalf("state %s (%s): the late force was ignored", n.State, n.StateReason)
	}
}

// Once the uninstall has run, the node's kubelet is gone: a drain would wait for pods that
// never terminate and a new uninstall pod would never run. A Bootyard restarted at that
// point must go on with the one step left.
func TestDeletion_ARestartAfterTheUninstallOnlyDeletesTheNode(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "gpu-2", node.RoleWorker, "52:54:00:00:00:12", node.StateActive)
	// What the controller before the restart recorded: every step up to the uninstall.
	uninstallingAfter(t, st, "gpu-2", "quorum check", "cordon", "drain", "uninstall")
	// The machine as the uninstall left it: Node NotReady, a pod that will never go.
	cs := fakeCluster(kubeNode("gpu-2", false), pod("default", "train-0", "gpu-2", nil))
	var helpers, evictions atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "eviction" {
			evictions.Add(1)
		} else {
			helpers.Add(1)
		}
		return true, nil, errors.New("nothing may be created or evicted after the uninstall")
	})
	startController(t, cs, st, testConfig(nil))

	eventually(t, "gpu-2 leaves deleting", func() bool { return nodeState(t, st, "gpu-2").State != node.StateDeleting })
	n := nodeState(t, st, "gpu-2")
	if n.State != node.StateDeleted || len(n.DeletionDone) != 0 {
		t.Fatalf("state %s (%s), steps %q; want deleted with the record cleared", n.State, n.StateReason, n.DeletionDone)
	}
	wantPrefixes(t, clusterEvents(t, st, "gpu-2"), []string{
		"removing from the cluster: quorum check, cordon, drain, uninstall, delete Node",
		"quorum check: done before this run",
		"cordon: done before this run",
		"drain: done before this run",
		"uninstall: done before this run",
		"delete Node: Node gpu-2 deleted",
		"→ deleted:",
	})
	if helpers.Load() != 0 || evictions.Load() != 0 {
		t.Errorf("%d helper pods created, %d evictions after the uninstall", helpers.Load(), evictions.Load())
	}
}
