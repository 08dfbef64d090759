package node

import "fmt"

// UEFILoader is the first program Bootyard hands an x86-64 UEFI machine that
// network-boots. BIOS machines always get iPXE.
type UEFILoader string

const (
	// LoaderInherit (empty) takes the site's setting (a node) or the default (the site).
	LoaderInherit UEFILoader = ""
	// LoaderIPXE is iPXE (ipxe.efi): HTTP transfers and every image kind, but unsigned,
	// so firmware with Secure Boot on refuses to run it.
	LoaderIPXE UEFILoader = "ipxe"
	// LoaderShim is the Secure Boot chain: shim signed by the Microsoft UEFI CA, then
	// GRUB and the kernel signed by Debian. It boots with Secure Boot on and off.
	LoaderShim UEFILoader = "shim"
)

// DefaultUEFILoader is the loader when neither the node nor the site names one. iPXE:
// see the README's "Secure Boot" section for why, and for when to set shim.
const DefaultUEFILoader = LoaderIPXE

// ParseUEFILoader accepts "ipxe", "shim" and "" (inherit).
func ParseUEFILoader(s string) (UEFILoader, error) {
	switch l := UEFILoader(s); l {
	case LoaderInherit, LoaderIPXE, LoaderShim:
		return l, nil
	}
	return "", fmt.Errorf("UEFI loader %q: %w: want ipxe or shim (or empty to inherit)", s, ErrInvalid)
}

// EffectiveUEFILoader is the loader a node boots with: its own setting, else the site's,
// else DefaultUEFILoader.
func EffectiveUEFILoader(own, site UEFILoader) UEFILoader {
	switch {
	case own != LoaderInherit:
		return own
	case site != LoaderInherit:
		return site
	}
	return DefaultUEFILoader
}
