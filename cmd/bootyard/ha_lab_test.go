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
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	haClientIP = "10.73.0.100/16"
	haRange    = "10.73.16.1-10.73.31.254"
	haBridge   = "habr"
	haReplicas = 3
	haAdminTok = "ha-storm-admin-token-0123456789abcdef0123456789"
)

// haLab is the API server, the replicas and the machines' namespace.
type haLab struct {
	api      *kubetest.API
	bin      string
	cli      *netns.NS
	replicas []*haReplica
	http     *http.Client
	extra    []string   // more serve flags for every replica
	links    []*apiLink // each replica's way to the API server
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

// startHALab starts the lab; extra are serve flags every replica gets beside the lab's.
func startHALab(t *testing.T, extra ...string) *haLab {
	t.Helper()
	api := kubetest.Start(t)
	ctx := context.Background()
	if _, err := api.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubestore.DefaultNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	api.InstallCRDs(t, filepath.Join(kubetest.Root(t), "deploy", "crds"))
	lab := &haLab{api: api, bin: buildBinary(t), cli: netns.New(t, "hacli"), extra: extra}
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
		lab.links = append(lab.links, proxyAPIServer(t, ns, api.Host))
		lab.replicas = append(lab.replicas, lab.startReplica(t, ns, fmt.Sprintf("replica-%d", i), ip))
	}
	for _, r := range lab.replicas {
		lab.waitReady(t, r)
	}
	return lab
}

// apiLink is a replica's way to the API server (on the root namespace's loopback) on
// the same address inside its namespace, so the replica uses the kubeconfig as it is:
// the listener lives in the namespace, the connections it forwards are dialled from the
// test's own. cut makes it a partition: the connections in use stop carrying anything
// (held open, silent, as a dropped route leaves them) and new ones are accepted and held
// the same way, so the replica sees timeouts, not refusals; restore closes what was held
// and forwards again.
type apiLink struct {
	mu   sync.Mutex
	down bool
	ups  map[net.Conn]bool // upstream connections carrying traffic
	held map[net.Conn]bool // replica connections held silent while down
}

func (l *apiLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for up := range l.ups {
		up.Close()
	}
}

func (l *apiLink) restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
	for c := range l.held {
		c.Close()
	}
	clear(l.held)
}

// hold keeps c open and reads nothing of it onwards until restore closes it (or the
// replica does); false when the link is up and c should be forwarded.
func (l *apiLink) hold(c net.Conn) bool {
	l.mu.Lock()
	if !l.down {
		l.mu.Unlock()
		return false
	}
	l.held[c] = true
	l.mu.Unlock()
	_, _ = io.Copy(io.Discard, c)
	l.mu.Lock()
	delete(l.held, c)
	l.mu.Unlock()
	return true
}

// track registers up as carrying traffic; false when the link went down meanwhile.
func (l *apiLink) track(up net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	l.ups[up] = true
	return true
}

func (l *apiLink) untrack(up net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.ups, up)
}

func proxyAPIServer(t *testing.T, ns *netns.NS, host string) *apiLink {
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
	l := &apiLink{ups: map[net.Conn]bool{}, held: map[net.Conn]bool{}}
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
				if l.hold(c) {
					return
				}
				up, err := net.Dial("tcp4", u.Host)
				if err != nil {
					return
				}
				defer up.Close()
				if !l.track(up) {
					l.hold(c)
					return
				}
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
				l.untrack(up)
				l.hold(c) // cut mid-connection: silent from now on, not closed
			})
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		l.restore()
		<-done
	})
	return l
}

func (lab *haLab) startReplica(t *testing.T, ns *netns.NS, id, ip string) *haReplica {
	t.Helper()
	data := t.TempDir()
	r := &haReplica{id: id, ns: ns, addr: ip + ":8080", exited: make(chan struct{}), logPath: filepath.Join(data, "serve.log")}
	args := append([]string{"serve", "--data", data, "--listen", r.addr,
		"--dhcp-interface", "har", "--dhcp-range", haRange,
		"--store", "kubernetes", "--kubeconfig", lab.api.AdminKubeconfig,
		"--leader-elect", "--leader-elect-identity", id, "--log-level", "info"}, lab.extra...)
	r.cmd = ns.Command(context.Background(), lab.bin, args...)
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

// nodeCount is the total a replica's API reports for its node list.
func (lab *haLab) nodeCount(t *testing.T, r *haReplica) int {
	t.Helper()
	var page struct {
		Total int `json:"total"`
	}
	if !lab.getJSON(t, r, "/api/v1/nodes?limit=1", &page) {
		t.Fatalf("%s: the node list did not answer 200", r.id)
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

// dora runs one machine's DISCOVER, OFFER, REQUEST, ACK (2 s a step, 3 tries): the
// address it is ACKed, or false.
func (lab *haLab) dora(t *testing.T, conn *net.UDPConn, mac node.MAC) (netip.Addr, bool) {
	t.Helper()
	hw := net.HardwareAddr(mac[:])
	disc, err := dhcpv4.NewDiscovery(hw, dhcpv4.WithBroadcast(true))
	if err != nil {
		t.Fatal(err)
	}
	offer := exchange(t, conn, disc, dhcpv4.MessageTypeOffer)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		return netip.Addr{}, false
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true))
	if err != nil {
		t.Fatal(err)
	}
	ack := exchange(t, conn, req, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		return netip.Addr{}, false
	}
	ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return ip, true
}

// initReboot is a machine booting with the address it had (RFC 2131 §4.3.2: a broadcast
// REQUEST for it, no server named): the first ACK or NAK, or nil.
func initReboot(t *testing.T, conn *net.UDPConn, mac node.MAC, ip netip.Addr) *dhcpv4.DHCPv4 {
	t.Helper()
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr(mac[:])), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())))
	if err != nil {
		t.Fatal(err)
	}
	return exchange(t, conn, req, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
}

// acked reports whether reply ACKs ip.
func acked(reply *dhcpv4.DHCPv4, ip netip.Addr) bool {
	return reply != nil && reply.MessageType() == dhcpv4.MessageTypeAck && reply.YourIPAddr.Equal(ip.AsSlice())
}

// exchange broadcasts m up to three times and returns the first reply to it of a type in
// want, or nil. Other types are the other replicas' answers to the step before (every
// replica OFFERs; the REQUEST shares the DISCOVER's transaction ID).
func exchange(t *testing.T, conn *net.UDPConn, m *dhcpv4.DHCPv4, want ...dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	t.Helper()
	buf := make([]byte, 1500)
	defer conn.SetReadDeadline(time.Time{})
	for try := 0; try < 3; try++ {
		if _, err := conn.WriteTo(m.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			reply, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && reply.TransactionID == m.TransactionID && slices.Contains(want, reply.MessageType()) {
				return reply
			}
		}
	}
	return nil
}
