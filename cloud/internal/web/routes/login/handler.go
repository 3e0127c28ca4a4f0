// Package login is the login and logout of the dashboard.
//
// A login checks the password with fleet (argon2id), counts failures for
// throttling (per email and client address, and per address: see
// fleet.Login; a refusal says when to retry, in the page and in
// Retry-After), ends the browser's previous session and starts a new one
// with a fresh secret (so a session id planted before login is worthless). The
// login form carries its own CSRF token, matched against a short-lived
// cookie, because there is no session yet to hold one.
package login

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
)

// Routes are the login page, the login form and logout.
func Routes(svc *fleet.Service, c Cookies) []app.Route {
	h := &handler{svc: svc, c: c}
	return []app.Route{
		{Pattern: "GET /login", Handler: h.form},
		{Pattern: "POST /login", Handler: h.login},
		{Pattern: "POST /logout", Role: fleet.RoleViewer, Handler: h.logout},
	}
}

type handler struct {
	svc *fleet.Service
	c   Cookies
}

// SafeNext returns next when it is a path on this site, else "/".
func SafeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func (h *handler) form(w http.ResponseWriter, r *http.Request) error {
	return h.render(w, r, http.StatusOK, "", r.URL.Query().Get("next"), "")
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, email, next, msg string) error {
	tok := make([]byte, 24)
	rand.Read(tok)
	token := base64.RawURLEncoding.EncodeToString(tok)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: token, Path: "/login", MaxAge: 3600, HttpOnly: true,
		Secure: h.c.secure(r), SameSite: http.SameSiteStrictMode})
	p := app.NewPage(r, "Log in", "")
	p.Session = nil
	p.Error = msg
	return app.RenderStatus(w, r, status, View(Model{Page: p, Email: email, Next: SafeNext(next), Token: token}))
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return app.FromFleet(err)
	}
	email, next := r.PostForm.Get("email"), r.PostForm.Get("next")
	ck, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("login_token"))) != 1 {
		return h.render(w, r, http.StatusForbidden, email, next, "The login form expired. Please try again.")
	}
	secret, _, err := h.svc.Login(r.Context(), fleet.LoginRequest{
		Email: email, Password: r.PostForm.Get("password"),
		RemoteIP: clientIP(r), UserAgent: r.UserAgent(), Replace: h.c.Session(r),
	})
	var te *fleet.ThrottledError
	switch {
	case errors.Is(err, fleet.ErrUnauthenticated):
		return h.render(w, r, http.StatusUnauthorized, email, next, "Wrong email or password.")
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfterSeconds()))
		return h.render(w, r, http.StatusTooManyRequests, email, next, te.PublicMessage())
	case err != nil:
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: "/login", MaxAge: -1})
	h.c.SetSession(w, r, secret)
	http.Redirect(w, r, SafeNext(next), http.StatusSeeOther)
	return nil
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Logout(r.Context(), h.c.Session(r)); err != nil {
		return err
	}
	h.c.Clear(w, r)
	if app.IsHTMX(r) {
		w.Header().Set("HX-Redirect", "/login")
		return nil
	}
	return app.Redirect(w, r, "/login", "You are logged out.")
}
