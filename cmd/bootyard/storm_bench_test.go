package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
)

// The storm lab: the server's namespace holds 10.72.0.1/16 on a veth; the machines'
// namespace holds 10.72.0.2 on the other end and treats the whole lease range as its own
// (a "local" route), so each simulated machine can use its leased address as its source,
// as a real one does.
const (
	stormServer    = "10.72.0.1"
	stormRange     = "10.72.16.1-10.72.31.254"
	stormLocalNet  = "10.72.16.0/20"
	stormScriptURL = "http://" + stormServer + ":8080/boot.ipxe"
)

// stormServers are the servers a storm runs against: Bootyard, and dnsmasq (Debian's
// dnsmasq-base) as the yardstick where it is installed.
func stormServers() []string {
	s := []string{"bootyard"}
	if _, err := exec.LookPath("dnsmasq"); err == nil {
		s = append(s, "dnsmasq")
	}
	return s
}

// TestStorm_FiftyMachinesBootWithoutAnError is the storm benchmark at a small size: 50
// machines at once, every one through DHCP, TFTP of a 1 MiB ipxe.efi, DHCP as iPXE and
// its script over HTTP, against Bootyard and dnsmasq alike. Bootyard logs at info here,
// and must have released its executable's start-up pages before it answered HTTP: the
// storm then runs on the pages it maps back.
func TestStorm_FiftyMachinesBootWithoutAnError(t *testing.T) {
	netns.Require(t)
	bin := buildBinary(t)
	for _, server := range stormServers() {
		t.Run(server, func(t *testing.T) {
			res, _, _ := runStorm(t, bin, server, "info", 50, 50, 0x10)
			t.Log(res)
			if res.Booted != 50 || res.Failures != 0 {
				t.Errorf("%d booted, %d failed (%v), want 50 and none", res.Booted, res.Failures, res.Errors)
			}
		})
	}
}

// BenchmarkStorm boots 1,000 simulated UEFI machines through the real `serve` process,
// 100 at a time and all at once, and dnsmasq the same way, interleaved (Bootyard,
// dnsmasq, Bootyard, dnsmasq: BOOTYARD_BENCH_RUNS rounds, default 2) on a machine whose
// load drifts. Run with -benchtime 1x; BOOTYARD_STORM_MACHINES changes the 1,000,
// BOOTYARD_STORM_GOMEMLIMIT runs the server with that GOMEMLIMIT, and
// BOOTYARD_STORM_BASELINE=<bootyard binary> adds server=baseline, another build's `serve`
// (e.g. main's) run the same way in each round, for an A/B in the same period.
//
// peak-RSS-MiB is the server's VmHWM, its peak since it started (start-up included);
// storm-RSS-MiB, peak-anon-MiB and peak-file-MiB the largest of each seen in samples
// every 20 ms while the storm ran.
func BenchmarkStorm(b *testing.B) {
	netns.Require(b)
	bin := buildBinary(b)
	machines := 1000
	if v, err := strconv.Atoi(os.Getenv("BOOTYARD_STORM_MACHINES")); err == nil && v > 0 {
		machines = v
	}
	runs := 2
	if v, err := strconv.Atoi(os.Getenv("BOOTYARD_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	servers := stormServers()
	if os.Getenv("BOOTYARD_STORM_BASELINE") != "" {
		servers = slices.Insert(servers, 1, "baseline")
	}
	for _, conc := range []int{100, machines} {
		for run := range runs * len(servers) {
			server := servers[run%len(servers)]
			b.Run(fmt.Sprintf("machines=%d/conc=%d/window=%d/run=%d/server=%s", machines, conc, stormWindow(), run/len(servers)+1, server), func(b *testing.B) {
				for i := range b.N {
					res, mem, cpu := runStorm(b, bin, server, "warn", machines, conc, byte(0x20+i))
					b.ReportMetric(res.Rate, "machines/s")
					b.ReportMetric(float64(res.Failures), "failed")
					b.ReportMetric(float64(res.NAKs), "NAK-restarts")
					b.ReportMetric(float64(mem.HWM)/(1<<20), "peak-RSS-MiB")
					b.ReportMetric(float64(mem.RSS)/(1<<20), "storm-RSS-MiB")
					b.ReportMetric(float64(mem.Anon)/(1<<20), "peak-anon-MiB")
					b.ReportMetric(float64(mem.File)/(1<<20), "peak-file-MiB")
					b.ReportMetric(cpu.Seconds()*1000/float64(max(res.Booted, 1)), "server-CPU-ms/machine")
					for _, p := range loadgen.Phases {
						b.ReportMetric(ms(res.Phases[p].P50), p+"-p50-ms")
						b.ReportMetric(ms(res.Phases[p].P99), p+"-p99-ms")
					}
					b.Logf("%s: %s; server CPU %s; peaks while it ran: %s", server, res, cpu, mem)
				}
			})
		}
	}
}

// stormWindow is the windowsize the machines ask for: EDK2's 4, or BOOTYARD_STORM_WINDOW.
func stormWindow() int {
	if v, err := strconv.Atoi(os.Getenv("BOOTYARD_STORM_WINDOW")); err == nil && v >= 0 {
		return v
	}
	return 4
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runStorm builds the lab, starts server, boots the machines and returns the figures,
// the server process's memory peaks and the CPU time it spent on the storm. macByte keeps
// the MACs of separate runs apart; logLevel is Bootyard's (at info, the release of its
// start-up pages is checked for in its log).
func runStorm(t testing.TB, bin, server, logLevel string, machines, conc int, macByte byte) (loadgen.StormResult, loadgen.Memory, time.Duration) {
	t.Helper()
	srv, cli := netns.New(t, "ssrv"), netns.New(t, "scli")
	netns.Link(t, srv, "ssrv", cli, "scli")
	srv.AddAddr("ssrv", netip.MustParsePrefix(stormServer+"/16"))
	cli.AddAddr("scli", netip.MustParsePrefix("10.72.0.2/16"))
	cli.IP("route", "add", "local", stormLocalNet, "dev", "lo")
	dir := stormIPXEDir(t)
	var pid int
	var serveLog string
	switch server {
	case "bootyard":
		pid, serveLog = startStormBootyard(t, srv, bin, dir, logLevel)
	case "baseline":
		pid, serveLog = startStormBootyard(t, srv, os.Getenv("BOOTYARD_STORM_BASELINE"), dir, logLevel)
	case "dnsmasq":
		pid = startStormDnsmasq(t, srv, dir)
	}
	waitStormHTTP(t, cli)
	if server == "bootyard" && logLevel == "info" {
		// serve releases before it serves HTTP, so it is in the log by now.
		if b, err := os.ReadFile(serveLog); err != nil || !strings.Contains(string(b), "released the executable's start-up pages") {
			t.Errorf("serve answers HTTP and has not logged the release of its start-up pages (%v):\n%s", err, b)
		}
	}

	var dhcpConn *net.UDPConn
	if err := cli.Do(func() error {
		var err error
		dhcpConn, err = server4.NewIPv4UDPConn("scli", &net.UDPAddr{Port: 68})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer dhcpConn.Close()
	// A thousand machines have a thousand NICs; here their DHCP replies share one socket,
	// whose default buffer (208 KiB) would drop a burst of them and blame the server.
	if err := forceReadBuffer(dhcpConn, 16<<20); err != nil {
		t.Fatal(err)
	}
	cfg := loadgen.StormConfig{
		DHCP: loadgen.Config{Conn: dhcpConn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
			MACPrefix: [2]byte{0x06, macByte}, Timeout: 2 * time.Second, Retries: 4},
		Machines: 1, Concurrent: 1,
		// A UEFI PXE ROM's read: EDK2 asks for blksize 1468 and windowsize 4
		// (PcdPxeTftpWindowSize); dnsmasq 2.90 ignores windowsize and sends one block at
		// a time. BOOTYARD_STORM_WINDOW=0 makes the machines not ask.
		TFTP: loadgen.TFTPRequest{BlockSize: 1468, WindowSize: stormWindow(), Timeout: 2 * time.Second, Retries: 5},
		ListenUDP: func(ip netip.Addr) (*net.UDPConn, error) {
			var c *net.UDPConn
			err := cli.Do(func() error {
				var err error
				c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
				return err
			})
			return c, err
		},
		DialTCP: func(ctx context.Context, ip netip.Addr, addr string) (net.Conn, error) {
			var c net.Conn
			err := cli.Do(func() error {
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))}
				var err error
				c, err = d.DialContext(ctx, "tcp4", addr)
				return err
			})
			return c, err
		},
	}
	// One machine first, until it boots: the server binds DHCP and TFTP after HTTP, and
	// a storm must not start with every machine's first DISCOVER lost.
	for i := 0; ; i++ {
		cfg.DHCP.FirstMAC = uint32(i)
		warm, err := loadgen.Storm(context.Background(), cfg)
		if err == nil && warm.Booted == 1 {
			break
		}
		if i == 20 {
			t.Fatalf("%s: a single machine does not boot: %v %v", server, err, warm.Errors)
		}
	}
	cfg.DHCP.MACPrefix[0], cfg.DHCP.FirstMAC = 0x02, 0
	cfg.Machines, cfg.Concurrent = machines, conc
	idle, err := loadgen.ReadMemory(pid)
	if err != nil {
		t.Fatalf("%s: %v", server, err)
	}
	cpu0, err := loadgen.CPUTime(pid)
	if err != nil {
		t.Fatalf("%s: %v", server, err)
	}
	stopWatch := loadgen.WatchMemory(pid, 20*time.Millisecond)
	res, err := loadgen.Storm(context.Background(), cfg)
	mem := stopWatch()
	if err != nil {
		t.Fatal(err)
	}
	cpu1, err := loadgen.CPUTime(pid)
	if err != nil {
		t.Errorf("%s: %v", server, err)
	}
	t.Logf("%s: before the storm (one machine booted): %s", server, idle)
	// Where datagrams were dropped for want of buffer space: the server's side or the
	// machines'. Either makes machines retry after their timeout.
	t.Logf("%s: UDP receive-buffer drops: server side %s, machines' side %s", server, udpDrops(srv), udpDrops(cli))
	return res, mem, cpu1 - cpu0
}

// forceReadBuffer sets SO_RCVBUFFORCE (root may exceed net.core.rmem_max).
func forceReadBuffer(c *net.UDPConn, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	return serr
}

// udpDrops is the namespace's UDP RcvbufErrors counter from /proc/net/snmp.
func udpDrops(ns *netns.NS) string {
	out, err := ns.Exec(context.Background(), "cat", "/proc/net/snmp")
	if err != nil {
		return "?"
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(fields) {
				return fields[i]
			}
		}
	}
	return "?"
}

// stormIPXEDir is an iPXE directory with a 1 MiB ipxe.efi (the size of Debian's) and a
// BIOS image, random bytes.
func stormIPXEDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for name, size := range map[string]int{"ipxe.efi": 1 << 20, "undionly.kpxe": 70_000} {
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startStormBootyard runs `bootyard serve` with DHCP and TFTP on the server's veth and
// returns its PID (`ip netns exec` execs it in place) and the file it logs to.
func startStormBootyard(t testing.TB, ns *netns.NS, bin, ipxeDir, logLevel string) (int, string) {
	t.Helper()
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, bin, "serve", "--data", data, "--listen", stormServer+":8080",
		"--advertise-url", "http://"+stormServer+":8080", "--dhcp-interface", "ssrv",
		"--dhcp-range", stormRange, "--ipxe-dir", ipxeDir, "--log-level", logLevel)
	if lim := os.Getenv("BOOTYARD_STORM_GOMEMLIMIT"); lim != "" {
		// The server's heap cap alone: GOMEMLIMIT in the benchmark's own environment
		// would slow the load generator too.
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+lim)
	}
	logf, err := os.Create(filepath.Join(data, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("serve log:\n%s", b)
			}
		}
	})
	return cmd.Process.Pid, logf.Name()
}

// startStormDnsmasq runs dnsmasq with what Bootyard does here: DHCP on the veth (no DNS),
// ipxe.efi over TFTP to UEFI PXE ROMs, the script URL to iPXE (option 175), and a tiny Go
// file server in the same namespace for the script. --no-ping: dnsmasq would otherwise
// probe each address before offering it, which Bootyard does not do, and the machines'
// namespace answers for every address in the range. Returns dnsmasq's PID.
func startStormDnsmasq(t testing.TB, ns *netns.NS, ipxeDir string) int {
	t.Helper()
	tmp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "dnsmasq", "--keep-in-foreground", "--port=0", "--conf-file=/dev/null",
		"--pid-file=", "--user=root", "--log-facility=/dev/null", "--interface=ssrv", "--bind-interfaces",
		"--dhcp-range=10.72.16.1,10.72.31.254,255.255.0.0,1h", "--dhcp-authoritative", "--no-ping",
		"--dhcp-lease-max=100000", "--dhcp-leasefile="+filepath.Join(tmp, "leases"),
		"--dhcp-match=set:ipxe,175", "--dhcp-boot=tag:!ipxe,ipxe.efi", "--dhcp-boot=tag:ipxe,"+stormScriptURL,
		"--enable-tftp", "--tftp-root="+ipxeDir, "--tftp-max=5000")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", stormServer+":8080")
		return err
	}); err != nil {
		cancel()
		t.Fatal(err)
	}
	script := []byte("#!ipxe\nchain http://" + stormServer + ":8080/agent/vmlinuz\n")
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/boot.ipxe" && r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(script)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); cancel(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// waitStormHTTP waits until the server answers HTTP from the machines' side.
func waitStormHTTP(t testing.TB, cli *netns.NS) {
	t.Helper()
	hc := cli.HTTPClient()
	hc.Timeout = time.Second
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get("http://" + stormServer + ":8080/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer HTTP: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
