package ipxe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func requireGRUB(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(DefaultGRUBDir, "chain.mod")); err != nil {
		t.Skipf("GRUB's x86_64-efi modules are not installed (Debian package grub-efi-amd64-bin): %v", err)
	}
	if _, err := exec.LookPath("grub-mkimage"); err != nil {
		t.Skip("grub-mkimage is not installed (Debian package grub-common)")
	}
}

func TestLocalBootConfig_IsValidGRUBScript(t *testing.T) {
	if _, err := exec.LookPath("grub-script-check"); err != nil {
		t.Skip("grub-script-check is not installed (Debian package grub-common)")
	}
	cmd := exec.Command("grub-script-check")
	cmd.Stdin = bytes.NewReader(localBootConfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("grub-script-check refuses loader/localboot.cfg: %v\n%s", err, out)
	}
}

func TestBuildLocalBootLoader_IsAnEFIImageCarryingItsConfig(t *testing.T) {
	requireGRUB(t)
	dir := filepath.Join(t.TempDir(), "loaders")
	path, err := BuildLocalBootLoader(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != LocalBootLoaderName {
		t.Errorf("loader written as %s, want %s", filepath.Base(path), LocalBootLoaderName)
	}
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(img, []byte("MZ")) {
		t.Errorf("loader does not start with a PE/COFF header: % x", img[:min(len(img), 8)])
	}
	// GRUB stores the memdisk uncompressed in the image: the config must be in it as is.
	if !bytes.Contains(img, localBootConfig) {
		t.Error("the loader does not carry loader/localboot.cfg in its memdisk")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("loader directory holds %d entries, want only the loader (no temporary files left)", len(entries))
	}

	// Served beside the iPXE binaries under its own name, and only under it.
	ipxeDir, _ := fakeIPXEDir(t)
	bins, err := OpenBinaries(ipxeDir, path)
	if err != nil {
		t.Fatal(err)
	}
	f, size, err := bins.Open(LocalBootLoaderName)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := io.ReadAll(f)
	if size != int64(len(img)) || !bytes.Equal(got, img) {
		t.Errorf("served loader differs from the built one (%d bytes, want %d)", size, len(img))
	}
	if _, ok := bins.BootFile(7); !ok {
		t.Error("the loader displaced the iPXE boot file")
	}
}

func TestBuildLocalBootLoader_MissingGRUBIsAClearError(t *testing.T) {
	_, err := BuildLocalBootLoader(context.Background(), filepath.Join(t.TempDir(), "no-grub"), t.TempDir())
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("grub-efi-amd64-bin")) {
		t.Errorf("err = %v, want one that names grub-efi-amd64-bin", err)
	}
}

func TestOpenBinaries_RefusesAnExtraLoaderThatIsNotAPlainFile(t *testing.T) {
	ipxeDir, _ := fakeIPXEDir(t)
	for _, extra := range []string{filepath.Join(t.TempDir(), "missing.efi"), t.TempDir()} {
		if _, err := OpenBinaries(ipxeDir, extra); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("OpenBinaries(extra %s) = %v, want ErrInvalid", extra, err)
		}
	}
}

func TestNewRenderer_RefusesALoaderNameThatIsAPath(t *testing.T) {
	if _, err := NewRenderer(Config{AdvertiseURL: "http://10.0.0.1:8080", LocalBootLoader: "../x.efi"}); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("loader name ../x.efi: err = %v, want ErrInvalid", err)
	}
}
