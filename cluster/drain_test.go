package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// budget is a PodDisruptionBudget over app=label that allows the given disruptions.
func budget(ns, app string, allowed int32) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app + "-pdb"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed},
	}
}

func TestDrain_EvictsOnlyThePodsADrainMoves(t *testing.T) {
	ds := pod("kube-system", "flannel-x", "w1", nil)
	ds.OwnerReferences = []metav1.OwnerReference{{Kind: "DaemonSet", Name: "flannel", Controller: ptr.To(true), APIVersion: "apps/v1", UID: "ds"}}
	mirror := pod("kube-system", "static-w1", "w1", nil)
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
	done := pod("default", "job-done", "w1", nil)
	done.Status.Phase = corev1.PodSucceeded
	helper := pod(DefaultHelperNamespace, "bootyard-netboot-w1-g1", "w1", map[string]string{labelManagedBy: managedBy})
	cs := fakeCluster(kubeNode("w1", true), kubeNode("w2", true),
		pod("default", "web-1", "w1", map[string]string{"app": "web"}),
		pod("default", "web-2", "w2", map[string]string{"app": "web"}),
		ds, mirror, done, helper)
	c := startController(t, cs, openStore(t), testConfig(nil))

	res, err := c.drain(context.Background(), "w1", notForced)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evicted != 1 || res.Deleted != 0 {
		t.Errorf("drain = %+v, want exactly web-1 evicted", res)
	}
	for _, p := range []struct{ ns, name string }{{"default", "web-2"}, {"kube-system", "flannel-x"}, {"kube-system", "static-w1"}, {"default", "job-done"}, {DefaultHelperNamespace, "bootyard-netboot-w1-g1"}} {
		if _, err := cs.CoreV1().Pods(p.ns).Get(context.Background(), p.name, metav1.GetOptions{}); err != nil {
			t.Errorf("%s/%s: %v; a drain of w1 must leave it", p.ns, p.name, err)
		}
	}
	if _, err := cs.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("web-1 still there after the drain (err %v)", err)
	}
}

func TestDrain_DisruptionBudget(t *testing.T) {
	tests := []struct {
		name        string
		allowed     int32
		force       bool
		wantErr     string // empty: the drain succeeds
		wantEvicted int
		wantDeleted int
	}{
		{name: "a budget with room lets the eviction through", allowed: 1, wantEvicted: 1},
		{name: "a refusing budget stops the drain at the timeout, naming the pod and the budget", allowed: 0,
			wantErr: "default/db-0 (disruption budget: The disruption budget db-pdb needs"},
		{name: "force deletes the pod the budget protects once the timeout passes", allowed: 0, force: true, wantDeleted: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fakeCluster(kubeNode("s1", true), pod("default", "db-0", "s1", map[string]string{"app": "db"}), budget("default", "db", tt.allowed))
			c := startController(t, cs, openStore(t), testConfig(nil))

			res, err := c.drain(context.Background(), "s1", func() bool { return tt.force })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "timed out") {
					t.Fatalf("drain error = %v, want a timeout naming %q", err, tt.wantErr)
				}
				if _, err := cs.CoreV1().Pods("default").Get(context.Background(), "db-0", metav1.GetOptions{}); err != nil {
					t.Errorf("the protected pod is gone (%v); a refused drain must leave it", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Evicted != tt.wantEvicted || res.Deleted != tt.wantDeleted {
				t.Errorf("drain = %+v, want %d evicted and %d deleted", res, tt.wantEvicted, tt.wantDeleted)
			}
			if _, err := cs.CoreV1().Pods("default").Get(context.Background(), "db-0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("db-0 still there (err %v)", err)
			}
		})
	}
}

func TestDrain_PodsStuckTerminatingOnADownNodeDoNotHoldItUp(t *testing.T) {
	stuck := pod("default", "web-0", "dead-1", nil)
	past := metav1.NewTime(time.Now().Add(-time.Minute))
	stuck.DeletionTimestamp, stuck.Finalizers = &past, []string{"test/keep"}
	cs := fakeCluster(kubeNode("dead-1", false), stuck)
	c := startController(t, cs, openStore(t), testConfig(nil))

	res, err := c.drain(context.Background(), "dead-1", notForced)
	if err != nil {
		t.Fatalf("drain of a down node: %v; no kubelet will confirm the deletion, waiting cannot help", err)
	}
	if res.Left != 1 || res.Evicted != 0 {
		t.Errorf("drain = %+v, want the one stuck pod left", res)
	}
}

func TestDrain_PodsTerminatingOnAReadyNodeAreWaitedFor(t *testing.T) {
	term := pod("default", "web-0", "live-1", nil)
	past := metav1.NewTime(time.Now().Add(-time.Minute))
	term.DeletionTimestamp, term.Finalizers = &past, []string{"test/keep"}
	c := startController(t, fakeCluster(kubeNode("live-1", true), term), openStore(t), testConfig(nil))

	_, err := c.drain(context.Background(), "live-1", notForced)
	if err == nil || !strings.Contains(err.Error(), "default/web-0 (terminating)") {
		t.Fatalf("drain error = %v, want a timeout naming the terminating pod", err)
	}
}

func notForced() bool { return false }
