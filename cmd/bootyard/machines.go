package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/machine"
	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// mountMachineEndpoints adds what booting machines call over HTTP: the iPXE script and
// binaries, and the NoCloud seed. The returned function flushes their queued writes.
func (o *serveOptions) mountMachineEndpoints(st *store.Store, bins *ipxe.Binaries, advertise string, deps *web.Deps, mdeps *machine.Deps, log *slog.Logger) (func(), error) {
	ci, err := cloudinit.NewRenderer(cloudinit.Config{AdvertiseURL: advertise})
	if err != nil {
		return nil, fmt.Errorf("cloud-init renderer: %w", err)
	}
	deps.Join = ci
	nocloud := machine.NewNoCloudHandler(ci, st, log)
	mdeps.NoCloud = nocloud

	var loader string
	if bins != nil {
		if _, ok := bins.Lookup(ipxe.LocalBootLoaderName); ok {
			loader = ipxe.LocalBootLoaderName
		}
	}
	scripts, err := ipxe.NewRenderer(ipxe.Config{AdvertiseURL: advertise, LocalBootLoader: loader})
	if err != nil {
		return nil, fmt.Errorf("ipxe renderer: %w", err)
	}
	h := machine.NewIPXEHandler(scripts, st, bins, log)
	mdeps.IPXE = h
	if m := deps.Metrics; m != nil {
		h.Observe(func(s node.State) { m.Scripts.WithLabelValues(string(s)).Inc() })
		nocloud.Observe(func(outcome string) { m.NoCloud.WithLabelValues(outcome).Inc() })
	}
	return h.Close, nil
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
