// Package web is Bootyard's HTTP face: the REST API under /api/v1, the iPXE and NoCloud
// endpoints machines call, and the operator's inventory pages, all on one echo server.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bootyard/bootyard/node"
)

// maxBody is the largest request body the API reads: node and cluster objects are small,
// and a bigger body is a mistake or an attack.
const maxBody = 1 << 20

// Config is the server's own settings.
type Config struct {
	AdminToken node.Secret
	// ClusterConnected reports whether a cluster integration drains and removes deleted
	// nodes; nil means never.
	ClusterConnected func() bool
	Logger           *slog.Logger
	// TLS marks the web session cookie Secure: set it when browsers reach Bootyard over
	// HTTPS (directly or through a TLS-terminating proxy).
	TLS bool
	// MachineURL is the plain-HTTP base URL machines use (the advertise URL); the pages
	// show it so operators know iPXE and NoCloud do not go over TLS.
	MachineURL string
	// SessionTTL is how long an idle web session stays signed in; 0 means 12 hours.
	SessionTTL time.Duration
}

// Deps are the services the server mounts. Nil handlers are simply not mounted.
type Deps struct {
	Inventory Inventory
	Join      JoinRenderer // join command and seed ISO; nil until configured
	IPXE      http.Handler // /boot.ipxe and /ipxe/
	NoCloud   http.Handler // /nocloud/
	Extra     map[string]http.Handler
	Metrics   *Metrics // /metrics; nil means not served

	// Images is the image catalog behind /api/v1/images; nil means not served.
	Images ImageCatalog
	// ImageFiles serves /images/<name>[/kernel|/initrd] and /agent/{vmlinuz,initramfs.gz}.
	ImageFiles http.Handler
	// Agent is the installer agent's API under /agent/v1/; nil means not served.
	Agent *Agent
	// Cluster drains and removes deleted nodes; nil when not connected to a cluster.
	Cluster ClusterIntegration
}

// Server is the echo application.
type Server struct {
	cfg  Config
	deps Deps
	echo *echo.Echo
	// machines serves only what booting machines call (scripts, NoCloud, images, the
	// agent API), for a plain-HTTP listener beside an HTTPS operator listener.
	machines *echo.Echo
	log      *slog.Logger
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Inventory == nil {
		return nil, errors.New("web: an inventory is required")
	}
	if !cfg.AdminToken.IsSet() {
		return nil, errors.New("web: an admin token is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClusterConnected == nil {
		cfg.ClusterConnected = func() bool { return false }
	}
	newEcho := func() *echo.Echo {
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.HTTPErrorHandler = errorHandler(cfg.Logger)
		return e
	}
	s := &Server{cfg: cfg, deps: deps, echo: newEcho(), machines: newEcho(), log: cfg.Logger}
	s.machineRoutes(s.machines)
	s.routes()
	if err := s.mountPages(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler is the whole application, for httptest and for http.Server.
func (s *Server) Handler() http.Handler { return s.echo }

// MachineHandler serves only the endpoints booting machines use, never the API or pages.
func (s *Server) MachineHandler() http.Handler { return s.machines }

// machineRoutes mounts what machines call: they speak plain HTTP (most firmware iPXE
// builds carry no CA for Bootyard's certificate) and authenticate by MAC, source
// address and per-boot tokens, never by the admin token.
func (s *Server) machineRoutes(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	if s.deps.IPXE != nil {
		h := echo.WrapHandler(s.deps.IPXE)
		e.GET("/boot.ipxe", h)
		e.GET("/ipxe/*", h)
		e.HEAD("/ipxe/*", h)
	}
	if s.deps.NoCloud != nil {
		e.Any("/nocloud/*", echo.WrapHandler(s.deps.NoCloud))
	}
	s.imageFileRoutes(e)
}

func (s *Server) routes() {
	e := s.echo
	s.machineRoutes(e)
	if s.deps.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.deps.Metrics.Handler()))
	}
	for path, h := range s.deps.Extra {
		e.Any(path, echo.WrapHandler(h))
	}

	api := e.Group("/api/v1", middleware.BodyLimit(fmt.Sprint(maxBody)))
	admin := s.requireAdmin
	api.GET("/nodes", s.listNodes)
	api.POST("/nodes", s.importNode, admin)
	api.GET("/nodes/:ref", s.getNode)
	api.PATCH("/nodes/:ref", s.updateNode, admin)
	api.PUT("/nodes/:ref", s.updateNode, admin)
	api.DELETE("/nodes/:ref", s.deleteNode, admin)
	api.GET("/nodes/:ref/events", s.nodeEvents)
	api.POST("/nodes/:ref/retry", s.retryNode, admin)
	api.GET("/nodes/:ref/join-command", s.joinCommand)
	api.GET("/nodes/:ref/seed.iso", s.seedISO, admin)
	api.GET("/cluster", s.getCluster)
	s.imageAPIRoutes(api)
	api.PUT("/cluster", s.updateCluster, admin)
	api.PATCH("/cluster", s.updateCluster, admin)
	s.bulkRoutes(e)
}

// Serve runs the server on ln until ctx is cancelled, then stops accepting and lets
// in-flight requests finish (bounded by shutdownTimeout). ln may be a TLS listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.echo)
}

// ServeMachines serves MachineHandler on ln, like Serve.
func (s *Server) ServeMachines(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.machines)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No WriteTimeout: image downloads and event streams last long by design.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// shutdownTimeout bounds how long SIGTERM waits for in-flight requests.
const shutdownTimeout = 10 * time.Second
