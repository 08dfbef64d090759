package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTLS_SelfSignedOperatorListenerAndPlainMachineListener starts serve with --tls: the
// API and pages answer over HTTPS with a certificate generated on first start (and kept
// across restarts), the session cookie is Secure, and machines still get their scripts
// over plain HTTP on a listener that serves nothing of the API.
func TestTLS_SelfSignedOperatorListenerAndPlainMachineListener(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	addr, machineAddr := freePort(t), freePort(t)
	start := func() *server {
		return startTLSServer(t, bin, data, addr, machineAddr)
	}
	srv := start()
	certFile := filepath.Join(data, "tls", "cert.pem")
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("no generated certificate: %v", err)
	}
	if info, err := os.Stat(filepath.Join(data, "tls", "key.pem")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("certificate is not PEM")
	}
	jar, _ := cookiejar.New(nil)
	trusted := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// HTTPS with the generated certificate as the trust anchor.
	// (/healthz: the API itself needs the admin token.)
	resp, err := trusted.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("https with the generated certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d", resp.StatusCode)
	}
	// An untrusting client refuses it, and plain HTTP on the TLS port gets nothing.
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an untrusting client accepted the self-signed certificate: %v", err)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP answered on the TLS port")
		}
	}

	// The web sign-in sets a Secure, HttpOnly, SameSite=Strict session cookie.
	resp, err = trusted.Get("https://" + addr + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("login page has no CSRF field:\n%s", page)
	}
	token, _ := os.ReadFile(filepath.Join(data, "admin-token"))
	resp, err = trusted.PostForm("https://"+addr+"/login", url.Values{"csrf": {string(m[1])},
		"username": {"admin"}, "password": {strings.TrimSpace(string(token))}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(c, "HttpOnly") && strings.Contains(strings.ToLower(c), "samesite=strict") {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == "" || !strings.Contains(session, "Secure") {
		t.Errorf("sign-in over TLS: %d, cookies %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}

	// The cluster page says machines stay on plain HTTP, and where.
	resp, err = trusted.Get("https://" + addr + "/ui/cluster")
	if err != nil {
		t.Fatal(err)
	}
	clusterPage, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(clusterPage), "http://"+machineAddr) || !strings.Contains(string(clusterPage), "plain HTTP") {
		t.Errorf("cluster page over TLS (%d) does not tell where machines go in plain HTTP:\n%s", resp.StatusCode, clusterPage)
	}

	// The CLI trusts the local certificate by default.
	cli := exec.Command(bin, "--server", "https://"+addr, "--data-dir", data, "node", "import", "52:54:00:aa:00:01", "--role", "worker", "--name", "tls-1")
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("CLI over https: %v\n%s", err, out)
	}

	// Machines: plain HTTP, scripts yes, API no.
	resp, err = http.Get("http://" + machineAddr + "/boot.ipxe?mac=52:54:00:aa:00:01")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(script), "#!ipxe") {
		t.Errorf("script over plain HTTP: %d %s", resp.StatusCode, script)
	}
	for _, path := range []string{"/api/v1/nodes", "/ui/nodes", "/login", "/metrics"} {
		resp, err := http.Get("http://" + machineAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("machine listener serves %s: %d", path, resp.StatusCode)
		}
	}

	// A restart keeps the certificate: browsers that trusted it keep trusting it.
	first := sha256.Sum256(pemBytes)
	srv.stop(t)
	start()
	again, _ := os.ReadFile(certFile)
	if sha256.Sum256(again) != first {
		t.Errorf("certificate changed across a restart")
	}
}

func startTLSServer(t *testing.T, bin, data, addr, machineAddr string) *server {
	t.Helper()
	s := startServerArgs(t, bin, "http://"+machineAddr, "serve", "--data", data, "--listen", addr, "--tls", "--machine-listen", machineAddr)
	return s
}
