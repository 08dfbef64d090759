package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// TFTPLoadConfig is a run of many reads of one file, len(Conns) at a time.
type TFTPLoadConfig struct {
	// Conns are the clients' sockets, one per concurrent reader, opened where the
	// clients live (a namespace); each reads one file after another through its own.
	Conns     []*net.UDPConn
	Transfers int         // reads in total
	Request   TFTPRequest // what each reads, with which options
}

// TFTPLoadResult is what a TFTP run measured.
type TFTPLoadResult struct {
	Transfers, Failures int
	Bytes               int64
	Elapsed             time.Duration
	MBps                float64 // aggregate file bytes per second, in 10^6
	P50, P99, Max       time.Duration
	Err                 error // the first failure, for the log
}

func (r TFTPLoadResult) String() string {
	return fmt.Sprintf("%d transfers (%d failed) in %s: %.1f MB/s, p50 %s, p99 %s, max %s",
		r.Transfers, r.Failures, r.Elapsed.Round(time.Millisecond), r.MBps, r.P50.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
}

// TFTPLoad performs cfg.Transfers reads with len(cfg.Conns) in flight.
func TFTPLoad(ctx context.Context, cfg TFTPLoadConfig) (TFTPLoadResult, error) {
	if len(cfg.Conns) == 0 || cfg.Transfers <= 0 {
		return TFTPLoadResult{}, errors.New("loadgen: need sockets and transfers > 0")
	}
	var mu sync.Mutex
	var res TFTPLoadResult
	lat := make([]time.Duration, 0, cfg.Transfers)
	res.Elapsed = forEach(ctx, len(cfg.Conns), cfg.Transfers, func(w, _ int) {
		t0 := time.Now()
		r, err := TFTPGet(ctx, cfg.Conns[w], cfg.Request, io.Discard)
		took := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Failures++
			if res.Err == nil {
				res.Err = err
			}
			return
		}
		res.Transfers++
		res.Bytes += r.Bytes
		lat = append(lat, took)
	})
	if res.Elapsed > 0 {
		res.MBps = float64(res.Bytes) / 1e6 / res.Elapsed.Seconds()
	}
	res.P50, res.P99, res.Max = percentiles(lat)
	return res, ctx.Err()
}
