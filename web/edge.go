package web

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// defaultBodyReadTimeout bounds how long a client may take to send a request body. API
// and form bodies are at most 1 MiB; a client that trickles one for longer is holding a
// connection open on purpose. Uploads reset it on every read instead (idleDeadlineBody).
const defaultBodyReadTimeout = 30 * time.Second

// guardEdge sets what every operator request goes through whatever its route: the
// client address rule and the body read deadline. Echo applies both at request time.
func (s *Server) guardEdge() {
	s.echo.IPExtractor = ipExtractor(s.cfg.TrustedProxies)
	s.echo.Use(bodyReadDeadline(s.cfg.BodyReadTimeout))
}

// ipExtractor decides what c.RealIP() (logs, events, the sign-in throttle) believes.
// Without trusted proxies it is the socket's peer: X-Forwarded-For from a direct client
// is a claim anyone can make. With them, the header is read only when the peer is one of
// them, and only up to the first address that is not.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// bodyReadDeadline gives every request that has a body timeout to send it, through a
// read deadline on its connection. The deadline is lifted as soon as the body has been
// read (net/http then watches the idle connection for a close, and a deadline firing
// there would cancel a long handler's context). Requests without a body (page loads,
// event streams, downloads) are not touched. A handler whose body read timed out answers
// 408, whatever it made of the read error.
func bodyReadDeadline(timeout time.Duration) echo.MiddlewareFunc {
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

// idleDeadlineBody keeps a long upload going as long as bytes keep coming: each read gets
// a fresh deadline, so a stalled or trickling client is still cut off.
type idleDeadlineBody struct {
	io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b idleDeadlineBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.Reader.Read(p)
}
