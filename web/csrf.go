package web

import (
	"crypto/subtle"
	"net/http"

	"github.com/labstack/echo/v4"
)

const (
	// csrfField is the hidden form field every page form carries; csrfHeader is the same
	// token for the few fetch() calls the pages' script makes.
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	// loginCSRFCookie carries the sign-in form's token before there is a session
	// (double-submit), so another site cannot sign a browser in to this one.
	loginCSRFCookie = "bootyard_login"
)

// requireCSRF refuses a state-changing request unless it carries the session's token.
// It runs after requireSession: a request without a session has been sent to /login.
func (u *ui) requireCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Method == http.MethodGet || c.Request().Method == http.MethodHead {
			return next(c)
		}
		got := c.Request().Header.Get(csrfHeader)
		if got == "" {
			got = c.FormValue(csrfField)
		}
		want := currentSession(c).csrf
		if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return u.forbidden(c, "the form's security token is missing or out of date: reload the page and try again")
		}
		return next(c)
	}
}

// loginCSRF returns the token for the sign-in form, setting its cookie if needed.
func (u *ui) loginCSRF(c echo.Context) string {
	if ck, err := c.Cookie(loginCSRFCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	tok := randomToken()
	c.SetCookie(&http.Cookie{Name: loginCSRFCookie, Value: tok, Path: "/login", HttpOnly: true,
		Secure: u.srv.cfg.TLS, SameSite: http.SameSiteStrictMode})
	return tok
}

func (u *ui) checkLoginCSRF(c echo.Context) bool {
	ck, err := c.Cookie(loginCSRFCookie)
	got := c.FormValue(csrfField)
	return err == nil && got != "" && subtle.ConstantTimeCompare([]byte(ck.Value), []byte(got)) == 1
}

// forbidden answers 403 with a page that says what to do; fetch() callers get JSON.
func (u *ui) forbidden(c echo.Context, msg string) error {
	if wantsJSON(c) {
		return c.JSON(http.StatusForbidden, apiError{Error: msg})
	}
	return u.render(c, http.StatusForbidden, "message", messageView{pageView: pageView{Title: "Forbidden"}, Message: msg})
}

func wantsJSON(c echo.Context) bool {
	return c.Request().Header.Get(echo.HeaderAccept) == echo.MIMEApplicationJSON
}
