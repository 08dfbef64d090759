package boot

import "sync/atomic"

// TFTPStats are the TFTP server's counters since start.
type TFTPStats struct {
	Requests      uint64 // read requests that reached the handler
	Served        uint64 // transfers completed
	BytesSent     uint64 // file bytes sent, including those of failed transfers
	NotFound      uint64 // plain names that are not in the allow-list
	Refused       uint64 // names that are paths: "../", "/", "\", control bytes, overlong
	WritesRefused uint64 // write requests, all refused
	Malformed     uint64 // unparseable packets on the request port, empty file names
	Failed        uint64 // transfers that started and did not finish (timeouts, client errors)
	Panics        uint64 // requests whose handler panicked: recovered, refused
	Busy          uint64 // read requests refused because too many transfers were in flight
}

type tftpCounters struct {
	requests, served, bytes, notFound, refused, writesRefused, malformed, failed, panics, busy atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *TFTPServer) Stats() TFTPStats {
	c := &s.stats
	return TFTPStats{
		Requests: c.requests.Load(), Served: c.served.Load(), BytesSent: c.bytes.Load(),
		NotFound: c.notFound.Load(), Refused: c.refused.Load(), WritesRefused: c.writesRefused.Load(),
		Malformed: c.malformed.Load(), Failed: c.failed.Load(), Panics: c.panics.Load(), Busy: c.busy.Load(),
	}
}
