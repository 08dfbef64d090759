package boot

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/store"
)

// poolOptions are a subnet's option bytes, encoded once at start: replies reuse them
// instead of encoding per packet.
type poolOptions struct {
	mask   []byte
	router []byte
	dns    []byte
}

func newSubnetPool(subnet netip.Prefix, rng Range, router netip.Addr, dns []netip.Addr, server netip.Addr) *subnetPool {
	p := &subnetPool{subnet: subnet.Masked(), rng: rng, excluded: map[netip.Addr]bool{server: true}}
	p.opts.mask = maskBytes(subnet.Bits())
	if router.IsValid() {
		p.excluded[router] = true
		p.opts.router = router.AsSlice()
	}
	for _, d := range dns {
		p.excluded[d] = true
		p.opts.dns = append(p.opts.dns, d.AsSlice()...)
	}
	// The network and broadcast addresses are never hosts.
	p.excluded[p.subnet.Addr()] = true
	p.excluded[lastAddr(p.subnet)] = true
	return p
}

func maskBytes(bits int) []byte {
	m := net.CIDRMask(bits, 32)
	return []byte(m)
}

func lastAddr(p netip.Prefix) netip.Addr {
	v := addrToUint(p.Addr()) | (1<<(32-p.Bits()) - 1)
	return uintToAddr(v)
}

// newReply starts a BOOTREPLY to req (RFC 2131 table 3): same xid, flags, giaddr and
// chaddr; option 82 (relay agent information, RFC 3046) and 61 (client id, RFC 6842)
// copied back.
func (s *DHCPServer) newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       make(dhcpv4.Options, 12),
	}
	r.Options[dhcpv4.OptionDHCPMessageType.Code()] = []byte{byte(mt)}
	r.Options[dhcpv4.OptionServerIdentifier.Code()] = s.link.addr.AsSlice()
	for _, c := range []dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.Options.Get(c); v != nil {
			r.Options[c.Code()] = v
		}
	}
	return r
}

// addressOptions adds the lease and network options: lease time with T1 = 1/2 and
// T2 = 7/8 of it (RFC 2131 §4.4.5), mask, router and DNS, a static node's own first.
func (s *DHCPServer) addressOptions(r *dhcpv4.DHCPv4, p *subnetPool, res *store.Reservation, leaseTime time.Duration) {
	secs := uint32(leaseTime / time.Second)
	r.Options[dhcpv4.OptionIPAddressLeaseTime.Code()] = binary.BigEndian.AppendUint32(nil, secs)
	r.Options[dhcpv4.OptionRenewTimeValue.Code()] = binary.BigEndian.AppendUint32(nil, secs/2)
	r.Options[dhcpv4.OptionRebindingTimeValue.Code()] = binary.BigEndian.AppendUint32(nil, secs/8*7)
	mask, router, dns := p.opts.mask, p.opts.router, p.opts.dns
	if res != nil {
		mask = maskBytes(res.IP.Bits())
		if res.Gateway.IsValid() {
			router = res.Gateway.AsSlice()
		}
		if len(res.DNS) > 0 {
			dns = nil
			for _, d := range res.DNS {
				dns = append(dns, d.AsSlice()...)
			}
		}
	}
	r.Options[dhcpv4.OptionSubnetMask.Code()] = mask
	if router != nil {
		r.Options[dhcpv4.OptionRouter.Code()] = router
	}
	if dns != nil {
		r.Options[dhcpv4.OptionDomainNameServer.Code()] = dns
	}
}

// bootOptions adds what the firmware loads next. siaddr and option 66 name the TFTP
// server (PXE ROMs read siaddr, some read only 66); the file name goes both in option 67
// and in the BOOTP file field, which older ROMs read instead, when it fits there.
func (s *DHCPServer) bootOptions(r *dhcpv4.DHCPv4, c bootChoice) {
	r.Options[dhcpv4.OptionBootfileName.Code()] = []byte(c.file)
	if len(c.file) < 128 {
		r.BootFileName = c.file
	}
	if c.tftp {
		r.ServerIPAddr = s.tftpServer.AsSlice()
		r.Options[dhcpv4.OptionTFTPServerName.Code()] = []byte(s.tftpServer.String())
	}
	if c.vendorClass != "" {
		// UEFI HTTP boot only accepts an offer that says HTTPClient (UEFI spec 24.7.2).
		r.Options[dhcpv4.OptionClassIdentifier.Code()] = []byte(c.vendorClass)
	}
}
