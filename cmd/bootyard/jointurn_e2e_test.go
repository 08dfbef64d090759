package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// TestServe_ClusterShowsTheServerHoldingTheJoinTurn takes a join turn from the node's own
// static address against the real serve binary and reads it back where an operator looks:
// `cluster show` and GET /api/v1/cluster. It proves serve hands the NoCloud handler and the
// cluster view one and the same queue.
func TestServe_ClusterShowsTheServerHoldingTheJoinTurn(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	addr := freePort(t)
	startServer(t, bin, data, addr)
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--server", "http://" + addr, "--data-dir", data}, args...)...)
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bootyard %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	const token = "llmos-join-turn-e2e-token"
	const mac = "52:54:00:77:00:01"
	cli("node", "import", mac, "--role", "server", "--name", "cp-1", "--ip", "127.0.0.7/8")
	cli("cluster", "set", "--server-url", "https://10.20.0.10:6443", "--token", token)
	if cs := cli("cluster", "show"); !strings.Contains(cs, "Join turn:") || !strings.Contains(cs, "free") {
		t.Fatalf("cluster show before any join:\n%s", cs)
	}

	// serve derives the callback key from the token (no CallbackSecret), as this renderer does.
	r, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := node.ParseMAC(mac)
	key := r.CallbackKey(node.Node{Name: "cp-1", MACs: []node.MAC{m}}, node.ClusterSettings{Token: node.Secret(token)})
	// From the node's static address, the only one Bootyard accepts for it here.
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}).DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/nocloud/"+mac+"/join-turn", nil)
	req.Header.Set(cloudinit.CallbackKeyHeader, key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "go\n" {
		t.Fatalf("join-turn: %d %q", resp.StatusCode, body)
	}

	if cs := cli("cluster", "show"); !strings.Contains(cs, "cp-1, since ") || !strings.Contains(cs, "at the latest") {
		t.Errorf("cluster show does not name the holder:\n%s", cs)
	}
	var v struct {
		JoinTurn *cloudinit.Turn `json:"joinTurn"`
	}
	if err := json.Unmarshal([]byte(cli("cluster", "show", "-o", "json")), &v); err != nil || v.JoinTurn == nil {
		t.Fatalf("cluster show -o json: %v %+v", err, v)
	}
	if v.JoinTurn.Node != "cp-1" || v.JoinTurn.Until.Sub(v.JoinTurn.Since) != 30*time.Minute {
		t.Errorf("joinTurn = %+v, want cp-1 for at most 30 minutes", v.JoinTurn)
	}
}
