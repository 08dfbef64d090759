package boot

import (
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// pxeDiscoveryControl is PXE vendor option 43 with sub-option 6 (PXE_DISCOVERY_CONTROL)
// = 8: "a boot file name is present in this offer: download it, no boot server
// discovery, no menu" (PXE 2.1 §2.4.2.4). Without it many ROMs wait for a boot server
// menu that never comes.
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// handleProxy answers as a proxyDHCP server (PXE 2.1 §2.2.3) beside the network's own
// DHCP server: a DISCOVER on port 67 gets an offer with no address, only the boot file;
// the ROM's follow-up REQUEST to port 4011 gets the same as an ACK. Clients that are
// not network-booting firmware are never answered.
func (s *DHCPServer) handleProxy(r request) *dhcpv4.DHCPv4 {
	if !r.client.netboot() {
		s.stats.ignored.Add(1)
		return nil
	}
	var mt dhcpv4.MessageType
	switch t := r.msg.MessageType(); {
	case r.port == s.cfg.ServerPort && t == dhcpv4.MessageTypeDiscover:
		mt = dhcpv4.MessageTypeOffer
	case r.port == s.cfg.ProxyPort && (t == dhcpv4.MessageTypeRequest || t == dhcpv4.MessageTypeInform):
		mt = dhcpv4.MessageTypeAck
	default:
		// A REQUEST on port 67 is for the address server's offer, not for us.
		s.stats.ignored.Add(1)
		return nil
	}
	choice, ok := s.cfg.BootFiles.chooseBoot(r.client, r.mac.String(), s.scriptPrefix, s.httpPrefix)
	if !ok {
		s.stats.ignored.Add(1)
		return nil
	}
	reply := s.newReply(r.msg, mt)
	if mt == dhcpv4.MessageTypeAck && r.ciaddr.IsValid() {
		reply.ClientIPAddr = r.ciaddr.AsSlice()
	}
	s.bootOptions(reply, choice)
	// iPXE (dhcp.c, dhcp_has_pxeopts in the builds Debian ships) ignores a ProxyDHCP
	// answer unless it has BOTH a next-server (siaddr) and a file name, even when the
	// file is an HTTP URL; it then boots nothing. siaddr is always ours.
	reply.ServerIPAddr = s.tftpServer.AsSlice()
	if choice.vendorClass == "" {
		// iPXE and PXE ROMs recognise a ProxyDHCP offer by option 60 = PXEClient.
		reply.Options[dhcpv4.OptionClassIdentifier.Code()] = []byte("PXEClient")
		reply.Options[dhcpv4.OptionVendorSpecificInformation.Code()] = pxeDiscoveryControl
	}
	// PXE 2.1: the client machine identifier (option 97) is echoed.
	if v := r.msg.Options.Get(dhcpv4.OptionClientMachineIdentifier); v != nil {
		reply.Options[dhcpv4.OptionClientMachineIdentifier.Code()] = v
	}
	s.noteBoot(r.mac, r.client, r.ciaddr)
	s.stats.proxyReplies.Add(1)
	return reply
}
