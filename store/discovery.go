package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// lastSeenResolution is how stale a node's LastSeen may get before a repeat boot with
// nothing new rewrites it. A machine asks DHCP, TFTP and the iPXE script URL several
// times per boot and a waiting one polls every few seconds; writing each of those would
// cost an fsync apiece for a timestamp nobody reads at that resolution.
const lastSeenResolution = 30 * time.Second

// RecordBoot notes that mac network-booted with what its firmware said about itself.
// An unknown MAC becomes a discovered node named node.DefaultName(mac), with an event; a
// known one gets its Boot and LastSeen updated. Arch is taken whenever Firmware is set,
// because 0 is a real architecture (x86 BIOS); other empty fields keep what was known.
//
// The common case, a repeat within lastSeenResolution saying nothing new, is answered
// from a read transaction with no write. Writes go through bbolt's Batch, so concurrent
// callers (the DHCP packet path, the script endpoint) share one commit.
func (s *Store) RecordBoot(ctx context.Context, mac node.MAC, seen node.BootInfo) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	now := s.now()
	seen, err := CleanBoot(mac, seen, now)
	if err != nil {
		return err
	}
	var current bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		n, err := nodeByMACTx(tx, mac)
		if err == nil {
			current = !BootNeedsWrite(n.Boot, seen)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("record boot %s: %w", mac, err)
	}
	if current {
		return nil
	}
	// Batch may run the function twice (once in a batch, once alone on error); it reads
	// everything inside the transaction, so a second run decides afresh.
	err = s.db.Batch(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketMACIndex).Get(mac[:])
		if name == nil {
			return s.discover(tx, mac, seen)
		}
		old, err := getNode(tx, string(name))
		if err != nil {
			return err
		}
		if !BootNeedsWrite(old.Boot, seen) {
			return nil
		}
		n := old
		n.Boot = MergeBoot(old.Boot, seen)
		n.LastSeen = seen.LastSeen
		n.UpdatedAt = now
		return putNode(tx, &n, &old)
	})
	if err != nil {
		return fmt.Errorf("record boot %s: %w", mac, err)
	}
	return nil
}

// discover creates the record of a machine nobody imported yet.
func (s *Store) discover(tx *bolt.Tx, mac node.MAC, seen node.BootInfo) error {
	at := seen.LastSeen
	n := node.Node{
		Name:        node.DefaultName(mac),
		MACs:        []node.MAC{mac},
		State:       node.StateDiscovered,
		StateReason: "network-booted, not imported",
		StateSince:  at,
		Boot:        MergeBoot(node.BootInfo{}, seen),
		CreatedAt:   at,
		UpdatedAt:   at,
		LastSeen:    at,
	}
	if err := n.Validate(); err != nil {
		return err
	}
	if err := putNode(tx, &n, nil); err != nil {
		return fmt.Errorf("discover %s as %s: %w", mac, n.Name, err)
	}
	if err := s.appendEvents(tx, node.Event{Time: at, Node: n.Name, Type: node.EventTransition,
		To: node.StateDiscovered, Reason: "first network boot: " + DescribeBoot(n.Boot)}); err != nil {
		return err
	}
	// Anyone on the provisioning network can boot with made-up MACs: the newcomer costs
	// the longest-unseen discovered record its place once the cap is reached.
	return s.evictDiscovered(tx, s.limits.MaxDiscovered)
}

// CleanBoot checks a RecordBoot's MAC and readies what it says: LastSeen defaults to
// now, and text fields are made printable. The edges (DHCP, the script endpoint) already
// replace what a terminal or page would interpret; this keeps the record clean whichever
// caller forgot. Every backend's RecordBoot starts with it.
func CleanBoot(mac node.MAC, seen node.BootInfo, now time.Time) (node.BootInfo, error) {
	if mac.IsZero() {
		return seen, fmt.Errorf("record boot: %w: MAC 00:00:00:00:00:00", node.ErrInvalid)
	}
	if seen.LastSeen.IsZero() {
		seen.LastSeen = now
	}
	seen.Firmware, seen.VendorClass = node.Printable(seen.Firmware), node.Printable(seen.VendorClass)
	seen.UserClass, seen.IP = node.Printable(seen.UserClass), node.Printable(seen.IP)
	return seen, nil
}

// BootNeedsWrite reports whether seen says something the record lacks, or the record's
// LastSeen is older than the resolution.
func BootNeedsWrite(have, seen node.BootInfo) bool {
	if seen.Firmware != "" && (seen.Firmware != have.Firmware || seen.Arch != have.Arch) {
		return true
	}
	if (seen.VendorClass != "" && seen.VendorClass != have.VendorClass) ||
		(seen.UserClass != "" && seen.UserClass != have.UserClass) ||
		(seen.IP != "" && seen.IP != have.IP) {
		return true
	}
	return have.FirstSeen.IsZero() || seen.LastSeen.Sub(have.LastSeen) >= lastSeenResolution
}

// MergeBoot is the boot record after seen: new facts replace old ones, empty fields keep
// what was known, and FirstSeen is set once.
func MergeBoot(have, seen node.BootInfo) node.BootInfo {
	out := have
	if seen.Firmware != "" {
		out.Firmware, out.Arch = seen.Firmware, seen.Arch
	}
	if seen.VendorClass != "" {
		out.VendorClass = seen.VendorClass
	}
	if seen.UserClass != "" {
		out.UserClass = seen.UserClass
	}
	if seen.IP != "" {
		out.IP = seen.IP
	}
	if out.FirstSeen.IsZero() {
		out.FirstSeen = seen.LastSeen
		if !seen.FirstSeen.IsZero() && seen.FirstSeen.Before(out.FirstSeen) {
			out.FirstSeen = seen.FirstSeen
		}
	}
	if seen.LastSeen.After(out.LastSeen) {
		out.LastSeen = seen.LastSeen
	}
	return out
}

// DescribeBoot is the boot record as an event reason.
func DescribeBoot(b node.BootInfo) string {
	s := "firmware " + b.Firmware
	if b.Firmware == "" {
		s = "firmware unknown"
	}
	s += ", arch " + strconv.Itoa(int(b.Arch))
	if b.VendorClass != "" {
		s += ", vendor class " + b.VendorClass
	}
	if b.UserClass != "" {
		s += ", user class " + b.UserClass
	}
	return s
}

func nodeByMACTx(tx *bolt.Tx, mac node.MAC) (node.Node, error) {
	name := tx.Bucket(bucketMACIndex).Get(mac[:])
	if name == nil {
		return node.Node{}, fmt.Errorf("mac %s: %w", mac, node.ErrNotFound)
	}
	return getNode(tx, string(name))
}

// MACEvent is an event for whichever node owns MAC when it is written.
type MACEvent struct {
	MAC   node.MAC
	Event node.Event
}

// AppendMACEvents records events queued by MAC, naming each after the node that owns the
// MAC inside the write transaction. A boot event queued while a discovered machine is
// imported (renamed) or renamed through the API thus lands in the node's history, never
// under a name that no longer exists. Events of MACs no node owns are dropped and
// counted in the returned number. Like AppendEvents it batches concurrent callers.
func (s *Store) AppendMACEvents(ctx context.Context, events ...MACEvent) (dropped int, err error) {
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		dropped = 0
		idx := tx.Bucket(bucketMACIndex)
		named := make([]node.Event, 0, len(events))
		for _, me := range events {
			name := idx.Get(me.MAC[:])
			if name == nil {
				dropped++
				continue
			}
			ev := me.Event
			ev.Node = string(name)
			named = append(named, ev)
		}
		return s.appendEvents(tx, named...)
	})
	if err != nil {
		return 0, fmt.Errorf("append events by MAC: %w", err)
	}
	return dropped, nil
}
