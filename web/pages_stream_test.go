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

	done := h.readStreamAsync(stream, isSummary, 20)
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

var assetURL = regexp.MustCompile(`(?:src|href)="(/ui/static/app\.(?:js|css)\?v=[0-9a-z]+)"`)

// TestPages_AssetsAreVersionedAndKept: the pages name the script and style sheet by a
// versioned URL the browser may keep, so a page's script runs as soon as the page is
// parsed instead of after a round trip per page load. Any other version is revalidated.
func TestPages_AssetsAreVersionedAndKept(t *testing.T) {
	h := newUI(t, uiOptions{})
	signedOut := h.get("/login").body
	h.login()
	for _, body := range []string{signedOut, h.get("/ui/nodes").body} {
		urls := assetURL.FindAllStringSubmatch(body, -1)
		if len(urls) != 2 {
			t.Fatalf("want the script and the style sheet by versioned URL, found %v in:\n%.600s", urls, body)
		}
		for _, u := range urls {
			p := h.get(html.UnescapeString(u[1]))
			if p.code != 200 || p.header.Get("Cache-Control") != "public, max-age=31536000, immutable" || p.body == "" {
				t.Errorf("GET %s: %d, Cache-Control %q", u[1], p.code, p.header.Get("Cache-Control"))
			}
		}
	}
	for _, path := range []string{"/ui/static/app.js", "/ui/static/app.js?v=old"} {
		if p := h.get(path); p.code != 200 || p.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: %d, Cache-Control %q, want no-cache", path, p.code, p.header.Get("Cache-Control"))
		}
	}
}
