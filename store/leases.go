package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bootyard/bootyard/node"
)

// Lease buckets are created by the first write (CreateBucketIfNotExists), so a store
// file that never served DHCP has none; readers treat a missing bucket as empty.
var (
	bucketLeases   = []byte("leases")     // ip (4 or 16 bytes) → lease record (binary, see encodeLease)
	bucketLeaseMAC = []byte("lease_macs") // mac (6 bytes) → ip: at most one lease per MAC
)

// LeaseState says what an address record means.
type LeaseState uint8

const (
	// LeaseActive: the address is the MAC's until Expires.
	LeaseActive LeaseState = 1
	// LeaseReleased: the client gave it back (DHCPRELEASE); kept so the same client is
	// offered the same address again.
	LeaseReleased LeaseState = 2
	// LeaseDeclined: a client found the address in use (DHCPDECLINE, RFC 2131 §3.1.5);
	// the pool skips it until Expires.
	LeaseDeclined LeaseState = 3
)

func (s LeaseState) String() string {
	switch s {
	case LeaseActive:
		return "active"
	case LeaseReleased:
		return "released"
	case LeaseDeclined:
		return "declined"
	}
	return fmt.Sprintf("lease-state(%d)", uint8(s))
}

// Lease is one address the DHCP server handed out (or holds back).
type Lease struct {
	IP       netip.Addr
	MAC      node.MAC // zero for a declined address
	State    LeaseState
	Expires  time.Time
	Hostname string // DHCP option 12, as the client sent it
}

// ActiveAt reports whether the lease binds its address at time t.
func (l Lease) ActiveAt(t time.Time) bool { return l.State == LeaseActive && t.Before(l.Expires) }

// PutLeases writes leases in ONE transaction, so one fsync covers them all: the DHCP
// server group-commits every REQUEST waiting at that moment and ACKs only after this
// returns. It keeps one record per address and one per MAC: a MAC's older address record
// is dropped when it gets a new one.
func (s *Store) PutLeases(ctx context.Context, leases ...Lease) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(leases) == 0 {
		return nil
	}
	for _, l := range leases {
		if !l.IP.IsValid() {
			return fmt.Errorf("put lease for %s: %w: no address", l.MAC, node.ErrInvalid)
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		byIP, byMAC, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		for _, l := range leases {
			if err := putLease(byIP, byMAC, l); err != nil {
				return fmt.Errorf("put lease %s: %w", l.IP, err)
			}
		}
		return nil
	})
}

func leaseBuckets(tx *bolt.Tx) (byIP, byMAC *bolt.Bucket, err error) {
	if byIP, err = tx.CreateBucketIfNotExists(bucketLeases); err != nil {
		return nil, nil, fmt.Errorf("leases bucket: %w", err)
	}
	if byMAC, err = tx.CreateBucketIfNotExists(bucketLeaseMAC); err != nil {
		return nil, nil, fmt.Errorf("lease MAC bucket: %w", err)
	}
	return byIP, byMAC, nil
}

func putLease(byIP, byMAC *bolt.Bucket, l Lease) error {
	ipKey := l.IP.AsSlice()
	// The address changes hands: the previous holder's MAC index must not point here.
	if old := byIP.Get(ipKey); old != nil {
		prev, err := decodeLease(l.IP, old)
		if err != nil {
			return err
		}
		if !prev.MAC.IsZero() && prev.MAC != l.MAC {
			if at := byMAC.Get(prev.MAC[:]); at != nil && string(at) == string(ipKey) {
				if err := byMAC.Delete(prev.MAC[:]); err != nil {
					return err
				}
			}
		}
	}
	if !l.MAC.IsZero() {
		// The MAC moves: its old address record goes, so one MAC never holds two.
		if at := byMAC.Get(l.MAC[:]); at != nil && string(at) != string(ipKey) {
			if old := byIP.Get(at); old != nil {
				oldIP, _ := netip.AddrFromSlice(at)
				if prev, err := decodeLease(oldIP, old); err == nil && prev.MAC == l.MAC {
					if err := byIP.Delete(at); err != nil {
						return err
					}
				}
			}
		}
		if err := byMAC.Put(l.MAC[:], ipKey); err != nil {
			return err
		}
	}
	return byIP.Put(ipKey, encodeLease(l))
}

// DeleteLeases forgets addresses entirely (expired leases pruned by the server).
func (s *Store) DeleteLeases(ctx context.Context, ips ...netip.Addr) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		byIP, byMAC, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		for _, ip := range ips {
			key := ip.AsSlice()
			old := byIP.Get(key)
			if old == nil {
				continue
			}
			if prev, err := decodeLease(ip, old); err == nil && !prev.MAC.IsZero() {
				if at := byMAC.Get(prev.MAC[:]); at != nil && string(at) == string(key) {
					if err := byMAC.Delete(prev.MAC[:]); err != nil {
						return err
					}
				}
			}
			if err := byIP.Delete(key); err != nil {
				return err
			}
		}
		return nil
	})
}

// Leases returns every stored address record, in address order. The DHCP server loads
// them once at start into its in-memory index.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	var out []Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		return forEachLease(tx, func(l Lease) error {
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// forEachLease calls fn with every stored address record, in address order.
func forEachLease(tx *bolt.Tx, fn func(Lease) error) error {
	b := tx.Bucket(bucketLeases)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		ip, ok := netip.AddrFromSlice(k)
		if !ok {
			return fmt.Errorf("lease key %x: not an address", k)
		}
		l, err := decodeLease(ip, v)
		if err != nil {
			return err
		}
		return fn(l)
	})
}

// MACForIP returns the MAC holding an active lease on ip, or node.ErrNotFound. The NoCloud
// endpoint uses it to tie a request's source address to a machine.
func (s *Store) MACForIP(ctx context.Context, ip netip.Addr) (node.MAC, error) {
	if err := ctxErr(ctx); err != nil {
		return node.MAC{}, err
	}
	ip = ip.Unmap()
	var mac node.MAC
	err := s.db.View(func(tx *bolt.Tx) error {
		var v []byte
		if b := tx.Bucket(bucketLeases); b != nil {
			v = b.Get(ip.AsSlice())
		}
		if v == nil {
			return fmt.Errorf("lease for %s: %w", ip, node.ErrNotFound)
		}
		l, err := decodeLease(ip, v)
		if err != nil {
			return err
		}
		if !l.ActiveAt(s.now()) {
			return fmt.Errorf("lease for %s is %s: %w", ip, leaseCondition(l, s.now()), node.ErrNotFound)
		}
		mac = l.MAC
		return nil
	})
	return mac, err
}

// LeaseForMAC returns mac's active lease, or node.ErrNotFound.
func (s *Store) LeaseForMAC(ctx context.Context, mac node.MAC) (Lease, error) {
	if err := ctxErr(ctx); err != nil {
		return Lease{}, err
	}
	var out Lease
	err := s.db.View(func(tx *bolt.Tx) error {
		byIP, byMAC := tx.Bucket(bucketLeases), tx.Bucket(bucketLeaseMAC)
		if byIP == nil || byMAC == nil {
			return fmt.Errorf("lease for %s: %w", mac, node.ErrNotFound)
		}
		at := byMAC.Get(mac[:])
		if at == nil {
			return fmt.Errorf("lease for %s: %w", mac, node.ErrNotFound)
		}
		ip, _ := netip.AddrFromSlice(at)
		v := byIP.Get(at)
		if v == nil {
			return fmt.Errorf("lease for %s: %w", mac, node.ErrNotFound)
		}
		l, err := decodeLease(ip, v)
		if err != nil {
			return err
		}
		if l.MAC != mac || !l.ActiveAt(s.now()) {
			return fmt.Errorf("lease for %s is %s: %w", mac, leaseCondition(l, s.now()), node.ErrNotFound)
		}
		out = l
		return nil
	})
	return out, err
}

func leaseCondition(l Lease, now time.Time) string {
	if l.State == LeaseActive && !now.Before(l.Expires) {
		return "expired"
	}
	return l.State.String()
}

// Lease records are binary, not JSON: they are written on the DHCP hot path.
//
//	version(1) state(1) mac(6) expires-unix-nanos(8, big endian) hostname(rest)
const leaseRecordVersion = 1

func encodeLease(l Lease) []byte {
	b := make([]byte, 16, 16+len(l.Hostname))
	b[0] = leaseRecordVersion
	b[1] = byte(l.State)
	copy(b[2:8], l.MAC[:])
	var exp int64
	if !l.Expires.IsZero() {
		exp = l.Expires.UnixNano()
	}
	binary.BigEndian.PutUint64(b[8:16], uint64(exp))
	return append(b, l.Hostname...)
}

func decodeLease(ip netip.Addr, v []byte) (Lease, error) {
	if len(v) < 16 || v[0] != leaseRecordVersion {
		return Lease{}, fmt.Errorf("decode lease %s: unknown record format (%d bytes)", ip, len(v))
	}
	l := Lease{IP: ip, State: LeaseState(v[1]), Hostname: string(v[16:])}
	copy(l.MAC[:], v[2:8])
	if exp := int64(binary.BigEndian.Uint64(v[8:16])); exp != 0 {
		l.Expires = time.Unix(0, exp).UTC()
	}
	return l, nil
}
