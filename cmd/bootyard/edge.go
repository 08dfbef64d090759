package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/web"
)

// edgeOptions are the settings of the operator-facing HTTP edge that relax or tune a
// check: who may scrape /metrics, whose X-Forwarded-For is believed, how big an upload
// may be, and where image files live.
type edgeOptions struct {
	metricsToken     string
	trustedProxies   []string
	imageUploadLimit int64
	imagesDir        string
}

func (o *edgeOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.metricsToken, "metrics-token", "", "bearer token that reads /metrics and nothing else (default: /metrics needs the admin token)")
	f.StringSliceVar(&o.trustedProxies, "trusted-proxies", nil, "CIDRs of reverse proxies whose X-Forwarded-For is believed (default: none; the socket's peer is the client)")
	f.Int64Var(&o.imageUploadLimit, "image-upload-limit", 64<<30, "largest image upload accepted, in bytes")
	f.StringVar(&o.imagesDir, "images-dir", "", "the only directory image files are read and served from (default <data>/images)")
}

// edgeSettings are edgeOptions parsed.
type edgeSettings struct {
	metricsToken     node.Secret
	trustedProxies   []netip.Prefix
	imageUploadLimit int64
}

func (o *edgeOptions) parse() (edgeSettings, error) {
	e := edgeSettings{metricsToken: node.Secret(strings.TrimSpace(o.metricsToken)), imageUploadLimit: o.imageUploadLimit}
	if e.metricsToken.IsSet() && len(e.metricsToken.Reveal()) < web.MinAdminTokenLen {
		return edgeSettings{}, fmt.Errorf("--metrics-token: at least %d characters, please (a short token is guessed over the network)", web.MinAdminTokenLen)
	}
	if o.imageUploadLimit <= 0 {
		return edgeSettings{}, fmt.Errorf("--image-upload-limit %d: want a positive number of bytes", o.imageUploadLimit)
	}
	for _, s := range o.trustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			// A bare address is a proxy of its own.
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return edgeSettings{}, fmt.Errorf("--trusted-proxies %q: want a CIDR such as 10.0.0.0/24 or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		e.trustedProxies = append(e.trustedProxies, p.Masked())
	}
	return e, nil
}

// newCatalog is the image catalog over --images-dir (default <data>/images).
func (o *serveOptions) newCatalog(st images.CatalogStore, log *slog.Logger) (*images.Catalog, error) {
	dir := o.edge.imagesDir
	if dir == "" {
		dir = filepath.Join(o.dataDir, "images")
	}
	catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Dir: dir, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := checkImagesDirHoldsNoState(catalog.Dir(), o.dataDir); err != nil {
		return nil, err
	}
	return catalog, nil
}

// checkImagesDirHoldsNoState refuses an images directory that contains the data
// directory (the store, the admin token, the TLS key): everything in the images
// directory may be served to machines.
func checkImagesDirHoldsNoState(imagesDir, dataDir string) error {
	data, err := filepath.Abs(dataDir)
	if err == nil {
		if real, rerr := filepath.EvalSymlinks(data); rerr == nil {
			data = real
		}
	}
	rel, err := filepath.Rel(imagesDir, data)
	if err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))) {
		return fmt.Errorf("--images-dir %s contains the data directory %s (the store and the admin token): use a directory of its own, e.g. %s",
			imagesDir, dataDir, filepath.Join(dataDir, "images"))
	}
	return nil
}
