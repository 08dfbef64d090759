package node_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// validNode is a registered server that passes Validate; tests change one thing at a time.
func validNode() node.Node {
	return node.Node{
		Name:   "gpu-01",
		MACs:   []node.MAC{{0x52, 0x54, 0, 0, 0, 1}, {0x52, 0x54, 0, 0, 0, 2}},
		Role:   node.RoleServer,
		State:  node.StateRegistered,
		Labels: map[string]string{"gpu": "a100"},
		Taints: []node.Taint{{Key: "dedicated", Value: "gpu", Effect: node.EffectNoSchedule}},
	}
}

func TestNodeValidate_RefusesBrokenInvariants(t *testing.T) {
	tests := []struct {
		name   string
		change func(n *node.Node)
		ok     bool
	}{
		{"valid as built", func(n *node.Node) {}, true},
		{"discovered node without role", func(n *node.Node) { n.State, n.Role = node.StateDiscovered, "" }, true},
		{"static ip with gateway and DNS inside the subnet", func(n *node.Node) {
			n.IP = netip.MustParsePrefix("10.20.0.31/24")
			n.Gateway = netip.MustParseAddr("10.20.0.1")
			n.DNS = []netip.Addr{netip.MustParseAddr("10.20.0.2")}
		}, true},
		{"IPv6 static ip with gateway", func(n *node.Node) {
			n.IP = netip.MustParsePrefix("fd00:20::31/64")
			n.Gateway = netip.MustParseAddr("fd00:20::1")
		}, true},

		{"empty name", func(n *node.Node) { n.Name = "" }, false},
		{"name not an RFC 1123 label", func(n *node.Node) { n.Name = "GPU_01" }, false},
		{"no MAC", func(n *node.Node) { n.MACs = nil }, false},
		{"zero MAC", func(n *node.Node) { n.MACs = []node.MAC{{}} }, false},
		{"same MAC twice", func(n *node.Node) { n.MACs = []node.MAC{n.MACs[0], n.MACs[0]} }, false},
		{"registered without role", func(n *node.Node) { n.Role = "" }, false},
		{"unknown role", func(n *node.Node) { n.Role = "agent" }, false},
		{"gateway outside the subnet", func(n *node.Node) {
			n.IP = netip.MustParsePrefix("10.20.0.31/24")
			n.Gateway = netip.MustParseAddr("10.20.1.1")
		}, false},
		{"gateway without a static ip", func(n *node.Node) { n.Gateway = netip.MustParseAddr("10.20.0.1") }, false},
		{"DNS without a static ip", func(n *node.Node) { n.DNS = []netip.Addr{netip.MustParseAddr("1.1.1.1")} }, false},
		{"bad label key", func(n *node.Node) { n.Labels = map[string]string{"bad key": "x"} }, false},
		{"bad label value", func(n *node.Node) { n.Labels = map[string]string{"gpu": "a 100"} }, false},
		{"taint without effect", func(n *node.Node) { n.Taints = []node.Taint{{Key: "dedicated", Value: "gpu"}} }, false},
		{"taint with unknown effect", func(n *node.Node) {
			n.Taints = []node.Taint{{Key: "dedicated", Effect: "Never"}}
		}, false},
		{"taint with bad key", func(n *node.Node) {
			n.Taints = []node.Taint{{Key: "-dedicated", Effect: node.EffectNoSchedule}}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := validNode()
			tt.change(&n)
			err := n.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestParseIP_WantsAHostAddressInCIDRForm(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"10.20.0.31/24", true},
		{"10.20.0.31/32", true},
		{"10.20.0.0/31", true}, // RFC 3021 point-to-point: both addresses are hosts
		{"fd00:20::31/64", true},
		{"10.20.0.31", false},   // bare address: the prefix length cannot be guessed
		{"fd00:20::31", false},  // bare IPv6 address
		{"10.20.0.0/24", false}, // the network address
		{"fd00:20::/64", false}, // the IPv6 subnet-router anycast address
		{"10.20.0.31/33", false},
		{"10.20.0.31/", false},
		{"10.20.0/24", false},
		{"", false},
		{"gpu-01", false},
		{"::ffff:10.0.0.5/120", false}, // IPv4-mapped: never equal to the lease's 10.0.0.5
		{"::ffff:10.0.0.5/128", false},
		{"::ffff:a00:5/120", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := node.ParseIP(tt.in)
			if tt.ok {
				if err != nil {
					t.Fatalf("ParseIP(%q) = %v", tt.in, err)
				}
				if p.String() != tt.in {
					t.Fatalf("ParseIP(%q) = %s, want the address kept as given (not masked)", tt.in, p)
				}
				return
			}
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseIP(%q) = %v, %v; want ErrInvalid", tt.in, p, err)
			}
		})
	}
}

func TestParseRole_AcceptsServerWorkerAndTheLLMOSWordAgent(t *testing.T) {
	tests := []struct {
		in   string
		want node.Role
		ok   bool
	}{
		{"server", node.RoleServer, true},
		{"worker", node.RoleWorker, true},
		{"agent", node.RoleWorker, true},
		{"", "", false},
		{"Server", "", false},
		{"master", "", false},
		{"cluster-init", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := node.ParseRole(tt.in)
			if tt.ok && (err != nil || got != tt.want) {
				t.Fatalf("ParseRole(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseRole(%q) = %q, %v; want ErrInvalid", tt.in, got, err)
			}
		})
	}
}

func TestParseDeleteMode_DefaultsToReinstall(t *testing.T) {
	tests := []struct {
		in   string
		want node.DeleteMode
		ok   bool
	}{
		{"", node.DeleteReinstall, true},
		{"reinstall", node.DeleteReinstall, true},
		{"uninstall", node.DeleteUninstall, true},
		{"wipe", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := node.ParseDeleteMode(tt.in)
			if tt.ok && (err != nil || got != tt.want) {
				t.Fatalf("ParseDeleteMode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if !tt.ok && !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("ParseDeleteMode(%q) = %q, %v; want ErrInvalid", tt.in, got, err)
			}
		})
	}
}

func TestNode_PrimaryMACIsTheFirstAndHasMACFindsAll(t *testing.T) {
	n := validNode()
	if n.PrimaryMAC() != n.MACs[0] {
		t.Fatalf("PrimaryMAC = %v, want %v", n.PrimaryMAC(), n.MACs[0])
	}
	if !n.HasMAC(n.MACs[1]) || n.HasMAC(node.MAC{1, 2, 3, 4, 5, 6}) {
		t.Fatal("HasMAC is wrong")
	}
	var empty node.Node
	if !empty.PrimaryMAC().IsZero() {
		t.Fatal("PrimaryMAC of a node without MACs is not zero")
	}
}

func TestParseAddr_RefusesMappedAndZonedAddresses(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		mention string // a word the error must carry, so the operator knows what to fix
	}{
		{"10.20.0.1", true, ""},
		{"fd00:20::1", true, ""},
		{"::ffff:10.0.0.5", false, "10.0.0.5"},
		{"::ffff:a00:5", false, "IPv4-mapped"},
		{"fe80::1%eth0", false, "zone"},
		{"10.20.0.1/24", false, "not an IP address"},
		{"", false, "not an IP address"},
		{"dns.example", false, "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := node.ParseAddr(tt.in)
			if tt.ok {
				if err != nil || a.String() != tt.in {
					t.Fatalf("ParseAddr(%q) = %v, %v; want %s", tt.in, a, err, tt.in)
				}
				return
			}
			if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("ParseAddr(%q) = %v, %v; want ErrInvalid mentioning %q", tt.in, a, err, tt.mention)
			}
		})
	}
}

func TestValidate_RefusesGroupMACsAndMappedAddresses(t *testing.T) {
	base := func() node.Node {
		return node.Node{Name: "n1", MACs: []node.MAC{{0x52, 0x54, 0, 0, 0, 1}}, Role: node.RoleWorker, State: node.StateRegistered,
			IP: netip.MustParsePrefix("10.20.0.31/24")}
	}
	tests := []struct {
		name   string
		change func(n *node.Node)
	}{
		{"broadcast MAC", func(n *node.Node) { n.MACs = append(n.MACs, node.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) }},
		{"multicast MAC", func(n *node.Node) { n.MACs = []node.MAC{{0x01, 0x00, 0x5e, 0, 0, 1}} }},
		{"mapped ip", func(n *node.Node) { n.IP = netip.MustParsePrefix("::ffff:10.20.0.31/120") }},
		{"mapped gateway", func(n *node.Node) {
			n.IP = netip.MustParsePrefix("::ffff:10.20.0.31/120")
			n.Gateway = netip.MustParseAddr("::ffff:10.20.0.1")
		}},
		{"mapped dns", func(n *node.Node) { n.DNS = []netip.Addr{netip.MustParseAddr("::ffff:1.1.1.1")} }},
	}
	ok := base()
	if err := ok.Validate(); err != nil {
		t.Fatalf("the base node must be valid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := base()
			tt.change(&n)
			if err := n.Validate(); !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}
