// Command bootyard-demo-os is the /init of the demo image that `make demo` installs: a
// tiny operating system that says on the console it booted and whether the firmware
// enforced Secure Boot, then waits. It runs as PID 1 from an initramfs holding only it
// and the efivarfs module (images.BuildDemoImage).
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// secureBootVar is the UEFI global variable SecureBoot: 4 bytes of attributes, then 1
// when the firmware enforces Secure Boot.
const secureBootVar = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

func main() {
	// stdout is /dev/console, the serial port given by console= on the command line.
	fmt.Printf("\nBootyard demo OS booted; Secure Boot: %s\n", secureBootState())
	fmt.Println("Bootyard demo OS: nothing else to do; this machine now waits (power it off to stop).")
	// PID 1 must not exit: the kernel panics when init does.
	for {
		unix.Pause()
	}
}

// secureBootState reads the firmware's SecureBoot variable: "on", "off" (BIOS, or UEFI
// without the variable or with it 0), or "unknown (why)".
func secureBootState() string {
	if err := mountEFIVars(); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if _, err := os.Stat("/sys/firmware/efi"); errors.Is(err, fs.ErrNotExist) {
		return "off (BIOS boot)"
	}
	b, err := os.ReadFile(secureBootVar)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "off"
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case len(b) < 5:
		return fmt.Sprintf("unknown (SecureBoot variable is %d bytes)", len(b))
	case b[4] == 1:
		return "on"
	}
	return "off"
}

// mountEFIVars mounts sysfs and, on UEFI, loads the efivarfs module the initramfs
// carries (Debian builds it as a module) and mounts it read-only: this OS only reads.
func mountEFIVars() error {
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount /sys: %w", err)
	}
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return nil // BIOS: no variables to read
	}
	mods, _ := filepath.Glob("/lib/modules/*/kernel/fs/efivarfs/efivarfs.ko")
	for _, m := range mods {
		if err := loadModule(m); err != nil {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	err := unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV|unix.MS_RDONLY, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount efivarfs: %w", err)
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}
