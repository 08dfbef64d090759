package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// fakeCluster records what the API asks of the cluster integration.
type fakeCluster struct {
	mu      sync.Mutex
	refuse  error
	checked []string
	started []string // "name force=bool"
	servers int
	init    string
}

func (f *fakeCluster) CheckDeletion(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = append(f.checked, name)
	return f.refuse
}

func (f *fakeCluster) StartDeletion(_ context.Context, name string, force bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, fmt.Sprintf("%s force=%v", name, force))
}

func (f *fakeCluster) LiveServers() (int, string, bool) { return f.servers, f.init, true }

func newConnectedAPI(t *testing.T, cl *fakeCluster) *apiHarness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{AdminToken: testToken, ClusterConnected: func() bool { return true }}, Deps{Inventory: st, Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &apiHarness{t: t, srv: srv, st: st}
}

// installed imports a worker and walks it to installed, as the installer would.
func (h *apiHarness) installed(name, mac string) {
	h.t.Helper()
	h.mustImport(fmt.Sprintf(`{"macs":[%q],"role":"worker","name":%q}`, mac, name))
	for _, to := range []node.State{node.StateProvisioning, node.StateInstalled} {
		if _, err := h.st.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
			ev, err := n.Transition(to, "test", "test", time.Now().UTC())
			return []node.Event{ev}, err
		}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestAPI_ConnectedDeletionIsCheckedLiveAndHandedToTheCluster(t *testing.T) {
	tests := []struct {
		name        string
		refuse      error
		force       bool
		wantStatus  int
		wantChecked int
		wantStarted []string
	}{
		{"allowed: 202, deleting, handed over", nil, false, http.StatusAccepted, 1, []string{"w1 force=false"}},
		{"refused by the live cluster: 409, nothing started", fmt.Errorf("live cluster: %w", node.ErrRefused), false, http.StatusConflict, 1, nil},
		{"forced: no live check, handed over with force", fmt.Errorf("live cluster: %w", node.ErrRefused), true, http.StatusAccepted, 0, []string{"w1 force=true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &fakeCluster{refuse: tt.refuse}
			h := newConnectedAPI(t, cl)
			h.installed("w1", "52:54:00:aa:00:01")
			code, out := h.call("DELETE", "/api/v1/nodes/w1", map[string]any{"confirm": "w1", "force": tt.force}, true)
			if code != tt.wantStatus {
				t.Fatalf("DELETE: %d %s, want %d", code, out, tt.wantStatus)
			}
			n, _ := h.st.GetNode(context.Background(), "w1")
			wantState := node.StateDeleting
			if tt.wantStatus != http.StatusAccepted {
				wantState = node.StateInstalled
			}
			if n.State != wantState {
				t.Errorf("state %s, want %s: a connected deletion stops at deleting for the cluster", n.State, wantState)
			}
			if len(cl.checked) != tt.wantChecked || fmt.Sprint(cl.started) != fmt.Sprint(tt.wantStarted) {
				t.Errorf("checked %v, started %v; want %d checks and %v", cl.checked, cl.started, tt.wantChecked, tt.wantStarted)
			}
		})
	}
}

func TestAPI_RetryOfAFailedDeletionResumesItInTheCluster(t *testing.T) {
	cl := &fakeCluster{}
	h := newConnectedAPI(t, cl)
	h.installed("w2", "52:54:00:aa:00:02")
	if code, out := h.call("DELETE", "/api/v1/nodes/w2", map[string]any{"confirm": "w2"}, true); code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", code, out)
	}
	if _, err := h.st.UpdateNode(context.Background(), "w2", func(n *node.Node) ([]node.Event, error) {
		ev, err := n.Transition(node.StateFailed, "drain timed out", "cluster", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	if code, out := h.call("POST", "/api/v1/nodes/w2/retry", nil, true); code != http.StatusOK {
		t.Fatalf("retry: %d %s", code, out)
	}
	if want := "[w2 force=false w2 force=false]"; fmt.Sprint(cl.started) != want {
		t.Errorf("started %v, want the deletion and its retry: %s", cl.started, want)
	}
}

func TestAPI_ConnectedClusterViewIsTheLiveOne(t *testing.T) {
	h := newConnectedAPI(t, &fakeCluster{servers: 3, init: "cp-0"})
	h.mustImport(`{"macs":["52:54:00:aa:00:03"],"role":"server","name":"cp-9"}`)
	code, out := h.call("GET", "/api/v1/cluster", nil, true)
	if code != http.StatusOK {
		t.Fatalf("GET /cluster: %d %s", code, out)
	}
	var v clusterView
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	if !v.Connected || v.Quorum.Servers != 3 || v.Quorum.FailureTolerance != 1 || v.ClusterInit != "cp-0" {
		t.Errorf("cluster view connected=%v quorum=%+v init=%q; want the cluster's 3 servers and cp-0", v.Connected, v.Quorum, v.ClusterInit)
	}
}
