package boot

import "sync/atomic"

// TFTPStats are the TFTP server's counters since start.
type TFTPStats struct {
	Requests      uint64 // read requests that reached the handler
	Served        uint64 // transfers completed
	BytesSent     uint64 // file bytes acknowledged, including those of failed transfers
	NotFound      uint64 // plain names that are not in the allow-list
	Refused       uint64 // names that are paths: "../", "/", "\", control bytes, overlong
	WritesRefused uint64 // write requests, all refused
	Malformed     uint64 // unparseable packets on the request port, empty file names
	Failed        uint64 // transfers that started and did not finish (timeouts, client errors)
	Panics        uint64 // requests or transfers whose handling panicked: recovered, refused
	Active        uint64 // transfers in flight now
	Busy          uint64 // read requests answered "server busy" (MaxTransfers in flight)
	Retransmits   uint64 // blocks (and OACKs) sent again after a timeout or a gap report
	Strays        uint64 // datagrams on a transfer port from no transfer's client: dropped
	Repeats       uint64 // read requests from a port with a transfer in flight on every shard: ignored
	// WindowSize is the distribution of negotiated RFC 7440 windowsizes, one sample per
	// started transfer (1 for clients that did not ask).
	WindowSize Histogram
}

// Histogram is a snapshot of a cumulative histogram, in Prometheus's shape: Buckets maps
// each upper bound to the number of samples at or below it.
type Histogram struct {
	Count, Sum uint64
	Buckets    map[float64]uint64
}

// windowBounds are the windowsize histogram's upper bounds: EDK2 asks for 4 by default,
// and useful windows end where a socket buffer fills.
var windowBounds = [...]int{1, 2, 4, 8, 16, 32, 64}

type tftpCounters struct {
	requests, served, bytes, notFound, refused, writesRefused, malformed, failed atomic.Uint64
	retransmits, busy, panics, strays, repeats                                   atomic.Uint64
	active                                                                       atomic.Int64
	windowCount, windowSum                                                       atomic.Uint64
	windowBuckets                                                                [len(windowBounds)]atomic.Uint64 // not cumulative
}

// negotiated records a transfer's negotiated options.
func (c *tftpCounters) negotiated(o tftpOptions) {
	c.windowCount.Add(1)
	c.windowSum.Add(uint64(o.window))
	for i, b := range windowBounds {
		if o.window <= b {
			c.windowBuckets[i].Add(1)
			break
		}
	}
}

// Stats returns a snapshot of the counters.
func (s *TFTPServer) Stats() TFTPStats {
	c := &s.stats
	st := TFTPStats{
		Requests: c.requests.Load(), Served: c.served.Load(), BytesSent: c.bytes.Load(),
		NotFound: c.notFound.Load(), Refused: c.refused.Load(), WritesRefused: c.writesRefused.Load(),
		Malformed: c.malformed.Load(), Failed: c.failed.Load(), Active: uint64(max(c.active.Load(), 0)),
		Retransmits: c.retransmits.Load(), Busy: c.busy.Load(), Panics: c.panics.Load(),
		Strays: c.strays.Load(), Repeats: c.repeats.Load(),
		WindowSize: Histogram{Count: c.windowCount.Load(), Sum: c.windowSum.Load(), Buckets: map[float64]uint64{}},
	}
	var cum uint64
	for i, b := range windowBounds {
		cum += c.windowBuckets[i].Load()
		st.WindowSize.Buckets[float64(b)] = cum
	}
	return st
}
