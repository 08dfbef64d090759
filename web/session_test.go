package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

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
