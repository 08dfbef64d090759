package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/bootyard/bootyard/agentapi"
)

// errTokenRejected is a 401: Bootyard restarted, or a newer boot of this node took over.
var errTokenRejected = errors.New("bootyard rejected the boot token")

// errStateChanged is a 409: the node no longer wants what this boot was started for.
var errStateChanged = errors.New("node state no longer matches this boot")

// apiClient talks to Bootyard's agent API with the boot's token.
type apiClient struct {
	base  *url.URL
	token Token
	http  *http.Client
}

func newAPIClient(base *url.URL, token Token) *apiClient {
	return &apiClient{base: base, token: token, http: &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			// Images are already compressed or deliberately raw; Go's transparent
			// gzip would only hide the served bytes the checksum is over.
			DisableCompression: true,
		},
	}}
}

func (c *apiClient) url(path string) string {
	return c.base.JoinPath(path).String()
}

func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	// Small calls never wait long: a stuck Bootyard must not stall the install.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+string(c.token))
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s %s: %w", method, path, errTokenRejected)
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("%s %s: %w: %s", method, path, errStateChanged, readSnippet(resp.Body))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, readSnippet(resp.Body))
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

func readSnippet(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 512))
	return string(bytes.TrimSpace(b))
}

func (c *apiClient) task(ctx context.Context) (agentapi.Task, error) {
	var t agentapi.Task
	err := c.do(ctx, http.MethodGet, "/agent/v1/task", nil, &t)
	return t, err
}

func (c *apiClient) progress(ctx context.Context, p agentapi.Progress) error {
	return c.do(ctx, http.MethodPost, "/agent/v1/progress", p, nil)
}

func (c *apiClient) log(ctx context.Context, lines []string) error {
	return c.do(ctx, http.MethodPost, "/agent/v1/log", agentapi.Log{Lines: lines}, nil)
}

func (c *apiClient) done(ctx context.Context, d agentapi.Done) error {
	return c.do(ctx, http.MethodPost, "/agent/v1/done", d, nil)
}

func (c *apiClient) firmware(ctx context.Context, f agentapi.FirmwareReport) error {
	return c.do(ctx, http.MethodPost, "/agent/v1/firmware", f, nil)
}

func (c *apiClient) failed(ctx context.Context, reason string) error {
	return c.do(ctx, http.MethodPost, "/agent/v1/failed", agentapi.Failed{Reason: reason}, nil)
}

// openImage starts the image download. Bootyard's own image URLs and outside URLs are
// fetched alike, without the token: it authorises the agent API, not downloads.
func (c *apiClient) openImage(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	u, err := c.base.Parse(rawURL)
	if err != nil {
		return nil, 0, fmt.Errorf("image url %q: %w", rawURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s: %w", u, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("image %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, 0, fmt.Errorf("image %s: %s: %s", u, resp.Status, readSnippet(resp.Body))
	}
	return resp.Body, resp.ContentLength, nil
}
