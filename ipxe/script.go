package ipxe

import (
	"github.com/bootyard/bootyard/node"
)

// Kind is which script a machine gets.
type Kind string

const (
	KindInstall   Kind = "install"   // boot the installer for the node's image
	KindLocalBoot Kind = "localboot" // boot the OS already on the disk
	KindWipe      Kind = "wipe"      // boot the wipe (a placeholder until the wipe image exists)
	KindWait      Kind = "wait"      // print why, sleep, ask again: unknown, failed, deleting
	KindInspect   Kind = "inspect"   // boot the agent to report the hardware (any state, on request)
)

// KindFor maps a node's state to its script. Only registered and provisioning nodes get
// the installer (a provisioning node that boots again rebooted mid-install); deleted
// nodes boot their disk and never see join data.
func KindFor(s node.State) Kind {
	switch s {
	case node.StateRegistered, node.StateProvisioning:
		return KindInstall
	case node.StateInstalled, node.StateJoining, node.StateJoined, node.StateActive, node.StateDeleted:
		return KindLocalBoot
	case node.StateWiping:
		return KindWipe
	}
	// discovered waits to be imported; failed waits for a retry; deleting waits until
	// the deletion decides between wiping and deleted. Booting the disk in those states
	// could let a half-installed or leaving machine rejoin the cluster.
	return KindWait
}

// Platform is the firmware iPXE runs on, as its ${platform} setting names it.
type Platform string

const (
	PlatformUnknown Platform = ""
	PlatformBIOS    Platform = "pcbios"
	PlatformEFI     Platform = "efi"
)

// ParsePlatform accepts iPXE's ${platform} values; anything else is unknown, and the
// script then decides at run time.
func ParsePlatform(s string) Platform {
	switch Platform(s) {
	case PlatformBIOS, PlatformEFI:
		return Platform(s)
	}
	return PlatformUnknown
}

// PlatformOf infers the platform from what the firmware told DHCP last time.
func PlatformOf(b node.BootInfo) Platform {
	switch b.Firmware {
	case "bios":
		return PlatformBIOS
	case "uefi", "uefi-http":
		return PlatformEFI
	}
	if b.FirstSeen.IsZero() && b.Firmware == "" {
		return PlatformUnknown // never seen: Arch 0 would be a guess, not BIOS
	}
	if b.Arch == 0 {
		return PlatformBIOS
	}
	return PlatformEFI
}

// ArchCode turns iPXE's ${platform} and ${buildarch} into the DHCP option 93 code that
// node.BootInfo records, so a machine seen only over HTTP is described like one seen by
// DHCP. ok is false for combinations with no code.
func ArchCode(p Platform, buildarch string) (code uint16, ok bool) {
	switch p {
	case PlatformBIOS:
		if buildarch == "i386" || buildarch == "x86_64" {
			return 0x00, true
		}
	case PlatformEFI:
		switch buildarch {
		case "i386":
			return 0x06, true
		case "x86_64":
			return 0x07, true
		case "arm32":
			return 0x0a, true
		case "arm64":
			return 0x0b, true
		}
	}
	return 0, false
}

// InstallTarget is what the installer boots. It is empty until the image catalog serves
// kernels; the install script then says what it would do and boots the local disk.
type InstallTarget struct {
	Kernel  string   // URL of the kernel (or EFI stub)
	Initrds []string // URLs of the initrds, in order
	Cmdline string   // kernel command line, already assembled and checked
}

// Script is everything a script template may show. Strings that come from operators or
// machines are sanitised by the renderer, not here.
type Script struct {
	Kind       Kind
	MAC        node.MAC
	Name       string // node name; empty for an unknown machine
	State      node.State
	Role       node.Role
	Image      string
	Generation int
	Platform   Platform
	Reason     string // why the machine waits (failed reason), shown as is after sanitising
	Install    InstallTarget
}
