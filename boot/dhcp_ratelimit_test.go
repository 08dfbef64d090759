package boot

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/boot/loadgen"
	"github.com/bootyard/bootyard/node"
)

func TestMACLimiter_OneMACSpendsOnlyItsOwnTokens(t *testing.T) {
	l := newMACLimiter(10, 3)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := node.MAC{2, 0, 0, 0, 0, 1}, node.MAC{2, 0, 0, 0, 0, 2}
	steps := []struct {
		mac  node.MAC
		at   time.Duration
		want bool
	}{
		{a, 0, true}, {a, 0, true}, {a, 0, true}, // the burst
		{a, 0, false},                     // spent
		{b, 0, true},                      // another MAC is untouched
		{a, 50 * time.Millisecond, false}, // half a token back
		{a, 100 * time.Millisecond, true}, // one token at 10/s
		{a, 100 * time.Millisecond, false},
		{a, 10 * time.Second, true}, // refilled, capped at the burst
		{a, 10 * time.Second, true},
		{a, 10 * time.Second, true},
		{a, 10 * time.Second, false},
	}
	for i, st := range steps {
		if got := l.allow(st.mac, t0.Add(st.at)); got != st.want {
			t.Fatalf("step %d (%s at %s): allow = %v, want %v", i, st.mac, st.at, got, st.want)
		}
	}
}

func TestDHCP_FloodFromOneMACDoesNotStarveOthers(t *testing.T) {
	l := newLab(t)
	s, _ := l.start(labConfig(ModeFull))
	conn := l.clientConn()
	const flood = 20_000

	var wg sync.WaitGroup
	wg.Go(func() {
		m := discoverFrom(t, mustMAC("52:54:00:66:66:66"))
		b := m.ToBytes()
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
		for range flood {
			if _, err := conn.WriteToUDP(b, dst); err != nil {
				t.Errorf("flood send: %v", err)
				return
			}
		}
	})
	res, err := loadgen.Run(context.Background(), loadgen.Config{Conn: conn, Server: netip.MustParseAddrPort("255.255.255.255:67"),
		Clients: 10, Exchanges: 50, MACPrefix: [2]byte{0x02, 0x66}, Retries: 5})
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if res.Failures != 0 || res.Exchanges != 50 {
		t.Fatalf("during the flood: %s (stats %+v)", res, st)
	}
	// Nearly all of the flood is dropped before parsing; the rest is the burst plus refills.
	if st.RateLimited == 0 || st.Discovers > 1000 {
		t.Fatalf("rate-limited %d, discovers handled %d of a %d flood", st.RateLimited, st.Discovers, flood)
	}
}

func TestMACLimiter_AFloodOfNewMACsStaysUnderTheCap(t *testing.T) {
	tests := []struct {
		name string
		gap  time.Duration // between packets: 0 is faster than any bucket refills
	}{
		{"faster than buckets refill", 0},
		{"slow enough that buckets go idle", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newMACLimiter(10, 40)
			l.maxMACs = 1000
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range 50_000 {
				mac := node.MAC{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
				if !l.allow(mac, t0.Add(time.Duration(i)*tt.gap)) {
					t.Fatalf("packet %d: a new MAC's first packet was refused", i)
				}
				if n := len(l.buckets); n > l.maxMACs {
					t.Fatalf("after %d MACs the limiter holds %d buckets, cap %d", i+1, n, l.maxMACs)
				}
			}
			// Under the cap the limit still bites: one MAC spends its burst and is refused.
			a := node.MAC{2, 0xaa, 0, 0, 0, 1}
			at := t0.Add(50_000 * tt.gap)
			for i := range 40 {
				if !l.allow(a, at) {
					t.Fatalf("burst packet %d refused", i)
				}
			}
			if l.allow(a, at) {
				t.Fatal("the 41st packet in the same instant was allowed")
			}
		})
	}
}
