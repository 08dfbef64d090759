package boot

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// ParseSubnets parses --dhcp-subnets: IPv4 prefixes, comma-separated ("10.1.7.0/24,10.1.8.0/24").
func ParseSubnets(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil || !p.Addr().Is4() {
				return nil, fmt.Errorf("dhcp subnet %q: want an IPv4 prefix such as 10.1.7.0/24", f)
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// serves reports whether this server answers m under DHCPConfig.Subnets: the subnet a
// request comes from is the relay's (giaddr), else that of the address the client holds
// (a unicast renewal from behind a relay carries no giaddr), else the interface's own.
// Per-rack replicas share one inventory and each answers its own racks' relays; a request
// from another rack is the other replica's, so it is dropped here, not answered twice.
func (s *DHCPServer) serves(m *dhcpv4.DHCPv4) bool {
	if len(s.cfg.Subnets) == 0 {
		return true
	}
	from := s.link.addr
	if giaddr, ciaddr := ipv4Field(m.GatewayIPAddr), ipv4Field(m.ClientIPAddr); giaddr.IsValid() {
		from = giaddr
	} else if ciaddr.IsValid() {
		from = ciaddr
	}
	for _, p := range s.cfg.Subnets {
		if p.Contains(from) {
			return true
		}
	}
	return false
}
