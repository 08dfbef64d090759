package boot

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/ipxe"
)

// tftpFiles is the fake iPXE directory: sizes chosen to hit the block edge cases (a last
// block shorter than blksize, a file that is an exact multiple of 512 and so ends with an
// empty DATA block, and a 1 MiB image like ipxe.efi).
var tftpFiles = map[string]int{
	"undionly.kpxe": 74213,
	"snponly.efi":   512 * 40,
	"ipxe.efi":      1 << 20,
}

// tftpTestDir writes random contents for tftpFiles, ipxe.efi as a symlink to a file
// elsewhere as on Debian, and a secret beside the directory that must never be served.
func tftpTestDir(t testing.TB) (dir string, secret string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "ipxe")
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range tftpFiles {
		b := make([]byte, size)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if name == "ipxe.efi" {
			path = filepath.Join(root, "boot", name)
			if err := os.Symlink(path, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret = filepath.Join(root, "secret")
	if err := os.WriteFile(secret, []byte("join-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

func tftpQuietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startTFTPIn runs a TFTP server inside ns (its socket and every transfer socket live
// there) and stops it when the test ends.
func startTFTPIn(t testing.TB, ns *netns.NS, cfg TFTPConfig, bins TFTPFiles) *TFTPServer {
	t.Helper()
	srv, err := NewTFTP(cfg, bins, tftpQuietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ns.Do(func() error { return srv.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("tftp Run: %v", err)
		}
	})
	// Wait for the bind; a server that never binds fails the test at the deadline.
	deadline := time.Now().Add(10 * time.Second)
	for srv.Addr() == nil {
		select {
		case err := <-errc:
			t.Fatalf("tftp Run returned before serving: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("tftp server did not bind")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return srv
}

// tftpLab is a namespace with a server on its loopback and the fake directory.
type tftpLab struct {
	ns     *netns.NS
	srv    *TFTPServer
	dir    string
	secret string
	bins   *ipxe.Binaries
}

func newTFTPLab(t testing.TB, cfg TFTPConfig) *tftpLab {
	t.Helper()
	return newTFTPLabServing(t, cfg, func(b *ipxe.Binaries) TFTPFiles { return b })
}

// newTFTPLabServing is newTFTPLab with the server given files wrapped by serve.
func newTFTPLabServing(t testing.TB, cfg TFTPConfig, serve func(*ipxe.Binaries) TFTPFiles) *tftpLab {
	t.Helper()
	netns.Require(t)
	ns := netns.New(t, "tftp")
	dir, secret := tftpTestDir(t)
	bins, err := ipxe.OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:69"
	}
	return &tftpLab{ns: ns, srv: startTFTPIn(t, ns, cfg, serve(bins)), dir: dir, secret: secret, bins: bins}
}

// udpIn opens a client socket inside the namespace.
func (l *tftpLab) udpIn(t testing.TB) *net.UDPConn {
	return l.udpInAt(t, net.IPv4(127, 0, 0, 1))
}

// udpInAt opens a client socket on ip (any 127/8 address works on loopback).
func (l *tftpLab) udpInAt(t testing.TB, ip net.IP) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	if err := l.ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func tftpRequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (the Makefile installs it)", name)
	}
}

func ipxeBinaries(dir string) (*ipxe.Binaries, error) { return ipxe.OpenBinaries(dir) }
