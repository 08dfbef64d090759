package machine

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/agentapi"
	"github.com/bootyard/bootyard/grub"
	"github.com/bootyard/bootyard/node"
)

// newGRUBConfigs is the Secure Boot chain's GRUB side over the harness's store and agent,
// with its own identity check: the tests give nodes DHCP leases, which any check reads.
func newGRUBConfigs(t *testing.T, h *agentHarness) *GRUBConfigs {
	t.Helper()
	r, err := grub.NewRenderer(grub.Config{AdvertiseURL: "http://10.20.0.1:8080"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := newTestIdentity(t, h.st, false)
	g, err := NewGRUBConfigs(IPXEConfig{Inventory: h.st, Identity: id, Agent: h.agent, Logger: slog.New(slog.DiscardHandler)}, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func grubConfigName(mac node.MAC) string {
	return grub.MachinePrefix + mac.String() + grub.MachineSuffix
}

func TestGRUB_EachStateGetsItsConfig(t *testing.T) {
	h := newAgentHarness(t)
	g := newGRUBConfigs(t, h)
	own := netip.MustParseAddr(nodeAddr)
	tests := []struct {
		name  string
		setup func(mac node.MAC) // leaves the node in the state under test
		want  []string
		never []string
	}{
		{"unknown machine waits", func(node.MAC) {}, []string{"is discovered: not imported yet"}, []string{"linux ", "chainloader", "bootyard.token"}},
		{"registered installs the agent over TFTP with a token", func(mac node.MAC) {
			h.importSeen(node.Node{Name: "n-reg", MACs: []node.MAC{mac}, Role: node.RoleWorker})
			h.leaseTo(nodeAddr, mac)
		}, []string{"linux /bootyard-agent-vmlinuz", "'bootyard.token=", "initrd /bootyard-agent-initramfs.gz", "\nboot\n", "is provisioning"},
			[]string{"initrd=initramfs.gz", "/agent/vmlinuz"}},
		{"wiping boots the agent to wipe", func(mac node.MAC) {
			h.wiping("n-wipe", mac)
			h.leaseTo("127.0.0.4", mac)
		}, []string{"wipe every disk", "linux /bootyard-agent-vmlinuz", "'bootyard.token="}, nil},
		{"installed chainloads the disk's shim", func(mac node.MAC) {
			h.provisioning("n-inst", mac)
			h.transition("n-inst", node.StateInstalled)
			h.leaseTo("127.0.0.5", mac)
		}, []string{"booting the local disk", "/EFI/debian/shimx64.efi", "chainloader", "/EFI/BOOT/BOOTX64.EFI"}, []string{"linux ", "bootyard.token"}},
		{"an inspection request boots the agent to inspect", func(mac node.MAC) {
			h.provisioning("n-insp", mac)
			h.transition("n-insp", node.StateInstalled)
			if _, err := h.st.UpdateNode(context.Background(), "n-insp", func(n *node.Node) ([]node.Event, error) {
				ev, err := n.RequestInspection(agentapi.WaitAfterInspect, "test", time.Now().UTC())
				return []node.Event{ev}, err
			}); err != nil {
				t.Fatal(err)
			}
			h.leaseTo("127.0.0.7", mac)
		}, []string{"inspection requested", "linux /bootyard-agent-vmlinuz", "'bootyard.token="}, []string{"chainloader"}},
		{"failed waits with its reason", func(mac node.MAC) {
			h.provisioning("n-fail", mac)
			h.transition("n-fail", node.StateFailed)
			h.leaseTo("127.0.0.6", mac)
		}, []string{"is failed", "waiting, asking again"}, []string{"linux ", "chainloader", "bootyard.token"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac := agentMAC(byte(0x40 + i))
			tt.setup(mac)
			peer := own
			if n, err := h.st.NodeByMAC(context.Background(), mac); err == nil {
				if l, err := h.st.LeaseForMAC(context.Background(), n.PrimaryMAC()); err == nil {
					peer = l.IP
				}
			}
			data, alias, handled := g.TFTPFile(context.Background(), grubConfigName(mac), peer)
			if !handled || alias != "" {
				t.Fatalf("handled=%v alias=%q, want GRUB's own answer", handled, alias)
			}
			cfg := string(data)
			for _, w := range tt.want {
				if !strings.Contains(cfg, w) {
					t.Errorf("config lacks %q:\n%s", w, cfg)
				}
			}
			for _, nw := range tt.never {
				if strings.Contains(cfg, nw) {
					t.Errorf("config holds %q:\n%s", nw, cfg)
				}
			}
		})
	}
}

// The attacker asks for a registered node's GRUB config from another address: a wait
// config without a token, and the node does not move; the node's own address then gets
// the install with its token.
func TestSecurity_ForeignGRUBConfigRequestGetsNoTokenAndChangesNothing(t *testing.T) {
	h := newAgentHarness(t)
	g := newGRUBConfigs(t, h)
	mac := agentMAC(0x50)
	if _, err := h.st.ImportNode(context.Background(), node.Node{Name: "sb-1", MACs: []node.MAC{mac}, Role: node.RoleWorker}, "test"); err != nil {
		t.Fatal(err)
	}
	h.leaseTo(nodeAddr, mac)
	before := h.snapshot("sb-1")
	for range 3 {
		data, _, _ := g.TFTPFile(context.Background(), grubConfigName(mac), netip.MustParseAddr(attackerAddr))
		if tokenOnCmdline.Match(data) || !strings.Contains(string(data), "not verified") || strings.Contains(string(data), "linux ") {
			t.Fatalf("attacker's config:\n%s\nwant a wait config without a token", data)
		}
		if s := leaked(data, agentJoinToken); s != "" {
			t.Fatalf("attacker's config holds %q", s)
		}
	}
	if after := h.snapshot("sb-1"); after != before {
		t.Fatalf("the attacker's requests changed the node: %+v → %+v", before, after)
	}
	if w := h.events("sb-1", node.EventWarning); len(w) != 1 || !strings.Contains(w[0].Reason, "GRUB install config withheld from "+attackerAddr) {
		t.Errorf("warnings = %+v, want one saying the GRUB config was withheld from %s", w, attackerAddr)
	}

	data, _, _ := g.TFTPFile(context.Background(), grubConfigName(mac), netip.MustParseAddr(nodeAddr))
	m := tokenOnCmdline.FindSubmatch(data)
	if m == nil {
		t.Fatalf("node's own config:\n%s\nwant the install with a token", data)
	}
	if st := h.node("sb-1").State; st != node.StateProvisioning {
		t.Fatalf("node after its own config: %s, want provisioning", st)
	}
	g.Flush()
	boots := h.events("sb-1", node.EventBoot)
	if len(boots) != 1 || boots[0].Source != "grub" || !strings.Contains(boots[0].Reason, "GRUB config served: install") {
		t.Errorf("boot events = %+v, want one from grub", boots)
	}
	// The token works for the node, from the node's address.
	code, _ := h.doFrom(clientFrom(nodeAddr), "GET", "/agent/v1/task", string(m[1]), "")
	if code != 200 {
		t.Errorf("the node's task with its GRUB token: %d, want 200", code)
	}
}

func TestGRUB_NamesItAnswers(t *testing.T) {
	h := newAgentHarness(t)
	g := newGRUBConfigs(t, h)
	peer := netip.MustParseAddr(nodeAddr)
	tests := []struct {
		name      string
		handled   bool
		alias     string
		wantInCfg string
	}{
		{grub.MainConfig, true, "", "source $prefix/mac/${bootyard_mac}.cfg"},
		{grub.ArchConfig, true, "", "source $prefix/mac/${bootyard_mac}.cfg"},
		{"/grub/mac/.cfg", true, "", "not a MAC config"},
		{"/grub/x86_64-efi/command.lst", true, "", ""},
		{"/grub/x86_64-efi/../../etc/passwd.lst", false, "", ""},
		{"/grub/x86_64-efi/normal.mod", false, "", ""},
		{"/grub/mac/ff:ff:ff:ff:ff:ff.cfg", true, "", "not a MAC config"},
		{"/grub/mac/$(reboot).cfg", true, "", "not a MAC config"},
		{"/bootyard-agent-vmlinuz", true, "bootyard-agent-vmlinuz", ""},
		{"/grubx64.efi", true, "grubx64.efi", ""},
		{"/../etc/passwd", false, "", ""},
		{"/etc/passwd", false, "", ""},
		{"ipxe.efi", false, "", ""},
	}
	for _, tt := range tests {
		data, alias, handled := g.TFTPFile(context.Background(), tt.name, peer)
		if handled != tt.handled || alias != tt.alias || !strings.Contains(string(data), tt.wantInCfg) {
			t.Errorf("%q: handled=%v alias=%q data=%q; want handled=%v alias=%q data with %q", tt.name, handled, alias, data, tt.handled, tt.alias, tt.wantInCfg)
		}
		if strings.Contains(string(data), "$(reboot)") {
			t.Errorf("%q: the requested name is echoed unsanitised: %s", tt.name, data)
		}
	}
}
