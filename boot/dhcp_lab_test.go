package boot

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/bootyard/bootyard/boot/netns"
)

// lab is a server namespace and a client namespace joined by a veth: bsrv (10.77.0.1/24)
// in srv, bcli (no address) in cli. Everything the tests send stays on that wire.
type lab struct {
	t        testing.TB
	srv, cli *netns.NS
	inv      *testInventory
	dir      string
	log      *slog.Logger // nil: quiet
	// prepare, when set, changes the server after it is built and before it runs.
	prepare func(*DHCPServer)
}

func newLab(t testing.TB) *lab { return newLabOn(t, netip.MustParsePrefix("10.77.0.1/24")) }

// newLabOn is newLab with the server's address (and so the served subnet) chosen.
func newLabOn(t testing.TB, server netip.Prefix) *lab {
	t.Helper()
	l := &lab{t: t, srv: netns.New(t, "srv"), cli: netns.New(t, "cli"), dir: t.TempDir()}
	netns.Link(t, l.srv, "bsrv", l.cli, "bcli")
	l.srv.AddAddr("bsrv", server)
	l.inv = openTestStore(t, l.dir)
	return l
}

func labConfig(mode DHCPMode) DHCPConfig {
	cfg := testConfig(mode)
	cfg.Interface = "bsrv"
	return cfg
}

// start builds the server inside the server namespace and runs it until the returned
// stop (also registered with t.Cleanup) is called.
func (l *lab) start(cfg DHCPConfig) (*DHCPServer, func()) {
	l.t.Helper()
	var s *DHCPServer
	if err := l.srv.Do(func() error {
		var err error
		log := l.log
		if log == nil {
			log = quietLogger()
		}
		s, err = NewDHCP(cfg, l.inv, l.inv, log)
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	if l.prepare != nil {
		l.prepare(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			l.t.Errorf("Run: %v", err)
		}
	}
	l.t.Cleanup(stop)
	return s, stop
}

// clientConn opens a DHCP client socket (port 68, broadcast, bound to bcli) in cli.
func (l *lab) clientConn() *net.UDPConn {
	l.t.Helper()
	var c *net.UDPConn
	if err := l.cli.Do(func() error {
		var err error
		c, err = server4.NewIPv4UDPConn("bcli", &net.UDPAddr{Port: 68})
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}

// script writes a DHCP client hook script that appends its arguments and environment
// of interest to out, one line per call.
func (l *lab) script(name, body string) (path, out string) {
	l.t.Helper()
	path = filepath.Join(l.dir, name)
	out = filepath.Join(l.dir, name+".out")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+strings.ReplaceAll(body, "OUT", out)+"\n"), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return path, out
}

// waitForLine polls out until a line contains want (the client runs as its own process).
func waitForLine(t testing.TB, out, want string, limit time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(out)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, want) {
				return line
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(out)
	t.Fatalf("no line with %q in %s; got:\n%s", want, out, b)
	return ""
}

// field returns the value of key=value in a script output line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func isExit(err error) bool {
	var ee interface{ ExitCode() int }
	return errors.As(err, &ee)
}

// waitUntil polls cond until it holds, failing the test at a generous deadline: tests
// wait for a condition, never for a time.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
