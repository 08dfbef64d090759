package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

func TestPages_ImportErrorsAreTheAPIsAndSitBesideTheirField(t *testing.T) {
	h := newUI(t, uiOptions{})
	api := &apiHarness{t: t, srv: h.srv, st: h.st}
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	h.login()
	tests := []struct {
		name      string
		form      url.Values
		api       string // the same import as JSON
		wantCode  int
		wantField string // "" means the form's general error
	}{
		{"bad MAC", url.Values{"role": {"worker"}, "mac": {"52:54:00:zz:00:01"}},
			`{"macs":["52:54:00:zz:00:01"],"role":"worker"}`, 422, "mac"},
		{"bad taint effect", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "taints": {"gpu=true:Sometimes"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","taints":["gpu=true:Sometimes"]}`, 422, "taints"},
		{"bad label value", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "labels": {"gpu=a/100"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","labels":{"gpu":"a/100"}}`, 422, "labels"},
		{"bad name", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "name": {"Bad_Name"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","name":"Bad_Name"}`, 422, "name"},
		{"ip without prefix", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "ip": {"10.0.0.5"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","ip":"10.0.0.5"}`, 422, "ip"},
		{"bad root-disk hint", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "root_disk_hints": {"colour=blue"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","rootDiskHints":"colour=blue"}`, 422, "rootDiskHints"},
		{"unknown UEFI loader", url.Values{"role": {"worker"}, "mac": {"52:54:00:00:00:02"}, "uefi_loader": {"grub"}},
			`{"macs":["52:54:00:00:00:02"],"role":"worker","uefiLoader":"grub"}`, 422, "uefiLoader"},
		{"no role", url.Values{"mac": {"52:54:00:00:00:02"}},
			`{"macs":["52:54:00:00:00:02"]}`, 422, "role"},
		{"MAC taken", url.Values{"role": {"worker"}, "mac": {"52-54-00-00-00-01"}, "name": {"other"}},
			`{"macs":["52-54-00-00-00-01"],"role":"worker","name":"other"}`, 409, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, apiBody := api.call("POST", "/api/v1/nodes", tc.api, true)
			var apiErr apiError
			if err := json.Unmarshal(apiBody, &apiErr); err != nil || apiErr.Error == "" {
				t.Fatalf("API answer %s", apiBody)
			}
			if apiErr.Field != tc.wantField {
				t.Fatalf("API field %q, want %q", apiErr.Field, tc.wantField)
			}
			p := h.post("/ui/nodes", tc.form)
			if p.code != tc.wantCode {
				t.Fatalf("form import = %d, want %d\n%s", p.code, tc.wantCode, p.body)
			}
			id := "import-error"
			if tc.wantField != "" {
				id = "import-" + tc.wantField + "-error"
			}
			want := `id="` + id + `">` + htmlEscape(apiErr.Error) + `</p>`
			if !strings.Contains(p.body, want) {
				t.Fatalf("page lacks %s\n%s", want, p.body)
			}
			if !strings.Contains(p.body, `<dialog id="import-dialog" aria-labelledby="import-title" open>`) {
				t.Error("the import dialog is not drawn open around the error")
			}
			// What was typed is kept.
			if mac := tc.form.Get("mac"); !strings.Contains(p.body, `value="`+mac+`"`) {
				t.Errorf("the MAC field lost %q", mac)
			}
		})
	}
	if nodes, _ := h.st.ListNodes(t.Context()); len(nodes) != 1 {
		t.Errorf("%d nodes after refused imports, want 1", len(nodes))
	}
}

func TestPages_ImportWithAdvancedFieldsShowsTheNodeRegisteredWithItsJoin(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.login()
	p := h.post("/ui/nodes", url.Values{"role": {"worker"}, "mac": {"52:54:00:aa:bb:01, 52:54:00:aa:bb:02"},
		"name": {"gpu-1"}, "ip": {"10.20.0.31/24"}, "gateway": {"10.20.0.1"}, "dns": {"10.20.0.1"},
		"labels": {"gpu=a100\nzone=rack-1"}, "taints": {"gpu=true:NoSchedule"},
		"root_disk_hints": {"size>=400G,rotational=false"}, "uefi_loader": {"shim"}})
	if p.code != http.StatusSeeOther || p.location != "/ui/nodes?imported=gpu-1" {
		t.Fatalf("import = %d to %q\n%s", p.code, p.location, p.body)
	}
	n, err := h.st.GetNode(t.Context(), "gpu-1")
	if err != nil {
		t.Fatal(err)
	}
	wantHints, _ := node.ParseRootDiskHints("size>=400G,rotational=false")
	if n.State != node.StateRegistered || len(n.MACs) != 2 || n.IP.String() != "10.20.0.31/24" ||
		n.Labels["zone"] != "rack-1" || len(n.Taints) != 1 || n.Taints[0].String() != "gpu=true:NoSchedule" ||
		n.RootDiskHints.String() != wantHints.String() || n.UEFILoader != node.LoaderShim {
		t.Fatalf("imported node %+v", n)
	}
	events, _ := h.st.Events(t.Context(), "gpu-1", 0)
	if len(events) == 0 || events[0].Source != webSource {
		t.Errorf("import event source: %+v", events)
	}
	p = h.get(p.location)
	for _, want := range []string{`Imported gpu-1`, `nodeName: gpu-1`, tokenMask, `<a href="/ui/nodes/gpu-1" id="link-gpu-1">gpu-1</a>`,
		`state-registered`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page after import lacks %q", want)
		}
	}
}

func TestPages_NoPageOrFragmentShowsTheJoinTokenUnlessRevealed(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	h.importNode(`{"macs":["52:54:00:00:00:02"],"role":"server","name":"cp-2"}`)
	h.importNode(`{"macs":["52:54:00:00:00:03"],"role":"worker","name":"w-1"}`)
	h.importNode(`{"macs":["52:54:00:00:00:04"],"role":"worker","name":"w-2"}`)
	h.walk("cp-1", node.StateProvisioning, node.StateInstalled, node.StateActive)
	h.walk("cp-2", node.StateProvisioning)
	h.walk("w-2", node.StateProvisioning, node.StateFailed)
	if err := h.st.RecordBoot(t.Context(), node.MAC{0x52, 0x54, 0, 0, 0, 0x10}, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
		t.Fatal(err)
	}
	h.login()

	if p := h.do(newBrowserClient(t), "GET", "/login", nil); p.code != http.StatusOK || strings.Contains(p.body, pageJoinToken) {
		t.Errorf("GET /login = %d, or shows the join token", p.code)
	}
	pages := []string{"/ui/nodes", "/ui/nodes?imported=cp-1", "/ui/nodes?import=1&mac=52:54:00:00:00:10",
		"/ui/nodes?role=server", "/ui/cluster", "/ui/account"}
	for _, name := range []string{"cp-1", "cp-2", "w-1", "w-2"} {
		pages = append(pages, "/ui/nodes/"+name, "/ui/nodes/"+name+"?delete=1")
	}
	for _, path := range pages {
		p := h.get(path)
		if p.code != http.StatusOK {
			t.Errorf("GET %s = %d", path, p.code)
		}
		if strings.Contains(p.body, pageJoinToken) {
			t.Errorf("GET %s shows the join token", path)
		}
	}
	// The pages do show the masked join (so the check above looked at real joins).
	if p := h.get("/ui/nodes/cp-2"); !strings.Contains(p.body, "nodeName: cp-2") || !strings.Contains(p.body, tokenMask) {
		t.Errorf("node page shows no masked join:\n%s", p.body)
	}
	// Live fragments: the first events of each stream.
	for path, events := range map[string]int{"/ui/nodes/stream": 1, "/ui/nodes/cp-1/stream": 4, "/ui/nodes/cp-2/stream?after=0": 3} {
		got := h.readStream(path, func(string) bool { return false }, events)
		if strings.Contains(got, pageJoinToken) {
			t.Errorf("stream %s shows the join token", path)
		}
		if !strings.Contains(got, "event: ") {
			t.Errorf("stream %s sent no event: %q", path, got)
		}
	}
	// Failed, refused and forged actions do not leak it either.
	for _, p := range []page{
		h.post("/ui/nodes/cp-1/delete", url.Values{"confirm": {"nope"}}),
		h.post("/ui/nodes", url.Values{"mac": {"bad"}}),
		h.do(h.client, "POST", "/ui/nodes/cp-1/join-command", url.Values{"csrf": {"forged"}}),
	} {
		if strings.Contains(p.body, pageJoinToken) {
			t.Errorf("a refused action (%d) shows the join token", p.code)
		}
	}
	// Only the explicit reveal shows it.
	for _, path := range []string{"/ui/nodes/cp-2/join-command", "/ui/cluster/token"} {
		if p := h.post(path, nil); p.code != http.StatusOK || !strings.Contains(p.body, pageJoinToken) {
			t.Errorf("reveal %s = %d without the token", path, p.code)
		}
	}
}

func TestEventsStream_SendsTheInstallerLogAsItArrives(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:00:03"],"role":"worker","name":"w-1"}`)
	h.walk("w-1", node.StateProvisioning)
	h.login()
	p := h.get("/ui/nodes/w-1")
	m := regexp.MustCompile(`/ui/nodes/w-1/stream\?after=(\d+)`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("the node page names no stream:\n%s", p.body)
	}
	go func() {
		// Written while the stream is open; the stream polls the store.
		time.Sleep(200 * time.Millisecond)
		now := time.Now().UTC()
		_ = h.st.AppendEvents(context.Background(),
			node.Event{Time: now, Node: "w-1", Type: node.EventProgress, Reason: "writing image", Source: "agent", Percent: 40},
			node.Event{Time: now, Node: "w-1", Type: node.EventLog, Reason: "llmos: <joined> & ready", Source: "agent"})
	}()
	got := h.readStream(m[0], func(ev string) bool {
		return strings.Contains(ev, "event: log") && strings.Contains(ev, "joined")
	}, 50)
	if !strings.Contains(got, "llmos: &lt;joined&gt; &amp; ready") {
		t.Errorf("the log line is missing or not escaped:\n%s", got)
	}
	if strings.Contains(got, "event: timeline") {
		t.Errorf("the stream resent events the page already had (after=%s):\n%s", m[1], got)
	}
	// The summary follows with the progress bar.
	got = h.readStream(m[0], func(ev string) bool { return strings.Contains(ev, "event: summary") }, 50)
	if !strings.Contains(got, `value="40"`) {
		t.Errorf("summary without progress:\n%s", got)
	}
}

func TestPages_DeleteDialogGuardsServersAndQuorum(t *testing.T) {
	h := newUI(t, uiOptions{})
	for i, name := range []string{"cp-1", "cp-2", "cp-3"} {
		h.importNode(`{"macs":["52:54:00:00:01:0` + string(rune('1'+i)) + `"],"role":"server","name":"` + name + `"}`)
		h.walk(name, node.StateProvisioning, node.StateInstalled)
	}
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.importNode(`{"macs":["52:54:00:00:02:02"],"role":"worker","name":"w-new"}`)
	h.walk("w-1", node.StateProvisioning, node.StateInstalled)
	h.login()

	// The dialog says what deleting cp-3 does to the cluster before anyone clicks.
	p := h.get("/ui/nodes/cp-3?delete=1")
	for _, want := range []string{`<dialog id="delete-dialog" aria-labelledby="delete-title" open>`, "drains", "wipes", "cannot rejoin",
		`<th scope="row">Now</th><td>3</td><td>2</td><td>1</td>`, `<th scope="row">After</th><td>2</td><td>2</td><td>0</td>`,
		`id="delete-ack"`, "failure tolerance drops from 1 to 0"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("delete dialog of cp-3 lacks %q", want)
		}
	}
	if p := h.get("/ui/nodes/w-1?delete=1"); strings.Contains(p.body, `id="delete-ack"`) {
		t.Error("deleting a worker asks for the extra confirmation")
	}

	steps := []struct {
		name      string
		node      string
		form      url.Values
		wantCode  int
		wantField string
		wantState node.State
	}{
		{"wrong name", "w-1", url.Values{"confirm": {"w-2"}}, 422, "confirm", node.StateInstalled},
		{"name in other case", "w-1", url.Values{"confirm": {"W-1"}}, 422, "confirm", node.StateInstalled},
		{"unknown mode", "w-1", url.Values{"confirm": {"w-1"}, "mode": {"shred"}}, 422, "mode", node.StateInstalled},
		{"server without the extra confirmation", "cp-3", url.Values{"confirm": {"cp-3"}}, 409, "ack", node.StateInstalled},
		{"cluster-init without the extra confirmation", "cp-1", url.Values{"confirm": {"cp-1"}}, 409, "ack", node.StateInstalled},
		{"worker", "w-1", url.Values{"confirm": {"w-1"}, "mode": {"reinstall"}}, 303, "", node.StateWiping},
		{"server acknowledged", "cp-3", url.Values{"confirm": {"cp-3"}, "ack": {"1"}}, 303, "", node.StateWiping},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			p := h.post("/ui/nodes/"+s.node+"/delete", s.form)
			if p.code != s.wantCode {
				t.Fatalf("delete %s = %d, want %d\n%s", s.node, p.code, s.wantCode, p.body)
			}
			if s.wantField != "" && !strings.Contains(p.body, `id="delete-`+s.wantField+`-error"`) {
				t.Errorf("no error beside %s:\n%s", s.wantField, p.body)
			}
			if got := h.state(s.node); got != s.wantState {
				t.Errorf("%s is %s, want %s", s.node, got, s.wantState)
			}
		})
	}

	// Now cp-1 (cluster-init) and cp-2 remain: deleting cp-2 leaves one server, and the
	// cluster-init refusal is offered as force behind the confirmation.
	p = h.get("/ui/nodes/cp-1?delete=1")
	if !strings.Contains(p.body, `id="delete-refusal"`) || !strings.Contains(p.body, "cluster-init") || !strings.Contains(p.body, "Force it") {
		t.Errorf("the refusal is not explained with force offered:\n%s", p.body)
	}
	if p := h.post("/ui/nodes/cp-1/delete", url.Values{"confirm": {"cp-1"}, "ack": {"1"}}); p.code != http.StatusSeeOther {
		t.Fatalf("forced delete of cp-1 = %d\n%s", p.code, p.body)
	}
	events, _ := h.st.Events(t.Context(), "cp-1", 0)
	if last := events[len(events)-2]; last.To != node.StateDeleting || !strings.Contains(last.Reason, "forced") || last.Source != webSource {
		t.Errorf("forced deletion event %+v", last)
	}
	// A node that never installed is simply removed, and the page says so.
	p = h.post("/ui/nodes/w-new/delete", url.Values{"confirm": {"w-new"}})
	if p.code != http.StatusSeeOther || p.location != "/ui/nodes?removed=w-new" {
		t.Fatalf("delete of a registered node = %d to %q", p.code, p.location)
	}
	if _, err := h.st.GetNode(t.Context(), "w-new"); err == nil {
		t.Error("w-new still exists")
	}
}

func TestPages_RetryMovesAFailedInstallBack(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.walk("w-1", node.StateProvisioning, node.StateFailed)
	h.login()
	if p := h.get("/ui/nodes/w-1"); !strings.Contains(p.body, `id="retry"`) {
		t.Fatal("a failed node's page offers no retry")
	}
	if p := h.post("/ui/nodes/w-1/retry", nil); p.code != http.StatusSeeOther {
		t.Fatalf("retry = %d\n%s", p.code, p.body)
	}
	if got := h.state("w-1"); got != node.StateRegistered {
		t.Fatalf("after retry w-1 is %s, want registered", got)
	}
	if p := h.post("/ui/nodes/w-1/retry", nil); p.code != http.StatusConflict || !strings.Contains(p.body, "not failed") {
		t.Fatalf("retry of a registered node = %d\n%s", p.code, p.body)
	}
}

func TestPages_ClusterPageShowsTheToleranceTableAndMasksTheToken(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.importNode(`{"macs":["52:54:00:00:00:01"],"role":"server","name":"cp-1"}`)
	h.importNode(`{"macs":["52:54:00:00:00:02"],"role":"server","name":"cp-2"}`)
	h.login()
	p := h.get("/ui/cluster")
	for _, want := range []string{"https://10.20.0.10:6443", tokenMask, node.DefaultInstallURL,
		`<tr class="current">`, "<td>2</td><td>2</td><td>0</td>", `<tr class="next">`, "<td>3</td><td>2</td><td>1</td>",
		"even number of servers (2)", `<a href="/ui/nodes/cp-1">cp-1</a>`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("cluster page lacks %q", want)
		}
	}
}

func TestPages_SeedISOIsAPostedDownload(t *testing.T) {
	h := newUI(t, uiOptions{})
	setToken(t, h.st, "https://10.20.0.10:6443")
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.login()
	if p := h.do(h.client, "GET", "/ui/nodes/w-1/seed.iso", nil); p.code != http.StatusMethodNotAllowed && p.code != http.StatusNotFound {
		t.Errorf("GET of the seed ISO = %d: a link or a prefetch could fetch the token", p.code)
	}
	p := h.post("/ui/nodes/w-1/seed.iso", nil)
	if p.code != http.StatusOK || !strings.Contains(p.header.Get("Content-Disposition"), `filename="w-1-seed.iso"`) {
		t.Fatalf("seed ISO = %d %v", p.code, p.header)
	}
	// ISO 9660: the primary volume descriptor at sector 16 starts with 1 "CD001".
	if len(p.body) < 16*2048+6 || p.body[16*2048+1:16*2048+6] != "CD001" {
		t.Fatalf("the download is not an ISO 9660 image (%d bytes)", len(p.body))
	}
}

func TestPages_DiscoveredMachineImportPrefillsItsMAC(t *testing.T) {
	h := newUI(t, uiOptions{})
	if err := h.st.RecordBoot(t.Context(), node.MAC{0x52, 0x54, 0, 0xde, 0xad, 0x01}, node.BootInfo{Firmware: "uefi", Arch: 7}); err != nil {
		t.Fatal(err)
	}
	h.login()
	p := h.get("/ui/nodes")
	for _, want := range []string{"Discovered machines", "52:54:00:de:ad:01", "uefi (arch 7)",
		`<input type="hidden" name="mac" value="52:54:00:de:ad:01" data-prefill="import-mac">`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("nodes page lacks %q", want)
		}
	}
	if strings.Contains(p.body, `id="node-node-525400dead01"`) {
		t.Error("a discovered machine is listed among the imported nodes")
	}
	// Without script, the Import button reloads the page with the dialog open and filled.
	p = h.get("/ui/nodes?import=1&mac=52:54:00:de:ad:01")
	if !strings.Contains(p.body, `<dialog id="import-dialog" aria-labelledby="import-title" open>`) ||
		!strings.Contains(p.body, `name="mac" value="52:54:00:de:ad:01"`) {
		t.Errorf("import dialog not drawn open with the MAC:\n%s", p.body)
	}
	p = h.post("/ui/nodes", url.Values{"mac": {"52:54:00:de:ad:01"}, "role": {"server"}})
	if p.code != http.StatusSeeOther {
		t.Fatalf("import of the discovered machine = %d\n%s", p.code, p.body)
	}
	n, err := h.st.GetNode(t.Context(), "node-525400dead01")
	if err != nil || n.State != node.StateRegistered || !n.ClusterInit || n.Boot.Firmware != "uefi" {
		t.Fatalf("the discovered machine after import: %+v, %v", n, err)
	}
}

func TestPages_NodesTableFiltersByRoleAndState(t *testing.T) {
	h := newUI(t, uiOptions{})
	h.importNode(`{"macs":["52:54:00:00:01:01"],"role":"server","name":"cp-1"}`)
	h.importNode(`{"macs":["52:54:00:00:02:01"],"role":"worker","name":"w-1"}`)
	h.importNode(`{"macs":["52:54:00:00:02:02"],"role":"worker","name":"w-2"}`)
	h.walk("w-2", node.StateProvisioning, node.StateFailed)
	h.login()
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"cp-1", "w-1", "w-2"}},
		{"?role=server", []string{"cp-1"}},
		{"?role=worker", []string{"w-1", "w-2"}},
		{"?state=failed", []string{"w-2"}},
		{"?role=worker&state=registered", []string{"w-1"}},
		{"?role=server&state=failed", nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			p := h.get("/ui/nodes" + tc.query)
			for _, name := range []string{"cp-1", "w-1", "w-2"} {
				listed := strings.Contains(p.body, `<tr id="node-`+name+`">`)
				if want := slices.Contains(tc.want, name); listed != want {
					t.Errorf("%s listed = %v, want %v", name, listed, want)
				}
			}
			if tc.want == nil && !strings.Contains(p.body, "No node matches this filter (3 imported in all)") {
				t.Error("an empty filter result does not say so")
			}
		})
	}
}

func TestPages_ClusterPageShowsWhoHoldsTheJoinTurnUntilWhen(t *testing.T) {
	granted := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	turns := cloudinit.NewJoinTurns(0, func() time.Time { return granted })
	h := newUI(t, uiOptions{turns: turns})
	h.login()
	if p := h.get("/ui/cluster"); !strings.Contains(p.body, "free: no server is joining") {
		t.Errorf("cluster page without a holder lacks the free turn:\n%s", p.body)
	}
	turns.Take(t.Context(), "cp-2", 45*time.Minute)
	p := h.get("/ui/cluster")
	for _, want := range []string{`<a href="/ui/nodes/cp-2">cp-2</a> is joining since`, "2026-12-01 08:00:00 UTC", "2026-12-01 08:45:00 UTC"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("cluster page lacks %q", want)
		}
	}
}
