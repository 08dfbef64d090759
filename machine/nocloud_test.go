package machine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// noCloudToken is the cluster token in every NoCloud test; every response, event and log
// line is searched for it.
const noCloudToken = "K10nocloud-join-token-must-stay-secret::server:7e1f"

// noCloudLogs collects log output from concurrent handlers.
type noCloudLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *noCloudLogs) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *noCloudLogs) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// noCloudHarness is Bootyard's machine server with the real store, the real renderer and the
// NoCloud handler mounted as cmd wires it, on a loopback socket.
type noCloudHarness struct {
	t  testing.TB
	st *store.Store
	r  *cloudinit.Renderer
	h  *NoCloudHandler
	// turns is the handler's join queue, which the tests read.
	turns *cloudinit.JoinTurns
	srv   *httptest.Server
	logs  *noCloudLogs
	// seen is Bootyard's DHCP record: importAt puts each node at 127.0.0.1, where the
	// tests' own requests come from.
	seen            *boot.Sightings
	trustUnverified bool
	bodyReadTimeout time.Duration
}

// harnessOption changes the renderer's config, the cluster settings or the harness
// itself before the handler is built.
type harnessOption func(*noCloudHarness, *cloudinit.Config, *node.ClusterSettings)

// trustingUnverified is --trust-unverified-machines.
func trustingUnverified(x *noCloudHarness, _ *cloudinit.Config, _ *node.ClusterSettings) {
	x.trustUnverified = true
}

func newNoCloudHarness(t testing.TB, opts ...harnessOption) *noCloudHarness {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &noCloudLogs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The server is started before the renderer exists: the renderer needs its URL.
	x := &noCloudHarness{t: t, st: st, logs: logs}
	var handler http.Handler
	x.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	x.srv.Start()
	t.Cleanup(x.srv.Close)

	cfg := cloudinit.Config{AdvertiseURL: x.srv.URL}
	settings := node.ClusterSettings{
		ServerURL:         "https://10.20.0.11:6443",
		Token:             noCloudToken,
		SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINoCloudTest ops@lab"},
	}
	for _, o := range opts {
		o(x, &cfg, &settings)
	}
	if x.r, err = cloudinit.NewRenderer(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error { *c = settings; return nil }); err != nil {
		t.Fatal(err)
	}
	var id *Identity
	id, x.seen = newTestIdentity(t, st, x.trustUnverified)
	x.turns = cloudinit.NewJoinTurns(0, nil)
	if x.h, err = NewNoCloudHandler(NoCloudConfig{Renderer: x.r, Inventory: st, Identity: id, Turns: x.turns, Logger: log}); err != nil {
		t.Fatal(err)
	}
	handler = New(Config{Logger: log, BodyReadTimeout: x.bodyReadTimeout}, Deps{NoCloud: x.h}).Handler()
	t.Cleanup(x.checkNoTokenLeaked)
	return x
}

// checkNoTokenLeaked runs after every NoCloud test: the token must never reach a log
// line or an event.
func (x *noCloudHarness) checkNoTokenLeaked() {
	if strings.Contains(x.logs.String(), noCloudToken) {
		x.t.Errorf("the join token appears in the logs:\n%s", x.logs.String())
	}
	nodes, err := x.st.ListNodes(context.Background())
	if err != nil {
		x.t.Fatal(err)
	}
	for _, n := range nodes {
		events, err := x.st.Events(context.Background(), n.Name, 0)
		if err != nil {
			x.t.Fatal(err)
		}
		for _, e := range events {
			if strings.Contains(e.Reason, noCloudToken) {
				x.t.Errorf("the join token appears in an event of %s: %+v", n.Name, e)
			}
		}
	}
}

// path to state through legal transitions from registered.
var statePathFromRegistered = map[node.State][]node.State{
	node.StateRegistered:   nil,
	node.StateProvisioning: {node.StateProvisioning},
	node.StateInstalled:    {node.StateProvisioning, node.StateInstalled},
	node.StateJoining:      {node.StateProvisioning, node.StateInstalled, node.StateJoining},
	node.StateJoined:       {node.StateProvisioning, node.StateInstalled, node.StateJoining, node.StateJoined},
	node.StateActive:       {node.StateProvisioning, node.StateInstalled, node.StateActive},
	node.StateDeleting:     {node.StateProvisioning, node.StateDeleting},
	node.StateWiping:       {node.StateProvisioning, node.StateDeleting, node.StateWiping},
	node.StateDeleted:      {node.StateProvisioning, node.StateDeleting, node.StateDeleted},
	node.StateFailed:       {node.StateProvisioning, node.StateFailed},
}

// importAt imports a node and walks it to state.
func (x *noCloudHarness) importAt(name, mac string, role node.Role, state node.State) node.Node {
	x.t.Helper()
	ctx := context.Background()
	if _, ok := statePathFromRegistered[state]; !ok {
		x.t.Fatalf("importAt: no path to %s", state)
	}
	m, err := node.ParseMAC(mac)
	if err != nil {
		x.t.Fatal(err)
	}
	n, err := x.st.ImportNode(ctx, node.Node{Name: name, MACs: []node.MAC{m}, Role: role,
		Labels: map[string]string{"bootyard.io/test": "nocloud"}}, "test")
	if err != nil {
		x.t.Fatal(err)
	}
	x.seen.Saw(m, netip.MustParseAddr("127.0.0.1"))
	for _, to := range statePathFromRegistered[state] {
		if n, err = x.st.UpdateNode(ctx, name, func(n *node.Node) ([]node.Event, error) {
			ev, err := n.Transition(to, "test", "test", time.Now().UTC())
			return []node.Event{ev}, err
		}); err != nil {
			x.t.Fatal(err)
		}
	}
	return n
}

func (x *noCloudHarness) lease(ip, mac string) {
	x.t.Helper()
	m, err := node.ParseMAC(mac)
	if err != nil {
		x.t.Fatal(err)
	}
	if err := x.st.PutLeases(context.Background(), store.Lease{IP: netip.MustParseAddr(ip), MAC: m,
		State: store.LeaseActive, Expires: time.Now().Add(time.Hour)}); err != nil {
		x.t.Fatal(err)
	}
}

// clientFrom returns an HTTP client whose requests come from the loopback address from,
// so a test can be "another machine" without leaving the host.
func clientFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

func (x *noCloudHarness) do(c *http.Client, method, path string, header http.Header, form url.Values) (int, string) {
	x.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, x.srv.URL+path, body)
	if err != nil {
		x.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		x.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (x *noCloudHarness) events(name string) string {
	x.t.Helper()
	events, err := x.st.Events(context.Background(), name, 0)
	if err != nil {
		x.t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "%s %s→%s %s\n", e.Type, e.From, e.To, e.Reason)
	}
	return b.String()
}

func (x *noCloudHarness) node(name string) node.Node {
	x.t.Helper()
	n, err := x.st.GetNode(context.Background(), name)
	if err != nil {
		x.t.Fatal(err)
	}
	return n
}

func (x *noCloudHarness) settings() node.ClusterSettings {
	x.t.Helper()
	s, err := x.st.ClusterSettings(context.Background())
	if err != nil {
		x.t.Fatal(err)
	}
	return s
}

func (x *noCloudHarness) keyHeader(name string) http.Header {
	return http.Header{cloudinit.CallbackKeyHeader: {x.r.CallbackKey(x.node(name), x.settings())}}
}

func TestNoCloud_ServesEachFileAsRenderedForTheNode(t *testing.T) {
	x := newNoCloudHarness(t)
	n := x.importAt("gpu-1", "52:54:00:aa:00:01", node.RoleWorker, node.StateProvisioning)
	want, err := x.r.Files(n, x.settings(), true)
	if err != nil {
		t.Fatal(err)
	}
	local := clientFrom("127.0.0.1")
	for _, macForm := range []string{"52:54:00:aa:00:01", "52-54-00-AA-00-01", "525400aa0001"} {
		for _, leaf := range cloudinit.FileNames {
			t.Run(macForm+"/"+leaf, func(t *testing.T) {
				status, body := x.do(local, http.MethodGet, "/nocloud/"+macForm+"/"+leaf, nil, nil)
				if status != http.StatusOK || body != string(want[leaf]) {
					t.Errorf("status %d, body:\n%s\nwant 200 and:\n%s", status, body, want[leaf])
				}
			})
		}
	}
	if got := strings.Count(x.events("gpu-1"), "user-data with join config served"); got != 1 {
		t.Errorf("%d 'served' events for three reads, want 1:\n%s", got, x.events("gpu-1"))
	}
}

func TestNoCloud_JoinTokenOnlyToTheOwnerWhileProvisioned(t *testing.T) {
	const mac, other = "52:54:00:bb:00:01", "52:54:00:bb:00:99"
	tests := []struct {
		name      string
		state     node.State
		leases    map[string]string // ip → mac
		from      string
		path      string // "" = /nocloud/<mac>/user-data
		wantCode  int
		wantToken bool
		wantEvent string // substring of a recorded event
		eventOn   string // node expected to carry wantEvent; "" = w-1
	}{
		{name: "registered owner gets the token", state: node.StateRegistered, from: "127.0.0.1", wantCode: 200, wantToken: true},
		{name: "provisioning owner gets the token", state: node.StateProvisioning, from: "127.0.0.1", wantCode: 200, wantToken: true},
		{name: "installed owner gets the token", state: node.StateInstalled, from: "127.0.0.1", wantCode: 200, wantToken: true},
		{name: "owner from its leased address gets the token", state: node.StateProvisioning,
			leases: map[string]string{"127.0.0.5": mac}, from: "127.0.0.5", wantCode: 200, wantToken: true},
		{name: "no MAC in the URL: resolved from the lease", state: node.StateProvisioning,
			leases: map[string]string{"127.0.0.6": mac}, from: "127.0.0.6", path: "/nocloud/user-data", wantCode: 200, wantToken: true},
		{name: "no MAC in the URL and no lease", state: node.StateProvisioning, from: "127.0.0.7", path: "/nocloud/user-data", wantCode: 404},
		{name: "unknown MAC", state: node.StateProvisioning, from: "127.0.0.1", path: "/nocloud/52:54:00:bb:00:77/user-data", wantCode: 404},
		{name: "another node's MAC asked from this node's leased address", state: node.StateProvisioning,
			leases: map[string]string{"127.0.0.11": mac}, from: "127.0.0.11", path: "/nocloud/" + other + "/user-data",
			wantCode: 403, eventOn: "w-2", wantEvent: "refused user-data to 127.0.0.11"},
		{name: "not a MAC", state: node.StateProvisioning, from: "127.0.0.1", path: "/nocloud/../user-data", wantCode: 404},
		{name: "source address leased to another machine", state: node.StateProvisioning,
			leases: map[string]string{"127.0.0.8": other}, from: "127.0.0.8", wantCode: 403, wantEvent: "refused user-data to 127.0.0.8"},
		{name: "node holds a lease elsewhere: other sources refused", state: node.StateProvisioning,
			leases: map[string]string{"127.0.0.9": mac}, from: "127.0.0.10", wantCode: 403, wantEvent: "holds the lease on 127.0.0.9"},
		{name: "active node: no join data", state: node.StateActive, from: "127.0.0.1", wantCode: 200, wantEvent: "join data withheld: node is active"},
		{name: "deleting node: no join data", state: node.StateDeleting, from: "127.0.0.1", wantCode: 200, wantEvent: "withheld"},
		{name: "wiping node: no join data", state: node.StateWiping, from: "127.0.0.1", wantCode: 200, wantEvent: "withheld"},
		{name: "deleted node: no join data", state: node.StateDeleted, from: "127.0.0.1", wantCode: 200, wantEvent: "withheld"},
		{name: "failed node: no join data", state: node.StateFailed, from: "127.0.0.1", wantCode: 200, wantEvent: "withheld"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newNoCloudHarness(t)
			x.importAt("w-1", mac, node.RoleWorker, tt.state)
			x.importAt("w-2", other, node.RoleWorker, node.StateProvisioning)
			for ip, m := range tt.leases {
				x.lease(ip, m)
			}
			path := tt.path
			if path == "" {
				path = "/nocloud/" + mac + "/user-data"
			}
			c := clientFrom(tt.from)
			code, body := x.do(c, http.MethodGet, path, nil, nil)
			if code != tt.wantCode {
				t.Errorf("GET %s from %s: %d, want %d\n%s", path, tt.from, code, tt.wantCode, body)
			}
			if got := strings.Contains(body, noCloudToken); got != tt.wantToken {
				t.Errorf("token in the response = %v, want %v:\n%s", got, tt.wantToken, body)
			}
			if tt.wantCode == 200 && !tt.wantToken {
				for _, must := range []string{"hostname: w-1", "ssh-ed25519"} {
					if !strings.Contains(body, must) {
						t.Errorf("the no-join data lacks %q:\n%s", must, body)
					}
				}
				if strings.Contains(body, "/etc/llmos") {
					t.Errorf("the no-join data carries the LLMOS config:\n%s", body)
				}
			}
			// No other file, under any path form, ever carries the token.
			for _, leaf := range []string{"meta-data", "vendor-data", "network-config"} {
				if _, b := x.do(c, http.MethodGet, strings.TrimSuffix(path, "user-data")+leaf, nil, nil); strings.Contains(b, noCloudToken) {
					t.Errorf("token in %s", leaf)
				}
			}
			on := tt.eventOn
			if on == "" {
				on = "w-1"
			}
			if tt.wantEvent != "" && !strings.Contains(x.events(on), tt.wantEvent) {
				t.Errorf("events of %s lack %q:\n%s", on, tt.wantEvent, x.events(on))
			}
		})
	}
}

func TestNoCloud_DiscoveredMachineGetsNothing(t *testing.T) {
	x := newNoCloudHarness(t)
	mac, _ := node.ParseMAC("52:54:00:cc:00:01")
	if err := x.st.RecordBoot(context.Background(), mac, node.BootInfo{Firmware: "uefi"}); err != nil {
		t.Fatal(err)
	}
	if code, body := x.do(clientFrom("127.0.0.1"), http.MethodGet, "/nocloud/"+mac.String()+"/user-data", nil, nil); code != 404 {
		t.Errorf("discovered machine: %d, want 404\n%s", code, body)
	}
}

func TestNoCloud_PhoneHome(t *testing.T) {
	tests := []struct {
		name      string
		state     node.State
		status    string
		badKey    bool
		wantCode  int
		wantState node.State
		wantEvent string
	}{
		{name: "provisioning node that finished moves to installed", state: node.StateProvisioning, status: "installed",
			wantCode: 204, wantState: node.StateInstalled, wantEvent: "phone-home: cloud-init finished"},
		{name: "installed node stays installed", state: node.StateInstalled, status: "installed",
			wantCode: 204, wantState: node.StateInstalled, wantEvent: "phone-home"},
		{name: "template VM (never PXE-booted) goes registered → installed", state: node.StateRegistered, status: "installed",
			wantCode: 204, wantState: node.StateInstalled, wantEvent: "first boot from a cloud-init seed"},
		{name: "active node stays active", state: node.StateActive, status: "installed",
			wantCode: 204, wantState: node.StateActive, wantEvent: "phone-home"},
		{name: "a failure fails the node, with the reason", state: node.StateProvisioning, status: "failed",
			wantCode: 204, wantState: node.StateFailed, wantEvent: "first boot failed: gave up"},
		{name: "installer ran: installed → joining", state: node.StateInstalled, status: "joining",
			wantCode: 204, wantState: node.StateJoining, wantEvent: "the installer ran; the join is under way"},
		{name: "template VM reports joining: registered → joining", state: node.StateRegistered, status: "joining",
			wantCode: 204, wantState: node.StateJoining, wantEvent: "first boot from a cloud-init seed"},
		{name: "first-boot script rerun after a failure: failed → joining", state: node.StateFailed, status: "joining",
			wantCode: 204, wantState: node.StateJoining, wantEvent: "phone-home: joining"},
		{name: "LLMOS bootstrapped: joining → joined", state: node.StateJoining, status: "joined",
			wantCode: 204, wantState: node.StateJoined, wantEvent: "the join finished"},
		{name: "joined without a joining report: installed → joined", state: node.StateInstalled, status: "joined",
			wantCode: 204, wantState: node.StateJoined, wantEvent: "the join finished"},
		{name: "joined after Ready: active stays active", state: node.StateActive, status: "joined",
			wantCode: 204, wantState: node.StateActive, wantEvent: "phone-home: joined"},
		{name: "the join failed: joining → failed", state: node.StateJoining, status: "failed",
			wantCode: 204, wantState: node.StateFailed, wantEvent: "first boot failed"},
		{name: "a late failure never moves an active node", state: node.StateActive, status: "failed",
			wantCode: 204, wantState: node.StateActive, wantEvent: "first boot failed"},
		{name: "wrong key is refused", state: node.StateProvisioning, status: "installed", badKey: true,
			wantCode: 403, wantState: node.StateProvisioning, wantEvent: "wrong or stale key"},
		{name: "unknown status", state: node.StateProvisioning, status: "bogus",
			wantCode: 400, wantState: node.StateProvisioning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newNoCloudHarness(t)
			before := x.importAt("w-1", "52:54:00:dd:00:01", node.RoleWorker, tt.state)
			hdr := x.keyHeader("w-1")
			if tt.badKey {
				hdr.Set(cloudinit.CallbackKeyHeader, "0123456789abcdef0123456789abcdef")
			}
			form := url.Values{"status": {tt.status}, "reason": {"gave up waiting; token was " + noCloudToken}}
			code, body := x.do(clientFrom("127.0.0.1"), http.MethodPost, "/nocloud/52:54:00:dd:00:01/phone-home", hdr, form)
			if code != tt.wantCode {
				t.Errorf("phone-home: %d, want %d\n%s", code, tt.wantCode, body)
			}
			after := x.node("w-1")
			if after.State != tt.wantState {
				t.Errorf("state %s, want %s\n%s", after.State, tt.wantState, x.events("w-1"))
			}
			if after.Generation != before.Generation {
				t.Errorf("generation %d → %d: the instance-id the machine just used must stay valid", before.Generation, after.Generation)
			}
			if tt.wantEvent != "" && !strings.Contains(x.events("w-1"), tt.wantEvent) {
				t.Errorf("events lack %q:\n%s", tt.wantEvent, x.events("w-1"))
			}
			if strings.Contains(x.events("w-1"), noCloudToken) {
				t.Errorf("the token reached the events:\n%s", x.events("w-1"))
			}
		})
	}
}

// TestNoCloud_AFailedJoinKeepsTheJournalTailWithoutTheToken posts what the first-boot
// script sends when llmos.service fails: the unit's last journal lines, one of them
// holding the token (LLMOS logging its config), one with escape codes, and more lines
// than are kept.
func TestNoCloud_AFailedJoinKeepsTheJournalTailWithoutTheToken(t *testing.T) {
	x := newNoCloudHarness(t)
	x.importAt("w-1", "52:54:00:dd:00:02", node.RoleWorker, node.StateJoining)
	var tail strings.Builder
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&tail, "llmos[7]: step %02d\n", i)
	}
	tail.WriteString("llmos[7]: config token: " + noCloudToken + "\n")
	tail.WriteString("llmos[7]: \x1b[31mcluster-info: 401 Unauthorized\x1b[0m\n")
	form := url.Values{"status": {"failed"}, "reason": {"llmos.service failed after 300s"}, "log": {tail.String()}}
	if code, body := x.do(clientFrom("127.0.0.1"), http.MethodPost, "/nocloud/52:54:00:dd:00:02/phone-home", x.keyHeader("w-1"), form); code != 204 {
		t.Fatalf("phone-home: %d\n%s", code, body)
	}
	if n := x.node("w-1"); n.State != node.StateFailed || !strings.Contains(n.StateReason, "llmos.service failed after 300s") {
		t.Fatalf("node is %s (%q), want failed with the reason", n.State, n.StateReason)
	}
	events, err := x.st.Events(context.Background(), "w-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ev := range events {
		if ev.Type == node.EventLog {
			lines = append(lines, ev.Reason)
		}
	}
	if len(lines) != 20 || lines[0] != "llmos[7]: step 08" {
		t.Fatalf("kept %d log lines starting %q, want the last 20:\n%s", len(lines), lines, x.events("w-1"))
	}
	if got := lines[18]; got != "llmos[7]: config token: [redacted]" {
		t.Errorf("token line = %q, want it redacted", got)
	}
	if got := lines[19]; strings.ContainsRune(got, 0x1b) || !strings.Contains(got, "cluster-info: 401 Unauthorized") {
		t.Errorf("last line = %q, want it printable and kept", got)
	}
	if strings.Contains(x.events("w-1"), noCloudToken) {
		t.Errorf("the token reached the events")
	}
}

func TestNoCloud_JoinTurnServersOneAtATime(t *testing.T) {
	x := newNoCloudHarness(t)
	x.importAt("cp-1", "52:54:00:ee:00:01", node.RoleServer, node.StateProvisioning)
	x.importAt("cp-2", "52:54:00:ee:00:02", node.RoleServer, node.StateProvisioning)
	x.importAt("w-1", "52:54:00:ee:00:03", node.RoleWorker, node.StateProvisioning)
	x.importAt("cp-3", "52:54:00:ee:00:04", node.RoleServer, node.StateProvisioning)
	c := clientFrom("127.0.0.1")
	turn := func(name, mac string) (int, string) {
		return x.do(c, http.MethodGet, "/nocloud/"+mac+"/join-turn", x.keyHeader(name), nil)
	}
	steps := []struct {
		what     string
		do       func() (int, string)
		wantCode int
		wantBody string
	}{
		{"cp-1 asks first and goes", func() (int, string) { return turn("cp-1", "52:54:00:ee:00:01") }, 200, "go\n"},
		{"cp-2 waits while cp-1 joins", func() (int, string) { return turn("cp-2", "52:54:00:ee:00:02") }, 423, "wait: cp-1 is joining\n"},
		{"cp-1 asking again keeps its turn", func() (int, string) { return turn("cp-1", "52:54:00:ee:00:01") }, 200, "go\n"},
		{"a worker takes no turn", func() (int, string) { return turn("w-1", "52:54:00:ee:00:03") }, 409, ""},
		{"a wrong key is refused", func() (int, string) {
			return x.do(c, http.MethodGet, "/nocloud/52:54:00:ee:00:02/join-turn", http.Header{cloudinit.CallbackKeyHeader: {"nope"}}, nil)
		}, 403, ""},
		{"cp-1 phones home", func() (int, string) {
			return x.do(c, http.MethodPost, "/nocloud/52:54:00:ee:00:01/phone-home", x.keyHeader("cp-1"),
				url.Values{"status": {"installed"}, "reason": {"installer finished"}})
		}, 204, ""},
		{"now cp-2 goes", func() (int, string) { return turn("cp-2", "52:54:00:ee:00:02") }, 200, "go\n"},
		{"cp-3 waits while cp-2 joins", func() (int, string) { return turn("cp-3", "52:54:00:ee:00:04") }, 423, "wait: cp-2 is joining\n"},
		{"cp-2 becomes active without phoning home", func() (int, string) {
			for _, to := range []node.State{node.StateInstalled, node.StateActive} {
				if _, err := x.st.UpdateNode(context.Background(), "cp-2", func(n *node.Node) ([]node.Event, error) {
					ev, err := n.Transition(to, "test", "test", time.Now().UTC())
					return []node.Event{ev}, err
				}); err != nil {
					t.Fatal(err)
				}
			}
			return 200, ""
		}, 200, ""},
		{"cp-3 goes: an active holder no longer blocks", func() (int, string) { return turn("cp-3", "52:54:00:ee:00:04") }, 200, "go\n"},
	}
	for _, s := range steps {
		code, body := s.do()
		if code != s.wantCode || (s.wantBody != "" && body != s.wantBody) {
			t.Fatalf("%s: %d %q, want %d %q", s.what, code, body, s.wantCode, s.wantBody)
		}
	}
	if !strings.Contains(x.events("cp-2"), "waiting to join: server cp-1 is joining") {
		t.Errorf("cp-2's events do not say it waited:\n%s", x.events("cp-2"))
	}
}

func TestNoCloud_SettingsChangesAreServedAtOnce(t *testing.T) {
	x := newNoCloudHarness(t)
	x.importAt("w-1", "52:54:00:12:00:01", node.RoleWorker, node.StateProvisioning)
	c := clientFrom("127.0.0.1")
	get := func() string {
		code, body := x.do(c, http.MethodGet, "/nocloud/52:54:00:12:00:01/user-data", nil, nil)
		if code != 200 {
			t.Fatalf("user-data: %d\n%s", code, body)
		}
		return body
	}
	if !strings.Contains(get(), "server: https://10.20.0.11:6443") {
		t.Fatal("first render lacks the server URL")
	}
	changes := []struct {
		what string
		fn   func(*node.ClusterSettings)
		want string
	}{
		{"server URL", func(s *node.ClusterSettings) { s.ServerURL = "https://10.20.0.12:9345" }, "server: https://10.20.0.12:9345"},
		{"token", func(s *node.ClusterSettings) { s.Token = "K10rotated-token" }, "token: K10rotated-token"},
		{"install URL", func(s *node.ClusterSettings) { s.InstallURL = "http://mirror.lab/llmos.sh" }, "http://mirror.lab/llmos.sh"},
		{"installer environment", func(s *node.ClusterSettings) { s.InstallEnv = map[string]string{"INSTALL_LLMOS_VERSION": "v9"} }, "INSTALL_LLMOS_VERSION=v9"},
		{"extra cloud-config", func(s *node.ClusterSettings) { s.ExtraCloudConfig = "timezone: Asia/Tokyo" }, "timezone: Asia/Tokyo"},
		{"SSH keys", func(s *node.ClusterSettings) { s.SSHAuthorizedKeys = []string{"ssh-rsa AAAArotated ops@lab"} }, "ssh-rsa AAAArotated"},
	}
	for _, ch := range changes {
		if _, err := x.st.UpdateClusterSettings(context.Background(), func(s *node.ClusterSettings) error { ch.fn(s); return nil }); err != nil {
			t.Fatal(err)
		}
		if body := get(); !strings.Contains(body, ch.want) {
			t.Errorf("after changing the %s, user-data lacks %q:\n%s", ch.what, ch.want, body)
		}
	}
}

// FuzzNoCloudPath sends arbitrary paths and methods from an address with no lease: the
// handler must never panic, and the token may only ever leave in a 200 user-data answer.
func FuzzNoCloudPath(f *testing.F) {
	for _, seed := range []string{"/nocloud/52:54:00:f0:00:01/user-data", "/nocloud/user-data", "/nocloud/",
		"/nocloud/525400f00001/meta-data", "/nocloud/52:54:00:f0:00:01/user-data/", "/nocloud/52:54:00:f0:00:01//user-data",
		"/nocloud/52:54:00:f0:00:01/phone-home", "/nocloud/52:54:00:f0:00:01/join-turn", "/nocloud/%2e%2e/user-data",
		"/nocloud/52:54:00:f0:00:01:00:00/user-data"} {
		f.Add(seed, "GET")
	}
	f.Add("/nocloud/52:54:00:f0:00:01/phone-home", "POST")
	x := newNoCloudHarness(f)
	x.importAt("fz-1", "52:54:00:f0:00:01", node.RoleServer, node.StateProvisioning)
	f.Fuzz(func(t *testing.T, path, method string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = method
		req.URL.Path = path
		req.RemoteAddr = "127.0.0.3:40000"
		rec := httptest.NewRecorder()
		x.h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), noCloudToken) &&
			(rec.Code != http.StatusOK || !strings.HasSuffix(path, "/user-data") || method != http.MethodGet) {
			t.Errorf("%s %q: %d carried the token", method, path, rec.Code)
		}
	})
}

// listenLoopback6443 listens on port 6443 (a port LLMOS accepts and the store validates)
// of some 127.0.0.x address, which Linux routes to lo without configuration.
func listenLoopback6443(t *testing.T) (net.Listener, string) {
	t.Helper()
	for i := 0; i < 20; i++ {
		host := "127.0." + strconv.Itoa(10+i) + "." + strconv.Itoa(10+(int(time.Now().UnixNano())%200))
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "6443"))
		if err == nil {
			return ln, host
		}
	}
	t.Skip("no free 127.0.x.y:6443 to listen on")
	return nil, ""
}

// TestNoCloud_SecondServerWaitsUntilTheFirstHasJoined runs the first-boot scripts of two
// server nodes imported together with sh, against the real handler and store. The
// stand-in installer behaves like LLMOS's install.sh: it queues the join (systemctl
// restart --no-block llmos) and returns at once; the stand-in llmos.service writes the
// bootstrapped stamp seconds later. The second server must not start its join until the
// first has written its stamp and reported joined: the joins never overlap.
func TestNoCloud_SecondServerWaitsUntilTheFirstHasJoined(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	ln, host := listenLoopback6443(t)
	k3s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			fmt.Fprint(w, "pong")
			return
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	k3s.Listener.Close()
	k3s.Listener = ln
	k3s.StartTLS()
	defer k3s.Close()
	dir := t.TempDir()
	joinLog := filepath.Join(dir, "join-log")
	installer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!/bin/sh\necho \"installer $NODE_TAG\" >> \"$JOIN_LOG\"\nsystemctl restart --no-block llmos\n")
	}))
	defer installer.Close()

	x := newNoCloudHarness(t, func(_ *noCloudHarness, c *cloudinit.Config, s *node.ClusterSettings) {
		c.Join = cloudinit.LLMOS{ClusterInfoPort: 6443}
		c.WaitFirstDelay, c.WaitMaxDelay, c.WaitLimit = time.Second, time.Second, 2*time.Minute
		s.ServerURL = "https://" + host + ":6443"
		s.InstallURL = installer.URL + "/install.sh"
		s.InstallEnv = map[string]string{"JOIN_LOG": joinLog}
	})
	first := x.importAt("cp-1", "52:54:00:ff:00:01", node.RoleServer, node.StateProvisioning)
	second := x.importAt("cp-2", "52:54:00:ff:00:02", node.RoleServer, node.StateProvisioning)
	if !first.ClusterInit || second.ClusterInit {
		t.Fatalf("cluster-init: cp-1 %v, cp-2 %v; want the first server only", first.ClusterInit, second.ClusterInit)
	}
	bin := fakeLLMOSBin(t, dir)

	run := func(n node.Node) (chan error, *bytes.Buffer) {
		code, ud := x.do(clientFrom("127.0.0.1"), http.MethodGet, "/nocloud/"+n.PrimaryMAC().String()+"/user-data", nil, nil)
		if code != 200 {
			t.Fatalf("user-data for %s: %d", n.Name, code)
		}
		script := firstBootScript(t, ud)
		path := filepath.Join(dir, n.Name+".sh")
		if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(dir, n.Name+"-root")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		out := &bytes.Buffer{}
		cmd := exec.Command("sh", path)
		cmd.Env = append(os.Environ(), "NODE_TAG="+n.Name, "BOOTYARD_CONSOLE="+filepath.Join(dir, n.Name+".console"),
			"BOOTYARD_ROOT="+root, "PATH="+bin+":"+os.Getenv("PATH"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })
		return done, out
	}

	done1, out1 := run(first)
	waitUntil(t, time.Minute, func() string { return "cp-1 to take its turn:\n" + out1.String() }, func() bool {
		holder, _, _ := x.turns.Holder(t.Context())
		return holder.Node == "cp-1"
	})
	done2, out2 := run(second)
	for i, done := range []chan error{done1, done2} {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("script %d: %v\n%s\n%s", i+1, err, out1, out2)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("script %d did not finish\n%s\n%s", i+1, out1, out2)
		}
	}
	log, _ := os.ReadFile(joinLog)
	if want := "installer cp-1\nbootstrapped cp-1\ninstaller cp-2\nbootstrapped cp-2\n"; string(log) != want {
		t.Errorf("joins:\n%s\nwant one at a time, cp-1 first, each to its stamp:\n%s", log, want)
	}
	if !strings.Contains(out2.String(), "waiting for this server's turn") {
		t.Errorf("cp-2 did not wait for its turn:\n%s", out2)
	}
	for _, name := range []string{"cp-1", "cp-2"} {
		n := x.node(name)
		if n.State != node.StateJoined {
			t.Errorf("%s is %s, want joined (no kubeconfig: the end of the road)\n%s", name, n.State, x.events(name))
		}
		for _, want := range []string{"installed→joining", "joining→joined"} {
			if !strings.Contains(x.events(name), want) {
				t.Errorf("%s's events lack %q:\n%s", name, want, x.events(name))
			}
		}
	}
	if holder, held, _ := x.turns.Holder(t.Context()); held {
		t.Errorf("%s still holds the turn after both joined", holder.Node)
	}
}

// fakeLLMOSBin holds a logger that writes into dir, so scripts leave the journal alone,
// and a systemctl standing in for systemd 252 and llmos.service: a restart of llmos
// "joins" for two seconds in the background, then logs it to $JOIN_LOG and writes the
// bootstrapped stamp under $BOOTYARD_ROOT.
func fakeLLMOSBin(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tools := map[string]string{
		"logger": "#!/bin/sh\necho \"$*\" >> \"" + dir + "/journal\"\n",
		"systemctl": `#!/bin/sh
case "$1" in
--version) echo "systemd 252 (252.30-1~deb12u2)" ;;
daemon-reload|reset-failed) ;;
is-failed) exit 1 ;;
restart) (sleep 2; echo "bootstrapped $NODE_TAG" >> "$JOIN_LOG"
  mkdir -p "$BOOTYARD_ROOT/var/lib/llmos" && touch "$BOOTYARD_ROOT/var/lib/llmos/bootstrapped") >/dev/null 2>&1 & ;;
*) exit 1 ;;
esac
`,
	}
	for name, body := range tools {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// firstBootScript pulls the first-boot script out of user-data.
func firstBootScript(t *testing.T, userData string) string {
	t.Helper()
	var doc struct {
		WriteFiles []struct {
			Path    string `json:"path"`
			Content string `json:"content"`
		} `json:"write_files"`
	}
	if err := yaml.Unmarshal([]byte(userData), &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.WriteFiles {
		if f.Path == "/usr/local/lib/bootyard/firstboot.sh" {
			return f.Content
		}
	}
	t.Fatalf("no first-boot script in user-data:\n%s", userData)
	return ""
}

// noCloudRead is what cloud-init's own NoCloud datasource made of a seed.
type noCloudRead struct {
	Found          bool                        `json:"found"`
	InstanceID     string                      `json:"instance_id"`
	Hostname       string                      `json:"hostname"`
	UserData       string                      `json:"user_data"`
	NetworkVersion int                         `json:"network_version"`
	Interfaces     map[string][]map[string]any `json:"interfaces"`
}

// TestNoCloud_CloudInitReadsTheHTTPSeed points the real cloud-init NoCloud datasource
// (Debian's cloud-init package, driven by cloudinit/testdata/nocloud_read.py) at the
// handler, with and without the MAC in the seed URL.
func TestNoCloud_CloudInitReadsTheHTTPSeed(t *testing.T) {
	if _, err := os.Stat("/usr/lib/python3/dist-packages/cloudinit/sources/DataSourceNoCloud.py"); err != nil {
		t.Skipf("Debian package cloud-init not installed (make test installs it): %v", err)
	}
	x := newNoCloudHarness(t)
	n := x.importAt("cp-9", "52:54:00:99:00:01", node.RoleServer, node.StateProvisioning)
	if _, err := x.st.UpdateNode(context.Background(), n.Name, func(n *node.Node) ([]node.Event, error) {
		n.IP = netip.MustParsePrefix("10.20.0.19/24")
		n.Gateway = netip.MustParseAddr("10.20.0.1")
		n.DNS = []netip.Addr{netip.MustParseAddr("10.20.0.1")}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	n = x.node("cp-9")
	x.lease("127.0.0.1", "52:54:00:99:00:01")
	want, err := x.r.Files(n, x.settings(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []string{x.srv.URL + "/nocloud/52:54:00:99:00:01/", x.srv.URL + "/nocloud/"} {
		t.Run(seed, func(t *testing.T) {
			out, err := exec.Command("/usr/bin/python3", "../cloudinit/testdata/nocloud_read.py", "seedfrom", seed).Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("nocloud_read.py: %v\n%s", err, stderr)
			}
			var got noCloudRead
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !got.Found || got.InstanceID != cloudinit.InstanceID(n) || got.Hostname != "cp-9" {
				t.Errorf("found=%v instance-id=%q hostname=%q, want true %q cp-9", got.Found, got.InstanceID, got.Hostname, cloudinit.InstanceID(n))
			}
			if got.UserData != string(want[cloudinit.FileUserData]) {
				t.Errorf("user-data as cloud-init read it differs from the rendered one:\n%s", got.UserData)
			}
			subnets := got.Interfaces["52:54:00:99:00:01"]
			if got.NetworkVersion != 2 || len(subnets) != 1 || subnets[0]["address"] != "10.20.0.19" || subnets[0]["type"] != "static" {
				t.Errorf("network config as cloud-init parsed it: version %d, %v", got.NetworkVersion, got.Interfaces)
			}
		})
	}
}

// benchHarness is a provisioning worker whose address (127.0.0.1, where the load comes
// from) is leased to it, so every request runs the full secret checks: lease lookup,
// node lookup, state check, settings read.
func benchHarness(b *testing.B) (*noCloudHarness, string) {
	x := newNoCloudHarness(b)
	x.importAt("bench-1", "52:54:00:be:00:01", node.RoleWorker, node.StateProvisioning)
	x.lease("127.0.0.1", "52:54:00:be:00:01")
	url := x.srv.URL + "/nocloud/52:54:00:be:00:01/user-data"
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), noCloudToken) {
		b.Fatalf("warm-up: %d, want 200 with the join config", resp.StatusCode)
	}
	return x, url
}

// BenchmarkNoCloudUserData serves user-data through echo on loopback with Go's client,
// GOMAXPROCS-parallel.
func BenchmarkNoCloudUserData(b *testing.B) {
	_, url := benchHarness(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkNoCloudUserDataWrk is the measurement: wrk, 2 threads, 64
// connections, 10 s, against the handler behind echo on loopback, secret checks on.
// matchbox v0.11.0 serves its templated cloud-config at about 10,600 requests/s on
// this kind of machine. Run with -benchtime=1x.
func BenchmarkNoCloudUserDataWrk(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk not installed (Debian package wrk)")
	}
	_, url := benchHarness(b)
	for b.Loop() {
		out, err := exec.Command(wrk, "-t2", "-c64", "-d10s", "--latency", url).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "Non-2xx") {
			b.Fatalf("wrk saw errors:\n%s", out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Requests/sec:"); ok {
				rps, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(rps, "req/s")
			}
		}
		b.Logf("wrk:\n%s", out)
	}
}

// A machine that starts a phone-home body and stops is cut off and changes nothing; the
// same report sent whole still lands.
func TestNoCloud_ASlowPhoneHomeBodyIsCutAndChangesNothing(t *testing.T) {
	x := newNoCloudHarness(t, func(x *noCloudHarness, _ *cloudinit.Config, _ *node.ClusterSettings) {
		x.bodyReadTimeout = time.Second
	})
	x.importAt("w-1", "52:54:00:dd:00:02", node.RoleWorker, node.StateProvisioning)
	hdr := x.keyHeader("w-1")
	body := url.Values{"status": {"installed"}, "reason": {"done"}}.Encode()
	conn, err := net.Dial("tcp", x.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /nocloud/52:54:00:dd:00:02/phone-home HTTP/1.1\r\nHost: bootyard\r\n%s: %s\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		cloudinit.CallbackKeyHeader, hdr.Get(cloudinit.CallbackKeyHeader), len(body), body[:5])
	// The safety net only: the server must answer long before it.
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled phone-home: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 4 {
		t.Errorf("trickled phone-home = %d, want a 4xx refusal", resp.StatusCode)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the connection stays open after the slow body")
	}
	if got := x.node("w-1").State; got != node.StateProvisioning {
		t.Errorf("the cut phone-home moved the node to %s", got)
	}
	form, _ := url.ParseQuery(body)
	if code, out := x.do(clientFrom("127.0.0.1"), http.MethodPost, "/nocloud/52:54:00:dd:00:02/phone-home", hdr, form); code != http.StatusNoContent {
		t.Errorf("the whole phone-home = %d %s", code, out)
	}
	if got := x.node("w-1").State; got != node.StateInstalled {
		t.Errorf("after the whole phone-home: %s, want installed", got)
	}
}
