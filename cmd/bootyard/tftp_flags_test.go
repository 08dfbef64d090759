package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/loadgen"
)

// TestServe_TFTPLimitsComeFromTheirFlags runs the real `serve` with TFTP on a loopback
// port: --tftp-max-window caps what a client asking for 16 is granted, and with
// --tftp-max-transfers 1 a second read while one is in flight is answered "server busy".
// Nonsense values are refused at start with the flag named.
func TestServe_TFTPLimitsComeFromTheirFlags(t *testing.T) {
	bin := buildBinary(t)
	ipxeDir := stormIPXEDir(t)
	for _, bad := range [][]string{{"--tftp-max-window", "0"}, {"--tftp-max-transfers", "0"}} {
		args := append([]string{"serve", "--data", t.TempDir(), "--listen", freePort(t), "--tftp-listen", "127.0.0.1:0", "--ipxe-dir", ipxeDir}, bad...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), bad[0]) {
			t.Errorf("serve %s %s: %v, want a refusal naming the flag\n%s", bad[0], bad[1], err, out)
		}
	}

	tftpAddr := freeUDPPort(t)
	addr := freePort(t)
	startServer(t, bin, t.TempDir(), addr, "--tftp-listen", tftpAddr.String(), "--ipxe-dir", ipxeDir,
		"--tftp-max-window", "2", "--tftp-max-transfers", "1")

	client := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	req := loadgen.TFTPRequest{Server: tftpAddr, File: "undionly.kpxe", BlockSize: 1468, WindowSize: 16}
	var got bytes.Buffer
	var res loadgen.TFTPResult
	var err error
	// The TFTP socket is bound after HTTP answers: retry until it serves.
	for deadline := time.Now().Add(10 * time.Second); ; {
		got.Reset()
		if res, err = loadgen.TFTPGet(context.Background(), client(), req, &got); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Options["windowsize"] != "2" || got.Len() != 70_000 {
		t.Errorf("granted windowsize %q and %d bytes, want 2 (the flag's cap) and the 70000 of the file", res.Options["windowsize"], got.Len())
	}

	// One transfer held open: its client took the OACK and never acknowledges it. (The
	// read above may still count as in flight until its last ACK is in: until then this
	// one is refused as busy, and asks again.)
	rrq := []byte("\x00\x01ipxe.efi\x00octet\x00tsize\x000\x00")
	for deadline := time.Now().Add(10 * time.Second); ; {
		holder := client()
		if _, err := holder.WriteToUDPAddrPort(rrq, tftpAddr); err != nil {
			t.Fatal(err)
		}
		op, msg := readPacket(t, holder)
		if op == 6 {
			break
		}
		if op != 5 || !strings.Contains(msg, "server busy") || time.Now().After(deadline) {
			t.Fatalf("the first read got opcode %d %q, want OACK", op, msg)
		}
	}
	second := client()
	if _, err := second.WriteToUDPAddrPort(rrq, tftpAddr); err != nil {
		t.Fatal(err)
	}
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 600)
	n, err := second.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 || buf[1] != 5 || !bytes.Contains(buf[4:n], []byte("server busy")) {
		t.Errorf("the second read while one is in flight got %q, want ERROR server busy", buf[:n])
	}
}

// freeUDPPort is a loopback UDP address nothing listens on at the moment.
func freeUDPPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readPacket reads one TFTP packet and returns its opcode and the rest.
func readPacket(t *testing.T, c *net.UDPConn) (uint16, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("a %d-byte packet", n)
	}
	return uint16(buf[0])<<8 | uint16(buf[1]), string(buf[2:n])
}
