package boot

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/bootyard/bootyard/node"
)

// LoaderPolicy says which loader an x86-64 UEFI machine is offered: iPXE, or the Secure
// Boot chain (shim, then Debian's signed GRUB).
type LoaderPolicy interface {
	UEFILoader(ctx context.Context, mac node.MAC) node.UEFILoader
}

// NodeLookup finds the node a MAC belongs to (*store.NodeCache).
type NodeLookup interface {
	NodeByMAC(ctx context.Context, mac node.MAC) (node.Node, uint64, error)
}

// SiteSettings reads the site's settings (*store.Store).
type SiteSettings interface {
	ClusterSettings(ctx context.Context) (node.ClusterSettings, error)
}

// loaderTTL is how long an answer read from the store is reused before it is read again:
// the site's setting is one JSON document and a node's a bbolt read, and a DHCP storm
// must not pay either per packet (a machine sends DISCOVER, REQUEST and its PXE retries
// within seconds). A change made through this server drops the node's answer at once
// (NodeChanged); the site's, and a change made by another replica, reach DHCP within
// this time.
const loaderTTL = 5 * time.Second

// maxCachedLoaders bounds the per-MAC answers kept: past it the answers older than half
// the TTL are dropped (all of them if none is), so a storm of made-up MACs cannot grow
// the map without end.
const maxCachedLoaders = 1 << 16

// StoreLoaders is the LoaderPolicy of the inventory: the node's own setting, else the
// site's, else node.DefaultUEFILoader. An unknown machine gets the site's.
type StoreLoaders struct {
	nodes    NodeLookup
	settings SiteSettings
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	site   node.UEFILoader
	readAt time.Time
	own    map[node.MAC]ownLoader // the node's own setting, LoaderInherit for no node
	gen    uint64                 // bumped by NodeChanged: a read begun before must not be kept
}

// ownLoader is a node's own setting as read at readAt.
type ownLoader struct {
	loader node.UEFILoader
	readAt time.Time
}

// NewStoreLoaders builds the policy.
func NewStoreLoaders(nodes NodeLookup, settings SiteSettings, log *slog.Logger) *StoreLoaders {
	if log == nil {
		log = slog.Default()
	}
	return &StoreLoaders{nodes: nodes, settings: settings, log: log, now: time.Now, own: make(map[node.MAC]ownLoader)}
}

// UEFILoader is mac's loader.
func (l *StoreLoaders) UEFILoader(ctx context.Context, mac node.MAC) node.UEFILoader {
	now := l.now()
	l.mu.Lock()
	siteFresh := !l.readAt.IsZero() && now.Sub(l.readAt) < loaderTTL
	site := l.site
	e, ok := l.own[mac]
	gen := l.gen
	l.mu.Unlock()
	if !siteFresh {
		site = l.readSite(ctx, now)
	}
	if ok && now.Sub(e.readAt) < loaderTTL {
		return node.EffectiveUEFILoader(e.loader, site)
	}
	own, err := l.readOwn(ctx, mac)
	if err != nil {
		// Not kept: a store hiccup must not pin a node to the site's loader.
		return node.EffectiveUEFILoader(node.LoaderInherit, site)
	}
	l.mu.Lock()
	if l.gen == gen {
		if len(l.own) >= maxCachedLoaders {
			l.dropOldest(now)
		}
		l.own[mac] = ownLoader{loader: own, readAt: now}
	}
	l.mu.Unlock()
	return node.EffectiveUEFILoader(own, site)
}

// NodeChanged drops the answers for a node's MACs when its setting or its MACs change
// (the store's update hook), so an operator's change takes effect at the next DISCOVER.
func (l *StoreLoaders) NodeChanged(before, after node.Node) {
	if before.UEFILoader == after.UEFILoader && slices.Equal(before.MACs, after.MACs) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	for _, m := range before.MACs {
		delete(l.own, m)
	}
	for _, m := range after.MACs {
		delete(l.own, m)
	}
}

// readOwn reads mac's node's own setting; no node is LoaderInherit.
func (l *StoreLoaders) readOwn(ctx context.Context, mac node.MAC) (node.UEFILoader, error) {
	n, _, err := l.nodes.NodeByMAC(ctx, mac)
	switch {
	case errors.Is(err, node.ErrNotFound):
		return node.LoaderInherit, nil
	case err != nil:
		l.log.Error("dhcp: read the node's UEFI loader", slog.String("mac", mac.String()), slog.Any("err", err))
		return "", err
	}
	return n.UEFILoader, nil
}

func (l *StoreLoaders) readSite(ctx context.Context, now time.Time) node.UEFILoader {
	s, err := l.settings.ClusterSettings(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// Keep the last answer: a store hiccup must not flip a site's machines to
		// the other loader.
		l.log.Error("dhcp: read the site's UEFI loader", slog.Any("err", err))
		return l.site
	}
	l.site, l.readAt = s.UEFILoader, now
	return l.site
}

// dropOldest removes the answers older than half the TTL, or all of them when none is:
// called with mu held when the map is full.
func (l *StoreLoaders) dropOldest(now time.Time) {
	for m, e := range l.own {
		if now.Sub(e.readAt) >= loaderTTL/2 {
			delete(l.own, m)
		}
	}
	if len(l.own) >= maxCachedLoaders {
		clear(l.own)
	}
}

// wantsShim asks the policy about x86-64 UEFI clients, PXE (arch 7 and 9) and HTTP boot
// (arch 16) alike, when the chain is served for them; everyone else costs nothing. Under
// HTTP boot the chain comes as a disk image the firmware boots from a RAM disk (see
// ipxe.ShimHTTPDiskName), since Debian's signed GRUB cannot go on over HTTP.
func (s *DHCPServer) wantsShim(ctx context.Context, r request) bool {
	if s.cfg.Loaders == nil || r.client.ipxe {
		return false
	}
	switch {
	case r.client.pxe && (r.client.arch == archEFIBC || r.client.arch == archEFIx64) && s.cfg.BootFiles.EFIx64Shim != "":
	case r.client.httpBoot && r.client.arch == archHTTPx64 && s.cfg.BootFiles.EFIx64ShimHTTP != "":
	default:
		return false
	}
	return s.cfg.Loaders.UEFILoader(ctx, r.mac) == node.LoaderShim
}
