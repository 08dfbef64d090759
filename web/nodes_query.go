package web

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/rootdisk"
	"github.com/bootyard/bootyard/store"
)

// parseNodeQuery turns the query string of GET /api/v1/nodes (and of the nodes page) into
// a store query, with an error naming the parameter at fault (422). The parameters are
// Kubernetes' where Kubernetes has one: limit, continue, labelSelector.
//
//	limit, continue      page size (default 100, at most 1000) and the previous page's token
//	labelSelector        rack=r7,gpu  |  rack in (r1,r2)  |  !gpu  (k8s.io/apimachinery syntax)
//	role, state          exact
//	name                 name prefix
//	mac, ip              one MAC (any accepted form), one address (with or without /len)
//	sort                 name, -name, state, -state
//	minMemory, minDisks  inspected nodes with at least this memory (64G: GiB, as root-disk
//	                     size hints count) and this many disks
//	hardware             inspected nodes whose vendor, product, serial, CPU model, or a
//	                     disk's model, vendor, serial or WWN contains this (any case)
func parseNodeQuery(v url.Values) (store.NodeQuery, error) {
	var q store.NodeQuery
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return q, badField("limit", fmt.Errorf("limit %q: %w: want 1 to %d", s, node.ErrInvalid, store.MaxPageLimit))
		}
		q.Limit = n
	}
	q.Continue = v.Get("continue")
	if s := strings.TrimSpace(v.Get("labelSelector")); s != "" {
		sel, err := labels.Parse(s)
		if err != nil {
			return q, badField("labelSelector", fmt.Errorf("labelSelector %q: %w: %v", s, node.ErrInvalid, err))
		}
		q.Selector = sel
	}
	if s := v.Get("role"); s != "" {
		r, err := node.ParseRole(s)
		if err != nil {
			return q, badField("role", err)
		}
		q.Role = r
	}
	if s := v.Get("state"); s != "" {
		st, err := node.ParseState(s)
		if err != nil {
			return q, badField("state", err)
		}
		q.State = st
	}
	q.NamePrefix = strings.TrimSpace(v.Get("name"))
	if s := strings.TrimSpace(v.Get("mac")); s != "" {
		m, err := node.ParseMAC(s)
		if err != nil {
			return q, badField("mac", err)
		}
		q.MAC = m
	}
	if s := strings.TrimSpace(v.Get("ip")); s != "" {
		a, err := parseAddrOrPrefix(s)
		if err != nil {
			return q, badField("ip", err)
		}
		q.IP = a
	}
	if err := parseHardwareFilter(v, &q.Hardware); err != nil {
		return q, err
	}
	switch s := v.Get("sort"); s {
	case "", "name":
	case "-name":
		q.Desc = true
	case "state", "-state":
		q.Sort, q.Desc = "state", s[0] == '-'
	default:
		return q, badField("sort", fmt.Errorf("sort %q: %w: want name, -name, state or -state", s, node.ErrInvalid))
	}
	return q, nil
}

// parseHardwareFilter reads the hardware parameters: minMemory, minDisks and hardware.
func parseHardwareFilter(v url.Values, f *node.HardwareFilter) error {
	if s := strings.TrimSpace(v.Get("minMemory")); s != "" {
		b, err := rootdisk.ParseSize(s)
		if err != nil {
			return badField("minMemory", fmt.Errorf("minMemory %q: %w: want a size such as 64G or 512GiB", s, node.ErrInvalid))
		}
		f.MinMemory = b
	}
	if s := strings.TrimSpace(v.Get("minDisks")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return badField("minDisks", fmt.Errorf("minDisks %q: %w: want a whole number, 0 or more", s, node.ErrInvalid))
		}
		f.MinDisks = n
	}
	f.Text = strings.TrimSpace(v.Get("hardware"))
	return nil
}

// parseAddrOrPrefix accepts 10.0.0.5 or 10.0.0.5/24 (a node's IP is stored in CIDR form).
func parseAddrOrPrefix(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ip %q: %w: not an IP address", s, node.ErrInvalid)
	}
	return a, nil
}
