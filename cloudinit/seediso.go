package cloudinit

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// SeedLabel is the volume label cloud-init's NoCloud datasource looks for.
const SeedLabel = "cidata"

// WriteSeedISO writes a NoCloud seed ISO holding files at its root (user-data,
// meta-data, network-config, vendor-data) to w: ISO 9660 with Rock Ridge and Joliet, so
// the exact lower-case names survive whichever extension the guest reads, and the volume
// label cidata. go-diskfs builds the image in a temporary directory, removed on return.
func WriteSeedISO(ctx context.Context, w io.Writer, files map[string][]byte) error {
	if len(files) == 0 {
		return fmt.Errorf("seed iso: no files")
	}
	tmp, err := os.MkdirTemp("", "bootyard-seed-")
	if err != nil {
		return fmt.Errorf("seed iso: %w", err)
	}
	defer os.RemoveAll(tmp)
	workspace := filepath.Join(tmp, "root")
	if err := os.Mkdir(workspace, 0o700); err != nil {
		return fmt.Errorf("seed iso: %w", err)
	}
	imagePath := filepath.Join(tmp, "seed.iso")
	// go-diskfs needs a non-zero starting size; Finalize grows the file as it writes.
	backend, err := file.CreateFromPath(imagePath, 2048)
	if err != nil {
		return fmt.Errorf("seed iso: %w", err)
	}
	defer backend.Close()
	fs, err := iso9660.Create(backend, 0, 0, 2048, workspace)
	if err != nil {
		return fmt.Errorf("seed iso: create filesystem: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("seed iso: %w", err)
		}
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("seed iso: create %s: %w", name, err)
		}
		_, err = f.Write(files[name])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("seed iso: write %s: %w", name, err)
		}
	}
	if err := fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: SeedLabel}); err != nil {
		return fmt.Errorf("seed iso: finalize: %w", err)
	}
	img, err := os.Open(imagePath)
	if err != nil {
		return fmt.Errorf("seed iso: %w", err)
	}
	defer img.Close()
	if _, err := io.Copy(w, img); err != nil {
		return fmt.Errorf("seed iso: copy out: %w", err)
	}
	return nil
}

// WriteSeedISO is the package function as a Renderer method, the shape the web API's
// seed.iso endpoint takes. Building a seed of a few kilobytes is local and quick, so it
// runs without a deadline.
func (r *Renderer) WriteSeedISO(w io.Writer, files map[string][]byte) error {
	return WriteSeedISO(context.Background(), w, files)
}
