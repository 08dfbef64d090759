package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// RunOpen performs cfg.Exchanges DORAs as an OPEN loop: a new machine (a new MAC)
// arrives every 1/cfg.Rate seconds whether or not the earlier ones are done, as machines
// powered on in a rack do, and cfg.Clients bounds how many are in flight at once.
//
// Run's closed loop measures latency at whatever rate the server saturates at: each
// client sends its next DISCOVER only when its last ACK came, so a slow server slows the
// arrivals down with it and the clients in flight set the mean latency (Little's law).
// "p99 at ≥ N exchanges/s" is a question about a server OFFERED N/s, which only an open
// loop asks. Each exchange's latency is taken from its SCHEDULED arrival, not from when
// the generator got round to sending it: if the server (or this generator) falls behind,
// the lateness counts, and a stall shows in the tail as the machines that arrived during
// it saw it (no coordinated omission).
//
// An arrival that finds cfg.Clients exchanges in flight is not sent: it counts in
// Result.Overflows and as a failure, so an overloaded server gives counted failures, not
// an unbounded pile of goroutines.
func RunOpen(ctx context.Context, cfg Config) (Result, error) {
	switch {
	case cfg.Conn == nil:
		return Result{}, errors.New("loadgen: an open loop needs a socket")
	case cfg.Rate <= 0:
		return Result{}, fmt.Errorf("loadgen: an open loop needs a rate > 0, not %g", cfg.Rate)
	case cfg.Clients <= 0:
		return Result{}, fmt.Errorf("loadgen: an open loop needs a bound on clients in flight > 0, not %d", cfg.Clients)
	case cfg.Exchanges <= 0:
		return Result{}, fmt.Errorf("loadgen: an open loop needs exchanges > 0, not %d", cfg.Exchanges)
	case cfg.Clients > 1<<12:
		// dora puts the slot number in the top 12 bits of the transaction ID.
		return Result{}, fmt.Errorf("loadgen: at most %d exchanges in flight, not %d", 1<<12, cfg.Clients)
	}
	return measure(ctx, cfg, func(ctx context.Context, cfg Config, d *demux, t *tally) {
		t.res.Offered = cfg.Rate
		t.res.LagP99 = sendOpen(ctx, cfg, d, t)
	})
}

// sendOpen sends the open loop's arrivals on their schedule and returns how late they
// left (p99), once every exchange is done.
func sendOpen(ctx context.Context, cfg Config, d *demux, t *tally) time.Duration {
	// slots are the worker numbers of free places in flight: taking one is the bound, and
	// its number keeps the transaction IDs of concurrent exchanges apart.
	slots := make(chan uint32, cfg.Clients)
	for w := range cfg.Clients {
		slots <- uint32(w)
	}
	var lagMu sync.Mutex
	lags := make([]time.Duration, 0, cfg.Exchanges)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range cfg.Exchanges {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		var slot uint32
		select {
		case slot = <-slots:
		default:
			t.mu.Lock()
			t.res.Overflows++
			t.res.Failures++
			t.mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer func() { slots <- slot }()
			lag := time.Since(due)
			lagMu.Lock()
			lags = append(lags, lag)
			lagMu.Unlock()
			t.exchange(ctx, cfg, d, i, slot, due)
		})
	}
	wg.Wait()
	t.res.Elapsed = time.Since(start)
	_, lagP99, _ := percentiles(lags)
	return lagP99
}
