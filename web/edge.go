package web

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// defaultBodyReadTimeout bounds how long a client may take to send a request body. API
// and form bodies are at most 1 MiB; a client that trickles one for longer is holding a
// connection open on purpose. Uploads reset it on every read instead (uploadIdleTimeout).
const defaultBodyReadTimeout = 30 * time.Second

// errSlowBody is a request body that did not arrive within the read deadline.
var errSlowBody = errors.New("request body not received in time")

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
// event streams, downloads) are not touched.
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
			r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			return next(c)
		}
	}
}

// deadlineBody lifts the read deadline at the end of the body and turns a deadline that
// fired into errSlowBody.
type deadlineBody struct {
	io.ReadCloser
	lift func()
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, slowBodyError(err)
}

// slowBodyError names a read deadline that fired, so handlers answer 408, not 400.
func slowBodyError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v", errSlowBody, err)
	}
	return err
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
	n, err := b.Reader.Read(p)
	return n, slowBodyError(err)
}
