package kubestore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/boot/netns"
	"github.com/bootyard/bootyard/internal/kubetest"
	"github.com/bootyard/bootyard/kubestore"
	"github.com/bootyard/bootyard/store"
)

// BenchmarkDHCPDORAKubernetes is the DHCP server's DISCOVER/OFFER/REQUEST/ACK with every
// lease in a BootyardLeaseBlock on a real kube-apiserver + etcd before its ACK, as
// boot.BenchmarkDHCPDORA measures it on bbolt: client and server in two namespaces
// joined by a veth (the DHCP sockets are opened inside the server's namespace; the API
// client stays on this process's loopback), 50 exchanges in flight, distinct MACs, in
// windows of 1,000; then an open loop: new machines arriving at 1,000/s (twice) and
// 1,200/s for 3 s each, latency from each one's scheduled arrival (loadgen.RunOpen). The
// API server and etcd share the machine's cores with the test.
func BenchmarkDHCPDORAKubernetes(b *testing.B) {
	benchDORAReplicas(b, 1)
}

// BenchmarkDHCPDORAKubernetes2Replicas is the same with two replicas on one API server
// and one namespace (one inventory): two Stores, each with its own informer caches and a
// DHCP server on its own segment (10.64/16 and 10.65/16, as per-rack replicas serve
// their racks), each serving half the clients, 25 in flight (the same 50 in all as the
// one-replica benchmark: with a closed loop of clients, more in flight only lengthens
// each exchange by Little's law). A window is 1,000 exchanges per replica; its rate is
// all exchanges over the slower replica's time, its p99 the higher of the two. The open
// loop's rates are the total offered, half to each replica.
func BenchmarkDHCPDORAKubernetes2Replicas(b *testing.B) {
	benchDORAReplicas(b, 2)
}

type doraReplica struct {
	store *kubestore.Store
	srv   *boot.DHCPServer
	conn  *net.UDPConn
	done  chan error
}

func benchDORAReplicas(b *testing.B, replicas int) {
	netns.Require(b)
	api := startAPI(b)
	const windows, perWindow = 3, 1000
	// The open loop's windows: total arrivals per second over all replicas, each for
	// openSeconds, with at most openBound exchanges in flight per replica (a quarter of a
	// second of arrivals at 1,000/s: beyond it an arrival counts as failed).
	openRates := []int{1000, 1000, 1200}
	const openSeconds, openBound = 3, 250
	for i := range b.N {
		ns := fmt.Sprintf("dhcp-bench-%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		reps := make([]doraReplica, replicas)
		for r := range reps {
			reps[r] = startDORAReplica(ctx, b, api, ns, r)
		}
		cpu0, writes0 := apiCPU(b), apiLeaseWrites(b, api)
		acked := 0
		for w := range windows {
			closedLoop := func(r int) (loadgen.Result, error) {
				return loadgen.Run(context.Background(), loadgen.Config{Conn: reps[r].conn,
					Server: netip.MustParseAddrPort("255.255.255.255:67"), Clients: 50 / replicas, Exchanges: perWindow,
					MACPrefix: [2]byte{0x02, byte(0xce + r)}, FirstMAC: uint32(w * perWindow)})
			}
			acked += runDORAWindow(b, reps, fmt.Sprintf("@%dk", w+1), fmt.Sprintf("leases %d→%d", w*perWindow, (w+1)*perWindow), closedLoop)
		}
		cpu1, writes1 := apiCPU(b), apiLeaseWrites(b, api)
		exchanges := float64(replicas * windows * perWindow)
		for _, proc := range []string{"kube-apiserver", "etcd"} {
			b.Logf("%s: %.2f ms CPU per exchange", proc, cpuMsPer(cpu0, cpu1, proc, exchanges))
		}
		b.Logf("API writes of lease blocks: %.0f (%.3f per exchange)", writes1-writes0, (writes1-writes0)/exchanges)
		b.ReportMetric((writes1-writes0)/exchanges, "writes/exch")
		// The open loop: machines arrive at the offered rate (split evenly between the
		// replicas) whatever the server's pace, for openSeconds, and each exchange's
		// latency runs from its scheduled arrival. This, not the closed loop above, is
		// "the p99 at N exchanges/s": a closed loop of 50 clients runs at the server's
		// saturation, where its mean latency is 50 over the rate (Little's law).
		openTotal := 0
		for k, offered := range openRates {
			perReplica := offered * openSeconds / replicas
			openTotal += replicas * perReplica
			openLoop := func(r int) (loadgen.Result, error) {
				return loadgen.RunOpen(context.Background(), loadgen.Config{Conn: reps[r].conn,
					Server: netip.MustParseAddrPort("255.255.255.255:67"), Rate: float64(offered) / float64(replicas),
					Clients: openBound, Exchanges: perReplica, MACPrefix: [2]byte{0x02, byte(0xce + r)}, FirstMAC: uint32(100_000 * (k + 1))})
			}
			acked += runDORAWindow(b, reps, fmt.Sprintf("@open%d-%d", offered, k+1), fmt.Sprintf("open loop, %d/s offered", offered), openLoop)
		}
		cpu2, writes2 := apiCPU(b), apiLeaseWrites(b, api)
		for _, proc := range []string{"kube-apiserver", "etcd"} {
			b.Logf("open loop: %s: %.2f ms CPU per exchange", proc, cpuMsPer(cpu1, cpu2, proc, float64(openTotal)))
		}
		b.Logf("open loop: API writes of lease blocks: %.0f (%.3f per exchange)", writes2-writes1, (writes2-writes1)/float64(openTotal))
		b.ReportMetric((writes2-writes1)/float64(openTotal), "writes/exch-open")
		lastACK := time.Now()
		for r := range reps {
			reps[r].conn.Close()
		}
		cancel()
		for r := range reps {
			if err := <-reps[r].done; err != nil {
				b.Errorf("replica %d: Run: %v", r, err)
			}
			stats := reps[r].srv.Stats()
			b.Logf("replica %d: %d ACKs in %d commits (%.1f leases per commit, %.2f ms per commit)", r, stats.Acks, stats.CommitBatches,
				float64(stats.LeasesCommited)/float64(max(1, stats.CommitBatches)), float64(stats.CommitNanos)/float64(max(1, stats.CommitBatches))/1e6)
		}
		// Every replica sees every replica's leases: one inventory. How long after the
		// last ACK that takes is the informer caches' lag behind the writes.
		// (An exchange that timed out may still have its lease: at least every ACKed one.)
		want := acked
		for r := range reps {
			kubetest.WaitFor(b, time.Minute, fmt.Sprintf("replica %d's cache to hold %d leases", r, want), func() bool {
				leases, err := reps[r].store.Leases(context.Background())
				return err == nil && len(leases) >= want
			})
		}
		b.Logf("every replica's cache held all %d leases %s after the last ACK", want, time.Since(lastACK).Round(time.Millisecond))
	}
}

// runDORAWindow runs one window on every replica at once and reports its rate (all
// exchanges over the slower replica's time) and p99 (the higher of the replicas') under
// suffix, failures (if any) as a metric too, and returns the exchanges completed.
func runDORAWindow(b *testing.B, reps []doraReplica, suffix, label string, run func(r int) (loadgen.Result, error)) (completed int) {
	b.Helper()
	results := make([]loadgen.Result, len(reps))
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for r := range reps {
		wg.Go(func() { results[r], errs[r] = run(r) })
	}
	wg.Wait()
	total, failed, slowest, p99 := 0, 0, time.Duration(0), time.Duration(0)
	for r, res := range results {
		if errs[r] != nil {
			b.Fatal(errs[r])
		}
		total += res.Exchanges
		failed += res.Failures
		slowest, p99 = max(slowest, res.Elapsed), max(p99, res.P99)
		b.Logf("replica %d, %s: %s", r, label, res)
	}
	b.ReportMetric(float64(total)/slowest.Seconds(), "exch/s"+suffix)
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms"+suffix)
	if failed > 0 {
		b.ReportMetric(float64(failed), "failed"+suffix)
	}
	return total
}

// startDORAReplica starts replica r: a Store on ns and a DHCP server on 10.(64+r).0.0/16
// in a namespace of its own, with a client socket on the other end of its veth.
func startDORAReplica(ctx context.Context, b *testing.B, api *kubetest.API, ns string, r int) doraReplica {
	b.Helper()
	st := openIn(b, api, ns, store.Limits{})
	srvNS, cliNS := netns.New(b, fmt.Sprintf("ksrv%d", r)), netns.New(b, fmt.Sprintf("kcli%d", r))
	srvIf, cliIf := fmt.Sprintf("bsrv%d", r), fmt.Sprintf("bcli%d", r)
	netns.Link(b, srvNS, srvIf, cliNS, cliIf)
	net2 := byte(64 + r)
	srvNS.AddAddr(srvIf, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, net2, 0, 1}), 16))
	cfg := boot.DHCPConfig{Interface: srvIf, Mode: boot.ModeFull, LeaseTime: time.Hour, AdvertiseURL: fmt.Sprintf("http://10.%d.0.1:8080", net2),
		Range:  boot.Range{Start: netip.AddrFrom4([4]byte{10, net2, 1, 0}), End: netip.AddrFrom4([4]byte{10, net2, 255, 250})},
		Router: netip.AddrFrom4([4]byte{10, net2, 0, 1}), SharedLeases: true} // as serve --store kubernetes sets it
	rep := doraReplica{store: st, done: make(chan error, 1)}
	if err := srvNS.Do(func() error {
		var err error
		rep.srv, err = boot.NewDHCP(cfg, st, st, slog.New(slog.DiscardHandler))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	go func() { rep.done <- rep.srv.Run(ctx) }()
	if err := cliNS.Do(func() error {
		var err error
		rep.conn, err = server4.NewIPv4UDPConn(cliIf, &net.UDPAddr{Port: 68})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return rep
}

// apiCPU is the CPU time used so far by this test's own kube-apiserver and etcd (the
// children of this process, found by parent PID: other tests' servers are not counted).
// cpuMsPer is proc's CPU between two apiCPU readings, in milliseconds for each of n
// units of work.
func cpuMsPer(before, after map[string]time.Duration, proc string, n float64) float64 {
	return float64((after[proc] - before[proc]).Microseconds()) / 1000 / n
}

// reportAPICPUPerWrite reports the API server's and etcd's CPU per write over b.N writes.
func reportAPICPUPerWrite(b *testing.B, before, after map[string]time.Duration) {
	for _, proc := range []string{"kube-apiserver", "etcd"} {
		b.ReportMetric(cpuMsPer(before, after, proc, float64(b.N)), proc+"-ms/write")
	}
}

func apiCPU(b *testing.B) map[string]time.Duration {
	b.Helper()
	out := map[string]time.Duration{}
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15), counted after the comm's ')'.
		end := bytes.LastIndexByte(raw, ')')
		start := bytes.IndexByte(raw, '(')
		if start < 0 || end < start {
			continue
		}
		comm := string(raw[start+1 : end])
		f := strings.Fields(string(raw[end+1:]))
		if len(f) < 13 || f[1] != self || (comm != "kube-apiserver" && comm != "etcd") {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		out[comm] += time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	return out
}

// apiLeaseWrites is the API server's count of create, update and delete requests on lease
// blocks so far (apiserver_request_total).
func apiLeaseWrites(b *testing.B, api *kubetest.API) float64 {
	b.Helper()
	raw, err := api.Admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatalf("API server metrics: %v", err)
	}
	total := 0.0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="bootyardleaseblocks"`) {
			continue
		}
		if !strings.Contains(line, `verb="POST"`) && !strings.Contains(line, `verb="PUT"`) && !strings.Contains(line, `verb="DELETE"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			total += v
		}
	}
	return total
}
