// Package firmware reads how a machine booted from its firmware's variables: UEFI or
// BIOS, and whether UEFI enforced Secure Boot. The installer agent reports it; the demo
// image's OS prints it.
package firmware

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/agentapi"
)

// secureBootVar is the UEFI global variable SecureBoot (EFI_GLOBAL_VARIABLE GUID): 1 when
// the firmware enforces Secure Boot. efivarfs shows it as 4 bytes of attributes, then
// the value.
const secureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Read reads whether the machine booted through UEFI with Secure Boot on. efiDir
// is /sys/firmware/efi; its efivars directory is mounted (efivarfs) when the kernel did
// not. A machine without the variable has no Secure Boot: off, not an error.
func Read(efiDir string) (agentapi.FirmwareReport, error) {
	var f agentapi.FirmwareReport
	if _, err := os.Stat(efiDir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return f, nil // BIOS
		}
		return f, fmt.Errorf("firmware: %w", err)
	}
	f.UEFI = true
	vars := filepath.Join(efiDir, "efivars")
	b, err := os.ReadFile(filepath.Join(vars, secureBootVar))
	if errors.Is(err, fs.ErrNotExist) {
		if entries, _ := os.ReadDir(vars); len(entries) == 0 {
			// Read-only: the agent only reads variables, and a stray write to efivarfs
			// can brick some firmware.
			if err := unix.Mount("efivarfs", vars, "efivarfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV|unix.MS_RDONLY, ""); err != nil && !errors.Is(err, unix.EBUSY) {
				return f, fmt.Errorf("firmware: mount efivarfs on %s: %w", vars, err)
			}
			b, err = os.ReadFile(filepath.Join(vars, secureBootVar))
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		return f, fmt.Errorf("firmware: read %s: %w", secureBootVar, err)
	case len(b) < 5:
		return f, fmt.Errorf("firmware: %s is %d bytes, want 4 of attributes and the value", secureBootVar, len(b))
	}
	f.SecureBoot = b[4] == 1
	return f, nil
}
