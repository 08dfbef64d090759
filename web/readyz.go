package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// readyz is the readiness probe: 503 until Config.Ready says this replica may take
// traffic (a store backend that serves from a cache is not ready until the cache has
// synced; a replica that answered from an empty cache would say a registered machine is
// unknown). /healthz stays the liveness probe: a replica waiting for its cache is alive.
func (s *Server) readyz(c echo.Context) error {
	if s.cfg.Ready != nil && !s.cfg.Ready() {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready: the inventory cache has not synced"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}
