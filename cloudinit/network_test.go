package cloudinit_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/cloudinit"
)

// convertNetwork runs cloud-init's own renderer for one output kind over network-config
// and returns every file it wrote, by path relative to the output directory.
func convertNetwork(t *testing.T, ci string, netcfg []byte, distro, kind string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "network-config")
	if err := os.WriteFile(in, netcfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if b, err := exec.Command(ci, "devel", "net-convert", "-p", in, "-k", "yaml", "-d", out, "-D", distro, "-O", kind).CombinedOutput(); err != nil {
		t.Fatalf("net-convert -O %s: %v\n%s", kind, err, b)
	}
	files := map[string]string{}
	err := filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(out, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNetworkConfig_EveryCloudInitRendererConfiguresTheDeviceWithThatMAC renders the
// static-IP and the DHCP network-config with each of cloud-init's output renderers. Each
// output must match the device by MAC, or name it nic0 and rename it to that by MAC (a
// udev rule, set-name), and carry the address, gateway and DNS: never a name the kernel
// never gave the device with nothing that renames it.
func TestNetworkConfig_EveryCloudInitRendererConfiguresTheDeviceWithThatMAC(t *testing.T) {
	ci := needTool(t, "cloud-init")
	r := newRenderer(t, cloudinit.Config{})
	static := fixtureNodes(t)["cluster-init"] // 10.20.0.11/24 via 10.20.0.1, DNS 10.20.0.1 and 9.9.9.9
	staticCfg, err := r.NetworkConfig(static)
	if err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:00:01:01"
	udev := `ATTR{address}=="` + mac + `", NAME="nic0"`
	tests := []struct {
		kind, distro string
		file         string   // the interface's config file
		want         []string // in that file
		wantUdev     bool     // the rename rule is written
	}{
		{"netplan", "ubuntu", "etc/netplan/50-cloud-init.yaml",
			[]string{"macaddress: '" + mac + "'", "set-name: nic0", "- 10.20.0.11/24", "via: 10.20.0.1", "- 9.9.9.9"}, false},
		{"eni", "debian", "etc/network/interfaces.d/50-cloud-init",
			[]string{"iface nic0 inet static", "address 10.20.0.11/24", "default gw 10.20.0.1", "dns-nameservers 10.20.0.1 9.9.9.9"}, true},
		{"networkd", "debian", "etc/systemd/network/10-cloud-init-nic0.network",
			[]string{"MACAddress=" + mac, "Address=10.20.0.11/24", "Gateway=10.20.0.1", "DNS=10.20.0.1 9.9.9.9"}, false},
		{"sysconfig", "rhel", "etc/sysconfig/network-scripts/ifcfg-nic0",
			[]string{"HWADDR=" + mac, "DEVICE=nic0", "IPADDR=10.20.0.11", "NETMASK=255.255.255.0", "GATEWAY=10.20.0.1", "DNS1=10.20.0.1", "DNS2=9.9.9.9"}, true},
		{"network-manager", "rhel", "etc/NetworkManager/system-connections/cloud-init-nic0.nmconnection",
			[]string{"mac-address=" + strings.ToUpper(mac), "address1=10.20.0.11/24", "route1=0.0.0.0/0,10.20.0.1", "dns=10.20.0.1;9.9.9.9;"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			files := convertNetwork(t, ci, staticCfg, tt.distro, tt.kind)
			body, ok := files[tt.file]
			if !ok {
				t.Fatalf("no %s among %v", tt.file, keys(files))
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(body), strings.ToLower(w)) {
					t.Errorf("%s lacks %q:\n%s", tt.file, w, body)
				}
			}
			rules := files["etc/udev/rules.d/70-persistent-net.rules"]
			if tt.wantUdev && !strings.Contains(rules, udev) {
				t.Errorf("no udev rule renaming %s to nic0:\n%s", mac, rules)
			}
		})
	}

	// DHCP on every MAC: each device is renamed by its own MAC, the second one optional.
	worker := fixtureNodes(t)["worker"]
	dhcpCfg, err := r.NetworkConfig(worker)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("eni with DHCP on two MACs", func(t *testing.T) {
		files := convertNetwork(t, ci, dhcpCfg, "debian", "eni")
		rules := files["etc/udev/rules.d/70-persistent-net.rules"]
		for i, m := range worker.MACs {
			want := `ATTR{address}=="` + m.String() + `", NAME="nic` + string(rune('0'+i)) + `"`
			if !strings.Contains(rules, want) {
				t.Errorf("udev rules lack %s:\n%s", want, rules)
			}
		}
		if eni := files["etc/network/interfaces.d/50-cloud-init"]; !strings.Contains(eni, "iface nic0 inet dhcp") || !strings.Contains(eni, "iface nic1 inet dhcp") {
			t.Errorf("eni does not run DHCP on nic0 and nic1:\n%s", eni)
		}
	})
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
