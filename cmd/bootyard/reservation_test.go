package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
)

// TestServe_NodeImportedWithAStaticIPGetsItAtOnce imports a node with a static address
// and lets its MAC ask for a lease straight away: the reservation is in force without
// waiting for a periodic refresh, and no other client is offered that address.
func TestServe_NodeImportedWithAStaticIPGetsItAtOnce(t *testing.T) {
	netns.Require(t)
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox not installed")
	}
	bin := buildBinary(t)
	lab := startLab(t, bin)
	const mac, static = "52:54:00:5e:00:01", "10.77.0.100"
	if code := lab.api(t, "POST", "/api/v1/nodes", `{"macs":["`+mac+`"],"role":"worker","name":"static-1","ip":"`+static+`/24"}`, nil); code != 201 {
		t.Fatalf("import: %d", code)
	}
	script := filepath.Join(t.TempDir(), "lease.sh")
	// udhcpc runs this with the leased address in $ip; record it.
	out := filepath.Join(t.TempDir(), "leased")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip\" >> "+out+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	lease := func(label, hw string) string {
		t.Helper()
		client := netns.New(t, label)
		netns.Link(t, lab.ns, "v"+label, client, "eth0")
		lab.ns.Enslave("v"+label, "br0")
		client.IP("link", "set", "eth0", "address", hw)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		os.Remove(out)
		if o, err := client.Exec(ctx, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-s", script); err != nil {
			t.Fatalf("udhcpc for %s: %v\n%s", hw, err, o)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("udhcpc for %s bound nothing: %v", hw, err)
		}
		return strings.TrimSpace(string(b))
	}
	// Another machine first: the range starts at the reserved address, which must be skipped.
	if got := lease("rsa", "52:54:00:5e:00:02"); got == static {
		t.Errorf("a machine without a reservation was given the reserved address %s", got)
	}
	if got := lease("rsb", mac); got != static {
		t.Errorf("the node imported with %s got %s", static, got)
	}
}
