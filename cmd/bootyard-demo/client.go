package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"
)

// client calls Bootyard's API through the host-side forward, as an operator would.
type client struct {
	base  string
	token string
}

func (c *client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *client) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if err := c.call(ctx, "GET", "/healthz", nil, nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootyard never answered through the forward: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *client) states(ctx context.Context) (map[string]string, error) {
	// The demo has two machines: one page holds them.
	var page struct {
		Items []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"items"`
	}
	if err := c.call(ctx, "GET", "/api/v1/nodes", nil, &page); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range page.Items {
		out[n.Name] = n.State
	}
	return out, nil
}

// seedInventory adds the demo image (built by buildImage into the server's images
// directory), join settings for a cluster that exists only on paper (the demo has no
// LLMOS server to join), and the two machines; with secureBoot the UEFI one boots
// through the signed shim and GRUB.
func seedInventory(ctx context.Context, c *client, data string, secureBoot bool, buildImage func(path string) error) error {
	// The server reads image files only from its images directory (made at its start).
	img := filepath.Join(data, "images", "demo.img")
	if err := buildImage(img); err != nil {
		return err
	}
	if err := c.call(ctx, "POST", "/api/v1/images", map[string]any{"name": "demo", "file": img, "default": true}, nil); err != nil {
		return err
	}
	if err := c.call(ctx, "PATCH", "/api/v1/cluster", map[string]any{
		"serverURL": "https://" + labAddr + ":6443", "token": "demo-token-not-a-real-cluster",
	}, nil); err != nil {
		return err
	}
	for _, m := range machines {
		in := map[string]any{"macs": []string{m.mac}, "role": m.role, "name": m.name}
		if m.uefi && secureBoot {
			// iPXE is not signed: firmware that enforces Secure Boot refuses it.
			in["uefiLoader"] = "shim"
		}
		if err := c.call(ctx, "POST", "/api/v1/nodes", in, nil); err != nil {
			return err
		}
	}
	return nil
}
