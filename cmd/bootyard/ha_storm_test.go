package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/node"
)

// The assertion's generous bound on client errors after the kill, and the target.
const (
	haErrBound  = 30 * time.Second
	haTargetWin = 10 * time.Second
)

// TestHAStorm_LeaderKilledMidStormLosesNothing is issue 14's failover target: three
// `bootyard serve --store kubernetes --leader-elect` processes on one real kube-apiserver,
// a DHCP storm of BOOTYARD_HA_STORM_MACHINES machines (default 200) from the machines'
// namespace while a second client imports nodes through the replicas' API in turn; when
// a third of the machines have their lease, the leader (the Lease's holder) is killed
// with SIGKILL. Afterwards the machines the dead replica had leased boot again
// (INIT-REBOOT) and must keep their addresses through the survivors; then, read from
// the API server by `bootyard store export`: no address leased to two MACs, no MAC with
// two addresses, every ACK the machines got still a lease, every import the API
// acknowledged a node; and the machines and the
// importer saw errors only in the window after the kill.
func TestHAStorm_LeaderKilledMidStormLosesNothing(t *testing.T) {
	netns.Require(t)
	machines := 200
	if v, err := strconv.Atoi(os.Getenv("BOOTYARD_HA_STORM_MACHINES")); err == nil && v > 0 {
		machines = v
	}
	lab := startHALab(t)

	conn := lab.dhcpConn(t)
	lab.waitForOffers(t, conn)

	// The storm's log of every attempt, and the kill when a third of it is done.
	var (
		mu       sync.Mutex
		attempts []loadgen.Attempt
		acked    atomic.Int64
		killOnce sync.Once
		killedAt atomic.Pointer[time.Time]
	)
	killAt := int64(machines / 3)
	var victim atomic.Pointer[haReplica]
	kill := func() {
		leader, err := lab.leader(nil)
		if err != nil {
			t.Error(err)
			return
		}
		victim.Store(leader)
		t.Logf("killing the leader %s (pid %d) with SIGKILL after %d of %d machines", leader.id, leader.pid(), acked.Load(), machines)
		now := time.Now()
		if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Errorf("SIGKILL %s: %v", leader.id, err)
		}
		killedAt.Store(&now)
		<-leader.exited
		t.Logf("%s exited %s after the SIGKILL", leader.id, time.Since(now).Round(time.Millisecond))
	}
	killed := make(chan struct{})

	// The importer runs before, through and after the storm: the kill lands on a
	// replica with imports in flight, and the survivors must take them on.
	imports := lab.startImports(t)
	imports.waitAcked(t, 20, time.Time{})
	stormDone := make(chan struct{})
	var res loadgen.Result
	var stormErr error
	go func() {
		defer close(stormDone)
		res, stormErr = loadgen.Run(context.Background(), loadgen.Config{Conn: conn,
			Server: netip.MustParseAddrPort("255.255.255.255:67"), Clients: 50, Exchanges: machines,
			MACPrefix: [2]byte{0x02, 0x73}, Timeout: 2 * time.Second, Retries: 3, Restarts: 10,
			Observe: func(a loadgen.Attempt) {
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				if a.Err == nil && acked.Add(1) >= killAt {
					killOnce.Do(func() { go func() { kill(); close(killed) }() })
				}
			}})
	}()
	<-stormDone
	if acked.Load() < killAt {
		t.Fatalf("the storm ended before the kill: %s (%v)", res, stormErr)
	}
	<-killed
	if killedAt.Load() == nil {
		t.FailNow() // the kill reported why
	}
	imports.waitAcked(t, 20, *killedAt.Load())
	imps := imports.stop()
	if stormErr != nil {
		t.Fatalf("storm: %v", stormErr)
	}
	t.Logf("storm: %s (load average %s)", res, loadAverage())
	t.Logf("imports: %d acknowledged, %d errors seen", len(imps.acked), len(imps.errors))

	killTime := *killedAt.Load()
	// Errors the clients saw, by when they saw them.
	var dhcpErrs, importErrs, naks []clientError
	for _, a := range attempts {
		if a.NAK {
			// A NAK is the protocol's "start over" (RFC 2131 §3.1): the client
			// DISCOVERs again at once. Counted and reported, not an outage.
			naks = append(naks, clientError{start: a.Start, seen: a.End, what: fmt.Sprintf("dhcp %s: %v", net.HardwareAddr(a.MAC[:]), a.Err)})
			continue
		}
		if a.Err != nil {
			dhcpErrs = append(dhcpErrs, clientError{start: a.Start, seen: a.End, what: fmt.Sprintf("dhcp %s: %v", net.HardwareAddr(a.MAC[:]), a.Err)})
		}
	}
	importErrs = imps.errors
	for _, e := range [][]clientError{dhcpErrs, importErrs, naks} {
		reportErrorWindow(t, killTime, e)
	}
	nakWindow, nakOutside := errorWindow(killTime, naks)
	t.Logf("FIGURE: %d NAK restarts (%d outside the window after the kill, the last %s after it)", len(naks), nakOutside, nakWindow.Round(time.Millisecond))
	all := append(slices.Clone(dhcpErrs), importErrs...)
	window, outside := errorWindow(killTime, all)
	var lastStart time.Duration
	for _, e := range all {
		lastStart = max(lastStart, e.start.Sub(killTime))
	}
	t.Logf("FIGURE: %d machines, %d DHCP attempts failed, %d import errors; errors seen up to %s after the kill (target %s: met=%v), the last failing attempt started %s after it; load average %s",
		machines, len(dhcpErrs), len(importErrs), window.Round(time.Millisecond), haTargetWin, window <= haTargetWin && outside == 0,
		lastStart.Round(time.Millisecond), loadAverage())
	if outside > 0 {
		t.Errorf("%d client errors outside the %s after the kill (before it, or later)", outside, haErrBound)
	}
	if res.Failures > 0 || res.Exchanges != machines {
		t.Errorf("%d machines got an address, %d gave up, want all %d", res.Exchanges, res.Failures, machines)
	}

	// The work that must happen once moves to a survivor when the dead leader's Lease
	// runs out (--leader-elect-lease-duration, 15 s).
	dead := victim.Load()
	if dead == nil {
		t.FailNow() // the kill reported why
	}
	next, err := lab.leader(dead)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE: %s leads %s after the kill", next.id, time.Since(killTime).Round(100*time.Millisecond))

	// What the machines were told: no address ACKed to two MACs.
	ackedTo := map[netip.Addr]node.MAC{}
	ackOf := map[node.MAC]netip.Addr{}
	for _, a := range attempts {
		if a.Err != nil {
			continue
		}
		mac := node.MAC(a.MAC)
		if other, ok := ackedTo[a.IP]; ok && other != mac {
			t.Errorf("duplicate address: %s was ACKed to %s and to %s", a.IP, other, mac)
		}
		ackedTo[a.IP] = mac
		ackOf[mac] = a.IP
	}

	fromDead := 0
	deadIP := netip.MustParseAddrPort(dead.addr).Addr()
	for _, a := range attempts {
		if a.Err == nil && a.Server == deadIP {
			fromDead++
		}
	}
	t.Logf("%d of the ACKed leases were granted by the killed replica", fromDead)
	lab.checkRebootKeepsAddresses(t, conn, attempts, deadIP)

	// What the API server holds, read by the product's own export.
	exp := lab.export(t)
	leaseOf := map[node.MAC][]netip.Addr{}
	seenIP := map[netip.Addr]bool{}
	for _, l := range exp.leases {
		if seenIP[l.IP] {
			t.Errorf("the store holds two records for %s", l.IP)
		}
		seenIP[l.IP] = true
		if l.State == "active" && l.Expires.After(time.Now()) {
			leaseOf[l.MAC] = append(leaseOf[l.MAC], l.IP)
		}
	}
	for mac, ips := range leaseOf {
		if len(ips) > 1 {
			t.Errorf("MAC %s holds %d active leases: %v", mac, len(ips), ips)
		}
	}
	lost := 0
	for mac, ip := range ackOf {
		if got := leaseOf[mac]; len(got) != 1 || got[0] != ip {
			if lost++; lost <= 5 {
				t.Errorf("machine %s was ACKed %s, the store holds %v", mac, ip, got)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d ACKed leases are not in the store as ACKed", lost, len(ackOf))
	}
	missing := 0
	for name, mac := range imps.acked {
		if n, ok := exp.nodes[name]; !ok || !n.HasMAC(mac) {
			if missing++; missing <= 5 {
				t.Errorf("import %s (%s) was acknowledged, the store has %v", name, mac, ok)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged imports are missing", missing, len(imps.acked))
	}
	// A survivor's API counts them too (its cache, not only the API server).
	for _, r := range lab.replicas {
		if r.dead() {
			continue
		}
		if total := lab.nodeCount(t, r); total < len(imps.acked) {
			t.Errorf("%s serves %d nodes, %d imports were acknowledged", r.id, total, len(imps.acked))
		}
	}
	t.Logf("checked: %d ACKed leases, %d active leases in the store, %d acknowledged imports, %d nodes in the store",
		len(ackOf), len(leaseOf), len(imps.acked), len(exp.nodes))
}

// clientError is one failure a client saw: the attempt's start and when it gave up.
type clientError struct {
	start, seen time.Time
	what        string
}

// errorWindow is how long after the kill the last error was seen, and how many were
// seen before the kill or past haErrBound after it.
func errorWindow(kill time.Time, errs []clientError) (window time.Duration, outside int) {
	for _, e := range errs {
		d := e.seen.Sub(kill)
		if d < 0 || d > haErrBound {
			outside++
			continue
		}
		window = max(window, d)
	}
	return window, outside
}

func reportErrorWindow(t *testing.T, kill time.Time, errs []clientError) {
	t.Helper()
	for i, e := range errs {
		if i < 8 {
			t.Logf("client error started %+.2fs, seen %+.2fs after the kill: %s", e.start.Sub(kill).Seconds(), e.seen.Sub(kill).Seconds(), e.what)
		}
	}
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// checkRebootKeepsAddresses has every machine whose lease the killed replica granted
// boot again (INIT-REBOOT, RFC 2131 §4.3.2: a broadcast REQUEST for its address, no
// server named): the survivors must ACK that same address. The lease outlived its
// replica only if a machine can go on using it.
func (lab *haLab) checkRebootKeepsAddresses(t *testing.T, conn *net.UDPConn, attempts []loadgen.Attempt, dead netip.Addr) {
	t.Helper()
	kept, naks := 0, 0
	for _, a := range attempts {
		if a.Err != nil || a.Server != dead {
			continue
		}
		reply := initReboot(t, conn, node.MAC(a.MAC), a.IP)
		switch {
		case reply == nil:
			t.Errorf("machine %s rebooting with %s (granted by the killed replica): no answer", net.HardwareAddr(a.MAC[:]), a.IP)
		case acked(reply, a.IP):
			kept++
		case reply.MessageType() == dhcpv4.MessageTypeNak:
			naks++
			t.Errorf("machine %s rebooting with %s (granted by the killed replica): NAK %q", net.HardwareAddr(a.MAC[:]), a.IP, reply.Message())
		default:
			t.Errorf("machine %s rebooting with %s: %s for %s", net.HardwareAddr(a.MAC[:]), a.IP, reply.MessageType(), reply.YourIPAddr)
		}
	}
	t.Logf("machines the killed replica had leased, rebooting: %d kept their address through a survivor, %d NAKed", kept, naks)
}
