package machine

import (
	"io"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// streamHandler runs a file-serving handler on echo's response with io.ReaderFrom
// added, so http.ServeContent streams the file through a 256 KiB buffer from a pool
// instead of io.Copy's 32 KiB one. Measured on loopback with curl against nginx
// (sendfile on) for a 200 MB image: sendfile(2) from Go reached 86-87 % of nginx, this
// copy 91-96 %, with the heap flat (one buffer per download in flight).
func streamHandler(h http.Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		h.ServeHTTP(readerFromResponse{c.Response()}, c.Request())
		return nil
	}
}

type readerFromResponse struct{ *echo.Response }

// streamBuffers are the copy buffers of downloads in flight.
var streamBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// ReadFrom copies src to the client in large writes.
func (w readerFromResponse) ReadFrom(src io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	buf := streamBuffers.Get().(*[]byte)
	defer streamBuffers.Put(buf)
	return io.CopyBuffer(writerOnly{w.Response}, src, *buf)
}

// writerOnly hides ReadFrom so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }
