package kubestore

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Leases are stored by aligned block of 64 addresses, one BootyardLeaseBlock each: the
// DHCP server group-commits the REQUESTs waiting at one moment, and handing out addresses
// in order puts most of a batch in one or two blocks, so a batch costs one or two API
// writes instead of one per lease (each write is a create or an update conditional on the
// resourceVersion read, which is what keeps two replicas from both winning an address).
const (
	blockBits4 = 26  // 32-26: 64 IPv4 addresses
	blockBits6 = 122 // 128-122: 64 IPv6 addresses
)

// blockOf is the block holding ip.
func blockOf(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := blockBits4
	if ip.Is6() {
		bits = blockBits6
	}
	p, _ := ip.Prefix(bits)
	return p
}

// blockName is the object name of block p: its first address (IPv6 expanded, colons as
// dashes, so it is a valid name) and its length.
func blockName(p netip.Prefix) string {
	a := p.Addr()
	s := a.String()
	if a.Is6() {
		s = strings.ReplaceAll(a.StringExpanded(), ":", "-")
	}
	return s + "-" + strconv.Itoa(p.Bits())
}

var (
	leaseStates     = map[store.LeaseState]string{store.LeaseActive: "active", store.LeaseReleased: "released", store.LeaseDeclined: "declined"}
	leaseStateNames = map[string]store.LeaseState{"active": store.LeaseActive, "released": store.LeaseReleased, "declined": store.LeaseDeclined}
)

// toRecord is l's line in its block: "<ip> <mac> <state> <expires> [<hostname>]".
func toRecord(l store.Lease) string {
	mac, expires := "-", "-"
	if !l.MAC.IsZero() {
		mac = l.MAC.String()
	}
	if !l.Expires.IsZero() {
		expires = formatTime(l.Expires)
	}
	r := l.IP.Unmap().String() + " " + mac + " " + leaseStates[l.State] + " " + expires
	if l.Hostname != "" {
		r += " " + l.Hostname
	}
	return r
}

func fromRecord(r string) (store.Lease, error) {
	f := strings.SplitN(r, " ", 5)
	if len(f) < 4 {
		return store.Lease{}, fmt.Errorf("lease record %q: want <ip> <mac> <state> <expires> [<hostname>]", r)
	}
	ip, err := netip.ParseAddr(f[0])
	if err != nil {
		return store.Lease{}, fmt.Errorf("lease record %q: %w", r, err)
	}
	l := store.Lease{IP: ip.Unmap()}
	if f[1] != "-" {
		if l.MAC, err = node.ParseMAC(f[1]); err != nil {
			return store.Lease{}, fmt.Errorf("lease record %q: %w", r, err)
		}
	}
	state, ok := leaseStateNames[f[2]]
	if !ok {
		return store.Lease{}, fmt.Errorf("lease record %q: unknown state %q", r, f[2])
	}
	l.State = state
	if f[3] != "-" {
		if l.Expires, err = time.Parse(time.RFC3339Nano, f[3]); err != nil {
			return store.Lease{}, fmt.Errorf("lease record %q: %w", r, err)
		}
		l.Expires = l.Expires.UTC()
	}
	if len(f) == 5 {
		l.Hostname = f[4]
	}
	return l, nil
}

// blockLeases reads a block object's records. A record outside the block (a hand edit)
// is refused: the block's version is what guards its addresses, and only its own.
func blockLeases(o *v1alpha1.BootyardLeaseBlock) (netip.Prefix, map[netip.Addr]store.Lease, error) {
	p, err := netip.ParsePrefix(o.Spec.Prefix)
	if err != nil || p != blockOf(p.Addr()) || blockName(p) != o.Name {
		return netip.Prefix{}, nil, fmt.Errorf("lease block %s: prefix %q is not the block its name says", o.Name, o.Spec.Prefix)
	}
	leases := make(map[netip.Addr]store.Lease, len(o.Spec.Leases))
	for _, r := range o.Spec.Leases {
		l, err := fromRecord(r)
		if err != nil {
			return netip.Prefix{}, nil, fmt.Errorf("lease block %s: %w", o.Name, err)
		}
		if !p.Contains(l.IP) {
			return netip.Prefix{}, nil, fmt.Errorf("lease block %s: address %s is outside %s", o.Name, l.IP, p)
		}
		leases[l.IP] = l
	}
	return p, leases, nil
}

// blockObject is the object storing leases as block p, on base's metadata (its
// resourceVersion makes the update conditional) or a new object's.
func (s *Store) blockObject(p netip.Prefix, leases map[netip.Addr]store.Lease, base *v1alpha1.BootyardLeaseBlock) *v1alpha1.BootyardLeaseBlock {
	o := &v1alpha1.BootyardLeaseBlock{}
	if base != nil {
		o.ObjectMeta = *base.ObjectMeta.DeepCopy()
	} else {
		o.ObjectMeta = metav1.ObjectMeta{Namespace: s.ns, Name: blockName(p)}
	}
	o.Spec = v1alpha1.BootyardLeaseBlockSpec{Prefix: p.String(), Records: int32(len(leases)), Leases: make([]string, 0, len(leases))}
	for _, ip := range slices.SortedFunc(maps.Keys(leases), netip.Addr.Compare) {
		o.Spec.Leases = append(o.Spec.Leases, toRecord(leases[ip]))
	}
	return o
}

// leaseCache is this replica's view of every lease block, indexed by address and MAC.
type leaseCache struct {
	mu     sync.RWMutex
	blocks newest[*cachedBlock]
	byIP   map[netip.Addr]store.Lease
	byMAC  map[node.MAC]netip.Addr
}

type cachedBlock struct {
	obj    *v1alpha1.BootyardLeaseBlock
	prefix netip.Prefix
	leases map[netip.Addr]store.Lease // read only once cached
	rv     uint64
}

func newLeaseCache() *leaseCache {
	return &leaseCache{blocks: newNewest[*cachedBlock](), byIP: make(map[netip.Addr]store.Lease), byMAC: make(map[node.MAC]netip.Addr)}
}

func (c *leaseCache) put(o *v1alpha1.BootyardLeaseBlock) {
	p, leases, err := blockLeases(o)
	if err != nil {
		slog.Warn("kubernetes store: lease block skipped", slog.String("block", o.Name), slog.Any("err", err))
		return
	}
	rv := resourceVersion(o.ResourceVersion)
	c.mu.Lock()
	defer c.mu.Unlock()
	old, stored := c.blocks.put(o.Name, rv, &cachedBlock{obj: o, prefix: p, leases: leases, rv: rv})
	if !stored {
		return
	}
	if old != nil {
		c.unindex(old.v)
	}
	for ip, l := range leases {
		c.byIP[ip] = l
		if !l.MAC.IsZero() {
			c.byMAC[l.MAC] = ip
		}
	}
}

func (c *leaseCache) unindex(b *cachedBlock) {
	for ip := range b.leases {
		if l, ok := c.byIP[ip]; ok && !l.MAC.IsZero() && c.byMAC[l.MAC] == ip {
			delete(c.byMAC, l.MAC)
		}
		delete(c.byIP, ip)
	}
}

func (c *leaseCache) remove(name string, rv uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.blocks.remove(name, rv); old != nil {
		c.unindex(old.v)
	}
}

func (c *leaseCache) block(name string) (*cachedBlock, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.blocks.byName[name]
	if !ok {
		return nil, false
	}
	return e.v, true
}

func (c *leaseCache) lease(ip netip.Addr) (store.Lease, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l, ok := c.byIP[ip.Unmap()]
	return l, ok
}

func (c *leaseCache) forMAC(mac node.MAC) (store.Lease, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ip, ok := c.byMAC[mac]
	if !ok {
		return store.Lease{}, false
	}
	l, ok := c.byIP[ip]
	return l, ok
}

func (c *leaseCache) all() []store.Lease {
	c.mu.RLock()
	out := make([]store.Lease, 0, len(c.byIP))
	for _, l := range c.byIP {
		out = append(out, l)
	}
	c.mu.RUnlock()
	return out
}

// renew replaces the cached record of l's address with l when it is still was: a renewal
// accepted without the API server changes the lease but not its block's version (the
// next version of the block, from the watch or a write, replaces it).
func (c *leaseCache) renew(was, l store.Lease) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.byIP[l.IP]; !ok || cur != was {
		return false
	}
	c.byIP[l.IP] = l
	return true
}
