package boot

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func TestBootFile_ChosenFromWhatTheFirmwareSays(t *testing.T) {
	mac := mustMAC("52:54:00:12:34:56")
	pxe := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	arch := func(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }
	tests := []struct {
		name        string
		arm64       string // BootFiles.EFIARM64
		mods        []dhcpv4.Modifier
		wantFile    string // "" means no boot information at all
		wantSiaddr  bool
		wantVendor  string
		wantInField bool // also in the BOOTP file field
	}{
		{"BIOS PXE ROM gets undionly.kpxe over TFTP", "", []dhcpv4.Modifier{pxe, arch(iana.INTEL_X86PC)}, "undionly.kpxe", true, "", true},
		{"x86-64 UEFI (arch 7) gets ipxe.efi", "", []dhcpv4.Modifier{pxe, arch(iana.EFI_BC)}, "ipxe.efi", true, "", true},
		{"x86-64 UEFI (arch 9) gets ipxe.efi", "", []dhcpv4.Modifier{pxe, arch(iana.EFI_X86_64)}, "ipxe.efi", true, "", true},
		{"arm64 UEFI without a binary gets no boot file", "", []dhcpv4.Modifier{pxe, arch(iana.EFI_ARM64)}, "", false, "", false},
		{"arm64 UEFI with a binary gets it", "ipxe-arm64.efi", []dhcpv4.Modifier{pxe, arch(iana.EFI_ARM64)}, "ipxe-arm64.efi", true, "", true},
		{"UEFI HTTP boot gets a URL and HTTPClient echoed", "", []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001")), arch(iana.EFI_X86_64_HTTP)},
			"http://10.77.0.1:8080/ipxe/ipxe.efi", false, "HTTPClient", true},
		{"iPXE gets its script URL, not a binary", "", []dhcpv4.Modifier{pxe, arch(iana.EFI_X86_64),
			dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))},
			"http://10.77.0.1:8080/boot.ipxe?mac=52:54:00:12:34:56", false, "", true},
		{"iPXE with an RFC 3004 user class is recognised too", "", []dhcpv4.Modifier{pxe, arch(iana.INTEL_X86PC),
			dhcpv4.WithUserClass("iPXE", true)},
			"http://10.77.0.1:8080/boot.ipxe?mac=52:54:00:12:34:56", false, "", true},
		{"a plain DHCP client gets no boot information", "", []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, "", false, "", false},
		{"a PXE ROM with an unknown arch gets no boot file", "", []dhcpv4.Modifier{pxe, arch(iana.Arch(42))}, "", false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(ModeFull)
			cfg.BootFiles.EFIARM64 = tt.arm64
			s := socketless(t, cfg, openTestStore(t, t.TempDir()))
			offer, _ := exchange(t, s, discoverFrom(t, mac, tt.mods...), 67)
			if offer == nil {
				t.Fatal("no offer")
			}
			if got := offer.BootFileNameOption(); got != tt.wantFile {
				t.Fatalf("option 67 = %q, want %q", got, tt.wantFile)
			}
			if tt.wantInField && offer.BootFileName != tt.wantFile {
				t.Fatalf("file field = %q, want %q", offer.BootFileName, tt.wantFile)
			}
			hasSiaddr := !offer.ServerIPAddr.IsUnspecified()
			if hasSiaddr != tt.wantSiaddr {
				t.Fatalf("siaddr = %s, want set: %v", offer.ServerIPAddr, tt.wantSiaddr)
			}
			if tt.wantSiaddr && (!offer.ServerIPAddr.Equal(net.ParseIP("10.77.0.1")) || offer.TFTPServerName() != "10.77.0.1") {
				t.Fatalf("siaddr %s option 66 %q, want the interface address", offer.ServerIPAddr, offer.TFTPServerName())
			}
			if got := offer.ClassIdentifier(); got != tt.wantVendor {
				t.Fatalf("option 60 = %q, want %q", got, tt.wantVendor)
			}
		})
	}
}

func TestBootFile_OnlyNetbootClientsAreRecorded(t *testing.T) {
	inv := openTestStore(t, t.TempDir())
	s := socketless(t, testConfig(ModeFull), inv)
	pxeMAC, plainMAC := mustMAC("52:54:00:00:10:01"), mustMAC("52:54:00:00:10:02")
	dora(t, s, pxeMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
	dora(t, s, plainMAC)
	// The recorder is asynchronous; wait for it to have seen the PXE client.
	var recs []bootRecord
	for range 200 {
		if recs = inv.recorded(); len(recs) > 0 {
			break
		}
		waitABit()
	}
	if len(recs) == 0 {
		t.Fatal("PXE client was never recorded")
	}
	for _, r := range recs {
		if r.mac == plainMAC {
			t.Fatal("a plain DHCP client was recorded as a discovered machine")
		}
		if r.seen.Firmware != "bios" || r.seen.VendorClass != "PXEClient:Arch:00000:UNDI:002001" {
			t.Fatalf("record %+v", r.seen)
		}
	}
}
