package boot

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// DHCPMode selects how the DHCP server behaves on its link.
type DHCPMode string

const (
	// ModeFull hands out addresses from a range and boot information.
	ModeFull DHCPMode = "full"
	// ModeProxy runs beside an existing DHCP server (PXE proxyDHCP, ports 67 and 4011):
	// boot information only, to PXE clients only, never an address.
	ModeProxy DHCPMode = "proxy"
)

// ParseMode accepts full or proxy.
func ParseMode(s string) (DHCPMode, error) {
	switch DHCPMode(s) {
	case ModeFull, ModeProxy:
		return DHCPMode(s), nil
	}
	return "", fmt.Errorf("dhcp mode %q: want full or proxy", s)
}

// Range is an inclusive span of IPv4 addresses the pool hands out.
type Range struct {
	Start, End netip.Addr
}

// ParseRange parses "10.0.0.100-10.0.0.200".
func ParseRange(s string) (Range, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return Range{}, fmt.Errorf("dhcp range %q: want START-END, e.g. 10.0.0.100-10.0.0.200", s)
	}
	start, err1 := netip.ParseAddr(strings.TrimSpace(a))
	end, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || !start.Is4() || !end.Is4() {
		return Range{}, fmt.Errorf("dhcp range %q: both ends must be IPv4 addresses", s)
	}
	if end.Less(start) {
		return Range{}, fmt.Errorf("dhcp range %q: end is before start", s)
	}
	return Range{Start: start, End: end}, nil
}

// Contains reports whether ip is inside the range.
func (r Range) Contains(ip netip.Addr) bool {
	return ip.Is4() && !ip.Less(r.Start) && !r.End.Less(ip)
}

// Size is the number of addresses in the range.
func (r Range) Size() int { return int(addrToUint(r.End)-addrToUint(r.Start)) + 1 }

func (r Range) String() string { return r.Start.String() + "-" + r.End.String() }

// RelayedSubnet is a subnet behind a DHCP relay (giaddr inside Subnet): one Bootyard can
// serve several subnets this way.
type RelayedSubnet struct {
	Subnet netip.Prefix
	Range  Range
	Router netip.Addr   // option 3; zero for none
	DNS    []netip.Addr // option 6; nil means DHCPConfig.DNS
}

// DHCPConfig configures NewDHCP. Zero values take the documented defaults.
type DHCPConfig struct {
	// Interface is the link the server listens on (--dhcp-interface). Its first IPv4
	// address decides the local subnet and is the server identifier.
	Interface string
	Mode      DHCPMode
	// Range, Router, DNS and LeaseTime apply to the interface's own subnet (full mode).
	Range     Range
	Router    netip.Addr
	DNS       []netip.Addr
	LeaseTime time.Duration // default 1h
	// Relayed lists the subnets served through relays (full mode).
	Relayed []RelayedSubnet
	// Subnets, when set (--dhcp-subnets), limits this server to requests from inside
	// them (see serves): the others are dropped and counted (DHCPStats.OutsideSubnets).
	Subnets []netip.Prefix
	// AdvertiseURL is Bootyard's HTTP base URL as clients reach it, e.g.
	// http://10.0.0.2:8080: iPXE gets <AdvertiseURL>/boot.ipxe?mac=..., UEFI HTTP boot
	// gets <AdvertiseURL>/ipxe/ipxe.efi.
	AdvertiseURL string
	// TFTPServer is siaddr and option 66; default the interface address.
	TFTPServer netip.Addr
	// BootFiles names the iPXE binaries per firmware; zero fields take DefaultBootFiles.
	BootFiles BootFiles
	// Loaders chooses between iPXE and the Secure Boot chain for x86-64 UEFI machines
	// (BootFiles.EFIx64Shim); nil offers iPXE.
	Loaders LoaderPolicy
	// OfferHold is how long an offered address waits for its REQUEST; default 30s.
	OfferHold time.Duration
	// DeclineHold is how long a declined address stays out of the pool; default 10m.
	DeclineHold time.Duration
	// ReservationRefresh is how often static node addresses are re-read; default 2s.
	ReservationRefresh time.Duration
	// PerMACRate and PerMACBurst bound packets per second from one MAC; defaults 10 and 40.
	PerMACRate  float64
	PerMACBurst float64
	// Workers is the most packet handlers at once; default 256 (a REQUEST waits for its
	// group commit, so handlers must outnumber concurrent clients). They are started as
	// packets come and leave when none has come for half a second.
	Workers int
	// ServerPort and ProxyPort override 67 and 4011 (tests only); ClientPort overrides 68.
	ServerPort, ProxyPort, ClientPort int
	// SharedLeases says the lease store is shared with other replicas that answer the
	// same clients (the Kubernetes store). A new address is then looked for first from
	// a slot chosen by the client's MAC, in the aligned window of 256 addresses at the
	// cursor (four of the store's lease blocks, filled one after another, so a batch of
	// leases is mostly one write), so that every replica offers a client the same address
	// whatever order the DISCOVERs reached it in. From one cursor, two replicas
	// that saw two DISCOVERs in opposite orders offer each machine the address the other
	// offers the other one, and one of the two REQUESTs is refused by the store (a NAK
	// and a restart for that machine).
	SharedLeases bool
	// Sightings, when set, is told which address each MAC used in every exchange, so
	// the machine endpoints can tell the node's own requests from others'.
	Sightings *Sightings
}

func (c *DHCPConfig) setDefaults() {
	if c.LeaseTime == 0 {
		c.LeaseTime = time.Hour
	}
	if c.OfferHold == 0 {
		c.OfferHold = 30 * time.Second
	}
	if c.DeclineHold == 0 {
		c.DeclineHold = 10 * time.Minute
	}
	if c.ReservationRefresh == 0 {
		c.ReservationRefresh = 2 * time.Second
	}
	if c.PerMACRate == 0 {
		c.PerMACRate = 10
	}
	if c.PerMACBurst == 0 {
		c.PerMACBurst = 40
	}
	if c.Workers == 0 {
		c.Workers = 256
	}
	if c.ServerPort == 0 {
		c.ServerPort = 67
	}
	if c.ProxyPort == 0 {
		c.ProxyPort = 4011
	}
	if c.ClientPort == 0 {
		c.ClientPort = 68
	}
	c.BootFiles = c.BootFiles.withDefaults()
}

// link is the resolved local side: the interface's address and subnet.
type link struct {
	name   string
	addr   netip.Addr
	subnet netip.Prefix
}

// resolveInterface finds the interface's first IPv4 address. It runs in the calling
// thread's network namespace.
func resolveInterface(name string) (link, error) {
	if name == "" {
		return link{}, errors.New("dhcp: no interface given (--dhcp-interface)")
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return link{}, fmt.Errorf("dhcp interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return link{}, fmt.Errorf("dhcp interface %s: addresses: %w", name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !ip.Unmap().Is4() {
			continue
		}
		ones, _ := ipn.Mask.Size()
		ip = ip.Unmap()
		return link{name: name, addr: ip, subnet: netip.PrefixFrom(ip, ones).Masked()}, nil
	}
	return link{}, fmt.Errorf("dhcp interface %s has no IPv4 address: the served subnet comes from it", name)
}

// validate checks the config against the resolved link.
func (c *DHCPConfig) validate(l link) error {
	switch c.Mode {
	case ModeFull, ModeProxy:
	default:
		return fmt.Errorf("dhcp mode %q: want full or proxy", c.Mode)
	}
	if c.AdvertiseURL == "" {
		return errors.New("dhcp: AdvertiseURL is required: iPXE fetches its script from it")
	}
	u, err := url.Parse(c.AdvertiseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("dhcp: advertise URL %q: want http://HOST[:PORT]", c.AdvertiseURL)
	}
	if c.Mode == ModeProxy {
		return nil
	}
	if !c.Range.Start.IsValid() {
		return fmt.Errorf("dhcp: full mode needs a range (--dhcp-range) inside %s", l.subnet)
	}
	if !l.subnet.Contains(c.Range.Start) || !l.subnet.Contains(c.Range.End) {
		return fmt.Errorf("dhcp: range %s is outside interface %s's subnet %s", c.Range, l.name, l.subnet)
	}
	if c.Range.Contains(l.addr) {
		return fmt.Errorf("dhcp: range %s contains the server's own address %s", c.Range, l.addr)
	}
	for _, r := range c.Relayed {
		if !r.Subnet.Contains(r.Range.Start) || !r.Subnet.Contains(r.Range.End) {
			return fmt.Errorf("dhcp: relayed range %s is outside %s", r.Range, r.Subnet)
		}
	}
	return nil
}

func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
