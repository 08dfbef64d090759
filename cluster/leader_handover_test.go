package cluster

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/bootyard/bootyard/node"
)

// testLease stands in for the Lease (Elector is tested against the real API server in
// leader_test.go): one holder at a time, and a revoke that ends the holder's term as a
// lost Lease does, without the holder's cooperation.
type testLease struct {
	mu      sync.Mutex
	holder  string
	revoked map[string]bool
	end     map[string]context.CancelFunc
}

func newTestLease() *testLease {
	return &testLease{revoked: map[string]bool{}, end: map[string]context.CancelFunc{}}
}

// elect is Config.Elect for the replica id.
func (l *testLease) elect(id string) func(ctx context.Context, lead func(ctx context.Context)) error {
	return func(ctx context.Context, lead func(ctx context.Context)) error {
		for ctx.Err() == nil {
			l.mu.Lock()
			if l.holder != "" || l.revoked[id] {
				l.mu.Unlock()
				time.Sleep(10 * time.Millisecond) // campaigning, as the retry period does
				continue
			}
			term, cancel := context.WithCancel(ctx)
			l.holder, l.end[id] = id, cancel
			l.mu.Unlock()
			lead(term)
			cancel()
			l.mu.Lock()
			if l.holder == id {
				l.holder = ""
			}
			l.mu.Unlock()
		}
		return nil
	}
}

// revoke takes the Lease from id for good (a replica killed or cut off).
func (l *testLease) revoke(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revoked[id] = true
	if cancel := l.end[id]; cancel != nil {
		cancel()
	}
}

func (l *testLease) holderIs(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder == id
}

// A deletion under way on a leader that loses the Lease stops there and resumes on the
// next leader from its recorded steps: nothing done is done again, and the replica that
// lost the Lease does nothing more.
func TestLeaderHandover_ADeletionResumesOnTheNewLeaderFromItsRecordedStep(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "db-1", node.RoleWorker, "52:54:00:00:00:31", node.StateActive)
	// The budget allows no eviction yet: the drain waits, and the deletion with it.
	cs := fakeCluster(kubeNode("db-1", true),
		pod("default", "db-0", "db-1", map[string]string{"app": "db"}), budget("default", "db", 0))
	setHelperStatus(cs, corev1.PodRunning, 0, "")
	var evictions atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "eviction" {
			evictions.Add(1)
		}
		return false, nil, nil // the fake's own handling goes on
	})
	lease := newTestLease()
	cfgA, cfgB := testConfig(nil), testConfig(nil)
	cfgA.DrainTimeout, cfgB.DrainTimeout = time.Minute, time.Minute
	cfgA.Elect, cfgB.Elect = lease.elect("a"), lease.elect("b")
	startController(t, cs, st, cfgA)
	eventually(t, "replica a leads", func() bool { return lease.holderIs("a") })
	b := startController(t, cs, st, cfgB)

	deleteThroughAPI(t, st, b, "db-1", node.DeleteReinstall, false) // the API of a follower
	eventually(t, "the leader cordons and starts the drain", func() bool {
		n := nodeState(t, st, "db-1")
		return n.DeletionStepDone("cordon") && evictions.Load() > 0
	})
	lease.revoke("a")
	eventually(t, "replica b leads", func() bool { return lease.holderIs("b") })
	// The budget makes room; only the new leader is left to use it.
	ctx := context.Background()
	if _, err := cs.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(ctx, budget("default", "db", 1), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion finishes on the new leader", func() bool { return nodeState(t, st, "db-1").State == node.StateWiping })

	var all []string
	for _, e := range events(t, st, "db-1") {
		if e.Source == source && e.Type != node.EventTransition && !strings.HasPrefix(e.Reason, "Kubernetes Node") {
			all = append(all, e.Reason)
		}
	}
	wantPrefixes(t, all, []string{
		"removing from the cluster", // replica a
		"quorum check: ",
		"cordon: Node db-1 cordoned",
		"removing from the cluster", // replica b, after the handover
		"quorum check: done before this run",
		"cordon: done before this run",
		"drain: 1 pods evicted",
		"network boot: pod bootyard-netboot-db-1-g1 set the next boot",
		"delete Node: Node db-1 deleted",
	})
	if n := nodeState(t, st, "db-1"); n.State != node.StateWiping || n.FailedFrom != "" {
		t.Fatalf("db-1 %s (failed from %q): the lost term must not fail the deletion", n.State, n.FailedFrom)
	}
}
