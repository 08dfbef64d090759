package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/machine"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// mountImages adds the image catalog API, the image and agent files (from
// <data>/agent) and the agent API to deps, hands the agent to the iPXE handler when
// there is one, and runs the silent-agent watchdog in g.
func (o *serveOptions) mountImages(ctx context.Context, g *errgroup.Group, st *store.Store, advertise string, deps *web.Deps, mdeps *machine.Deps, log *slog.Logger) error {
	catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Logger: log})
	if err != nil {
		return err
	}
	// The NoCloud endpoint's renderer, so the agent's CIDATA and the NoCloud URL serve
	// the same files.
	ci, ok := deps.Join.(*cloudinit.Renderer)
	if !ok {
		return fmt.Errorf("images: no cloud-init renderer mounted")
	}
	agent, err := machine.NewAgent(machine.AgentConfig{AdvertiseURL: advertise, Logger: log}, st, catalog, ci)
	if err != nil {
		return err
	}
	deps.Images = catalog
	mdeps.Files = images.NewFileServer(images.FileServerConfig{Images: st, AgentDir: filepath.Join(o.dataDir, "agent"), Logger: log})
	mdeps.Agent = agent
	if h := mdeps.IPXE; h != nil {
		h.WithAgent(agent)
	} else {
		log.Warn("no iPXE handler: install and wipe scripts will not boot the agent")
	}
	g.Go(func() error { return agent.Run(ctx) })
	return nil
}
