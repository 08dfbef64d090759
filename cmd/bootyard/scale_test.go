package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/store/scaletest"
)

// TestScale_ServeMemory reports issue 13's memory figure: the resident set of a real
// `bootyard serve` process over an inventory of BOOTYARD_SCALE_NODES nodes (small in
// `make test`, 100,000 for the README), after it has answered the list API, the nodes
// page's data and /metrics. It checks that those answers are right, not the size.
func TestScale_ServeMemory(t *testing.T) {
	n := scaletest.Nodes(t, 2000)
	data := t.TempDir()
	st, err := store.Open(filepath.Join(data, "bootyard.db"), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]store.ImportRow, n)
	for i := range rows {
		rows[i] = store.ImportRow{Line: i + 2, Node: node.Node{Name: fmt.Sprintf("dc-%06d", i),
			MACs: []node.MAC{{0x02, 0xdc, 0, byte(i >> 16), byte(i >> 8), byte(i)}}, Role: node.RoleWorker,
			IP:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(16 + i>>16), byte(i >> 8), byte(i)}), 8),
			Labels: map[string]string{"rack": fmt.Sprintf("r%d", i/40)}}}
	}
	if _, err := st.ImportNodes(context.Background(), rows, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	addr := freePort(t)
	srv := startServer(t, bin, data, addr)
	tok, err := os.ReadFile(filepath.Join(data, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %.200s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	for range 20 {
		if body := get("/api/v1/nodes?limit=100"); !strings.Contains(body, fmt.Sprintf(`"total":%d`, n)) {
			t.Fatalf("list: %.200s", body)
		}
		get("/api/v1/nodes?limit=1000&labelSelector=rack%3Dr7")
		if body := get("/metrics"); !strings.Contains(body, "registered") {
			t.Fatalf("metrics lack the node counts")
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") || strings.HasPrefix(line, "VmHWM:") {
			t.Logf("bootyard serve over %d nodes: %s", n, strings.Join(strings.Fields(line), " "))
		}
	}
}
