package ipxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The Secure Boot chain, from Debian's packages: shim signed by the Microsoft UEFI CA
// (shim-signed) and the network GRUB signed by Debian (grub-efi-amd64-signed). Nothing
// is signed by Bootyard and no key is enrolled.
const (
	DefaultShimDir       = "/usr/lib/shim"
	DefaultSignedGRUBDir = "/usr/lib/grub/x86_64-efi-signed"
	// ShimName is what DHCP offers; GRUBName is what shim loads from the same place
	// (the DHCP boot file's directory on the TFTP server, or its URL's over HTTP).
	ShimName = "shimx64.efi"
	GRUBName = "grubx64.efi"
	// The files as Debian installs them.
	shimFile = "shimx64.efi.signed"
	grubFile = "grubnetx64.efi.signed"
)

// SignedChain names Debian's signed shim and network GRUB under the names the chain
// asks for. Both must be there: shim without its GRUB stops at "Failed to open
// grubx64.efi".
func SignedChain(shimDir, grubDir string) ([]NamedFile, error) {
	if shimDir == "" {
		shimDir = DefaultShimDir
	}
	if grubDir == "" {
		grubDir = DefaultSignedGRUBDir
	}
	files := []NamedFile{{Name: ShimName, Path: filepath.Join(shimDir, shimFile)}, {Name: GRUBName, Path: filepath.Join(grubDir, grubFile)}}
	for _, f := range files {
		if _, err := os.Stat(f.Path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("secure boot chain: %s is missing (install Debian's shim-signed and grub-efi-amd64-signed): %w", f.Path, err)
			}
			return nil, fmt.Errorf("secure boot chain: %w", err)
		}
	}
	return files, nil
}
