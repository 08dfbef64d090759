package images

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootyard/bootyard/store"
)

// fileFixture is a catalog with one file image, one url image and one installer image,
// plus an agent directory, behind a real HTTP server.
type fileFixture struct {
	srv      *httptest.Server
	image    store.Image
	content  []byte
	agentDir string
}

func newFileFixture(t *testing.T) *fileFixture {
	t.Helper()
	c, st := newTestCatalog(t)
	ctx := context.Background()
	content := []byte(strings.Repeat("0123456789abcdef", 1024))
	img, err := c.Add(ctx, Spec{Name: "debian", File: writeFile(t, "debian.img", content)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, Spec{Name: "remote", URL: "http://mirror/r.img", SHA256: strings.Repeat("0", 64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, Spec{Name: "ubuntu", Kind: "installer", Kernel: writeFile(t, "k", []byte("KERNEL")),
		Initrd: "http://mirror/initrd"}); err != nil {
		t.Fatal(err)
	}
	agentDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(agentDir, AgentKernel), []byte("AGENT-KERNEL"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewFileServer(FileServerConfig{Images: st, ImagesDir: c.Dir(), AgentDir: agentDir, Logger: quietLog}))
	t.Cleanup(srv.Close)
	return &fileFixture{srv: srv, image: img, content: content, agentDir: agentDir}
}

func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestFileServer_RangeETagAndRefusals(t *testing.T) {
	fx := newFileFixture(t)
	etag := `"` + fx.image.SHA256 + `"`
	tests := []struct {
		name       string
		method     string
		path       string
		hdr        map[string]string
		wantStatus int
		wantBody   string // exact, when set
		wantETag   string
	}{
		{"whole image", "GET", "/images/debian", nil, 200, string(fx.content), etag},
		{"a range", "GET", "/images/debian", map[string]string{"Range": "bytes=16-31"}, 206, string(fx.content[16:32]), etag},
		{"an open-ended range (resume)", "GET", "/images/debian", map[string]string{"Range": "bytes=16368-"}, 206, string(fx.content[16368:]), etag},
		{"HEAD has no body", "HEAD", "/images/debian", nil, 200, "", etag},
		{"cached copy still good", "GET", "/images/debian", map[string]string{"If-None-Match": etag}, 304, "", etag},
		{"If-Range with a stale tag gets the whole file", "GET", "/images/debian",
			map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`}, 200, string(fx.content), etag},
		{"If-Range with the current tag gets the range", "GET", "/images/debian",
			map[string]string{"Range": "bytes=0-9", "If-Range": etag}, 206, string(fx.content[:10]), etag},
		{"range past the end", "GET", "/images/debian", map[string]string{"Range": "bytes=999999-"}, 416, "", ""},
		{"installer kernel file", "GET", "/images/ubuntu/kernel", nil, 200, "KERNEL", ""},
		{"installer initrd is a url: not served", "GET", "/images/ubuntu/initrd", nil, 404, "", ""},
		{"url image: not served", "GET", "/images/remote", nil, 404, "", ""},
		{"unknown image", "GET", "/images/fedora", nil, 404, "", ""},
		{"agent kernel", "GET", "/agent/vmlinuz", nil, 200, "AGENT-KERNEL", ""},
		{"agent initramfs not built yet", "GET", "/agent/initramfs.gz", nil, 404, "", ""},
		{"no other agent path reaches the disk", "GET", "/agent/..%2fbootyard.db", nil, 404, "", ""},
		{"writes refused", "POST", "/images/debian", nil, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.method, fx.srv.URL+tt.path, tt.hdr)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %.200q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body = %.60q… (%d bytes), want %d bytes", body, len(body), len(tt.wantBody))
			}
			if tt.wantETag != "" && resp.Header.Get("ETag") != tt.wantETag {
				t.Errorf("ETag = %q, want %q", resp.Header.Get("ETag"), tt.wantETag)
			}
			if tt.method == "HEAD" && resp.ContentLength != int64(len(fx.content)) {
				t.Errorf("HEAD Content-Length = %d, want %d", resp.ContentLength, len(fx.content))
			}
		})
	}
}

func TestFileServer_AgentFileETagChangesWhenTheFileIsReplaced(t *testing.T) {
	fx := newFileFixture(t)
	first, _ := get(t, "GET", fx.srv.URL+"/agent/vmlinuz", nil)
	p := filepath.Join(fx.agentDir, AgentKernel)
	if err := os.WriteFile(p, []byte("A NEWER AGENT KERNEL"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, body := get(t, "GET", fx.srv.URL+"/agent/vmlinuz", map[string]string{"If-None-Match": first.Header.Get("ETag")})
	if second.StatusCode != 200 || string(body) != "A NEWER AGENT KERNEL" || second.Header.Get("ETag") == first.Header.Get("ETag") {
		t.Errorf("after replacing the file: status %d, body %q, ETag %q (was %q); want the new file with a new tag",
			second.StatusCode, body, second.Header.Get("ETag"), first.Header.Get("ETag"))
	}
}

func TestFileServer_ImageFileChangedBehindTheCatalogIsRefused(t *testing.T) {
	fx := newFileFixture(t)
	if err := os.WriteFile(fx.image.File, []byte("something else entirely"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, "GET", fx.srv.URL+"/images/debian", nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "remove and add the image again") {
		t.Fatalf("status %d, body %q; want 409 telling the operator to re-add the image", resp.StatusCode, body)
	}
}

// TestFileServer_LargeFileStreamsWithFlatMemory serves a 512 MiB sparse file and samples
// the heap while it streams: the file must never be read into memory.
func TestFileServer_LargeFileStreamsWithFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 512 MiB")
	}
	const size = 512 << 20
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, AgentInitramfs))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	srv := httptest.NewServer(NewFileServer(FileServerConfig{AgentDir: dir, Logger: quietLog}))
	defer srv.Close()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	resp, err := http.Get(srv.URL + "/agent/" + AgentInitramfs)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(done)
	if err != nil || n != size {
		t.Fatalf("read %d bytes (%v), want %d", n, err, size)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use: %d KiB before, peak %d KiB while streaming %d MiB", base.HeapInuse>>10, peak.Load()>>10, size>>20)
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MiB while streaming a %d MiB file: it is being buffered", growth>>20, size>>20)
	}
}
