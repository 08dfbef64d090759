package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/cluster"
	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// The HA lab: three replicas, each in its own namespace on 10.73.0.{1,2,3}/16, joined by
// veths to a bridge in the machines' namespace (10.73.0.100), so every DISCOVER reaches
// all three and the machine takes the first OFFER, as on one rack's segment with three
// DHCP servers. Full mode on one segment rather than relays: it is the harder case (three
// servers offering from one range at once) and the one where a dead replica's machines
// must be taken over by the others without anyone reconfiguring a relay.
const (
	haSubnet    = "10.73.0.0/16"
	haClientIP  = "10.73.0.100/16"
	haRange     = "10.73.16.1-10.73.31.254"
	haBridge    = "habr"
	haReplicas  = 3
	haAdminTok  = "ha-storm-admin-token-0123456789abcdef0123456789"
	haErrBound  = 30 * time.Second // the generous bound the test asserts; the target is 10 s
	haTargetWin = 10 * time.Second
)

// TestHAStorm_LeaderKilledMidStormLosesNothing is issue 14's failover target: three
// `bootyard serve --store kubernetes --leader-elect` processes on one real kube-apiserver,
// a DHCP storm of BOOTYARD_HA_STORM_MACHINES machines (default 200) from the machines'
// namespace while a second client imports nodes through the replicas' API in turn; when
// a third of the machines have their lease, the leader (the Lease's holder) is killed
// with SIGKILL. Afterwards the machines the dead replica had leased boot again
// (INIT-REBOOT) and must keep their addresses through the survivors; then, read from the
// API server by `bootyard store export`: no
// address leased to two MACs, no MAC with two addresses, every ACK the machines got
// still a lease, every import the API acknowledged a node; and the machines and the
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

// haLab is the API server, the replicas and the machines' namespace.
type haLab struct {
	api      *kubetest.API
	bin      string
	cli      *netns.NS
	replicas []*haReplica
	http     *http.Client
}

type haReplica struct {
	id      string
	ns      *netns.NS
	addr    string // host:port of its API, on the bridge
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

func (r *haReplica) pid() int { return r.cmd.Process.Pid }

func (r *haReplica) dead() bool {
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

func startHALab(t *testing.T) *haLab {
	t.Helper()
	api := kubetest.Start(t)
	ctx := context.Background()
	if _, err := api.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubestore.DefaultNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	api.InstallCRDs(t, filepath.Join(kubetest.Root(t), "deploy", "crds"))
	lab := &haLab{api: api, bin: buildBinary(t), cli: netns.New(t, "hacli")}
	lab.cli.AddBridge(haBridge)
	lab.cli.AddAddr(haBridge, netip.MustParsePrefix(haClientIP))
	lab.http = lab.cli.HTTPClient()
	lab.http.Timeout = 15 * time.Second
	for i := 1; i <= haReplicas; i++ {
		ns := netns.New(t, "har")
		port := fmt.Sprintf("hab%d", i)
		netns.Link(t, ns, "har", lab.cli, port)
		lab.cli.Enslave(port, haBridge)
		ip := fmt.Sprintf("10.73.0.%d", i)
		ns.AddAddr("har", netip.MustParsePrefix(ip+"/16"))
		proxyAPIServer(t, ns, api.Host)
		lab.replicas = append(lab.replicas, lab.startReplica(t, ns, fmt.Sprintf("replica-%d", i), ip))
	}
	for _, r := range lab.replicas {
		lab.waitReady(t, r)
	}
	return lab
}

// proxyAPIServer makes the API server (on the root namespace's loopback) reachable on
// the same address inside ns, so the replicas use the kubeconfig as it is: the listener
// lives in ns, the connections it forwards are dialled from the test's own namespace.
func proxyAPIServer(t *testing.T, ns *netns.NS, host string) {
	t.Helper()
	u, err := url.Parse(host)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", u.Host)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp4", u.Host)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			})
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

func (lab *haLab) startReplica(t *testing.T, ns *netns.NS, id, ip string) *haReplica {
	t.Helper()
	data := t.TempDir()
	r := &haReplica{id: id, ns: ns, addr: ip + ":8080", exited: make(chan struct{}), logPath: filepath.Join(data, "serve.log")}
	r.cmd = ns.Command(context.Background(), lab.bin, "serve", "--data", data, "--listen", r.addr,
		"--dhcp-interface", "har", "--dhcp-range", haRange,
		"--store", "kubernetes", "--kubeconfig", lab.api.AdminKubeconfig,
		"--leader-elect", "--leader-elect-identity", id, "--log-level", "info")
	r.cmd.Env = append(os.Environ(), "BOOTYARD_ADMIN_TOKEN="+haAdminTok)
	logf, err := os.Create(r.logPath)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.exited) }()
	t.Cleanup(func() {
		// `ip netns exec` execs serve in place: this PID is the replica's.
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(r.logPath)
			t.Logf("%s log (end):\n%s", id, b[max(0, len(b)-6000):])
		}
	})
	return r
}

// waitReady waits for the replica's /readyz (its caches synced) from the machines' side.
func (lab *haLab) waitReady(t *testing.T, r *haReplica) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := lab.http.Get("http://" + r.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if r.dead() || time.Now().After(deadline) {
			b, _ := os.ReadFile(r.logPath)
			t.Fatalf("%s never became ready: %v\n%s", r.id, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leader waits until the leader Lease names a replica other than not (nil: any) and
// returns it. Safe from any goroutine: it reports, the caller fails the test.
func (lab *haLab) leader(not *haReplica) (*haReplica, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		l, err := lab.api.Admin.CoordinationV1().Leases(kubestore.DefaultNamespace).Get(context.Background(), cluster.DefaultLeaseName, metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil {
			i := slices.IndexFunc(lab.replicas, func(r *haReplica) bool { return r.id == *l.Spec.HolderIdentity })
			if i < 0 {
				return nil, fmt.Errorf("the Lease is held by %q, no replica of this test", *l.Spec.HolderIdentity)
			}
			if lab.replicas[i] != not {
				return lab.replicas[i], nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no new leader within a minute: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dhcpConn is the machines' port-68 socket on the bridge.
func (lab *haLab) dhcpConn(t *testing.T) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	if err := lab.cli.Do(func() error {
		var err error
		conn, err = server4.NewIPv4UDPConn(haBridge, &net.UDPAddr{Port: 68})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Replies from three servers share this socket: a burst must not be dropped here
	// and blamed on them.
	if err := forceReadBuffer(conn, 16<<20); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitForOffers sends DISCOVERs until every replica has answered one: each has bound
// its DHCP socket and loaded its leases.
func (lab *haLab) waitForOffers(t *testing.T, conn *net.UDPConn) {
	t.Helper()
	want := map[netip.Addr]bool{}
	for i := 1; i <= haReplicas; i++ {
		want[netip.MustParseAddr(fmt.Sprintf("10.73.0.%d", i))] = true
	}
	seen := map[netip.Addr]bool{}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(time.Minute)
	for len(seen) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("offers from %v only, want all %d replicas", seen, haReplicas)
		}
		d, err := dhcpv4.NewDiscovery(net.HardwareAddr{0x06, 0x73, 0, 0, 0, byte(len(seen))}, dhcpv4.WithBroadcast(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteTo(d.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || m.TransactionID != d.TransactionID || m.MessageType() != dhcpv4.MessageTypeOffer {
				continue
			}
			if sid, ok := netip.AddrFromSlice(m.ServerIdentifier().To4()); ok && want[sid] {
				seen[sid] = true
			}
		}
	}
	conn.SetReadDeadline(time.Time{})
}

// checkRebootKeepsAddresses has every machine whose lease the killed replica granted
// boot again (INIT-REBOOT, RFC 2131 §4.3.2: a broadcast REQUEST for its address, no
// server named): the survivors must ACK that same address. The lease outlived its
// replica only if a machine can go on using it.
func (lab *haLab) checkRebootKeepsAddresses(t *testing.T, conn *net.UDPConn, attempts []loadgen.Attempt, dead netip.Addr) {
	t.Helper()
	buf := make([]byte, 1500)
	kept, naks := 0, 0
	for _, a := range attempts {
		if a.Err != nil || a.Server != dead {
			continue
		}
		req, err := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr(a.MAC[:])), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a.IP.AsSlice())))
		if err != nil {
			t.Fatal(err)
		}
		var reply *dhcpv4.DHCPv4
		for try := 0; try < 3 && reply == nil; try++ {
			if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			for reply == nil {
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					break
				}
				m, err := dhcpv4.FromBytes(buf[:n])
				if err == nil && m.TransactionID == req.TransactionID && m.OpCode == dhcpv4.OpcodeBootReply {
					reply = m // the first answer is the one a client acts on
				}
			}
		}
		switch {
		case reply == nil:
			t.Errorf("machine %s rebooting with %s (granted by the killed replica): no answer", net.HardwareAddr(a.MAC[:]), a.IP)
		case reply.MessageType() == dhcpv4.MessageTypeAck && reply.YourIPAddr.Equal(a.IP.AsSlice()):
			kept++
		case reply.MessageType() == dhcpv4.MessageTypeNak:
			naks++
			t.Errorf("machine %s rebooting with %s (granted by the killed replica): NAK %q", net.HardwareAddr(a.MAC[:]), a.IP, reply.Message())
		default:
			t.Errorf("machine %s rebooting with %s: %s for %s", net.HardwareAddr(a.MAC[:]), a.IP, reply.MessageType(), reply.YourIPAddr)
		}
	}
	conn.SetReadDeadline(time.Time{})
	t.Logf("machines the killed replica had leased, rebooting: %d kept their address through a survivor, %d NAKed", kept, naks)
}

// haImports is what the importing client saw.
type haImports struct {
	acked  map[string]node.MAC // name → MAC of every import answered 2xx
	errors []clientError
}

type importer struct {
	mu   sync.Mutex
	out  haImports
	at   []time.Time // when each acknowledgement came
	stop func() haImports
}

// waitAcked waits until n imports have been acknowledged after since.
func (im *importer) waitAcked(t *testing.T, n int, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		im.mu.Lock()
		got := 0
		for _, at := range im.at {
			if at.After(since) {
				got++
			}
		}
		im.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d imports acknowledged since %s, want %d", got, since.Format(time.StampMilli), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startImports imports nodes through the replicas' API, two at a time, each worker
// taking the replicas in turn, until stopped. A replica that cannot be reached leaves
// the rotation (as a Service drops an endpoint that fails its probes) and the import
// is sent again to the next one.
func (lab *haLab) startImports(t *testing.T) *importer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	im := &importer{out: haImports{acked: map[string]node.MAC{}}}
	mu, out := &im.mu, &im.out
	down := make([]atomic.Bool, len(lab.replicas))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			turn := w
			for ctx.Err() == nil {
				i := next.Add(1)
				name := fmt.Sprintf("ha-%05d", i)
				mac := node.MAC{0x0a, 0x73, 0, byte(i >> 16), byte(i >> 8), byte(i)}
				body, _ := json.Marshal(map[string]any{"macs": []string{mac.String()}, "role": "worker", "name": name})
				for tries := 0; tries < len(lab.replicas) && ctx.Err() == nil; tries++ {
					r := turn % len(lab.replicas)
					turn++
					for skip := 0; down[r].Load() && skip < len(lab.replicas); skip++ {
						r = turn % len(lab.replicas)
						turn++
					}
					start := time.Now()
					status, err := lab.post(ctx, lab.replicas[r], "/api/v1/nodes", body)
					if ctx.Err() != nil {
						return
					}
					if err == nil && status/100 == 2 {
						mu.Lock()
						out.acked[name] = mac
						im.at = append(im.at, time.Now())
						mu.Unlock()
						break
					}
					what := fmt.Sprintf("import %s via %s: %d %v", name, lab.replicas[r].id, status, err)
					mu.Lock()
					out.errors = append(out.errors, clientError{start: start, seen: time.Now(), what: what})
					mu.Unlock()
					if status != 0 {
						break // an answer (a 409 for an import whose first answer was lost): not sent again
					}
					down[r].Store(true)
				}
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	im.stop = func() haImports {
		cancel()
		wg.Wait()
		return *out
	}
	return im
}

func (lab *haLab) post(ctx context.Context, r *haReplica, path string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+haAdminTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := lab.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s", bytes.TrimSpace(msg))
	}
	return resp.StatusCode, nil
}

// nodeCount is the total a replica's API reports for its node list.
func (lab *haLab) nodeCount(t *testing.T, r *haReplica) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.addr+"/api/v1/nodes?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+haAdminTok)
	resp, err := lab.http.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", r.id, err)
	}
	defer resp.Body.Close()
	var page struct {
		Total int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatalf("%s: node list: %v", r.id, err)
	}
	return page.Total
}

// haExport is the inventory as `bootyard store export --from kubernetes` reads it from
// the API server.
type haExport struct {
	nodes  map[string]node.Node
	leases []store.LeaseRecord
}

func (lab *haLab) export(t *testing.T) haExport {
	t.Helper()
	cmd := exec.Command(lab.bin, "store", "export", "--from", "kubernetes", "--kubeconfig", lab.api.AdminKubeconfig,
		"--store-namespace", kubestore.DefaultNamespace)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("store export: %v\n%s", err, stderr.Bytes())
	}
	exp := haExport{nodes: map[string]node.Node{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var rec store.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		switch {
		case rec.Node != nil:
			exp.nodes[rec.Node.Name] = *rec.Node
		case rec.Lease != nil:
			exp.leases = append(exp.leases, *rec.Lease)
		}
	}
	return exp
}
