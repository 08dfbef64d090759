package cloudinit_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bootyard/bootyard/cloudinit"
	"github.com/bootyard/bootyard/node"
)

// testToken is the cluster token of every fixture; tests search every output for it.
const testToken = "K10c4fe1d2b3a-token-secret::server:5f0e8d"

var fixtureTime = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func mustMAC(t testing.TB, s string) node.MAC {
	t.Helper()
	m, err := node.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fixtureNodes are one node per LLMOS role, each with a name, an address, labels and taints.
func fixtureNodes(t testing.TB) map[string]node.Node {
	t.Helper()
	return map[string]node.Node{
		"cluster-init": {
			Name: "cp-1", MACs: []node.MAC{mustMAC(t, "52:54:00:00:01:01")}, Role: node.RoleServer, ClusterInit: true,
			State: node.StateProvisioning, Generation: 1, UpdatedAt: fixtureTime,
			IP: netip.MustParsePrefix("10.20.0.11/24"), Gateway: netip.MustParseAddr("10.20.0.1"),
			DNS:    []netip.Addr{netip.MustParseAddr("10.20.0.1"), netip.MustParseAddr("9.9.9.9")},
			Labels: map[string]string{"topology.kubernetes.io/zone": "rack-a", "bootyard.io/pool": "control"},
			Taints: []node.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: node.EffectNoSchedule}},
		},
		"server": {
			Name: "cp-2", MACs: []node.MAC{mustMAC(t, "52:54:00:00:01:02")}, Role: node.RoleServer,
			State: node.StateProvisioning, Generation: 3, UpdatedAt: fixtureTime,
			IP: netip.MustParsePrefix("10.20.0.12/24"), Gateway: netip.MustParseAddr("10.20.0.1"),
			DNS:    []netip.Addr{netip.MustParseAddr("10.20.0.1")},
			Labels: map[string]string{"topology.kubernetes.io/zone": "rack-b"},
			Taints: []node.Taint{{Key: "dedicated", Value: "etcd", Effect: node.EffectNoExecute}},
		},
		"worker": {
			Name: "gpu-7", MACs: []node.MAC{mustMAC(t, "52:54:00:00:02:07"), mustMAC(t, "52:54:00:00:03:07")}, Role: node.RoleWorker,
			State: node.StateRegistered, Generation: 0, UpdatedAt: fixtureTime,
			Labels: map[string]string{"nvidia.com/gpu.present": "true", "bootyard.io/pool": "gpu"},
			Taints: []node.Taint{{Key: "nvidia.com/gpu", Value: "present", Effect: node.EffectNoSchedule},
				{Key: "maintenance", Effect: node.EffectPreferNoSchedule}},
		},
	}
}

func fixtureSettings() node.ClusterSettings {
	return node.ClusterSettings{
		ServerURL:         "https://10.20.0.11:6443",
		Token:             node.Secret(testToken),
		InstallEnv:        map[string]string{"INSTALL_LLMOS_VERSION": "v0.3.1", "HTTPS_PROXY": "http://proxy.lab:3128"},
		SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootyardTestKey ops@lab"},
		ExtraCloudConfig: "#cloud-config\npackages: [curl, open-iscsi]\nruncmd:\n  - [systemctl, enable, --now, iscsid]\n" +
			"hostname: must-not-win\ntimezone: Europe/Berlin\n",
	}
}

func newRenderer(t testing.TB, cfg cloudinit.Config) *cloudinit.Renderer {
	t.Helper()
	if cfg.AdvertiseURL == "" {
		cfg.AdvertiseURL = "http://10.20.0.2:8080"
	}
	if cfg.CallbackSecret == nil {
		cfg.CallbackSecret = []byte("fixed-for-golden-files")
	}
	r, err := cloudinit.NewRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
