package web

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/bootyard/bootyard/node"
)

type clusterPageView struct {
	pageView
	Cluster    clusterView
	InstallURL string
	// MachineURL is where machines fetch scripts and NoCloud data: plain HTTP even when
	// this page is served over TLS, which the page says.
	MachineURL string
	TLS        bool
	// Table is the fault-tolerance table around the current count, as the LLMOS docs
	// print it: the rows for 1 to 7 servers, with the current and next counts marked.
	Table []quorumRow
}

type quorumRow struct {
	node.Quorum
	Current, Next bool
	// Even rows tolerate no more failures than Prev servers do: the even-count advice.
	Even bool
	Prev int
}

func (u *ui) clusterPage(c echo.Context) error {
	ctx := c.Request().Context()
	settings, err := u.inv.ClusterSettings(ctx)
	if err != nil {
		return err
	}
	nodes, err := u.inv.QuorumNodes(ctx)
	if err != nil {
		return err
	}
	// The API's own view, unrevealed: the same numbers and warnings `cluster show` prints.
	cv := u.srv.clusterView(ctx, settings, nodes, false)
	v := clusterPageView{pageView: u.page(c, "Cluster", "cluster"), Cluster: cv, InstallURL: settings.EffectiveInstallURL(),
		MachineURL: u.srv.cfg.MachineURL, TLS: u.srv.cfg.TLS}
	for n := 1; n <= max(7, cv.Next.Servers); n++ {
		v.Table = append(v.Table, quorumRow{Quorum: node.QuorumFor(n), Current: n == cv.Quorum.Servers, Next: n == cv.Next.Servers,
			Even: n%2 == 0, Prev: n - 1})
	}
	return u.render(c, http.StatusOK, "cluster", v)
}

// revealClusterToken answers the cluster page's explicit reveal click.
func (u *ui) revealClusterToken(c echo.Context) error {
	settings, err := u.inv.ClusterSettings(c.Request().Context())
	if err != nil {
		return err
	}
	u.srv.log.Info("join token revealed", slog.String("remote", c.RealIP()))
	tok := settings.Token.Reveal()
	if wantsJSON(c) {
		return c.JSON(http.StatusOK, map[string]any{"token": tok, "revealed": true})
	}
	return u.render(c, http.StatusOK, "revealed", revealedView{pageView: u.page(c, "Join token", "cluster"),
		What: "Join token", Value: tok, Back: "/ui/cluster"})
}

type accountView struct {
	pageView
	Available bool
	Errors    map[string]string
}

func (u *ui) accountPage(c echo.Context) error {
	v := accountView{pageView: u.page(c, "Account", "account"), Available: u.passwords != nil}
	if c.QueryParam("saved") != "" {
		v.Flash = "Password saved. The admin token still signs in too."
	}
	return u.render(c, http.StatusOK, "account", v)
}

// setPassword stores a bcrypt hash of a new web password; the current password (or the
// admin token) must be given, so a session left open cannot be turned into a lock-out.
func (u *ui) setPassword(c echo.Context) error {
	ctx := c.Request().Context()
	v := accountView{pageView: u.page(c, "Account", "account"), Available: u.passwords != nil, Errors: map[string]string{}}
	if u.passwords == nil {
		v.Errors["new"] = errPasswordsUnavailable.Error()
		return u.render(c, http.StatusNotImplemented, "account", v)
	}
	current, next, again := c.FormValue("current"), c.FormValue("new"), c.FormValue("again")
	switch {
	case !u.passwordOK(ctx, current):
		v.Errors["current"] = "That is not the current password or the admin token."
	case len(next) < minPasswordLen:
		v.Errors["new"] = fmt.Sprintf("Use at least %d characters.", minPasswordLen)
	case len(next) > 72:
		// bcrypt ignores everything past 72 bytes; refuse rather than silently truncate.
		v.Errors["new"] = "Use at most 72 bytes."
	case next != again:
		v.Errors["again"] = "The two new passwords differ."
	}
	if len(v.Errors) > 0 {
		return u.render(c, http.StatusUnprocessableEntity, "account", v)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	if err := u.passwords.SetAdminPasswordHash(ctx, hash); err != nil {
		return err
	}
	u.srv.log.Info("web password changed", slog.String("remote", c.RealIP()))
	return c.Redirect(http.StatusSeeOther, "/ui/account?saved=1")
}
