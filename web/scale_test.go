package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/scaletest"
)

// scaleCSV is a data centre's spreadsheet: racks of 40, a static address each, and a
// gpu label on one node in 40 (2,500 of 100,000).
func scaleCSV(n int) string {
	var b strings.Builder
	b.WriteString("mac,name,role,ip,gateway,dns,labels,taints,image\n")
	for i := range n {
		role := "worker"
		if i%100 == 0 {
			role = "server"
		}
		labels := fmt.Sprintf("rack=r%d;zone=z%d", i/40, i%4)
		if i%40 == 7 {
			labels += ";gpu=h100"
		}
		fmt.Fprintf(&b, "02:dc:00:%02x:%02x:%02x,dc-%06d,%s,10.%d.%d.%d/8,10.0.0.1,10.0.0.2,%s,,\n",
			byte(i>>16), byte(i>>8), byte(i), i, role, 16+i>>16, byte(i>>8), byte(i), labels)
	}
	return b.String()
}

// TestScale_WebFigures generates the inventory through the bulk import API and reports
// the HTTP side of issue 13's table: the import rate (CSV parsing, validation and one
// store transaction), list pages and a selector query over HTTP, the nodes page's server
// render, the bytes one state change sends to an open page, and the process's memory.
// It checks the answers, never the durations.
func TestScale_WebFigures(t *testing.T) {
	n := scaletest.Nodes(t, 2000)
	h := newUI(t, uiOptions{})
	h.login()
	csv := scaleCSV(n)
	start, cpu := time.Now(), scaletest.CPU()
	code, rep := (&apiHarness{t: t, srv: h.srv, st: h.st}).postCSV("", csv, true)
	took, used := time.Since(start), scaletest.CPU()-cpu
	if code != 200 || rep.Created != n {
		t.Fatalf("bulk import: %d %+v", code, rep)
	}
	t.Logf("bulk import over HTTP, %d CSV rows (%.1f MB), all-or-nothing: %v wall (%.0f nodes/s), %v CPU (%.0f nodes per CPU-second)",
		n, float64(len(csv))/1e6, took.Round(time.Millisecond), float64(n)/took.Seconds(), used.Round(time.Millisecond), float64(n)/used.Seconds())
	csv = ""

	get := func(path string) []byte {
		resp, err := h.client.Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, b)
		}
		return b
	}
	// A continue token three quarters in, by walking pages of 1000.
	deep := ""
	for i := 0; i < n*3/4/1000; i++ {
		var page store.NodePage
		if err := json.Unmarshal(get("/api/v1/nodes?limit=1000&continue="+url.QueryEscape(deep)), &page); err != nil {
			t.Fatal(err)
		}
		deep = page.Continue
	}
	want := (n + 32) / 40
	var sel store.NodePage
	if err := json.Unmarshal(get("/api/v1/nodes?limit=100&labelSelector=gpu%3Dh100"), &sel); err != nil || sel.Total != want {
		t.Fatalf("selector: %v, total %d, want %d", err, sel.Total, want)
	}
	var notGPU store.NodePage
	if err := json.Unmarshal(get("/api/v1/nodes?limit=100&labelSelector=%21gpu"), &notGPU); err != nil || notGPU.Total != n-want || len(notGPU.Nodes) != 100 {
		t.Fatalf("selector !gpu: %v, total %d, want %d", err, notGPU.Total, n-want)
	}
	runs := 100
	cpu = scaletest.CPU()
	// walk fetches every gpu node in pages of 1000. A client that only passes items on
	// reads the page's envelope; one that decodes every item into a node.Node spends
	// more on that (its own CPU) than the server spends answering.
	walk := func(decodeItems bool) {
		next := "/api/v1/nodes?limit=1000&labelSelector=gpu%3Dh100"
		got := 0
		for next != "" {
			var page struct {
				Items    []json.RawMessage `json:"items"`
				Continue string            `json:"continue"`
			}
			if err := json.Unmarshal(get(next), &page); err != nil {
				t.Fatal(err)
			}
			for _, item := range page.Items {
				if decodeItems {
					var n node.Node
					if err := json.Unmarshal(item, &n); err != nil || n.Labels["gpu"] != "h100" {
						t.Fatalf("item %.200s: %v", item, err)
					}
				}
			}
			got += len(page.Items)
			next = ""
			if page.Continue != "" {
				next = "/api/v1/nodes?limit=1000&labelSelector=gpu%3Dh100&continue=" + url.QueryEscape(page.Continue)
			}
		}
		if got != want {
			t.Fatalf("walked %d gpu nodes, want %d", got, want)
		}
	}
	var gpuPages []string
	walkBytes := 0
	for next := "/api/v1/nodes?limit=1000&labelSelector=gpu%3Dh100"; next != ""; {
		gpuPages = append(gpuPages, next)
		body := get(next)
		walkBytes += len(body)
		var page store.NodePage
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		next = ""
		if page.Continue != "" {
			next = "/api/v1/nodes?limit=1000&labelSelector=gpu%3Dh100&continue=" + url.QueryEscape(page.Continue)
		}
	}
	t.Logf("the %d gpu nodes in %d pages of limit=1000: %d bytes of JSON", want, len(gpuPages), walkBytes)
	for _, f := range []struct {
		name string
		path string
		fn   func()
	}{
		{name: "GET /api/v1/nodes?limit=100 (first page)", path: "/api/v1/nodes?limit=100"},
		{name: "GET /api/v1/nodes?limit=100 (deep page, 3/4 in)", path: "/api/v1/nodes?limit=100&continue=" + url.QueryEscape(deep)},
		{name: fmt.Sprintf("GET ?labelSelector=gpu=h100&limit=100 (%d match)", want), path: "/api/v1/nodes?limit=100&labelSelector=gpu%3Dh100"},
		{name: fmt.Sprintf("GET ?labelSelector=gpu=h100&limit=1000, all %d in %d pages", want, len(gpuPages)), fn: func() { walk(false) }},
		{name: "the same three requests alone (tokens known, each body read whole)", fn: func() {
			for _, path := range gpuPages {
				get(path)
			}
		}},
		{name: fmt.Sprintf("the same, the client decoding each of the %d items into a node.Node", want), fn: func() { walk(true) }},
		{name: fmt.Sprintf("GET ?labelSelector=!gpu&limit=100 (%d match, with the total)", n-want), path: "/api/v1/nodes?limit=100&labelSelector=%21gpu"},
		{name: "GET /ui/nodes (page of 100, counts, discovered)", path: "/ui/nodes"},
		{name: "GET /ui/nodes?q=rack=r7", path: "/ui/nodes?q=rack%3Dr7"},
	} {
		size := 0
		p99, med := scaletest.Time(runs, func() {
			if f.fn != nil {
				f.fn()
				return
			}
			size = len(get(f.path))
		})
		used := scaletest.CPU() - cpu
		cpu = scaletest.CPU()
		t.Logf("%s at %d nodes: p99 %v, median %v, %v CPU per request (client and server), %d bytes", f.name, n,
			p99.Round(10*time.Microsecond), med.Round(10*time.Microsecond), (used / time.Duration(runs)).Round(10*time.Microsecond), size)
	}

	// One node's state change, as an open page's stream carries it.
	body := string(get("/ui/nodes"))
	stream := nodesStream(t, body)
	done := h.readStreamAsync(stream, func(ev string) bool { return strings.Contains(ev, "event: row") }, 50)
	h.walk("dc-000001", node.StateProvisioning)
	got := <-done
	after := sentAfterOpening(got)
	if strings.Contains(got, "event: inventory") || !strings.Contains(after, `id="node-dc-000001"`) {
		t.Fatalf("the stream did not send just the row:\n%.400s", got)
	}
	t.Logf("one node's state change at %d nodes: %d bytes to the open nodes page (row and counts), page itself %d bytes", n, len(after), len(body))

	// A bulk action on a selection: relabel the gpu nodes, in the store's batches.
	api := &apiHarness{t: t, srv: h.srv, st: h.st}
	start, cpu = time.Now(), scaletest.CPU()
	code, out := api.call("POST", "/api/v1/bulk/action", `{"action":"set-labels","labelSelector":"gpu=h100","labels":{"row":"b"}}`, true)
	took, used = time.Since(start), scaletest.CPU()-cpu
	var bulk BulkReport
	if code != 200 || json.Unmarshal(out, &bulk) != nil || bulk.Succeeded != want {
		t.Fatalf("bulk set-labels: %d %.300s", code, out)
	}
	t.Logf("bulk set-labels on labelSelector=gpu=h100 (%d nodes) at %d nodes: %v wall (%.0f nodes/s), %v CPU",
		want, n, took.Round(time.Millisecond), float64(want)/took.Seconds(), used.Round(time.Millisecond))

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("memory at %d nodes (this test process: store, server, harness): RSS %s, Go heap in use %.0f MB", n, vmRSS(), float64(ms.HeapInuse)/1e6)
}

// vmRSS is this process's resident set from /proc, or "unknown".
func vmRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
