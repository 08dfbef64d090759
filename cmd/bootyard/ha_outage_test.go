package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// apiOutage is how long the outage test keeps every replica from the API server: the
// issue's 30 s, and past the replicas' 30 s re-read of the cluster Secret, so a machine
// request after it finds that read failing too.
const apiOutage = 33 * time.Second

// TestHA_APIServerUnreachableFor30sMachinesWithLeasesKeepBooting partitions every
// replica from the API server for longer than 30 s. Throughout, a machine that holds a
// lease boots as it would after a power cycle: its INIT-REBOOT REQUEST is ACKed with its
// address, its iPXE script comes from its own address, and so does its NoCloud seed
// with the join token; the same seed asked from another address holds no token. A new
// machine gets no address, and an operator's import is refused with a reason. When the
// API server is back, the renewal made during the outage is on it, the new machine and
// the import go through, and nothing of the inventory is lost.
func TestHA_APIServerUnreachableFor30sMachinesWithLeasesKeepBooting(t *testing.T) {
	netns.Require(t)
	lab := startHALab(t)
	conn := lab.dhcpConn(t)
	lab.waitForOffers(t, conn)
	r := lab.replicas[0]

	const token = "K10outage0123456789abcdef::server:0123456789abcdef"
	if code := lab.send(t, r, http.MethodPatch, "/api/v1/cluster", `{"serverURL":"https://10.73.0.10:6443","token":"`+token+`"}`); code/100 != 2 {
		t.Fatalf("cluster settings: %d", code)
	}
	// An installed machine, as a pivot brings one over: its next boots are from its disk,
	// and its first boot's cloud-init reads the join from the NoCloud seed.
	mac := node.MAC{0x52, 0x54, 0x00, 0x73, 0x30, 0x01}
	lab.importNode(t, node.Node{Name: "kept-1", MACs: []node.MAC{mac}, Role: node.RoleWorker, State: node.StateInstalled, Generation: 1})
	for _, rr := range lab.replicas {
		waitFor(t, time.Minute, rr.id+" has kept-1", func() bool { return lab.nodeCount(t, rr) == 1 })
	}
	ip, ok := lab.dora(t, conn, mac)
	if !ok {
		t.Fatal("kept-1 got no lease before the outage")
	}
	lab.cli.AddAddr(haBridge, netip.PrefixFrom(ip, 16))
	machine := lab.clientFrom(ip)
	stranger := lab.clientFrom(netip.MustParsePrefix(haClientIP).Addr())
	boot := func(when string) {
		t.Helper()
		if reply := initReboot(t, conn, mac, ip); !acked(reply, ip) {
			t.Errorf("%s: kept-1 rebooting with %s: %v, want an ACK of that address", when, ip, reply)
		}
		for _, rr := range lab.replicas {
			base := "http://" + rr.addr
			if code, body := fetch(t, machine, base+"/boot.ipxe?mac="+strings.ReplaceAll(mac.String(), ":", "-")); code != http.StatusOK || !strings.Contains(body, "#!ipxe") {
				t.Errorf("%s: kept-1's iPXE script from %s on %s: %d %q", when, ip, rr.id, code, body)
			}
			for _, path := range []string{"/nocloud/user-data", "/nocloud/" + mac.String() + "/user-data"} {
				if code, body := fetch(t, machine, base+path); code != http.StatusOK || !strings.Contains(body, token) {
					t.Errorf("%s: GET %s from kept-1's address on %s: %d, token in it: %v", when, path, rr.id, code, strings.Contains(body, token))
				}
			}
			if code, body := fetch(t, stranger, base+"/nocloud/"+mac.String()+"/user-data"); code != http.StatusForbidden || strings.Contains(body, token) {
				t.Errorf("%s: kept-1's user-data asked from another address on %s: %d, token in it: %v; want 403 without it", when, rr.id, code, strings.Contains(body, token))
			}
		}
	}
	boot("before the outage")
	before := lab.export(t)
	leaseBefore, ok := leaseOf(before, ip)
	if !ok {
		t.Fatalf("kept-1's lease on %s is not on the API server before the outage", ip)
	}

	for _, l := range lab.links {
		l.cut()
	}
	cutAt := time.Now()
	t.Logf("every replica cut off the API server for %s", apiOutage)
	newMAC := node.MAC{0x52, 0x54, 0x00, 0x73, 0x30, 0x02}
	rounds := 0
	for time.Since(cutAt) < apiOutage {
		boot(fmt.Sprintf("%.0f s into the outage", time.Since(cutAt).Seconds()))
		rounds++
		time.Sleep(2 * time.Second)
	}
	boot(fmt.Sprintf("%.0f s into the outage", time.Since(cutAt).Seconds()))
	if got, ok := lab.dora(t, conn, newMAC); ok {
		t.Errorf("a new machine got %s while no replica could reach the API server: only the API server can say no other replica took it", got)
	}
	code := lab.send(t, r, http.MethodPost, "/api/v1/nodes", `{"macs":["52:54:00:73:30:03"],"role":"worker","name":"late-1"}`)
	if code != http.StatusServiceUnavailable {
		t.Errorf("an import while the API server is unreachable answered %d, want 503", code)
	}
	for _, l := range lab.links {
		l.restore()
	}
	t.Logf("API server back after %s; %d boot rounds of kept-1 during the outage", time.Since(cutAt).Round(time.Second), rounds+1)

	var newIP netip.Addr
	waitFor(t, 2*time.Minute, "the new machine gets an address once the API server is back", func() bool {
		newIP, ok = lab.dora(t, conn, newMAC)
		return ok
	})
	waitFor(t, 2*time.Minute, "the import goes through once the API server is back", func() bool {
		code := lab.send(t, r, http.MethodPost, "/api/v1/nodes", `{"macs":["52:54:00:73:30:03"],"role":"worker","name":"late-1"}`)
		return code/100 == 2
	})
	boot("after the outage")

	var after haExport
	waitFor(t, 2*time.Minute, "the renewal made during the outage is on the API server", func() bool {
		after = lab.export(t)
		l, ok := leaseOf(after, ip)
		return ok && l.Expires.After(leaseBefore.Expires.Add(apiOutage-5*time.Second))
	})
	if n, ok := after.nodes["kept-1"]; !ok || n.State != node.StateInstalled || len(n.MACs) != 1 || n.MACs[0] != mac {
		t.Errorf("kept-1 after the outage: %+v (present: %v)", n, ok)
	}
	if _, ok := after.nodes["late-1"]; !ok {
		t.Error("the import made after the outage is not on the API server")
	}
	if l, ok := leaseOf(after, newIP); !ok || l.MAC != newMAC {
		t.Errorf("the new machine's lease on %s after the outage: %+v (present: %v)", newIP, l, ok)
	}
	for _, l := range before.leases {
		if _, ok := leaseOf(after, l.IP); !ok {
			t.Errorf("lease of %s lost in the outage", l.IP)
		}
	}
}

// importNode writes n through `bootyard store import --to kubernetes`, as a pivot does.
func (lab *haLab) importNode(t *testing.T, n node.Node) {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, rec := range []store.Record{
		{Kind: store.RecordHeader, Format: store.RecordFormatName, Version: store.RecordFormatVersion},
		{Kind: store.RecordNode, Node: &n},
	} {
		if err := enc.Encode(rec); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runBootyard(t, in.String(), "store", "import", "--to", "kubernetes", "--kubeconfig", lab.api.AdminKubeconfig,
		"--store-namespace", kubestore.DefaultNamespace); err != nil {
		t.Fatalf("store import: %v\n%s", err, out)
	}
}

// send is lab.request for a test goroutine: a request that gets no answer fails the
// test, a status other than 2xx is logged with its reason and returned.
func (lab *haLab) send(t *testing.T, r *haReplica, method, path, body string) int {
	t.Helper()
	code, err := lab.request(t.Context(), r, method, path, []byte(body))
	switch {
	case code == 0:
		t.Fatalf("%s: %s %s: %v", r.id, method, path, err)
	case err != nil:
		t.Logf("%s: %s %s: %d %v", r.id, method, path, code, err)
	}
	return code
}

// clientFrom is an HTTP client on the machines' bridge whose connections come from src,
// as a machine's firmware or OS would open them.
func (lab *haLab) clientFrom(src netip.Addr) *http.Client {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: 5 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := lab.cli.Do(func() error {
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}

// fetch is a GET; an error of the request itself is reported as status 0.
func fetch(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// leaseOf is the exported lease record of ip.
func leaseOf(e haExport, ip netip.Addr) (store.LeaseRecord, bool) {
	for _, l := range e.leases {
		if l.IP == ip {
			return l, true
		}
	}
	return store.LeaseRecord{}, false
}
