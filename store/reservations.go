package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

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

// Reservations lists every node with a static IP, in any state: a machine being wiped
// still owns its address. The DHCP server refreshes its snapshot from this on an interval.
func (s *Store) Reservations(ctx context.Context) ([]Reservation, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []Reservation
	err := s.db.View(func(tx *bolt.Tx) error {
		// The IP index lists exactly the nodes with a static address: nodes without one
		// (most of a DHCP-addressed inventory) are never read.
		nodes := tx.Bucket(bucketNodes)
		return tx.Bucket(bucketIPIndex).ForEach(func(k, _ []byte) error {
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
		})
	})
	return out, err
}
