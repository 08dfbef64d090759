// Command bootyard-demo-os is the /init of the demo image that `make demo` installs: a
// tiny operating system that says on the console it booted and whether the firmware
// enforced Secure Boot, then waits. It runs as PID 1 from an initramfs holding only it
// and the efivarfs module (images.BuildDemoImage).
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/firmware"
)

func main() {
	// stdout is /dev/console, the serial port given by console= on the command line.
	fmt.Printf("\nBootyard demo OS booted; Secure Boot: %s\n", secureBootState())
	fmt.Println("Bootyard demo OS: nothing else to do; this machine now waits (power it off to stop).")
	// PID 1 must not exit: the kernel panics when init does.
	for {
		unix.Pause()
	}
}

// secureBootState reads the firmware's SecureBoot variable, as the installer agent does:
// "on", "off" (BIOS, or UEFI without the variable or with it 0), or "unknown (why)".
func secureBootState() string {
	if err := loadEFIVars(); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	f, err := firmware.Read("/sys/firmware/efi")
	switch {
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case !f.UEFI:
		return "off (BIOS boot)"
	case f.SecureBoot:
		return "on"
	}
	return "off"
}

// loadEFIVars mounts sysfs and, on UEFI, loads the efivarfs module the initramfs carries
// (Debian builds it as a module); firmware.Read mounts efivarfs, read-only.
func loadEFIVars() error {
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
