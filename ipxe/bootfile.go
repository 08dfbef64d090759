package ipxe

// bootFilePreference lists, per DHCP option 93 client architecture, the images to offer
// in order. x86 UEFI prefers ipxe.efi (its own NIC drivers) and falls back to snponly.efi,
// which drives the NIC through the firmware's SNP; arm64 images are not in Debian's
// package and are found only when an operator adds them to --ipxe-dir.
var bootFilePreference = map[uint16][]string{
	0x00: {"undionly.kpxe", "ipxe.pxe"},                                // x86 BIOS
	0x06: {"ipxe-i386.efi", "snponly-i386.efi"},                        // x86 UEFI
	0x07: {"ipxe.efi", "snponly.efi"},                                  // x64 UEFI
	0x09: {"ipxe.efi", "snponly.efi"},                                  // x64 UEFI (EBC code, sent by some firmware)
	0x0a: {"ipxe-arm32.efi", "snponly-arm32.efi"},                      // ARM32 UEFI
	0x0b: {"ipxe-arm64.efi", "snponly-arm64.efi", "arm64-snponly.efi"}, // ARM64 UEFI
	0x0f: {"ipxe-i386.efi", "snponly-i386.efi"},                        // x86 UEFI HTTP
	0x10: {"ipxe.efi", "snponly.efi"},                                  // x64 UEFI HTTP
	0x12: {"ipxe-arm32.efi", "snponly-arm32.efi"},                      // ARM32 UEFI HTTP
	0x13: {"ipxe-arm64.efi", "snponly-arm64.efi", "arm64-snponly.efi"}, // ARM64 UEFI HTTP
}

// BootFile picks the iPXE image for a client architecture (DHCP option 93). ok is false
// when no image for that architecture is present.
func (b *Binaries) BootFile(arch uint16) (name string, ok bool) {
	for _, n := range bootFilePreference[arch] {
		if _, found := b.byName[n]; found {
			return n, true
		}
	}
	return "", false
}
