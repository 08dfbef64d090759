package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// limitsMetricsToken reads /metrics of the server TestServe_DiscoveredMachines… starts.
const limitsMetricsToken = "limits-test-metrics-token"

// TestServe_DiscoveredMachinesStayUnderTheConfiguredCap boots 20 made-up MACs against a
// server whose cap (from the environment, as BOOTYARD_MAX_DISCOVERED) is 5, and reads the
// result from /metrics: 5 discovered nodes, 15 evictions.
func TestServe_DiscoveredMachinesStayUnderTheConfiguredCap(t *testing.T) {
	bin := buildBinary(t)
	addr := freePort(t)
	t.Setenv("BOOTYARD_MAX_DISCOVERED", "5")
	// A negative limit is refused at start, with the setting named.
	out, err := exec.Command(bin, "serve", "--data", t.TempDir(), "--listen", freePort(t), "--max-node-event-bytes", "-1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "max node event bytes") {
		t.Fatalf("serve with a negative limit: %v\n%s", err, out)
	}

	startServer(t, bin, t.TempDir(), addr, "--max-node-events", "100", "--metrics-token", limitsMetricsToken)
	base := "http://" + addr
	for i := range 20 {
		resp, err := http.Get(fmt.Sprintf("%s/boot.ipxe?mac=02-00-00-00-01-%02x", base, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("boot.ipxe for MAC %d: %d", i, resp.StatusCode)
		}
	}
	want := []string{`bootyard_nodes{state="discovered"} 5`, "bootyard_discovered_evicted_total 15"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		body := metricsText(t, base)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				missing = w
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q:\n%s", missing, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	// /metrics is private: the server was started with this --metrics-token.
	req.Header.Set("Authorization", "Bearer "+limitsMetricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
