package web

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// fillUI imports count workers named w-000.., racks of 10, every third with an address.
func fillUI(t *testing.T, h *uiHarness, count int) {
	t.Helper()
	rows := make([]store.ImportRow, count)
	for i := range rows {
		n := node.Node{Name: fmt.Sprintf("w-%03d", i), MACs: []node.MAC{{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)}}, Role: node.RoleWorker,
			Labels: map[string]string{"rack": fmt.Sprintf("r%d", i/10)}}
		if i%3 == 0 {
			n.IP = netip.MustParsePrefix(fmt.Sprintf("10.3.%d.%d/16", i>>8, i&0xff+1))
		}
		rows[i] = store.ImportRow{Line: i + 2, Node: n}
	}
	if _, err := h.st.ImportNodes(t.Context(), rows, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

var rowID = regexp.MustCompile(`<tr id="node-([a-z0-9-]+)">`)

func rowNames(body string) []string {
	var out []string
	for _, m := range rowID.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestPages_NodesPageShowsOnePageAndPagesThroughEverything(t *testing.T) {
	h := newUI(t, uiOptions{})
	fillUI(t, h, 250)
	h.walk("w-007", node.StateProvisioning, node.StateFailed)
	h.login()
	p := h.get("/ui/nodes")
	if p.code != 200 || len(rowNames(p.body)) != 100 {
		t.Fatalf("first page: %d, %d rows", p.code, len(rowNames(p.body)))
	}
	for _, want := range []string{"Nodes 1–100 of 250", `id="count-failed"`, `<span class="state state-failed">failed</span> 1`, `<span class="state state-registered">registered</span> 249`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("first page lacks %q", want)
		}
	}
	// Follow Next to the end: every node once, in name order.
	var all []string
	next := "/ui/nodes"
	for next != "" {
		p := h.get(next)
		all = append(all, rowNames(p.body)...)
		m := regexp.MustCompile(`href="([^"]+)" id="page-next"`).FindStringSubmatch(p.body)
		next = ""
		if m != nil {
			next = html.UnescapeString(m[1])
		}
	}
	if len(all) != 250 || all[0] != "w-000" || all[249] != "w-249" {
		t.Fatalf("paged through %d rows, %v … %v", len(all), all[:1], all[len(all)-1:])
	}
	// Searches: name prefix, MAC, IP, label selector; sorting by state; each in the URL.
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?q=w-01", []string{"w-010", "w-011", "w-012", "w-013", "w-014", "w-015", "w-016", "w-017", "w-018", "w-019"}},
		{"?q=52:54:00:00:00:05", []string{"w-005"}},
		{"?q=10.3.0.4", []string{"w-003"}},
		{"?q=" + url.QueryEscape("rack=r2,rack!=r3") + "&limit=3", []string{"w-020", "w-021", "w-022"}},
		{"?state=failed", []string{"w-007"}},
		{"?sort=state&limit=1", []string{"w-007"}}, // failed sorts before registered
		{"?sort=-name&limit=2", []string{"w-249", "w-248"}},
	} {
		if got := rowNames(h.get("/ui/nodes" + tc.query).body); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: rows %v, want %v", tc.query, got, tc.want)
		}
	}
	if p := h.get("/ui/nodes?q=" + url.QueryEscape("rack in (r1")); p.code != http.StatusUnprocessableEntity || !strings.Contains(p.body, `id="filter-error"`) {
		t.Errorf("a bad selector: %d, no error shown", p.code)
	}
}

// TestPages_NodesStreamSendsOnlyTheChangedRow opens the page's own stream, changes one
// node's state and checks that what arrives is that row and the counts: a few hundred
// bytes, under the 4 KB, and never the table.
func TestPages_NodesStreamSendsOnlyTheChangedRow(t *testing.T) {
	h := newUI(t, uiOptions{})
	fillUI(t, h, 150)
	h.login()
	stream := nodesStream(t, h.get("/ui/nodes").body)
	done := h.readStreamAsync(stream, func(ev string) bool { return strings.Contains(ev, "event: row") }, 20)
	// The stream sends nothing the page already shows (its first tick, before or after
	// this change, finds the counts and rows as drawn); one node moves on.
	h.walk("w-042", node.StateProvisioning)
	got := <-done
	after := sentAfterOpening(got)
	if strings.Contains(got, "event: inventory") {
		t.Fatalf("the stream resent the table for one state change:\n%.300s", got)
	}
	if n := strings.Count(got, "event: counts"); n != 1 || !strings.Contains(got, `id="count-provisioning"`) {
		t.Fatalf("the stream sent %d counts before the row, want only the changed ones:\n%.800s", n, got)
	}
	if !strings.Contains(got, `id="node-w-042"`) || !strings.Contains(got, "provisioning") {
		t.Fatalf("no row update for w-042:\n%s", got)
	}
	if n := len(after); n > 4096 {
		t.Fatalf("one state change sent %d bytes, over 4 KB", n)
	}
	t.Logf("one state change: %d bytes on the stream", len(after))
}

// TestPages_NodesStreamSendsARowChangedByAReplicaWithASlowClock: with replicas, a page
// may be drawn by one whose clock is ahead of the ones that write its rows. The stream's
// first tick must still send a row changed after the page was drawn (it once skipped
// every row dated before the page's render time), and only that row.
func TestPages_NodesStreamSendsARowChangedByAReplicaWithASlowClock(t *testing.T) {
	h := newUI(t, uiOptions{inventory: func(st *store.Store) Inventory { return slowClockWriters{st, time.Hour} }})
	fillUI(t, h, 20)
	h.login()
	stream := nodesStream(t, h.get("/ui/nodes").body)
	h.walk("w-007", node.StateProvisioning) // after the page was drawn
	got := h.readStream(stream, func(ev string) bool { return strings.Contains(ev, "event: row") }, 20)
	if !strings.Contains(got, `id="node-w-007"`) || !strings.Contains(got, "provisioning") {
		t.Fatalf("the stream's first tick did not send w-007, changed after the page was drawn:\n%.1500s", got)
	}
	if n := strings.Count(got, "event: row"); n != 1 {
		t.Fatalf("the stream sent %d rows, want only w-007's:\n%.1500s", n, got)
	}
}

// nodesStream is the live stream a nodes page names.
func nodesStream(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`data-stream="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the nodes page names no stream")
	}
	return html.UnescapeString(m[1])
}

// slowClockWriters reads the inventory as if every node had been written by a replica
// whose clock is behind this one's.
type slowClockWriters struct {
	*store.Store
	behind time.Duration
}

func (s slowClockWriters) QueryNodes(ctx context.Context, q store.NodeQuery) (store.NodePage, error) {
	p, err := s.Store.QueryNodes(ctx, q)
	for i := range p.Nodes {
		p.Nodes[i].UpdatedAt = p.Nodes[i].UpdatedAt.Add(-s.behind)
	}
	return p, err
}

func TestPages_CSVImportPreviewsThenCommits(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.login()
	csv := "mac,name,role,labels\n52:54:00:09:00:01,r9-a,worker,rack=r9\n52:54:00:09:00:02,r9-b,worker,rack=r9\nbad,r9-c,worker,\n"
	upload := func(body string) page {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		_ = w.WriteField("csrf", h.csrf)
		fw, _ := w.CreateFormFile("file", "rack9.csv")
		fw.Write([]byte(body))
		w.Close()
		req, _ := http.NewRequest("POST", h.srv.URL+"/ui/nodes/import-csv", &b)
		req.Header.Set("Content-Type", w.FormDataContentType())
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return page{code: resp.StatusCode, body: out.String(), location: resp.Header.Get("Location")}
	}
	p := upload(csv)
	if p.code != 200 || !strings.Contains(p.body, "with errors") || !strings.Contains(p.body, "<td>4</td>") || !strings.Contains(p.body, "r9-a") {
		t.Fatalf("preview: %d\n%s", p.code, p.body)
	}
	if n, _ := h.st.StateCounts(t.Context()); len(n) != 0 {
		t.Fatalf("the preview imported: %v", n)
	}
	// Committing the file as it is imports nothing (a row fails); with the box ticked the
	// good rows go in.
	commit := url.Values{"commit": {"1"}, "filename": {"rack9.csv"}, "csv": {csv}}
	if p := h.post("/ui/nodes/import-csv", commit); p.code != http.StatusUnprocessableEntity {
		t.Fatalf("commit with a bad row: %d", p.code)
	}
	commit.Set("continueOnError", "1")
	p = h.post("/ui/nodes/import-csv", commit)
	if p.code != http.StatusSeeOther || !strings.Contains(p.location, "2+created") {
		t.Fatalf("commit: %d %s\n%.500s", p.code, p.location, p.body)
	}
	if got := rowNames(h.get("/ui/nodes").body); strings.Join(got, ",") != "r9-a,r9-b" {
		t.Fatalf("rows after import %v", got)
	}
}

func TestPages_BulkActionsOnCheckedRowsAndOnTheWholeView(t *testing.T) {
	h := newUI(t, uiOptions{})
	fillUI(t, h, 30)
	h.login()
	view := url.Values{"q": {"rack=r1"}}.Encode()
	p := h.post("/ui/nodes/bulk", url.Values{"view": {view}, "scope": {"matching"}, "action": {"set-labels"}, "value": {"row=b; rack-"}})
	if p.code != http.StatusSeeOther || !strings.Contains(p.location, "10+of+10") {
		t.Fatalf("set-labels: %d %s", p.code, p.location)
	}
	if got := rowNames(h.get("/ui/nodes?q=row%3Db").body); len(got) != 10 || got[0] != "w-010" {
		t.Fatalf("labelled rows %v", got)
	}
	// Delete needs the count: a wrong one deletes nothing.
	del := url.Values{"view": {""}, "scope": {"checked"}, "action": {"delete"}, "names": {"w-001", "w-002"}, "confirm": {"3"}}
	if p := h.post("/ui/nodes/bulk", del); !strings.Contains(p.location, "Nothing+changed") {
		t.Fatalf("delete with a wrong count: %s", p.location)
	}
	del.Set("confirm", "2")
	if p := h.post("/ui/nodes/bulk", del); !strings.Contains(p.location, "2+of+2") {
		t.Fatalf("delete: %s", p.location)
	}
	if c, _ := h.st.StateCounts(t.Context()); c[node.StateRegistered] != 28 {
		t.Fatalf("counts after deleting 2 of 30: %v", c)
	}
}

// sentAfterOpening is what a stream sent after its opening retry line: a page's stream
// sends nothing the page already shows, so for one opened just before one change, that
// change.
func sentAfterOpening(stream string) string {
	_, after, _ := strings.Cut(stream, "\n\n")
	return after
}
