package boot

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// claimingLeases is the lease contract of a store shared by replicas (the Kubernetes
// store's): an active lease on an address another MAC holds active is refused with
// node.ErrConflict, named in a store.LeaseErrors, and the others are written.
type claimingLeases struct {
	*testInventory
	mu sync.Mutex
}

func (c *claimingLeases) PutLeases(ctx context.Context, leases ...store.Lease) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	held, err := c.Store.Leases(ctx)
	if err != nil {
		return err
	}
	failed := store.LeaseErrors{}
	var ok []store.Lease
	for _, l := range leases {
		refused := false
		for _, h := range held {
			if h.IP == l.IP && h.MAC != l.MAC && l.State == store.LeaseActive && h.ActiveAt(time.Now()) {
				failed[l.IP] = fmt.Errorf("address is leased to %s: %w", h.MAC, node.ErrConflict)
				refused = true
			}
		}
		if !refused {
			ok = append(ok, l)
		}
	}
	if err := c.Store.PutLeases(ctx, ok...); err != nil {
		return err
	}
	if len(failed) > 0 {
		return failed
	}
	return nil
}

// replicaPair is two full-mode servers on one segment (10.77.0.1 and .2) sharing one
// claiming lease store, as two Bootyard replicas on one inventory.
func replicaPair(t *testing.T) (a, b *DHCPServer) {
	t.Helper()
	return replicaPairWith(t, testConfig(ModeFull))
}

func replicaPairWith(t *testing.T, cfg DHCPConfig) (a, b *DHCPServer) {
	t.Helper()
	inv := openTestStore(t, t.TempDir())
	leases := &claimingLeases{testInventory: inv}
	second := testLink
	second.addr = netip.MustParseAddr("10.77.0.2")
	return socketlessOn(t, cfg, testLink, inv, leases), socketlessOn(t, cfg, second, inv, leases)
}

// offerFrom sends mac's DISCOVER to s alone and returns its OFFER.
func offerFrom(t *testing.T, s *DHCPServer, mac node.MAC) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, _ := exchange(t, s, discoverFrom(t, mac), 67)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER from %s: no offer", mac)
	}
	return offer
}

// TestDHCP_Replicas_AnAddressTheStoreRefusesIsNAKedAndNotOfferedAgain: two replicas
// offered one address to two machines (each saw their DISCOVERs in another order); the
// second REQUEST is refused by the shared store. The client must be told at once (NAK)
// and be offered another address when it starts over, not the refused one again (it
// was: silence, then the same offer, until the client gave up).
func TestDHCP_Replicas_AnAddressTheStoreRefusesIsNAKedAndNotOfferedAgain(t *testing.T) {
	a, b := replicaPair(t)
	m1, m2 := mustMAC("52:54:00:00:0a:01"), mustMAC("52:54:00:00:0a:02")
	offerA, offerB := offerFrom(t, a, m1), offerFrom(t, b, m2)
	if !offerA.YourIPAddr.Equal(offerB.YourIPAddr) {
		t.Fatalf("the set-up needs both replicas to offer one address: %s and %s", offerA.YourIPAddr, offerB.YourIPAddr)
	}
	taken := addrOf(offerA.YourIPAddr)
	if ack, _ := exchange(t, a, requestFor(t, offerA), 67); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("m1's REQUEST to the first replica: %v", ack)
	}
	reply, _ := exchange(t, b, requestFor(t, offerB), 67)
	if reply == nil || reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("m2's REQUEST for %s, leased through the other replica: %v, want a NAK", taken, reply)
	}
	if st := b.Stats(); st.CommitConflict != 1 {
		t.Errorf("commit conflicts counted: %d, want 1", st.CommitConflict)
	}
	again := offerFrom(t, b, m2)
	if addrOf(again.YourIPAddr) == taken {
		t.Fatalf("m2 is offered %s again after the store refused it", taken)
	}
	if ack, _ := exchange(t, b, requestFor(t, again), 67); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("m2's second REQUEST for %s: %v, want an ACK", again.YourIPAddr, ack)
	}
}

// TestDHCP_Replicas_AnAddressChosenFromAnotherServerIsNotOffered: every replica on the
// segment sees a client's REQUEST for another server's offer; the address it names is
// that server's lease, so it is not offered to anyone else here, and the client itself
// is offered the same address (its second DHCP, as iPXE, may reach any replica).
func TestDHCP_Replicas_AnAddressChosenFromAnotherServerIsNotOffered(t *testing.T) {
	a, b := replicaPair(t)
	m1, m2 := mustMAC("52:54:00:00:0b:01"), mustMAC("52:54:00:00:0b:02")
	offer := offerFrom(t, a, m1)
	req := requestFor(t, offer)
	if ack, _ := exchange(t, a, req, 67); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("m1's REQUEST: %v", ack)
	}
	if reply, _ := exchange(t, b, req, 67); reply != nil {
		t.Fatalf("the other replica answered a REQUEST for the first one's offer: %s", reply.MessageType())
	}
	taken := addrOf(offer.YourIPAddr)
	if got := addrOf(offerFrom(t, b, m2).YourIPAddr); got == taken {
		t.Fatalf("the other replica offers m1's %s to m2", taken)
	}
	if got := addrOf(offerFrom(t, b, m1).YourIPAddr); got != taken {
		t.Fatalf("m1 is offered %s by the other replica, want its own %s", got, taken)
	}
}

// TestDHCP_Replicas_SharedLeasesOfferEachMachineOneAddressWhateverTheOrder: two replicas
// see the same DISCOVERs in opposite orders (as replicas under a storm do). From one
// cursor each would offer m1 what the other offers m2, every time; with SharedLeases each
// machine's slot is its MAC's, so the replicas agree on most machines' addresses and
// fewer REQUESTs are refused. Not always on all: slots are chosen within a window of 256
// addresses (four lease blocks of the Kubernetes store, so that a batch of leases costs
// a few writes), and two MACs whose slots collide there are placed in the order their
// DISCOVERs came (here the window holds the whole 100-address range, 40 machines agree).
func TestDHCP_Replicas_SharedLeasesOfferEachMachineOneAddressWhateverTheOrder(t *testing.T) {
	const pairs = 20
	for _, tt := range []struct {
		shared           bool
		minSame, maxSame int // of 2*pairs machines
	}{{shared: false, minSame: 0, maxSame: 0}, {shared: true, minSame: 2 * pairs * 3 / 4, maxSame: 2 * pairs}} {
		t.Run(fmt.Sprintf("shared=%v", tt.shared), func(t *testing.T) {
			cfg := testConfig(ModeFull)
			cfg.SharedLeases = tt.shared
			a, b := replicaPairWith(t, cfg)
			same := 0
			for i := range pairs {
				m1, m2 := node.MAC{0x52, 0x54, 0, 0x0c, byte(i), 1}, node.MAC{0x52, 0x54, 0, 0x0c, byte(i), 2}
				a1, a2 := offerFrom(t, a, m1), offerFrom(t, a, m2)
				b2, b1 := offerFrom(t, b, m2), offerFrom(t, b, m1)
				for _, p := range [][2]*dhcpv4.DHCPv4{{a1, b1}, {a2, b2}} {
					if p[0].YourIPAddr.Equal(p[1].YourIPAddr) {
						same++
					}
				}
				// Each machine takes the first replica's offer; the second hears it.
				for _, o := range []*dhcpv4.DHCPv4{a1, a2} {
					req := requestFor(t, o)
					if ack, _ := exchange(t, a, req, 67); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
						t.Fatalf("REQUEST for %s: %v", o.YourIPAddr, ack)
					}
					exchange(t, b, req, 67)
				}
			}
			t.Logf("both replicas offered %d of %d machines the same address", same, 2*pairs)
			if same < tt.minSame || same > tt.maxSame {
				t.Fatalf("both replicas offered %d of %d machines the same address, want %d to %d", same, 2*pairs, tt.minSame, tt.maxSame)
			}
		})
	}
}

// racingLeases refuses the next write as another replica's concurrent write of the
// same record would have it refused (node.ErrConflict), then writes normally.
type racingLeases struct {
	*testInventory
	refuseNext atomic.Bool
}

func (r *racingLeases) PutLeases(ctx context.Context, leases ...store.Lease) error {
	if r.refuseNext.CompareAndSwap(true, false) {
		failed := store.LeaseErrors{}
		for _, l := range leases {
			failed[l.IP] = fmt.Errorf("too many conflicting writers: %w", node.ErrConflict)
		}
		return failed
	}
	return r.Store.PutLeases(ctx, leases...)
}

// TestDHCP_Replicas_ARaceOnAMachinesOwnLeaseIsNotNAKed: a broadcast INIT-REBOOT reaches
// every replica and each writes the machine's own lease; a write that loses that race is
// not a reason to NAK the machine off its address: the server stays silent and the
// retransmission is ACKed.
func TestDHCP_Replicas_ARaceOnAMachinesOwnLeaseIsNotNAKed(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	leases := &racingLeases{testInventory: inv}
	s := socketlessOn(t, testConfig(ModeFull), testLink, inv, leases)
	mac := mustMAC("52:54:00:00:0d:01")
	ip := addrOf(dora(t, s, mac).YourIPAddr)
	// INIT-REBOOT (RFC 2131 §4.3.2): the address in option 50, no server identifier.
	reboot, err := dhcpv4.New(dhcpv4.WithHwAddr(mac.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())))
	if err != nil {
		t.Fatal(err)
	}
	leases.refuseNext.Store(true)
	if reply, _ := exchange(t, s, reboot, 67); reply != nil {
		t.Fatalf("a lost race on the machine's own lease %s was answered %s, want silence", ip, reply.MessageType())
	}
	if reply, _ := exchange(t, s, reboot, 67); reply == nil || reply.MessageType() != dhcpv4.MessageTypeAck || addrOf(reply.YourIPAddr) != ip {
		t.Fatalf("the retransmission for %s: %v, want its ACK", ip, reply)
	}
}

// TestDHCP_Replicas_AMachineRebootingThroughASurvivorKeepsItsAddress: a replica leased
// an address to m1 and died before the other heard the REQUEST; the survivor meanwhile
// either offered that address to m2 (their MACs' slots collide) or heard m2 ask another
// server for it (m2 lost that race in the store). m1 reboots (INIT-REBOOT) and asks the
// survivor: it must keep its address (the shared store says it is m1's), and m2 is told no.
func TestDHCP_Replicas_AMachineRebootingThroughASurvivorKeepsItsAddress(t *testing.T) {
	for _, how := range []string{"offered to m2 here", "heard m2 ask another server"} {
		t.Run(how, func(t *testing.T) {
			cfg := testConfig(ModeFull)
			cfg.SharedLeases = true
			dead, survivor := replicaPairWith(t, cfg)
			m1 := mustMAC("52:54:00:00:0e:01")
			offer := offerFrom(t, dead, m1)
			if ack, _ := exchange(t, dead, requestFor(t, offer), 67); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
				t.Fatalf("m1's REQUEST: %v", ack)
			}
			ip := addrOf(offer.YourIPAddr)
			var m2Request *dhcpv4.DHCPv4
			if how == "offered to m2 here" {
				// A MAC whose slot is m1's: the survivor, which never heard m1's REQUEST,
				// offers it ip.
				for i := range 4096 {
					m2 := node.MAC{0x52, 0x54, 0, 0x0e, byte(i >> 8), byte(i)}
					if o := offerFrom(t, survivor, m2); m2 != m1 && addrOf(o.YourIPAddr) == ip {
						m2Request = requestFor(t, o)
						break
					}
				}
				if m2Request == nil {
					t.Fatalf("no MAC was offered %s by the survivor", ip)
				}
			} else {
				// m2's REQUEST for the dead replica's offer of ip, as every replica hears it.
				m2Request = requestFor(t, offer, dhcpv4.WithHwAddr(mustMAC("52:54:00:00:0e:02").HardwareAddr()))
				if reply, _ := exchange(t, survivor, m2Request, 67); reply != nil {
					t.Fatalf("the survivor answered a REQUEST for another server's offer: %s", reply.MessageType())
				}
			}
			reboot, err := dhcpv4.New(dhcpv4.WithHwAddr(m1.HardwareAddr()), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())))
			if err != nil {
				t.Fatal(err)
			}
			if reply, _ := exchange(t, survivor, reboot, 67); reply == nil || reply.MessageType() != dhcpv4.MessageTypeAck || addrOf(reply.YourIPAddr) != ip {
				t.Fatalf("m1 rebooting with %s through the survivor: %v, want its ACK", ip, reply)
			}
			if how == "offered to m2 here" {
				if reply, _ := exchange(t, survivor, m2Request, 67); reply == nil || reply.MessageType() != dhcpv4.MessageTypeNak {
					t.Fatalf("m2's REQUEST for m1's %s: %v, want a NAK", ip, reply)
				}
			}
		})
	}
}
