package web

import (
	"bytes"
	"embed"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/bootyard/bootyard/node"
)

// The operator's pages: server-rendered html/template, a small script that only enhances
// (dialogs, live updates, reveal on click), every asset embedded because the appliance
// often has no internet. Every action is a form post to /ui/... that calls the same
// inventory operations as the API.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// webSource names the pages in events, as "api" and "cli" name the others.
const webSource = "web"

// ui holds the pages' state: parsed templates and the signed-in sessions.
type ui struct {
	srv       *Server
	inv       Inventory
	join      JoinRenderer
	passwords PasswordStore
	sessions  *sessions
	// loginFailures throttles wrong passwords (see newLoginLimiter).
	loginFailures *loginLimiter
	tmpl          *template.Template
	// pollEvery is how often a live view re-reads the store: machines report progress
	// every few seconds, so once a second is fresh enough and costs one read transaction.
	pollEvery time.Duration
	now       func() time.Time
}

// pageView is what every page template gets.
type pageView struct {
	Title    string
	CSRF     string
	Nav      string // the active navigation entry
	SignedIn bool
	Flash    string
	// ServerTime lets the script tick relative ages against the server's clock, not a
	// browser clock that may be off.
	ServerTime string
}

type messageView struct {
	pageView
	Message string
}

func (s *Server) mountPages() error {
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return err
	}
	version, err := staticVersion(static)
	if err != nil {
		return err
	}
	tmpl, err := template.New("").Funcs(templateFuncs).Funcs(template.FuncMap{
		"static": func(name string) string { return "/ui/static/" + name + "?v=" + version },
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("web: parse page templates: %w", err)
	}
	u := &ui{
		srv:           s,
		inv:           s.deps.Inventory,
		join:          s.deps.Join,
		sessions:      newSessions(s.cfg.SessionTTL),
		loginFailures: newLoginLimiter(),
		tmpl:          tmpl,
		pollEvery:     time.Second,
		now:           func() time.Time { return time.Now().UTC() },
	}
	u.passwords, _ = s.deps.Inventory.(PasswordStore)
	// The read API accepts these sessions too (requireOperator).
	s.sessions = u.sessions

	e := s.echo
	limit := middleware.BodyLimit(fmt.Sprint(maxBody))
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/ui/nodes") })
	e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/ui/nodes") })
	e.GET("/ui/static/*", echo.WrapHandler(http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))), staticHeaders(version))
	e.GET("/login", u.loginPage, pageHeaders)
	e.POST("/login", u.login, pageHeaders, limit)

	page := []echo.MiddlewareFunc{pageHeaders, limit, u.requireSession, u.requireCSRF}
	g := e.Group("/ui")
	g.POST("/logout", u.logout, page...)
	g.GET("/nodes", u.nodesPage, page...)
	g.POST("/nodes", u.importNode, page...)
	u.bulkPageRoutes(g, page)
	g.GET("/nodes/stream", u.streamInventory, page...)
	g.GET("/nodes/:ref", u.nodePage, page...)
	g.GET("/nodes/:ref/stream", u.streamNode, page...)
	g.POST("/nodes/:ref/delete", u.deleteNode, page...)
	g.POST("/nodes/:ref/retry", u.retryNode, page...)
	u.powerPageRoutes(g, page)
	g.POST("/nodes/:ref/join-command", u.revealJoinCommand, page...)
	// The API's own handler: the seed ISO carries the token, so the page offers it as a
	// form post (CSRF-checked) rather than a link a crawler or a prefetch could follow.
	g.POST("/nodes/:ref/seed.iso", s.seedISO, page...)
	g.GET("/cluster", u.clusterPage, page...)
	g.POST("/cluster/token", u.revealClusterToken, page...)
	g.GET("/account", u.accountPage, page...)
	g.POST("/account/password", u.setPassword, page...)
	return nil
}

// pageHeaders keeps pages out of caches and frames and allows only our own script and
// style: with no inline script allowed, an injected <script> cannot run.
func pageHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		return next(c)
	}
}

// staticHeaders lets the browser keep the script and style sheet the pages name: their
// URLs carry the assets' version (?v=, a digest of their content), so a new build is a
// new URL. Re-fetching the script on every page load left a window, as long as that
// round trip, in which the page was drawn but its script not yet running: a click there
// went the no-script way (a full reload with the dialog drawn open, focus not where the
// script puts it). Any other URL (no or an old version) is revalidated every time:
// embedded files have no modification time, so the browser refetches them (they are small).
func staticHeaders(version string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			if c.QueryParam("v") == version {
				h.Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				h.Set("Cache-Control", "no-cache")
			}
			h.Set("X-Content-Type-Options", "nosniff")
			return next(c)
		}
	}
}

// staticVersion is a digest of every static file, for their URLs.
func staticVersion(static fs.FS) (string, error) {
	h := fnv.New64a()
	err := fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("web: read static files: %w", err)
	}
	return strconv.FormatUint(h.Sum64(), 36), nil
}

// render executes a page template into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (u *ui) render(c echo.Context, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := u.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		u.srv.log.Error("render page", slog.String("template", name), slog.Any("err", err))
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// fragment renders a named template to a string, for live updates.
func (u *ui) fragment(name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := u.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return buf.String(), nil
}

func (u *ui) page(c echo.Context, title, nav string) pageView {
	return pageView{Title: title, CSRF: currentSession(c).csrf, Nav: nav, SignedIn: true,
		ServerTime: u.now().Format(time.RFC3339Nano)}
}

var templateFuncs = template.FuncMap{
	"ago":         ago,
	"stamp":       stamp,
	"iso":         iso,
	"stateClass":  func(s node.State) string { return "state-" + string(s) },
	"join":        strings.Join,
	"formatBytes": node.FormatBytes,
}

// ago is a short age ("42s", "5m", "3h", "2d") for tables, where the exact time is in
// the element's title.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// iso is the machine-readable form for <time datetime>, which the page's script reads
// to keep relative ages ticking without asking the server.
func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
