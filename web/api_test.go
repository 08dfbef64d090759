package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

const testToken = "test-admin-token-0123456789"

type apiHarness struct {
	t   *testing.T
	srv *httptest.Server
	st  *store.Store
}

// newAPI is the operator server on a fresh store; with adds services (an image catalog,
// a cloud-init renderer) to its Deps.
func newAPI(t *testing.T, with ...func(st *store.Store, d *Deps)) *apiHarness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	deps := Deps{Inventory: st}
	for _, w := range with {
		w(st, &deps)
	}
	s, err := New(Config{AdminToken: testToken}, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &apiHarness{t: t, srv: srv, st: st}
}

// call sends a request (with the admin token when admin is true) and returns status and body.
func (h *apiHarness) call(method, path string, body any, admin bool) (int, []byte) {
	h.t.Helper()
	return h.send(method, path, "application/json", body, admin)
}

// send is call with another content type (a CSV file, say).
func (h *apiHarness) send(method, path, contentType string, body any, admin bool) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if admin {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (h *apiHarness) mustImport(body string) node.Node {
	h.t.Helper()
	code, out := h.call("POST", "/api/v1/nodes", body, true)
	if code != http.StatusCreated {
		h.t.Fatalf("import %s: %d %s", body, code, out)
	}
	var n node.Node
	if err := json.Unmarshal(out, &n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestAPI_ImportValidationErrorsNameTheField(t *testing.T) {
	h := newAPI(t)
	h.mustImport(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	tests := []struct {
		name      string
		body      string
		admin     bool
		wantCode  int
		wantField string
		wantMsg   string
	}{
		{"missing token", `{"macs":["52:54:00:00:00:09"],"role":"worker"}`, false, 401, "", "admin token"},
		{"bad MAC", `{"macs":["52:54:00:zz:00:01"],"role":"worker"}`, true, 422, "mac", "not a hardware address"},
		{"EUI-64 MAC", `{"macs":["02:00:5e:10:00:00:00:01"],"role":"worker"}`, true, 422, "mac", "want 6 bytes"},
		{"no MAC", `{"role":"worker"}`, true, 422, "mac", "MAC address is required"},
		{"unknown role", `{"macs":["52:54:00:00:00:02"],"role":"master"}`, true, 422, "role", "server or worker"},
		{"bad label key", `{"macs":["52:54:00:00:00:02"],"role":"worker","labels":{"-bad":"x"}}`, true, 422, "labels", "label key"},
		{"bad label value", `{"macs":["52:54:00:00:00:02"],"role":"worker","labels":{"gpu":"a b"}}`, true, 422, "labels", "value"},
		{"bad taint effect", `{"macs":["52:54:00:00:00:02"],"role":"worker","taints":["gpu=true:Sometimes"]}`, true, 422, "taints", "NoSchedule"},
		{"taint without effect", `{"macs":["52:54:00:00:00:02"],"role":"worker","taints":["gpu=true"]}`, true, 422, "taints", "key=value:Effect"},
		{"bad name", `{"macs":["52:54:00:00:00:02"],"role":"worker","name":"Bad_Name"}`, true, 422, "name", "RFC 1123"},
		{"ip without prefix", `{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"10.0.0.5"}`, true, 422, "ip", "CIDR"},
		{"gateway outside subnet", `{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"10.0.0.5/24","gateway":"10.1.0.1"}`, true, 422, "", "outside"},
		{"broadcast MAC", `{"macs":["ff:ff:ff:ff:ff:ff"],"role":"worker"}`, true, 422, "mac", "group"},
		{"multicast MAC", `{"macs":["01:00:5e:00:00:fb"],"role":"worker"}`, true, 422, "mac", "group"},
		{"IPv4-mapped ip", `{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"::ffff:10.0.0.5/120"}`, true, 422, "ip", "IPv4-mapped"},
		{"IPv4-mapped gateway", `{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"10.0.0.5/24","gateway":"::ffff:10.0.0.1"}`, true, 422, "gateway", "IPv4-mapped"},
		{"IPv4-mapped dns", `{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"10.0.0.5/24","dns":["::ffff:10.0.0.2"]}`, true, 422, "dns", "IPv4-mapped"},
		{"duplicate MAC", `{"macs":["52-54-00-00-00-01"],"role":"worker","name":"other"}`, true, 409, "", "belongs to node cp-1"},
		{"duplicate name", `{"macs":["52:54:00:00:00:03"],"role":"worker","name":"cp-1"}`, true, 409, "", "taken"},
		{"malformed JSON", `{"macs":[`, true, 400, "", "not valid JSON"},
		{"unknown field", `{"macs":["52:54:00:00:00:02"],"role":"worker","rolle":"x"}`, true, 400, "", "unknown field"},
		{"empty body", ``, true, 400, "", "empty body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := h.call("POST", "/api/v1/nodes", tc.body, tc.admin)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tc.wantCode, out)
			}
			var e struct{ Error, Field string }
			if err := json.Unmarshal(out, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", out)
			}
			if e.Field != tc.wantField {
				t.Errorf("field %q, want %q (%s)", e.Field, tc.wantField, e.Error)
			}
			if !strings.Contains(e.Error, tc.wantMsg) {
				t.Errorf("error %q does not mention %q", e.Error, tc.wantMsg)
			}
		})
	}
	// Nothing of the refused imports reached the store.
	code, out := h.call("GET", "/api/v1/nodes", nil, true)
	var nodes store.NodePage
	if code != 200 || json.Unmarshal(out, &nodes) != nil || len(nodes.Nodes) != 1 {
		t.Fatalf("after refused imports: %d %s", code, out)
	}
}

func TestAPI_OversizedBodyIsRefused(t *testing.T) {
	h := newAPI(t)
	big := `{"macs":["52:54:00:00:00:01"],"role":"worker","labels":{"a":"` + strings.Repeat("x", 2<<20) + `"}}`
	code, out := h.call("POST", "/api/v1/nodes", big, true)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %.200s", code, out)
	}
	if !json.Valid(out) || !strings.Contains(string(out), "error") {
		t.Errorf("body %s", out)
	}
}

func TestAPI_NodeLifecycleThroughEveryEndpoint(t *testing.T) {
	h := newAPI(t)
	cp := h.mustImport(`{"macs":["52:54:00:12:34:56"],"role":"server","name":"cp-1"}`)
	if !cp.ClusterInit || cp.State != node.StateRegistered {
		t.Fatalf("first server: %+v", cp)
	}
	gpu := h.mustImport(`{"macs":["aabb.ccdd.ee01"],"role":"worker","name":"gpu-1","ip":"10.20.0.31/24","gateway":"10.20.0.1","dns":["10.20.0.2"],"labels":{"gpu":"a100"},"taints":["gpu=true:NoSchedule"]}`)
	if gpu.MACs[0].String() != "aa:bb:cc:dd:ee:01" || gpu.IP.String() != "10.20.0.31/24" || gpu.Taints[0].String() != "gpu=true:NoSchedule" {
		t.Fatalf("gpu-1 stored as %+v", gpu)
	}
	unnamed := h.mustImport(`{"mac":"AA-BB-CC-DD-EE-02","role":"worker"}`)
	if unnamed.Name != "node-aabbccddee02" {
		t.Errorf("default name %q", unnamed.Name)
	}

	// The JSON shape scripts rely on.
	code, out := h.call("GET", "/api/v1/nodes/gpu-1", nil, true)
	var raw map[string]any
	if code != 200 || json.Unmarshal(out, &raw) != nil {
		t.Fatalf("get: %d %s", code, out)
	}
	for _, k := range []string{"name", "macs", "role", "state", "ip", "labels", "taints"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("node JSON lacks %q: %s", k, out)
		}
	}
	// By MAC, in any accepted form.
	if code, out := h.call("GET", "/api/v1/nodes/AA-BB-CC-DD-EE-01", nil, true); code != 200 || !strings.Contains(string(out), `"gpu-1"`) {
		t.Errorf("get by MAC: %d %s", code, out)
	}
	if code, _ := h.call("GET", "/api/v1/nodes/nope", nil, true); code != 404 {
		t.Errorf("unknown node: %d", code)
	}
	// Filters.
	code, out = h.call("GET", "/api/v1/nodes?role=worker", nil, true)
	var list store.NodePage
	if code != 200 || json.Unmarshal(out, &list) != nil || len(list.Nodes) != 2 || list.Total != 2 {
		t.Errorf("role filter: %d %s", code, out)
	}
	// Update.
	if code, out := h.call("PATCH", "/api/v1/nodes/gpu-1", `{"labels":{"gpu":"h100"}}`, false); code != 401 {
		t.Errorf("update without token: %d %s", code, out)
	}
	code, out = h.call("PATCH", "/api/v1/nodes/gpu-1", `{"labels":{"gpu":"h100"},"taints":[]}`, true)
	if code != 200 || !strings.Contains(string(out), `"h100"`) || strings.Contains(string(out), "NoSchedule") {
		t.Errorf("update: %d %s", code, out)
	}
	if code, out := h.call("PATCH", "/api/v1/nodes/gpu-1", `{"macs":["52:54:00:12:34:56"]}`, true); code != 409 {
		t.Errorf("update onto another node's MAC: %d %s", code, out)
	}
	if code, out := h.call("PATCH", "/api/v1/nodes/gpu-1", `{"taints":["x:Never"]}`, true); code != 422 {
		t.Errorf("update with bad taint: %d %s", code, out)
	}
	// Events.
	code, out = h.call("GET", "/api/v1/nodes/gpu-1/events", nil, true)
	var events []node.Event
	if code != 200 || json.Unmarshal(out, &events) != nil || len(events) != 2 || events[0].To != node.StateRegistered {
		t.Errorf("events: %d %s", code, out)
	}
	// Retry is only for failed nodes.
	if code, out := h.call("POST", "/api/v1/nodes/gpu-1/retry", nil, true); code != 409 {
		t.Errorf("retry of a registered node: %d %s", code, out)
	}
	// Delete: confirmation, then removal of a never-installed node.
	if code, out := h.call("DELETE", "/api/v1/nodes/gpu-1", `{"confirm":"gpu"}`, true); code != 422 {
		t.Errorf("delete with wrong confirm: %d %s", code, out)
	}
	if code, out := h.call("DELETE", "/api/v1/nodes/gpu-1", `{"confirm":"gpu-1"}`, false); code != 401 {
		t.Errorf("delete without token: %d %s", code, out)
	}
	if code, out := h.call("DELETE", "/api/v1/nodes/gpu-1", `{"confirm":"gpu-1","mode":"melt"}`, true); code != 422 {
		t.Errorf("delete with bad mode: %d %s", code, out)
	}
	if code, out := h.call("DELETE", "/api/v1/nodes/gpu-1", `{"confirm":"gpu-1"}`, true); code != 200 || !strings.Contains(string(out), `"removed":true`) {
		t.Errorf("delete: %d %s", code, out)
	}
	if code, _ := h.call("GET", "/api/v1/nodes/gpu-1", nil, true); code != 404 {
		t.Errorf("deleted node still there: %d", code)
	}
	if code, _ := h.call("GET", "/healthz", nil, false); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

func TestAPI_DeletingInstalledNodesChecksTheCluster(t *testing.T) {
	h := newAPI(t)
	ctx := t.Context()
	for i, name := range []string{"cp-1", "cp-2", "cp-3"} {
		h.mustImport(`{"macs":["52:54:00:00:01:0` + string(rune('1'+i)) + `"],"role":"server","name":"` + name + `"}`)
	}
	h.mustImport(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	// Carry every node to installed through the state table, as the boot path would.
	for _, name := range []string{"cp-1", "cp-2", "cp-3", "w-1"} {
		if _, err := h.st.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
			var evs []node.Event
			for _, to := range []node.State{node.StateProvisioning, node.StateInstalled} {
				ev, err := n.Transition(to, "test", "test", n.UpdatedAt.Add(1))
				if err != nil {
					return nil, err
				}
				evs = append(evs, ev)
			}
			return evs, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// cp-3 is known NotReady: removing cp-2 would leave 2 members with 1 up.
	if _, err := h.st.UpdateNode(ctx, "cp-3", func(n *node.Node) ([]node.Event, error) {
		n.Cluster = &node.ClusterStatus{Ready: false}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	code, out := h.call("DELETE", "/api/v1/nodes/cp-2", `{"confirm":"cp-2"}`, true)
	if code != 409 || !strings.Contains(string(out), "quorum") {
		t.Fatalf("quorum-breaking delete: %d %s", code, out)
	}
	code, out = h.call("DELETE", "/api/v1/nodes/cp-1", `{"confirm":"cp-1"}`, true)
	if code != 409 || !strings.Contains(string(out), "cluster-init") {
		t.Fatalf("cluster-init delete: %d %s", code, out)
	}
	// A worker goes through deleting to wiping at once when no cluster integration drains it.
	code, out = h.call("DELETE", "/api/v1/nodes/w-1", `{"confirm":"w-1"}`, true)
	if code != 202 || !strings.Contains(string(out), `"state":"wiping"`) {
		t.Fatalf("worker delete: %d %s", code, out)
	}
	// --force overrides the quorum refusal.
	code, out = h.call("DELETE", "/api/v1/nodes/cp-2?force=true", `{"confirm":"cp-2"}`, true)
	if code != 202 || !strings.Contains(string(out), `"state":"wiping"`) {
		t.Fatalf("forced delete: %d %s", code, out)
	}
	events, err := h.st.Events(ctx, "cp-2", 0)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-2:]
	if last[0].To != node.StateDeleting || !strings.Contains(last[0].Reason, "forced") || last[1].To != node.StateWiping {
		t.Errorf("events of a forced delete: %+v", last)
	}
}

func TestAPI_ClusterSettingsKeepTheTokenSecret(t *testing.T) {
	h := newAPI(t)
	const secret = "K10-very-secret-join-token"
	tests := []struct {
		name     string
		body     string
		wantCode int
		wantMsg  string
	}{
		{"port 8443 refused", `{"serverURL":"https://10.0.0.1:8443"}`, 422, "6443 or 9345"},
		{"http refused", `{"serverURL":"http://10.0.0.1:6443"}`, 422, "https"},
		{"bad install url", `{"installURL":"ftp://x"}`, 422, "install URL"},
		{"valid", `{"serverURL":"https://10.0.0.1:6443","token":"` + secret + `","sshAuthorizedKeys":["ssh-ed25519 AAAA op@desk"]}`, 200, ""},
		{"9345 accepted", `{"serverURL":"https://cp.example:9345"}`, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := h.call("PATCH", "/api/v1/cluster", tc.body, true)
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantMsg) {
				t.Fatalf("%d %s", code, out)
			}
			if strings.Contains(string(out), secret) {
				t.Fatalf("update answer shows the token: %s", out)
			}
		})
	}
	code, out := h.call("GET", "/api/v1/cluster", nil, true)
	if code != 200 || strings.Contains(string(out), secret) || !strings.Contains(string(out), "[redacted]") {
		t.Fatalf("cluster get: %d %s", code, out)
	}
	if code, _ := h.call("GET", "/api/v1/cluster?reveal=true", nil, false); code != 401 {
		t.Errorf("reveal without admin: %d", code)
	}
	code, out = h.call("GET", "/api/v1/cluster?reveal=true", nil, true)
	if code != 200 || !strings.Contains(string(out), secret) {
		t.Errorf("reveal with admin: %d %s", code, out)
	}
	if code, out := h.call("PUT", "/api/v1/cluster", `{"token":"x"}`, false); code != 401 {
		t.Errorf("update without token: %d %s", code, out)
	}
}

func TestAPI_ClusterShowsQuorumAndEvenCountWarning(t *testing.T) {
	h := newAPI(t)
	tests := []struct {
		mac          string
		wantServers  int
		wantMajority int
		wantTol      int
		wantEvenWarn bool
	}{
		{"52:54:00:00:00:01", 1, 1, 0, false},
		{"52:54:00:00:00:02", 2, 2, 0, true},
		{"52:54:00:00:00:03", 3, 2, 1, false},
	}
	for _, tc := range tests {
		h.mustImport(`{"macs":["` + tc.mac + `"],"role":"server"}`)
		code, out := h.call("GET", "/api/v1/cluster", nil, true)
		var v struct {
			Quorum   node.Quorum
			Next     node.Quorum
			Warnings []string
		}
		if code != 200 || json.Unmarshal(out, &v) != nil {
			t.Fatalf("%d %s", code, out)
		}
		if v.Quorum.Servers != tc.wantServers || v.Quorum.Majority != tc.wantMajority || v.Quorum.FailureTolerance != tc.wantTol {
			t.Errorf("%d servers: quorum %+v", tc.wantServers, v.Quorum)
		}
		if v.Next.Servers != tc.wantServers+1 {
			t.Errorf("next %+v", v.Next)
		}
		even := strings.Contains(strings.Join(v.Warnings, "\n"), "even number")
		if even != tc.wantEvenWarn {
			t.Errorf("%d servers: even warning %v, warnings %q", tc.wantServers, even, v.Warnings)
		}
	}
}

func TestAPI_ServerURLIsStoredNormalisedAndASecureTokenIsWarnedAbout(t *testing.T) {
	h := newAPI(t)
	tests := []struct {
		name, body string
		wantCode   int
		wantInBody string
	}{
		{"trailing slash trimmed", `{"serverURL":"https://10.0.0.1:6443/"}`, 200, `"serverURL":"https://10.0.0.1:6443"`},
		{"a path refused", `{"serverURL":"https://10.0.0.1:6443/k8s"}`, 422, "no path"},
		{"k3s secure token warned about", `{"token":"K10e3b0c44298fc1c::server:5f2a9c"}`, 200, "cluster-info check rejects"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := h.call("PATCH", "/api/v1/cluster", tc.body, true)
			if code != tc.wantCode || !strings.Contains(string(out), tc.wantInBody) {
				t.Fatalf("PATCH %s: %d %s, want %d with %q", tc.body, code, out, tc.wantCode, tc.wantInBody)
			}
		})
	}
	code, out := h.call("GET", "/api/v1/cluster", nil, true)
	if code != 200 || !strings.Contains(string(out), `"serverURL":"https://10.0.0.1:6443"`) || strings.Contains(string(out), "6443/") {
		t.Fatalf("stored server URL: %d %s", code, out)
	}
	if strings.Contains(string(out), "5f2a9c") {
		t.Fatalf("the warning shows the token: %s", out)
	}
}

func TestAPI_ImportRefusesLabelsTheKubeletRefuses(t *testing.T) {
	h := newAPI(t)
	tests := []struct {
		label    string
		wantCode int
	}{
		{`"node-role.kubernetes.io/worker":"true"`, 422},
		{`"kubernetes.io/foo":"bar"`, 422},
		{`"node.kubernetes.io/instance-type":"m5.large"`, 201},
	}
	for i, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			body := `{"macs":["52:54:00:00:0a:0` + string(rune('1'+i)) + `"],"role":"worker","labels":{` + tc.label + `}}`
			code, out := h.call("POST", "/api/v1/nodes", body, true)
			if code != tc.wantCode {
				t.Fatalf("import with %s: %d %s, want %d", tc.label, code, out, tc.wantCode)
			}
			if code == 422 && !strings.Contains(string(out), "kubelet refuses") {
				t.Fatalf("refusal does not say why: %s", out)
			}
		})
	}
}

func TestAPI_ClusterShowsTheJoinTurnHolderSinceAndUntil(t *testing.T) {
	granted := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	turns := cloudinit.NewJoinTurns(0, func() time.Time { return granted })
	h := newAPI(t, func(_ *store.Store, d *Deps) { d.JoinTurns = turns })
	var v struct {
		JoinTurn *cloudinit.Turn `json:"joinTurn"`
	}
	code, out := h.call("GET", "/api/v1/cluster", nil, true)
	if code != 200 || json.Unmarshal(out, &v) != nil || v.JoinTurn != nil {
		t.Fatalf("no holder: %d %s", code, out)
	}
	if code, out := h.call("PATCH", "/api/v1/cluster", `{"joinTurnMinutes":45}`, true); code != 200 || !strings.Contains(string(out), `"joinTurnMinutes":45`) {
		t.Fatalf("set joinTurnMinutes: %d %s", code, out)
	}
	if code, out := h.call("PATCH", "/api/v1/cluster", `{"joinTurnMinutes":-5}`, true); code != 422 {
		t.Fatalf("negative joinTurnMinutes: %d %s", code, out)
	}
	turns.Take(t.Context(), "cp-1", 45*time.Minute)
	code, out = h.call("GET", "/api/v1/cluster", nil, true)
	if code != 200 || json.Unmarshal(out, &v) != nil || v.JoinTurn == nil {
		t.Fatalf("holder: %d %s", code, out)
	}
	if v.JoinTurn.Node != "cp-1" || !v.JoinTurn.Since.Equal(granted) || !v.JoinTurn.Until.Equal(granted.Add(45*time.Minute)) {
		t.Errorf("joinTurn = %+v, want cp-1 since %v until 45 minutes later", v.JoinTurn, granted)
	}
}
