package machine

import (
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestAgentFirmware_SecureBootIsStoredOnTheNode(t *testing.T) {
	tests := []struct {
		name, body string
		want       *bool
		event      string
	}{
		{"UEFI with Secure Boot on", `{"uefi":true,"secureBoot":true}`, ptr(true), "Secure Boot on"},
		{"UEFI with Secure Boot off", `{"uefi":true,"secureBoot":false}`, ptr(false), "Secure Boot off"},
		{"BIOS", `{"uefi":false,"secureBoot":false}`, nil, "BIOS"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newAgentHarness(t)
			name := "fw-" + string(rune('a'+i))
			h.provisioning(name, agentMAC(byte(0x60+i)))
			tok := h.boot(name)
			// From another address the node's token is refused and nothing is stored.
			if code, _ := h.doFrom(clientFrom(attackerAddr), "POST", "/agent/v1/firmware", tok, tt.body); code != 401 {
				t.Fatalf("foreign firmware report: %d, want 401", code)
			}
			if n := h.node(name); n.SecureBoot != nil {
				t.Fatalf("a foreign report set Secure Boot to %v", *n.SecureBoot)
			}
			if code, body := h.do("POST", "/agent/v1/firmware", tok, tt.body); code != 204 {
				t.Fatalf("firmware report: %d %s", code, body)
			}
			n := h.node(name)
			if (n.SecureBoot == nil) != (tt.want == nil) || (n.SecureBoot != nil && *n.SecureBoot != *tt.want) {
				t.Fatalf("node.SecureBoot = %v, want %v", n.SecureBoot, tt.want)
			}
			found := false
			for _, e := range h.events(name, node.EventProgress) {
				found = found || (e.Source == "agent" && strings.Contains(e.Reason, tt.event))
			}
			if !found {
				t.Errorf("no agent event saying %q", tt.event)
			}
		})
	}
	h := newAgentHarness(t)
	h.provisioning("fw-bad", agentMAC(0x6f))
	tok := h.boot("fw-bad")
	if code, _ := h.do("POST", "/agent/v1/firmware", tok, `{"uefi":true,"secureboot":"yes"}`); code != 400 {
		t.Errorf("malformed firmware report: %d, want 400", code)
	}
}

func ptr[T any](v T) *T { return &v }
