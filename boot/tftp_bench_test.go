package boot

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/ipxe"
)

// BenchmarkTFTP1MiB fetches the 1 MiB ipxe.efi with pin/tftp's client, 10 transfers at a
// time, over a namespace's loopback, per blksize. The dnsmasq sub-benchmarks run the same
// client against dnsmasq's TFTP server on the same machine, as the yardstick.
func BenchmarkTFTP1MiB(b *testing.B) {
	netns.Require(b)
	servers := []string{"bootyard"}
	if _, err := exec.LookPath("dnsmasq"); err == nil {
		servers = append(servers, "dnsmasq")
	}
	for _, server := range servers {
		for _, blksize := range []int{512, 1468} {
			b.Run("server="+server+"/blksize="+strconv.Itoa(blksize), func(b *testing.B) {
				ns := netns.New(b, "tbench")
				dir, _ := tftpTestDir(b)
				switch server {
				case "bootyard":
					lab := &tftpLab{ns: ns, dir: dir}
					bins, err := ipxeBinaries(dir)
					if err != nil {
						b.Fatal(err)
					}
					lab.srv = startTFTPIn(b, ns, TFTPConfig{Listen: "127.0.0.1:69"}, bins)
				case "dnsmasq":
					startDnsmasqTFTP(b, ns, dir)
				}
				benchFetch(b, ns, "ipxe.efi", blksize)
			})
		}
	}
}

func benchFetch(b *testing.B, ns *netns.NS, file string, blksize int) {
	c, err := tftp.NewClient("127.0.0.1:69")
	if err != nil {
		b.Fatal(err)
	}
	c.SetBlockSize(blksize)
	c.RequestTSize(true)
	// Warm up (and wait for the server): the first request may race the bind.
	for i := 0; ; i++ {
		var wt io.WriterTo
		err := ns.Do(func() error { var err error; wt, err = c.Receive(file, "octet"); return err })
		if err == nil {
			if _, err = wt.WriteTo(io.Discard); err == nil {
				break
			}
		}
		if i == 50 {
			b.Fatalf("warm-up fetch: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var failed atomic.Uint64
	b.SetBytes(1 << 20)
	b.SetParallelism(5) // 10 transfers at a time on this machine's GOMAXPROCS of 2
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var wt io.WriterTo
			err := ns.Do(func() error { var err error; wt, err = c.Receive(file, "octet"); return err })
			if err == nil {
				var n int64
				n, err = wt.WriteTo(io.Discard)
				if err == nil && n != 1<<20 {
					failed.Add(1)
				}
			}
			if err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(failed.Load()), "failed")
}

// startDnsmasqTFTP runs dnsmasq as a TFTP-only server (no DNS, no DHCP) inside ns and
// returns its PID.
func startDnsmasqTFTP(b testing.TB, ns *netns.NS, dir string) int {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "dnsmasq", "--keep-in-foreground", "--port=0", "--enable-tftp",
		"--tftp-root="+dir, "--listen-address=127.0.0.1", "--bind-interfaces", "--conf-file=/dev/null",
		"--pid-file=", "--user=root", "--tftp-max=2000", "--log-facility=/dev/null")
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return cmd.Process.Pid // `ip netns exec` execs dnsmasq in its own process
}

// tftpServeDirEnv makes the test binary a TFTP server: see TestTFTPServeProcess.
const tftpServeDirEnv = "BOOTYARD_TFTP_SERVE_DIR"

// startTFTPProcess runs Bootyard's TFTP server as a process of its own inside ns (this
// test binary again, as TestTFTPServeProcess) and returns its PID.
func startTFTPProcess(b *testing.B, ns *netns.NS, dir string) int {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, os.Args[0], "-test.run=^TestTFTPServeProcess$")
	cmd.Env = append(os.Environ(), tftpServeDirEnv+"="+dir)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// TestTFTPServeProcess is the server half of BenchmarkTFTPConcurrent when the benchmark
// runs this binary with BOOTYARD_TFTP_SERVE_DIR set; it serves 127.0.0.1:69 until
// interrupted. Run as a test, it has nothing to do.
func TestTFTPServeProcess(t *testing.T) {
	dir := os.Getenv(tftpServeDirEnv)
	if dir == "" {
		t.Skip("the TFTP server process of BenchmarkTFTPConcurrent; not a test on its own")
	}
	bins, err := ipxe.OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewTFTP(TFTPConfig{Listen: "127.0.0.1:69"}, bins, tftpQuietLog())
	if err != nil {
		t.Fatal(err)
	}
	if path := os.Getenv("BOOTYARD_TFTP_CPUPROFILE"); path != "" {
		// For profiling the server under BenchmarkTFTPConcurrent's load.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkTFTPConcurrent is a boot storm's TFTP half: 1 MiB ipxe.efi at blksize 1468,
// 100 and 1,000 transfers in flight, each client on its own socket (the load generator's
// client asking for windowsize 1, or 4 as EDK2 does; dnsmasq 2.90 ignores the option and
// sends one block per ACK either way), Bootyard then dnsmasq on
// the same namespace loopback, interleaved BOOTYARD_BENCH_RUNS times (default 2), as the
// machine's load drifts.
func BenchmarkTFTPConcurrent(b *testing.B) {
	netns.Require(b)
	servers := []string{"bootyard"}
	if _, err := exec.LookPath("dnsmasq"); err == nil {
		servers = append(servers, "dnsmasq")
	}
	for _, conc := range []int{100, 1000} {
		for _, window := range []int{1, 4} {
			for run, server := range interleave(servers, benchRuns()) {
				name := fmt.Sprintf("conc=%d/window=%d/run=%d/server=%s", conc, window, run/len(servers)+1, server)
				benchTFTPConcurrent(b, name, server, conc, window)
			}
		}
	}
}

func benchTFTPConcurrent(b *testing.B, name, server string, conc, window int) {
	b.Run(name, func(b *testing.B) {
		ns := netns.New(b, "tconc")
		dir, _ := tftpTestDir(b)
		// Both servers are processes of their own, so on a shared machine each gets
		// its own share of the CPU, apart from the load generator's.
		var pid int
		switch server {
		case "bootyard":
			pid = startTFTPProcess(b, ns, dir)
		case "dnsmasq":
			pid = startDnsmasqTFTP(b, ns, dir)
		}
		// The machines, 127.1.0.1 on, each with its own address, read through a few
		// sockets of this process (boot/loadgen/tftp_clients.go).
		clients := openLoadClients(b, ns, conc)
		want, err := os.ReadFile(filepath.Join(dir, "ipxe.efi"))
		if err != nil {
			b.Fatal(err)
		}
		req := loadgen.TFTPRequest{Server: tftpServerPort, File: "ipxe.efi", BlockSize: 1468, WindowSize: window, Timeout: 2 * time.Second}
		warmLoad(b, clients, req)
		b.ResetTimer()
		for range b.N {
			// CPU time of the server and of this process (the clients): on a loaded
			// machine a server's CPU per transfer drifts far less than its MB/s.
			srv0, _ := loadgen.CPUTime(pid)
			cli0, _ := loadgen.CPUTime(os.Getpid())
			res, err := loadgen.TFTPLoad(context.Background(), loadgen.TFTPLoadConfig{
				Clients: clients, Transfers: max(conc, 1000), Request: req, Expect: want})
			if err != nil {
				b.Fatal(err)
			}
			srv1, _ := loadgen.CPUTime(pid)
			cli1, _ := loadgen.CPUTime(os.Getpid())
			perTransfer := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(max(res.Transfers, 1)) }
			b.ReportMetric(perTransfer(srv1-srv0), "server-CPU-ms/transfer")
			b.ReportMetric(perTransfer(cli1-cli0), "client-CPU-ms/transfer")
			b.ReportMetric(res.MBps, "MB/s")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(res.Failures), "failed")
			if rss, err := loadgen.PeakRSS(pid); err == nil {
				b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
			}
			b.Logf("%s; server CPU %s, clients' CPU %s", res, srv1-srv0, cli1-cli0)
			if res.Err != nil {
				b.Logf("first failure: %v", res.Err)
			}
		}
	})
}

// BenchmarkTFTPWindow is one client reading the 1 MiB file at blksize 1468 with
// windowsize 1 (one round trip per block), 4 (EDK2's default) and 16. The window sizes
// take turns (BOOTYARD_BENCH_RUNS rounds, default 2) and each round logs windowsize 16's
// rate over windowsize 1's: on a machine whose load drifts, only rates measured back to
// back make a ratio.
func BenchmarkTFTPWindow(b *testing.B) {
	netns.Require(b)
	ns := netns.New(b, "twin")
	dir, _ := tftpTestDir(b)
	bins, err := ipxeBinaries(dir)
	if err != nil {
		b.Fatal(err)
	}
	startTFTPIn(b, ns, TFTPConfig{Listen: "127.0.0.1:69"}, bins)
	var conn *net.UDPConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for run := range benchRuns() {
		rate := map[int]float64{}
		for _, window := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("windowsize=%d/run=%d", window, run+1), func(b *testing.B) {
				req := loadgen.TFTPRequest{Server: tftpServerPort, File: "ipxe.efi", BlockSize: 1468, WindowSize: window}
				warm(b, conn, req)
				b.SetBytes(1 << 20)
				b.ResetTimer()
				dups := 0
				for range b.N {
					res, err := loadgen.TFTPGet(context.Background(), conn, req, io.Discard)
					if err != nil {
						b.Fatal(err)
					}
					dups += res.Duplicates
				}
				// Blocks the client saw twice or out of order: a ratio that falls
				// with no duplicates is the scheduler, not retransmissions.
				b.ReportMetric(float64(dups)/float64(b.N), "duplicate-blocks/op")
				rate[window] = float64(b.N) / b.Elapsed().Seconds()
			})
		}
		if rate[1] > 0 {
			b.Logf("run %d: windowsize 16 %.1f MB/s, windowsize 1 %.1f MB/s: %.1f×", run+1,
				rate[16]*(1<<20)/1e6, rate[1]*(1<<20)/1e6, rate[16]/rate[1])
		}
	}
}

// warm waits for the server to answer (its bind may race the first request).
func warm(b *testing.B, conn *net.UDPConn, req loadgen.TFTPRequest) {
	b.Helper()
	for i := 0; ; i++ {
		_, err := loadgen.TFTPGet(context.Background(), conn, req, io.Discard)
		if err == nil {
			return
		}
		if i == 50 {
			b.Fatalf("warm-up fetch: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// warmLoad waits for the server to answer the load's machines (its bind may race the
// first request).
func warmLoad(b testing.TB, clients *loadgen.TFTPClients, req loadgen.TFTPRequest) {
	b.Helper()
	for i := 0; ; i++ {
		res, err := loadgen.TFTPLoad(context.Background(), loadgen.TFTPLoadConfig{Clients: clients, Transfers: 1, Request: req})
		if err == nil && res.Failures == 0 {
			return
		}
		if i == 50 {
			b.Fatalf("warm-up fetch: %v %v", err, res.Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tftpClientLoops is how many loops (threads and sockets) the load generator's machines
// share: BOOTYARD_TFTP_CLIENT_LOOPS, or 1.
func tftpClientLoops() int {
	if v, err := strconv.Atoi(os.Getenv("BOOTYARD_TFTP_CLIENT_LOOPS")); err == nil && v > 0 {
		return v
	}
	return 1
}

// benchRuns is how many times a comparison runs, interleaved: BOOTYARD_BENCH_RUNS, or 2.
func benchRuns() int {
	if v, err := strconv.Atoi(os.Getenv("BOOTYARD_BENCH_RUNS")); err == nil && v > 0 {
		return v
	}
	return 2
}

// interleave repeats the servers' list runs times: ours, theirs, ours, theirs.
func interleave(servers []string, runs int) []string {
	var out []string
	for range runs {
		out = append(out, servers...)
	}
	return out
}
