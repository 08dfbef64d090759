package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// Upload writes a disk image streamed from r into the images directory and adds it to
// the catalog, for a CLI that is not on the Bootyard host (or whose file is outside the
// images directory). The sha256 is computed while writing, so the file is read once, and
// spec.SHA256, when given, is checked before the image is added. filename is the
// client's name for the file, used only to tell its packing (.gz, .zst). The file lands
// as <name>.raw, .raw.gz or .raw.zst and never replaces an existing one.
func (c *Catalog) Upload(ctx context.Context, spec Spec, filename string, r io.Reader) (store.Image, error) {
	if err := node.ValidateName(spec.Name); err != nil {
		return store.Image{}, fmt.Errorf("image: %w", err)
	}
	if (spec.Kind != "" && spec.Kind != string(store.ImageDisk)) || spec.File != "" || spec.URL != "" || spec.Kernel != "" || spec.Initrd != "" {
		return store.Image{}, fmt.Errorf("image %s: %w: an upload is the file of a disk image: no kind, file, url, kernel or initrd", spec.Name, node.ErrInvalid)
	}
	want := strings.ToLower(strings.TrimSpace(spec.SHA256))
	if want != "" && !isHexSHA256(want) {
		return store.Image{}, fmt.Errorf("image %s: %w: sha256 %q is not 64 hex digits", spec.Name, node.ErrInvalid, spec.SHA256)
	}
	// Refuse a taken name before reading gigabytes.
	if _, err := c.store.Image(ctx, spec.Name); err == nil {
		return store.Image{}, fmt.Errorf("image %s: %w: already exists", spec.Name, node.ErrConflict)
	}
	tmp, err := os.CreateTemp(c.dir, ".upload-"+spec.Name+"-*")
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once it is linked to its final name
	m, err := measure(ctx, r, tmp, spec.Format, filepath.Base(filename))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: upload: %w", spec.Name, err)
	}
	if want != "" && want != m.sha256 {
		return store.Image{}, fmt.Errorf("image %s: %w: sha256 mismatch: the upload has %s, but %s was given", spec.Name, node.ErrInvalid, m.sha256, want)
	}
	final := filepath.Join(c.dir, spec.Name+uploadSuffix[m.format])
	// A link, not a rename: it fails instead of replacing a file an image may still name.
	if err := os.Link(tmp.Name(), final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return store.Image{}, fmt.Errorf("image %s: %w: %s already exists in the images directory", spec.Name, node.ErrConflict, filepath.Base(final))
		}
		return store.Image{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	fi, err := os.Stat(final)
	if err != nil {
		os.Remove(final)
		return store.Image{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	img := store.Image{Name: spec.Name, Kind: store.ImageDisk, File: final, Size: m.size, SHA256: m.sha256, Format: m.format,
		ModTime: fi.ModTime().UTC()}
	out, err := c.record(ctx, img, spec.Default)
	if err != nil {
		os.Remove(final)
		return store.Image{}, err
	}
	c.log.Info("image uploaded", slog.String("image", out.Name), slog.String("file", final))
	return out, nil
}

// uploadSuffix names an uploaded file after its packing, so a look at the images
// directory tells what each file is.
var uploadSuffix = map[store.ImageFormat]string{store.FormatRaw: ".raw", store.FormatGzip: ".raw.gz", store.FormatZstd: ".raw.zst"}
