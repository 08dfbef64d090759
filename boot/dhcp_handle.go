package boot

import (
	"context"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/node"
)

// request is a parsed, checked client packet.
type request struct {
	msg    *dhcpv4.DHCPv4
	mac    node.MAC
	client bootClient
	port   int            // the local port it arrived on (67 or 4011)
	peer   netip.AddrPort // UDP source
	giaddr netip.Addr     // relay address; invalid when not relayed
	ciaddr netip.Addr     // invalid when 0.0.0.0
}

// handle turns one datagram into at most one reply and its destination. It never panics
// on bad input: malformed packets are counted and dropped.
func (s *DHCPServer) handle(ctx context.Context, b []byte, port int, peer netip.AddrPort) ([]byte, netip.AddrPort, bool) {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		s.stats.malformed.Add(1)
		return nil, netip.AddrPort{}, false
	}
	if m.OpCode != dhcpv4.OpcodeBootRequest || m.HWType != iana.HWTypeEthernet {
		s.stats.ignored.Add(1)
		return nil, netip.AddrPort{}, false
	}
	mac, ok := node.MACFromBytes(m.ClientHWAddr)
	// A group (multicast or broadcast) chaddr is no network card's: node.ParseMAC
	// refuses it at the API, and it must not get a lease or a discovered record here.
	if !ok || mac.IsZero() || mac.IsGroup() {
		s.stats.ignored.Add(1)
		return nil, netip.AddrPort{}, false
	}
	for code := range m.Options {
		if !knownOption[code] {
			s.stats.unknownOptions.Add(1)
		}
	}
	if !s.serves(m) {
		s.stats.outsideSubnets.Add(1)
		return nil, netip.AddrPort{}, false
	}
	r := request{msg: m, mac: mac, client: classify(m), port: port, peer: peer,
		giaddr: ipv4Field(m.GatewayIPAddr), ciaddr: ipv4Field(m.ClientIPAddr)}
	r.client.shim = s.wantsShim(ctx, r)
	var reply *dhcpv4.DHCPv4
	if s.cfg.Mode == ModeProxy {
		reply = s.handleProxy(r)
	} else {
		reply = s.handleFull(ctx, r)
	}
	s.recordSighting(r, reply)
	if reply == nil {
		return nil, netip.AddrPort{}, false
	}
	dst := s.destination(r, reply)
	if r.giaddr.IsValid() {
		s.stats.relayed.Add(1)
	}
	return reply.ToBytes(), dst, true
}

// destination follows RFC 2131 §4.1: to the relay when relayed; a NAK is broadcast; a
// client that has an address (ciaddr) gets unicast; everyone else gets a broadcast, which
// the RFC allows when the server cannot unicast to an address the client does not yet
// answer ARP for. Port-4011 proxy requests are answered to where they came from.
func (s *DHCPServer) destination(r request, reply *dhcpv4.DHCPv4) netip.AddrPort {
	switch {
	case r.giaddr.IsValid():
		return netip.AddrPortFrom(r.giaddr, uint16(s.cfg.ServerPort))
	case r.port == s.cfg.ProxyPort && s.cfg.Mode == ModeProxy && r.peer.Addr().Unmap().Is4() && !r.peer.Addr().IsUnspecified():
		return r.peer
	case reply.MessageType() == dhcpv4.MessageTypeNak:
		return netip.AddrPortFrom(broadcast, uint16(s.cfg.ClientPort))
	case r.ciaddr.IsValid():
		return netip.AddrPortFrom(r.ciaddr, uint16(s.cfg.ClientPort))
	}
	return netip.AddrPortFrom(broadcast, uint16(s.cfg.ClientPort))
}

// recordSighting notes the address this exchange shows the client using. In full mode
// that is only the yiaddr we acknowledged (the lease says the same); in proxy mode,
// where another server hands out addresses, the client's ciaddr and the address its
// REQUEST asks for (what the other server offered it).
func (s *DHCPServer) recordSighting(r request, reply *dhcpv4.DHCPv4) {
	sg := s.cfg.Sightings
	switch {
	case sg == nil:
	case s.cfg.Mode == ModeProxy:
		sg.Saw(r.mac, r.ciaddr)
		if r.msg.MessageType() == dhcpv4.MessageTypeRequest {
			sg.Saw(r.mac, ipv4Field(r.msg.RequestedIPAddress()))
		}
	case reply != nil && reply.MessageType() == dhcpv4.MessageTypeAck:
		sg.Saw(r.mac, ipv4Field(reply.YourIPAddr))
	}
}

var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// ipv4Field converts a header address; 0.0.0.0 and garbage become the invalid Addr.
func ipv4Field(ip []byte) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// knownOption marks the option codes the server understands or expects from clients
// (RFC 2132 and the PXE/iPXE set). Anything else is counted and never echoed.
var knownOption = func() (k [256]bool) {
	for c := 0; c <= 76; c++ {
		k[c] = true
	}
	for _, c := range []int{77, 81, 82, 90, 93, 94, 97, 116, 118, 119, 121, 125, 145, 175, 255} {
		k[c] = true
	}
	return k
}()
