package machine

import (
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// FuzzAgentReports feeds arbitrary bodies from a machine to the agent's report
// endpoints: none may fail the server (5xx), move the node, or put a secret in an event.
func FuzzAgentReports(f *testing.F) {
	for _, seed := range []string{
		`{"phase":"write","bytes":1,"total":2,"percent":50,"message":"ok"}`,
		`{"phase":"write","bytes":9223372036854775807,"total":1}`,
		`{"lines":["a","b"]}`,
		`{"lines":[""]}`,
		`{"lines":null}`,
		`{"phase":"wipe","percent":-1}`,
		`{"action":"wipe"}`,
		`[]`, `null`, `{`, "\xff\xfe",
		`{"lines":["` + agentJoinToken + `"]}`,
	} {
		f.Add(seed)
	}
	h := newAgentHarness(f)
	h.provisioning("w-1", agentMAC(1))
	tok := h.boot("w-1")
	f.Fuzz(func(t *testing.T, body string) {
		h.t = t
		for _, path := range []string{"/agent/v1/progress", "/agent/v1/log"} {
			code, out := h.do("POST", path, tok, body)
			if code >= 500 {
				t.Fatalf("POST %s %q: %d %s", path, body, code, out)
			}
		}
		if st := h.node("w-1").State; st != node.StateProvisioning {
			t.Fatalf("reports moved the node to %s", st)
		}
		for _, e := range h.events("w-1", node.EventLog) {
			if strings.Contains(e.Reason, agentJoinToken) || strings.Contains(e.Reason, tok) {
				t.Fatalf("secret in event %q", e.Reason)
			}
		}
	})
}
