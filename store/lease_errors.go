package store

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// LeaseErrors is PutLeases' error when a backend wrote some leases of a batch and not
// others (the Kubernetes backend writes one object per address, so one address claimed
// by another replica fails alone): the addresses it names failed, every other lease of
// the batch was written. The bbolt store never returns it: its batch is one transaction.
type LeaseErrors map[netip.Addr]error

func (e LeaseErrors) Error() string {
	ips := make([]netip.Addr, 0, len(e))
	for ip := range e {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	parts := make([]string, 0, min(len(ips), 3))
	for _, ip := range ips[:min(len(ips), 3)] {
		parts = append(parts, fmt.Sprintf("%s: %v", ip, e[ip]))
	}
	more := ""
	if len(ips) > 3 {
		more = fmt.Sprintf(" (and %d more)", len(ips)-3)
	}
	return fmt.Sprintf("%d leases failed: %s%s", len(ips), strings.Join(parts, "; "), more)
}

// Unwrap lets errors.Is find a kind (node.ErrConflict, ...) among the failures.
func (e LeaseErrors) Unwrap() []error {
	out := make([]error, 0, len(e))
	for _, err := range e {
		out = append(out, err)
	}
	return out
}
