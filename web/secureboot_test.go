package web

import (
	"context"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestPages_NodeShowsSecureBootAndItsUEFILoader(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.login()
	h.importNode(`{"mac":"52:54:00:5b:00:01","name":"sb-1","role":"worker","uefiLoader":"shim"}`)
	tests := []struct {
		secureBoot *bool
		loader     node.UEFILoader
		want       []string
	}{
		{nil, "", []string{"not reported yet", "site setting"}},
		{new(bool), node.LoaderIPXE, []string{"<dt>Secure Boot</dt><dd>off</dd>", "<dt>UEFI loader</dt><dd>ipxe</dd>"}},
		{func() *bool { on := true; return &on }(), node.LoaderShim, []string{"<dt>Secure Boot</dt><dd>on</dd>", "<dt>UEFI loader</dt><dd>shim</dd>"}},
	}
	for _, tt := range tests {
		if _, err := h.st.UpdateNode(context.Background(), "sb-1", func(n *node.Node) ([]node.Event, error) {
			n.SecureBoot, n.UEFILoader = tt.secureBoot, tt.loader
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		p := h.get("/ui/nodes/sb-1")
		for _, w := range tt.want {
			if !strings.Contains(p.body, w) {
				t.Errorf("node page lacks %q", w)
			}
		}
	}
}
