package machine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The regression tests of issue 11, from the attacker's side: the node is 127.0.0.2 (its
// DHCP lease, as Bootyard's own DHCP would record it), the attacker 127.0.0.3, a
// different source address on the same real listener. Each test first shows the node
// still gets everything, then that the attacker gets no secret and changes nothing.

const (
	nodeAddr     = "127.0.0.2"
	attackerAddr = "127.0.0.3"
)

// base64Run finds the stretches of a body that could be base64 (JSON []byte fields are).
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{12,}={0,2}`)

// leaked reports which of secrets appears in body, raw or inside any base64 in it.
func leaked(body []byte, secrets ...string) string {
	texts := [][]byte{body}
	for _, run := range base64Run.FindAll(body, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			if b, err := enc.DecodeString(string(run)); err == nil {
				texts = append(texts, b)
			}
		}
	}
	for _, s := range secrets {
		for _, t := range texts {
			if s != "" && strings.Contains(string(t), s) {
				return s
			}
		}
	}
	return ""
}

// leaseTo records an active lease of ip to mac, as Bootyard's full-mode DHCP does.
func (h *agentHarness) leaseTo(ip string, mac node.MAC) {
	h.t.Helper()
	if err := h.st.PutLeases(context.Background(), store.Lease{IP: netip.MustParseAddr(ip), MAC: mac,
		State: store.LeaseActive, Expires: time.Now().Add(time.Hour)}); err != nil {
		h.t.Fatal(err)
	}
}

func scriptPath(mac node.MAC) string {
	return "/boot.ipxe?mac=" + strings.ReplaceAll(mac.String(), ":", "-") + "&platform=efi&arch=x86_64"
}

// nodeSnapshot is what a foreign request must not change.
type nodeSnapshot struct {
	state       node.State
	generation  int
	transitions int
	lastSeen    time.Time
}

func (h *agentHarness) snapshot(name string) nodeSnapshot {
	h.t.Helper()
	n := h.node(name)
	return nodeSnapshot{state: n.State, generation: n.Generation, transitions: len(h.events(name, node.EventTransition)), lastSeen: n.Boot.LastSeen}
}

// Finding 1: a registered node's script, fetched by MAC from another address, minted a
// token that fetched the join token, moved the node and revoked the real machine's token.
func TestSecurity_ForeignScriptRequestGetsNoTokenAndChangesNothing(t *testing.T) {
	h := newAgentHarness(t)
	mac := agentMAC(1)
	if _, err := h.st.ImportNode(context.Background(), node.Node{Name: "w-1", MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	h.leaseTo(nodeAddr, mac)
	attacker, own := clientFrom(attackerAddr), clientFrom(nodeAddr)

	// Before the node boots: the attacker asks (often: three were enough to fail it).
	before := h.snapshot("w-1")
	for range 4 {
		code, script := h.doFrom(attacker, "GET", scriptPath(mac), "", "")
		if code != 200 || tokenOnCmdline.Match(script) || !strings.Contains(string(script), "not verified") {
			t.Fatalf("attacker's script: %d\n%s\nwant a wait script without a token", code, script)
		}
		if s := leaked(script, agentJoinToken); s != "" {
			t.Fatalf("attacker's script holds %q", s)
		}
	}
	if after := h.snapshot("w-1"); after != before {
		t.Fatalf("the attacker's requests changed the node: %+v → %+v", before, after)
	}
	if w := h.events("w-1", node.EventWarning); len(w) != 1 || !strings.Contains(w[0].Reason, "withheld from "+attackerAddr) {
		t.Errorf("warnings = %+v, want one saying the script was withheld from %s", w, attackerAddr)
	}

	// The node itself gets its install script, its task and its user-data.
	code, script := h.doFrom(own, "GET", scriptPath(mac), "", "")
	m := tokenOnCmdline.FindSubmatch(script)
	if code != 200 || m == nil {
		t.Fatalf("node's own script: %d\n%s\nwant the install script with a token", code, script)
	}
	tok := string(m[1])
	if st := h.node("w-1").State; st != node.StateProvisioning {
		t.Fatalf("node after its own script: %s, want provisioning", st)
	}
	code, body := h.doFrom(own, "GET", "/agent/v1/task", tok, "")
	var task agentapi.Task
	if code != 200 || json.Unmarshal(body, &task) != nil || !strings.Contains(string(task.CIData[cloudinit.FileUserData]), agentJoinToken) {
		t.Fatalf("node's own task: %d %s; want its user-data with the join token", code, body)
	}
	code, body = h.doFrom(own, "GET", "/nocloud/"+mac.String()+"/user-data", "", "")
	if code != 200 || !strings.Contains(string(body), agentJoinToken) {
		t.Fatalf("node's own user-data: %d; want the join token\n%s", code, body)
	}

	// The attacker, now that the node is provisioning: no token, nothing changed, and
	// the node's token is neither usable from the attacker's address nor revoked.
	before = h.snapshot("w-1")
	tests := []struct {
		name, method, path, token, body string
		wantCode                        int
	}{
		{"install script by MAC", "GET", scriptPath(mac), "", "", 200},
		{"task with the node's token", "GET", "/agent/v1/task", tok, "", 401},
		{"progress with the node's token", "POST", "/agent/v1/progress", tok, `{"phase":"write","percent":50}`, 401},
		{"failed with the node's token", "POST", "/agent/v1/failed", tok, `{"reason":"x"}`, 401},
		{"done with the node's token", "POST", "/agent/v1/done", tok, `{"action":"install"}`, 401},
		{"user-data by MAC", "GET", "/nocloud/" + mac.String() + "/user-data", "", "", 403},
		{"user-data by lease lookup", "GET", "/nocloud/user-data", "", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.doFrom(attacker, tt.method, tt.path, tt.token, tt.body)
			if code != tt.wantCode {
				t.Errorf("%s %s from %s: %d %s, want %d", tt.method, tt.path, attackerAddr, code, body, tt.wantCode)
			}
			if s := leaked(body, agentJoinToken, tok); s != "" {
				t.Errorf("%s %s from %s leaked %q:\n%s", tt.method, tt.path, attackerAddr, s, body)
			}
			if tokenOnCmdline.Match(body) {
				t.Errorf("a token was minted for the attacker:\n%s", body)
			}
		})
	}
	if after := h.snapshot("w-1"); after != before {
		t.Errorf("the attacker's requests changed the node: %+v → %+v", before, after)
	}
	if code, body := h.doFrom(own, "GET", "/agent/v1/task", tok, ""); code != 200 {
		t.Errorf("the node's token after the attacker's tries: %d %s, want it still valid", code, body)
	}
}

// Finding 2: the node's wipe token from another address forged done → deleted with no
// disk touched. Now the token works only from the node, and deleted needs the agent's
// read-back of every disk, blank.
func TestSecurity_DeletedOnlyFromTheBoundAgentWithABlankReadBack(t *testing.T) {
	h := newAgentHarness(t)
	mac := agentMAC(2)
	h.wiping("w-2", mac)
	h.leaseTo(nodeAddr, mac)
	attacker, own := clientFrom(attackerAddr), clientFrom(nodeAddr)

	code, script := h.doFrom(attacker, "GET", scriptPath(mac), "", "")
	if code != 200 || tokenOnCmdline.Match(script) {
		t.Fatalf("attacker's wipe script: %d\n%s\nwant no token", code, script)
	}
	code, script = h.doFrom(own, "GET", scriptPath(mac), "", "")
	m := tokenOnCmdline.FindSubmatch(script)
	if code != 200 || m == nil {
		t.Fatalf("node's wipe script: %d\n%s", code, script)
	}
	tok := string(m[1])
	if code, body := h.doFrom(own, "GET", "/agent/v1/task", tok, ""); code != 200 || leaked(body, agentJoinToken) != "" {
		t.Fatalf("node's wipe task: %d, or it holds the join token:\n%s", code, body)
	}

	blank := `{"action":"wipe","wiped":[{"disk":"/dev/vda","size":1073741824,"blank":true}]}`
	tests := []struct {
		name     string
		from     *http.Client
		body     string
		wantCode int
		want     string // in the answer
	}{
		{"attacker forges done with the node's token", attacker, blank, 401, "another address"},
		{"node's done without a read-back", own, `{"action":"wipe"}`, 422, "read-back"},
		{"node's done with a disk not blank", own, `{"action":"wipe","wiped":[{"disk":"/dev/vda","size":1073741824,"blank":false,"found":"a partition table with 2 partitions"}]}`, 422, "not blank"},
		{"node's done with a nameless read-back", own, `{"action":"wipe","wiped":[{"blank":true}]}`, 422, "names no disk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.doFrom(tt.from, "POST", "/agent/v1/done", tok, tt.body)
			if code != tt.wantCode || !strings.Contains(string(body), tt.want) {
				t.Errorf("done: %d %s, want %d containing %q", code, body, tt.wantCode, tt.want)
			}
			if st := h.node("w-2").State; st != node.StateWiping {
				t.Fatalf("node is %s, want still wiping", st)
			}
		})
	}
	if code, body := h.doFrom(own, "POST", "/agent/v1/done", tok, blank); code != 200 {
		t.Fatalf("node's done with a blank read-back: %d %s", code, body)
	}
	if n := h.node("w-2"); n.State != node.StateDeleted || !strings.Contains(n.StateReason, "/dev/vda read back blank") {
		t.Errorf("node = %s (%q), want deleted with the read-back in the reason", n.State, n.StateReason)
	}
}

// Finding 3: NoCloud for a static-IP node answered any address while the node had no
// active lease. Also: an address Bootyard cannot verify gets no join data unless the
// operator says to trust it.
func TestSecurity_NoCloudJoinDataOnlyToTheNodesOwnAddress(t *testing.T) {
	const mac = "52:54:00:dd:00:01"
	tests := []struct {
		name      string
		ip        string // the node's static IP; "" none
		lease     string // the node's lease; "" none
		trust     bool   // --trust-unverified-machines
		from      string
		wantCode  int
		wantToken bool
		wantEvent string
	}{
		{name: "static IP, no lease: the node itself", ip: nodeAddr + "/8", from: nodeAddr, wantCode: 200, wantToken: true},
		{name: "static IP, no lease: another address is refused", ip: nodeAddr + "/8", from: attackerAddr, wantCode: 403,
			wantEvent: "has the static IP " + nodeAddr},
		{name: "static IP, refused even when trusting unverified", ip: nodeAddr + "/8", trust: true, from: attackerAddr, wantCode: 403},
		{name: "leased: another address is refused", lease: nodeAddr, from: attackerAddr, wantCode: 403, wantEvent: "holds the lease on " + nodeAddr},
		{name: "nothing known: served without join data", from: attackerAddr, wantCode: 200, wantEvent: "join data withheld from " + attackerAddr},
		{name: "nothing known, trusting unverified: join data", trust: true, from: attackerAddr, wantCode: 200, wantToken: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []harnessOption
			if tt.trust {
				opts = append(opts, trustingUnverified)
			}
			x := newNoCloudHarness(t, opts...)
			x.importAt("w-3", mac, node.RoleWorker, node.StateProvisioning)
			// importAt puts the node at 127.0.0.1 in the DHCP record; these cases are
			// about what Bootyard knows beside that, from other addresses.
			if tt.ip != "" {
				if _, err := x.st.UpdateNode(context.Background(), "w-3", func(n *node.Node) ([]node.Event, error) {
					n.IP = netip.MustParsePrefix(tt.ip)
					return nil, nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.lease != "" {
				x.lease(tt.lease, mac)
			}
			before := x.node("w-3")
			code, body := x.do(clientFrom(tt.from), http.MethodGet, "/nocloud/"+mac+"/user-data", nil, nil)
			if code != tt.wantCode {
				t.Errorf("user-data from %s: %d, want %d\n%s", tt.from, code, tt.wantCode, body)
			}
			if got := leaked([]byte(body), noCloudToken) != ""; got != tt.wantToken {
				t.Errorf("join token in the answer = %v, want %v\n%s", got, tt.wantToken, body)
			}
			if tt.wantEvent != "" && !strings.Contains(x.events("w-3"), tt.wantEvent) {
				t.Errorf("events lack %q:\n%s", tt.wantEvent, x.events("w-3"))
			}
			if after := x.node("w-3"); after.State != before.State || after.Generation != before.Generation {
				t.Errorf("node changed: %s/%d → %s/%d", before.State, before.Generation, after.State, after.Generation)
			}
			// Callbacks with the node's key from an address that is not the node's:
			// no phone-home, no join turn.
			if !tt.wantToken {
				for _, cb := range []struct{ method, path string }{{"POST", "phone-home"}, {"GET", "join-turn"}} {
					code, _ := x.do(clientFrom(tt.from), cb.method, "/nocloud/"+mac+"/"+cb.path, x.keyHeader("w-3"),
						map[string][]string{"status": {"installed"}})
					if code != http.StatusForbidden {
						t.Errorf("%s from %s with the node's key: %d, want 403", cb.path, tt.from, code)
					}
				}
				if st := x.node("w-3").State; st != node.StateProvisioning {
					t.Errorf("a callback from %s moved the node to %s", tt.from, st)
				}
			}
		})
	}
}

// Finding 6, the machine side: the once-only event record keyed by requester stays
// bounded however many addresses ask.
func TestSecurity_PerRequesterRecordsAreBounded(t *testing.T) {
	o := newOnceKeys(64)
	for i := range 10_000 {
		o.first(fmt.Sprintf("w-1|10.%d.%d.%d|1", i>>16, (i>>8)&0xff, i&0xff))
	}
	if o.len() > 64 {
		t.Errorf("%d keys held, want at most 64", o.len())
	}
	if !o.first("new") || o.first("new") {
		t.Error("a bounded set must still answer first once per key")
	}
}

// Where Bootyard knows no address for the node (another DHCP server, no static IP), the
// node waits without a token and its events say why and which setting would change it.
func TestSecurity_UnverifiableNodeWaitsAndItsEventsSayWhy(t *testing.T) {
	h := newAgentHarness(t)
	mac := agentMAC(4)
	if _, err := h.st.ImportNode(context.Background(), node.Node{Name: "w-4", MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	code, script := h.do("GET", scriptPath(mac), "", "")
	if code != 200 || tokenOnCmdline.Match(script) || !strings.Contains(string(script), "asking again") {
		t.Fatalf("script: %d\n%s\nwant a wait script without a token", code, script)
	}
	if st := h.node("w-4").State; st != node.StateRegistered {
		t.Errorf("node is %s, want still registered", st)
	}
	w := h.events("w-4", node.EventWarning)
	if len(w) != 1 || !strings.Contains(w[0].Reason, "cannot verify") || !strings.Contains(w[0].Reason, "--trust-unverified-machines") {
		t.Errorf("warnings = %+v, want one saying the address cannot be verified and naming the setting", w)
	}
}

// A node whose script holds no secret (installed, active...) still keeps its boot record
// to itself: a request from another address gets the local-boot script but moves neither
// the node's last-seen address nor its boot events; the node's own request does.
func TestSecurity_ForeignRequestForAnInstalledNodesScriptRecordsNoBoot(t *testing.T) {
	h := newAgentHarness(t)
	mac := agentMAC(7)
	h.provisioning("w-7", mac)
	h.transition("w-7", node.StateInstalled)
	h.leaseTo(nodeAddr, mac)
	attacker, own := clientFrom(attackerAddr), clientFrom(nodeAddr)
	before := h.node("w-7").Boot

	for range 3 {
		if code, script := h.doFrom(attacker, "GET", scriptPath(mac), "", ""); code != 200 || tokenOnCmdline.Match(script) {
			t.Fatalf("attacker's local-boot script: %d\n%s", code, script)
		}
	}
	if code, _ := h.doFrom(own, "GET", scriptPath(mac), "", ""); code != 200 {
		t.Fatalf("node's own script: %d", code)
	}
	// Boot writes are queued in order: once the node's own is stored, the attacker's
	// earlier ones have been handled too.
	waitUntil(t, 10*time.Second, func() string { return "the node's own boot is recorded" },
		func() bool { return h.node("w-7").Boot.IP == nodeAddr && len(h.events("w-7", node.EventBoot)) > 0 })
	if got := h.node("w-7").Boot; !got.LastSeen.After(before.LastSeen) {
		t.Errorf("boot record = %+v, want the node's own boot after %v", got, before.LastSeen)
	}
	boots := h.events("w-7", node.EventBoot)
	if len(boots) != 1 {
		t.Errorf("boot events = %d (%+v), want 1: the node's own", len(boots), boots)
	}
	for _, ev := range h.events("w-7", "") {
		if strings.Contains(ev.Reason+ev.Source, attackerAddr) {
			t.Errorf("an event names the attacker's address: %+v", ev)
		}
	}
}
