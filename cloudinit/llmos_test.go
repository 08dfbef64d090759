package cloudinit_test

import (
	"strings"
	"testing"

	"github.com/bootyard/bootyard/cloudinit"
)

// TestLLMOSPlan_AServerURLStoredWithATrailingSlashIsPingedWithoutADoubleSlash covers a URL
// stored before the API normalised it: k3s never answers "pong" on //ping, so the node
// would wait for 45 minutes and give up.
func TestLLMOSPlan_AServerURLStoredWithATrailingSlashIsPingedWithoutADoubleSlash(t *testing.T) {
	s := fixtureSettings()
	s.ServerURL = "https://10.20.0.11:6443/"
	plan, err := cloudinit.LLMOS{}.Plan(fixtureNodes(t)["server"], s, testToken)
	if err != nil {
		t.Fatal(err)
	}
	if plan.PingURL != "https://10.20.0.11:6443/ping" {
		t.Errorf("PingURL = %q", plan.PingURL)
	}
	if cfg := plan.Files[0].Content; !strings.Contains(cfg, "server: https://10.20.0.11:6443\n") {
		t.Errorf("config.yaml server is not trimmed:\n%s", cfg)
	}
	if plan.DoneStamp != "/var/lib/llmos/bootstrapped" || plan.Unit != "llmos.service" {
		t.Errorf("the join's outcome is read from %q of %q, want LLMOS's bootstrapped stamp and llmos.service", plan.DoneStamp, plan.Unit)
	}
}
