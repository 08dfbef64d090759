package boot

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

// udhcpcScript records each event and, like a real hook, configures the address so a
// renewal can be unicast.
const udhcpcScript = `echo "event=$1 ip=$ip subnet=$subnet router=$router dns=$dns boot_file=$boot_file siaddr=$siaddr" >> OUT
case "$1" in
bound) ip addr add "$ip/$subnet" dev "$interface" ;;
esac`

func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (Debian package: see the Makefile)", name)
	}
}

// udhcpcOnce runs `busybox udhcpc -q` (quit once bound) in the client namespace and
// returns the line its script wrote for the bound event.
func (l *lab) udhcpcOnce(tag string) string {
	l.t.Helper()
	requireTool(l.t, "busybox")
	script, out := l.script("udhcpc-"+tag, udhcpcScript)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := l.cli.Exec(ctx, "busybox", "udhcpc", "-i", "bcli", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", script); err != nil {
		l.t.Fatalf("udhcpc: %v\n%s", err, b)
	}
	return waitForLine(l.t, out, "event=bound", 5*time.Second)
}

func TestDHCP_RealClientsObtainALease(t *testing.T) {
	l := newLab(t)
	cfg := labConfig(ModeFull)
	s, _ := l.start(cfg)

	t.Run("busybox udhcpc", func(t *testing.T) {
		line := l.udhcpcOnce("a")
		ip := netip.MustParseAddr(field(line, "ip"))
		if !cfg.Range.Contains(ip) || field(line, "subnet") != "255.255.255.0" || field(line, "router") != "10.77.0.1" {
			t.Fatalf("udhcpc got %s", line)
		}
		mac := l.clientMAC()
		if l2, err := l.inv.LeaseForMAC(context.Background(), mac); err != nil || l2.IP != ip {
			t.Fatalf("store has %+v, %v for %s", l2, err, mac)
		}
		l.cli.IP("addr", "flush", "dev", "bcli")
	})

	t.Run("ISC dhclient", func(t *testing.T) {
		requireTool(t, "dhclient")
		l.cli.IP("link", "set", "bcli", "address", "52:54:00:77:00:02")
		script, out := l.script("dhclient", `echo "reason=$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers" >> OUT`)
		lease, pid := filepath.Join(l.dir, "dhclient.leases"), filepath.Join(l.dir, "dhclient.pid")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := l.cli.Exec(ctx, "dhclient", "-1", "-v", "-sf", script, "-lf", lease, "-pf", pid, "bcli")
		// dhclient forks into the background once bound: stop that process (ours, by PID).
		defer killFromPidfile(t, pid)
		if err != nil {
			t.Fatalf("dhclient: %v\n%s", err, b)
		}
		line := waitForLine(t, out, "reason=BOUND", 5*time.Second)
		ip := netip.MustParseAddr(field(line, "ip"))
		if !cfg.Range.Contains(ip) || field(line, "mask") != "255.255.255.0" {
			t.Fatalf("dhclient got %s", line)
		}
		if l2, err := l.inv.LeaseForMAC(context.Background(), mustMAC("52:54:00:77:00:02")); err != nil || l2.IP != ip {
			t.Fatalf("store has %+v, %v", l2, err)
		}
	})
	if st := s.Stats(); st.Acks < 2 || st.Offers < 2 {
		t.Fatalf("stats %+v", st)
	}
}

func killFromPidfile(t *testing.T, pidfile string) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Logf("stopping dhclient %d: %v", pid, err)
		return
	}
	// It is not our child, so there is no wait: watch for it to be gone, or its last
	// writes (the script's STOP line, the lease file) land in the test's directory while
	// the test removes it ("directory not empty", seen under load).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return
		}
	}
	t.Logf("dhclient %d still running 10 s after SIGTERM", pid)
}

func (l *lab) clientMAC() node.MAC {
	l.t.Helper()
	out, err := l.cli.Exec(context.Background(), "cat", "/sys/class/net/bcli/address")
	if err != nil {
		l.t.Fatal(err)
	}
	mac, err := node.ParseMAC(strings.TrimSpace(string(out)))
	if err != nil {
		l.t.Fatal(err)
	}
	return mac
}

func TestDHCP_StaticNodeGetsExactlyItsAddress(t *testing.T) {
	l := newLab(t)
	mac := mustMAC("52:54:00:77:00:31")
	l.cli.IP("link", "set", "bcli", "address", mac.String())
	if _, err := l.inv.ImportNode(context.Background(), node.Node{Name: "pinned", MACs: []node.MAC{mac}, Role: node.RoleServer,
		IP: netip.MustParsePrefix("10.77.0.31/24"), Gateway: netip.MustParseAddr("10.77.0.254")}, "test"); err != nil {
		t.Fatal(err)
	}
	l.start(labConfig(ModeFull))
	line := l.udhcpcOnce("static")
	if field(line, "ip") != "10.77.0.31" || field(line, "router") != "10.77.0.254" {
		t.Fatalf("static node got %s, want 10.77.0.31 via 10.77.0.254", line)
	}
}

func TestDHCP_RenewExtendsTheLease(t *testing.T) {
	requireTool(t, "busybox")
	l := newLab(t)
	s, _ := l.start(labConfig(ModeFull))
	script, out := l.script("renew", udhcpcScript+"\n"+`[ "$1" = renew ] && echo renewed >> OUT; true`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.cli.Command(ctx, "busybox", "udhcpc", "-i", "bcli", "-f", "-t", "5", "-T", "1", "-s", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// `ip netns exec` execs, so this PID is udhcpc itself.
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	bound := waitForLine(t, out, "event=bound", 10*time.Second)
	first, err := l.inv.LeaseForMAC(ctx, l.clientMAC())
	if err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	time.Sleep(1100 * time.Millisecond)                         // lease expiry has second resolution on the wire; let it move
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil { // udhcpc: SIGUSR1 renews
		t.Fatal(err)
	}
	waitForLine(t, out, "event=renew", 10*time.Second)
	after := s.Stats()
	if after.Acks != before.Acks+1 || after.Discovers != before.Discovers {
		t.Fatalf("renew: acks %d→%d, discovers %d→%d; want one more ACK and no new DISCOVER",
			before.Acks, after.Acks, before.Discovers, after.Discovers)
	}
	second, err := l.inv.LeaseForMAC(ctx, l.clientMAC())
	if err != nil || second.IP.String() != field(bound, "ip") || !second.Expires.After(first.Expires) {
		t.Fatalf("lease before %+v after %+v (%v): want same address, later expiry", first, second, err)
	}
}

func TestDHCP_RestartNeverOffersAnAddressAlreadyLeased(t *testing.T) {
	l := newLab(t)
	_, stop := l.start(labConfig(ModeFull))
	l.cli.IP("link", "set", "bcli", "address", "52:54:00:77:00:41")
	first := field(l.udhcpcOnce("before"), "ip")
	stop()
	l.cli.IP("addr", "flush", "dev", "bcli")

	l.start(labConfig(ModeFull)) // a new server on the same bbolt file
	l.cli.IP("link", "set", "bcli", "address", "52:54:00:77:00:42")
	second := field(l.udhcpcOnce("after"), "ip")
	if first == "" || second == "" || first == second {
		t.Fatalf("before restart %q, after restart a new client got %q", first, second)
	}
}
