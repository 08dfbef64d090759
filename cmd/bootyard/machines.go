package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/machine"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// machineServices are what `serve` builds for machines, and the parts of them the
// operator's API shares.
type machineServices struct {
	server  *machine.Server
	join    *cloudinit.Renderer // the operator's join command and seed ISO render the same files
	catalog *images.Catalog
	// turns is the server join queue: NoCloud hands out turns, the cluster view shows them.
	turns *cloudinit.JoinTurns
	// stop writes the iPXE handler's queued boot events; call it before closing the store.
	stop func()
}

// machineServices builds every endpoint a machine calls: the iPXE script and binaries,
// the NoCloud seed, the agent API and the image and agent files (from <data>/agent), all
// behind one identity check. It runs the silent-agent watchdog in g.
func (o *serveOptions) machineServices(ctx context.Context, g *errgroup.Group, st store.Backend, bins *ipxe.Binaries,
	sightings machine.Sightings, advertise string, metrics *web.Metrics, log *slog.Logger) (machineServices, error) {
	var ms machineServices
	identity, err := machine.NewIdentity(machine.IdentityConfig{Leases: st, Sightings: sightings, TrustUnverified: o.trustUnverified})
	if err != nil {
		return ms, err
	}
	if o.trustUnverified {
		log.Warn("--trust-unverified-machines: secrets go to requests Bootyard cannot verify as the node's own")
	}
	if ms.join, err = cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: advertise}); err != nil {
		return ms, fmt.Errorf("cloud-init renderer: %w", err)
	}
	if ms.catalog, err = o.newCatalog(st, log); err != nil {
		return ms, err
	}
	agent, err := machine.NewAgent(machine.AgentConfig{AdvertiseURL: advertise, Logger: log}, st, ms.catalog, ms.join)
	if err != nil {
		return ms, err
	}
	ms.turns = cloudinit.NewJoinTurns(0, nil)
	nocloud, err := machine.NewNoCloudHandler(machine.NoCloudConfig{Renderer: ms.join, Inventory: st, Identity: identity, Turns: ms.turns,
		Observe: func(outcome string) { metrics.NoCloud.WithLabelValues(outcome).Inc() }, Logger: log})
	if err != nil {
		return ms, err
	}
	var loader string
	if bins != nil {
		if _, ok := bins.Lookup(ipxe.LocalBootLoaderName); ok {
			loader = ipxe.LocalBootLoaderName
		}
	}
	scripts, err := ipxe.NewRenderer(ipxe.Config{AdvertiseURL: advertise, LocalBootLoader: loader})
	if err != nil {
		return ms, fmt.Errorf("ipxe renderer: %w", err)
	}
	boot, err := machine.NewIPXEHandler(machine.IPXEConfig{Scripts: scripts, Inventory: st, Identity: identity, Binaries: bins,
		Agent: agent, Observe: func(s node.State) { metrics.Scripts.WithLabelValues(string(s)).Inc() },
		InspectDiscovered: o.inspectDiscovered, Logger: log})
	if err != nil {
		return ms, err
	}
	ms.stop = boot.Close
	files := images.NewFileServer(images.FileServerConfig{Images: st, ImagesDir: ms.catalog.Dir(), AgentDir: filepath.Join(o.dataDir, "agent"), Logger: log})
	ms.server = machine.New(machine.Config{Logger: log}, machine.Deps{IPXE: boot, NoCloud: nocloud, Files: files, Agent: agent})
	g.Go(func() error { return agent.Run(ctx) })
	return ms, nil
}

// binaries opens the iPXE binaries. With DHCP or TFTP on they are required; without,
// only UEFI HTTP boot through another DHCP server needs them, so a missing directory is
// a warning.
//
// Beside them it serves the UEFI local-boot loader, built into <data>/loaders at start-up.
// Without GRUB's modules UEFI machines still boot their disk through the firmware's next
// boot entry, which not every firmware follows (see ipxe.BuildLocalBootLoader): a warning.
func (b *bootOptions) binaries(ctx context.Context, dataDir string, log *slog.Logger) (*ipxe.Binaries, error) {
	var extra []string
	loader, err := ipxe.BuildLocalBootLoader(ctx, b.grubDir, filepath.Join(dataDir, "loaders"))
	if err != nil {
		log.Warn("no UEFI local-boot loader: installed UEFI machines are sent back to the firmware's next boot entry", slog.Any("err", err))
	} else {
		extra = append(extra, loader)
	}
	bins, err := ipxe.OpenBinaries(b.ipxeDir, extra...)
	if err == nil {
		return bins, nil
	}
	if b.dhcpInterface != "" || b.tftpListen != "" {
		return nil, fmt.Errorf("--ipxe-dir %s: %w (install Debian's ipxe package or point --ipxe-dir at the binaries)", b.ipxeDir, err)
	}
	if _, statErr := os.Stat(b.ipxeDir); statErr != nil {
		log.Warn("no iPXE binaries: /ipxe/ answers 404 (install Debian's ipxe package)", slog.String("dir", b.ipxeDir))
		return nil, nil
	}
	return nil, fmt.Errorf("--ipxe-dir %s: %w", b.ipxeDir, err)
}
