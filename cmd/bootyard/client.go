package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// clientFlags are how CLI commands reach the server's API.
type clientFlags struct {
	server  string
	token   string
	dataDir string
	caCert  string
}

func (c *clientFlags) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", envOr("BOOTYARD_SERVER", "http://127.0.0.1:8080"), "Bootyard API URL (env BOOTYARD_SERVER)")
	pf.StringVar(&c.token, "admin-token", "", "admin token the CLI sends (default: env BOOTYARD_TOKEN, else <data-dir>/admin-token); for serve, the server's token (env BOOTYARD_ADMIN_TOKEN; at least 16 characters)")
	pf.StringVar(&c.dataDir, "data-dir", envOr("BOOTYARD_DATA", "./data"), "where the local server keeps its admin-token file (env BOOTYARD_DATA)")
	pf.StringVar(&c.caCert, "ca-cert", "", "PEM certificate to trust for an https --server (default: <data-dir>/tls/cert.pem when it exists)")
}

// httpClient trusts the system roots plus the given or the local self-signed certificate.
func (c *clientFlags) httpClient() (*http.Client, error) {
	file := c.caCert
	if file == "" {
		if p := filepath.Join(c.dataDir, "tls", "cert.pem"); fileExists(p) {
			file = p
		}
	}
	if file == "" || !strings.HasPrefix(c.server, "https:") {
		return http.DefaultClient, nil
	}
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// adminToken is the --token flag, BOOTYARD_TOKEN or the local server's token file.
func (c *clientFlags) adminToken() string {
	if c.token != "" {
		return c.token
	}
	if v := os.Getenv("BOOTYARD_TOKEN"); v != "" {
		return v
	}
	b, err := os.ReadFile(filepath.Join(c.dataDir, adminTokenFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// apiError is the server's error body.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// do calls the API; a non-2xx answer becomes an error carrying the server's message.
func (c *clientFlags) do(ctx context.Context, method, path string, body any, out any) error {
	resp, err := c.raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// raw calls the API and returns a 2xx response for the caller to read and close.
func (c *clientFlags) raw(ctx context.Context, method, path string, body any) (*http.Response, error) {
	if body == nil {
		return c.sendBody(ctx, method, path, "", nil)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.sendBody(ctx, method, path, "application/json", bytes.NewReader(b))
}

// sendBody is raw with a body already encoded as contentType (a CSV file, say).
func (c *clientFlags) sendBody(ctx context.Context, method, path, contentType string, rd io.Reader) (*http.Response, error) {
	resp, err := c.exchange(ctx, method, path, contentType, rd)
	if err != nil {
		return nil, err
	}
	return refusal(resp)
}

// exchange sends one request and returns the response whatever its status, for calls
// whose error answers carry more than a message (a bulk import's failed rows).
func (c *clientFlags) exchange(ctx context.Context, method, path, contentType string, rd io.Reader) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.do1(req, cancel)
}

// send sends req with the CLI's headers and admin token and returns a 2xx response;
// cancel ends req's context and runs when the returned body is closed (or at once on
// error).
func (c *clientFlags) send(req *http.Request, cancel context.CancelFunc) (*http.Response, error) {
	resp, err := c.do1(req, cancel)
	if err != nil {
		return nil, err
	}
	return refusal(resp)
}

// do1 sends req with the CLI's headers and admin token and returns the response
// whatever its status.
func (c *clientFlags) do1(req *http.Request, cancel context.CancelFunc) (*http.Response, error) {
	req.Header.Set("User-Agent", "bootyard-cli")
	if tok := c.adminToken(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc, err := c.httpClient()
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cannot reach Bootyard at %s: %w", c.server, err)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// refusal passes a 2xx response on and turns any other into a statusError.
func refusal(resp *http.Response) (*http.Response, error) {
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e apiError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return nil, &statusError{Status: resp.StatusCode, Message: e.Error}
}

// statusError is the server's refusal: its message and HTTP status.
type statusError struct {
	Status  int
	Message string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}
