package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// The DHCP exchange is built here rather than with nclient4.Client.Request because
// every packet constructor of insomniacslk/dhcp (dhcpv4.New) draws its transaction ID
// from u-root's rand, which polls getrandom(GRND_NONBLOCK) until the kernel's CRNG is
// seeded. Polling never triggers the kernel's jitter entropy, so on a VM without an RNG
// device under TCG (no RDRAND) the agent's DHCP stalled for two minutes and then failed
// with "could not get random number". A transaction ID only pairs replies with requests
// (RFC 2131 section 4.1); it needs to differ between clients, not to be secret, so
// math/rand/v2 (seeded by the runtime from the kernel's AT_RANDOM, never blocking) does.

// newXID returns a transaction ID that needs no kernel entropy.
func newXID() dhcpv4.TransactionID {
	var xid dhcpv4.TransactionID
	v := rand.Uint32()
	xid[0], xid[1], xid[2], xid[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return xid
}

// newPacket is dhcpv4.New's packet with the given transaction ID.
func newPacket(xid dhcpv4.TransactionID, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	p := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        1, // Ethernet (RFC 1700)
		ClientHWAddr:  make(net.HardwareAddr, 6),
		TransactionID: xid,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options),
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

// discoverPacket is what dhcpv4.NewDiscovery builds (RFC 2131 section 4.4.1, table 5).
func discoverPacket(xid dhcpv4.TransactionID, hw net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return newPacket(xid, dhcpv4.PrependModifiers(mods,
		dhcpv4.WithHwAddr(hw),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
			dhcpv4.OptionDomainName, dhcpv4.OptionDomainNameServer),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
	)...)
}

// requestPacket is what dhcpv4.NewRequestFromOffer builds: the SELECTING state's
// REQUEST, with the offer's transaction ID (WithReply copies it).
func requestPacket(offer *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return newPacket(offer.TransactionID, dhcpv4.PrependModifiers(mods,
		dhcpv4.WithReply(offer),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(offer.ClientIPAddr),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOptionCopied(offer, dhcpv4.OptionServerIdentifier),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
			dhcpv4.OptionDomainName, dhcpv4.OptionDomainNameServer),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
	)...)
}

// dora is nclient4.Client.Request (DISCOVER, OFFER, REQUEST, ACK) with packets whose
// transaction ID needs no kernel entropy; mods apply to both requests.
func dora(ctx context.Context, c *nclient4.Client, mods ...dhcpv4.Modifier) (*nclient4.Lease, error) {
	discover := discoverPacket(newXID(), c.InterfaceAddr(), mods...)
	offer, err := c.SendAndRead(ctx, c.RemoteAddr(), discover, nclient4.IsMessageType(dhcpv4.MessageTypeOffer))
	if err != nil {
		return nil, fmt.Errorf("no offer: %w", err)
	}
	request := requestPacket(offer, mods...)
	ack, err := c.SendAndRead(ctx, c.RemoteAddr(), request, nclient4.IsAll(
		nclient4.IsCorrectServer(offer.ServerIdentifier()),
		nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)))
	if err != nil {
		return nil, fmt.Errorf("no answer to the request: %w", err)
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: offer, Nak: ack}
	}
	return &nclient4.Lease{Offer: offer, ACK: ack, CreationTime: time.Now()}, nil
}
