package cloudinit

import (
	"fmt"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/bootyard/bootyard/node"
)

// netConfig is network-config version 2 (the netplan-like format every cloud-init
// renderer understands).
type netConfig struct {
	Version   int                    `json:"version"`
	Ethernets map[string]netEthernet `json:"ethernets"`
}

type netEthernet struct {
	Match netMatch `json:"match"`
	// SetName renames the matched device to the entry's ID. eni, networkd and sysconfig
	// name the device after the key (iface nic0, Name=nic0, DEVICE=nic0), so the device
	// must really be renamed; netplan treats the key as a mere ID unless set-name says
	// so. With set-name every renderer agrees: cloud-init renames by MAC on first boot
	// (eni and sysconfig also get a udev rule) and configures nic0 everywhere.
	SetName     string          `json:"set-name"`
	DHCP4       bool            `json:"dhcp4,omitempty"`
	DHCP6       bool            `json:"dhcp6,omitempty"`
	Addresses   []string        `json:"addresses,omitempty"`
	Routes      []netRoute      `json:"routes,omitempty"`
	Nameservers *netNameservers `json:"nameservers,omitempty"`
	Optional    bool            `json:"optional,omitempty"`
}

type netMatch struct {
	MACAddress string `json:"macaddress"`
}

// netRoute uses an explicit 0.0.0.0/0 rather than gateway4 (deprecated in netplan) or
// "to: default" (not understood by older cloud-init network_state parsers).
type netRoute struct {
	To  string `json:"to"`
	Via string `json:"via"`
}

type netNameservers struct {
	Addresses []string `json:"addresses"`
}

// NetworkConfig renders network-config v2. Interfaces are matched by MAC, never by
// name, because names differ between the installer, the OS and the VM template, and
// renamed to the entry's ID (nic0, nic1, ...), which every renderer then uses. With a
// static IP the primary MAC gets the address, gateway and DNS; otherwise every MAC runs
// DHCP, and only the primary one holds up boot.
func (r *Renderer) NetworkConfig(n node.Node) ([]byte, error) {
	if len(n.MACs) == 0 {
		return nil, fmt.Errorf("network-config for %s: %w: no MAC", n.Name, node.ErrInvalid)
	}
	cfg := netConfig{Version: 2, Ethernets: map[string]netEthernet{}}
	if n.IP.IsValid() {
		eth := netEthernet{
			Match:     netMatch{MACAddress: n.PrimaryMAC().String()},
			SetName:   "nic0",
			Addresses: []string{n.IP.String()},
		}
		if n.Gateway.IsValid() {
			to := "0.0.0.0/0"
			if n.Gateway.Is6() {
				to = "::/0"
			}
			eth.Routes = []netRoute{{To: to, Via: n.Gateway.String()}}
		}
		if len(n.DNS) > 0 {
			ns := &netNameservers{}
			for _, a := range n.DNS {
				ns.Addresses = append(ns.Addresses, a.String())
			}
			eth.Nameservers = ns
		}
		cfg.Ethernets["nic0"] = eth
	} else {
		for i, m := range n.MACs {
			id := "nic" + strconv.Itoa(i)
			cfg.Ethernets[id] = netEthernet{
				Match:    netMatch{MACAddress: m.String()},
				SetName:  id,
				DHCP4:    true,
				Optional: i > 0,
			}
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("network-config for %s: %w", n.Name, err)
	}
	return b, nil
}
