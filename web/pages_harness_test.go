package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
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
	turns   JoinTurnHolder
	// trustedProxies are the proxies whose X-Forwarded-For the server believes.
	trustedProxies []netip.Prefix
	// inventory, when set, wraps the store the server reads.
	inventory func(*store.Store) Inventory
}

func newUI(t *testing.T, opts uiOptions) *uiHarness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	deps := Deps{Inventory: st, JoinTurns: opts.turns}
	if opts.inventory != nil {
		deps.Inventory = opts.inventory(st)
	}
	if !opts.noJoin {
		r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: "http://127.0.0.1:9"})
		if err != nil {
			t.Fatal(err)
		}
		deps.Join = r
	}
	s, err := New(Config{AdminToken: testToken, TLS: opts.tls, ClusterConnected: opts.cluster, TrustedProxies: opts.trustedProxies}, deps)
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
	h.walkAt(time.Time{}, name, states...)
}

// walkAt is walk with the transitions dated from clock, as a replica whose clock reads
// that would date them; zero is the wall clock, as the product's transitions are, and
// later than the node's last change all the same, so walks in a row stay in order.
func (h *uiHarness) walkAt(clock time.Time, name string, states ...node.State) {
	h.t.Helper()
	if _, err := h.st.UpdateNode(h.t.Context(), name, func(n *node.Node) ([]node.Event, error) {
		var evs []node.Event
		for i, to := range states {
			at := clock.UTC().Add(time.Duration(i) * time.Millisecond)
			if clock.IsZero() {
				if at = time.Now().UTC(); !at.After(n.UpdatedAt) {
					at = n.UpdatedAt.Add(time.Millisecond)
				}
			}
			ev, err := n.Transition(to, "test", "test", at)
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

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
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

// readStream reads an event stream until stop accepts an event or n events came, and
// returns what was read. The request is cancelled on return, as a closed tab would.
// readStreamAsync is readStream in a goroutine. The channel always gets a value: when
// the reader fails (t.Fatal in a goroutine ends only that goroutine) it gets what was
// read, so the test reports the failure instead of waiting forever.
func (h *uiHarness) readStreamAsync(path string, stop func(event string) bool, n int) <-chan string {
	done := make(chan string, 1)
	go func() {
		got := ""
		defer func() { done <- got }()
		got = h.readStream(path, stop, n)
	}()
	return done
}

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
