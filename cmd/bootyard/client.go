package main

import (
	"bytes"
	"context"
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
}

func (c *clientFlags) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&c.server, "server", envOr("BOOTYARD_SERVER", "http://127.0.0.1:8080"), "Bootyard API URL (env BOOTYARD_SERVER)")
	pf.StringVar(&c.token, "admin-token", "", "admin token (default: env BOOTYARD_TOKEN, else <data-dir>/admin-token)")
	pf.StringVar(&c.dataDir, "data-dir", envOr("BOOTYARD_DATA", "./data"), "where the local server keeps its admin-token file (env BOOTYARD_DATA)")
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
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+path, rd)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("User-Agent", "bootyard-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.adminToken(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cannot reach Bootyard at %s: %w", c.server, err)
	}
	if resp.StatusCode/100 != 2 {
		defer cancel()
		defer resp.Body.Close()
		var e apiError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}
