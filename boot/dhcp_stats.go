package boot

import "sync/atomic"

// DHCPStats are the server's counters since start. Prometheus export reads them.
type DHCPStats struct {
	Received       uint64 // datagrams read from the sockets
	Malformed      uint64 // not parseable as DHCP (truncated, bad cookie, bad options)
	UnknownOptions uint64 // options the server does not know, dropped (never echoed)
	Ignored        uint64 // valid but not for us: replies, non-Ethernet, other server chosen, non-PXE in proxy mode
	RateLimited    uint64 // dropped by the per-MAC limit
	QueueFull      uint64 // dropped because every handler was busy
	NoSubnet       uint64 // relayed from a subnet we do not serve
	OutsideSubnets uint64 // from a subnet outside --dhcp-subnets: another replica's
	PoolExhausted  uint64 // DISCOVER with no address left to offer
	Discovers      uint64
	Offers         uint64
	Requests       uint64
	Acks           uint64
	Naks           uint64
	Releases       uint64
	Declines       uint64
	Informs        uint64
	ProxyReplies   uint64 // proxyDHCP offers and port-4011 ACKs
	Relayed        uint64 // replies sent to a relay (giaddr)
	CommitBatches  uint64 // bbolt transactions written for leases
	LeasesCommited uint64 // leases written in those transactions
	CommitErrors   uint64
	CommitConflict uint64 // of those, leases the store refused because another server holds the address (NAKed)
	CommitNanos    uint64 // total time spent in lease transactions (fsyncs included)
	SendErrors     uint64
	BootRecords    uint64 // RecordBoot calls made for PXE/iPXE clients
	BootRecordDrop uint64 // discovery records dropped because the recorder was behind
	Panics         uint64 // packets (or background records, commits) whose handling panicked: recovered, dropped
	ReleaseSpoofed uint64 // RELEASEs ignored: not from the lease's own address, or for another client's lease
	DeclineSpoofed uint64 // DECLINEs ignored: from a configured address, or for another client's address
	ActiveLeases   uint64 // leases active at the time of the Stats call
}

// dhcpCounters is DHCPStats with atomic fields, for the packet path.
type dhcpCounters struct {
	received, malformed, unknownOptions, ignored, rateLimited, queueFull, noSubnet, poolExhausted      atomic.Uint64
	discovers, offers, requests, acks, naks, releases, declines, informs, proxyReplies, relayed        atomic.Uint64
	commitBatches, leasesCommitted, commitErrors, commitNanos, sendErrors, bootRecords, bootRecordDrop atomic.Uint64
	panics, releaseSpoofed, declineSpoofed, outsideSubnets, commitConflicts                            atomic.Uint64
}

func (c *dhcpCounters) snapshot() DHCPStats {
	return DHCPStats{
		Received: c.received.Load(), Malformed: c.malformed.Load(), UnknownOptions: c.unknownOptions.Load(),
		Ignored: c.ignored.Load(), RateLimited: c.rateLimited.Load(), QueueFull: c.queueFull.Load(),
		NoSubnet: c.noSubnet.Load(), OutsideSubnets: c.outsideSubnets.Load(), PoolExhausted: c.poolExhausted.Load(),
		Discovers: c.discovers.Load(), Offers: c.offers.Load(), Requests: c.requests.Load(), Acks: c.acks.Load(),
		Naks: c.naks.Load(), Releases: c.releases.Load(), Declines: c.declines.Load(), Informs: c.informs.Load(),
		ProxyReplies: c.proxyReplies.Load(), Relayed: c.relayed.Load(),
		CommitBatches: c.commitBatches.Load(), LeasesCommited: c.leasesCommitted.Load(), CommitErrors: c.commitErrors.Load(), CommitConflict: c.commitConflicts.Load(), CommitNanos: c.commitNanos.Load(),
		SendErrors: c.sendErrors.Load(), BootRecords: c.bootRecords.Load(), BootRecordDrop: c.bootRecordDrop.Load(),
		Panics: c.panics.Load(), ReleaseSpoofed: c.releaseSpoofed.Load(), DeclineSpoofed: c.declineSpoofed.Load(),
	}
}
