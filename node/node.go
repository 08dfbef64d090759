package node

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Node is one machine Bootyard provisions. Its JSON form is the API's node object.
type Node struct {
	Name        string            `json:"name"`
	MACs        []MAC             `json:"macs"`
	Role        Role              `json:"role,omitempty"` // empty while discovered
	ClusterInit bool              `json:"clusterInit"`
	State       State             `json:"state"`
	StateReason string            `json:"stateReason,omitempty"`
	StateSince  time.Time         `json:"stateSince"`
	FailedFrom  State             `json:"failedFrom,omitempty"`
	IP          netip.Prefix      `json:"ip,omitzero"` // static address in CIDR form; zero means DHCP
	Gateway     netip.Addr        `json:"gateway,omitzero"`
	DNS         []netip.Addr      `json:"dns,omitempty"`
	Labels      map[string]string `json:"labels"`
	Taints      []Taint           `json:"taints"`
	Image       string            `json:"image,omitempty"` // image catalog name; empty means the cluster default
	Disk        string            `json:"disk,omitempty"`  // target disk; empty means RootDiskHints choose
	// RootDiskHints choose the target disk when Disk is empty; zero means the image's
	// default hints, or the smallest non-removable disk that fits the image.
	RootDiskHints RootDiskHints `json:"rootDiskHints,omitzero"`
	// Hardware is the latest inspection; Inspect a pending request for the next boot.
	Hardware *Hardware       `json:"hardware,omitempty"`
	Inspect  *InspectRequest `json:"inspect,omitempty"`
	// BMC drives the machine's power out of band; nil means Bootyard cannot.
	BMC *BMC `json:"bmc,omitempty"`
	// Power is the BMC poller's last recorded reading, written only when it changes, so
	// that replicas that do not poll (see bmc.Poller) show what the one that does sees.
	Power *PowerReading `json:"power,omitempty"`
	// DeleteMode is how a deletion stops the machine from rejoining: reinstall (wipe) or uninstall.
	DeleteMode DeleteMode `json:"deleteMode,omitempty"`
	// DeletionDone lists the cluster-removal steps the current deletion has finished, so a
	// retried or restarted deletion skips them (see RecordDeletionStep).
	DeletionDone []string `json:"deletionDone,omitempty"`
	// UninstallReport is the host's own word on the current uninstall, sent over the
	// machine endpoints (the uninstall stops the kubelet that would report the pod's exit).
	UninstallReport *UninstallReport `json:"uninstallReport,omitempty"`
	// Generation counts provisioning rounds; cloud-init's instance-id includes it.
	Generation int      `json:"generation"`
	Boot       BootInfo `json:"boot,omitzero"`
	// UEFILoader overrides the site's UEFI loader for this node (ipxe or shim); empty inherits.
	UEFILoader UEFILoader `json:"uefiLoader,omitempty"`
	// SecureBoot is what the agent last read from the firmware (the SecureBoot EFI
	// variable): nil until an agent reported, or when the machine booted without UEFI.
	SecureBoot *bool          `json:"secureBoot,omitempty"`
	Cluster    *ClusterStatus `json:"cluster,omitempty"`
	CreatedAt  time.Time      `json:"createdAt"`
	UpdatedAt  time.Time      `json:"updatedAt"`
	LastSeen   time.Time      `json:"lastSeen,omitzero"`
}

// DeleteMode selects what deletion does to the machine's disk.
type DeleteMode string

const (
	DeleteReinstall DeleteMode = "reinstall" // wipe disks and reinstall without join data (default)
	DeleteUninstall DeleteMode = "uninstall" // run llmos-uninstall.sh and keep the OS
)

// ParseDeleteMode accepts "", reinstall or uninstall.
func ParseDeleteMode(s string) (DeleteMode, error) {
	switch DeleteMode(s) {
	case "", DeleteReinstall:
		return DeleteReinstall, nil
	case DeleteUninstall:
		return DeleteUninstall, nil
	}
	return "", fmt.Errorf("delete mode %q: %w: must be reinstall or uninstall", s, ErrInvalid)
}

// BootInfo is what the firmware said about itself the last time the machine network-booted.
type BootInfo struct {
	Arch        uint16    `json:"arch"`                  // DHCP option 93 client architecture
	Firmware    string    `json:"firmware,omitempty"`    // bios, uefi, uefi-http, ipxe
	VendorClass string    `json:"vendorClass,omitempty"` // DHCP option 60
	UserClass   string    `json:"userClass,omitempty"`   // DHCP option 77 (iPXE says "iPXE")
	IP          string    `json:"ip,omitempty"`          // address the machine booted with
	FirstSeen   time.Time `json:"firstSeen,omitzero"`
	LastSeen    time.Time `json:"lastSeen,omitzero"`
}

// ClusterStatus is what Kubernetes says about the machine, when Bootyard is connected.
type ClusterStatus struct {
	Ready          bool      `json:"ready"`
	Roles          []string  `json:"roles,omitempty"`
	KubeletVersion string    `json:"kubeletVersion,omitempty"`
	ObservedAt     time.Time `json:"observedAt"`
}

// HasMAC reports whether the node owns mac.
func (n *Node) HasMAC(mac MAC) bool { return slices.Contains(n.MACs, mac) }

// PrimaryMAC is the first MAC, the one default names and NoCloud URLs use.
func (n *Node) PrimaryMAC() MAC {
	if len(n.MACs) == 0 {
		return MAC{}
	}
	return n.MACs[0]
}

// Validate checks the invariants every stored node satisfies.
func (n *Node) Validate() error {
	if err := ValidateName(n.Name); err != nil {
		return err
	}
	if len(n.MACs) == 0 {
		return fmt.Errorf("node %s: %w: at least one MAC is required", n.Name, ErrInvalid)
	}
	seen := make(map[MAC]bool, len(n.MACs))
	for _, m := range n.MACs {
		if m.IsZero() {
			return fmt.Errorf("node %s: %w: MAC 00:00:00:00:00:00", n.Name, ErrInvalid)
		}
		if m.IsGroup() {
			return fmt.Errorf("node %s: %w: MAC %s is a group (multicast or broadcast) address", n.Name, ErrInvalid, m)
		}
		if seen[m] {
			return fmt.Errorf("node %s: %w: MAC %s listed twice", n.Name, ErrInvalid, m)
		}
		seen[m] = true
	}
	if n.State != StateDiscovered {
		if n.Role != RoleServer && n.Role != RoleWorker {
			return fmt.Errorf("node %s: %w: role %q must be server or worker", n.Name, ErrInvalid, n.Role)
		}
	}
	if n.IP.IsValid() {
		if !n.IP.Addr().Is4() && !n.IP.Addr().Is6() {
			return fmt.Errorf("node %s: %w: ip %s", n.Name, ErrInvalid, n.IP)
		}
		if err := checkAddr(n.IP.Addr()); err != nil {
			return fmt.Errorf("node %s: ip %s: %w", n.Name, n.IP, err)
		}
		if n.Gateway.IsValid() {
			if err := checkAddr(n.Gateway); err != nil {
				return fmt.Errorf("node %s: gateway %s: %w", n.Name, n.Gateway, err)
			}
		}
		for _, d := range n.DNS {
			if err := checkAddr(d); err != nil {
				return fmt.Errorf("node %s: dns %s: %w", n.Name, d, err)
			}
		}
		if n.Gateway.IsValid() && !n.IP.Masked().Contains(n.Gateway) {
			return fmt.Errorf("node %s: %w: gateway %s is outside %s", n.Name, ErrInvalid, n.Gateway, n.IP.Masked())
		}
	} else if n.Gateway.IsValid() || len(n.DNS) > 0 {
		return fmt.Errorf("node %s: %w: gateway and DNS need a static ip", n.Name, ErrInvalid)
	}
	if _, err := ParseUEFILoader(string(n.UEFILoader)); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := ValidateLabels(n.Labels); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	for _, t := range n.Taints {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("node %s: taint %s: %w", n.Name, t, err)
		}
	}
	if n.BMC != nil {
		if err := n.BMC.Validate(); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

// ParseIP parses a static address in CIDR form ("10.20.0.31/24"). A bare address is
// refused: the prefix length decides the node's subnet and cannot be guessed.
func ParseIP(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("ip %q: %w: want an address in CIDR form, e.g. 10.20.0.31/24", s, ErrInvalid)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("ip %q: %w: %s", s, ErrInvalid, mappedHint(p.Addr()))
	}
	if p.Addr() == p.Masked().Addr() && p.Bits() < p.Addr().BitLen()-1 {
		return netip.Prefix{}, fmt.Errorf("ip %q: %w: that is the network address, not a host", s, ErrInvalid)
	}
	return p, nil
}

// ParseAddr parses a single address (a gateway, a DNS server). IPv4-mapped IPv6
// addresses (::ffff:10.0.0.5) are refused: they compare unequal to the IPv4 address
// they spell, so a node configured with one would never match its own lease, and the
// renderers would write an IPv6 address into an IPv4 network config.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w: not an IP address", s, ErrInvalid)
	}
	if err := checkAddr(a); err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
}

// checkAddr refuses the address forms no node, gateway or DNS server may have.
func checkAddr(a netip.Addr) error {
	if a.Is4In6() {
		return fmt.Errorf("%w: %s", ErrInvalid, mappedHint(a))
	}
	if a.Zone() != "" {
		return fmt.Errorf("%w: an address with a zone (%%%s) is local to this host's interface", ErrInvalid, a.Zone())
	}
	return nil
}

func mappedHint(a netip.Addr) string {
	return "an IPv4-mapped IPv6 address; write the IPv4 address " + a.Unmap().String() + " instead"
}
