package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// quietLog keeps test output to failures.
var quietLog = slog.New(slog.DiscardHandler)

func newTestCatalog(t *testing.T) (*Catalog, *store.Store) {
	t.Helper()
	return newTestCatalogIn(t, testImagesDir(t))
}

// newTestCatalogIn is a catalog over dir, for subtests that share their parent's files.
func newTestCatalogIn(t *testing.T, dir string) (*Catalog, *store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "bootyard.db"), store.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := NewCatalog(CatalogConfig{Store: st, Dir: dir, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	return c, st
}

// testImagesDirs is each test's images directory, shared by its catalog and writeFile.
var testImagesDirs sync.Map

func testImagesDir(t *testing.T) string {
	t.Helper()
	if d, ok := testImagesDirs.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	testImagesDirs.Store(t, d)
	t.Cleanup(func() { testImagesDirs.Delete(t) })
	return d
}

// writeFile writes a file into the test's images directory, in a directory of its own
// so two files of the same name do not collide.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp(testImagesDir(t), "f")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sumOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestCatalogAdd_FileImageIsMeasuredAndItsFormatDetected(t *testing.T) {
	raw := []byte(strings.Repeat("bootsector", 100))
	gz := append([]byte{0x1f, 0x8b, 8, 0}, raw...)
	zst := append([]byte{0x28, 0xb5, 0x2f, 0xfd}, raw...)
	tests := []struct {
		name       string
		file       string
		data       []byte
		format     string
		wantFormat store.ImageFormat
	}{
		{"raw bytes, neutral name", "disk.img", raw, "", store.FormatRaw},
		{"gzip by suffix", "disk.raw.gz", raw, "", store.FormatGzip},
		{"zstd by suffix", "disk.raw.zst", raw, "", store.FormatZstd},
		{"gzip by magic", "disk.img", gz, "", store.FormatGzip},
		{"zstd by magic", "disk.img", zst, "", store.FormatZstd},
		{"explicit format wins", "disk.img", gz, "raw", store.FormatRaw},
		{"empty file", "empty.img", nil, "", store.FormatRaw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestCatalog(t)
			path := writeFile(t, tt.file, tt.data)
			img, err := c.Add(context.Background(), Spec{Name: "debian", File: path, Format: tt.format})
			if err != nil {
				t.Fatal(err)
			}
			if img.Kind != store.ImageDisk || img.Size != int64(len(tt.data)) || img.SHA256 != sumOf(tt.data) || img.Format != tt.wantFormat {
				t.Errorf("image = %+v; want disk, size %d, sha256 %s, format %s", img, len(tt.data), sumOf(tt.data), tt.wantFormat)
			}
			if img.ModTime.IsZero() || !img.Default {
				t.Errorf("image = %+v; want a modification time and (first image) default", img)
			}
		})
	}
}

func TestCatalogAdd_RefusesWithTheReason(t *testing.T) {
	data := []byte("a disk image")
	imagesDir := testImagesDir(t)
	dir, err := os.MkdirTemp(imagesDir, "d")
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "disk.img", data)
	kernel := writeFile(t, "vmlinuz", []byte("kernel"))
	initrd := writeFile(t, "initrd", []byte("initrd"))
	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name string
		spec Spec
		want string // in the error
	}{
		{"sha256 mismatch", Spec{File: file, SHA256: wrong}, "sha256 mismatch: " + file + " has " + sumOf(data) + ", but " + wrong + " was given"},
		{"sha256 not hex", Spec{File: file, SHA256: "xyz"}, "not 64 hex digits"},
		{"size mismatch", Spec{File: file, Size: 99}, "size 99 given"},
		{"url without sha256", Spec{URL: "http://mirror/debian.raw"}, "Bootyard does not download it"},
		{"url not http", Spec{URL: "ftp://mirror/debian.raw", SHA256: wrong}, "want http(s)"},
		{"file and url", Spec{File: file, URL: "http://mirror/x", SHA256: wrong}, "not both"},
		{"neither file nor url", Spec{}, "needs --file PATH or --url URL"},
		{"relative path", Spec{File: "disk.img"}, "absolute path"},
		{"missing file", Spec{File: filepath.Join(dir, "nope.img")}, "no such file"},
		{"directory", Spec{File: dir}, "not a regular file"},
		{"qcow2", Spec{File: writeFile(t, "disk.qcow2", []byte("QFI\xfb\x00\x00\x00\x03"))}, "qemu-img convert"},
		{"xz", Spec{File: writeFile(t, "disk.raw.xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0})}, "recompress"},
		{"unknown format", Spec{File: file, Format: "vmdk"}, "must be raw, gzip or zstd"},
		{"bad name", Spec{Name: "Debian 12", File: file}, "RFC 1123"},
		{"unknown kind", Spec{Kind: "iso", File: file}, "must be disk or installer"},
		{"disk with a kernel", Spec{File: file, Kernel: kernel}, "installer image"},
		{"installer without initrd", Spec{Kind: "installer", Kernel: kernel}, "needs --initrd"},
		{"installer with a file", Spec{Kind: "installer", Kernel: kernel, Initrd: initrd, File: file}, "not --file"},
		{"installer kernel missing", Spec{Kind: "installer", Kernel: filepath.Join(dir, "nokernel"), Initrd: initrd}, "no such file"},
		{"installer cmdline with $", Spec{Kind: "installer", Kernel: kernel, Initrd: initrd, Cmdline: "x=${y}"}, "without $"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, st := newTestCatalogIn(t, imagesDir)
			if tt.spec.Name == "" {
				tt.spec.Name = "debian"
			}
			_, err := c.Add(context.Background(), tt.spec)
			if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Add err = %v; want ErrInvalid containing %q", err, tt.want)
			}
			if imgs, _ := st.Images(context.Background()); len(imgs) != 0 {
				t.Errorf("a refused image was stored: %v", imgs)
			}
		})
	}
}

func TestCatalogAdd_URLAndInstallerImagesAreStoredAsGiven(t *testing.T) {
	c, _ := newTestCatalog(t)
	ctx := context.Background()
	sum := strings.Repeat("ab", 32)
	img, err := c.Add(ctx, Spec{Name: "debian", URL: "https://mirror.example/debian.raw.zst", SHA256: strings.ToUpper(sum), Size: 1234})
	if err != nil {
		t.Fatal(err)
	}
	if img.URL != "https://mirror.example/debian.raw.zst" || img.SHA256 != sum || img.Size != 1234 || img.Format != store.FormatZstd {
		t.Errorf("url image = %+v", img)
	}
	kernel := writeFile(t, "vmlinuz", []byte("kernel"))
	inst, err := c.Add(ctx, Spec{Name: "ubuntu", Kind: "installer", Kernel: kernel, Initrd: "http://mirror.example/initrd",
		Cmdline: " autoinstall ip=dhcp ", Default: true})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Kind != store.ImageInstaller || inst.Kernel != kernel || inst.Cmdline != "autoinstall ip=dhcp" || !inst.Default {
		t.Errorf("installer image = %+v", inst)
	}
}

func TestCatalogAdd_CancelledContextStopsHashing(t *testing.T) {
	c, _ := newTestCatalog(t)
	path := writeFile(t, "disk.img", make([]byte, 4<<20))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Add(ctx, Spec{Name: "debian", File: path}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add err = %v, want context.Canceled", err)
	}
}

func TestCatalogResolve_NodeImageElseClusterDefault(t *testing.T) {
	c, _ := newTestCatalog(t)
	ctx := context.Background()
	for _, name := range []string{"debian", "ubuntu"} {
		if _, err := c.Add(ctx, Spec{Name: name, File: writeFile(t, name+".img", []byte(name))}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		image    string
		def      string
		want     string
		wantKind error
	}{
		{"node names its image", "ubuntu", "debian", "ubuntu", nil},
		{"node names none: default", "", "debian", "debian", nil},
		{"no image anywhere", "", "", "", node.ErrNotFound},
		{"node names a removed image", "fedora", "debian", "", node.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := c.Resolve(ctx, node.Node{Name: "cp-1", Image: tt.image}, node.ClusterSettings{DefaultImage: tt.def})
			if !errors.Is(err, tt.wantKind) || (tt.wantKind == nil && err != nil) {
				t.Fatalf("Resolve err = %v, want %v", err, tt.wantKind)
			}
			if img.Name != tt.want {
				t.Errorf("Resolve = %q, want %q", img.Name, tt.want)
			}
		})
	}
}
