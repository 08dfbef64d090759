package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

const (
	sessionCookie = "bootyard_session"
	// adminUser is the one account: Bootyard has a single operator role.
	adminUser = "admin"
	// defaultSessionTTL is the idle time after which a browser must log in again: a working
	// day, so a page left open overnight on a shared console does not stay signed in.
	defaultSessionTTL = 12 * time.Hour
	// maxSessions bounds memory: logins past it push out the least recently used session.
	maxSessions = 256
)

// PasswordStore keeps the bcrypt hash of the admin's web password, once one is set. The
// store implements it; the web login falls back to the admin token alone without it.
type PasswordStore interface {
	AdminPasswordHash(ctx context.Context) ([]byte, error) // nil when never set
	SetAdminPasswordHash(ctx context.Context, hash []byte) error
}

// session is one signed-in browser. Sessions live in memory: a restart signs everyone
// out, which is the safe direction for an appliance holding a cluster join token.
type session struct {
	csrf     string
	lastUsed time.Time
}

// sessions maps the SHA-256 of a cookie value to its session, so a memory dump or a
// debug print of the map does not hand out usable cookies.
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*session
	ttl  time.Duration
	now  func() time.Time
}

func newSessions(ttl time.Duration) *sessions {
	if ttl <= 0 {
		ttl = defaultSessionTTL
	}
	return &sessions{byID: make(map[[32]byte]*session), ttl: ttl, now: time.Now}
}

// randomToken is 32 bytes from crypto/rand, URL-safe base64.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux (Go ≥ 1.24 panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns the cookie value.
func (ss *sessions) create() (id string, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	var oldestKey [32]byte
	var oldest *session
	for k, v := range ss.byID {
		if now.Sub(v.lastUsed) > ss.ttl {
			delete(ss.byID, k)
			continue
		}
		if oldest == nil || v.lastUsed.Before(oldest.lastUsed) {
			oldestKey, oldest = k, v
		}
	}
	if len(ss.byID) >= maxSessions && oldest != nil {
		delete(ss.byID, oldestKey)
	}
	id = randomToken()
	s = &session{csrf: randomToken(), lastUsed: now}
	ss.byID[sha256.Sum256([]byte(id))] = s
	return id, s
}

// lookup returns the live session for a cookie value and refreshes its idle timer.
func (ss *sessions) lookup(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	key := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[key]
	if !ok {
		return session{}, false
	}
	now := ss.now()
	if now.Sub(s.lastUsed) > ss.ttl {
		delete(ss.byID, key)
		return session{}, false
	}
	s.lastUsed = now
	return *s, true
}

func (ss *sessions) destroy(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, sha256.Sum256([]byte(id)))
}

// sessionKey is where requireSession leaves the session for handlers.
const sessionKey = "bootyard.session"

// currentSession is the session requireSession found (zero outside /ui).
func currentSession(c echo.Context) session {
	s, _ := c.Get(sessionKey).(session)
	return s
}

// requireSession lets only signed-in browsers through. Others are sent to the login page,
// which remembers where they were going.
func (u *ui) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(sessionCookie)
		if err == nil {
			if s, ok := u.sessions.lookup(ck.Value); ok {
				c.Set(sessionKey, s)
				return next(c)
			}
		}
		target := "/login"
		if c.Request().Method == http.MethodGet {
			target += "?next=" + url.QueryEscape(c.Request().URL.RequestURI())
		}
		return c.Redirect(http.StatusSeeOther, target)
	}
}

func (u *ui) setSessionCookie(c echo.Context, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   u.srv.cfg.TLS,
		// Strict: the cookie never rides on a request another site starts, which is the
		// first line against CSRF; the per-session token is the second.
		SameSite: http.SameSiteStrictMode,
	})
}

type loginView struct {
	pageView
	Next  string
	Error string
}

func (u *ui) loginPage(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		if _, ok := u.sessions.lookup(ck.Value); ok {
			return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
		}
	}
	return u.renderLogin(c, http.StatusOK, c.QueryParam("next"), "")
}

func (u *ui) renderLogin(c echo.Context, status int, next, msg string) error {
	v := loginView{pageView: pageView{Title: "Sign in", CSRF: u.loginCSRF(c)}, Next: next, Error: msg}
	return u.render(c, status, "login", v)
}

func (u *ui) login(c echo.Context) error {
	if !u.checkLoginCSRF(c) {
		return u.forbidden(c, "the sign-in form expired or was not sent by this page: reload it and try again")
	}
	next := c.FormValue("next")
	// The budget is this source's own: others' failures never refuse a right password here.
	src := loginSourceKey(c.RealIP())
	if !u.loginFailures.allowed(src) {
		u.srv.log.Warn("web sign-in throttled", slog.String("remote", c.RealIP()))
		return u.renderLogin(c, http.StatusTooManyRequests, next, "Too many wrong passwords from this address: wait a few seconds and try again.")
	}
	user, password := c.FormValue("username"), c.FormValue("password")
	if user != adminUser || !u.passwordOK(c.Request().Context(), password) {
		u.loginFailures.failed(src)
		u.srv.log.Warn("web sign-in refused", slog.String("user", user), slog.String("remote", c.RealIP()))
		return u.renderLogin(c, http.StatusUnauthorized, next, "Wrong user name or password.")
	}
	id, _ := u.sessions.create()
	u.setSessionCookie(c, id, 0)
	u.srv.log.Info("web sign-in", slog.String("user", user), slog.String("remote", c.RealIP()))
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

// passwordOK accepts the admin token, and the password set through the account page if
// there is one. The token stays valid so an operator who forgets the password can still
// get in with what `bootyard serve` wrote to the data directory.
func (u *ui) passwordOK(ctx context.Context, password string) bool {
	if password == "" {
		return false
	}
	tokenOK := subtle.ConstantTimeCompare([]byte(password), []byte(u.srv.cfg.AdminToken.Reveal())) == 1
	if tokenOK || u.passwords == nil {
		return tokenOK
	}
	hash, err := u.passwords.AdminPasswordHash(ctx)
	if err != nil {
		u.srv.log.Error("read admin password hash", slog.Any("err", err))
		return false
	}
	return hash != nil && bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

func (u *ui) logout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		u.sessions.destroy(ck.Value)
	}
	u.setSessionCookie(c, "", -1)
	return c.Redirect(http.StatusSeeOther, "/login")
}

// safeNext keeps post-login redirects on this site's pages: an absolute or
// scheme-relative URL in ?next= would make the login form an open redirect.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/nodes"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/ui/nodes"
	}
	return next
}

// minPasswordLen is the shortest password the account page accepts: bcrypt is slow to
// check but a short password is guessed in few tries all the same.
const minPasswordLen = 12

var errPasswordsUnavailable = errors.New("this inventory cannot store a password; sign in with the admin token")
