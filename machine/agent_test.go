package machine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// agentJoinToken is the cluster token in the agent tests: a wipe's task must not hold it.
const agentJoinToken = "K10agent-test-join-token-never-in-a-wipe::server:c0ffee"

// testClock is a settable clock for token expiry and silence.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// agentHarness is the machine server with the real store, image catalog, cloud-init
// renderer and agent API, as cmd wires them, on a loopback socket.
type agentHarness struct {
	t       testing.TB
	st      *store.Store
	catalog *images.Catalog
	agent   *Agent
	clock   *testClock
	srv     *httptest.Server
	image   store.Image
	seen    *boot.Sightings
}

// loopback is where the harness's requests come from: the machine's address.
var loopback = netip.MustParseAddr("127.0.0.1")

const agentTokenTTL = 2 * time.Hour

func newAgentHarness(t testing.TB, opts ...func(*IPXEConfig)) *agentHarness {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.UpdateClusterSettings(ctx, func(c *node.ClusterSettings) error {
		c.ServerURL = "https://10.20.0.10:6443"
		c.Token = agentJoinToken
		c.SSHAuthorizedKeys = []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0Z ops@example"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	imgPath := filepath.Join(catalog.Dir(), "debian.raw.zst")
	if err := os.WriteFile(imgPath, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte("disk"), 1024)...), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := catalog.Add(ctx, images.Spec{Name: "debian", File: imgPath, Default: true})
	if err != nil {
		t.Fatal(err)
	}
	const adv = "http://10.20.0.1:8080"
	ci, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: adv})
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	agent, err := NewAgent(AgentConfig{AdvertiseURL: adv, Tokens: NewAgentTokens(agentTokenTTL, clock.now),
		SilenceLimit: 20 * time.Minute, Logger: quiet}, st, catalog, ci)
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := ipxe.NewRenderer(ipxe.Config{AdvertiseURL: adv})
	if err != nil {
		t.Fatal(err)
	}
	id, seen := newTestIdentity(t, st, false)
	cfg := IPXEConfig{Scripts: scripts, Inventory: st, Identity: id, Agent: agent, Logger: quiet}
	for _, o := range opts {
		o(&cfg)
	}
	scriptsHandler, err := NewIPXEHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(scriptsHandler.Close)
	nocloud, err := NewNoCloudHandler(NoCloudConfig{Renderer: ci, Inventory: st, Identity: id, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Logger: quiet}, Deps{Agent: agent, IPXE: scriptsHandler, NoCloud: nocloud,
		Files: images.NewFileServer(images.FileServerConfig{Images: st, ImagesDir: catalog.Dir(), AgentDir: t.TempDir(), Logger: quiet})})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &agentHarness{t: t, st: st, catalog: catalog, agent: agent, clock: clock, srv: srv, image: img, seen: seen}
}

func agentMAC(i byte) node.MAC { return node.MAC{0x52, 0x54, 0x00, 0xa0, 0x00, i} }

// provisioning imports a node and moves it to provisioning, as the iPXE handler does
// when it serves the install script.
func (h *agentHarness) provisioning(name string, mac node.MAC) node.Node {
	h.t.Helper()
	h.importSeen(node.Node{Name: name, MACs: []node.MAC{mac}, Role: node.RoleWorker, Disk: "/dev/vda"})
	return h.transition(name, node.StateProvisioning)
}

// importSeen imports n, which Bootyard's DHCP saw at loopback, where the harness's
// requests come from.
func (h *agentHarness) importSeen(n node.Node) {
	h.t.Helper()
	if _, err := h.st.ImportNode(context.Background(), n, "test"); err != nil {
		h.t.Fatal(err)
	}
	for _, mac := range n.MACs {
		h.seen.Saw(mac, loopback)
	}
}

// wiping imports a node and walks it to wiping, as an installed node's deletion does.
func (h *agentHarness) wiping(name string, mac node.MAC) node.Node {
	h.t.Helper()
	h.provisioning(name, mac)
	h.transition(name, node.StateInstalled)
	h.transition(name, node.StateDeleting)
	return h.transition(name, node.StateWiping)
}

func (h *agentHarness) transition(name string, to node.State) node.Node {
	h.t.Helper()
	n, err := h.st.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
		ev, err := n.Transition(to, "test", "test", time.Now().UTC())
		return []node.Event{ev}, err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

var tokenOnCmdline = regexp.MustCompile(`bootyard\.token=([0-9a-f]+)`)

// boot renders the node's boot target, as the iPXE script does, and returns the token
// from its kernel command line.
func (h *agentHarness) boot(name string) string {
	h.t.Helper()
	n, err := h.st.GetNode(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	target, err := h.agent.BootTarget(context.Background(), n, n.PrimaryMAC(), loopback)
	if err != nil {
		h.t.Fatal(err)
	}
	m := tokenOnCmdline.FindStringSubmatch(target.Cmdline)
	if m == nil {
		h.t.Fatalf("no token on the command line %q", target.Cmdline)
	}
	return m[1]
}

// do calls the agent API with a bearer token ("" sends none), from 127.0.0.1.
func (h *agentHarness) do(method, path, token, body string) (int, []byte) {
	h.t.Helper()
	return h.doFrom(h.srv.Client(), method, path, token, body)
}

// doFrom is do through c, a client with its own source address (clientFrom).
func (h *agentHarness) doFrom(c *http.Client, method, path, token, body string) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (h *agentHarness) node(name string) node.Node {
	h.t.Helper()
	n, err := h.st.GetNode(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *agentHarness) events(name string, t node.EventType) []node.Event {
	h.t.Helper()
	all, err := h.st.Events(context.Background(), name, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []node.Event
	for _, e := range all {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

func TestAgentBootTarget_KernelLineFollowsTheContract(t *testing.T) {
	h := newAgentHarness(t)
	n := h.provisioning("w-1", agentMAC(1))
	target, err := h.agent.BootTarget(context.Background(), n, agentMAC(1), loopback)
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^initrd=initramfs\.gz console=ttyS0,115200 console=tty0 quiet panic=30 bootyard\.url=http://10\.20\.0\.1:8080 bootyard\.token=[0-9a-f]{64} bootyard\.mac=52:54:00:a0:00:01$`)
	if target.Kernel != "http://10.20.0.1:8080/agent/vmlinuz" || !slices.Equal(target.Initrds, []string{"http://10.20.0.1:8080/agent/initramfs.gz"}) ||
		!want.MatchString(target.Cmdline) {
		t.Errorf("target = %+v; want the agent kernel, its initramfs and the contract's command line", target)
	}
}

func TestAgentBootTarget_InstallerImageBootsItsOwnKernelWithTheNoCloudURL(t *testing.T) {
	h := newAgentHarness(t)
	kernel := filepath.Join(h.catalog.Dir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.catalog.Add(context.Background(), images.Spec{Name: "ubuntu", Kind: "installer", Kernel: kernel,
		Initrd: "http://mirror.example/ubuntu/initrd.gz", Cmdline: "autoinstall ip=dhcp"}); err != nil {
		t.Fatal(err)
	}
	n := h.provisioning("w-1", agentMAC(1))
	n.Image = "ubuntu"
	target, err := h.agent.BootTarget(context.Background(), n, agentMAC(1), loopback)
	if err != nil {
		t.Fatal(err)
	}
	want := "initrd=initrd.gz autoinstall ip=dhcp ds=nocloud;s=http://10.20.0.1:8080/nocloud/52:54:00:a0:00:01/"
	if target.Kernel != "http://10.20.0.1:8080/images/ubuntu/kernel" || !slices.Equal(target.Initrds, []string{"http://mirror.example/ubuntu/initrd.gz"}) ||
		target.Cmdline != want {
		t.Errorf("target = %+v; want the installer's kernel and initrd with cmdline %q", target, want)
	}
	if strings.Contains(target.Cmdline, "bootyard.token") {
		t.Errorf("an installer image got an agent token: %q", target.Cmdline)
	}
}

func TestAgentBootTarget_NothingToBootIsAnError(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	deleted := h.transition("w-1", node.StateDeleting)
	deleted = h.transition("w-1", node.StateDeleted)
	if _, err := h.agent.BootTarget(context.Background(), deleted, agentMAC(1), loopback); !errors.Is(err, node.ErrIllegalTransition) {
		t.Errorf("deleted node: err = %v, want ErrIllegalTransition", err)
	}
	noImage := h.provisioning("w-2", agentMAC(2))
	noImage.Image = "fedora"
	if _, err := h.agent.BootTarget(context.Background(), noImage, agentMAC(2), loopback); !errors.Is(err, node.ErrNotFound) {
		t.Errorf("missing image: err = %v, want ErrNotFound", err)
	}
}

func TestAgentAPI_TokenIsBoundToItsNodeAndBoot(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	h.provisioning("w-2", agentMAC(2))
	stale := h.boot("w-1")
	tok1 := h.boot("w-1") // a newer script for w-1 revokes the older token
	tok2 := h.boot("w-2")
	tests := []struct {
		name     string
		token    string
		wantCode int
		wantNode string
	}{
		{"no token", "", 401, ""},
		{"not a token", "letmein", 401, ""},
		{"a well-formed token nobody minted", strings.Repeat("ab", 32), 401, ""},
		{"revoked by a newer script", stale, 401, ""},
		{"w-1's token gets w-1's task", tok1, 200, "w-1"},
		{"w-2's token gets w-2's task", tok2, 200, "w-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.do("GET", "/agent/v1/task", tt.token, "")
			if code != tt.wantCode {
				t.Fatalf("status = %d, want %d (%s)", code, tt.wantCode, body)
			}
			if tt.wantNode != "" {
				var task agentapi.Task
				if err := json.Unmarshal(body, &task); err != nil || task.Node != tt.wantNode {
					t.Errorf("task = %+v (%v), want node %s", task, err, tt.wantNode)
				}
			}
		})
	}
	// w-1's token finishing moves w-1, and only w-1.
	if code, body := h.do("POST", "/agent/v1/done", tok1, `{"action":"install"}`); code != 200 {
		t.Fatalf("done: %d %s", code, body)
	}
	if a, b := h.node("w-1").State, h.node("w-2").State; a != node.StateInstalled || b != node.StateProvisioning {
		t.Errorf("after w-1's done: w-1 %s, w-2 %s; want installed, provisioning", a, b)
	}
	if code, _ := h.do("GET", "/agent/v1/task", tok1, ""); code != 401 {
		t.Errorf("w-1's token after done: status %d, want 401 (revoked)", code)
	}
}

func TestAgentAPI_ExpiredTokenIsRefusedButUseKeepsItAlive(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	h.provisioning("w-2", agentMAC(2))
	busy, idle := h.boot("w-1"), h.boot("w-2")
	// w-1 reports every hour for three hours (a long wipe); w-2 never calls.
	for i := 0; i < 3; i++ {
		h.clock.advance(time.Hour)
		if code, body := h.do("POST", "/agent/v1/progress", busy, `{"phase":"write","percent":10}`); code != 204 {
			t.Fatalf("hour %d: progress %d %s", i+1, code, body)
		}
	}
	if code, _ := h.do("GET", "/agent/v1/task", idle, ""); code != 401 {
		t.Errorf("token unused for 3h (TTL 2h): status %d, want 401", code)
	}
}

func TestAgentAPI_StateMismatchIsAConflict(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *agentHarness) string // returns the token
	}{
		{"install token, node deleted by the operator meanwhile", func(h *agentHarness) string {
			h.provisioning("w-1", agentMAC(1))
			tok := h.boot("w-1")
			h.transition("w-1", node.StateDeleting)
			return tok
		}},
		{"wipe token, node already deleted", func(h *agentHarness) string {
			h.wiping("w-1", agentMAC(1))
			tok := h.boot("w-1")
			h.transition("w-1", node.StateDeleted)
			return tok
		}},
		{"install token from an older generation", func(h *agentHarness) string {
			h.provisioning("w-1", agentMAC(1))
			tok := h.boot("w-1")
			h.transition("w-1", node.StateRegistered)
			h.transition("w-1", node.StateProvisioning) // a new round, no new script yet
			return tok
		}},
		{"install token, node since installed and now being wiped", func(h *agentHarness) string {
			h.provisioning("w-1", agentMAC(1))
			tok := h.boot("w-1")
			for _, to := range []node.State{node.StateInstalled, node.StateDeleting, node.StateWiping} {
				h.transition("w-1", to)
			}
			return tok
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newAgentHarness(t)
			tok := tt.setup(h)
			before := h.node("w-1")
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/agent/v1/task", ""},
				{"POST", "/agent/v1/progress", `{"phase":"write","percent":50}`},
				{"POST", "/agent/v1/log", `{"lines":["hello"]}`},
				{"POST", "/agent/v1/done", `{"action":"install"}`},
				{"POST", "/agent/v1/failed", `{"reason":"x"}`},
			} {
				if code, body := h.do(c.method, c.path, tok, c.body); code != http.StatusConflict {
					t.Errorf("%s %s: status %d, want 409 (%s)", c.method, c.path, code, body)
				}
			}
			if after := h.node("w-1"); after.State != before.State {
				t.Errorf("refused calls changed the node: %s → %s", before.State, after.State)
			}
		})
	}
}

func TestAgentAPI_InstallTaskCarriesTheImageAndJoinData(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	code, body := h.do("GET", "/agent/v1/task", h.boot("w-1"), "")
	if code != 200 {
		t.Fatalf("task: %d %s", code, body)
	}
	// The exact shape of the contract, key by key.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if got := keys(raw); !slices.Equal(got, []string{"action", "cidata", "disk", "image", "node", "wipe"}) {
		t.Errorf("task keys = %v", got)
	}
	var task agentapi.Task
	if err := json.Unmarshal(body, &task); err != nil {
		t.Fatal(err)
	}
	wantImage := agentapi.Image{Name: "debian", URL: "http://10.20.0.1:8080/images/debian", SHA256: h.image.SHA256,
		Size: h.image.Size, Format: string(store.FormatZstd)}
	if task.Node != "w-1" || task.Action != agentapi.Install || task.Disk != "/dev/vda" || task.Image == nil || *task.Image != wantImage || task.Wipe.Overwrite {
		t.Errorf("task = %+v (image %+v); want w-1 install to /dev/vda of %+v", task, task.Image, wantImage)
	}
	for _, f := range []string{"meta-data", "user-data", "network-config"} {
		if len(task.CIData[f]) == 0 {
			t.Errorf("cidata has no %s", f)
		}
	}
	if !bytes.Contains(task.CIData["user-data"], []byte(agentJoinToken)) {
		t.Errorf("install user-data lacks the join token:\n%s", task.CIData["user-data"])
	}
	if !bytes.Contains(task.CIData["meta-data"], []byte("local-hostname: w-1")) {
		t.Errorf("meta-data = %q", task.CIData["meta-data"])
	}
	if logs := h.events("w-1", node.EventLog); len(logs) == 0 || !strings.Contains(logs[len(logs)-1].Reason, "agent started install: image debian, disk /dev/vda") {
		t.Errorf("no agent-start event: %+v", logs)
	}
}

func TestAgentAPI_WipeTaskHoldsNoByteOfTheJoinToken(t *testing.T) {
	h := newAgentHarness(t)
	if _, err := h.st.UpdateClusterSettings(context.Background(), func(c *node.ClusterSettings) error {
		c.WipeOverwrite = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.wiping("w-1", agentMAC(1))
	code, body := h.do("GET", "/agent/v1/task", h.boot("w-1"), "")
	if code != 200 {
		t.Fatalf("task: %d %s", code, body)
	}
	var task agentapi.Task
	if err := json.Unmarshal(body, &task); err != nil {
		t.Fatal(err)
	}
	if task.Action != agentapi.Wipe || task.Image == nil || task.Image.Name != "debian" || !task.Wipe.Overwrite {
		t.Errorf("task = %+v; want a wipe with overwrite that reinstalls debian", task)
	}
	secret := []byte(agentJoinToken)
	// The token may not appear in any encoding the agent could write: raw, or inside
	// any base64 file, at any alignment.
	if bytes.Contains(body, secret) || bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString(secret)[:20])) {
		t.Errorf("the wipe task's JSON holds the join token")
	}
	for name, f := range task.CIData {
		if bytes.Contains(f, secret) || bytes.Contains(f, []byte("K10agent")) {
			t.Errorf("wipe cidata %s holds the join token:\n%s", name, f)
		}
	}
	if !bytes.Contains(task.CIData["meta-data"], []byte("local-hostname: w-1")) || !bytes.Contains(task.CIData["user-data"], []byte("ssh-ed25519")) {
		t.Errorf("wipe cidata lacks the hostname or SSH keys: %q / %q", task.CIData["meta-data"], task.CIData["user-data"])
	}
}

func TestAgentAPI_ProgressRecordsOneEventPerFivePercentStepPerPhase(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	tok := h.boot("w-1")
	reports := []string{
		`{"phase":"download","bytes":0,"total":1073741824}`,
		`{"phase":"write","percent":0}`,
		`{"phase":"write","percent":1}`,
		`{"phase":"write","percent":4}`,
		`{"phase":"write","percent":5,"message":"writing /dev/vda"}`,
		`{"phase":"write","percent":7}`,
		`{"phase":"write","percent":3}`,                          // late, out of order: no step back
		`{"phase":"write","bytes":536870912,"total":1073741824}`, // 50 %, from bytes
		`{"phase":"write","percent":100}`,
		`{"phase":"verify","percent":100}`,
	}
	for _, r := range reports {
		if code, body := h.do("POST", "/agent/v1/progress", tok, r); code != 204 {
			t.Fatalf("progress %s: %d %s", r, code, body)
		}
	}
	var got []string
	for _, e := range h.events("w-1", node.EventProgress) {
		got = append(got, fmt.Sprintf("%s/%d", strings.Fields(e.Reason)[0], e.Percent))
		if e.Source != "agent" {
			t.Errorf("event source = %q", e.Source)
		}
	}
	want := []string{"download/0", "write/0", "write/5", "write/50", "write/100", "verify/100"}
	if !slices.Equal(got, want) {
		t.Errorf("progress events = %v, want %v", got, want)
	}
	for _, bad := range []string{`{"phase":"dance","percent":5}`, `{"phase":"write","percent":101}`, `{"phase":"write","bytes":-1}`} {
		if code, body := h.do("POST", "/agent/v1/progress", tok, bad); code != 422 {
			t.Errorf("progress %s: %d %s, want 422", bad, code, body)
		}
	}
}

func TestAgentAPI_LogLinesAreCappedCleanedAndRedacted(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	tok := h.boot("w-1")
	lines := []string{
		"user-data has token " + agentJoinToken,
		"cmdline: bootyard.token=" + tok,
		"bell\x07and\x1b[31mcolour\n",
		strings.Repeat("é", 1000), // 2000 bytes: cut at 1 KiB on a rune boundary
	}
	for i := len(lines); i < 150; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	body, _ := json.Marshal(map[string]any{"lines": lines})
	if code, out := h.do("POST", "/agent/v1/log", tok, string(body)); code != 204 {
		t.Fatalf("log: %d %s", code, out)
	}
	logs := h.events("w-1", node.EventLog)
	var agentLines []string
	for _, e := range logs {
		if e.Source == "agent" && !strings.HasPrefix(e.Reason, "agent started") {
			agentLines = append(agentLines, e.Reason)
		}
	}
	if len(agentLines) != maxLogLines {
		t.Fatalf("%d log events, want %d", len(agentLines), maxLogLines)
	}
	all := strings.Join(agentLines, "\n")
	if strings.Contains(all, agentJoinToken) || strings.Contains(all, tok) {
		t.Errorf("a secret reached the events:\n%s", all)
	}
	if agentLines[2] != "bell and [31mcolour" {
		t.Errorf("control characters kept: %q", agentLines[2])
	}
	if long := agentLines[3]; len(long) > maxLogLineBytes+len("…") || !strings.HasSuffix(long, "é…") {
		t.Errorf("long line = %d bytes, ends %q; want at most 1 KiB cut on a rune boundary", len(long), long[len(long)-6:])
	}
	warn := h.events("w-1", node.EventWarning)
	if len(warn) != 1 || !strings.Contains(warn[0].Reason, "dropped 50") {
		t.Errorf("warnings = %+v, want one saying 50 lines were dropped", warn)
	}
	huge, _ := json.Marshal(map[string]any{"lines": []string{strings.Repeat("x", maxAgentBody)}})
	if code, _ := h.do("POST", "/agent/v1/log", tok, string(huge)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over %d bytes: status %d, want 413", maxAgentBody, code)
	}
}

func TestAgentAPI_DoneAndFailedMoveTheNodeAndEndTheToken(t *testing.T) {
	tests := []struct {
		name       string
		wipe       bool
		path, body string
		wantState  node.State
		wantReason string
		retryTo    node.State // after the operator's retry; "" = no retry
	}{
		{"install done", false, "/agent/v1/done", `{"action":"install"}`, node.StateInstalled, "installer agent wrote the image", ""},
		{"wipe done", true, "/agent/v1/done", `{"action":"wipe","wiped":[{"disk":"/dev/vda","size":1073741824,"blank":true}]}`,
			node.StateDeleted, "disks wiped (/dev/vda read back blank) and reinstalled without join data", ""},
		{"install failed, retried", false, "/agent/v1/failed", `{"reason":"checksum mismatch: got 00ff, want abcd"}`,
			node.StateFailed, "install failed: checksum mismatch: got 00ff, want abcd", node.StateRegistered},
		{"wipe failed, retried", true, "/agent/v1/failed", `{"reason":"write /dev/sdb: input/output error"}`,
			node.StateFailed, "wipe failed: write /dev/sdb: input/output error", node.StateWiping},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newAgentHarness(t)
			if tt.wipe {
				h.wiping("w-1", agentMAC(1))
			} else {
				h.provisioning("w-1", agentMAC(1))
			}
			from := h.node("w-1").State
			tok := h.boot("w-1")
			if code, body := h.do("GET", "/agent/v1/task", tok, ""); code != 200 {
				t.Fatalf("task: %d %s", code, body)
			}
			if code, body := h.do("POST", tt.path, tok, tt.body); code != 200 {
				t.Fatalf("%s: %d %s", tt.path, code, body)
			}
			n := h.node("w-1")
			if n.State != tt.wantState || !strings.Contains(n.StateReason, tt.wantReason) {
				t.Errorf("node = %s (%q), want %s (%q)", n.State, n.StateReason, tt.wantState, tt.wantReason)
			}
			tr := h.events("w-1", node.EventTransition)
			if last := tr[len(tr)-1]; last.From != from || last.To != tt.wantState || last.Source != "agent" {
				t.Errorf("last transition = %+v, want %s → %s by the agent", last, from, tt.wantState)
			}
			if code, _ := h.do("POST", "/agent/v1/progress", tok, `{"phase":"write","percent":5}`); code != 401 {
				t.Errorf("token after %s: status %d, want 401", tt.path, code)
			}
			if tt.retryTo != "" {
				// What the operator's retry does (web owns the endpoint).
				if _, err := h.st.UpdateNode(context.Background(), "w-1", func(n *node.Node) ([]node.Event, error) {
					to, err := n.RetryState()
					if err != nil {
						return nil, err
					}
					ev, err := n.Transition(to, "retry requested", "test", time.Now().UTC())
					return []node.Event{ev}, err
				}); err != nil {
					t.Fatal(err)
				}
				if got := h.node("w-1").State; got != tt.retryTo {
					t.Errorf("retry: node %s; want %s", got, tt.retryTo)
				}
			}
		})
	}
}

func TestAgentAPI_DoneForTheOtherActionIsRefused(t *testing.T) {
	h := newAgentHarness(t)
	h.wiping("w-1", agentMAC(1))
	tok := h.boot("w-1")
	code, body := h.do("POST", "/agent/v1/done", tok, `{"action":"install"}`)
	if code != http.StatusConflict || !strings.Contains(string(body), `"field":"action"`) {
		t.Errorf("install done with a wipe token: %d %s, want 409 on field action", code, body)
	}
	if got := h.node("w-1").State; got != node.StateWiping {
		t.Errorf("node = %s, want still wiping", got)
	}
}

func TestAgentWatchdog_SilentAgentFailsItsNode(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-talks", agentMAC(1))
	h.provisioning("w-silent", agentMAC(2))
	h.provisioning("w-never-started", agentMAC(3))
	talks, silent := h.boot("w-talks"), h.boot("w-silent")
	h.boot("w-never-started") // its machine never fetched the task: not an agent crash
	for _, tok := range []string{talks, silent} {
		if code, _ := h.do("GET", "/agent/v1/task", tok, ""); code != 200 {
			t.Fatal("task")
		}
	}
	h.do("POST", "/agent/v1/progress", silent, `{"phase":"write","percent":40}`)
	for i := 0; i < 5; i++ {
		h.clock.advance(5 * time.Minute)
		h.do("POST", "/agent/v1/progress", talks, `{"phase":"write","percent":10}`)
	}
	h.agent.failSilent(context.Background())
	states := map[string]node.State{}
	for _, name := range []string{"w-talks", "w-silent", "w-never-started"} {
		states[name] = h.node(name).State
	}
	want := map[string]node.State{"w-talks": node.StateProvisioning, "w-silent": node.StateFailed, "w-never-started": node.StateProvisioning}
	for name, st := range want {
		if states[name] != st {
			t.Errorf("%s = %s, want %s", name, states[name], st)
		}
	}
	if r := h.node("w-silent").StateReason; !strings.Contains(r, "stopped reporting") || !strings.Contains(r, "during write") {
		t.Errorf("reason = %q", r)
	}
}

func TestAgentIPXE_ScriptsBootTheAgentWithATokenThatWorks(t *testing.T) {
	h := newAgentHarness(t)
	ctx := context.Background()
	h.importSeen(node.Node{Name: "w-new", MACs: []node.MAC{agentMAC(1)}, Role: node.RoleWorker})
	h.wiping("w-wipe", agentMAC(2))
	h.importSeen(node.Node{Name: "w-noimage", MACs: []node.MAC{agentMAC(3)}, Role: node.RoleWorker, Image: "gone"})
	tests := []struct {
		name       string
		mac        node.MAC
		wantAction agentapi.Action // "" = no agent boot
		wantText   string
	}{
		{"registered node boots the agent to install", agentMAC(1), agentapi.Install, "kernel http://10.20.0.1:8080/agent/vmlinuz initrd=initramfs.gz"},
		{"wiping node boots the agent to wipe", agentMAC(2), agentapi.Wipe, "booting the agent: wipe every disk"},
		{"node whose image is gone waits with the reason and stays registered", agentMAC(3), "", "cannot start the install"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, script := h.do("GET", "/boot.ipxe?mac="+strings.ReplaceAll(tt.mac.String(), ":", "-")+"&platform=efi&arch=x86_64", "", "")
			if code != 200 || !strings.Contains(string(script), tt.wantText) {
				t.Fatalf("script: %d\n%s\nwant it to contain %q", code, script, tt.wantText)
			}
			m := tokenOnCmdline.FindSubmatch(script)
			if tt.wantAction == "" {
				if m != nil {
					t.Fatalf("a token was minted for a node with nothing to boot:\n%s", script)
				}
				if n, err := h.st.NodeByMAC(ctx, tt.mac); err != nil || n.State != node.StateRegistered {
					t.Fatalf("a node with nothing to install left registered: %v %v", n.State, err)
				}
				return
			}
			if m == nil {
				t.Fatalf("no token in the script:\n%s", script)
			}
			code, body := h.do("GET", "/agent/v1/task", string(m[1]), "")
			var task agentapi.Task
			if code != 200 || json.Unmarshal(body, &task) != nil || task.Action != tt.wantAction {
				t.Errorf("task with the script's token: %d %s; want a %s task", code, body, tt.wantAction)
			}
		})
	}
	if got := h.node("w-new").State; got != node.StateProvisioning {
		t.Errorf("registered node after its script: %s, want provisioning", got)
	}
}

func TestAgentBootTarget_AnAgentThatKeepsRestartingFailsTheNode(t *testing.T) {
	h := newAgentHarness(t)
	h.provisioning("w-1", agentMAC(1))
	// Scripts whose agent never fetched its task (a failed download, a retried chain)
	// are not crashes.
	h.boot("w-1")
	h.boot("w-1")
	for i := 0; i < maxAgentRestarts; i++ {
		tok := h.boot("w-1")
		if code, body := h.do("GET", "/agent/v1/task", tok, ""); code != 200 {
			t.Fatalf("boot %d: task %d %s", i+1, code, body)
		}
		if got := h.node("w-1").State; got != node.StateProvisioning {
			t.Fatalf("after %d unreported agent starts: node %s, want still provisioning", i+1, got)
		}
	}
	n := h.node("w-1")
	if _, err := h.agent.BootTarget(context.Background(), n, agentMAC(1), loopback); !errors.Is(err, node.ErrRefused) {
		t.Fatalf("boot after %d vanished agents: err = %v, want ErrRefused", maxAgentRestarts, err)
	}
	n = h.node("w-1")
	if n.State != node.StateFailed || n.FailedFrom != node.StateProvisioning || !strings.Contains(n.StateReason, "started 3 times and never reported") {
		t.Errorf("node = %s from %s (%q); want failed from provisioning saying the agent keeps restarting", n.State, n.FailedFrom, n.StateReason)
	}
	if w := h.events("w-1", node.EventWarning); len(w) != maxAgentRestarts-1 {
		t.Errorf("%d restart warnings, want %d: %+v", len(w), maxAgentRestarts-1, w)
	}
}

func TestAgentBootTarget_AReportingAgentResetsTheRestartCount(t *testing.T) {
	h := newAgentHarness(t)
	h.wiping("w-1", agentMAC(1))
	for round := 0; round < 2; round++ {
		for i := 0; i < maxAgentRestarts-1; i++ { // just under the limit, twice
			tok := h.boot("w-1")
			h.do("GET", "/agent/v1/task", tok, "")
		}
		tok := h.boot("w-1")
		h.do("GET", "/agent/v1/task", tok, "")
		if code, body := h.do("POST", "/agent/v1/failed", tok, `{"reason":"disk missing"}`); code != 200 {
			t.Fatalf("failed: %d %s", code, body)
		}
		h.transition("w-1", node.StateWiping) // the operator retries
	}
	if got := h.node("w-1").State; got != node.StateWiping {
		t.Errorf("node = %s, want wiping: reported failures are not restarts", got)
	}
}
