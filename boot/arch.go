package boot

import (
	"bytes"
	"encoding/binary"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/ipxe"
	"github.com/bootyard/bootyard/node"
)

// Client system architectures, DHCP option 93 (RFC 4578 §2.1 and the IANA registry).
const (
	archBIOS       uint16 = 0
	archEFIBC      uint16 = 7 // EFI byte code; in practice x86-64 firmware says 7 or 9
	archEFIx64     uint16 = 9
	archEFIARM64   uint16 = 11
	archHTTPx64    uint16 = 16 // UEFI HTTP boot, x86-64
	archHTTPARM64  uint16 = 19 // UEFI HTTP boot, arm64
	archUnknownKey uint16 = 0xffff
)

// BootFiles names the iPXE binaries Bootyard serves. An empty name means "no binary for
// that firmware": such clients get an address but no boot file.
type BootFiles struct {
	BIOS     string // legacy PXE ROM, chain-loaded over TFTP
	EFIx64   string // x86-64 UEFI (arch 7 and 9), over TFTP or HTTP
	EFIARM64 string // arm64 UEFI (arch 11 and 19); set only when the binary exists
	// EFIx64Shim is the Secure Boot chain's first stage (shimx64.efi) for x86-64 UEFI
	// machines whose loader is shim; empty when Debian's signed shim is not served.
	EFIx64Shim string
	// EFIx64ShimHTTP is the same chain for x86-64 UEFI HTTP boot: a disk image the
	// firmware boots from a RAM disk (ipxe.ShimHTTPDiskName); empty when not served.
	EFIx64ShimHTTP string
}

// DefaultBootFiles are the names Debian's ipxe package ships.
var DefaultBootFiles = BootFiles{BIOS: "undionly.kpxe", EFIx64: "ipxe.efi"}

// BootFilesFrom names the binaries DHCP offers from what the iPXE directory holds:
// arm64 clients get a file only where one exists. Without binaries, the defaults.
func BootFilesFrom(bins *ipxe.Binaries) BootFiles {
	var f BootFiles
	if bins == nil {
		return f
	}
	for arch, name := range map[uint16]*string{archBIOS: &f.BIOS, archEFIBC: &f.EFIx64, archEFIARM64: &f.EFIARM64} {
		if n, ok := bins.BootFile(arch); ok {
			*name = n
		}
	}
	if _, ok := bins.Lookup(ipxe.ShimName); ok {
		f.EFIx64Shim = ipxe.ShimName
		if _, ok := bins.Lookup(ipxe.ShimHTTPDiskName); ok {
			f.EFIx64ShimHTTP = ipxe.ShimHTTPDiskName
		}
	}
	return f
}

// efiX64 is the x86-64 UEFI boot file for c: shim when its loader is the Secure Boot chain.
func (b BootFiles) efiX64(c bootClient) string {
	if c.shim && b.EFIx64Shim != "" {
		return b.EFIx64Shim
	}
	return b.EFIx64
}

// efiX64HTTP is the x86-64 UEFI HTTP boot file for c: the signed chain's disk image when
// its loader is shim.
func (b BootFiles) efiX64HTTP(c bootClient) string {
	if c.shim && b.EFIx64ShimHTTP != "" {
		return b.EFIx64ShimHTTP
	}
	return b.EFIx64
}

func (b BootFiles) withDefaults() BootFiles {
	if b.BIOS == "" {
		b.BIOS = DefaultBootFiles.BIOS
	}
	if b.EFIx64 == "" {
		b.EFIx64 = DefaultBootFiles.EFIx64
	}
	return b
}

// bootClient is what a request says about the firmware that sent it.
type bootClient struct {
	arch        uint16 // archUnknownKey when option 93 is absent or short
	vendorClass string // option 60
	userClass   string // option 77, as text
	pxe         bool   // option 60 starts with PXEClient
	httpBoot    bool   // option 60 starts with HTTPClient (UEFI HTTP boot)
	ipxe        bool   // option 77 says iPXE: it already runs iPXE and wants its script
	shim        bool   // x86-64 UEFI whose loader is the Secure Boot chain (LoaderPolicy)
}

// netboot reports whether the client is firmware that network-boots, the only kind that
// gets boot information, proxy answers and a discovery record.
func (c bootClient) netboot() bool { return c.pxe || c.httpBoot || c.ipxe }

// firmware is the node.BootInfo word for the client.
func (c bootClient) firmware() string {
	switch {
	case c.ipxe:
		return "ipxe"
	case c.httpBoot:
		return "uefi-http"
	case c.arch == archBIOS:
		return "bios"
	case c.arch == archUnknownKey:
		return ""
	}
	return "uefi"
}

var userClassIPXE = []byte("iPXE")

func classify(m *dhcpv4.DHCPv4) bootClient {
	c := bootClient{arch: archUnknownKey}
	// Several architectures may be listed (RFC 4578); the first is the running firmware.
	if v := m.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(v) >= 2 {
		c.arch = binary.BigEndian.Uint16(v)
	}
	vc := m.Options.Get(dhcpv4.OptionClassIdentifier)
	c.pxe = bytes.HasPrefix(vc, []byte("PXEClient"))
	c.httpBoot = bytes.HasPrefix(vc, []byte("HTTPClient"))
	uc := m.Options.Get(dhcpv4.OptionUserClassInformation)
	// iPXE sends option 77 as the bare string "iPXE"; RFC 3004 clients prefix each class
	// with its length, so accept both forms.
	c.ipxe = bytes.Equal(uc, userClassIPXE) || (len(uc) == 5 && uc[0] == 4 && bytes.Equal(uc[1:], userClassIPXE))
	if c.netboot() {
		// Strings are only kept for clients that will be recorded: plain DHCP clients cost
		// no allocation here. They are made printable here, at the edge: the node's boot
		// info, its events and the live page show them, and escape codes must not ride
		// along.
		c.vendorClass = node.PrintableBytes(vc)
		c.userClass = node.PrintableBytes(bytes.TrimLeft(uc, "\x04"))
	}
	return c
}

// bootChoice is what the reply tells the firmware to load.
type bootChoice struct {
	file        string // option 67 (and the file field when it fits)
	tftp        bool   // file is a TFTP path: set siaddr and option 66
	vendorClass string // option 60 to echo; UEFI HTTP boot ignores offers without HTTPClient
}

// chooseBoot decides the boot file. scriptPrefix is "<advertise>/boot.ipxe?mac=" and
// httpPrefix "<advertise>/ipxe/"; both are built once at start.
func (b BootFiles) chooseBoot(c bootClient, mac string, scriptPrefix, httpPrefix string) (bootChoice, bool) {
	switch {
	case c.ipxe:
		// iPXE is already running: hand it its script, not a binary, or it would chain-load
		// itself forever.
		return bootChoice{file: scriptPrefix + mac}, true
	case c.httpBoot:
		switch c.arch {
		case archHTTPx64:
			return bootChoice{file: httpPrefix + b.efiX64HTTP(c), vendorClass: "HTTPClient"}, true
		case archHTTPARM64:
			if b.EFIARM64 != "" {
				return bootChoice{file: httpPrefix + b.EFIARM64, vendorClass: "HTTPClient"}, true
			}
		}
		return bootChoice{}, false
	case c.pxe:
		switch c.arch {
		case archBIOS:
			return bootChoice{file: b.BIOS, tftp: true}, true
		case archEFIBC, archEFIx64:
			return bootChoice{file: b.efiX64(c), tftp: true}, true
		case archEFIARM64:
			if b.EFIARM64 != "" {
				return bootChoice{file: b.EFIARM64, tftp: true}, true
			}
		}
	}
	return bootChoice{}, false
}
