package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/bootyard/bootyard/boot"
	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/store"
	"github.com/bootyard/bootyard/web"
)

// bootOptions are the network-boot settings of `bootyard serve`.
type bootOptions struct {
	dhcpInterface string
	dhcpMode      string
	dhcpRange     string
	dhcpRouter    string
	dhcpDNS       []string
	dhcpLease     string
	dhcpSubnets   []string
	tftpListen    string
	tftpLimits    boot.TFTPConfig // MaxTransfers and MaxWindowSize from their flags
	sharedLeases  bool            // the store is shared by replicas (--store kubernetes): boot.DHCPConfig.SharedLeases
	ipxeDir       string
	grubDir       string
	shimDir       string
	grubSigned    string
}

func (b *bootOptions) register(f *pflag.FlagSet) {
	f.StringVar(&b.dhcpInterface, "dhcp-interface", "", "network interface to answer DHCP on (DHCP is off unless this is set)")
	f.StringVar(&b.dhcpMode, "dhcp-mode", "full", "full (hand out addresses) or proxy (boot information beside an existing DHCP server)")
	f.StringVar(&b.dhcpRange, "dhcp-range", "", "address range for full mode, e.g. 10.0.0.100-10.0.0.200")
	f.StringVar(&b.dhcpRouter, "dhcp-router", "", "router (option 3) for full mode")
	f.StringSliceVar(&b.dhcpDNS, "dhcp-dns", nil, "DNS servers (option 6) for full mode")
	f.StringVar(&b.dhcpLease, "dhcp-lease-time", "1h", "lease time for full mode")
	f.StringSliceVar(&b.dhcpSubnets, "dhcp-subnets", nil, "answer only requests relayed from (giaddr), or on the interface's own subnet, inside these prefixes, e.g. 10.1.7.0/24,10.1.8.0/24; others are dropped and counted (per-rack replicas sharing one inventory). Default: every subnet")
	f.StringVar(&b.tftpListen, "tftp-listen", "", "TFTP address:port (default: port 69 of the DHCP interface's address when DHCP is on)")
	f.IntVar(&b.tftpLimits.MaxTransfers, "tftp-max-transfers", 4096, "TFTP transfers in flight at most; a request past it is answered \"server busy\" and the firmware retries")
	f.IntVar(&b.tftpLimits.MaxWindowSize, "tftp-max-window", 64, "largest RFC 7440 windowsize granted to a TFTP client that asks (1 sends block by block); a window never carries more than 64 KiB")
	f.StringVar(&b.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "directory of iPXE binaries (Debian package ipxe)")
	f.StringVar(&b.grubDir, "grub-efi-dir", ipxe.DefaultGRUBDir, "GRUB's x86_64-efi modules, for the UEFI local-boot loader (Debian package grub-efi-amd64-bin)")
	f.StringVar(&b.shimDir, "shim-dir", ipxe.DefaultShimDir, "Secure Boot: the Microsoft-signed shimx64.efi.signed (Debian package shim-signed)")
	f.StringVar(&b.grubSigned, "grub-signed-dir", ipxe.DefaultSignedGRUBDir, "Secure Boot: Debian's signed grubnetx64.efi.signed (Debian package grub-efi-amd64-signed)")
}

// start launches DHCP and TFTP when asked. DHCP never starts unless an interface is
// named: on a shared network an unasked DHCP server is a rogue one.
func (b *bootOptions) start(ctx context.Context, g *errgroup.Group, st store.Backend, bins *ipxe.Binaries, sightings *boot.Sightings,
	grubFiles boot.TFTPGenerated, advertise string, src *web.MetricSources, hooks *updateHooks, log *slog.Logger) error {
	if b.dhcpInterface == "" && b.tftpListen == "" {
		log.Info("DHCP and TFTP are off (no --dhcp-interface, no --tftp-listen)")
		return nil
	}
	tftpListen := b.tftpListen
	if b.dhcpInterface != "" {
		cfg, err := b.dhcpConfig(advertise)
		if err != nil {
			return err
		}
		cfg.BootFiles = boot.BootFilesFrom(bins)
		cfg.Sightings = sightings
		cfg.SharedLeases = b.sharedLeases
		if cfg.BootFiles.EFIx64Shim != "" {
			loaders := boot.NewStoreLoaders(st.NewNodeCache(), st, log)
			hooks.add(loaders.NodeChanged)
			cfg.Loaders = loaders
		}
		srv, err := boot.NewDHCP(cfg, st, st, log)
		if err != nil {
			return err
		}
		if tftpListen == "" {
			tftpListen = net.JoinHostPort(srv.Addr().String(), "69")
		}
		src.DHCP = srv.Stats
		hooks.add(srv.NodeChanged)
		if cfg.Range.Start.IsValid() {
			src.DHCPPool = cfg.Range.Size()
		}
		g.Go(func() error { return srv.Run(ctx) })
	}
	if b.tftpLimits.MaxTransfers < 1 {
		return fmt.Errorf("--tftp-max-transfers %d: want at least 1", b.tftpLimits.MaxTransfers)
	}
	if b.tftpLimits.MaxWindowSize < 1 {
		return fmt.Errorf("--tftp-max-window %d: want at least 1", b.tftpLimits.MaxWindowSize)
	}
	tftpCfg := b.tftpLimits
	tftpCfg.Listen, tftpCfg.Generated = tftpListen, grubFiles
	tftp, err := boot.NewTFTP(tftpCfg, bins, log)
	if err != nil {
		return err
	}
	src.TFTP = tftp.Stats
	g.Go(func() error { return tftp.Run(ctx) })
	return nil
}

// dhcpConfig turns the flags into boot.DHCPConfig.
func (b *bootOptions) dhcpConfig(advertise string) (boot.DHCPConfig, error) {
	mode, err := boot.ParseMode(b.dhcpMode)
	if err != nil {
		return boot.DHCPConfig{}, fmt.Errorf("--dhcp-mode: %w", err)
	}
	cfg := boot.DHCPConfig{Interface: b.dhcpInterface, Mode: mode, AdvertiseURL: advertise}
	if b.dhcpRange != "" {
		if cfg.Range, err = boot.ParseRange(b.dhcpRange); err != nil {
			return cfg, fmt.Errorf("--dhcp-range: %w", err)
		}
	}
	if b.dhcpRouter != "" {
		if cfg.Router, err = netip.ParseAddr(b.dhcpRouter); err != nil {
			return cfg, fmt.Errorf("--dhcp-router %q: not an IP address", b.dhcpRouter)
		}
	}
	for _, d := range b.dhcpDNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return cfg, fmt.Errorf("--dhcp-dns %q: not an IP address", d)
		}
		cfg.DNS = append(cfg.DNS, a)
	}
	if cfg.Subnets, err = boot.ParseSubnets(b.dhcpSubnets); err != nil {
		return cfg, fmt.Errorf("--dhcp-subnets: %w", err)
	}
	if b.dhcpLease != "" {
		if cfg.LeaseTime, err = time.ParseDuration(b.dhcpLease); err != nil || cfg.LeaseTime <= 0 {
			return cfg, fmt.Errorf("--dhcp-lease-time %q: want a duration such as 1h", b.dhcpLease)
		}
	}
	return cfg, nil
}

// interfaceIPv4 is the first IPv4 address of the named interface.
func interfaceIPv4(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--dhcp-interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--dhcp-interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP.To4()); ok && pn.IP.To4() != nil {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("--dhcp-interface %s has no IPv4 address", name)
}
