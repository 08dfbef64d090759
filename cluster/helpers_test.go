package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// waitTimeout bounds every wait for the controller to act. It is generous on purpose:
// the tests check what happens, never how fast.
const waitTimeout = 30 * time.Second

// testConfig keeps every wait of the sequence short, so failures and timeouts surface
// in a test's lifetime.
func testConfig(log *slog.Logger) Config {
	return Config{
		DrainTimeout:  1500 * time.Millisecond,
		RebootTimeout: 1500 * time.Millisecond,
		EvictionRetry: 100 * time.Millisecond,
		Resync:        200 * time.Millisecond,
		Logger:        log,
	}
}

// openStore is a real bbolt inventory in the test's temporary directory.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// importNode imports a machine and walks it to state the way the other services would.
func importNode(t *testing.T, st *store.Store, name string, role node.Role, mac string, state node.State) node.Node {
	t.Helper()
	ctx := context.Background()
	m, err := node.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.ImportNode(ctx, node.Node{Name: name, MACs: []node.MAC{m}, Role: role}, "test")
	if err != nil {
		t.Fatal(err)
	}
	path := map[node.State][]node.State{
		node.StateRegistered:   nil,
		node.StateProvisioning: {node.StateProvisioning},
		node.StateInstalled:    {node.StateProvisioning, node.StateInstalled},
		node.StateJoining:      {node.StateProvisioning, node.StateInstalled, node.StateJoining},
		node.StateJoined:       {node.StateProvisioning, node.StateInstalled, node.StateJoining, node.StateJoined},
		node.StateActive:       {node.StateProvisioning, node.StateInstalled, node.StateActive},
		node.StateWiping:       {node.StateProvisioning, node.StateInstalled, node.StateDeleting, node.StateWiping},
		node.StateDeleted:      {node.StateProvisioning, node.StateInstalled, node.StateDeleting, node.StateWiping, node.StateDeleted},
	}[state]
	for _, to := range path {
		n, err = st.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
			ev, err := n.Transition(to, "test setup", "test", time.Now().UTC())
			return []node.Event{ev}, err
		})
		if err != nil {
			t.Fatalf("walk %s to %s: %v", name, to, err)
		}
	}
	return n
}

// kubeNode is a Kubernetes Node as a kubelet would register it.
func kubeNode(name string, ready bool, roles ...string) *corev1.Node {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	k := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}, Annotations: map[string]string{}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "KubeletReady"}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.34.4+k3s1"},
		},
	}
	if !ready {
		k.Status.Conditions[0].Reason = "NodeStatusUnknown"
		k.Status.Conditions[0].Message = "Kubelet stopped posting node status."
	}
	for _, r := range roles {
		k.Labels[roleLabelPrefix+r] = "true"
	}
	return k
}

func pod(ns, name, nodeName string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls, UID: types.UID(ns + "-" + name)},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// fakeCluster is client-go's fake clientset taught the two API server behaviours the
// drain depends on and the object tracker lacks: field selectors on pod lists, and the
// Eviction API honouring PodDisruptionBudgets (429 when a budget allows no disruption).
func fakeCluster(objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	podsGVR := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		la := a.(k8stesting.ListActionImpl)
		sel := la.ListOptions.FieldSelector
		if sel == "" {
			return false, nil, nil
		}
		fs, err := fields.ParseSelector(sel)
		if err != nil {
			return true, nil, err
		}
		obj, err := cs.Tracker().List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), la.Namespace)
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		var keep []corev1.Pod
		for _, p := range list.Items {
			if fs.Matches(fields.Set{"spec.nodeName": p.Spec.NodeName}) {
				keep = append(keep, p)
			}
		}
		list.Items = keep
		return true, list, nil
	})
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		obj, err := cs.Tracker().Get(podsGVR, ev.Namespace, ev.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod)
		// Reactors run under the fake's lock: read through the tracker, not the clientset.
		pdbObj, err := cs.Tracker().List(policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets"),
			policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"), p.Namespace)
		if err != nil {
			return true, nil, err
		}
		for _, b := range pdbObj.(*policyv1.PodDisruptionBudgetList).Items {
			sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
			if err != nil {
				return true, nil, err
			}
			if sel.Matches(labels.Set(p.Labels)) && b.Status.DisruptionsAllowed < 1 {
				e := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
				e.ErrStatus.Details.Causes = append(e.ErrStatus.Details.Causes, metav1.StatusCause{
					Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget " + b.Name + " needs 1 healthy pods and has 1 currently",
				})
				return true, nil, e
			}
		}
		return true, nil, cs.Tracker().Delete(podsGVR, p.Namespace, p.Name)
	})
	return cs
}

// setHelperPhase makes every helper pod created from now on report phase, standing in
// for a kubelet that runs it.
func setHelperPhase(cs *fake.Clientset, phase corev1.PodPhase) {
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "" {
			return false, nil, nil
		}
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Labels[labelManagedBy] != managedBy {
			return false, nil, nil
		}
		p = p.DeepCopy()
		p.Status.Phase = phase
		if err := cs.Tracker().Create(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, p, p.Namespace); err != nil {
			return true, nil, err
		}
		return true, p, nil
	})
}

// startController runs a controller until the test ends and waits for its first sync.
func startController(t *testing.T, client kubernetes.Interface, inv Inventory, cfg Config) *Controller {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, nil)
	}
	c := New(cfg, client, inv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	eventually(t, "the Node cache syncs", c.Synced)
	return c
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nodeState(t *testing.T, st *store.Store, name string) node.Node {
	t.Helper()
	n, err := st.GetNode(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func events(t *testing.T, st *store.Store, name string) []node.Event {
	t.Helper()
	evs, err := st.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger logs to buf when given, else to the test log.
func testLogger(t *testing.T, buf *syncBuffer) *slog.Logger {
	if buf != nil {
		return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
