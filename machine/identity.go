package machine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// AddressBook is what the identity check reads from the store: Bootyard's own DHCP leases.
type AddressBook interface {
	// MACForIP answers which MAC holds an active lease on ip (node.ErrNotFound if none).
	MACForIP(ctx context.Context, ip netip.Addr) (node.MAC, error)
	// LeaseForMAC returns mac's active lease (node.ErrNotFound if none).
	LeaseForMAC(ctx context.Context, mac node.MAC) (store.Lease, error)
}

// Sightings answers whether Bootyard's own DHCP or proxyDHCP saw mac use addr a short
// time ago (boot.Sightings).
type Sightings interface {
	Seen(mac node.MAC, addr netip.Addr) bool
}

// IdentityConfig configures the identity check.
type IdentityConfig struct {
	Leases AddressBook
	// Sightings is nil when Bootyard runs no DHCP of its own.
	Sightings Sightings
	// TrustUnverified serves secrets to a request Bootyard can neither confirm nor
	// refute (no lease, no static IP, not seen in its DHCP): the operator's explicit
	// choice for networks where another DHCP server hands out addresses unseen.
	TrustUnverified bool
}

// Identity is the one answer every machine endpoint asks: is this request from node N?
// Only the socket's peer address counts, never a header such as X-Forwarded-For.
type Identity struct {
	cfg IdentityConfig
}

// NewIdentity builds the check.
func NewIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.Leases == nil {
		return nil, errors.New("machine: the identity check needs the lease store")
	}
	return &Identity{cfg: cfg}, nil
}

// Verdict is what Bootyard knows about a requester's claim to be a node.
type Verdict int

const (
	// Verified: the address is the node's active lease, its static IP, or one Bootyard
	// saw the node's MAC use in its own DHCP a short time ago.
	Verified Verdict = iota
	// Unverified: Bootyard knows no address for the node, so cannot tell.
	Unverified
	// Foreign: Bootyard knows the node's address (or the requester's) and they differ.
	Foreign
)

// Decision is the identity check's answer for one request.
type Decision struct {
	Verdict Verdict
	// Why explains the verdict, for the node's events and the log.
	Why string
	// Trusted says whether the request may receive the node's secrets: verified, or
	// unverified with TrustUnverified set.
	Trusted bool
}

// Check decides whether remote, a request's socket peer address, is node n.
func (id *Identity) Check(ctx context.Context, n node.Node, remote netip.Addr) (Decision, error) {
	remote = remote.Unmap()
	if !remote.IsValid() {
		return id.decide(Foreign, "no source address"), nil
	}
	owner, err := id.cfg.Leases.MACForIP(ctx, remote)
	switch {
	case err == nil && n.HasMAC(owner):
		return id.decide(Verified, remote.String()+" is the node's DHCP lease"), nil
	case err == nil:
		return id.decide(Foreign, fmt.Sprintf("%s is leased to %s, not to node %s", remote, owner, n.Name)), nil
	case !errors.Is(err, node.ErrNotFound):
		return Decision{}, fmt.Errorf("lease lookup %s: %w", remote, err)
	}
	if n.IP.IsValid() && n.IP.Addr() == remote {
		return id.decide(Verified, remote.String()+" is the node's static IP"), nil
	}
	if id.cfg.Sightings != nil {
		for _, mac := range n.MACs {
			if id.cfg.Sightings.Seen(mac, remote) {
				return id.decide(Verified, fmt.Sprintf("%s used %s in Bootyard's DHCP", mac, remote)), nil
			}
		}
	}
	for _, mac := range n.MACs {
		lease, err := id.cfg.Leases.LeaseForMAC(ctx, mac)
		switch {
		case err == nil:
			return id.decide(Foreign, fmt.Sprintf("request from %s, but node %s holds the lease on %s", remote, n.Name, lease.IP)), nil
		case !errors.Is(err, node.ErrNotFound):
			return Decision{}, fmt.Errorf("lease lookup %s: %w", mac, err)
		}
	}
	if n.IP.IsValid() {
		return id.decide(Foreign, fmt.Sprintf("request from %s, but node %s has the static IP %s", remote, n.Name, n.IP.Addr())), nil
	}
	return id.decide(Unverified, fmt.Sprintf("Bootyard cannot verify that %s is node %s: no DHCP lease, no static IP, "+
		"not seen in Bootyard's own DHCP (run Bootyard's DHCP or proxyDHCP, give the node an IP, or set --trust-unverified-machines)", remote, n.Name)), nil
}

func (id *Identity) decide(v Verdict, why string) Decision {
	return Decision{Verdict: v, Why: why, Trusted: v == Verified || (v == Unverified && id.cfg.TrustUnverified)}
}
