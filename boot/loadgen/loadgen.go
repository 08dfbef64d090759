// Package loadgen drives a DHCP server with many concurrent simulated clients, each
// running full DISCOVER/OFFER/REQUEST/ACK exchanges with its own MAC, in a closed loop
// (Run: a fixed number in flight) or arriving at a fixed rate (RunOpen), and reports the
// rate and latency. It is the measuring stick for Bootyard's DHCP hot path; run it only
// inside network namespaces (see boot/netns), never on a real network.
package loadgen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Config describes one run.
type Config struct {
	// Conn is a UDP socket bound to the client port (68) on the client's link, with
	// SO_BROADCAST (server4.NewIPv4UDPConn makes one). Replies for every simulated
	// client arrive on it and are matched by transaction ID.
	Conn *net.UDPConn
	// Server is where DISCOVERs and REQUESTs go, usually 255.255.255.255:67.
	Server netip.AddrPort
	// Clients is the number of exchanges in flight at once (Run), or the most that may
	// be in flight (RunOpen).
	Clients int
	// Rate is RunOpen's arrivals per second: a new machine every 1/Rate seconds.
	Rate float64
	// Exchanges is the total number of DORAs; each uses a new MAC.
	Exchanges int
	// MACPrefix is the first two bytes of every simulated MAC; the other four count up
	// from FirstMAC, so separate runs can use disjoint MACs.
	MACPrefix [2]byte
	FirstMAC  uint32
	// Timeout is how long one reply is awaited before the step is retried; default 1s.
	Timeout time.Duration
	// Retries per step before the exchange counts as failed; default 3.
	Retries int
	// Restarts is how often a client whose exchange failed (no reply after the retries,
	// or a NAK) starts again from DISCOVER, as RFC 2131 §4.4.1 has a client do; default
	// 0. An exchange counts as failed only when its last restart failed too.
	Restarts int
	// Observe, when set, is told of every attempt as it ends (from many goroutines at
	// once): the failures a machine saw and when, not only how many exchanges failed.
	Observe func(Attempt)
}

// Attempt is one DORA try of one client: an ACK (Err nil) or what went wrong.
type Attempt struct {
	MAC [6]byte
	// Start is when its DISCOVER was first sent, End when the ACK came or it gave up.
	Start, End time.Time
	// IP and Server are the address the ACK gave and the server identifier it came with.
	IP, Server netip.Addr
	Err        error
	// NAK is set when Err is a server's NAK (the client starts over at once) rather
	// than silence.
	NAK bool
}

// Result is what one run measured.
type Result struct {
	Exchanges int           // completed DORAs (ACK received)
	Failures  int           // exchanges abandoned after retries, or NAKed, or never sent (Overflows)
	Overflows int           // RunOpen: arrivals not sent because Clients were in flight
	Offered   float64       // RunOpen: the arrival rate asked for, per second
	Elapsed   time.Duration // wall time of the run
	Rate      float64       // completed exchanges per second
	P50, P99  time.Duration // DORA latency, DISCOVER sent (RunOpen: due) to ACK received
	Max       time.Duration
	Addresses []netip.Addr // the address each completed exchange got, in completion order
	// LagP99 is RunOpen's 99th percentile of how late a DISCOVER left after its arrival
	// was due: the generator's own share of the latency (which counts in P99 all the same).
	LagP99 time.Duration
}

func (r Result) String() string {
	if r.Offered > 0 {
		return fmt.Sprintf("%d exchanges offered at %.0f/s (%d failed, %d over the bound in flight) in %s: %.0f/s, p50 %s, p99 %s, max %s; sent late by up to %s (p99)",
			r.Exchanges+r.Failures, r.Offered, r.Failures, r.Overflows, r.Elapsed.Round(time.Millisecond), r.Rate, r.P50, r.P99, r.Max, r.LagP99)
	}
	return fmt.Sprintf("%d exchanges (%d failed) in %s: %.0f/s, p50 %s, p99 %s, max %s",
		r.Exchanges, r.Failures, r.Elapsed.Round(time.Millisecond), r.Rate, r.P50, r.P99, r.Max)
}

// Run performs cfg.Exchanges DORAs with cfg.Clients in flight and returns the figures.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Conn == nil || cfg.Clients <= 0 || cfg.Exchanges <= 0 {
		return Result{}, errors.New("loadgen: need a socket, clients > 0 and exchanges > 0")
	}
	return measure(ctx, cfg, func(ctx context.Context, cfg Config, d *demux, t *tally) {
		t.res.Elapsed = forEach(ctx, cfg.Clients, cfg.Exchanges, func(w, i int) {
			t.exchange(ctx, cfg, d, i, uint32(w), time.Now())
		})
	})
}

// measure owns cfg.Conn for one run: drive sends the exchanges through t and sets
// t.res.Elapsed; measure returns the figures.
func measure(ctx context.Context, cfg Config, drive func(context.Context, Config, *demux, *tally)) (Result, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, stop, err := startDemux(ctx, cfg.Conn)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	t := newTally(cfg.Exchanges)
	drive(ctx, cfg, d, t)
	return t.finish(), ctx.Err()
}

// tally runs exchanges and counts what they measured, from many goroutines at once.
type tally struct {
	mu  sync.Mutex
	res Result
	lat []time.Duration
}

func newTally(exchanges int) *tally {
	return &tally{lat: make([]time.Duration, 0, exchanges)}
}

// exchange is the i-th machine's DORA (with cfg.Restarts) on xid slot worker; its latency
// runs from since.
func (t *tally) exchange(ctx context.Context, cfg Config, d *demux, i int, worker uint32, since time.Time) {
	mac := cfg.mac(uint32(i))
	ack, err := doraObserved(ctx, cfg, d, mac, worker)
	for restart := 0; err != nil && restart < cfg.Restarts && ctx.Err() == nil; restart++ {
		ack, err = doraObserved(ctx, cfg, d, mac, worker)
	}
	took := time.Since(since)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.res.Failures++
		return
	}
	t.res.Exchanges++
	t.lat = append(t.lat, took)
	t.res.Addresses = append(t.res.Addresses, yourIP(ack))
}

// finish is the result once res.Elapsed is set and every exchange is done.
func (t *tally) finish() Result {
	if t.res.Elapsed > 0 {
		t.res.Rate = float64(t.res.Exchanges) / t.res.Elapsed.Seconds()
	}
	t.res.P50, t.res.P99, t.res.Max = percentiles(t.lat)
	return t.res
}

func (cfg Config) withDefaults() Config {
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	return cfg
}

// mac is the n-th simulated MAC: the prefix, then FirstMAC+n.
func (cfg Config) mac(n uint32) [6]byte {
	var mac [6]byte
	mac[0], mac[1] = cfg.MACPrefix[0], cfg.MACPrefix[1]
	binary.BigEndian.PutUint32(mac[2:], cfg.FirstMAC+n)
	return mac
}

// startDemux reads replies on conn for the exchanges in flight; stop ends the reader and
// waits for it, so the next run owns the socket alone.
func startDemux(ctx context.Context, conn *net.UDPConn) (d *demux, stop func(), err error) {
	// A previous run left a deadline in the past to stop its reader; clear it.
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return nil, nil, fmt.Errorf("loadgen: %w", err)
	}
	d = &demux{waiting: make(map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4)}
	readerDone := make(chan struct{})
	go func() { d.read(ctx, conn); close(readerDone) }()
	return d, func() {
		conn.SetReadDeadline(time.Now())
		<-readerDone
	}, nil
}

// forEach runs job(worker, i) for every i below n on workers goroutines, each taking the
// next i when it is done with one, and returns the wall time.
func forEach(ctx context.Context, workers, n int, job func(worker, i int)) time.Duration {
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				job(w, int(i))
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// percentiles sorts lat and returns its median, 99th percentile and maximum.
func percentiles(lat []time.Duration) (p50, p99, maxLat time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
}

func yourIP(ack *dhcpv4.DHCPv4) netip.Addr {
	ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	return ip
}

// demux hands each reply to the exchange waiting for its transaction ID.
type demux struct {
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
}

func (d *demux) expect(xid dhcpv4.TransactionID) chan *dhcpv4.DHCPv4 {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	d.mu.Lock()
	d.waiting[xid] = ch
	d.mu.Unlock()
	return ch
}

func (d *demux) done(xid dhcpv4.TransactionID) {
	d.mu.Lock()
	delete(d.waiting, xid)
	d.mu.Unlock()
}

func (d *demux) read(ctx context.Context, conn *net.UDPConn) {
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		d.mu.Lock()
		ch := d.waiting[m.TransactionID]
		d.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

var errNAK = errors.New("NAK")

// doraObserved is dora, reported to cfg.Observe.
func doraObserved(ctx context.Context, cfg Config, d *demux, mac [6]byte, worker uint32) (*dhcpv4.DHCPv4, error) {
	start := time.Now()
	ack, err := dora(ctx, cfg, d, mac, worker)
	if cfg.Observe != nil {
		a := Attempt{MAC: mac, Start: start, End: time.Now(), Err: err, NAK: errors.Is(err, errNAK)}
		if err == nil {
			a.IP = yourIP(ack)
			a.Server = ipv4(ack.ServerIdentifier())
		}
		cfg.Observe(a)
	}
	return ack, err
}

func ipv4(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip.To4())
	return a
}

// dora runs one exchange and returns the ACK; xids carry the worker number so
// concurrent ones never clash. mods add options to both DISCOVER and REQUEST (a PXE
// ROM's or iPXE's classes).
func dora(ctx context.Context, cfg Config, d *demux, mac [6]byte, worker uint32, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	var xid dhcpv4.TransactionID
	binary.BigEndian.PutUint32(xid[:], worker<<20|uint32(time.Now().UnixNano())&0xfffff)
	ch := d.expect(xid)
	defer d.done(xid)
	hw := net.HardwareAddr(mac[:])

	discover, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithTransactionID(xid), dhcpv4.WithHwAddr(hw),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithBroadcast(true)}, mods...)...)
	if err != nil {
		return nil, err
	}
	offer, err := step(ctx, cfg, discover, ch, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	request, err := dhcpv4.NewRequestFromOffer(offer, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)...)
	if err != nil {
		return nil, err
	}
	ack, err := step(ctx, cfg, request, ch, dhcpv4.MessageTypeAck)
	if err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	return ack, nil
}

func step(ctx context.Context, cfg Config, m *dhcpv4.DHCPv4, ch chan *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	b := m.ToBytes()
	for range cfg.Retries {
		if _, err := cfg.Conn.WriteToUDPAddrPort(b, cfg.Server); err != nil {
			return nil, err
		}
		timer := time.NewTimer(cfg.Timeout)
	wait:
		for {
			select {
			case r := <-ch:
				switch r.MessageType() {
				case want:
					timer.Stop()
					return r, nil
				case dhcpv4.MessageTypeNak:
					timer.Stop()
					return nil, errNAK
				}
			case <-timer.C:
				break wait
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			}
		}
	}
	return nil, fmt.Errorf("no %s after %d tries", want, cfg.Retries)
}
