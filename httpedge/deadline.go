// Package httpedge holds what both of Bootyard's HTTP faces, the operator's (web) and the
// machines' (machine), do to every request at the edge before a handler sees it.
package httpedge

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// BodyReadDeadline gives every request that has a body timeout to send it, through a
// read deadline on its connection. The deadline is lifted as soon as the body has been
// read (net/http then watches the idle connection for a close, and a deadline firing
// there would cancel a long handler's context). Requests without a body (page loads,
// event streams, downloads) are not touched. A handler whose body read timed out answers
// 408, whatever it made of the read error.
func BodyReadDeadline(timeout time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.Body == nil || r.Body == http.NoBody {
				return next(c)
			}
			rc := http.NewResponseController(c.Response())
			if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
				// Not a net/http connection (a test recorder): nothing to bound.
				return next(c)
			}
			body := &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			r.Body = body
			err := next(c)
			if err != nil && body.timedOut.Load() {
				return echo.NewHTTPError(http.StatusRequestTimeout, "request body not received in time").SetInternal(err)
			}
			return err
		}
	}
}

// deadlineBody lifts the read deadline at the end of the body and notes a deadline
// that fired.
type deadlineBody struct {
	io.ReadCloser
	lift     func()
	once     sync.Once
	timedOut atomic.Bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		b.timedOut.Store(true)
	}
	return n, err
}
