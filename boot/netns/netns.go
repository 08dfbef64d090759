// Package netns gives tests their own Linux network namespaces: the one place in Bootyard
// that knows `ip netns`. DHCP, TFTP and QEMU tests put every packet they send inside
// namespaces made here, so nothing ever reaches the machine's real network.
package netns

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// counter makes namespace names unique within one test process; the PID makes them
// unique across the parallel `go test` processes of several packages.
var counter atomic.Uint64

// NS is a network namespace that lives as long as the test that made it.
type NS struct {
	// Name is the namespace's name under /run/netns, usable with `ip netns exec`.
	Name string
	t    testing.TB
}

// Require skips the test, with the reason visible in the output, when the machine cannot
// make namespaces: not root, or no `ip` binary.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netns: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("netns: the `ip` command (iproute2) is not installed")
	}
}

// New creates an empty namespace with its loopback up and removes it in t.Cleanup.
// label is a short word that makes the name readable in `ip netns list` (e.g. "srv").
func New(t testing.TB, label string) *NS {
	t.Helper()
	Require(t)
	sweepOrphans(t)
	name := fmt.Sprintf("by-%s-%d-%d", label, os.Getpid(), counter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("netns: ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, t: t}
	t.Cleanup(func() {
		// Deleting the namespace destroys every interface inside it, veth peers included.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("netns: ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.IP("link", "set", "lo", "up")
	return ns
}

// sweepOrphans deletes namespaces this helper made for test processes that no longer
// exist (a test killed before its t.Cleanup ran). Names carry the owner's PID; a live
// PID, even a reused one, keeps its namespaces.
func sweepOrphans(t testing.TB) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		if len(parts) != 4 || parts[0] != "by" {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", parts[2])); err == nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err == nil {
			t.Logf("netns: removed %s, left by dead test process %d", e.Name(), pid)
		} else {
			t.Logf("netns: removing orphan %s: %v: %s", e.Name(), err, out)
		}
	}
}

// IP runs `ip -n NAME args...` and fails the test if it fails.
func (ns *NS) IP(args ...string) {
	ns.t.Helper()
	full := append([]string{"-n", ns.Name}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		ns.t.Fatalf("netns: ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// Command prepares a program to run inside the namespace (via `ip netns exec`). The
// caller starts and waits for it; cancelling ctx kills it (only it: by its own PID).
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", ns.Name, name}, args...)
	return exec.CommandContext(ctx, "ip", full...)
}

// Exec runs a program inside the namespace and returns its combined output.
func (ns *NS) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := ns.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s %s: %w", ns.Name, name, strings.Join(args, " "), err)
	}
	return out, nil
}

// AddAddr assigns prefix (e.g. 10.77.0.1/24) to dev and brings dev up.
func (ns *NS) AddAddr(dev string, prefix netip.Prefix) {
	ns.t.Helper()
	ns.IP("addr", "add", prefix.String(), "dev", dev)
	ns.IP("link", "set", dev, "up")
}

// AddBridge creates a bridge inside the namespace and brings it up. Bridges are never
// made in the root namespace.
func (ns *NS) AddBridge(name string) {
	ns.t.Helper()
	ns.IP("link", "add", name, "type", "bridge")
	ns.IP("link", "set", name, "up")
}

// AddTap creates a tap device (for QEMU's -netdev tap,ifname=...) inside the namespace,
// enslaved to bridge when bridge is not empty, and brings it up. QEMU must itself run
// inside the namespace (ns.Command) to open it.
func (ns *NS) AddTap(name, bridge string) {
	ns.t.Helper()
	ns.IP("tuntap", "add", "dev", name, "mode", "tap")
	if bridge != "" {
		ns.IP("link", "set", name, "master", bridge)
	}
	ns.IP("link", "set", name, "up")
}

// Enslave attaches dev to bridge inside the namespace.
func (ns *NS) Enslave(dev, bridge string) {
	ns.t.Helper()
	ns.IP("link", "set", dev, "master", bridge)
}

// Link joins two namespaces with a veth pair: aDev inside a, bDev inside b, both up.
// Interface names must be at most 15 bytes.
func Link(t testing.TB, a *NS, aDev string, b *NS, bDev string) {
	t.Helper()
	a.IP("link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b.Name)
	a.IP("link", "set", aDev, "up")
	b.IP("link", "set", bDev, "up")
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn opens stay in the
// namespace for their whole life, so a server can be built inside Do and then served from
// ordinary goroutines. Goroutines fn starts do NOT inherit the namespace.
func (ns *NS) Do(fn func() error) error { return Enter(ns.Name, fn) }
