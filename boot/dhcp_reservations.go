package boot

import (
	"net/netip"
	"slices"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// reservations is an immutable snapshot of the nodes' static addresses, swapped whole by
// the refresher so the packet path reads it without locks and without bbolt.
type reservations struct {
	byMAC map[node.MAC]*store.Reservation
	byIP  map[netip.Addr]*store.Reservation
}

func newReservations(list []store.Reservation) *reservations {
	r := &reservations{byMAC: make(map[node.MAC]*store.Reservation, len(list)), byIP: make(map[netip.Addr]*store.Reservation, len(list))}
	for i := range list {
		res := &list[i]
		if !res.IP.Addr().Is4() {
			continue
		}
		r.byIP[res.IP.Addr()] = res
		for _, m := range res.MACs {
			r.byMAC[m] = res
		}
	}
	return r
}

func (r *reservations) forMAC(mac node.MAC) *store.Reservation {
	if r == nil {
		return nil
	}
	return r.byMAC[mac]
}

// reservedForOther reports whether ip is some other node's static address: the pool
// must never hand it out.
func (r *reservations) reservedForOther(ip netip.Addr, mac node.MAC) bool {
	if r == nil {
		return false
	}
	res := r.byIP[ip]
	return res != nil && !slices.Contains(res.MACs, mac)
}
