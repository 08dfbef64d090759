package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// buildBinary compiles bootyard once per test binary run.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bootyard")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startServer runs `bootyard serve` and waits until /healthz answers.
func startServer(t *testing.T, bin, dataDir, addr string, extraArgs ...string) *server {
	t.Helper()
	s := startServerArgs(t, bin, "http://"+addr, append([]string{"serve", "--data", dataDir, "--listen", addr}, extraArgs...)...)
	return s
}

// startServerArgs runs bin with args and waits until healthURL/healthz answers.
func startServerArgs(t *testing.T, bin, healthURL string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	s := &server{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(healthURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("serve exited: %v\n%s", err, s.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never answered /healthz\n%s", s.stderr)
		}
	}
}

// stop sends SIGTERM (a graceful shutdown) to the process this test started.
func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve did not exit cleanly on SIGTERM: %v\n%s", err, s.stderr)
		}
		s.done <- err
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("serve ignored SIGTERM\n%s", s.stderr)
	}
}

func TestEndToEnd_CLIDrivesServerAndInventorySurvivesRestart(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	addr := freePort(t)
	srv := startServer(t, bin, data, addr)
	if !strings.Contains(srv.stderr.String(), filepath.Join(data, "admin-token")) {
		t.Errorf("first start does not print the admin token path:\n%s", srv.stderr)
	}
	info, err := os.Stat(filepath.Join(data, "admin-token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v %v", info, err)
	}

	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--server", "http://" + addr, "--data-dir", data}, args...)...)
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("bootyard %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	out := mustCLI("node", "import", "52:54:00:12:34:56", "--role", "server", "--name", "cp-1")
	if !strings.Contains(out, "cluster-init") {
		t.Errorf("first server not cluster-init: %s", out)
	}
	mustCLI("node", "import", "52:54:00:12:34:57", "--role", "worker", "--name", "gpu-1", "--ip", "10.20.0.31/24",
		"--label", "gpu=a100", "--taint", "gpu=true:NoSchedule")
	mustCLI("node", "import", "52:54:00:12:34:58", "--role", "worker")

	// Refusals carry the server's message and a non-zero exit.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "import", "52:54:00:12:34:57", "--role", "worker"}, "belongs to node gpu-1"},
		{[]string{"node", "import", "nonsense", "--role", "worker"}, "not a hardware address"},
		{[]string{"node", "import", "52:54:00:12:34:59", "--role", "worker", "--taint", "a=b:Never"}, "NoSchedule"},
		{[]string{"node", "delete", "gpu-1", "--confirm", "gpu-2"}, "confirm must repeat"},
		{[]string{"cluster", "set", "--server-url", "https://10.20.0.10:8443"}, "port must be 6443 or 9345"},
		{[]string{"cluster", "set", "--server-url", "https://10.20.0.10:6443/k8s"}, "no path"},
		{[]string{"node", "import", "52:54:00:12:34:5b", "--role", "worker", "--label", "node-role.kubernetes.io/worker=true"}, "kubelet refuses"},
		{[]string{"--admin-token", "wrong", "node", "import", "52:54:00:12:34:5a", "--role", "worker"}, "admin token"},
	} {
		out, err := cli(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("bootyard %s: err=%v, output %q lacks %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}

	table := mustCLI("node", "list")
	for _, want := range []string{"NAME", "ROLE", "STATE", "MAC", "IP", "AGE", "cp-1", "server*", "gpu-1", "10.20.0.31/24", "node-525400123458"} {
		if !strings.Contains(table, want) {
			t.Errorf("node list lacks %q:\n%s", want, table)
		}
	}
	var listed []node.Node
	if err := json.Unmarshal([]byte(mustCLI("node", "list", "-o", "json")), &listed); err != nil || len(listed) != 3 {
		t.Fatalf("node list -o json: %v %+v", err, listed)
	}
	show := mustCLI("node", "show", "gpu-1")
	for _, want := range []string{"gpu=a100", "gpu=true:NoSchedule", "registered", "imported"} {
		if !strings.Contains(show, want) {
			t.Errorf("node show lacks %q:\n%s", want, show)
		}
	}
	const joinToken = "K10secret-e2e-token"
	// A k3s secure token is accepted with a warning; the trailing slash is dropped.
	if out := mustCLI("cluster", "set", "--token", "K10abc123::server:e2e"); !strings.Contains(out, "warning: the join token looks like a k3s secure token") {
		t.Errorf("cluster set with a K10 token did not warn:\n%s", out)
	}
	mustCLI("cluster", "set", "--server-url", "https://10.20.0.10:6443/", "--token", joinToken, "--join-turn-minutes", "45")
	cs := mustCLI("cluster", "show")
	if strings.Contains(cs, "6443/") || strings.Contains(cs, "k3s secure token") {
		t.Errorf("cluster show keeps the trailing slash or the old token's warning:\n%s", cs)
	}
	for _, want := range []string{"https://10.20.0.10:6443", "[redacted]", "cp-1", "FAILURE TOLERANCE", "not connected",
		"Join turn:", "each for at most 45m0s"} {
		if !strings.Contains(cs, want) {
			t.Errorf("cluster show lacks %q:\n%s", want, cs)
		}
	}
	if strings.Contains(cs, joinToken) {
		t.Errorf("cluster show prints the token:\n%s", cs)
	}
	// The join command, redacted unless revealed, and the seed ISO for a VM template.
	join := mustCLI("node", "join-command", "gpu-1")
	for _, want := range []string{"role: agent", "nodeName: gpu-1", "server: https://10.20.0.10:6443", "gpu=true:NoSchedule", "[redacted]"} {
		if !strings.Contains(join, want) {
			t.Errorf("join-command lacks %q:\n%s", want, join)
		}
	}
	if strings.Contains(join, joinToken) {
		t.Errorf("join-command shows the token without --reveal:\n%s", join)
	}
	if revealed := mustCLI("node", "join-command", "gpu-1", "--reveal"); !strings.Contains(revealed, joinToken) {
		t.Errorf("join-command --reveal lacks the token:\n%s", revealed)
	}
	iso := filepath.Join(t.TempDir(), "seed.iso")
	mustCLI("node", "seed-iso", "gpu-1", "-o", iso)
	b, err := os.ReadFile(iso)
	// ISO 9660: the primary volume descriptor at sector 16 starts "\x01CD001".
	if err != nil || len(b) < 32774 || string(b[32769:32774]) != "CD001" || !bytes.Contains(b, []byte("cidata")) && !bytes.Contains(b, []byte("CIDATA")) {
		t.Errorf("seed-iso wrote no cidata ISO 9660 image (%d bytes, %v)", len(b), err)
	}
	if out, err := cli("--admin-token", "wrong", "node", "seed-iso", "gpu-1", "-o", iso); err == nil || !strings.Contains(out, "admin token") {
		t.Errorf("seed-iso without the admin token: err=%v %s", err, out)
	}
	mustCLI("node", "delete", "node-525400123458", "--confirm", "node-525400123458")

	// Restart: same inventory, same settings.
	srv.stop(t)
	if strings.Contains(srv.stderr.String(), joinToken) {
		t.Errorf("server log contains the join token")
	}
	startServer(t, bin, data, addr)
	var after []node.Node
	if err := json.Unmarshal([]byte(mustCLI("node", "list", "-o", "json")), &after); err != nil {
		t.Fatal(err)
	}
	if len(after) != 2 || after[0].Name != "cp-1" || after[1].Name != "gpu-1" || after[1].Labels["gpu"] != "a100" {
		t.Errorf("after restart: %+v", after)
	}
	if cs2 := mustCLI("cluster", "show"); !strings.Contains(cs2, "https://10.20.0.10:6443") {
		t.Errorf("settings lost on restart:\n%s", cs2)
	}
}

func TestServe_SecondServerOnSameDataFailsFast(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	startServer(t, bin, data, freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--data", data, "--listen", freePort(t))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("second serve hung instead of failing")
	}
	if err == nil || !strings.Contains(string(out), "another bootyard serve") {
		t.Fatalf("second serve: err=%v\n%s", err, out)
	}
}

func TestConfig_FlagsBeatEnvBeatFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bootyard.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1111\nlog-level: debug\ndhcp-dns: [10.0.0.2, 10.0.0.3]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantListen string
		wantLevel  string
	}{
		{"file only", nil, nil, "127.0.0.1:1111", "debug"},
		{"env beats file", nil, map[string]string{"BOOTYARD_LISTEN": "127.0.0.1:2222"}, "127.0.0.1:2222", "debug"},
		{"flag beats env", []string{"--listen", "127.0.0.1:3333"}, map[string]string{"BOOTYARD_LISTEN": "127.0.0.1:2222"}, "127.0.0.1:3333", "debug"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd := newServeCommand()
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := applyConfig(cmd.Flags(), file); err != nil {
				t.Fatal(err)
			}
			get := func(n string) string { return cmd.Flags().Lookup(n).Value.String() }
			if get("listen") != tc.wantListen || get("log-level") != tc.wantLevel || get("dhcp-dns") != "[10.0.0.2,10.0.0.3]" {
				t.Errorf("listen=%s log-level=%s dhcp-dns=%s", get("listen"), get("log-level"), get("dhcp-dns"))
			}
		})
	}
	if err := os.WriteFile(file, []byte("lisen: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := applyConfig(newServeCommand().Flags(), file); err == nil || !strings.Contains(err.Error(), "unknown setting") {
		t.Errorf("typo in config file: %v", err)
	}
}
