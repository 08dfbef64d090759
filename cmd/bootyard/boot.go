package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

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
	tftpListen    string
	ipxeDir       string
}

func (b *bootOptions) register(f *pflag.FlagSet) {
	f.StringVar(&b.dhcpInterface, "dhcp-interface", "", "network interface to answer DHCP on (DHCP is off unless this is set)")
	f.StringVar(&b.dhcpMode, "dhcp-mode", "full", "full (hand out addresses) or proxy (boot information beside an existing DHCP server)")
	f.StringVar(&b.dhcpRange, "dhcp-range", "", "address range for full mode, e.g. 10.0.0.100-10.0.0.200")
	f.StringVar(&b.dhcpRouter, "dhcp-router", "", "router (option 3) for full mode")
	f.StringSliceVar(&b.dhcpDNS, "dhcp-dns", nil, "DNS servers (option 6) for full mode")
	f.StringVar(&b.dhcpLease, "dhcp-lease-time", "1h", "lease time for full mode")
	f.StringVar(&b.tftpListen, "tftp-listen", "", "TFTP address:port (default: port 69 of the DHCP interface's address when DHCP is on)")
	f.StringVar(&b.ipxeDir, "ipxe-dir", "/usr/lib/ipxe", "directory of iPXE binaries (Debian package ipxe)")
}

// start launches DHCP and TFTP when asked and adds the iPXE endpoints to deps.
func (b *bootOptions) start(ctx context.Context, g *errgroup.Group, st *store.Store, advertise string, deps *web.Deps, log *slog.Logger) error {
	if b.dhcpInterface == "" && b.tftpListen == "" {
		log.Info("DHCP and TFTP are off (no --dhcp-interface, no --tftp-listen)")
		return nil
	}
	return errors.New("network boot is not wired yet")
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
