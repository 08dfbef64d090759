package web

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store/storetest"
)

// TestListNodes_HardwareFiltersRunInTheStoreSoLimitCountsMatches: the hardware
// parameters filter before paging, so a page of limit=1 holds one match and the total
// counts matches; a bad value is 422 naming its parameter.
func TestListNodes_HardwareFiltersRunInTheStoreSoLimitCountsMatches(t *testing.T) {
	h := newAPI(t)
	if code, rep := h.postCSV("", rackCSV, true); code != 200 || rep.Created != 4 {
		t.Fatalf("import: %d %+v", code, rep)
	}
	// r7-s1 sorts first and is not inspected: a CLI-side filter's limit=1 page was empty.
	storetest.Inspect(t, h.st, "r7-w1", "Dell Inc.", "PowerEdge R650", 256, "A1", "A2", "A3", "A4")
	storetest.Inspect(t, h.st, "r8-w1", "LENOVO", "ThinkSystem SR630", 32, "B1")
	type page struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
		Continue string `json:"continue"`
		Total    int    `json:"total"`
	}
	list := func(query string) (page, int, string) {
		t.Helper()
		code, body := h.call("GET", "/api/v1/nodes?"+query, nil, true)
		var p page
		if code == 200 {
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
		return p, code, string(body)
	}
	namesOf := func(p page) string {
		var out []string
		for _, it := range p.Items {
			out = append(out, it.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"minMemory=64G", "r7-w1"},
		{"minMemory=32GiB", "r7-w1,r8-w1"},
		{"minDisks=4", "r7-w1"},
		{"minDisks=0", "r7-s1,r7-w1,r7-w2,r8-w1"},
		{"hardware=thinksystem", "r8-w1"},
		{"hardware=a3", "r7-w1"},
		{"hardware=xeon&labelSelector=" + url.QueryEscape("rack=r8"), "r8-w1"},
		{"hardware=xeon&role=server", ""},
	} {
		p, code, body := list(tc.query)
		if code != 200 || namesOf(p) != tc.want || p.Total != len(p.Items) {
			t.Errorf("%s: %d %q total %d, want %q (%s)", tc.query, code, namesOf(p), p.Total, tc.want, body)
		}
	}
	// One match per page, each page counting both, then the end.
	first, _, _ := list("minDisks=1&limit=1")
	if namesOf(first) != "r7-w1" || first.Total != 2 || first.Continue == "" {
		t.Fatalf("first page %+v", first)
	}
	second, _, _ := list("minDisks=1&limit=1&continue=" + url.QueryEscape(first.Continue))
	if namesOf(second) != "r8-w1" || second.Total != 2 || second.Continue != "" {
		t.Fatalf("second page %+v", second)
	}
	for _, tc := range []struct{ query, field string }{
		{"minMemory=lots", "minMemory"},
		{"minMemory=-4G", "minMemory"},
		{"minDisks=many", "minDisks"},
		{"minDisks=-1", "minDisks"},
	} {
		code, body := h.call("GET", "/api/v1/nodes?"+tc.query, nil, true)
		var e struct{ Error, Field string }
		if code != 422 || json.Unmarshal(body, &e) != nil || e.Field != tc.field {
			t.Errorf("%s: %d %s, want 422 naming %s", tc.query, code, body, tc.field)
		}
	}
}

var discoveredImport = regexp.MustCompile(`<button type="submit" id="import-([a-z0-9-]+)"`)

// TestPages_SearchFindsHardwareByPrefixOrWhenNoNameMatches: "hw:" searches the inspected
// hardware of imported nodes and discovered machines; a plain search no name starts with
// runs as one when the hardware matches, and its links keep it.
func TestPages_SearchFindsHardwareByPrefixOrWhenNoNameMatches(t *testing.T) {
	h := newUI(t, uiOptions{})
	fillUI(t, h, 30)
	storetest.Inspect(t, h.st, "w-003", "Dell Inc.", "PowerEdge R650", 256, "A1", "A2")
	storetest.Inspect(t, h.st, "w-017", "Dell Inc.", "PowerEdge R750", 512, "C1")
	storetest.Inspect(t, h.st, "w-020", "LENOVO", "ThinkSystem SR630", 32, "B1")
	macs := []node.MAC{{0x02, 0, 0, 0, 0, 1}, {0x02, 0, 0, 0, 0, 2}}
	for _, m := range macs {
		if err := h.st.RecordBoot(t.Context(), m, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
			t.Fatal(err)
		}
	}
	found := node.DefaultName(macs[0])
	storetest.Inspect(t, h.st, found, "Dell Inc.", "PowerEdge R650", 128, "D1")
	h.login()
	tests := []struct {
		query      string
		rows, disc string // imported rows, discovered machines
		note       bool   // the page says it searched hardware for a plain search
	}{
		{"?q=hw:poweredge", "w-003,w-017", found, false},
		{"?q=HW:+thinksystem", "w-020", "", false},
		{"?q=hw:b1", "w-020", "", false},
		{"?q=hw:poweredge&limit=1", "w-003", found, false},
		{"?q=hw:r650&state=registered", "w-003", found, false},
		{"?q=poweredge", "w-003,w-017", found, true},
		{"?q=w-01", workerNames(10, 20), found + "," + node.DefaultName(macs[1]), false},
		{"?q=nothing-at-all", "", found + "," + node.DefaultName(macs[1]), false},
	}
	for _, tc := range tests {
		p := h.get("/ui/nodes" + tc.query)
		var disc []string
		for _, m := range discoveredImport.FindAllStringSubmatch(p.body, -1) {
			disc = append(disc, m[1])
		}
		if p.code != 200 || strings.Join(rowNames(p.body), ",") != tc.rows || strings.Join(disc, ",") != tc.disc {
			t.Errorf("%s: %d rows %v discovered %v, want %s and %s", tc.query, p.code, rowNames(p.body), disc, tc.rows, tc.disc)
		}
		if note := strings.Contains(p.body, `id="search-note"`); note != tc.note {
			t.Errorf("%s: hardware note shown %v, want %v", tc.query, note, tc.note)
		}
	}
	// The fallback's view is hw: from then on: the box, the next page, the stream.
	p := h.get("/ui/nodes?q=poweredge&limit=1")
	if !strings.Contains(p.body, `value="hw:poweredge"`) {
		t.Error("the search box does not show hw:poweredge")
	}
	m := regexp.MustCompile(`href="([^"]+)" id="page-next"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("no next page")
	}
	next := html.UnescapeString(m[1])
	if rows := rowNames(h.get(next).body); strings.Join(rows, ",") != "w-017" || !strings.Contains(next, "q=hw%3Apoweredge") {
		t.Errorf("next page %s: rows %v", next, rows)
	}
	if !strings.Contains(html.UnescapeString(p.body), "/ui/nodes/stream?") || !strings.Contains(html.UnescapeString(p.body), "q=hw%3Apoweredge") {
		t.Error("the stream does not run the hardware search")
	}
}

func workerNames(from, to int) string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("w-%03d", i))
	}
	return strings.Join(out, ",")
}
