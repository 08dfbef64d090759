package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// mountImages adds the image catalog API, the image and agent files (from
// <data>/agent) and the agent API to deps, hands the agent to the iPXE handler when
// there is one, and runs the silent-agent watchdog in g.
func (o *serveOptions) mountImages(ctx context.Context, g *errgroup.Group, st *store.Store, advertise string, deps *web.Deps, log *slog.Logger) error {
	imagesDir := o.edge.imagesDir
	if imagesDir == "" {
		imagesDir = filepath.Join(o.dataDir, "images")
	}
	catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Dir: imagesDir, Logger: log})
	if err != nil {
		return err
	}
	if err := checkImagesDirHoldsNoState(catalog.Dir(), o.dataDir); err != nil {
		return err
	}
	// The NoCloud endpoint's renderer, so the agent's CIDATA and the NoCloud URL serve
	// the same files.
	ci, ok := deps.Join.(*cloudinit.Renderer)
	if !ok {
		return fmt.Errorf("images: no cloud-init renderer mounted")
	}
	agent, err := web.NewAgent(web.AgentConfig{AdvertiseURL: advertise, Logger: log}, st, catalog, ci)
	if err != nil {
		return err
	}
	deps.Images = catalog
	deps.ImageFiles = images.NewFileServer(images.FileServerConfig{Images: st, ImagesDir: catalog.Dir(), AgentDir: filepath.Join(o.dataDir, "agent"), Logger: log})
	deps.Agent = agent
	if h, ok := deps.IPXE.(*web.IPXEHandler); ok {
		h.WithAgent(agent)
	} else {
		log.Warn("no iPXE handler: install and wipe scripts will not boot the agent")
	}
	g.Go(func() error { return agent.Run(ctx) })
	return nil
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
