package images

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/store"
)

// An attacker with the API (or an operator's typo) names a file the daemon can read but
// must never hand out: the host's shadow file, Bootyard's own store, a symlink that leads
// out of the images directory.
func TestCatalogAdd_RefusesFilesOutsideTheImagesDirectory(t *testing.T) {
	c, st := newTestCatalog(t)
	ctx := context.Background()
	storeFile := filepath.Join(t.TempDir(), "bootyard.db")
	if err := os.WriteFile(storeFile, []byte("bbolt pages with the join token"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(c.Dir(), "innocent.raw")
	if err := os.Symlink(storeFile, link); err != nil {
		t.Fatal(err)
	}
	dotdot := filepath.Join(c.Dir(), "..", filepath.Base(filepath.Dir(storeFile)), "bootyard.db")
	for _, tt := range []struct {
		name string
		spec Spec
	}{
		{"/etc/shadow", Spec{File: "/etc/shadow"}},
		{"/etc/passwd", Spec{File: "/etc/passwd"}},
		{"the store file", Spec{File: storeFile}},
		{"a symlink in the directory to the store", Spec{File: link}},
		{"a path that climbs out", Spec{File: dotdot}},
		{"the images directory itself", Spec{File: c.Dir()}},
		{"an installer kernel outside", Spec{Kind: "installer", Kernel: "/etc/passwd", Initrd: "http://mirror/initrd"}},
		{"an installer initrd via symlink", Spec{Kind: "installer", Kernel: "http://mirror/k", Initrd: link}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Name = "evil"
			_, err := c.Add(ctx, tt.spec)
			if !errors.Is(err, node.ErrForbidden) || !strings.Contains(err.Error(), "outside the images directory") {
				t.Fatalf("Add(%+v) err = %v; want ErrForbidden saying the file is outside the images directory", tt.spec, err)
			}
		})
	}
	if imgs, _ := st.Images(ctx); len(imgs) != 0 {
		t.Errorf("a refused image was stored: %+v", imgs)
	}
}

// A catalog entry written before the images directory existed (or a file swapped for a
// symlink since) is not served: the check is repeated on every request.
func TestFileServer_NeverServesAFileOutsideTheImagesDirectory(t *testing.T) {
	c, st := newTestCatalog(t)
	ctx := context.Background()
	secret := filepath.Join(t.TempDir(), "bootyard.db")
	content := []byte("the store, with the join token")
	if err := os.WriteFile(secret, content, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(secret)
	if _, err := st.AddImage(ctx, store.Image{Name: "old", Kind: store.ImageDisk, File: secret, Size: fi.Size(), SHA256: sumOf(content),
		Format: store.FormatRaw, ModTime: fi.ModTime().UTC()}, false); err != nil {
		t.Fatal(err)
	}
	inside := writeFile(t, "swapped.raw", content)
	if _, err := c.Add(ctx, Spec{Name: "swapped", File: inside}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(inside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, inside); err != nil {
		t.Fatal(err)
	}
	good := writeFile(t, "good.raw", []byte("a disk"))
	if _, err := c.Add(ctx, Spec{Name: "good", File: good}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewFileServer(FileServerConfig{Images: st, ImagesDir: c.Dir(), Logger: quietLog}))
	t.Cleanup(srv.Close)
	if resp, body := get(t, "GET", srv.URL+"/images/good", nil); resp.StatusCode != 200 || string(body) != "a disk" {
		t.Fatalf("GET /images/good = %d %q; the file inside the directory must still be served", resp.StatusCode, body)
	}
	for _, name := range []string{"old", "swapped"} {
		resp, body := get(t, "GET", srv.URL+"/images/"+name, nil)
		if resp.StatusCode != http.StatusForbidden || bytes.Contains(body, content) {
			t.Errorf("GET /images/%s = %d %q; want 403 without the file", name, resp.StatusCode, body)
		}
	}
}

func TestCatalogUpload_StreamsIntoTheDirectoryAndChecksWhileWriting(t *testing.T) {
	ctx := context.Background()
	raw := []byte(strings.Repeat("sector", 50000))
	zst := append([]byte{0x28, 0xb5, 0x2f, 0xfd}, raw...)
	tests := []struct {
		name     string
		spec     Spec
		filename string
		body     []byte
		wantErr  error
		wantFile string // base name in the directory
	}{
		{"raw", Spec{Name: "debian"}, "debian-12.img", raw, nil, "debian.raw"},
		{"zstd by magic", Spec{Name: "debian"}, "x", zst, nil, "debian.raw.zst"},
		{"gzip by the client's file name", Spec{Name: "debian"}, "debian.raw.gz", raw, nil, "debian.raw.gz"},
		{"checksum given and right", Spec{Name: "debian", SHA256: sumOf(raw)}, "d.raw", raw, nil, "debian.raw"},
		{"checksum given and wrong", Spec{Name: "debian", SHA256: strings.Repeat("0", 64)}, "d.raw", raw, node.ErrInvalid, ""},
		{"not a disk image", Spec{Name: "debian", Kind: "installer"}, "d.raw", raw, node.ErrInvalid, ""},
		{"a path besides the bytes", Spec{Name: "debian", File: "/etc/shadow"}, "d.raw", raw, node.ErrInvalid, ""},
		{"bad name", Spec{Name: "../evil"}, "d.raw", raw, node.ErrInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, st := newTestCatalog(t)
			img, err := c.Upload(ctx, tt.spec, tt.filename, bytes.NewReader(tt.body))
			entries, _ := os.ReadDir(c.Dir())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Upload err = %v, want %v", err, tt.wantErr)
				}
				if imgs, _ := st.Images(ctx); len(imgs) != 0 || len(entries) != 0 {
					t.Errorf("a refused upload left %d images and %d files", len(imgs), len(entries))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if img.File != filepath.Join(c.Dir(), tt.wantFile) || img.SHA256 != sumOf(tt.body) || img.Size != int64(len(tt.body)) {
				t.Errorf("uploaded %+v; want file %s, sha256 %s, size %d", img, tt.wantFile, sumOf(tt.body), len(tt.body))
			}
			if got, _ := os.ReadFile(img.File); !bytes.Equal(got, tt.body) || len(entries) != 1 {
				t.Errorf("the directory holds %d entries and the file %d bytes; want exactly the upload", len(entries), len(got))
			}
			if _, err := c.Upload(ctx, tt.spec, tt.filename, bytes.NewReader(tt.body)); !errors.Is(err, node.ErrConflict) {
				t.Errorf("a second upload of the same name: %v, want ErrConflict", err)
			}
		})
	}
}
