package ipxe

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

// fakeIPXEDir lays out a directory shaped like Debian's /usr/lib/ipxe: a real file, a
// symlink to a file elsewhere (like ipxe.efi → /boot/ipxe.efi), an option ROM link, a
// dangling link, and a secret beside it that must never be reachable.
func fakeIPXEDir(t *testing.T) (dir, bootDir string) {
	t.Helper()
	root := t.TempDir()
	dir, bootDir = filepath.Join(root, "lib-ipxe"), filepath.Join(root, "boot")
	for _, d := range []string{dir, bootDir, filepath.Join(dir, "qemu")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "undionly.kpxe"), "bios-image")
	write(filepath.Join(bootDir, "ipxe.efi"), "efi-image")
	write(filepath.Join(dir, "qemu", "pxe-e1000.rom"), "rom")
	write(filepath.Join(root, "secret"), "token")
	for link, target := range map[string]string{
		"ipxe.efi":       filepath.Join(bootDir, "ipxe.efi"),
		"e1000.rom":      "qemu/pxe-e1000.rom",
		"gone.efi":       filepath.Join(bootDir, "missing.efi"),
		"secret.efi.txt": filepath.Join(root, "secret"),
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, bootDir
}

func TestOpenBinaries_ServesSymlinkTargetsAndOnlyBootableImages(t *testing.T) {
	dir, bootDir := fakeIPXEDir(t)
	b, err := OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Names(), []string{"ipxe.efi", "undionly.kpxe"}; !slices.Equal(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	bin, _ := b.Lookup("ipxe.efi")
	if bin.RealPath != filepath.Join(bootDir, "ipxe.efi") {
		t.Errorf("ipxe.efi resolves to %s, want the link target in %s", bin.RealPath, bootDir)
	}
	f, size, err := b.Open("ipxe.efi")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if string(got) != "efi-image" || size != int64(len("efi-image")) {
		t.Errorf("Open(ipxe.efi) = %q (size %d), want the link target's bytes", got, size)
	}
}

func TestBinariesOpen_RefusesEverythingOutsideTheAllowList(t *testing.T) {
	dir, _ := fakeIPXEDir(t)
	b, err := OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../secret", "/etc/passwd", filepath.Join(dir, "undionly.kpxe"),
		"e1000.rom", "gone.efi", "secret.efi.txt", "qemu/pxe-e1000.rom", "", "UNDIONLY.KPXE"} {
		if f, _, err := b.Open(name); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", name)
		} else if !errors.Is(err, node.ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", name, err)
		}
	}
}

func TestOpenBinaries_MissingOrEmptyDirectoryIsAClearStartupError(t *testing.T) {
	_, err := OpenBinaries(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "--ipxe-dir") {
		t.Errorf("missing dir: err = %v, want one that names --ipxe-dir", err)
	}
	if _, err := OpenBinaries(t.TempDir()); err == nil {
		t.Error("empty dir accepted")
	}
}

func TestCheckName_RefusesPathsAndAcceptsPlainNames(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"undionly.kpxe", true},
		{"ipxe-arm64.efi", true},
		{"../etc/passwd", false},
		{"..", false},
		{"/ipxe.efi", false},
		{"a/b", false},
		{`..\boot.ini`, false},
		{"ipxe.efi\x00", false},
		{"ipxe\n.efi", false},
		{"", false},
		{strings.Repeat("a", 200), false},
	}
	for _, tt := range tests {
		if err := CheckName(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestBootFile_PicksPerArchitectureAndOnlyPresentImages(t *testing.T) {
	dir, _ := fakeIPXEDir(t)
	b, err := OpenBinaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		arch uint16
		want string
		ok   bool
	}{{0, "undionly.kpxe", true}, {7, "ipxe.efi", true}, {9, "ipxe.efi", true}, {16, "ipxe.efi", true}, {11, "", false}, {99, "", false}}
	for _, tt := range tests {
		got, ok := b.BootFile(tt.arch)
		if got != tt.want || ok != tt.ok {
			t.Errorf("BootFile(%d) = %q, %v; want %q, %v", tt.arch, got, ok, tt.want, tt.ok)
		}
	}
}

func TestOpenBinaries_DebianPackage(t *testing.T) {
	if _, err := os.Stat(DefaultDir); err != nil {
		t.Skipf("Debian's ipxe package is not installed (%v)", err)
	}
	b, err := OpenBinaries(DefaultDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		if _, ok := b.Lookup(want); !ok {
			t.Errorf("%s not found in %s (have %v)", want, DefaultDir, b.Names())
		}
	}
}
