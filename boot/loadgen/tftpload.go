package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// TFTPLoadConfig is a run of many reads of one file, one at a time per machine.
type TFTPLoadConfig struct {
	// Clients are the machines, opened where they live (a namespace); each reads the
	// file again and again, from its own address.
	Clients   *TFTPClients
	Transfers int         // reads in total
	Request   TFTPRequest // what each reads, with which options; an IPv4 server
	// Expect, when set, is the file's content: every block is compared with it and a
	// read that does not end with the whole of it fails. Without it a read is checked
	// against the size the server announced (tsize).
	Expect []byte
}

// TFTPLoadResult is what a TFTP run measured.
type TFTPLoadResult struct {
	Transfers, Failures int
	Bytes               int64
	Elapsed             time.Duration
	MBps                float64 // aggregate file bytes per second, in 10^6
	P50, P99, Max       time.Duration
	Resends             int   // requests and ACKs re-sent because the server went silent
	Duplicates          int   // blocks received that were not the next one
	Err                 error // the first failure, for the log
}

func (r TFTPLoadResult) String() string {
	return fmt.Sprintf("%d transfers (%d failed) in %s: %.1f MB/s, p50 %s, p99 %s, max %s, %d re-sends, %d duplicate blocks",
		r.Transfers, r.Failures, r.Elapsed.Round(time.Millisecond), r.MBps, r.P50.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Resends, r.Duplicates)
}

// TFTPLoad performs cfg.Transfers reads, each machine of cfg.Clients reading one file
// after another, so that as many reads are in flight as there are machines.
func TFTPLoad(ctx context.Context, cfg TFTPLoadConfig) (TFTPLoadResult, error) {
	if cfg.Clients == nil || len(cfg.Clients.socks) == 0 || cfg.Transfers <= 0 {
		return TFTPLoadResult{}, errors.New("loadgen: need clients and transfers > 0")
	}
	if !cfg.Request.Server.Addr().Is4() {
		return TFTPLoadResult{}, fmt.Errorf("loadgen: tftp server %s: the load's machines speak IPv4", cfg.Request.Server)
	}
	c := cfg.Clients
	var next atomic.Int64
	loops := make([]*tftpLoop, len(c.socks))
	for i, sock := range c.socks {
		lo, hi := i*c.n/len(c.socks), (i+1)*c.n/len(c.socks)
		loops[i] = newTFTPLoop(sock, addrAdd(c.first, uint32(lo)), hi-lo, cfg.Request, cfg.Expect, &next, int64(cfg.Transfers))
	}
	errs := make([]error, len(loops))
	start := time.Now()
	var wg sync.WaitGroup
	for i, l := range loops {
		wg.Go(func() { errs[i] = l.run(ctx) })
	}
	wg.Wait()
	res := TFTPLoadResult{Elapsed: time.Since(start)}
	var lat []time.Duration
	for _, l := range loops {
		res.Transfers += l.res.Transfers
		res.Failures += l.res.Failures
		res.Bytes += l.res.Bytes
		res.Resends += l.res.Resends
		res.Duplicates += l.res.Duplicates
		if res.Err == nil {
			res.Err = l.res.Err
		}
		lat = append(lat, l.lat...)
	}
	if res.Elapsed > 0 {
		res.MBps = float64(res.Bytes) / 1e6 / res.Elapsed.Seconds()
	}
	res.P50, res.P99, res.Max = percentiles(lat)
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	return res, ctx.Err()
}
