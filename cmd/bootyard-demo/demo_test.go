package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo_BothMachinesInstallAndCtrlCRemovesTheNamespace runs the demo as `make demo`
// does, watches the API on the host's loopback until the BIOS and the UEFI machine are
// installed and the UEFI one has booted the installed demo OS, then stops it with SIGINT
// and checks it removed its namespace.
func TestDemo_BothMachinesInstallAndCtrlCRemovesTheNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("boots two QEMU machines under TCG: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("the demo needs root for its namespace")
	}
	for _, tool := range []string{"ip", "qemu-system-x86_64", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg string }{
		{"bootyard", "./cmd/bootyard"}, {"bootyard-agent", "./cmd/bootyard-agent"}, {"bootyard-demo", "./cmd/bootyard-demo"},
		{"bootyard-demo-os", "./cmd/bootyard-demo-os"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b.out), b.pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	data := filepath.Join(t.TempDir(), "demo")
	var out bytes.Buffer
	demo := exec.Command(filepath.Join(bin, "bootyard-demo"), "--bootyard", filepath.Join(bin, "bootyard"),
		"--data", data, "--listen", listen, "--kernel-cache", filepath.Join(repo, ".cache", "kernel"), "--timeout", "15m")
	demo.Stdout, demo.Stderr = &out, &out
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	t.Cleanup(func() {
		if demo.ProcessState == nil {
			_ = demo.Process.Signal(syscall.SIGINT) // the demo we started, by its PID
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				_ = demo.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})

	installed := func() (map[string]string, bool) {
		tok, err := os.ReadFile(filepath.Join(data, "admin-token"))
		if err != nil {
			return nil, false
		}
		req, _ := http.NewRequest("GET", "http://"+listen+"/api/v1/nodes", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, false
		}
		defer resp.Body.Close()
		var page struct {
			Items []struct{ Name, State string }
		}
		if json.NewDecoder(resp.Body).Decode(&page) != nil {
			return nil, false
		}
		states := map[string]string{}
		for _, n := range page.Items {
			states[n.Name] = n.State
		}
		return states, states["demo-bios"] == "installed" && states["demo-uefi"] == "installed"
	}
	deadline := time.Now().Add(14 * time.Minute)
	var states map[string]string
	for {
		var ok bool
		if states, ok = installed(); ok {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("demo exited before both machines were installed: %v (states %v)", err, states)
		case <-time.After(2 * time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("machines not installed in time: %v", states)
		}
	}
	// Installed, the UEFI machine reboots, Bootyard sends it to its disk, and the demo
	// image's shim, GRUB and kernel start the demo OS (plain OVMF: Secure Boot off).
	uefiSerial := filepath.Join(data, machines[1].name+".serial")
	for {
		b, _ := os.ReadFile(uefiSerial)
		if strings.Contains(string(b), demoBanner+"off") {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("demo exited before the UEFI machine booted the demo OS: %v", err)
		case <-time.After(2 * time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the installed UEFI machine did not boot the demo OS in time; its console:\n%s", tail(string(b), 3000))
		}
	}
	// The web page is on the host's loopback too.
	resp, err := http.Get("http://" + listen + "/login")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("web page through the forward: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	nsName := "bootyard-demo-" + strconv.Itoa(demo.Process.Pid)
	if list, _ := exec.Command("ip", "netns", "list").Output(); !strings.Contains(string(list), nsName) {
		t.Errorf("namespace %s not found while the demo runs: %s", nsName, list)
	}
	_ = demo.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("demo did not stop cleanly on Ctrl-C: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo ignored Ctrl-C")
	}
	if list, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(list), nsName) {
		t.Errorf("namespace %s left behind: %s", nsName, list)
	}
}
