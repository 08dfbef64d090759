package machine

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/store"
)

// BenchmarkImageDownload200MB downloads a 200 MB image through the real echo server
// on loopback, one client at a time: "stream" is how Bootyard mounts it (a 256 KiB
// copy buffer), "echo-copy" is echo.WrapHandler (io.Copy's 32 KiB buffer).
// It reports MB/s (from SetBytes) and the heap in use after the downloads.
func BenchmarkImageDownload200MB(b *testing.B) {
	const size = 200 << 20
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(filepath.Join(b.TempDir(), "bootyard.db"), store.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	path := filepath.Join(b.TempDir(), "big.raw")
	// Real bytes, not a sparse file: the page cache then holds actual pages, as for a
	// real image that machines download one after another.
	if err := os.WriteFile(path, bytes.Repeat([]byte("bootyard image benchmark block\n"), size/31+1)[:size], 0o644); err != nil {
		b.Fatal(err)
	}
	catalog, err := images.NewCatalog(images.CatalogConfig{Store: st, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := catalog.Add(context.Background(), images.Spec{Name: "big", File: path}); err != nil {
		b.Fatal(err)
	}
	files := images.NewFileServer(images.FileServerConfig{Images: st, Logger: quiet})
	for _, mode := range []struct {
		name  string
		mount func(h http.Handler) echo.HandlerFunc
	}{
		{"stream", streamHandler},
		{"echo-copy", echo.WrapHandler},
	} {
		b.Run(mode.name, func(b *testing.B) {
			e := echo.New()
			e.GET("/images/*", mode.mount(files))
			srv := httptest.NewServer(e)
			defer srv.Close()
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := http.Get(srv.URL + "/images/big")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
				resp.Body.Close()
				if err != nil || n != size {
					b.Fatalf("read %d bytes (%v)", n, err)
				}
			}
			b.StopTimer()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		})
	}
}
