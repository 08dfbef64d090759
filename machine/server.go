// Package machine serves every endpoint a machine calls (iPXE scripts and binaries,
// NoCloud, phone-home and join turns, the agent API, image and agent files), apart from
// the operator's API and pages, which are package web's.
package machine

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/bootyard/bootyard/httperr"
	"github.com/bootyard/bootyard/images"
)

// Config is the machine server's own settings.
type Config struct {
	Logger *slog.Logger
}

// Deps are the handlers the machine server mounts. Nil ones are simply not mounted.
type Deps struct {
	IPXE    *IPXEHandler    // /boot.ipxe and /ipxe/
	NoCloud *NoCloudHandler // /nocloud/
	// Files serves /images/<name>[/kernel|/initrd] and /agent/{vmlinuz,initramfs.gz}.
	Files http.Handler
	Agent *Agent // /agent/v1/
}

// Server is the echo application of the machine endpoints.
type Server struct {
	echo *echo.Echo
}

// New builds the machine server and its routes.
func New(cfg Config, deps Deps) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httperr.Handler(cfg.Logger)
	// Machines speak plain HTTP (most firmware iPXE builds carry no CA for Bootyard's
	// certificate) and authenticate by MAC, source address and per-boot tokens, never by
	// the admin token.
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	if deps.IPXE != nil {
		h := echo.WrapHandler(deps.IPXE)
		e.GET("/boot.ipxe", h)
		e.GET("/ipxe/*", h)
		e.HEAD("/ipxe/*", h)
	}
	if deps.NoCloud != nil {
		e.Any("/nocloud/*", echo.WrapHandler(deps.NoCloud))
	}
	if deps.Files != nil {
		h := streamHandler(deps.Files)
		for _, p := range []string{"/images/*", "/agent/" + images.AgentKernel, "/agent/" + images.AgentInitramfs} {
			e.GET(p, h)
			e.HEAD(p, h)
		}
	}
	if deps.Agent != nil {
		deps.Agent.mount(e)
	}
	return &Server{echo: e}
}

// Handler serves the machine endpoints, and /healthz.
func (s *Server) Handler() http.Handler { return s.echo }

// Serves reports whether path belongs to the machine endpoints, so one listener can
// serve both the operator's handler and this one.
func Serves(path string) bool {
	if path == "/boot.ipxe" {
		return true
	}
	for _, prefix := range []string{"/ipxe/", "/nocloud/", "/images/", "/agent/"} {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}
