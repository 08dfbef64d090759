package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// recordingOOB is the BMC power the controller falls back on, recording what it asked.
type recordingOOB struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (r *recordingOOB) Netboot(_ context.Context, name, why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "netboot "+name+": "+why)
	return r.err
}

func (r *recordingOOB) PowerOff(_ context.Context, name, why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "off "+name+": "+why)
	return r.err
}

func (r *recordingOOB) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func giveBMC(t *testing.T, st *store.Store, name string) {
	t.Helper()
	if _, err := st.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
		n.BMC = &node.BMC{Protocol: node.BMCIPMI, Address: "10.0.0.9", User: "admin"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDeletion_AMachineKubernetesCannotRebootIsRebootedThroughItsBMC(t *testing.T) {
	tests := []struct {
		name     string
		kube     *corev1.Node // nil: no Kubernetes Node
		bmc      bool
		bmcErr   error
		wantStep string
		wantOOB  string
	}{
		{"NotReady node: straight to the BMC, no pod", kubeNode("gpu-1", false), true, nil,
			"network boot: Node gpu-1 is NotReady: the BMC set the next boot to the network and power-cycled the machine",
			"netboot gpu-1: deletion: Node gpu-1 is NotReady"},
		{"the reboot pod never runs", kubeNode("gpu-1", true), true, nil,
			"network boot: pod bootyard-netboot-gpu-1-g1 did not run within 1.5s (node down?): the BMC set the next boot",
			"netboot gpu-1: deletion: pod bootyard-netboot-gpu-1-g1 did not run within 1.5s (node down?)"},
		{"no Kubernetes Node", nil, true, nil,
			"network boot: no Kubernetes Node to run the reboot on: the BMC set the next boot",
			"netboot gpu-1: deletion: no Kubernetes Node to run the reboot on"},
		{"the BMC fails too: the deletion goes on, saying so", kubeNode("gpu-1", false), true, errors.New("no answer"),
			"warning network boot: Node gpu-1 is NotReady; the BMC failed too (no answer): the machine is wiped at its next network boot",
			"netboot gpu-1: deletion: Node gpu-1 is NotReady"},
		{"no BMC: as before", kubeNode("gpu-1", false), false, nil,
			"warning network boot: pod bootyard-netboot-gpu-1-g1 did not run within 1.5s (node down?): the machine is wiped at its next network boot", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			importNode(t, st, "gpu-1", node.RoleWorker, "52:54:00:00:00:11", node.StateActive)
			if tt.bmc {
				giveBMC(t, st, "gpu-1")
			}
			cs := fakeCluster()
			if tt.kube != nil {
				if _, err := cs.CoreV1().Nodes().Create(context.Background(), tt.kube, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			oob := &recordingOOB{err: tt.bmcErr}
			cfg := testConfig(nil)
			cfg.OutOfBand = oob
			c := startController(t, cs, st, cfg)
			deleteThroughAPI(t, st, c, "gpu-1", node.DeleteReinstall, true)
			eventually(t, "gpu-1 leaves deleting", func() bool { return nodeState(t, st, "gpu-1").State != node.StateDeleting })
			if n := nodeState(t, st, "gpu-1"); n.State != node.StateWiping {
				t.Fatalf("state %s (%s), want wiping", n.State, n.StateReason)
			}
			var step string
			for _, e := range clusterEvents(t, st, "gpu-1") {
				if strings.Contains(e, "network boot:") {
					step = e
				}
			}
			if !strings.HasPrefix(step, tt.wantStep) {
				t.Fatalf("network boot step %q, want it to begin %q", step, tt.wantStep)
			}
			calls := oob.list()
			if tt.wantOOB == "" {
				if len(calls) != 0 {
					t.Fatalf("BMC asked %q for a node without one", calls)
				}
				return
			}
			if len(calls) != 1 || calls[0] != tt.wantOOB {
				t.Fatalf("BMC calls %q, want [%q]", calls, tt.wantOOB)
			}
		})
	}
}

func TestFence_AMachineThatKeepsRejoiningIsPoweredOff(t *testing.T) {
	st := openStore(t)
	importNode(t, st, "old-1", node.RoleWorker, "52:54:00:00:03:01", node.StateDeleted)
	giveBMC(t, st, "old-1")
	cs := fakeCluster()
	oob := &recordingOOB{}
	cfg := testConfig(nil)
	cfg.OutOfBand = oob
	startController(t, cs, st, cfg)
	ctx := context.Background()
	rejoin := func() {
		t.Helper()
		if _, err := cs.CoreV1().Nodes().Create(ctx, kubeNode("old-1", true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the Node is fenced", func() bool {
			_, err := cs.CoreV1().Nodes().Get(ctx, "old-1", metav1.GetOptions{})
			return err != nil
		})
	}
	rejoin()
	if calls := oob.list(); len(calls) != 0 {
		t.Fatalf("powered off after one rejoin (a wipe may still be coming): %q", calls)
	}
	rejoin()
	eventually(t, "the rejoining machine is powered off", func() bool { return len(oob.list()) == 1 })
	if got := oob.list()[0]; got != "off old-1: fenced 2 times: the machine keeps rejoining the cluster" {
		t.Fatalf("BMC call %q", got)
	}
}
