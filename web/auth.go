package web

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/node"
)

// MinAdminTokenLen is the shortest admin token Bootyard starts with: the token signs in
// to everything, and a short one is guessed over the network.
const MinAdminTokenLen = 16

// requireOperator lets a request through with the admin token or a signed-in web
// session. The read API is private too: node lists and join settings are what someone on
// the provisioning network needs to pass for a machine.
func (s *Server) requireOperator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.isAdmin(c) || s.hasSession(c) {
			return next(c)
		}
		return unauthorized(c, "sign in on the web page, or send Authorization: Bearer <admin token>")
	}
}

// requireAdmin lets a request through only with "Authorization: Bearer <admin token>":
// changes through the API are the CLI's, never a browser's (no CSRF token to check).
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.isAdmin(c) {
			return unauthorized(c, "missing or wrong admin token: send Authorization: Bearer <token>")
		}
		return next(c)
	}
}

// requireMetricsReader lets a scraper in with the metrics token (when one is set) or
// the admin token, so Prometheus needs no key that can change the inventory.
func (s *Server) requireMetricsReader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if (s.cfg.MetricsToken.IsSet() && bearerIs(c, s.cfg.MetricsToken)) || s.isAdmin(c) {
			return next(c)
		}
		return unauthorized(c, "send Authorization: Bearer <metrics token> (--metrics-token) or the admin token")
	}
}

func unauthorized(c echo.Context, msg string) error {
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="bootyard"`)
	return echo.NewHTTPError(http.StatusUnauthorized, msg)
}

func (s *Server) isAdmin(c echo.Context) bool { return bearerIs(c, s.cfg.AdminToken) }

// bearerIs compares the request's bearer token with want in constant time, so a token
// cannot be guessed byte by byte from response timing.
func bearerIs(c echo.Context, want node.Secret) bool {
	tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
	if !ok || !want.IsSet() {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(want.Reveal())) == 1
}

// hasSession reports whether the request carries a live web session cookie.
func (s *Server) hasSession(c echo.Context) bool {
	ck, err := c.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	_, ok := s.sessions.lookup(ck.Value)
	return ok
}
