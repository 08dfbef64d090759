package netns

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestNetns_VethJoinsTwoNamespacesAndNothingElse(t *testing.T) {
	a, b := New(t, "a"), New(t, "b")
	Link(t, a, "va", b, "vb")
	a.AddAddr("va", netip.MustParsePrefix("10.250.0.1/24"))
	b.AddAddr("vb", netip.MustParsePrefix("10.250.0.2/24"))

	// A socket made inside Do lives in namespace b; a datagram from a reaches it.
	var conn net.PacketConn
	if err := b.Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp4", "10.250.0.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port

	var out net.Conn
	if err := a.Do(func() error {
		var err error
		out, err = net.Dial("udp4", net.JoinHostPort("10.250.0.2", strconv.Itoa(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "hello" || !strings.HasPrefix(from.String(), "10.250.0.1:") {
		t.Fatalf("got %q from %s, want hello from 10.250.0.1", buf[:n], from)
	}

	// The root namespace does not see the test address: Do switched back.
	if _, err := net.ListenPacket("udp4", "10.250.0.2:0"); err == nil {
		t.Fatal("10.250.0.2 is bindable outside the namespace: Do leaked the namespace")
	}
	links, err := a.Exec(context.Background(), "ip", "-o", "link")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(links), "va@") {
		t.Fatalf("ip netns exec does not see va: %s", links)
	}
}

func TestNetns_BridgeAndTapLiveInsideTheNamespace(t *testing.T) {
	ns := New(t, "br")
	ns.AddBridge("br0")
	ns.AddTap("tap0", "br0")
	out, err := ns.Exec(context.Background(), "ip", "-o", "link", "show", "master", "br0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "tap0") {
		t.Fatalf("tap0 not enslaved to br0: %s", out)
	}
	if _, err := net.InterfaceByName("br0"); err == nil {
		t.Fatal("br0 exists in the root namespace")
	}
}
