package web

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// requireAdmin lets a request through only with "Authorization: Bearer <admin token>".
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.isAdmin(c) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="bootyard"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong admin token: send Authorization: Bearer <token>")
		}
		return next(c)
	}
}

func (s *Server) isAdmin(c echo.Context) bool {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	want := s.cfg.AdminToken.Reveal()
	// Constant time, so the token cannot be guessed byte by byte from response timing.
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(want)) == 1
}
