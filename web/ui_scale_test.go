package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// TestUI_NodesPageAt10000Nodes loads the nodes page over an inventory of 10,000 in
// headless Chromium, pages, searches by label, and watches one node's state change
// arrive as an update of that row alone (the table and the other rows stay the same
// elements). First paint is reported, not asserted.
func TestUI_NodesPageAt10000Nodes(t *testing.T) {
	const count = 10_000
	h := newUI(t, uiOptions{})
	rows := make([]store.ImportRow, count)
	for i := range rows {
		rows[i] = store.ImportRow{Line: i + 2, Node: node.Node{Name: fmt.Sprintf("dc-%06d", i),
			MACs: []node.MAC{{0x02, 0xdc, 0, byte(i >> 16), byte(i >> 8), byte(i)}}, Role: node.RoleWorker,
			Labels: map[string]string{"rack": fmt.Sprintf("r%d", i/40)}}}
	}
	if _, err := h.st.ImportNodes(t.Context(), rows, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, h)
	base := h.srv.URL
	browserSignIn(t, ctx, base+"/ui/nodes",
		chromedp.WaitVisible("#node-dc-000000", chromedp.ByID))

	var paint float64
	var rowCount int
	var paging string
	start := time.Now()
	run(t, ctx, "load the nodes page",
		chromedp.Navigate(base+"/ui/nodes"),
		chromedp.WaitVisible("#node-dc-000099", chromedp.ByID))
	loaded := time.Since(start)
	run(t, ctx, "read the page",
		chromedp.Evaluate(`(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`, &paint),
		chromedp.Evaluate(`document.querySelectorAll("#inventory table.nodes tbody tr").length`, &rowCount),
		chromedp.Text("#paging", &paging, chromedp.ByID))
	t.Logf("nodes page at %d nodes in headless Chromium: first contentful paint %.0f ms, loaded and shown in %v", count, paint, loaded.Round(time.Millisecond))
	if rowCount != 100 || !strings.Contains(paging, "1–100 of 10000") {
		t.Fatalf("first page: %d rows, paging %q", rowCount, paging)
	}

	run(t, ctx, "next page",
		chromedp.Click("#page-next", chromedp.ByID),
		chromedp.WaitVisible("#node-dc-000100", chromedp.ByID),
		chromedp.Text("#paging", &paging, chromedp.ByID))
	if !strings.Contains(paging, "101–200 of 10000") {
		t.Fatalf("second page says %q", paging)
	}
	run(t, ctx, "search by label",
		chromedp.SetValue("#filter-q", "rack=r7", chromedp.ByID),
		chromedp.Click("#filter-submit", chromedp.ByID),
		chromedp.WaitVisible("#node-dc-000280", chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("#inventory table.nodes tbody tr").length`, &rowCount))
	var loc string
	run(t, ctx, "the URL holds the view", chromedp.Location(&loc))
	if rowCount != 40 || !strings.Contains(loc, "q=rack%3Dr7") {
		t.Fatalf("search rack=r7: %d rows at %s", rowCount, loc)
	}

	// A state change on the page shown arrives as that row alone.
	run(t, ctx, "back to the first page",
		chromedp.Navigate(base+"/ui/nodes"),
		chromedp.WaitVisible("#node-dc-000001", chromedp.ByID),
		chromedp.Evaluate(`window.other = document.getElementById("node-dc-000002");
			window.table = document.querySelector("#inventory table.nodes");
			document.querySelector('#node-dc-000003 input[name=names]').checked = true; true`, nil))
	h.walk("dc-000001", node.StateProvisioning)
	run(t, ctx, "the row updates live",
		chromedp.Poll(`document.getElementById("node-dc-000001").textContent.includes("provisioning")`, nil,
			chromedp.WithPollingTimeout(30*time.Second)))
	jsTrue(t, ctx, "the table and the other rows are the same elements",
		`document.querySelector("#inventory table.nodes") === window.table && document.getElementById("node-dc-000002") === window.other`)
	jsTrue(t, ctx, "the counts followed", `document.getElementById("count-provisioning").textContent.includes("1")`)
	jsTrue(t, ctx, "a checked box survives", `document.querySelector('#node-dc-000003 input[name=names]').checked`)
	screenshot(t, ctx, "nodes-10000.png", 1280, 900)
}
