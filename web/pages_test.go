package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// pageJoinToken is the cluster token the page tests set; no page may show it unrevealed.
const pageJoinToken = "K10deadbeefcafe::server:page-test-secret-4242"

type uiHarness struct {
	t      *testing.T
	srv    *httptest.Server
	st     *store.Store
	client *http.Client // a browser: cookie jar, redirects not followed
	csrf   string       // the session's token, after login
}

type uiOptions struct {
	tls     bool
	noJoin  bool
	cluster func() bool
}

func newUI(t *testing.T, opts uiOptions) *uiHarness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	deps := Deps{Inventory: st}
	if !opts.noJoin {
		r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: "http://127.0.0.1:9"})
		if err != nil {
			t.Fatal(err)
		}
		deps.Join = r
	}
	s, err := New(Config{AdminToken: testToken, TLS: opts.tls, ClusterConnected: opts.cluster}, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		// Live-update streams end when their connection does.
		srv.CloseClientConnections()
		srv.Close()
	})
	return &uiHarness{t: t, srv: srv, st: st, client: newBrowserClient(t)}
}

func newBrowserClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type page struct {
	code     int
	location string
	body     string
	header   http.Header
}

func (h *uiHarness) do(c *http.Client, method, path string, form url.Values) page {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{code: resp.StatusCode, location: resp.Header.Get("Location"), body: string(b), header: resp.Header}
}

func (h *uiHarness) get(path string) page { h.t.Helper(); return h.do(h.client, "GET", path, nil) }

// post sends a form with the session's CSRF token.
func (h *uiHarness) post(path string, form url.Values) page {
	h.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", h.csrf)
	return h.do(h.client, "POST", path, form)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func formToken(t *testing.T, body string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	return m[1]
}

// login signs the harness's browser in with the admin token, as a person would.
func (h *uiHarness) login() {
	h.t.Helper()
	p := h.get("/login")
	form := url.Values{"csrf": {formToken(h.t, p.body)}, "username": {"admin"}, "password": {testToken}}
	p = h.do(h.client, "POST", "/login", form)
	if p.code != http.StatusSeeOther || p.location != "/ui/nodes" {
		h.t.Fatalf("login: %d to %q\n%s", p.code, p.location, p.body)
	}
	p = h.get("/ui/nodes")
	if p.code != http.StatusOK {
		h.t.Fatalf("nodes page after login: %d", p.code)
	}
	h.csrf = formToken(h.t, p.body)
}

func (h *uiHarness) importNode(spec string) node.Node {
	h.t.Helper()
	var in NodeInput
	if err := json.Unmarshal([]byte(spec), &in); err != nil {
		h.t.Fatal(err)
	}
	var n node.Node
	if err := in.apply(&n, true); err != nil {
		h.t.Fatal(err)
	}
	n, err := h.st.ImportNode(h.t.Context(), n, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// walk carries a node through the state table, as the boot path and cluster would.
func (h *uiHarness) walk(name string, states ...node.State) {
	h.t.Helper()
	if _, err := h.st.UpdateNode(h.t.Context(), name, func(n *node.Node) ([]node.Event, error) {
		var evs []node.Event
		for _, to := range states {
			ev, err := n.Transition(to, "test", "test", n.UpdatedAt.Add(time.Millisecond))
			if err != nil {
				return nil, err
			}
			evs = append(evs, ev)
		}
		return evs, nil
	}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *uiHarness) state(name string) node.State {
	h.t.Helper()
	n, err := h.st.GetNode(h.t.Context(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return n.State
}

func TestPages_WithoutASessionEveryPageRedirectsToLogin(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"worker","name":"w-1"}`)
	tests := []struct {
		method, path string
		wantLocation string
	}{
		{"GET", "/", "/ui/nodes"},
		{"GET", "/ui/nodes", "/login?next=%2Fui%2Fnodes"},
		{"GET", "/ui/nodes?role=server", "/login?next=%2Fui%2Fnodes%3Frole%3Dserver"},
		{"GET", "/ui/nodes/w-1", "/login?next=%2Fui%2Fnodes%2Fw-1"},
		{"GET", "/ui/nodes/stream", "/login?next=%2Fui%2Fnodes%2Fstream"},
		{"GET", "/ui/nodes/w-1/stream", "/login?next=%2Fui%2Fnodes%2Fw-1%2Fstream"},
		{"GET", "/ui/cluster", "/login?next=%2Fui%2Fcluster"},
		{"GET", "/ui/account", "/login?next=%2Fui%2Faccount"},
		{"POST", "/ui/nodes", "/login"},
		{"POST", "/ui/nodes/w-1/delete", "/login"},
		{"POST", "/ui/nodes/w-1/join-command", "/login"},
		{"POST", "/ui/nodes/w-1/seed.iso", "/login"},
		{"POST", "/ui/cluster/token", "/login"},
		{"POST", "/ui/account/password", "/login"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			form := url.Values{"mac": {"52:54:00:00:00:09"}, "role": {"worker"}, "confirm": {"w-1"}}
			p := h.do(h.client, tc.method, tc.path, form)
			if p.code != http.StatusSeeOther || p.location != tc.wantLocation {
				t.Fatalf("%s %s = %d to %q, want 303 to %q", tc.method, tc.path, p.code, p.location, tc.wantLocation)
			}
		})
	}
	if h.state("w-1") != node.StateRegistered {
		t.Errorf("w-1 changed without a session: %s", h.state("w-1"))
	}
	if nodes, _ := h.st.ListNodes(t.Context()); len(nodes) != 1 {
		t.Errorf("a node was imported without a session: %d nodes", len(nodes))
	}
	// The login page and its assets stay reachable.
	for _, path := range []string{"/login", "/ui/static/app.css", "/ui/static/app.js"} {
		if p := h.get(path); p.code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, p.code)
		}
	}
}

func TestCSRF_AFormPostWithoutTheSessionTokenIsForbidden(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"worker","name":"w-1"}`)
	h.walk("w-1", node.StateProvisioning, node.StateInstalled)
	h.login()
	posts := []struct {
		path string
		form url.Values
	}{
		{"/ui/nodes", url.Values{"mac": {"52:54:00:00:00:09"}, "role": {"worker"}}},
		{"/ui/nodes/w-1/delete", url.Values{"confirm": {"w-1"}, "mode": {"reinstall"}}},
		{"/ui/nodes/w-1/retry", url.Values{}},
		{"/ui/nodes/w-1/join-command", url.Values{}},
		{"/ui/nodes/w-1/seed.iso", url.Values{}},
		{"/ui/cluster/token", url.Values{}},
		{"/ui/account/password", url.Values{"current": {testToken}, "new": {"a-long-new-password"}, "again": {"a-long-new-password"}}},
		{"/ui/logout", url.Values{}},
	}
	tokens := []struct {
		name  string
		token string
		send  bool
	}{
		{"missing", "", false},
		{"empty", "", true},
		{"wrong", "not-the-session-token", true},
		{"another session's", func() string { other := newUIHarnessLogin(t, h); return other }(), true},
	}
	for _, p := range posts {
		for _, tok := range tokens {
			t.Run(tok.name+" "+p.path, func(t *testing.T) {
				form := url.Values{}
				for k, v := range p.form {
					form[k] = v
				}
				if tok.send {
					form.Set("csrf", tok.token)
				}
				got := h.do(h.client, "POST", p.path, form)
				if got.code != http.StatusForbidden {
					t.Fatalf("POST %s with %s token = %d, want 403\n%s", p.path, tok.name, got.code, got.body)
				}
				if strings.Contains(got.body, pageJoinToken) || strings.Contains(got.body, testToken) {
					t.Fatal("a refused request revealed a secret")
				}
			})
		}
	}
	if h.state("w-1") != node.StateInstalled {
		t.Errorf("w-1 is %s after forged posts, want installed", h.state("w-1"))
	}
	if nodes, _ := h.st.ListNodes(t.Context()); len(nodes) != 1 {
		t.Errorf("a forged import went through: %d nodes", len(nodes))
	}
	// The session survived the forged logouts, and the right token works.
	if p := h.post("/ui/nodes/w-1/delete", url.Values{"confirm": {"w-1"}, "mode": {"reinstall"}}); p.code != http.StatusSeeOther {
		t.Fatalf("delete with the session's token = %d\n%s", p.code, p.body)
	}
	if h.state("w-1") != node.StateWiping {
		t.Errorf("w-1 is %s after a real delete, want wiping", h.state("w-1"))
	}
}

// newUIHarnessLogin signs a second browser in to h's server and returns its CSRF token.
func newUIHarnessLogin(t *testing.T, h *uiHarness) string {
	other := &uiHarness{t: t, srv: h.srv, st: h.st, client: newBrowserClient(t)}
	other.login()
	if other.csrf == h.csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	return other.csrf
}

func TestLogin_AcceptsOnlyAdminWithTheTokenAndSetsAStrictCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "tls"}[tls], func(t *testing.T) {
			h := newUI(t, uiOptions{tls: tls})
			loginToken := formToken(t, h.get("/login").body)
			tests := []struct {
				name     string
				form     url.Values
				wantCode int
			}{
				{"wrong password", url.Values{"csrf": {loginToken}, "username": {"admin"}, "password": {"guess"}}, http.StatusUnauthorized},
				{"empty password", url.Values{"csrf": {loginToken}, "username": {"admin"}, "password": {""}}, http.StatusUnauthorized},
				{"other user", url.Values{"csrf": {loginToken}, "username": {"root"}, "password": {testToken}}, http.StatusUnauthorized},
				{"no login csrf", url.Values{"username": {"admin"}, "password": {testToken}}, http.StatusForbidden},
				{"wrong login csrf", url.Values{"csrf": {"x" + loginToken}, "username": {"admin"}, "password": {testToken}}, http.StatusForbidden},
			}
			for _, tc := range tests {
				p := h.do(h.client, "POST", "/login", tc.form)
				if p.code != tc.wantCode {
					t.Errorf("%s: %d, want %d", tc.name, p.code, tc.wantCode)
				}
				if strings.Contains(p.header.Get("Set-Cookie"), sessionCookie+"=") {
					t.Errorf("%s: a session cookie was set", tc.name)
				}
			}
			// The right token, with an attempt to bounce the browser off-site after login.
			form := url.Values{"csrf": {loginToken}, "username": {"admin"}, "password": {testToken}, "next": {"//evil.example/ui/x"}}
			p := h.do(h.client, "POST", "/login", form)
			if p.code != http.StatusSeeOther || p.location != "/ui/nodes" {
				t.Fatalf("login = %d to %q, want 303 to /ui/nodes", p.code, p.location)
			}
			var ck *http.Cookie
			for _, c := range (&http.Response{Header: p.header}).Cookies() {
				if c.Name == sessionCookie {
					ck = c
				}
			}
			if ck == nil {
				t.Fatal("no session cookie")
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tls || ck.Path != "/" {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Secure=%v, Path=/", ck, tls)
			}
			form.Set("next", "/ui/nodes/cp-1?delete=1")
			if p := h.do(newBrowserClient(t), "POST", "/login", form); p.code != http.StatusForbidden {
				// A fresh browser has no login cookie: the double-submit check refuses it.
				t.Errorf("login without the login cookie = %d, want 403", p.code)
			}
		})
	}
}

func TestSession_SignOutClosesThePagesAndABrowserSessionIsNoAPIAdmin(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.login()
	// The API ignores the session cookie: mutating calls need the Bearer token, even with
	// the session's CSRF token in a header.
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/nodes", strings.NewReader(`{"macs":["52:54:00:00:00:05"],"role":"worker"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(csrfHeader, h.csrf)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API import with a browser session = %d, want 401", resp.StatusCode)
	}
	if p := h.post("/ui/logout", nil); p.code != http.StatusSeeOther || p.location != "/login" {
		t.Fatalf("logout = %d to %q", p.code, p.location)
	}
	for _, path := range []string{"/ui/nodes", "/ui/cluster"} {
		if p := h.get(path); p.code != http.StatusSeeOther || !strings.HasPrefix(p.location, "/login") {
			t.Errorf("GET %s after sign-out = %d to %q, want the login page", path, p.code, p.location)
		}
	}
}

func TestPages_ImportErrorsAreTheAPIsAndSitBesideTheirField(t *testing.T) {
	h := newUI(t, uiOptions{})
	api := &apiHarness{t: t, srv: h.srv, st: h.st}
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	h.login()
	tests := []struct {
		name      string
		form      url.Values
		api       string // the same import as JSON
		wantCode  int
		wantField string // "" means the form's general error
	}{
		{"bad MAC", url.Values{"role": {"worker"}, "mac": {"52:54:00:zz:00:01"}},
			`{"macs":["52:54:00:zz:00:01"],"role":"worker"}`, 422, "mac"},
		{"bad taint effect", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "taints": {"gpu=true:Sometimes"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","taints":["gpu=true:Sometimes"]}`, 422, "taints"},
		{"bad label value", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "labels": {"gpu=a/100"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","labels":{"gpu":"a/100"}}`, 422, "labels"},
		{"bad name", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "name": {"Bad_Name"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","name":"Bad_Name"}`, 422, "name"},
		{"ip without prefix", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "ip": {"10.0.0.5"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"10.0.0.5"}`, 422, "ip"},
		{"no role", url.Values{"mac": {"52:54:00:00:00:02"}},
			`{"macs":["52:54:00:00:00:02"]}`, 422, "role"},
		{"MAC taken", url.Values{"role": {"worker"}, "mac": {"52-54-00-00-00-01"}, "name": {"other"}},
			`{"macs":["52-54-00-00-00-01"],"role":"worker","name":"other"}`, 409, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, apiBody := api.call("POST", "/api/v1/nodes", tc.api, true)
			var apiErr apiError
			if err := json.Unmarshal(apiBody, &apiErr); err != nil || apiErr.Error == "" {
				t.Fatalf("API answer %s", apiBody)
			}
			if apiErr.Field != tc.wantField {
				t.Fatalf("API field %q, want %q", apiErr.Field, tc.wantField)
			}
			p := h.post("/ui/nodes", tc.form)
			if p.code != tc.wantCode {
				t.Fatalf("form import = %d, want %d\n%s", p.code, tc.wantCode, p.body)
			}
			id := "import-error"
			if tc.wantField != "" {
				id = "import-" + tc.wantField + "-error"
			}
			want := `id="` + id + `">` + htmlEscape(apiErr.Error) + `</p>`
			if !strings.Contains(p.body, want) {
				t.Fatalf("page lacks %s\n%s", want, p.body)
			}
			if !strings.Contains(p.body, `<dialog id="import-dialog" aria-labelledby="import-title" open>`) {
				t.Error("the import dialog is not drawn open around the error")
			}
			// What was typed is kept.
			if mac := tc.form.Get("mac"); !strings.Contains(p.body, `value="`+mac+`"`) {
				t.Errorf("the MAC field lost %q", mac)
			}
		})
	}
	if nodes, _ := h.st.ListNodes(t.Context()); len(nodes) != 1 {
		t.Errorf("%d nodes after refused imports, want 1", len(nodes))
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func TestPages_ImportWithAdvancedFieldsShowsTheNodeRegisteredWithItsJoin(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.login()
	p := h.post("/ui/nodes", url.Values{"role": {"worker"}, "mac": {"52:54:00:aa:bb:01, 52:54:00:aa:bb:02"},
		"name": {"gpu-1"}, "ip": {"10.20.0.31/24"}, "gateway": {"10.20.0.1"}, "dns": {"10.20.0.1"},
		"labels": {"gpu=a100\nzone=rack-1"}, "taints": {"gpu=true:NoSchedule"}})
	if p.code != http.StatusSeeOther || p.location != "/ui/nodes?imported=gpu-1" {
		t.Fatalf("import = %d to %q\n%s", p.code, p.location, p.body)
	}
	n, err := h.st.GetNode(t.Context(), "gpu-1")
	if err != nil {
		t.Fatal(err)
	}
	if n.State != node.StateRegistered || len(n.MACs) != 2 || n.IP.String() != "10.20.0.31/24" ||
		n.Labels["zone"] != "rack-1" || len(n.Taints) != 1 || n.Taints[0].String() != "gpu=true:NoSchedule" {
		t.Fatalf("imported node %+v", n)
	}
	events, _ := h.st.Events(t.Context(), "gpu-1", 0)
	if len(events) == 0 || events[0].Source != webSource {
		t.Errorf("import event source: %+v", events)
	}
	p = h.get(p.location)
	for _, want := range []string{`Imported gpu-1`, `nodeName: gpu-1`, tokenMask, `<a href="/ui/nodes/gpu-1" id="link-gpu-1">gpu-1</a>`,
		`state-registered`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page after import lacks %q", want)
		}
	}
}

func setToken(t *testing.T, st *store.Store, serverURL string) {
	t.Helper()
	if _, err := st.UpdateClusterSettings(t.Context(), func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = serverURL, node.Secret(pageJoinToken)
		// An operator pasting the token into the extra cloud-config must not leak it either.
		c.ExtraCloudConfig = "write_files:\n- path: /root/token-copy\n  content: " + pageJoinToken + "\n"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestPages_NoPageOrFragmentShowsTheJoinTokenUnlessRevealed(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	h.importNode(`{"macs":["52:54:00:00:00:02"],"role":"server","name":"cp-2"}`)
	h.importNode(`{"macs":["52:54:00:00:00:03"],"role":"worker","name":"w-1"}`)
	h.importNode(`{"macs":["52:54:00:00:00:04"],"role":"worker","name":"w-2"}`)
	h.walk("cp-1", node.StateProvisioning, node.StateInstalled, node.StateActive)
	h.walk("cp-2", node.StateProvisioning)
	h.walk("w-2", node.StateProvisioning, node.StateFailed)
	if err := h.st.RecordBoot(t.Context(), node.MAC{0x52, 0x54, 0, 0, 0, 0x10}, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
		t.Fatal(err)
	}
	h.login()

	if p := h.do(newBrowserClient(t), "GET", "/login", nil); p.code != http.StatusOK || strings.Contains(p.body, pageJoinToken) {
		t.Errorf("GET /login = %d, or shows the join token", p.code)
	}
	pages := []string{"/ui/nodes", "/ui/nodes?imported=cp-1", "/ui/nodes?import=1&mac=52:54:00:00:00:10",
		"/ui/nodes?role=server", "/ui/cluster", "/ui/account"}
	for _, name := range []string{"cp-1", "cp-2", "w-1", "w-2"} {
		pages = append(pages, "/ui/nodes/"+name, "/ui/nodes/"+name+"?delete=1")
	}
	for _, path := range pages {
		p := h.get(path)
		if p.code != http.StatusOK {
			t.Errorf("GET %s = %d", path, p.code)
		}
		if strings.Contains(p.body, pageJoinToken) {
			t.Errorf("GET %s shows the join token", path)
		}
	}
	// The pages do show the masked join (so the check above looked at real joins).
	if p := h.get("/ui/nodes/cp-2"); !strings.Contains(p.body, "nodeName: cp-2") || !strings.Contains(p.body, tokenMask) {
		t.Errorf("node page shows no masked join:\n%s", p.body)
	}
	// Live fragments: the first events of each stream.
	for path, events := range map[string]int{"/ui/nodes/stream": 1, "/ui/nodes/cp-1/stream": 4, "/ui/nodes/cp-2/stream?after=0": 3} {
		got := h.readStream(path, func(string) bool { return false }, events)
		if strings.Contains(got, pageJoinToken) {
			t.Errorf("stream %s shows the join token", path)
		}
		if !strings.Contains(got, "event: ") {
			t.Errorf("stream %s sent no event: %q", path, got)
		}
	}
	// Failed, refused and forged actions do not leak it either.
	for _, p := range []page{
		h.post("/ui/nodes/cp-1/delete", url.Values{"confirm": {"nope"}}),
		h.post("/ui/nodes", url.Values{"mac": {"bad"}}),
		h.do(h.client, "POST", "/ui/nodes/cp-1/join-command", url.Values{"csrf": {"forged"}}),
	} {
		if strings.Contains(p.body, pageJoinToken) {
			t.Errorf("a refused action (%d) shows the join token", p.code)
		}
	}
	// Only the explicit reveal shows it.
	for _, path := range []string{"/ui/nodes/cp-2/join-command", "/ui/cluster/token"} {
		if p := h.post(path, nil); p.code != http.StatusOK || !strings.Contains(p.body, pageJoinToken) {
			t.Errorf("reveal %s = %d without the token", path, p.code)
		}
	}
}

// readStream reads an event stream until stop accepts an event or n events came, and
// returns what was read. The request is cancelled on return, as a closed tab would.
func (h *uiHarness) readStream(path string, stop func(event string) bool, n int) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+path, nil)
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		h.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, ct)
	}
	var all, ev strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if line != "" {
			ev.WriteString(line + "\n")
			continue
		}
		if strings.Contains(ev.String(), "event: ") {
			n--
			if stop(ev.String()) || n <= 0 {
				return all.String()
			}
		}
		ev.Reset()
	}
	h.t.Fatalf("stream %s ended: %v\n%s", path, sc.Err(), all.String())
	return ""
}

func TestEventsStream_SendsTheInstallerLogAsItArrives(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:00:03"],"role":"worker","name":"w-1"}`)
	h.walk("w-1", node.StateProvisioning)
	h.login()
	p := h.get("/ui/nodes/w-1")
	m := regexp.MustCompile(`/ui/nodes/w-1/stream\?after=(\d+)`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("the node page names no stream:\n%s", p.body)
	}
	go func() {
		// Written while the stream is open; the stream polls the store.
		time.Sleep(200 * time.Millisecond)
		now := time.Now().UTC()
		_ = h.st.AppendEvents(context.Background(),
			node.Event{Time: now, Node: "w-1", Type: node.EventProgress, Reason: "writing image", Source: "agent", Percent: 40},
			node.Event{Time: now, Node: "w-1", Type: node.EventLog, Reason: "llmos: <joined> & ready", Source: "agent"})
	}()
	got := h.readStream(m[0], func(ev string) bool {
		return strings.Contains(ev, "event: log") && strings.Contains(ev, "joined")
	}, 50)
	if !strings.Contains(got, "llmos: &lt;joined&gt; &amp; ready") {
		t.Errorf("the log line is missing or not escaped:\n%s", got)
	}
	if strings.Contains(got, "event: timeline") {
		t.Errorf("the stream resent events the page already had (after=%s):\n%s", m[1], got)
	}
	// The summary follows with the progress bar.
	got = h.readStream(m[0], func(ev string) bool { return strings.Contains(ev, "event: summary") }, 50)
	if !strings.Contains(got, `value="40"`) {
		t.Errorf("summary without progress:\n%s", got)
	}
}

func TestPages_DeleteDialogGuardsServersAndQuorum(t *testing.T) {
	h := newUI(t, uiOptions{})
	for i, name := range []string{"cp-1", "cp-2", "cp-3"} {
		h.importNode(`{"macs":["52:54:00:00:01:0` + string(rune('1'+i)) + `"],"role":"server","name":"` + name + `"}`)
		h.walk(name, node.StateProvisioning, node.StateInstalled)
	}
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.importNode(`{"macs":["52:54:00:00:02:02"],"role":"worker","name":"w-new"}`)
	h.walk("w-1", node.StateProvisioning, node.StateInstalled)
	h.login()

	// The dialog says what deleting cp-3 does to the cluster before anyone clicks.
	p := h.get("/ui/nodes/cp-3?delete=1")
	for _, want := range []string{`<dialog id="delete-dialog" aria-labelledby="delete-title" open>`, "drains", "wipes", "cannot rejoin",
		`<th scope="row">Now</th><td>3</td><td>2</td><td>1</td>`, `<th scope="row">After</th><td>2</td><td>2</td><td>0</td>`,
		`id="delete-ack"`, "failure tolerance drops from 1 to 0"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("delete dialog of cp-3 lacks %q", want)
		}
	}
	if p := h.get("/ui/nodes/w-1?delete=1"); strings.Contains(p.body, `id="delete-ack"`) {
		t.Error("deleting a worker asks for the extra confirmation")
	}

	steps := []struct {
		name      string
		node      string
		form      url.Values
		wantCode  int
		wantField string
		wantState node.State
	}{
		{"wrong name", "w-1", url.Values{"confirm": {"w-2"}}, 422, "confirm", node.StateInstalled},
		{"name in other case", "w-1", url.Values{"confirm": {"W-1"}}, 422, "confirm", node.StateInstalled},
		{"unknown mode", "w-1", url.Values{"confirm": {"w-1"}, "mode": {"shred"}}, 422, "mode", node.StateInstalled},
		{"server without the extra confirmation", "cp-3", url.Values{"confirm": {"cp-3"}}, 409, "ack", node.StateInstalled},
		{"cluster-init without the extra confirmation", "cp-1", url.Values{"confirm": {"cp-1"}}, 409, "ack", node.StateInstalled},
		{"worker", "w-1", url.Values{"confirm": {"w-1"}, "mode": {"reinstall"}}, 303, "", node.StateWiping},
		{"server acknowledged", "cp-3", url.Values{"confirm": {"cp-3"}, "ack": {"1"}}, 303, "", node.StateWiping},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			p := h.post("/ui/nodes/"+s.node+"/delete", s.form)
			if p.code != s.wantCode {
				t.Fatalf("delete %s = %d, want %d\n%s", s.node, p.code, s.wantCode, p.body)
			}
			if s.wantField != "" && !strings.Contains(p.body, `id="delete-`+s.wantField+`-error"`) {
				t.Errorf("no error beside %s:\n%s", s.wantField, p.body)
			}
			if got := h.state(s.node); got != s.wantState {
				t.Errorf("%s is %s, want %s", s.node, got, s.wantState)
			}
		})
	}

	// Now cp-1 (cluster-init) and cp-2 remain: deleting cp-2 leaves one server, and the
	// cluster-init refusal is offered as force behind the confirmation.
	p = h.get("/ui/nodes/cp-1?delete=1")
	if !strings.Contains(p.body, `id="delete-refusal"`) || !strings.Contains(p.body, "cluster-init") || !strings.Contains(p.body, "Force it") {
		t.Errorf("the refusal is not explained with force offered:\n%s", p.body)
	}
	if p := h.post("/ui/nodes/cp-1/delete", url.Values{"confirm": {"cp-1"}, "ack": {"1"}}); p.code != http.StatusSeeOther {
		t.Fatalf("forced delete of cp-1 = %d\n%s", p.code, p.body)
	}
	events, _ := h.st.Events(t.Context(), "cp-1", 0)
	if last := events[len(events)-2]; last.To != node.StateDeleting || !strings.Contains(last.Reason, "forced") || last.Source != webSource {
		t.Errorf("forced deletion event %+v", last)
	}
	// A node that never installed is simply removed, and the page says so.
	p = h.post("/ui/nodes/w-new/delete", url.Values{"confirm": {"w-new"}})
	if p.code != http.StatusSeeOther || p.location != "/ui/nodes?removed=w-new" {
		t.Fatalf("delete of a registered node = %d to %q", p.code, p.location)
	}
	if _, err := h.st.GetNode(t.Context(), "w-new"); err == nil {
		t.Error("w-new still exists")
	}
}

func TestPages_RetryMovesAFailedInstallBack(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.walk("w-1", node.StateProvisioning, node.StateFailed)
	h.login()
	if p := h.get("/ui/nodes/w-1"); !strings.Contains(p.body, `id="retry"`) {
		t.Fatal("a failed node's page offers no retry")
	}
	if p := h.post("/ui/nodes/w-1/retry", nil); p.code != http.StatusSeeOther {
		t.Fatalf("retry = %d\n%s", p.code, p.body)
	}
	if got := h.state("w-1"); got != node.StateRegistered {
		t.Fatalf("after retry w-1 is %s, want registered", got)
	}
	if p := h.post("/ui/nodes/w-1/retry", nil); p.code != http.StatusConflict || !strings.Contains(p.body, "not failed") {
		t.Fatalf("retry of a registered node = %d\n%s", p.code, p.body)
	}
}

func TestPages_ClusterPageShowsTheToleranceTableAndMasksTheToken(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	h.importNode(`{"macs":["52:54:00:00:00:02"],"role":"server","name":"cp-2"}`)
	h.login()
	p := h.get("/ui/cluster")
	for _, want := range []string{"https://10.20.0.10:6443", tokenMask, node.DefaultInstallURL,
		`<tr class="current">`, "<td>2</td><td>2</td><td>0</td>", `<tr class="next">`, "<td>3</td><td>2</td><td>1</td>",
		"even number of servers (2)", `<a href="/ui/nodes/cp-1">cp-1</a>`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("cluster page lacks %q", want)
		}
	}
}

func TestPages_APasswordSetOnTheAccountPageSignsIn(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.login()
	tests := []struct {
		name      string
		form      url.Values
		wantField string
	}{
		{"wrong current", url.Values{"current": {"nope"}, "new": {"correct horse battery"}, "again": {"correct horse battery"}}, "current"},
		{"too short", url.Values{"current": {testToken}, "new": {"short"}, "again": {"short"}}, "new"},
		{"mismatch", url.Values{"current": {testToken}, "new": {"correct horse battery"}, "again": {"correct horse battery!"}}, "again"},
	}
	for _, tc := range tests {
		if p := h.post("/ui/account/password", tc.form); p.code != 422 || !strings.Contains(p.body, `id="pw-`+tc.wantField+`-error"`) {
			t.Errorf("%s: %d\n%s", tc.name, p.code, p.body)
		}
	}
	if hash, _ := h.st.AdminPasswordHash(t.Context()); hash != nil {
		t.Fatal("a refused change stored a password")
	}
	p := h.post("/ui/account/password", url.Values{"current": {testToken}, "new": {"correct horse battery"}, "again": {"correct horse battery"}})
	if p.code != http.StatusSeeOther {
		t.Fatalf("set password = %d\n%s", p.code, p.body)
	}
	for _, pw := range []string{"correct horse battery", testToken} {
		b := &uiHarness{t: t, srv: h.srv, st: h.st, client: newBrowserClient(t)}
		form := url.Values{"csrf": {formToken(t, b.get("/login").body)}, "username": {"admin"}, "password": {pw}}
		if p := b.do(b.client, "POST", "/login", form); p.code != http.StatusSeeOther {
			t.Errorf("sign in with %q after the change = %d", pw[:4], p.code)
		}
	}
}

func TestLogin_WrongPasswordsAreThrottled(t *testing.T) {
	h := newUI(t, uiOptions{})
	loginToken := formToken(t, h.get("/login").body)
	try := func(password string) int {
		form := url.Values{"csrf": {loginToken}, "username": {"admin"}, "password": {password}}
		return h.do(h.client, "POST", "/login", form).code
	}
	for i := range loginFailureBurst {
		if code := try("guess-" + strconv.Itoa(i)); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d = %d, want 401", i, code)
		}
	}
	// The bucket is empty: even the right password waits, so guessing cannot go on.
	if code := try(testToken); code != http.StatusTooManyRequests {
		t.Fatalf("sign-in after %d failures = %d, want 429", loginFailureBurst, code)
	}
}

func TestPages_SeedISOIsAPostedDownload(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.login()
	if p := h.do(h.client, "GET", "/ui/nodes/w-1/seed.iso", nil); p.code != http.StatusMethodNotAllowed && p.code != http.StatusNotFound {
		t.Errorf("GET of the seed ISO = %d: a link or a prefetch could fetch the token", p.code)
	}
	p := h.post("/ui/nodes/w-1/seed.iso", nil)
	if p.code != http.StatusOK || !strings.Contains(p.header.Get("Content-Disposition"), `filename="w-1-seed.iso"`) {
		t.Fatalf("seed ISO = %d %v", p.code, p.header)
	}
	// ISO 9660: the primary volume descriptor at sector 16 starts with 1 "CD001".
	if len(p.body) < 16*2048+6 || p.body[16*2048+1:16*2048+6] != "CD001" {
		t.Fatalf("the download is not an ISO 9660 image (%d bytes)", len(p.body))
	}
}

func TestPages_DiscoveredMachineImportPrefillsItsMAC(t *testing.T) {
	h := newUI(t, uiOptions{})
	if err := h.st.RecordBoot(t.Context(), node.MAC{0x52, 0x54, 0, 0xde, 0xad, 0x01}, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
		t.Fatal(err)
	}
	h.login()
	p := h.get("/ui/nodes")
	for _, want := range []string{"Discovered machines", "52:54:00:de:ad:01", "uefi (arch 7)",
		`<input type="hidden" name="mac" value="52:54:00:de:ad:01" data-prefill="import-mac">`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("nodes page lacks %q", want)
		}
	}
	if strings.Contains(p.body, `id="node-node-525400dead01"`) {
		t.Error("a discovered machine is listed among the imported nodes")
	}
	// Without script, the Import button reloads the page with the dialog open and filled.
	p = h.get("/ui/nodes?import=1&mac=52:54:00:de:ad:01")
	if !strings.Contains(p.body, `<dialog id="import-dialog" aria-labelledby="import-title" open>`) ||
		!strings.Contains(p.body, `name="mac" value="52:54:00:de:ad:01"`) {
		t.Errorf("import dialog not drawn open with the MAC:\n%s", p.body)
	}
	p = h.post("/ui/nodes", url.Values{"mac": {"52:54:00:de:ad:01"}, "role": {"server"}})
	if p.code != http.StatusSeeOther {
		t.Fatalf("import of the discovered machine = %d\n%s", p.code, p.body)
	}
	n, err := h.st.GetNode(t.Context(), "node-525400dead01")
	if err != nil || n.State != node.StateRegistered || !n.ClusterInit || n.Boot.Firmware != "uefi" {
		t.Fatalf("the discovered machine after import: %+v, %v", n, err)
	}
}
