package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The attacker sits on the provisioning network with no credentials: a second source
// address (127.0.0.2) beside the operator's own (127.0.0.1).
const (
	attackerIP       = "127.0.0.2"
	proxyPassword    = "proxy-pass-0451"
	chpasswdSecret   = "root:chpasswd-secret-7781"
	testMetricsToken = "metrics-token-0123456789"
	securityMAC      = "52:54:00:5e:c0:01"
)

// secHarness is the operator server with every API service mounted (catalog, join
// renderer, metrics) over a store holding a node, an image and secret join settings.
type secHarness struct {
	t       *testing.T
	srv     *httptest.Server
	s       *Server
	st      *store.Store
	catalog *images.Catalog
	dbFile  string
}

func newSecHarness(t *testing.T, cfg Config) *secHarness {
	t.Helper()
	dbFile := filepath.Join(t.TempDir(), "bootyard.db")
	st, err := store.Open(dbFile, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.DiscardHandler)
	catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	imgFile := filepath.Join(catalog.Dir(), "debian.raw")
	if err := os.WriteFile(imgFile, []byte("debian disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Add(t.Context(), images.Spec{Name: "debian", File: imgFile, Default: true}); err != nil {
		t.Fatal(err)
	}
	setSecretSettings(t, st)
	mac, _ := node.ParseMAC(securityMAC)
	if _, err := st.ImportNode(t.Context(), node.Node{Name: "w-1", MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminToken, cfg.Logger = testToken, quiet
	s, err := New(cfg, Deps{Inventory: st, Join: r, Images: catalog, Metrics: NewMetrics(&MetricSources{})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &secHarness{t: t, srv: srv, s: s, st: st, catalog: catalog, dbFile: dbFile}
}

// setSecretSettings gives the cluster a token, a proxy password in installEnv and a
// password in the extra cloud-config.
func setSecretSettings(t *testing.T, st *store.Store) {
	t.Helper()
	if _, err := st.UpdateClusterSettings(t.Context(), func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.20.0.10:6443", node.Secret(pageJoinToken)
		c.InstallEnv = map[string]string{"HTTPS_PROXY": "http://ops:" + proxyPassword + "@proxy:3128", "INSTALL_LLMOS_VERSION": "v0.3.1"}
		c.ExtraCloudConfig = "chpasswd:\n  list: |\n    " + chpasswdSecret + "\n"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// clientFrom is a client whose connections leave from ip (a loopback alias on Linux).
func browserFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (h *secHarness) call(c *http.Client, method, path, token string, body io.Reader, hdr map[string]string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiRoutes is every route mounted under /api/v1, with its parameters filled in: the
// table grows by itself when a route is added.
func (h *secHarness) apiRoutes() [][2]string {
	var out [][2]string
	for _, r := range h.s.echo.Routes() {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue // echo's not-found catch-alls
		}
		if !strings.HasPrefix(r.Path, "/api/v1/") || strings.HasSuffix(r.Path, "*") {
			continue
		}
		path := strings.NewReplacer(":ref", "w-1", ":name", "debian").Replace(r.Path)
		out = append(out, [2]string{r.Method, path})
	}
	return out
}

func TestAPI_EveryRouteRefusesAClientWithoutTheTokenOrASession(t *testing.T) {
	h := newSecHarness(t, Config{})
	routes := h.apiRoutes()
	if len(routes) < 15 {
		t.Fatalf("only %d /api/v1 routes found: %v", len(routes), routes)
	}
	attacker := browserFrom(t, attackerIP)
	forged := map[string]string{"Cookie": sessionCookie + "=" + randomToken()}
	for _, rt := range routes {
		for name, try := range map[string]struct {
			token string
			hdr   map[string]string
		}{
			"no credentials":        {},
			"a wrong token":         {token: "not-the-admin-token-0000"},
			"a forged session":      {hdr: forged},
			"the token as a cookie": {hdr: map[string]string{"Cookie": sessionCookie + "=" + testToken}},
		} {
			code, body := h.call(attacker, rt[0], rt[1]+"?reveal=true", try.token, strings.NewReader(`{"macs":["52:54:00:00:00:99"],"role":"worker"}`), try.hdr)
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s = %d, want 401", rt[0], rt[1], name, code)
			}
			for _, secret := range []string{securityMAC, pageJoinToken, proxyPassword, chpasswdSecret, "debian.raw"} {
				if strings.Contains(body, secret) {
					t.Errorf("%s %s with %s leaks %q: %s", rt[0], rt[1], name, secret, body)
				}
			}
		}
	}
	// Nothing changed for all those requests.
	if nodes, _ := h.st.ListNodes(t.Context()); len(nodes) != 1 {
		t.Errorf("the refused requests left %d nodes, want the 1 imported", len(nodes))
	}
	if imgs, _ := h.st.Images(t.Context()); len(imgs) != 1 {
		t.Errorf("the refused requests left %d images, want 1", len(imgs))
	}
	// The operator's own token still reads every GET route; /healthz stays open.
	for _, rt := range routes {
		if rt[0] != http.MethodGet {
			continue
		}
		if code, body := h.call(http.DefaultClient, "GET", rt[1], testToken, nil, nil); code != http.StatusOK {
			t.Errorf("GET %s with the admin token = %d %s", rt[1], code, body)
		}
	}
	if code, _ := h.call(attacker, "GET", "/healthz", "", nil, nil); code != http.StatusOK {
		t.Errorf("GET /healthz without credentials = %d, want 200", code)
	}
}

func TestAPI_ASignedInSessionReadsTheAPIButDoesNotChangeIt(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"worker","name":"w-1"}`)
	if p := h.get("/api/v1/nodes"); p.code != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/nodes before sign-in = %d, want 401", p.code)
	}
	h.login()
	for _, path := range []string{"/api/v1/nodes", "/api/v1/nodes/w-1", "/api/v1/nodes/w-1/events", "/api/v1/cluster"} {
		if p := h.get(path); p.code != http.StatusOK {
			t.Errorf("GET %s with a session = %d %s", path, p.code, p.body)
		}
	}
	// Revealing secrets and changing anything stay the admin token's.
	if p := h.get("/api/v1/cluster?reveal=true"); p.code != http.StatusUnauthorized {
		t.Errorf("reveal with a session = %d, want 401", p.code)
	}
	if p := h.do(h.client, "DELETE", "/api/v1/nodes/w-1", nil); p.code != http.StatusUnauthorized {
		t.Errorf("DELETE with a session = %d, want 401", p.code)
	}
	// The pages' own live streams keep working with the session.
	if got := h.readStream("/ui/nodes/stream", func(string) bool { return true }, 1); !strings.Contains(got, "event: ") {
		t.Errorf("the nodes stream with a session sent no event: %q", got)
	}
}

func TestMetrics_ReadWithTheMetricsTokenOrTheAdminTokenOnly(t *testing.T) {
	tests := []struct {
		name         string
		metricsToken node.Secret
		token        string
		path         string
		want         int
	}{
		{"no token", testMetricsToken, "", "/metrics", 401},
		{"a wrong token", testMetricsToken, "metrics-token-9999999999", "/metrics", 401},
		{"the metrics token", testMetricsToken, testMetricsToken, "/metrics", 200},
		{"the admin token", testMetricsToken, testToken, "/metrics", 200},
		{"the metrics token reads nothing else", testMetricsToken, testMetricsToken, "/api/v1/nodes", 401},
		{"without a metrics token set, none", "", "", "/metrics", 401},
		{"without a metrics token set, the admin token", "", testToken, "/metrics", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSecHarness(t, Config{MetricsToken: tt.metricsToken})
			code, body := h.call(browserFrom(t, attackerIP), "GET", tt.path, tt.token, nil, nil)
			if code != tt.want {
				t.Errorf("GET %s = %d, want %d: %s", tt.path, code, tt.want, body)
			}
			if code == 200 && tt.path == "/metrics" && !strings.Contains(body, "bootyard_") {
				t.Errorf("/metrics answered 200 without metrics: %s", body)
			}
		})
	}
}

func TestSecrets_InstallEnvAndExtraCloudConfigAreRedactedLikeTheToken(t *testing.T) {
	h := newSecHarness(t, Config{})
	secrets := []string{pageJoinToken, proxyPassword, chpasswdSecret}
	shows := func(body string) []string {
		var out []string
		for _, s := range secrets {
			if strings.Contains(body, s) {
				out = append(out, s)
			}
		}
		return out
	}
	for _, path := range []string{"/api/v1/cluster", "/api/v1/nodes/w-1/join-command"} {
		code, body := h.call(http.DefaultClient, "GET", path, testToken, nil, nil)
		if code != 200 || len(shows(body)) != 0 || !strings.Contains(body, "[redacted]") {
			t.Errorf("GET %s = %d, shows %v: %s", path, code, shows(body), body)
		}
		code, body = h.call(http.DefaultClient, "GET", path+"?reveal=true", testToken, nil, nil)
		wantShown := 2 // the join command carries the token and installEnv, not the extra cloud-config
		if path == "/api/v1/cluster" {
			wantShown = 3
		}
		if code != 200 || len(shows(body)) != wantShown {
			t.Errorf("GET %s?reveal=true = %d, shows %v; want %d secrets revealed to the admin", path, code, shows(body), wantShown)
		}
	}
	var view struct {
		Settings struct {
			InstallEnv          map[string]string `json:"installEnv"`
			ExtraCloudConfig    string            `json:"extraCloudConfig"`
			ExtraCloudConfigSet bool              `json:"extraCloudConfigSet"`
		} `json:"settings"`
	}
	_, body := h.call(http.DefaultClient, "GET", "/api/v1/cluster", testToken, nil, nil)
	if err := json.Unmarshal([]byte(body), &view); err != nil {
		t.Fatal(err)
	}
	if view.Settings.InstallEnv["HTTPS_PROXY"] != "[redacted]" || view.Settings.ExtraCloudConfig != "[redacted]" || !view.Settings.ExtraCloudConfigSet {
		t.Errorf("cluster settings %+v: want installEnv keys with masked values and the extra cloud-config masked but marked set", view.Settings)
	}

	// The pages, with the same settings.
	u := newUI(t, uiOptions{})
	setSecretSettings(t, u.st)
	u.importNode(`{"macs":["52:54:00:00:00:01"],"role":"worker","name":"w-1"}`)
	u.walk("w-1", node.StateProvisioning)
	u.login()
	for _, path := range []string{"/ui/cluster", "/ui/nodes/w-1", "/ui/nodes"} {
		if p := u.get(path); p.code != 200 || len(shows(p.body)) != 0 {
			t.Errorf("GET %s = %d, shows %v", path, p.code, shows(p.body))
		}
	}
	if p := u.get("/ui/nodes/w-1"); !strings.Contains(p.body, "HTTPS_PROXY=&#39;[redacted]&#39;") || !strings.Contains(p.body, "without the cluster's extra cloud-config") {
		t.Errorf("the node page does not show the masked installer environment and the extra cloud-config note:\n%s", p.body)
	}
	if got := u.readStream("/ui/nodes/w-1/stream?after=0", func(string) bool { return false }, 2); len(shows(got)) != 0 {
		t.Errorf("the node stream shows %v", shows(got))
	}
	if p := u.post("/ui/nodes/w-1/join-command", nil); p.code != 200 || !strings.Contains(p.body, proxyPassword) {
		t.Errorf("the explicit reveal = %d without the installer environment", p.code)
	}
}

// signIn posts the sign-in form from b's client with extra headers and returns the status.
func signIn(b *uiHarness, password string, hdr map[string]string) int {
	b.t.Helper()
	form := url.Values{"csrf": {formToken(b.t, b.get("/login").body)}, "username": {"admin"}, "password": {password}}
	req, _ := http.NewRequest("POST", b.srv.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestLogin_AForeignSourceFailingDoesNotLockTheAdminOut(t *testing.T) {
	h := newUI(t, uiOptions{})
	attacker := &uiHarness{t: t, srv: h.srv, st: h.st, client: browserFrom(t, attackerIP)}
	try := signIn
	for i := range loginFailureBurst {
		if code := try(attacker, fmt.Sprintf("guess-%d", i), nil); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d from %s = %d, want 401", i, attackerIP, code)
		}
	}
	// The attacker's own budget is spent: even the right password waits there.
	if code := try(attacker, testToken, nil); code != http.StatusTooManyRequests {
		t.Fatalf("the right password from the throttled source = %d, want 429", code)
	}
	// A spoofed X-Forwarded-For does not buy a fresh budget: no proxy is trusted.
	for _, xff := range []string{"10.9.9.9", "127.0.0.1", "10.9.9.9, 127.0.0.1"} {
		if code := try(attacker, testToken, map[string]string{"X-Forwarded-For": xff, "X-Real-IP": xff}); code != http.StatusTooManyRequests {
			t.Errorf("the throttled source claiming X-Forwarded-For %q = %d, want 429", xff, code)
		}
	}
	// The operator, from their own address, signs in at once.
	if code := try(&uiHarness{t: t, srv: h.srv, st: h.st, client: browserFrom(t, "127.0.0.1")}, testToken, nil); code != http.StatusSeeOther {
		t.Fatalf("the admin from 127.0.0.1 after another source's failures = %d, want 303", code)
	}
}

func TestLogin_ForwardedForIsBelievedOnlyFromATrustedProxy(t *testing.T) {
	h := newUI(t, uiOptions{trustedProxies: []netip.Prefix{netip.MustParsePrefix(attackerIP + "/32")}})
	proxy := &uiHarness{t: t, srv: h.srv, st: h.st, client: browserFrom(t, attackerIP)}
	try := func(password, xff string) int {
		t.Helper()
		return signIn(proxy, password, map[string]string{"X-Forwarded-For": xff})
	}
	for i := range loginFailureBurst {
		try(fmt.Sprintf("guess-%d", i), "10.9.9.9")
	}
	if code := try(testToken, "10.9.9.9"); code != http.StatusTooManyRequests {
		t.Fatalf("the guesser behind the proxy = %d, want 429", code)
	}
	// Another client behind the same proxy has its own budget.
	if code := try(testToken, "10.9.9.10"); code != http.StatusSeeOther {
		t.Fatalf("another client behind the trusted proxy = %d, want 303", code)
	}
}

func TestLoginLimiter_RemembersABoundedNumberOfSources(t *testing.T) {
	l := newLoginLimiter()
	l.max = 3
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		for range loginFailureBurst {
			l.failed(loginSourceKey(ip))
		}
	}
	if l.sources() != 3 {
		t.Fatalf("the limiter remembers %d sources, want its bound of 3", l.sources())
	}
	if !l.allowed(loginSourceKey("10.0.0.1")) || l.allowed(loginSourceKey("10.0.0.4")) {
		t.Error("want the least recently seen source forgotten and the latest still throttled")
	}
	// One IPv6 host owns its /64: its addresses share a budget. IPv4-mapped is IPv4.
	if loginSourceKey("2001:db8::1") != loginSourceKey("2001:db8::ffff:2") || loginSourceKey("::ffff:10.0.0.4") != loginSourceKey("10.0.0.4") {
		t.Error("want one key per IPv6 /64 and IPv4-mapped addresses keyed as IPv4")
	}
}

// A client that starts a body and stops is cut off; one that sends its body is not.
func TestBodyReadDeadline_ASlowBodyIsCutAndNothingChanges(t *testing.T) {
	h := newSecHarness(t, Config{BodyReadTimeout: 2 * time.Second})
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attackerIP)}}).Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"macs":["52:54:00:00:00:77"],"role":"worker"}`
	fmt.Fprintf(conn, "POST /api/v1/nodes HTTP/1.1\r\nHost: bootyard\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		testToken, len(body), body[:10])
	// The safety net only: the server must answer long before it.
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("trickled body = %d, want 408", resp.StatusCode)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the connection stays open after the slow body")
	}
	if nodes, _ := h.st.ListNodes(t.Context()); len(nodes) != 1 {
		t.Errorf("the cut request imported a node: %d nodes", len(nodes))
	}
	// The same request sent whole is imported.
	if code, out := h.call(http.DefaultClient, "POST", "/api/v1/nodes", testToken, strings.NewReader(body), map[string]string{"Content-Type": "application/json"}); code != http.StatusCreated {
		t.Errorf("the whole body = %d %s", code, out)
	}
}

// An upload may last longer than the body deadline as long as bytes keep coming.
func TestImageUpload_ALongSteadyUploadIsNotCut(t *testing.T) {
	h := newSecHarness(t, Config{BodyReadTimeout: 2 * time.Second})
	pr, pw := io.Pipe()
	chunk := bytes.Repeat([]byte("disk"), 4096)
	go func() {
		for range 10 { // 10 × 300 ms: longer than the 2 s deadline in total, never idle for it
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		pw.Close()
	}()
	code, body := h.call(http.DefaultClient, "PUT", "/api/v1/images/steady/file?filename=steady.raw", testToken, pr, nil)
	if code != http.StatusCreated || !strings.Contains(body, fmt.Sprintf(`"size":%d`, 10*len(chunk))) {
		t.Fatalf("steady upload = %d %s", code, body)
	}
}

func TestImagesAPI_UploadAndFilesOutsideTheImagesDirectory(t *testing.T) {
	h := newSecHarness(t, Config{ImageUploadLimit: 64 << 10})
	link := filepath.Join(h.catalog.Dir(), "shadow.raw")
	if err := os.Symlink("/etc/shadow", link); err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("sector"), 1000)
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	upload := func(name, query string, body []byte) string {
		return "/api/v1/images/" + name + "/file?" + query
	}
	tests := []struct {
		name     string
		method   string
		path     string
		token    string
		body     []byte
		wantCode int
		wantBody string
	}{
		{"add /etc/shadow", "POST", "/api/v1/images", testToken, fmt.Appendf(nil, `{"name":"a","file":"/etc/shadow"}`), 403, "outside the images directory"},
		{"add the store file", "POST", "/api/v1/images", testToken, fmt.Appendf(nil, `{"name":"a","file":%q}`, h.dbFile), 403, "outside the images directory"},
		{"add a symlink out of the directory", "POST", "/api/v1/images", testToken, fmt.Appendf(nil, `{"name":"a","file":%q}`, link), 403, "outside the images directory"},
		{"an installer kernel outside", "POST", "/api/v1/images", testToken, []byte(`{"name":"a","kind":"installer","kernel":"/etc/passwd","initrd":"http://m/i"}`), 403, "outside"},
		{"upload without the token", "PUT", upload("up", "", nil), "", content, 401, "admin token"},
		{"upload over the limit", "PUT", upload("big", "", nil), testToken, make([]byte, 65<<10), 413, "upload limit"},
		{"upload with a wrong checksum", "PUT", upload("up", "sha256="+strings.Repeat("0", 64), nil), testToken, content, 422, "sha256 mismatch"},
		{"upload", "PUT", upload("up", "sha256="+hexSum+"&filename=up.img", nil), testToken, content, 201, `"sha256":"` + hexSum + `"`},
		{"upload the same name again", "PUT", upload("up", "", nil), testToken, content, 409, "already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.call(http.DefaultClient, tt.method, tt.path, tt.token, bytes.NewReader(tt.body), map[string]string{"Content-Type": "application/json"})
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s = %d %s; want %d containing %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
			if strings.Contains(body, "root:") {
				t.Errorf("the answer carries /etc/shadow: %s", body)
			}
		})
	}
	imgs, _ := h.st.Images(context.Background())
	if len(imgs) != 2 || imgs[1].Name != "up" || imgs[1].File != filepath.Join(h.catalog.Dir(), "up.raw") {
		t.Fatalf("catalog after the table: %+v; want debian and the one upload", imgs)
	}
	entries, _ := os.ReadDir(h.catalog.Dir())
	if len(entries) != 3 { // debian.raw, shadow.raw (the planted link), up.raw: no partial uploads
		t.Errorf("the images directory holds %d entries, want 3 (no leftovers of refused uploads)", len(entries))
	}
}

func TestNew_RefusesAShortAdminToken(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tok := range []node.Secret{"", "x", "fifteen-chars-x"} {
		if _, err := New(Config{AdminToken: tok}, Deps{Inventory: st}); err == nil || !strings.Contains(err.Error(), "at least 16") {
			t.Errorf("New with a %d-character admin token: %v, want a refusal", len(tok), err)
		}
	}
	if _, err := New(Config{AdminToken: "sixteen-chars-xx"}, Deps{Inventory: st}); err != nil {
		t.Errorf("New with a 16-character admin token: %v", err)
	}
}
