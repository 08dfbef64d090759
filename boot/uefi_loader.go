package boot

import (
	"context"
	"log/slog"
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

// siteLoaderTTL is how long the site's setting is reused before it is read again: the
// setting is one JSON document, and a DHCP storm must not decode it per DISCOVER. A change
// reaches DHCP within this time.
const siteLoaderTTL = 5 * time.Second

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
}

// NewStoreLoaders builds the policy.
func NewStoreLoaders(nodes NodeLookup, settings SiteSettings, log *slog.Logger) *StoreLoaders {
	if log == nil {
		log = slog.Default()
	}
	return &StoreLoaders{nodes: nodes, settings: settings, log: log, now: time.Now}
}

// UEFILoader is mac's loader.
func (l *StoreLoaders) UEFILoader(ctx context.Context, mac node.MAC) node.UEFILoader {
	site := l.siteLoader(ctx)
	n, _, err := l.nodes.NodeByMAC(ctx, mac)
	if err != nil {
		return node.EffectiveUEFILoader(node.LoaderInherit, site)
	}
	return node.EffectiveUEFILoader(n.UEFILoader, site)
}

func (l *StoreLoaders) siteLoader(ctx context.Context) node.UEFILoader {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.readAt.IsZero() && now.Sub(l.readAt) < siteLoaderTTL {
		return l.site
	}
	s, err := l.settings.ClusterSettings(ctx)
	if err != nil {
		// Keep the last answer: a store hiccup must not flip a site's machines to
		// the other loader.
		l.log.Error("dhcp: read the site's UEFI loader", slog.Any("err", err))
		return l.site
	}
	l.site, l.readAt = s.UEFILoader, now
	return l.site
}

// wantsShim asks the policy about x86-64 UEFI PXE clients; everyone else costs nothing.
// UEFI HTTP boot keeps iPXE: shim would fetch GRUB over HTTP, but Debian's signed GRUB
// has no HTTP to read its config with and would stop at its prompt.
func (s *DHCPServer) wantsShim(ctx context.Context, r request) bool {
	if s.cfg.Loaders == nil || s.cfg.BootFiles.EFIx64Shim == "" || r.client.ipxe || !r.client.pxe ||
		(r.client.arch != archEFIBC && r.client.arch != archEFIx64) {
		return false
	}
	return s.cfg.Loaders.UEFILoader(ctx, r.mac) == node.LoaderShim
}
