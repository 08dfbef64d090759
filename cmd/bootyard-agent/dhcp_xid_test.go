package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// The agent builds its DHCP packets itself only to choose the transaction ID; every
// other byte must be what the library's own constructors send, or a DHCP server that
// works with nclient4 might not work with the agent.
func TestDHCP_PacketsAreTheLibrarysExceptForTheTransactionID(t *testing.T) {
	hw := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	class := dhcpv4.WithOption(dhcpv4.OptClassIdentifier(agentClassID))
	want, err := dhcpv4.NewDiscovery(hw, dhcpv4.PrependModifiers([]dhcpv4.Modifier{class},
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)))...)
	if err != nil {
		t.Fatal(err)
	}
	got := discoverPacket(want.TransactionID, hw, class)
	if !bytes.Equal(got.ToBytes(), want.ToBytes()) {
		t.Errorf("DISCOVER differs from the library's:\n got %s\nwant %s", got.Summary(), want.Summary())
	}

	offer, err := dhcpv4.NewReplyFromRequest(want, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 0, 9)), dhcpv4.WithServerIP(net.IPv4(10, 0, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 0, 1))))
	if err != nil {
		t.Fatal(err)
	}
	wantReq, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.PrependModifiers([]dhcpv4.Modifier{class},
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)))...)
	if err != nil {
		t.Fatal(err)
	}
	gotReq := requestPacket(offer, class)
	if !bytes.Equal(gotReq.ToBytes(), wantReq.ToBytes()) {
		t.Errorf("REQUEST differs from the library's:\n got %s\nwant %s", gotReq.Summary(), wantReq.Summary())
	}
	if gotReq.TransactionID != offer.TransactionID {
		t.Errorf("REQUEST xid %s, want the offer's %s", gotReq.TransactionID, offer.TransactionID)
	}
}

func TestDHCP_TransactionIDsDifferBetweenCalls(t *testing.T) {
	seen := map[dhcpv4.TransactionID]bool{}
	for range 64 {
		seen[newXID()] = true
	}
	if len(seen) < 60 {
		t.Errorf("64 transaction IDs gave only %d distinct values", len(seen))
	}
}
