package web

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/httpedge"
)

// defaultBodyReadTimeout bounds how long a client may take to send a request body. API
// and form bodies are at most 1 MiB; a client that trickles one for longer is holding a
// connection open on purpose. Uploads reset it on every read instead (idleDeadlineBody).
const defaultBodyReadTimeout = 30 * time.Second

// guardEdge sets what every operator request goes through whatever its route: the
// client address rule and the body read deadline. Echo applies both at request time.
func (s *Server) guardEdge() {
	s.echo.IPExtractor = ipExtractor(s.cfg.TrustedProxies)
	s.echo.Use(httpedge.BodyReadDeadline(s.cfg.BodyReadTimeout))
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
