package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// CatalogStore is what the catalog needs from the store.
type CatalogStore interface {
	AddImage(ctx context.Context, img store.Image, makeDefault bool) (store.Image, error)
	Image(ctx context.Context, name string) (store.Image, error)
	Images(ctx context.Context) ([]store.Image, error)
	RemoveImage(ctx context.Context, name string) error
}

// CatalogConfig configures a Catalog.
type CatalogConfig struct {
	Store CatalogStore
	// Dir is the images directory (made if missing): the only place image files are
	// read from, and where uploads are written.
	Dir    string
	Logger *slog.Logger
}

// Catalog adds, lists and removes images. Adding a file image reads the file once,
// streamed, to learn its size, checksum and format; nothing else ever reads it whole.
type Catalog struct {
	store CatalogStore
	dir   string // absolute, symlinks resolved
	log   *slog.Logger
}

// NewCatalog builds a catalog over its store and images directory.
func NewCatalog(cfg CatalogConfig) (*Catalog, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("images: a catalog store is required")
	}
	dir, err := openImagesDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Catalog{store: cfg.Store, dir: dir, log: cfg.Logger.With(slog.String("component", "images"))}, nil
}

// Dir is the images directory, absolute with symlinks resolved.
func (c *Catalog) Dir() string { return c.dir }

// Spec is an image as the operator describes it (CLI flags, API body).
type Spec struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"` // disk (default) or installer
	// File is an absolute path inside the images directory on the Bootyard host; URL is
	// a place machines download from themselves. A disk image has exactly one.
	File string `json:"file,omitempty"`
	URL  string `json:"url,omitempty"`
	// SHA256 is required for a URL image (Bootyard never downloads it) and checked
	// against the file for a file image.
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size,omitempty"`   // URL images only; a file's size is measured
	Format string `json:"format,omitempty"` // raw, gzip or zstd; default from the name or the bytes
	// Kernel, Initrd and Cmdline describe an installer image: each of Kernel and
	// Initrd is an absolute file path inside the images directory (served by Bootyard)
	// or an http(s) URL.
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	Default bool   `json:"default,omitempty"`
	// RootDiskHints are the default root-disk hints of nodes installed with this image.
	RootDiskHints string `json:"rootDiskHints,omitempty"`
}

// Add checks spec, measures a file image (size, sha256, format; streamed, cancelled
// with ctx) and stores the entry.
func (c *Catalog) Add(ctx context.Context, spec Spec) (store.Image, error) {
	img := store.Image{Name: spec.Name, Kind: store.ImageKind(spec.Kind), Cmdline: strings.TrimSpace(spec.Cmdline)}
	if img.Kind == "" {
		img.Kind = store.ImageDisk
	}
	if err := node.ValidateName(img.Name); err != nil {
		return store.Image{}, fmt.Errorf("image: %w", err)
	}
	hints, err := node.ParseRootDiskHints(spec.RootDiskHints)
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	img.RootDiskHints = hints
	switch img.Kind {
	case store.ImageDisk:
		err = c.describeDisk(ctx, spec, &img)
	case store.ImageInstaller:
		err = c.describeInstaller(spec, &img)
	default:
		err = fmt.Errorf("image %s: %w: kind %q must be disk or installer", spec.Name, node.ErrInvalid, spec.Kind)
	}
	if err != nil {
		return store.Image{}, err
	}
	return c.record(ctx, img, spec.Default)
}

// record records a described image and logs it.
func (c *Catalog) record(ctx context.Context, img store.Image, makeDefault bool) (store.Image, error) {
	out, err := c.store.AddImage(ctx, img, makeDefault)
	if err != nil {
		return store.Image{}, err
	}
	c.log.Info("image added", slog.String("image", out.Name), slog.String("kind", string(out.Kind)),
		slog.Int64("size", out.Size), slog.String("sha256", out.SHA256), slog.Bool("default", out.Default))
	return out, nil
}

func (c *Catalog) describeDisk(ctx context.Context, spec Spec, img *store.Image) error {
	if spec.Kernel != "" || spec.Initrd != "" {
		return fmt.Errorf("image %s: %w: kernel and initrd belong to an installer image (kind installer)", spec.Name, node.ErrInvalid)
	}
	want := strings.ToLower(strings.TrimSpace(spec.SHA256))
	if want != "" && !isHexSHA256(want) {
		return fmt.Errorf("image %s: %w: sha256 %q is not 64 hex digits", spec.Name, node.ErrInvalid, spec.SHA256)
	}
	switch {
	case spec.File != "" && spec.URL != "":
		return fmt.Errorf("image %s: %w: give a file or a url, not both", spec.Name, node.ErrInvalid)
	case spec.URL != "":
		if err := checkURL(spec.URL); err != nil {
			return fmt.Errorf("image %s: %w", spec.Name, err)
		}
		if want == "" {
			return fmt.Errorf("image %s: %w: a url image needs --sha256: Bootyard does not download it, so it cannot compute one; the installer checks it while writing", spec.Name, node.ErrInvalid)
		}
		if spec.Size < 0 {
			return fmt.Errorf("image %s: %w: negative size", spec.Name, node.ErrInvalid)
		}
		img.URL, img.SHA256, img.Size = spec.URL, want, spec.Size
		u, _ := url.Parse(spec.URL)
		format, err := formatOf(spec.Format, u.Path, nil)
		if err != nil {
			return fmt.Errorf("image %s: %w", spec.Name, err)
		}
		img.Format = format
		return nil
	case spec.File != "":
		return c.measureFile(ctx, spec, want, img)
	}
	return fmt.Errorf("image %s: %w: a disk image needs --file PATH or --url URL", spec.Name, node.ErrInvalid)
}

// measureFile reads the file once to take its checksum and sniff its format.
func (c *Catalog) measureFile(ctx context.Context, spec Spec, want string, img *store.Image) error {
	if !filepath.IsAbs(spec.File) {
		return fmt.Errorf("image %s: %w: file %q must be an absolute path on the Bootyard host", spec.Name, node.ErrInvalid, spec.File)
	}
	path, err := insideDir(c.dir, spec.File)
	if err != nil {
		return fmt.Errorf("image %s: %w: copy it there, or upload it (bootyard image add %s --file PATH --upload)", spec.Name, err, spec.Name)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image %s: %w: %v", spec.Name, node.ErrInvalid, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image %s: stat: %w", spec.Name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image %s: %w: %s is not a regular file", spec.Name, node.ErrInvalid, spec.File)
	}
	if spec.Size != 0 && spec.Size != fi.Size() {
		return fmt.Errorf("image %s: %w: size %d given, but %s has %d bytes", spec.Name, node.ErrInvalid, spec.Size, spec.File, fi.Size())
	}
	m, err := measure(ctx, f, io.Discard, spec.Format, spec.File)
	if err != nil {
		return fmt.Errorf("image %s: %s: %w", spec.Name, spec.File, err)
	}
	if m.size != fi.Size() {
		return fmt.Errorf("image %s: %s changed while it was read (%d bytes read, %d expected)", spec.Name, spec.File, m.size, fi.Size())
	}
	if want != "" && want != m.sha256 {
		return fmt.Errorf("image %s: %w: sha256 mismatch: %s has %s, but %s was given", spec.Name, node.ErrInvalid, spec.File, m.sha256, want)
	}
	img.File, img.Size, img.SHA256, img.Format, img.ModTime = path, fi.Size(), m.sha256, m.format, fi.ModTime().UTC()
	return nil
}

// measured is what one streamed pass over an image learns.
type measured struct {
	format store.ImageFormat
	size   int64
	sha256 string
}

// measure reads r once, copying it to w (io.Discard to only measure): it sniffs the
// format from the first bytes (name and explicit format as in formatOf) and hashes
// everything on the way, so an upload is checked while it is written.
func measure(ctx context.Context, r io.Reader, w io.Writer, explicit, name string) (measured, error) {
	head := make([]byte, 512)
	n, err := io.ReadFull(ctxReader{ctx: ctx, r: r}, head)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return measured{}, fmt.Errorf("read: %w", err)
	}
	head = head[:n]
	format, err := formatOf(explicit, name, head)
	if err != nil {
		return measured{}, err
	}
	h := sha256.New()
	out := io.MultiWriter(h, w)
	if _, err := out.Write(head); err != nil {
		return measured{}, fmt.Errorf("write: %w", err)
	}
	// 1 MiB reads: few syscalls, and the hash (not the copy) sets the pace.
	copied, err := io.CopyBuffer(out, ctxReader{ctx: ctx, r: r}, make([]byte, 1<<20))
	if err != nil {
		return measured{}, fmt.Errorf("checksum: %w", err)
	}
	return measured{format: format, size: int64(n) + copied, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (c *Catalog) describeInstaller(spec Spec, img *store.Image) error {
	if spec.File != "" || spec.URL != "" || spec.SHA256 != "" {
		return fmt.Errorf("image %s: %w: an installer image is --kernel and --initrd (with --cmdline), not --file, --url or --sha256", spec.Name, node.ErrInvalid)
	}
	for _, p := range []struct {
		what string
		v    *string
	}{{"kernel", &spec.Kernel}, {"initrd", &spec.Initrd}} {
		if *p.v == "" {
			return fmt.Errorf("image %s: %w: an installer image needs --%s", spec.Name, node.ErrInvalid, p.what)
		}
		if strings.HasPrefix(*p.v, "http://") || strings.HasPrefix(*p.v, "https://") {
			if err := checkURL(*p.v); err != nil {
				return fmt.Errorf("image %s: %s: %w", spec.Name, p.what, err)
			}
			continue
		}
		if !filepath.IsAbs(*p.v) {
			return fmt.Errorf("image %s: %w: %s %q must be an absolute path on the Bootyard host or an http(s) URL", spec.Name, node.ErrInvalid, p.what, *p.v)
		}
		path, err := insideDir(c.dir, *p.v)
		if err != nil {
			return fmt.Errorf("image %s: %s: %w: copy it there", spec.Name, p.what, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("image %s: %w: %s: %v", spec.Name, node.ErrInvalid, p.what, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("image %s: %w: %s %s is not a regular file", spec.Name, node.ErrInvalid, p.what, *p.v)
		}
		*p.v = path
	}
	// iPXE treats "||", "&&" and ${...} as syntax on its kernel line.
	if strings.ContainsAny(spec.Cmdline, "\r\n$") || strings.Contains(spec.Cmdline, "||") || strings.Contains(spec.Cmdline, "&&") {
		return fmt.Errorf("image %s: %w: cmdline must be one line without $, || or &&", spec.Name, node.ErrInvalid)
	}
	img.Kernel, img.Initrd = spec.Kernel, spec.Initrd
	return nil
}

// checkURL accepts an http(s) URL that can stand on an iPXE line or in a JSON task.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: url %q: want http(s)://HOST/PATH", node.ErrInvalid, s)
	}
	if strings.ContainsAny(s, " \t\r\n$") {
		return fmt.Errorf("%w: url %q: no spaces or $", node.ErrInvalid, s)
	}
	return nil
}

// Magic numbers of what a disk image may be packed in, and of what it must not be.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXZ    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicQcow2 = []byte{'Q', 'F', 'I', 0xfb}
)

// formatOf decides the packing: an explicit format wins, then the name's suffix, then
// the first bytes (head may be nil for a URL). qcow2 and xz are refused with the fix,
// because writing them raw would give a disk that does not boot.
func formatOf(explicit, name string, head []byte) (store.ImageFormat, error) {
	switch {
	case bytes.HasPrefix(head, magicQcow2):
		return "", fmt.Errorf("%w: %s is a qcow2 image: convert it with qemu-img convert -O raw (then optionally zstd)", node.ErrInvalid, name)
	case bytes.HasPrefix(head, magicXZ) || strings.HasSuffix(name, ".xz"):
		return "", fmt.Errorf("%w: %s is xz-compressed: recompress it with zstd or gzip", node.ErrInvalid, name)
	}
	if explicit != "" {
		switch f := store.ImageFormat(explicit); f {
		case store.FormatRaw, store.FormatGzip, store.FormatZstd:
			return f, nil
		}
		return "", fmt.Errorf("%w: format %q must be raw, gzip or zstd", node.ErrInvalid, explicit)
	}
	switch {
	case strings.HasSuffix(name, ".gz"):
		return store.FormatGzip, nil
	case strings.HasSuffix(name, ".zst") || strings.HasSuffix(name, ".zstd"):
		return store.FormatZstd, nil
	case bytes.HasPrefix(head, magicGzip):
		return store.FormatGzip, nil
	case bytes.HasPrefix(head, magicZstd):
		return store.FormatZstd, nil
	}
	return store.FormatRaw, nil
}

func isHexSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// ctxReader stops a long read (hashing a large file) when the request is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// List returns the catalog sorted by name.
func (c *Catalog) List(ctx context.Context) ([]store.Image, error) { return c.store.Images(ctx) }

// Get returns one image.
func (c *Catalog) Get(ctx context.Context, name string) (store.Image, error) {
	return c.store.Image(ctx, name)
}

// Remove deletes an entry (refused while live nodes use it); the file stays on disk.
func (c *Catalog) Remove(ctx context.Context, name string) error {
	if err := c.store.RemoveImage(ctx, name); err != nil {
		return err
	}
	c.log.Info("image removed", slog.String("image", name))
	return nil
}

// Resolve is the image a node installs: its own, else the cluster default.
func (c *Catalog) Resolve(ctx context.Context, n node.Node, s node.ClusterSettings) (store.Image, error) {
	name := n.Image
	if name == "" {
		name = s.DefaultImage
	}
	if name == "" {
		return store.Image{}, fmt.Errorf("node %s names no image and the cluster has no default (bootyard image add NAME --file PATH --default): %w", n.Name, node.ErrNotFound)
	}
	img, err := c.store.Image(ctx, name)
	if err != nil {
		return store.Image{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return img, nil
}
