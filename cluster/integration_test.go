package cluster

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// TestRealAPIServer runs Bootyard's cluster integration against a real kube-apiserver
// and etcd, as the bootyard service account with only the RBAC in deploy/. There is no
// kubelet: the test writes Node objects and their Ready condition itself, and helper
// pods never run.
func TestRealAPIServer(t *testing.T) {
	api := startKubeAPI(t)
	ctx := context.Background()

	// newBootyard is a Bootyard with its own inventory, connected through the kubeconfig.
	newBootyard := func(t *testing.T, ccfg Config) (*store.Store, *Controller, kubernetes.Interface) {
		cfg, err := RESTConfig(api.bootyardKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		client, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st := openStore(t)
		return st, startController(t, client, st, ccfg), client
	}
	// putNode registers a Node and sets its Ready condition, as a kubelet would.
	putNode := func(t *testing.T, k *corev1.Node) {
		t.Helper()
		status := k.Status
		created, err := api.admin.CoreV1().Nodes().Create(ctx, k, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Bootyard may patch the Node meanwhile (it watches from the start): write the
		// status onto the latest version, as a kubelet does.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			created.Status = status
			_, err := api.admin.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
			if apierrors.IsConflict(err) {
				if latest, gerr := api.admin.CoreV1().Nodes().Get(ctx, k.Name, metav1.GetOptions{}); gerr == nil {
					created = latest
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("the bootyard account reads the join token Secret and no other", func(t *testing.T) {
		for _, name := range []string{TokenSecret, "other-secret"} {
			s := tokenSecret()
			s.Name = name
			if _, err := api.admin.CoreV1().Secrets(TokenNamespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		st, _, client := newBootyard(t, testConfig(nil))
		eventually(t, "the join token is read", func() bool {
			s, err := st.ClusterSettings(ctx)
			return err == nil && s.Token.Reveal() == clusterToken
		})
		if _, err := client.CoreV1().Secrets(TokenNamespace).Get(ctx, "other-secret", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("get another Secret: %v, want Forbidden", err)
		}
		if _, err := client.CoreV1().Secrets(TokenNamespace).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list Secrets: %v, want Forbidden", err)
		}
	})

	t.Run("Ready makes the node active and NotReady is shown", func(t *testing.T) {
		st, _, _ := newBootyard(t, testConfig(nil))
		importNode(t, st, "rdy-1", node.RoleWorker, "52:54:00:10:00:01", node.StateInstalled)
		putNode(t, kubeNode("rdy-1", true))
		eventually(t, "rdy-1 is active", func() bool { return nodeState(t, st, "rdy-1").State == node.StateActive })
		if c := nodeState(t, st, "rdy-1").Cluster; c == nil || !c.Ready || c.KubeletVersion != "v1.34.4+k3s1" {
			t.Errorf("cluster status %+v", c)
		}

		k, err := api.admin.CoreV1().Nodes().Get(ctx, "rdy-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k.Status.Conditions[0].Status, k.Status.Conditions[0].Reason = corev1.ConditionUnknown, "NodeStatusUnknown"
		if _, err := api.admin.CoreV1().Nodes().UpdateStatus(ctx, k, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "NotReady is recorded", func() bool { c := nodeState(t, st, "rdy-1").Cluster; return c != nil && !c.Ready })
	})

	t.Run("Ready makes a joining or joined node active: the kubeconfig has the last word", func(t *testing.T) {
		st, _, _ := newBootyard(t, testConfig(nil))
		importNode(t, st, "jng-1", node.RoleServer, "52:54:00:10:00:02", node.StateJoining)
		importNode(t, st, "jnd-1", node.RoleServer, "52:54:00:10:00:03", node.StateJoined)
		importNode(t, st, "jnd-2", node.RoleWorker, "52:54:00:10:00:04", node.StateJoined)
		putNode(t, kubeNode("jng-1", true))
		putNode(t, kubeNode("jnd-1", true))
		eventually(t, "jng-1 and jnd-1 are active", func() bool {
			return nodeState(t, st, "jng-1").State == node.StateActive && nodeState(t, st, "jnd-1").State == node.StateActive
		})
		// No Kubernetes Node for jnd-2: joined stays joined, it does not fall back to installed.
		if got := nodeState(t, st, "jnd-2").State; got != node.StateJoined {
			t.Errorf("jnd-2 without a Kubernetes Node is %s, want joined", got)
		}
	})

	t.Run("deleting a Ready server is refused when 3 servers have one NotReady", func(t *testing.T) {
		st, c, _ := newBootyard(t, testConfig(nil))
		for i, name := range []string{"q-1", "q-2", "q-3"} {
			importNode(t, st, name, node.RoleServer, "52:54:00:10:01:0"+string(rune('1'+i)), node.StateActive)
			putNode(t, kubeNode(name, name != "q-3", "control-plane", "etcd", "master"))
		}
		eventually(t, "q-3 is seen NotReady", func() bool { c := nodeState(t, st, "q-3").Cluster; return c != nil && !c.Ready })

		if err := c.CheckDeletion(ctx, "q-2"); !errors.Is(err, node.ErrRefused) {
			t.Errorf("live check for q-2: %v, want refused", err)
		}
		// The store's check, which the API runs in the same transaction, sees the same.
		_, _, err := st.DeleteNode(ctx, "q-2", node.DeleteOptions{Confirm: "q-2", ClusterConnected: true, Source: "api"})
		if !errors.Is(err, node.ErrRefused) {
			t.Errorf("delete q-2: %v, want refused", err)
		}
		if err := c.CheckDeletion(ctx, "q-3"); err != nil {
			t.Errorf("removing the NotReady server q-3 leaves 2 of 2 Ready: %v", err)
		}
		if _, err := api.admin.CoreV1().Nodes().Get(ctx, "q-2", metav1.GetOptions{}); err != nil {
			t.Errorf("the refused deletion touched the Node: %v", err)
		}
	})

	t.Run("delete drains, deletes the Node and leaves the node wiping though the reboot pod never runs; a comeback is fenced", func(t *testing.T) {
		st, c, _ := newBootyard(t, testConfig(nil))
		importNode(t, st, "del-1", node.RoleWorker, "52:54:00:10:02:01", node.StateActive)
		putNode(t, kubeNode("del-1", true))
		work := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "work-0"},
			Spec: corev1.PodSpec{NodeName: "del-1", TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		if _, err := api.admin.CoreV1().Pods("default").Create(ctx, work, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "del-1's status is recorded", func() bool { return nodeState(t, st, "del-1").Cluster != nil })

		deleteThroughAPI(t, st, c, "del-1", node.DeleteReinstall, false)
		eventually(t, "del-1 leaves deleting", func() bool { return nodeState(t, st, "del-1").State != node.StateDeleting })
		if n := nodeState(t, st, "del-1"); n.State != node.StateWiping {
			t.Fatalf("state %s (%s), want wiping", n.State, n.StateReason)
		}
		wantPrefixes(t, clusterEvents(t, st, "del-1"), []string{
			"removing from the cluster",
			"quorum check: not an etcd member",
			"cordon: Node del-1 cordoned",
			"drain: 1 pods evicted",
			"warning network boot: pod bootyard-netboot-del-1-g1 did not run within",
			"delete Node: Node del-1 deleted",
			"→ wiping:",
		})
		if _, err := api.admin.CoreV1().Nodes().Get(ctx, "del-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Node del-1: %v, want it deleted", err)
		}
		if _, err := api.admin.CoreV1().Pods("default").Get(ctx, "work-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("pod work-0: %v, want it evicted", err)
		}
		// The API server admitted the privileged pod as Bootyard built it.
		p, err := api.admin.CoreV1().Pods(DefaultHelperNamespace).Get(ctx, "bootyard-netboot-del-1-g1", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reboot pod: %v", err)
		}
		if p.Spec.NodeName != "del-1" || !*p.Spec.Containers[0].SecurityContext.Privileged {
			t.Errorf("reboot pod on %q, privileged %v", p.Spec.NodeName, *p.Spec.Containers[0].SecurityContext.Privileged)
		}

		// The machine boots its old disk before the wipe and its kubelet registers again.
		// (Its status is not needed: a Node object is all it takes to be fenced.)
		if _, err := api.admin.CoreV1().Nodes().Create(ctx, kubeNode("del-1", true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the returning Node is deleted again", func() bool {
			_, err := api.admin.CoreV1().Nodes().Get(ctx, "del-1", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		eventually(t, "the fence warning is recorded", func() bool {
			return slices.ContainsFunc(events(t, st, "del-1"), func(e node.Event) bool {
				return e.Type == node.EventWarning && strings.HasPrefix(e.Reason, "fence: Kubernetes Node del-1 registered again while the node is wiping")
			})
		})
	})

	// There is no kubelet: the test plays its part for the uninstall pod, reporting it
	// Running and then its container's exit, as a kubelet does through the status.
	t.Run("uninstall runs on the member node, and only its exit status 0 deletes the Node", func(t *testing.T) {
		cfg := testConfig(nil)
		cfg.UninstallTimeout = waitTimeout // the kubelet here is the test itself
		st, c, _ := newBootyard(t, cfg)
		helperPods := api.admin.CoreV1().Pods(DefaultHelperNamespace)
		// kubelet waits for the uninstall pod of name, checks it runs where and how it must
		// with the Node still there, and reports its container's exit.
		kubelet := func(t *testing.T, name string, exit int32, log string) {
			t.Helper()
			var p *corev1.Pod
			eventually(t, "the uninstall pod of "+name+" is created", func() bool {
				var err error
				p, err = helperPods.Get(ctx, "bootyard-uninstall-"+name+"-g1", metav1.GetOptions{})
				return err == nil && p.Status.Phase == corev1.PodPending
			})
			ctr := p.Spec.Containers[0]
			if p.Spec.NodeName != name || !*ctr.SecurityContext.Privileged || !p.Spec.HostPID ||
				len(ctr.Env) != 1 || !strings.Contains(ctr.Env[0].Value, "llmos-uninstall.sh") {
				t.Fatalf("uninstall pod on %q, privileged %v, hostPID %v, env %d", p.Spec.NodeName, *ctr.SecurityContext.Privileged, p.Spec.HostPID, len(ctr.Env))
			}
			p.Status = corev1.PodStatus{Phase: corev1.PodRunning}
			p, err := helperPods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// While the uninstall runs the machine is still a member: its Node is there.
			if _, err := api.admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Fatalf("Node %s while the uninstall pod runs: %v", name, err)
			}
			if n := nodeState(t, st, name); n.State != node.StateDeleting {
				t.Fatalf("%s is %s while its uninstall runs", name, n.State)
			}
			phase := corev1.PodSucceeded
			if exit != 0 {
				phase = corev1.PodFailed
			}
			p.Status = podStatus(p, phase, exit, log)
			if _, err := helperPods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		nodeGone := func(name string) bool {
			_, err := api.admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}

		tests := []struct {
			name, mac string
			exit      int32
		}{
			{"un-1", "52:54:00:10:03:01", 0},
			{"un-2", "52:54:00:10:03:02", 3},
		}
		for _, tt := range tests {
			t.Run(tt.name+" exits "+strconv.Itoa(int(tt.exit)), func(t *testing.T) {
				importNode(t, st, tt.name, node.RoleServer, tt.mac, node.StateActive)
				putNode(t, kubeNode(tt.name, true, "control-plane", "etcd"))
				eventually(t, tt.name+"'s status is recorded", func() bool { return nodeState(t, st, tt.name).Cluster != nil })

				deleteThroughAPI(t, st, c, tt.name, node.DeleteUninstall, true)
				kubelet(t, tt.name, tt.exit, "bootyard: running /opt/bin/llmos-uninstall.sh\nbootyard: /opt/bin/llmos-uninstall.sh exited with status 3; the join data stays until it succeeds (node retry runs it again)\n")
				eventually(t, tt.name+" leaves deleting", func() bool { return nodeState(t, st, tt.name).State != node.StateDeleting })
				// uninstalled checks the end of a run that succeeded: deleted, the Node gone
				// after the uninstall, and the run's events.
				uninstalled := func(want ...string) {
					t.Helper()
					if n := nodeState(t, st, tt.name); n.State != node.StateDeleted {
						t.Fatalf("state %s (%s), want deleted", n.State, n.StateReason)
					}
					wantPrefixes(t, clusterEvents(t, st, tt.name), append(want,
						"uninstall: pod bootyard-uninstall-"+tt.name+"-g1 ran llmos-uninstall.sh and removed the join data (exit status 0)",
						"delete Node: Node "+tt.name+" deleted",
						"→ deleted: LLMOS uninstalled"))
					if !nodeGone(tt.name) {
						t.Errorf("Node %s still there after the uninstall succeeded", tt.name)
					}
				}
				if tt.exit == 0 {
					uninstalled("removing from the cluster: quorum check, cordon, drain, uninstall, delete Node (forced)",
						"quorum check: skipped (forced)", "cordon: Node "+tt.name+" cordoned", "drain:")
					return
				}
				n := nodeState(t, st, tt.name)
				if n.State != node.StateFailed || n.FailedFrom != node.StateDeleting ||
					!strings.Contains(n.StateReason, "stopped at uninstall: pod bootyard-uninstall-"+tt.name+"-g1: exit status 3 (Error): ") ||
					!strings.HasSuffix(n.StateReason, "exited with status 3; the join data stays until it succeeds (node retry runs it again)") {
					t.Fatalf("failed from %s: %q; want the uninstall step, its exit status and its log tail", n.FailedFrom, n.StateReason)
				}
				if nodeGone(tt.name) {
					t.Fatal("the Node was deleted although the uninstall failed")
				}

				// node retry: the sequence resumes after the recorded steps with a fresh
				// pod, and this time the uninstall succeeds.
				retryNode(t, st, tt.name)
				kubelet(t, tt.name, 0, "")
				eventually(t, tt.name+" leaves deleting after the retry", func() bool { return nodeState(t, st, tt.name).State != node.StateDeleting })
				uninstalled("removing from the cluster", "quorum check: done before this run", "cordon: done before this run", "drain: done before this run")
			})
		}
	})

	// On a k3s node LLMOS's uninstall stops the kubelet: the pod stays Running in the API
	// for good. The host script's own report (the machine endpoint records it on the node)
	// decides instead, and the Node is deleted after it.
	t.Run("the kubelet stops with the pod Running: the host's report deletes the Node", func(t *testing.T) {
		cfg := testConfig(nil)
		cfg.UninstallTimeout = 10 * waitTimeout // only the report can end the wait
		st, c, _ := newBootyard(t, cfg)
		helperPods := api.admin.CoreV1().Pods(DefaultHelperNamespace)
		importNode(t, st, "un-3", node.RoleServer, "52:54:00:10:03:03", node.StateActive)
		putNode(t, kubeNode("un-3", true, "control-plane", "etcd"))
		eventually(t, "un-3's status is recorded", func() bool { return nodeState(t, st, "un-3").Cluster != nil })

		deleteThroughAPI(t, st, c, "un-3", node.DeleteUninstall, true)
		var p *corev1.Pod
		eventually(t, "the uninstall pod is created", func() bool {
			var err error
			p, err = helperPods.Get(ctx, "bootyard-uninstall-un-3-g1", metav1.GetOptions{})
			return err == nil
		})
		// The last the kubelet said before LLMOS's script stopped it.
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning}
		if _, err := helperPods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.admin.CoreV1().Nodes().Get(ctx, "un-3", metav1.GetOptions{}); err != nil {
			t.Fatalf("Node un-3 before the host reported: %v", err)
		}
		hostReports(t, st, "un-3", 0, "bootyard: uninstall finished: this machine has no join data left")
		deletionEnds(t, st, "un-3", node.StateDeleted)
		wantPrefixes(t, clusterEvents(t, st, "un-3"), []string{
			"removing from the cluster: quorum check, cordon, drain, uninstall, delete Node (forced)",
			"quorum check: skipped (forced)",
			"cordon: Node un-3 cordoned",
			"drain:",
			"uninstall: the host reported exit status 0: llmos-uninstall.sh ran and the join data is removed (pod bootyard-uninstall-un-3-g1)",
			"delete Node: Node un-3 deleted",
			"→ deleted: LLMOS uninstalled",
		})
		if _, err := api.admin.CoreV1().Nodes().Get(ctx, "un-3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Node un-3 still there after the host reported success (err %v)", err)
		}
	})
}
