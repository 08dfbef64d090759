package machine

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// deletingInUninstallMode puts a node where the host's report is expected: deleting,
// mode uninstall.
func (x *noCloudHarness) deletingInUninstallMode(name, mac string) {
	x.t.Helper()
	x.importAt(name, mac, node.RoleServer, node.StateDeleting)
	if _, err := x.st.UpdateNode(context.Background(), name, func(n *node.Node) ([]node.Event, error) {
		n.DeleteMode = node.DeleteUninstall
		return nil, nil
	}); err != nil {
		x.t.Fatal(err)
	}
}

// TestUninstallReport_OnlyTheNodeItselfReports sends the host script's report from the
// node's own address and from an attacker's, with the right and a wrong key. Only the
// node with its key is recorded; every refusal leaves the node's report empty and no
// "uninstall report" event.
func TestUninstallReport_OnlyTheNodeItselfReports(t *testing.T) {
	const mac = "52:54:00:dd:10:01"
	tests := []struct {
		name     string
		from     string
		lease    string // the node's DHCP lease; "" none
		badKey   bool
		noKey    bool
		state    node.State
		reinst   bool // deleting, but in reinstall mode
		status   string
		wantCode int
		wantRC   int // when recorded
	}{
		{name: "the node with its key: success", from: "127.0.0.1", status: "0", wantCode: 204, wantRC: 0},
		{name: "the node with its key: failure", from: "127.0.0.1", status: "4", wantCode: 204, wantRC: 4},
		{name: "the node with a wrong key", from: "127.0.0.1", badKey: true, status: "0", wantCode: 403},
		{name: "the node without a key", from: "127.0.0.1", noKey: true, status: "0", wantCode: 403},
		{name: "another address with the node's key", from: attackerAddr, status: "0", wantCode: 403},
		{name: "another address while the node holds a lease", from: attackerAddr, lease: nodeAddr, status: "0", wantCode: 403},
		{name: "a deletion that failed while the host was at work", from: "127.0.0.1", state: node.StateFailed, status: "0", wantCode: 204},
		{name: "a node not being deleted", from: "127.0.0.1", state: node.StateActive, status: "0", wantCode: 409},
		{name: "a node whose install failed", from: "127.0.0.1", state: node.StateFailed, reinst: true, status: "0", wantCode: 409},
		{name: "a node being deleted in reinstall mode", from: "127.0.0.1", reinst: true, status: "0", wantCode: 409},
		{name: "a status that is not a number", from: "127.0.0.1", status: "ok", wantCode: 400},
		{name: "a status out of range", from: "127.0.0.1", status: "256", wantCode: 400},
		{name: "a negative status", from: "127.0.0.1", status: "-1", wantCode: 400},
		{name: "no status", from: "127.0.0.1", status: "", wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newNoCloudHarness(t)
			switch {
			case tt.state == node.StateFailed && !tt.reinst:
				// The deletion's uninstall step gave up waiting.
				x.deletingInUninstallMode("cp-2", mac)
				if _, err := x.st.UpdateNode(context.Background(), "cp-2", func(n *node.Node) ([]node.Event, error) {
					ev, err := n.Transition(node.StateFailed, "removal from the cluster stopped at uninstall", "cluster", time.Now().UTC())
					return []node.Event{ev}, err
				}); err != nil {
					t.Fatal(err)
				}
			case tt.state == node.StateFailed:
				// Failed from provisioning, in uninstall mode from an old deletion request.
				x.importAt("cp-2", mac, node.RoleServer, node.StateFailed)
				if _, err := x.st.UpdateNode(context.Background(), "cp-2", func(n *node.Node) ([]node.Event, error) {
					n.DeleteMode = node.DeleteUninstall
					return nil, nil
				}); err != nil {
					t.Fatal(err)
				}
			case tt.state != "":
				x.importAt("cp-2", mac, node.RoleServer, tt.state)
			case tt.reinst:
				x.importAt("cp-2", mac, node.RoleServer, node.StateDeleting)
			default:
				x.deletingInUninstallMode("cp-2", mac)
			}
			if tt.lease != "" {
				x.lease(tt.lease, mac)
			}
			before := x.node("cp-2").State
			hdr := x.keyHeader("cp-2")
			if tt.badKey {
				hdr.Set(cloudinit.CallbackKeyHeader, "0123456789abcdef0123456789abcdef")
			}
			if tt.noKey {
				hdr = nil
			}
			form := url.Values{"status": {tt.status}, "log": {"bootyard: removed /etc/llmos/config.yaml\n"}}
			code, body := x.do(clientFrom(tt.from), http.MethodPost, "/nocloud/"+mac+"/uninstall-report", hdr, form)
			if code != tt.wantCode {
				t.Fatalf("uninstall-report from %s: %d, want %d\n%s", tt.from, code, tt.wantCode, body)
			}
			rep := x.node("cp-2").UninstallReport
			events := x.events("cp-2")
			if tt.wantCode != 204 {
				if rep != nil {
					t.Errorf("refused report recorded: %+v", rep)
				}
				if strings.Contains(events, "uninstall report") {
					t.Errorf("refused report left an event:\n%s", events)
				}
				return
			}
			if rep == nil || rep.ExitStatus != tt.wantRC || rep.From != tt.from || rep.At.IsZero() {
				t.Fatalf("report = %+v, want exit status %d from %s", rep, tt.wantRC, tt.from)
			}
			if want := fmt.Sprintf("uninstall report from %s: exit status %d", tt.from, tt.wantRC); !strings.Contains(events, want) {
				t.Errorf("events lack %q:\n%s", want, events)
			}
			if st := x.node("cp-2").State; st != before {
				t.Errorf("the report moved the node %s → %s: only the deletion's step decides", before, st)
			}
		})
	}
}

// TestUninstallReport_LogTailIsBoundedAndClean posts a failure with a long log holding the
// token and escape codes: the report keeps the last lines, printable, without the token.
func TestUninstallReport_LogTailIsBoundedAndClean(t *testing.T) {
	const mac = "52:54:00:dd:10:02"
	x := newNoCloudHarness(t)
	x.deletingInUninstallMode("cp-3", mac)
	var tail strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&tail, "bootyard: step %02d %s\n", i, strings.Repeat("x", 400))
	}
	tail.WriteString("k3s-uninstall: token " + noCloudToken + "\n")
	tail.WriteString("bootyard: \x1b[31mcannot remove /etc/llmos/config.yaml\x1b[0m\n")
	form := url.Values{"status": {"4"}, "log": {tail.String()}}
	if code, body := x.do(clientFrom("127.0.0.1"), http.MethodPost, "/nocloud/"+mac+"/uninstall-report", x.keyHeader("cp-3"), form); code != 204 {
		t.Fatalf("uninstall-report: %d\n%s", code, body)
	}
	rep := x.node("cp-3").UninstallReport
	if rep == nil || rep.OK() {
		t.Fatalf("report = %+v, want a failure", rep)
	}
	if len(rep.Log) != maxJoinLogLines {
		t.Fatalf("kept %d lines, want %d: %q", len(rep.Log), maxJoinLogLines, rep.Log)
	}
	for _, l := range rep.Log {
		if len([]rune(l)) > maxJoinLogLineLen+1 || strings.ContainsRune(l, 0x1b) || strings.Contains(l, noCloudToken) {
			t.Errorf("line not bounded and clean: %q", l)
		}
	}
	if got := rep.Log[len(rep.Log)-1]; !strings.Contains(got, "cannot remove /etc/llmos/config.yaml") {
		t.Errorf("last line = %q, want the failure kept", got)
	}
	if got := rep.Log[len(rep.Log)-2]; got != "k3s-uninstall: token [redacted]" {
		t.Errorf("token line = %q, want it redacted", got)
	}
	if !strings.Contains(x.events("cp-3"), "cannot remove /etc/llmos/config.yaml") {
		t.Errorf("the log tail is not in the events:\n%s", x.events("cp-3"))
	}
}
