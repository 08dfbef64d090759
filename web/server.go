// Package web is the operator's side of Bootyard's HTTP: the REST API under /api/v1 and
// the inventory pages. What machines call is package machine's.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
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
	// MetricsToken, when set, is a bearer token that reads /metrics and nothing else;
	// without it /metrics needs the admin token.
	MetricsToken node.Secret
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is believed; empty
	// means every client is direct and the socket's peer is its address.
	TrustedProxies []netip.Prefix
	// BodyReadTimeout bounds how long a request body may take to arrive; 0 means 30 s.
	BodyReadTimeout time.Duration
	// ImageUploadLimit is the largest image upload accepted, in bytes; 0 means 64 GiB.
	ImageUploadLimit int64
	// Ready gates /readyz (the store's caches have synced); nil means always ready.
	Ready func() bool
}

// Deps are the services the server mounts. Nil handlers are simply not mounted.
type Deps struct {
	Inventory Inventory
	Join      JoinRenderer // join command and seed ISO; nil until configured
	Metrics   *Metrics     // /metrics; nil means not served

	// Images is the image catalog behind /api/v1/images; nil means not served.
	Images ImageCatalog
	// Cluster drains and removes deleted nodes; nil when not connected to a cluster.
	Cluster ClusterIntegration
	// JoinTurns says which server holds the join turn, for the cluster view; nil: none shown.
	JoinTurns JoinTurnHolder
	// Power drives machines through their BMCs; nil: no power API or buttons.
	Power Power
	// PowerStates is the BMC poller's view, for the nodes table; nil: not shown.
	PowerStates PowerStates
}

// Server is the echo application.
type Server struct {
	// sessions are the signed-in browsers, for the pages and the read API.
	sessions *sessions

	cfg  Config
	deps Deps
	echo *echo.Echo
	log  *slog.Logger
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Inventory == nil {
		return nil, errors.New("web: an inventory is required")
	}
	if len(cfg.AdminToken.Reveal()) < MinAdminTokenLen {
		return nil, fmt.Errorf("web: an admin token of at least %d characters is required", MinAdminTokenLen)
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = defaultBodyReadTimeout
	}
	if cfg.ImageUploadLimit <= 0 {
		cfg.ImageUploadLimit = defaultImageUploadLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ClusterConnected == nil {
		cfg.ClusterConnected = func() bool { return false }
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	s := &Server{cfg: cfg, deps: deps, echo: e, log: cfg.Logger}
	s.routes()
	if err := s.mountPages(); err != nil {
		return nil, err
	}
	s.guardEdge()
	return s, nil
}

// Handler is the operator's application (API, pages, /healthz, /metrics), for httptest
// and for http.Server.
func (s *Server) Handler() http.Handler { return s.echo }

func (s *Server) routes() {
	e := s.echo
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	if s.deps.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.deps.Metrics.Handler()), s.requireMetricsReader)
	}

	// Every /api/v1 call, reads too, needs the admin token or a web session.
	api := e.Group("/api/v1", s.requireOperator, middleware.BodyLimit(fmt.Sprint(maxBody)))
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
	s.hardwareRoutes(api)
	api.GET("/cluster", s.getCluster)
	s.imageAPIRoutes(api)
	api.PUT("/cluster", s.updateCluster, admin)
	api.PATCH("/cluster", s.updateCluster, admin)
	s.bulkRoutes(e)
	s.powerRoutes(api, admin)
}
