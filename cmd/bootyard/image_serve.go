package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

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
	catalog, err := o.newCatalog(st, log)
	if err != nil {
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
