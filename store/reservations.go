package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// Reservation is a node's static address as the DHCP server needs it: whichever of the
// node's MACs asks gets IP.
type Reservation struct {
	Node    string
	MACs    []node.MAC
	IP      netip.Prefix
	Gateway netip.Addr
	DNS     []netip.Addr
}

// reservationFields is the part of a stored node a reservation needs; decoding into it
// skips labels, taints and the rest.
type reservationFields struct {
	Name    string       `json:"name"`
	MACs    []node.MAC   `json:"macs"`
	IP      netip.Prefix `json:"ip"`
	Gateway netip.Addr   `json:"gateway"`
	DNS     []netip.Addr `json:"dns"`
}

// keyReservationsGen counts changes to what Reservations returns; it is written in the
// same transaction as the change, so a reader sees the list and its generation agree.
var keyReservationsGen = []byte("reservations_gen")

// reservationsCache is the last list Reservations built and the generation it was built
// at: the DHCP server re-reads reservations every couple of seconds, and at 100,000
// static addresses rebuilding an unchanged list each time would cost a core.
type reservationsCache struct {
	mu   sync.Mutex
	gen  uint64
	list []Reservation
	ok   bool
}

// bumpReservations marks the reservations changed when a write touches a node's static
// address, the MACs that claim it, its gateway, DNS or name; old or n may be nil.
func bumpReservations(tx *bolt.Tx, old, n *node.Node) error {
	if !ReservationChanged(old, n) {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	return meta.Put(keyReservationsGen, encodeUint(decodeUint(meta.Get(keyReservationsGen))+1))
}

// ReservationChanged reports whether a change from old to n (either may be nil) changes
// what Reservations returns.
func ReservationChanged(old, n *node.Node) bool {
	switch {
	case old == nil && n == nil:
		return false
	case old == nil:
		return n.IP.IsValid()
	case n == nil:
		return old.IP.IsValid()
	}
	if !old.IP.IsValid() && !n.IP.IsValid() {
		return false
	}
	return old.IP != n.IP || old.Gateway != n.Gateway || !slices.Equal(old.DNS, n.DNS) ||
		!slices.Equal(old.MACs, n.MACs) || old.Name != n.Name
}

// Reservations lists every node with a static IP, in any state: a machine being wiped
// still owns its address. The DHCP server refreshes its snapshot from this on an interval;
// when nothing changed since the last call the same list is returned without reading the
// nodes. Callers must not modify it.
func (s *Store) Reservations(ctx context.Context) ([]Reservation, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	s.resv.mu.Lock()
	defer s.resv.mu.Unlock()
	var out []Reservation
	err := s.db.View(func(tx *bolt.Tx) error {
		gen := decodeUint(tx.Bucket(bucketMeta).Get(keyReservationsGen))
		if s.resv.ok && s.resv.gen == gen {
			out = s.resv.list
			return nil
		}
		// The IP index lists exactly the nodes with a static address: nodes without one
		// (most of a DHCP-addressed inventory) are never read.
		nodes := tx.Bucket(bucketNodes)
		if err := tx.Bucket(bucketIPIndex).ForEach(func(k, _ []byte) error {
			name := k[16:]
			var f reservationFields
			if err := json.Unmarshal(nodes.Get(name), &f); err != nil {
				return fmt.Errorf("decode node %s: %w", name, err)
			}
			if !f.IP.IsValid() {
				return nil
			}
			out = append(out, Reservation{Node: f.Name, MACs: f.MACs, IP: f.IP, Gateway: f.Gateway, DNS: f.DNS})
			return nil
		}); err != nil {
			return err
		}
		s.resv.gen, s.resv.list, s.resv.ok = gen, out, true
		return nil
	})
	return out, err
}
