package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// TestJoinCommandAndSeedISO checks the renderer through the operator's endpoints: the
// join command is redacted unless an admin reveals it, and the seed ISO is a cidata image.
func TestJoinCommandAndSeedISO(t *testing.T) {
	const token = "K10join-command-test-token::server:7e1f"
	h := newAPI(t, func(st *store.Store, d *Deps) {
		r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: "http://10.20.0.1:8080"})
		if err != nil {
			t.Fatal(err)
		}
		d.Join = r
	})
	ctx := context.Background()
	if _, err := h.st.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL, c.Token = "https://10.20.0.11:6443", token
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.mustImport(`{"macs":["52:54:00:55:00:01"],"role":"worker","name":"w-5"}`)
	if _, err := h.st.UpdateNode(ctx, "w-5", func(n *node.Node) ([]node.Event, error) {
		ev, err := n.Transition(node.StateProvisioning, "test", "test", time.Now().UTC())
		return []node.Event{ev}, err
	}); err != nil {
		t.Fatal(err)
	}
	code, body := h.call(http.MethodGet, "/api/v1/nodes/w-5/join-command", nil, true)
	if code != 200 || strings.Contains(string(body), token) || !strings.Contains(string(body), "redacted") {
		t.Errorf("join-command: %d, want 200 and the token redacted:\n%s", code, body)
	}
	code, body = h.call(http.MethodGet, "/api/v1/nodes/w-5/join-command?reveal=true", nil, true)
	if code != 200 || !strings.Contains(string(body), token) {
		t.Errorf("join-command?reveal=true as admin: %d, want 200 and the token:\n%s", code, body)
	}
	code, body = h.call(http.MethodGet, "/api/v1/nodes/w-5/seed.iso", nil, true)
	if code != 200 || !strings.Contains(string(body), "CD001") || !strings.Contains(string(body), "cidata") {
		t.Errorf("seed.iso: %d, %d bytes; want an ISO 9660 image labelled cidata", code, len(body))
	}
}
