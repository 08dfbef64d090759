package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

func TestWatch_ReadyMakesAnInstalledNodeActiveAndNotReadyIsShown(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "cp-1", node.RoleServer, "52:54:00:00:02:01", node.StateInstalled)
	cs := fakeCluster()
	startController(t, cs, st, testConfig(nil))
	ctx := context.Background()

	k := kubeNode("cp-1", true, "control-plane", "etcd")
	if _, err := cs.CoreV1().Nodes().Create(ctx, k, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cp-1 becomes active", func() bool { return nodeState(t, st, "cp-1").State == node.StateActive })
	n := nodeState(t, st, "cp-1")
	want := node.ClusterStatus{Ready: true, Roles: []string{"control-plane", "etcd"}, KubeletVersion: "v1.34.4+k3s1"}
	if n.Cluster == nil || !sameStatus(n.Cluster, want) {
		t.Fatalf("cluster status %+v, want %+v", n.Cluster, want)
	}

	k.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, k, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NotReady is recorded", func() bool { c := nodeState(t, st, "cp-1").Cluster; return c != nil && !c.Ready })
	n = nodeState(t, st, "cp-1")
	if n.State != node.StateActive {
		t.Errorf("state %s: a NotReady node stays active, its status says NotReady", n.State)
	}
	evs := events(t, st, "cp-1")
	last := evs[len(evs)-1]
	if last.Type != node.EventCluster || !strings.Contains(last.Reason, "is NotReady (NodeStatusUnknown Kubelet stopped posting node status.)") {
		t.Errorf("last event %+v, want the NotReady condition explained", last)
	}
}

func TestWatch_WritesOnlyWhenWhatTheClusterSaysChanges(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "w-1", node.RoleWorker, "52:54:00:00:02:11", node.StateActive)
	cs := fakeCluster(kubeNode("w-1", true))
	startController(t, cs, st, testConfig(nil))
	ctx := context.Background()
	eventually(t, "w-1's status is recorded", func() bool { return nodeState(t, st, "w-1").Cluster != nil })
	before := len(events(t, st, "w-1"))

	// Heartbeats: the kubelet rewrites its condition times; nothing Bootyard shows changes.
	for i := range 5 {
		k, err := cs.CoreV1().Nodes().Get(ctx, "w-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Now().Add(time.Duration(i) * time.Second))
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, k, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A label change that is a role change, as a marker that the heartbeats have been seen.
	k, _ := cs.CoreV1().Nodes().Get(ctx, "w-1", metav1.GetOptions{})
	k.Labels[roleLabelPrefix+"gpu"] = "true"
	if _, err := cs.CoreV1().Nodes().Update(ctx, k, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new role is recorded", func() bool {
		c := nodeState(t, st, "w-1").Cluster
		return c != nil && slices.Contains(c.Roles, "gpu")
	})
	if got := len(events(t, st, "w-1")); got != before+1 {
		t.Errorf("%d events written for 5 heartbeats and one role change, want 1", got-before)
	}
}

func TestWatch_ANodeDeletedOutsideBootyardGoesBackToInstalled(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "w-2", node.RoleWorker, "52:54:00:00:02:21", node.StateActive)
	cs := fakeCluster(kubeNode("w-2", true))
	startController(t, cs, st, testConfig(nil))
	eventually(t, "w-2's status is recorded", func() bool { return nodeState(t, st, "w-2").Cluster != nil })

	if err := cs.CoreV1().Nodes().Delete(context.Background(), "w-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "w-2 goes back to installed", func() bool { return nodeState(t, st, "w-2").State == node.StateInstalled })
	if c := nodeState(t, st, "w-2").Cluster; c != nil {
		t.Errorf("cluster status %+v kept for a Node that is gone", c)
	}
}

func TestFence_AWipedMachineThatRejoinsIsCordonedAndDeleted(t *testing.T) {
	tests := []struct {
		name   string
		state  node.State
		k8s    *corev1.Node
		fenced bool
	}{
		{"wiping, same name", node.StateWiping, kubeNode("old-1", true), true},
		{"deleted, same name", node.StateDeleted, kubeNode("old-1", true), true},
		{"deleted, MAC annotation", node.StateDeleted, withAnnotation(kubeNode("host-abc", true), annotationMACs, "52:54:00:00:03:01"), true},
		// An address passes to another machine once this one is gone: never fence on it.
		{"deleted, same address only", node.StateDeleted, withAddress(kubeNode("new-9", true), "10.20.0.31"), false},
		{"active, same name", node.StateActive, kubeNode("old-1", true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			importNode(t, st, "old-1", node.RoleWorker, "52:54:00:00:03:01", tt.state)
			if _, err := st.UpdateNode(context.Background(), "old-1", func(n *node.Node) ([]node.Event, error) {
				n.Boot.IP = "10.20.0.31"
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			cs := fakeCluster()
			startController(t, cs, st, testConfig(nil))
			ctx := context.Background()
			if _, err := cs.CoreV1().Nodes().Create(ctx, tt.k8s, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if !tt.fenced {
				// Nothing to wait for; give the controller passes to do the wrong thing.
				eventually(t, "the Node is observed", func() bool {
					return nodeState(t, st, "old-1").Cluster != nil || tt.state != node.StateActive
				})
				time.Sleep(5 * testConfig(nil).Resync)
				if _, err := cs.CoreV1().Nodes().Get(ctx, tt.k8s.Name, metav1.GetOptions{}); err != nil {
					t.Fatalf("Node %s was deleted (%v); it must be left alone", tt.k8s.Name, err)
				}
				return
			}
			eventually(t, "the Node is fenced", func() bool {
				_, err := cs.CoreV1().Nodes().Get(ctx, tt.k8s.Name, metav1.GetOptions{})
				return err != nil
			})
			// The event follows the deletion: wait for it too.
			eventually(t, "the fence warning is recorded", func() bool {
				return slices.ContainsFunc(events(t, st, "old-1"), func(e node.Event) bool {
					return e.Type == node.EventWarning && strings.Contains(e.Reason, "fence: Kubernetes Node "+tt.k8s.Name+" registered again while the node is "+string(tt.state))
				})
			})
			if got := nodeState(t, st, "old-1").State; got != tt.state {
				t.Errorf("fencing moved the node to %s", got)
			}
		})
	}
}

func withAnnotation(k *corev1.Node, key, value string) *corev1.Node {
	k.Annotations[key] = value
	return k
}

func withAddress(k *corev1.Node, ip string) *corev1.Node {
	k.Status.Addresses = append(k.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	return k
}

// countingInventory is the real store, counting the calls a reconcile pass makes.
type countingInventory struct {
	*store.Store
	updates, pages atomic.Int64
}

func (c *countingInventory) UpdateNode(ctx context.Context, name string, fn store.UpdateFunc) (node.Node, error) {
	c.updates.Add(1)
	return c.Store.UpdateNode(ctx, name, fn)
}

func (c *countingInventory) QueryNodes(ctx context.Context, q store.NodeQuery) (store.NodePage, error) {
	c.pages.Add(1)
	return c.Store.QueryNodes(ctx, q)
}

// TestWatch_APassPagesTheInventoryAndWritesNothingWhenNothingChanged: with more nodes
// than one page, a node on the last page is still reconciled, and once every status is
// current a pass takes no write transaction at all (it used to try one per node).
func TestWatch_APassPagesTheInventoryAndWritesNothingWhenNothingChanged(t *testing.T) {
	st := openStore(t)
	rows := make([]store.ImportRow, store.MaxPageLimit+5)
	for i := range rows {
		rows[i] = store.ImportRow{Line: i + 2, Node: node.Node{Name: fmt.Sprintf("w-%04d", i), Role: node.RoleWorker,
			MACs: []node.MAC{{0x02, 0x5a, 0, 0, byte(i >> 8), byte(i)}}}}
	}
	if _, err := st.ImportNodes(context.Background(), rows, store.ImportOptions{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	importNode(t, st, "a-ready", node.RoleWorker, "52:54:00:00:03:01", node.StateActive)
	importNode(t, st, "zz-gone", node.RoleWorker, "52:54:00:00:03:02", node.StateActive) // sorts after the first page
	inv := &countingInventory{Store: st}
	startController(t, fakeCluster(kubeNode("a-ready", true)), inv, testConfig(nil))
	eventually(t, "a-ready's status is recorded", func() bool { return nodeState(t, st, "a-ready").Cluster != nil })
	eventually(t, "zz-gone, on the second page, goes back to installed", func() bool {
		return nodeState(t, st, "zz-gone").State == node.StateInstalled
	})
	// Two whole passes after everything is current: each reads two pages.
	pages, updates := inv.pages.Load(), inv.updates.Load()
	eventually(t, "two more passes", func() bool { return inv.pages.Load() >= pages+5 })
	if got := inv.updates.Load() - updates; got != 0 {
		t.Fatalf("%d updates in passes with nothing to change, want none", got)
	}
}
