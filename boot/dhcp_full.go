package boot

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// handleFull answers as the network's address server (RFC 2131).
func (s *DHCPServer) handleFull(ctx context.Context, r request) *dhcpv4.DHCPv4 {
	p := s.poolFor(r)
	if p == nil {
		s.stats.noSubnet.Add(1)
		return nil
	}
	switch r.msg.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		return s.discover(r, p)
	case dhcpv4.MessageTypeRequest:
		return s.request(ctx, r, p)
	case dhcpv4.MessageTypeRelease:
		s.release(ctx, r)
	case dhcpv4.MessageTypeDecline:
		s.decline(ctx, r)
	case dhcpv4.MessageTypeInform:
		return s.inform(r, p)
	default:
		s.stats.ignored.Add(1)
	}
	return nil
}

// poolFor picks the subnet a request belongs to: the relay's (giaddr), else the one
// holding the client's current address (a unicast renewal from behind a relay comes
// without giaddr), else the interface's own.
func (s *DHCPServer) poolFor(r request) *subnetPool {
	if r.giaddr.IsValid() {
		for _, p := range s.pools {
			if p.subnet.Contains(r.giaddr) {
				return p
			}
		}
		return nil
	}
	if r.ciaddr.IsValid() {
		for _, p := range s.pools {
			if p.subnet.Contains(r.ciaddr) {
				return p
			}
		}
	}
	return s.pools[0]
}

// staticFor returns the client's reservation when its address is on pool p. A node whose
// static address belongs to another subnet is served dynamically there.
func (s *DHCPServer) staticFor(r request, p *subnetPool, resv *reservations) (*store.Reservation, netip.Addr) {
	res := resv.forMAC(r.mac)
	if res == nil || !p.subnet.Contains(res.IP.Addr()) {
		return nil, netip.Addr{}
	}
	return res, res.IP.Addr()
}

func (s *DHCPServer) discover(r request, p *subnetPool) *dhcpv4.DHCPv4 {
	s.stats.discovers.Add(1)
	resv := s.resv.Load()
	res, static := s.staticFor(r, p, resv)
	now := s.now()
	ip, ok := s.table.offer(r.mac, p, static, resv, now, s.cfg.OfferHold)
	if !ok {
		s.stats.poolExhausted.Add(1)
		if s.exhaustedLog.allow(now, exhaustedLogEvery) {
			s.log.Warn("dhcp pool exhausted (logged at most every 10s; bootyard_dhcp_packets_total{type=\"discover\",result=\"pool_exhausted\"} counts each)",
				slog.String("mac", r.mac.String()), slog.String("range", p.rng.String()))
		}
		return nil
	}
	reply := s.newReply(r.msg, dhcpv4.MessageTypeOffer)
	reply.YourIPAddr = ip.AsSlice()
	s.addressOptions(reply, p, res, s.cfg.LeaseTime)
	s.addBoot(reply, r)
	s.noteBoot(r.mac, r.client, netip.Addr{})
	s.stats.offers.Add(1)
	return reply
}

// request handles SELECTING, INIT-REBOOT, RENEWING and REBINDING alike (RFC 2131
// §4.3.2): the address asked for (option 50, else ciaddr) must be one this client may
// hold, or it gets a NAK. The lease is durable in bbolt before the ACK leaves.
func (s *DHCPServer) request(ctx context.Context, r request, p *subnetPool) *dhcpv4.DHCPv4 {
	s.stats.requests.Add(1)
	now := s.now()
	if sid := ipv4Field(r.msg.Options.Get(dhcpv4.OptionServerIdentifier)); sid.IsValid() && sid != s.link.addr {
		// SELECTING another server's offer: ours is free again, and the address the
		// client takes is not ours to offer (another replica on this segment leases it).
		if ip := ipv4Field(r.msg.Options.Get(dhcpv4.OptionRequestedIPAddress)); ip.IsValid() && p.subnet.Contains(ip) {
			s.table.takenElsewhere(r.mac, ip, now, now.Add(s.cfg.LeaseTime))
		} else {
			s.table.forgetOffer(r.mac, now)
		}
		s.stats.ignored.Add(1)
		return nil
	}
	want := ipv4Field(r.msg.Options.Get(dhcpv4.OptionRequestedIPAddress))
	if !want.IsValid() {
		want = r.ciaddr
	}
	if !want.IsValid() {
		s.stats.malformed.Add(1)
		return nil
	}
	resv := s.resv.Load()
	res, static := s.staticFor(r, p, resv)
	hostname := ""
	if h := r.msg.Options.Get(dhcpv4.OptionHostName); len(h) > 0 && len(h) <= 63 {
		hostname = node.PrintableBytes(h) // kept with the lease, shown to operators
	}
	lease, snap, verdict := s.table.bind(r.mac, want, p, static, resv, hostname, now, s.cfg.LeaseTime)
	if verdict != bindOK {
		s.log.Debug("dhcp NAK", slog.String("mac", r.mac.String()), slog.String("ip", want.String()), slog.String("why", verdict.String()))
		return s.nak(r, verdict.String())
	}
	if err := s.commit.commit(ctx, lease); err != nil {
		// No ACK without a durable lease: undo, stay silent, the client retransmits.
		s.table.undo(snap)
		if errors.Is(err, node.ErrConflict) && s.table.refused(want, r.mac, now, now.Add(s.cfg.LeaseTime)) {
			// The shared store says another replica leased the address meanwhile. A
			// retransmission would be refused the same way, and our table would go on
			// offering the address to this client: it is now remembered as taken, and
			// the NAK makes the client start over at once and get another (RFC 2131
			// §4.3.2).
			s.stats.commitConflicts.Add(1)
			s.log.Info("dhcp address leased by another server meanwhile; NAK", slog.String("mac", r.mac.String()),
				slog.String("ip", want.String()), slog.Any("err", err))
			return s.nak(r, bindHeldByOther.String())
		}
		s.log.Error("dhcp lease not stored; no ACK sent", slog.String("mac", r.mac.String()), slog.String("ip", want.String()), slog.Any("err", err))
		return nil
	}
	reply := s.newReply(r.msg, dhcpv4.MessageTypeAck)
	reply.YourIPAddr = want.AsSlice()
	if r.ciaddr.IsValid() {
		reply.ClientIPAddr = r.ciaddr.AsSlice()
	}
	s.addressOptions(reply, p, res, s.cfg.LeaseTime)
	s.addBoot(reply, r)
	s.noteBoot(r.mac, r.client, want)
	s.stats.acks.Add(1)
	return reply
}

func (s *DHCPServer) nak(r request, why string) *dhcpv4.DHCPv4 {
	reply := s.newReply(r.msg, dhcpv4.MessageTypeNak)
	reply.Options[dhcpv4.OptionMessage.Code()] = []byte(why)
	if r.giaddr.IsValid() {
		// RFC 2131 §4.3.2: a NAK through a relay asks it to broadcast.
		reply.SetBroadcast()
	}
	s.stats.naks.Add(1)
	return reply
}

// release ends a lease (DHCPRELEASE). DHCP cannot authenticate a MAC, but a client
// releases from the address it holds (RFC 2131 §4.4.6: ciaddr, sent unicast from it), so
// a RELEASE is honoured only when it comes from that address (or through the relay
// that serves it) and ciaddr is the sender's own lease: a spoofed RELEASE from another
// host's socket, for another client's lease, frees nothing and is counted.
func (s *DHCPServer) release(ctx context.Context, r request) {
	s.stats.releases.Add(1)
	if sid := ipv4Field(r.msg.Options.Get(dhcpv4.OptionServerIdentifier)); sid.IsValid() && sid != s.link.addr {
		s.stats.ignored.Add(1)
		return
	}
	if !r.ciaddr.IsValid() {
		s.stats.malformed.Add(1)
		return
	}
	from := r.peer.Addr().Unmap()
	if (r.giaddr.IsValid() && from != r.giaddr) || (!r.giaddr.IsValid() && from != r.ciaddr) {
		s.spoofed(&s.stats.releaseSpoofed, "RELEASE not sent from the leased address", r, r.ciaddr)
		return
	}
	lease, ok := s.table.release(r.mac, r.ciaddr, s.now())
	if !ok {
		if holder, held := s.table.holder(r.ciaddr, s.now()); held && holder != r.mac {
			s.spoofed(&s.stats.releaseSpoofed, "RELEASE for another client's lease", r, r.ciaddr)
			return
		}
		s.stats.ignored.Add(1)
		return
	}
	if err := s.commit.commit(ctx, lease); err != nil {
		s.log.Warn("dhcp release not stored; the lease will simply expire", slog.String("ip", r.ciaddr.String()), slog.Any("err", err))
	}
}

// decline takes an address out of the pool (DHCPDECLINE). A declining client has not
// configured the address (RFC 2131 §4.4.1: ciaddr 0, the address in option 50), so it
// sends from 0.0.0.0 or through its relay; and the address must be the one offered or
// leased to that MAC. Anything else cannot be the client's own DECLINE: it is ignored
// and counted, so a host that merely holds an address cannot take another's out of the
// pool.
func (s *DHCPServer) decline(ctx context.Context, r request) {
	s.stats.declines.Add(1)
	ip := ipv4Field(r.msg.Options.Get(dhcpv4.OptionRequestedIPAddress))
	if !ip.IsValid() {
		s.stats.malformed.Add(1)
		return
	}
	from := r.peer.Addr().Unmap()
	if r.ciaddr.IsValid() || (r.giaddr.IsValid() && from != r.giaddr) || (!r.giaddr.IsValid() && from.IsValid() && !from.IsUnspecified()) {
		s.spoofed(&s.stats.declineSpoofed, "DECLINE from a configured address", r, ip)
		return
	}
	lease, ok := s.table.decline(r.mac, ip, s.now(), s.cfg.DeclineHold)
	if !ok {
		if holder, held := s.table.holder(ip, s.now()); held && holder != r.mac {
			s.spoofed(&s.stats.declineSpoofed, "DECLINE for another client's address", r, ip)
			return
		}
		s.stats.ignored.Add(1)
		return
	}
	// Another host answers ARP for this address: an operator should find out who.
	s.log.Warn("dhcp address declined: in use by an unknown host", slog.String("ip", ip.String()), slog.String("mac", r.mac.String()))
	if err := s.commit.commit(ctx, lease); err != nil {
		s.log.Warn("dhcp decline not stored", slog.String("ip", ip.String()), slog.Any("err", err))
	}
}

// inform answers DHCPINFORM (RFC 2131 §3.4): configuration without an address.
func (s *DHCPServer) inform(r request, p *subnetPool) *dhcpv4.DHCPv4 {
	s.stats.informs.Add(1)
	if !r.ciaddr.IsValid() {
		s.stats.malformed.Add(1)
		return nil
	}
	reply := s.newReply(r.msg, dhcpv4.MessageTypeAck)
	reply.ClientIPAddr = r.ciaddr.AsSlice()
	s.addressOptions(reply, p, nil, s.cfg.LeaseTime)
	for _, c := range []dhcpv4.OptionCode{dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue} {
		delete(reply.Options, c.Code()) // §3.4: no lease time in an INFORM answer
	}
	s.addBoot(reply, r)
	s.stats.acks.Add(1)
	return reply
}

// addBoot adds boot information for network-booting clients only: a plain DHCP client
// (a laptop, an installed node) gets an address and nothing it could misread.
func (s *DHCPServer) addBoot(reply *dhcpv4.DHCPv4, r request) {
	if !r.client.netboot() {
		return
	}
	if c, ok := s.cfg.BootFiles.chooseBoot(r.client, r.mac.String(), s.scriptPrefix, s.httpPrefix); ok {
		s.bootOptions(reply, c)
	}
}

// spoofed counts a RELEASE or DECLINE that is not the sender's to make. The log line is
// at debug level: the sender chooses how many to send, the counter is the signal.
func (s *DHCPServer) spoofed(counter *atomic.Uint64, why string, r request, ip netip.Addr) {
	counter.Add(1)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("dhcp: "+why+"; ignored", slog.String("mac", r.mac.String()), slog.String("ip", ip.String()),
			slog.String("from", r.peer.String()))
	}
}
