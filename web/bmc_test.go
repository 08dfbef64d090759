package web

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bootyard/bootyard/bmc"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// fakePower records what the API and pages asked of the BMC layer.
type fakePower struct {
	mu       sync.Mutex
	requests []string
	imported []string
}

func (f *fakePower) Do(_ context.Context, name string, req bmc.Request, _ string) (bmc.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, name+" "+req.String())
	return bmc.Result{Node: name, Action: req.Action, BootOnce: req.BootOnce, Power: bmc.PowerOn}, nil
}

func (f *fakePower) Imported(name, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imported = append(f.imported, name)
}

func (f *fakePower) Observation(node.Node) (bmc.Observation, bool) {
	return bmc.Observation{Power: bmc.PowerOff}, true
}

func (f *fakePower) calls() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...), append([]string(nil), f.imported...)
}

// newBMCHarness is the server with a fake power service, logging into a buffer that the
// tests read once every request has been answered.
func newBMCHarness(t *testing.T) (*uiHarness, *apiHarness, *fakePower, *bytes.Buffer) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &bytes.Buffer{}
	power := &fakePower{}
	s, err := New(Config{AdminToken: testToken, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		Deps{Inventory: st, Power: power, PowerStates: power})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &uiHarness{t: t, srv: srv, st: st, client: newBrowserClient(t)}, &apiHarness{t: t, srv: srv, st: st}, power, logs
}

func TestBMC_PasswordIsStoredApartAndNeverComesBack(t *testing.T) {
	ui, api, power, logs := newBMCHarness(t)
	ctx := context.Background()
	passwords := []string{"Imported-pw-1138", "Patched-pw-2187", "Csv-pw-4471"}
	var seen []string // every response body and page
	keep := func(code int, body []byte) []byte {
		seen = append(seen, string(body))
		return body
	}
	secret := func(name string) string {
		b, err := api.st.NodeSecret(ctx, name, node.BMCPasswordKey)
		if err != nil {
			t.Fatalf("secret of %s: %v", name, err)
		}
		return string(b)
	}

	code, body := api.call("POST", "/api/v1/nodes", map[string]any{"mac": "02:00:00:00:15:01", "role": "worker", "name": "w1",
		"bmc": "redfish://10.0.0.50", "bmcUser": "admin", "bmcPassword": passwords[0]}, true)
	keep(code, body)
	if code != http.StatusCreated || !strings.Contains(string(body), `"passwordSet":true`) || !strings.Contains(string(body), `"address":"10.0.0.50"`) {
		t.Fatalf("import: %d %s", code, body)
	}
	if got := secret("w1"); got != passwords[0] {
		t.Fatalf("stored password %q", got)
	}
	if _, imported := power.calls(); len(imported) != 1 || imported[0] != "w1" {
		t.Fatalf("lifecycle told of imports %v, want [w1]", imported)
	}

	code, body = api.call("PATCH", "/api/v1/nodes/w1", map[string]any{"bmcPassword": passwords[1]}, true)
	if keep(code, body); code != http.StatusOK {
		t.Fatalf("patch: %d %s", code, body)
	}
	if got := secret("w1"); got != passwords[1] {
		t.Fatalf("password after PATCH %q", got)
	}

	csv := "mac,role,name,bmc,bmc_user,bmc_password\n02:00:00:00:15:02,worker,w2,ipmi://10.0.0.51,root," + passwords[2] + "\n"
	code, body = api.send("POST", "/api/v1/bulk/import", "text/csv", csv, true)
	if keep(code, body); code/100 != 2 {
		t.Fatalf("csv import: %d %s", code, body)
	}
	if got := secret("w2"); got != passwords[2] {
		t.Fatalf("password from CSV %q", got)
	}

	for _, path := range []string{"/api/v1/nodes/w1", "/api/v1/nodes/w2", "/api/v1/nodes", "/api/v1/nodes/w1/events", "/api/v1/nodes/w2/events"} {
		code, body := api.call("GET", path, nil, true)
		if keep(code, body); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	ui.login()
	for _, path := range []string{"/ui/nodes", "/ui/nodes/w1", "/ui/nodes/w2"} {
		p := ui.get(path)
		if seen = append(seen, p.body); p.code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, p.code)
		}
	}
	if p := ui.get("/ui/nodes/w1"); !strings.Contains(p.body, `id="power-cycle"`) || !strings.Contains(p.body, "password set") {
		t.Fatalf("node page has no power buttons:\n%s", p.body)
	}
	for _, text := range seen {
		for _, pw := range passwords {
			if strings.Contains(text, pw) {
				t.Fatalf("a response carries the password %q:\n%s", pw, text)
			}
		}
	}
	for _, pw := range passwords {
		if strings.Contains(logs.String(), pw) {
			t.Fatalf("the log carries the password %q:\n%s", pw, logs.String())
		}
	}

	// Removing the BMC removes its password.
	if code, body := api.call("PATCH", "/api/v1/nodes/w2", map[string]any{"bmc": ""}, true); code != http.StatusOK || strings.Contains(string(body), `"bmc"`) {
		t.Fatalf("remove BMC: %d %s", code, body)
	}
	if _, err := api.st.NodeSecret(ctx, "w2", node.BMCPasswordKey); err == nil {
		t.Fatal("password kept after the BMC was removed")
	}
}

func TestBMC_BadSettingsAreRefusedWithoutEchoingAPassword(t *testing.T) {
	_, api, _, _ := newBMCHarness(t)
	for _, tc := range []struct {
		name string
		in   map[string]any
	}{
		{"password in the URL", map[string]any{"bmc": "ipmi://admin:Url-pw-99@10.0.0.9"}},
		{"unknown scheme", map[string]any{"bmc": "telnet://10.0.0.9"}},
		{"bad port", map[string]any{"bmc": "ipmi://10.0.0.9:99999"}},
		{"path", map[string]any{"bmc": "redfish://10.0.0.9/redfish/v1/Systems/1"}},
		{"password without a BMC", map[string]any{"bmcPassword": "Orphan-pw-77"}},
		{"system ID on IPMI", map[string]any{"bmc": "ipmi://10.0.0.9", "bmcSystemID": "1"}},
		{"two-line password", map[string]any{"bmc": "ipmi://10.0.0.9", "bmcPassword": "a\nb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{"mac": "02:00:00:00:15:09", "role": "worker"}
			for k, v := range tc.in {
				in[k] = v
			}
			code, body := api.call("POST", "/api/v1/nodes", in, true)
			if code/100 != 4 {
				t.Fatalf("%d %s, want a 4xx", code, body)
			}
			if strings.Contains(string(body), "Url-pw-99") || strings.Contains(string(body), "Orphan-pw-77") {
				t.Fatalf("refusal echoes the password: %s", body)
			}
		})
	}
}

func TestBMC_PowerAPIAndButtons(t *testing.T) {
	ui, api, power, _ := newBMCHarness(t)
	if code, body := api.call("POST", "/api/v1/nodes", map[string]any{"mac": "02:00:00:00:15:03", "role": "worker", "name": "w3", "bmc": "ipmi://10.0.0.53"}, true); code != http.StatusCreated {
		t.Fatalf("import: %d %s", code, body)
	}
	for _, tc := range []struct {
		in    any
		admin bool
		want  int
	}{
		{map[string]any{"action": "cycle", "bootOnce": "pxe"}, true, http.StatusOK},
		{map[string]any{"action": "reset"}, true, http.StatusOK},
		{map[string]any{"action": "cycle"}, false, http.StatusUnauthorized},
		{map[string]any{"action": "explode"}, true, http.StatusUnprocessableEntity},
		{map[string]any{"action": "on", "bootOnce": "usb"}, true, http.StatusUnprocessableEntity},
		{map[string]any{"action": "on", "extra": 1}, true, http.StatusBadRequest},
	} {
		if code, body := api.call("POST", "/api/v1/nodes/w3/power", tc.in, tc.admin); code != tc.want {
			t.Fatalf("POST power %v (admin %v): %d %s, want %d", tc.in, tc.admin, code, body, tc.want)
		}
	}
	if code, body := api.call("GET", "/api/v1/nodes/w3/power", nil, true); code != http.StatusOK || !strings.Contains(string(body), `"observed":{"power":"off"`) {
		t.Fatalf("GET power: %d %s", code, body)
	}

	ui.login()
	if p := ui.get("/ui/nodes"); !strings.Contains(p.body, `class="power">off</td>`) {
		t.Fatalf("nodes table shows no power state:\n%s", p.body)
	}
	// Off and cycle need the confirmation box; on does not.
	if p := ui.post("/ui/nodes/w3/power", url.Values{"action": {"off"}}); p.code/100 != 4 {
		t.Fatalf("power off without confirmation: %d", p.code)
	}
	if p := ui.post("/ui/nodes/w3/power", url.Values{"action": {"off"}, "confirm": {"yes"}}); p.code != http.StatusSeeOther {
		t.Fatalf("power off confirmed: %d %s", p.code, p.body)
	}
	if p := ui.post("/ui/nodes/w3/power", url.Values{"action": {"on"}, "bootOnce": {"pxe"}}); p.code != http.StatusSeeOther {
		t.Fatalf("network boot: %d %s", p.code, p.body)
	}
	// A form without the session's CSRF token does nothing.
	if p := ui.do(ui.client, "POST", "/ui/nodes/w3/power", url.Values{"action": {"on"}}); p.code/100 != 4 {
		t.Fatalf("power without CSRF token: %d", p.code)
	}
	requests, _ := power.calls()
	want := []string{"w3 boot once pxe, power cycle", "w3 power reset", "w3 power status", "w3 power off", "w3 boot once pxe, power on"}
	if strings.Join(requests, "|") != strings.Join(want, "|") {
		t.Fatalf("BMC requests %q, want %q", requests, want)
	}
}

func TestBMC_PageImportTakesTheBMCAndNeverRendersThePasswordBack(t *testing.T) {
	ui, api, power, _ := newBMCHarness(t)
	ui.login()
	const pw = "Form-pw-8086"
	p := ui.post("/ui/nodes", url.Values{"mac": {"02:00:00:00:15:04"}, "role": {"worker"}, "name": {"w4"},
		"bmc": {"telnet://10.0.0.54"}, "bmc_user": {"admin"}, "bmc_password": {pw}})
	if p.code/100 != 4 || !strings.Contains(p.body, "scheme must be") || strings.Contains(p.body, pw) {
		t.Fatalf("bad BMC: %d, the form must say why and not hold the password:\n%s", p.code, p.body)
	}
	p = ui.post("/ui/nodes", url.Values{"mac": {"02:00:00:00:15:04"}, "role": {"worker"}, "name": {"w4"},
		"bmc": {"redfish://10.0.0.54"}, "bmc_user": {"admin"}, "bmc_password": {pw}})
	if p.code != http.StatusSeeOther {
		t.Fatalf("import: %d\n%s", p.code, p.body)
	}
	if b, err := api.st.NodeSecret(context.Background(), "w4", node.BMCPasswordKey); err != nil || string(b) != pw {
		t.Fatalf("stored password %q, %v", b, err)
	}
	if _, imported := power.calls(); len(imported) != 1 || imported[0] != "w4" {
		t.Fatalf("lifecycle told of %v", imported)
	}
}

func TestBMC_PollerMetricsAreServed(t *testing.T) {
	m := NewMetrics(&MetricSources{})
	p := bmc.NewPoller(bmc.PollerConfig{}, nil)
	if err := m.Register(p); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(p); err == nil {
		t.Fatal("registering the poller twice went unnoticed")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`bootyard_bmc_power_state_nodes{state="on"} 0`, `bootyard_bmc_power_state_nodes{state="unknown"} 0`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body.String())
		}
	}
}
