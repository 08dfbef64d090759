package boot

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/store"
)

// stallingLeases is a lease store whose commit blocks once, when the lease count reaches
// after, until hold returns: a disk or an API server that stops answering for a while.
type stallingLeases struct {
	LeaseStore
	after   int64
	hold    func()
	written atomic.Int64
	once    sync.Once
}

func (s *stallingLeases) PutLeases(ctx context.Context, leases ...store.Lease) error {
	if s.written.Add(int64(len(leases))) >= s.after {
		s.once.Do(s.hold)
	}
	return s.LeaseStore.PutLeases(ctx, leases...)
}

// openLoopLab is a server on a /16 (room for thousands of leases) whose lease store is
// wrapped by wrap (nil: none), and a client socket.
func openLoopLab(t *testing.T, prefix byte, wrap func(LeaseStore) LeaseStore) loadgen.Config {
	t.Helper()
	l := newLabOn(t, netip.MustParsePrefix("10.64.0.1/16"))
	if wrap != nil {
		l.prepare = func(s *DHCPServer) { s.commit.store = wrap(s.commit.store) }
	}
	cfg := labConfig(ModeFull)
	cfg.Range = Range{Start: netip.MustParseAddr("10.64.1.0"), End: netip.MustParseAddr("10.64.255.250")}
	cfg.Router = netip.MustParseAddr("10.64.0.1")
	cfg.DNS = nil
	l.start(cfg)
	return loadgen.Config{Conn: l.clientConn(), Server: netip.MustParseAddrPort("255.255.255.255:67"), MACPrefix: [2]byte{0x02, prefix}}
}

func TestLoadgenOpen_EveryArrivalIsAFullDORAWithItsOwnAddress(t *testing.T) {
	cfg := openLoopLab(t, 0xa0, nil)
	cfg.Rate, cfg.Clients, cfg.Exchanges = 300, 200, 600
	res, err := loadgen.RunOpen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", res)
	if res.Exchanges != cfg.Exchanges || res.Failures != 0 || res.Overflows != 0 || res.Offered != cfg.Rate {
		t.Fatalf("want %d exchanges offered at %.0f/s, no failures: %s", cfg.Exchanges, cfg.Rate, res)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range res.Addresses {
		if seen[a] || !a.IsValid() {
			t.Fatalf("address %s handed out twice or invalid", a)
		}
		seen[a] = true
	}
}

// A store that stalls for 400 ms holds back the ACK of every machine that arrives during
// the stall: the open loop counts each from its scheduled arrival, so a twentieth of its
// 600 arrivals (those due in the stall's first 200 ms) took at least 200 ms, and the p99
// shows it. A closed loop of two clients, beside it, has only two exchanges in flight to
// be held back and hides the stall from its p99: that is coordinated omission.
func TestLoadgenOpen_AStallingStoreShowsInTheP99(t *testing.T) {
	const stall = 400 * time.Millisecond
	stalling := func(ls LeaseStore) LeaseStore {
		return &stallingLeases{LeaseStore: ls, after: 100, hold: func() { time.Sleep(stall) }}
	}
	open := openLoopLab(t, 0xa1, stalling)
	open.Rate, open.Clients, open.Exchanges = 300, 600, 600
	res, err := loadgen.RunOpen(context.Background(), open)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("open loop, a %s stall: %s", stall, res)
	if res.Exchanges != open.Exchanges || res.Failures != 0 {
		t.Fatalf("want all %d exchanges, no failures: %s", open.Exchanges, res)
	}
	if res.P99 < stall/2 {
		t.Fatalf("a %s stall of the store with %.0f arrivals/s: open-loop p99 %s, want >= %s", stall, open.Rate, res.P99, stall/2)
	}

	closed := openLoopLab(t, 0xa2, stalling)
	closed.Clients, closed.Exchanges = 2, 600
	cres, err := loadgen.Run(context.Background(), closed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("closed loop of 2 clients, the same stall: %s", cres)
}

// A server that stops committing leaves the open loop with arrivals it cannot place: the
// bound on exchanges in flight turns them into counted failures instead of goroutines
// without end, and every arrival is accounted for.
func TestLoadgenOpen_AServerThatStopsGivesCountedFailuresWithinTheBound(t *testing.T) {
	release := make(chan struct{})
	cfg := openLoopLab(t, 0xa3, func(ls LeaseStore) LeaseStore {
		return &stallingLeases{LeaseStore: ls, after: 1, hold: func() { <-release }}
	})
	// Cleanups run last first: this one before the server's stop, which waits for the commit.
	t.Cleanup(func() { close(release) })
	// Every exchange waits at least Timeout for an ACK that never comes, so at 200/s
	// about 20 are due within any one Timeout: more than the 5 allowed in flight.
	cfg.Rate, cfg.Clients, cfg.Exchanges = 200, 5, 100
	cfg.Timeout, cfg.Retries = 100*time.Millisecond, 1
	var sent atomic.Int64
	cfg.Observe = func(loadgen.Attempt) { sent.Add(1) }
	res, err := loadgen.RunOpen(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", res)
	if res.Exchanges != 0 || res.Failures != cfg.Exchanges || res.Overflows == 0 {
		t.Fatalf("want every one of %d arrivals failed, some over the bound: %s", cfg.Exchanges, res)
	}
	if got := sent.Load() + int64(res.Overflows); got != int64(cfg.Exchanges) {
		t.Fatalf("%d sent + %d over the bound = %d, want %d arrivals", sent.Load(), res.Overflows, got, cfg.Exchanges)
	}
}
