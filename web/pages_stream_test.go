package web

import (
	"html"
	"regexp"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

var logStream = regexp.MustCompile(`id="log"[^>]* data-stream="([^"]+)"`)

// TestPages_NodeStreamDoesNotRedrawTheDrawnSummary: a node page's stream sends the summary
// only when it differs from the one the page drew. Redrawing an unchanged summary a
// moment after the page loaded swapped the elements under the operator's cursor (and a
// browser test's) for copies: the delete step of the browser test then failed with "No
// node with given id found" whenever the first tick landed between two of its actions.
func TestPages_NodeStreamDoesNotRedrawTheDrawnSummary(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:07:01"],"role":"worker","name":"w-1"}`)
	h.login()
	m := logStream.FindStringSubmatch(h.get("/ui/nodes/w-1").body)
	if m == nil {
		t.Fatal("the node page names no stream")
	}
	stream := html.UnescapeString(m[1])
	isSummary := func(ev string) bool { return strings.Contains(ev, "event: summary") }

	done := make(chan string, 1)
	go func() { done <- h.readStream(stream, isSummary, 20) }()
	// Before or after the stream's first tick: either way the first summary it sends is
	// the changed one.
	h.walk("w-1", node.StateProvisioning)
	got := <-done
	if n := strings.Count(got, "event: summary"); n != 1 || !strings.Contains(got, `id="node-state">provisioning<`) {
		t.Fatalf("the stream sent %d summaries, want just the changed one:\n%s", n, got)
	}

	// A page drawn with another summary (the stale key of the page drawn before the
	// change, or none) gets the current one.
	for _, path := range []string{stream, strings.Split(stream, "&")[0]} {
		if got := h.readStream(path, isSummary, 20); !strings.Contains(got, `id="node-state">provisioning<`) {
			t.Errorf("%s: no current summary:\n%s", path, got)
		}
	}
}
