package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// agentClassID is DHCP option 60 of the agent's requests, so Bootyard's DHCP log tells
// the agent apart from the firmware and the installed OS.
const agentClassID = "bootyard-agent"

// bootNIC waits for the interface with the boot MAC to appear (its driver may still be
// probing) and returns its name.
func bootNIC(ctx context.Context, mac net.HardwareAddr, timeout time.Duration) (string, error) {
	var name string
	found := waitFor(ctx, timeout, func() bool {
		ifs, err := net.Interfaces()
		if err != nil {
			return false
		}
		for _, i := range ifs {
			if bytes.Equal(i.HardwareAddr, mac) {
				name = i.Name
				return true
			}
		}
		return false
	})
	if !found {
		return "", fmt.Errorf("no network interface with MAC %s after %s (driver missing?)", mac, timeout)
	}
	return name, nil
}

// configureDHCP brings ifname up, gets a lease and applies its address and default
// route. It retries until ctx ends: a switch port may take half a minute to forward.
func configureDHCP(ctx context.Context, log *slog.Logger, ifname string) (net.IP, error) {
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		netlink.LinkSetUp(lo)
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set %s up: %w", ifname, err)
	}
	var lease *nclient4.Lease
	for attempt := 1; ; attempt++ {
		lease, err = requestLease(ctx, ifname)
		if err == nil {
			break
		}
		log.Warn("DHCP failed", slog.String("interface", ifname), slog.Int("attempt", attempt), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("DHCP on %s: %w (last error: %v)", ifname, ctx.Err(), err)
		case <-time.After(2 * time.Second):
		}
	}
	ack := lease.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ack.YourIPAddr, Mask: mask}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s: %w", addr.IPNet, ifname, err)
	}
	if routers := ack.Router(); len(routers) > 0 {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: routers[0]}
		if err := netlink.RouteReplace(route); err != nil {
			return nil, fmt.Errorf("default route via %s: %w", routers[0], err)
		}
	}
	log.Info("network configured", slog.String("interface", ifname), slog.String("address", addr.IPNet.String()),
		slog.String("server", ack.ServerIPAddr.String()))
	return ack.YourIPAddr, nil
}

func requestLease(ctx context.Context, ifname string) (*nclient4.Lease, error) {
	c, err := nclient4.New(ifname, nclient4.WithTimeout(4*time.Second), nclient4.WithRetry(2))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return dora(ctx, c, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(agentClassID)))
}
