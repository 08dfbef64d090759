package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// postCSV sends a CSV body to the bulk import.
func (h *apiHarness) postCSV(query, body string, admin bool) (int, ImportReport) {
	h.t.Helper()
	code, raw := h.send("POST", "/api/v1/bulk/import"+query, "text/csv", body, admin)
	var rep ImportReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		h.t.Fatalf("import answer %d is not JSON: %s", code, raw)
	}
	return code, rep
}

func (h *apiHarness) list(query string) store.NodePage {
	h.t.Helper()
	code, out := h.call("GET", "/api/v1/nodes"+query, nil, true)
	var page store.NodePage
	if code != 200 || json.Unmarshal(out, &page) != nil {
		h.t.Fatalf("GET /api/v1/nodes%s: %d %s", query, code, out)
	}
	return page
}

func pageNames(p store.NodePage) []string {
	var out []string
	for _, n := range p.Nodes {
		out = append(out, n.Name)
	}
	return out
}

const rackCSV = `mac,name,role,ip,gateway,dns,labels,taints,image
52:54:00:07:00:01,r7-s1,server,10.7.0.1/16,10.7.0.254,10.7.0.253,rack=r7,,
52:54:00:07:00:02,r7-w1,worker,10.7.0.2/16,,,rack=r7;gpu=a100,gpu=true:NoSchedule,
52:54:00:07:00:03,r7-w2,worker,,,,"rack=r7,gpu=h100",,
# a comment line, and a blank line next

52:54:00:08:00:01,r8-w1,agent,,,,rack=r8,,
`

func TestBulkImport_CSVImportsOnceAndAgainChangesNothing(t *testing.T) {
	h := newAPI(t)
	if code, _ := h.postCSV("", rackCSV, false); code != http.StatusUnauthorized {
		t.Fatalf("import without the admin token: %d, want 401", code)
	}
	code, rep := h.postCSV("", rackCSV, true)
	if code != 200 || !rep.Committed || rep.Created != 4 || rep.Failed != 0 {
		t.Fatalf("import: %d %+v", code, rep)
	}
	w1, err := h.st.GetNode(t.Context(), "r7-w1")
	if err != nil {
		t.Fatal(err)
	}
	if w1.IP.String() != "10.7.0.2/16" || w1.Labels["gpu"] != "a100" || len(w1.Taints) != 1 || w1.Role != node.RoleWorker {
		t.Fatalf("r7-w1 stored as %+v", w1)
	}
	code, rep = h.postCSV("", rackCSV, true)
	if code != 200 || rep.Unchanged != 4 || rep.Created != 0 {
		t.Fatalf("the same file again: %d %+v, want 4 unchanged", code, rep)
	}
}

func TestBulkImport_BadRowsAreReportedByLineAndNothingIsImported(t *testing.T) {
	h := newAPI(t)
	h.mustImport(`{"macs":["52:54:00:00:00:99"],"role":"worker","name":"taken"}`)
	csv := `mac,role,name,ip,labels
52:54:00:00:00:01,worker,ok-1,,
52:54:00:00:00:02,worker,ok-2,10.0.0.0/24,
not-a-mac,worker,bad-mac,,
52:54:00:00:00:04,chef,bad-role,,
52:54:00:00:00:05,worker,bad-label,,rack=r7;=x
52:54:00:00:00:99,worker,dup-mac,,
52:54:00:00:00:07,worker,ok-1,,
52:54:00:00:00:08,worker
`
	code, rep := h.postCSV("", csv, true)
	if code != http.StatusUnprocessableEntity && code != http.StatusConflict {
		t.Fatalf("status %d, want 422 or 409: %+v", code, rep)
	}
	wantLines := []int{3, 4, 5, 6, 7, 8, 9}
	var gotLines []int
	for _, e := range rep.Errors {
		gotLines = append(gotLines, e.Line)
		if e.Error == "" {
			t.Errorf("line %d has no reason", e.Line)
		}
	}
	if !slices.Equal(gotLines, wantLines) {
		t.Fatalf("failed lines %v, want %v (%+v)", gotLines, wantLines, rep.Errors)
	}
	if rep.Committed || rep.Skipped != 1 || !strings.Contains(rep.Error, "nothing was imported") {
		t.Fatalf("report %+v", rep)
	}
	if p := h.list(""); p.Total != 1 {
		t.Fatalf("%d nodes after a refused import, want only the one imported before", p.Total)
	}
	// With continueOnError the good row goes in and the rest are still reported.
	code, rep = h.postCSV("?continueOnError=true", csv, true)
	if code != 200 || !rep.Committed || rep.Created != 1 || rep.Failed != 7 {
		t.Fatalf("continueOnError: %d %+v", code, rep)
	}
}

func TestBulkImport_MalformedFilesAreRefusedWhole(t *testing.T) {
	h := newAPI(t)
	for name, body := range map[string]string{
		"empty":           "",
		"header only":     "mac,role\n",
		"unknown column":  "mac,role,colour\n52:54:00:00:00:01,worker,red\n",
		"no role column":  "mac,name\n52:54:00:00:00:01,a\n",
		"unclosed quote":  "mac,role\n\"52:54:00:00:00:01,worker\n",
		"duplicate colum": "mac,role,mac\n",
	} {
		t.Run(name, func(t *testing.T) {
			code, rep := h.postCSV("", body, true)
			if code != http.StatusUnprocessableEntity || rep.Error == "" {
				t.Fatalf("%d %+v, want 422 with a reason", code, rep)
			}
		})
	}
	if p := h.list(""); p.Total != 0 {
		t.Fatalf("%d nodes imported from malformed files", p.Total)
	}
}

func TestBulkImport_JSONArrayAndDryRun(t *testing.T) {
	h := newAPI(t)
	body := `[{"mac":"52:54:00:00:01:01","role":"worker","labels":{"rack":"r1"}},{"mac":"52:54:00:00:01:02","role":"server"}]`
	code, out := h.call("POST", "/api/v1/bulk/import?dryRun=true", body, true)
	var rep ImportReport
	if code != 200 || json.Unmarshal(out, &rep) != nil || rep.Created != 2 || rep.Committed {
		t.Fatalf("dry run: %d %s", code, out)
	}
	if p := h.list(""); p.Total != 0 {
		t.Fatalf("a dry run imported %d nodes", p.Total)
	}
	code, out = h.call("POST", "/api/v1/bulk/import", body, true)
	if code != 200 || json.Unmarshal(out, &rep) != nil || rep.Created != 2 || !rep.Committed {
		t.Fatalf("import: %d %s", code, out)
	}
	if code, out := h.call("POST", "/api/v1/bulk/import", `[{"mac":"52:54:00:00:01:03","role":"worker","colour":"red"}]`, true); code != 400 {
		t.Fatalf("unknown field: %d %s", code, out)
	}
}

func TestListNodes_PagesFiltersAndSelectorErrors(t *testing.T) {
	h := newAPI(t)
	var b strings.Builder
	b.WriteString("mac,name,role,ip,labels\n")
	for i := range 25 {
		fmt.Fprintf(&b, "52:54:00:00:10:%02x,n-%02d,worker,10.9.0.%d/24,rack=r%d\n", i, i, i+1, i%3)
	}
	if code, rep := h.postCSV("", b.String(), true); code != 200 || rep.Created != 25 {
		t.Fatalf("import: %d %+v", code, rep)
	}
	// Pages of 10 by name: every node once, in order, with the total on each page.
	var got []string
	q := "?limit=10"
	for pages := 0; ; pages++ {
		p := h.list(q)
		if p.Total != 25 || len(p.Nodes) > 10 {
			t.Fatalf("page %d: total %d, %d items", pages, p.Total, len(p.Nodes))
		}
		got = append(got, pageNames(p)...)
		if p.Continue == "" {
			break
		}
		q = "?limit=10&continue=" + url.QueryEscape(p.Continue)
	}
	if len(got) != 25 || !slices.IsSorted(got) {
		t.Fatalf("paged names %v", got)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"?labelSelector=" + url.QueryEscape("rack=r1"), 8},
		{"?labelSelector=" + url.QueryEscape("rack in (r1,r2)"), 16},
		{"?labelSelector=" + url.QueryEscape("rack!=r1"), 17},
		{"?name=n-1", 10},
		{"?mac=52-54-00-00-10-03", 1},
		{"?ip=10.9.0.4", 1},
		{"?ip=10.9.0.4/24", 1},
		{"?state=registered&role=worker", 25},
		{"?state=failed", 0},
	} {
		if p := h.list(tc.query); p.Total != tc.want || len(p.Nodes) != tc.want {
			t.Errorf("%s: total %d, %d items, want %d", tc.query, p.Total, len(p.Nodes), tc.want)
		}
	}
	for _, tc := range []struct{ query, field string }{
		{"?labelSelector=" + url.QueryEscape("=r1"), "labelSelector"},
		{"?labelSelector=" + url.QueryEscape("rack in (r1"), "labelSelector"},
		{"?labelSelector=" + url.QueryEscape("Rack_!=x"), "labelSelector"},
		{"?limit=0", "limit"},
		{"?limit=5000", "limit"},
		{"?state=sleeping", "state"},
		{"?sort=age", "sort"},
		{"?mac=zz", "mac"},
		{"?continue=garbage", ""},
	} {
		code, out := h.call("GET", "/api/v1/nodes"+tc.query, nil, true)
		var e apiError
		if code != http.StatusUnprocessableEntity || json.Unmarshal(out, &e) != nil || e.Field != tc.field || e.Error == "" {
			t.Errorf("%s: %d %s, want 422 naming %q", tc.query, code, out, tc.field)
		}
	}
}

func TestBulkAction_DeleteNeedsTheCountAndSetLabelsBySelector(t *testing.T) {
	h := newAPI(t)
	if code, rep := h.postCSV("", rackCSV, true); code != 200 || rep.Created != 4 {
		t.Fatalf("import: %d %+v", code, rep)
	}
	act := func(body string) (int, BulkReport, []byte) {
		code, out := h.call("POST", "/api/v1/bulk/action", body, true)
		var rep BulkReport
		_ = json.Unmarshal(out, &rep)
		return code, rep, out
	}
	if code, _, out := act(`{"action":"set-labels","labelSelector":"rack=r7","labels":{"row":"b"},"removeLabels":["gpu"]}`); code != 200 {
		t.Fatalf("set-labels: %d %s", code, out)
	}
	if p := h.list("?labelSelector=row%3Db"); p.Total != 3 {
		t.Fatalf("%d nodes labelled row=b, want the 3 of rack r7", p.Total)
	}
	if p := h.list("?labelSelector=gpu"); p.Total != 0 {
		t.Fatalf("gpu label left on %d nodes", p.Total)
	}
	// The count must be typed: a wrong one, or none, deletes nothing.
	for _, body := range []string{
		`{"action":"delete","labelSelector":"rack=r7"}`,
		`{"action":"delete","labelSelector":"rack=r7","confirm":2}`,
		`{"action":"delete"}`,
		`{"action":"explode","labelSelector":"rack=r7"}`,
	} {
		if code, _, out := act(body); code != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422", body, code, out)
		}
	}
	if p := h.list(""); p.Total != 4 {
		t.Fatalf("%d nodes after refused deletes", p.Total)
	}
	code, rep, out := act(`{"action":"delete","labelSelector":"rack=r7","confirm":3}`)
	if code != 200 || rep.Matched != 3 || rep.Succeeded != 3 {
		t.Fatalf("delete: %d %s", code, out)
	}
	if got := pageNames(h.list("")); !slices.Equal(got, []string{"r8-w1"}) {
		t.Fatalf("nodes left %v", got)
	}
	if code, _, out := act(`{"action":"retry","names":["r8-w1"]}`); code != 200 || !strings.Contains(string(out), `"failed":1`) {
		t.Fatalf("retry of a registered node must fail for that node: %d %s", code, out)
	}
}

// TestBulkAction_DeletingServersStillObeysQuorum: a bulk delete is node by node through
// the same checks as one delete, so deleting every installed server by selector leaves
// the cluster-init server (other nodes remain), refused with the reason, exactly as a
// one-by-one delete would.
func TestBulkAction_DeletingServersStillObeysQuorum(t *testing.T) {
	h := newAPI(t)
	for i := range 3 {
		h.mustImport(fmt.Sprintf(`{"macs":["52:54:00:00:0a:%02x"],"role":"server","name":"cp-%d"}`, i, i))
		if _, err := h.st.UpdateNode(t.Context(), fmt.Sprintf("cp-%d", i), func(n *node.Node) ([]node.Event, error) {
			var evs []node.Event
			for _, to := range []node.State{node.StateProvisioning, node.StateInstalled} {
				ev, err := n.Transition(to, "test", "test", n.UpdatedAt.Add(time.Millisecond))
				if err != nil {
					return nil, err
				}
				evs = append(evs, ev)
			}
			return evs, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	code, out := h.call("POST", "/api/v1/bulk/action", `{"action":"delete","role":"server","confirm":3}`, true)
	var rep BulkReport
	if code != 200 || json.Unmarshal(out, &rep) != nil || rep.Matched != 3 {
		t.Fatalf("bulk delete of every server: %d %s", code, out)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Name != "cp-0" || !strings.Contains(rep.Errors[0].Error, "cluster-init") {
		t.Fatalf("want exactly the cluster-init server refused: %s", out)
	}
	if p := h.list("?role=server&state=installed"); len(p.Nodes) != 1 || p.Nodes[0].Name != "cp-0" {
		t.Fatalf("installed servers after the bulk delete: %v", pageNames(p))
	}
}
