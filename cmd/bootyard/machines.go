package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/grub"
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
	// stop writes the iPXE handler's queued boot events; call it before closing the store.
	stop func()
	// grub answers the Secure Boot chain's GRUB over TFTP; nil without the signed chain.
	grub *machine.GRUBConfigs
}

// grubFiles is what the TFTP server asks first, or nil (an interface holding a nil
// pointer would not be nil).
func (ms machineServices) grubFiles() boot.TFTPGenerated {
	if ms.grub == nil {
		return nil
	}
	return ms.grub
}

// machineServices builds every endpoint a machine calls: the iPXE script and binaries,
// the NoCloud seed, the agent API and the image and agent files (from <data>/agent), all
// behind one identity check. It runs the silent-agent watchdog in g.
func (o *serveOptions) machineServices(ctx context.Context, g *errgroup.Group, st store.Backend, turns machine.JoinTurns, bins *ipxe.Binaries,
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
	nocloud, err := machine.NewNoCloudHandler(machine.NoCloudConfig{Renderer: ms.join, Inventory: st, Identity: identity, Turns: turns,
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
	if bins != nil {
		if _, ok := bins.Lookup(ipxe.GRUBName); ok {
			grubRender, err := grub.NewRenderer(grub.Config{AdvertiseURL: advertise})
			if err != nil {
				return ms, err
			}
			ms.grub, err = machine.NewGRUBConfigs(machine.IPXEConfig{Inventory: st, Identity: identity, Agent: agent,
				Observe: func(s node.State) { metrics.Scripts.WithLabelValues(string(s)).Inc() }, Logger: log}, grubRender)
			if err != nil {
				return ms, err
			}
			ms.stop = func() { boot.Close(); ms.grub.Close() }
		}
	}
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
func (b *bootOptions) binaries(ctx context.Context, dataDir, advertise string, log *slog.Logger) (*ipxe.Binaries, error) {
	var extra []string
	loader, err := ipxe.BuildLocalBootLoader(ctx, b.grubDir, filepath.Join(dataDir, "loaders"))
	if err != nil {
		log.Warn("no UEFI local-boot loader: installed UEFI machines are sent back to the firmware's next boot entry", slog.Any("err", err))
	} else {
		extra = append(extra, loader)
	}
	bins, err := ipxe.OpenBinariesWith(b.ipxeDir, b.signedChain(ctx, dataDir, advertise, log), extra...)
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

// signedChain is the Secure Boot chain served beside the iPXE binaries: Debian's signed
// shim and GRUB, and the agent's kernel and initramfs under the names GRUB fetches them
// by over TFTP (it has no HTTP). Without them UEFI machines get iPXE whatever the
// setting: a warning, not an error, since most sites boot without Secure Boot.
//
// For UEFI HTTP boot the chain is also served as a disk image (ipxe.ShimHTTPDiskName),
// built into <data>/loaders at start-up, whose GRUB reads its config over TFTP from the
// advertise URL's host. Without it (that host is a name, or no mtools) UEFI HTTP boot
// clients get iPXE whatever the setting: a warning.
func (b *bootOptions) signedChain(ctx context.Context, dataDir, advertise string, log *slog.Logger) []ipxe.NamedFile {
	files, err := ipxe.SignedChain(b.shimDir, b.grubSigned)
	if err != nil {
		log.Warn("no Secure Boot chain: UEFI machines get iPXE whatever their loader setting", slog.Any("err", err))
		return nil
	}
	if disk, err := b.shimHTTPDisk(ctx, files, dataDir, advertise); err != nil {
		log.Warn("no Secure Boot chain for UEFI HTTP boot: those clients get iPXE whatever their loader setting", slog.Any("err", err))
	} else {
		files = append(files, ipxe.NamedFile{Name: ipxe.ShimHTTPDiskName, Path: disk})
	}
	for name, file := range map[string]string{grub.AgentKernel: "vmlinuz", grub.AgentInitramfs: "initramfs.gz"} {
		path := filepath.Join(dataDir, "agent", file)
		if _, err := os.Stat(path); err != nil {
			log.Warn("the agent is not built: the Secure Boot chain cannot install or wipe (make images, then restart)", slog.String("file", path))
			continue
		}
		files = append(files, ipxe.NamedFile{Name: name, Path: path})
	}
	return files
}

// shimHTTPDisk builds the signed chain's HTTP boot disk, whose GRUB goes on over TFTP
// from the advertise URL's host: Bootyard's TFTP server when it answers DHCP there too.
func (b *bootOptions) shimHTTPDisk(ctx context.Context, chain []ipxe.NamedFile, dataDir, advertise string) (string, error) {
	u, err := url.Parse(advertise)
	if err != nil {
		return "", fmt.Errorf("advertise URL %q: %w", advertise, err)
	}
	host, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return "", fmt.Errorf("advertise URL %q: GRUB needs the TFTP server's IPv4 address, not a name: %w", advertise, err)
	}
	return ipxe.BuildShimHTTPDisk(ctx, chain, host, filepath.Join(dataDir, "loaders"))
}
