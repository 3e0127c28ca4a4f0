// Package app is what every dashboard page shares: the request's session,
// the page model the layout renders, handlers that return errors, and the
// HTTPError that carries a status and a message safe to show.
//
// It exists so that the page packages (routes/<page>) and the layout (ui)
// can share these types without importing package web, which assembles them.
package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// HandlerFunc is a page handler. A returned *HTTPError is shown to the user
// with its status; any other error is a 500 whose text only goes to the log.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route is one route of a page package.
type Route struct {
	// Pattern is a Go 1.22 ServeMux pattern with its method, e.g.
	// "POST /devices/{id}/accept".
	Pattern string
	// Role is the least role allowed; "" means no login is needed. The
	// fleet service checks again with the organisation of the object.
	Role fleet.Role
	// Handler serves the route.
	Handler HandlerFunc
	// Multipart marks a form post whose body is multipart/form-data read
	// as a stream (file uploads): the chain checks the CSRF token in the
	// form's first part, which must be the field "csrf", and hands the
	// rest to the handler unread (MultipartFrom), so that no file is
	// parsed into memory or temporary files before the handler sees it.
	Multipart bool
	// MaxBody limits the request body. 0 means the dashboard's
	// Options.MaxBody (1 MiB by default).
	MaxBody int64
}

// HTTPError is an error with a status and a message safe to show.
type HTTPError struct {
	Status int
	Msg    string // shown to the user
	Err    error  // logged, never shown
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Msg)
}

func (e *HTTPError) Unwrap() error { return e.Err }

// Errorf returns an HTTPError with a formatted message.
func Errorf(status int, format string, args ...any) *HTTPError {
	return &HTTPError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// FromFleet turns the errors of fleet.Service into what the user sees: an
// error with a public message (fleet.PublicMessage) shows it; the others a
// fixed text for their kind. Anything else stays an internal error (a 500
// whose text only goes to the log): the text of an error's chain never
// reaches the page.
func FromFleet(err error) error {
	var he *HTTPError
	var mbe *http.MaxBytesError
	pub, hasPub := fleet.PublicMessage(err)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return he
	case errors.Is(err, fleet.ErrThrottled):
		if !hasPub {
			pub = "Too many failed logins. Try again in a few minutes."
		}
		return &HTTPError{Status: http.StatusTooManyRequests, Msg: pub, Err: err}
	case hasPub && (errors.Is(err, fleet.ErrInvalid) || errors.Is(err, fleet.ErrConflict)):
		return &HTTPError{Status: http.StatusUnprocessableEntity, Msg: pub, Err: err}
	case errors.As(err, &mbe):
		return &HTTPError{Status: http.StatusRequestEntityTooLarge, Msg: "The form is too large.", Err: err}
	case errors.Is(err, fleet.ErrNotFound):
		return &HTTPError{Status: http.StatusNotFound, Msg: "Not found.", Err: err}
	case errors.Is(err, fleet.ErrForbidden):
		return &HTTPError{Status: http.StatusForbidden, Msg: "Your role does not allow this.", Err: err}
	case errors.Is(err, fleet.ErrUnauthenticated):
		return &HTTPError{Status: http.StatusUnauthorized, Msg: "Please log in.", Err: err}
	case errors.Is(err, fleet.ErrInvalid):
		return &HTTPError{Status: http.StatusUnprocessableEntity, Msg: "The input is not valid.", Err: err}
	case errors.Is(err, fleet.ErrConflict):
		return &HTTPError{Status: http.StatusUnprocessableEntity, Msg: "The current state does not allow this.", Err: err}
	case fleet.Unavailable(err):
		return &HTTPError{Status: http.StatusServiceUnavailable, Msg: "The database is unavailable. Try again in a moment.", Err: err}
	}
	return err
}

// PublicText is what a page may show of an error of fleet.Service: its
// public message, or the fixed text FromFleet gives its kind ("Something
// went wrong on our side." for an internal error). Use it wherever a page
// puts an error into its own markup instead of returning it.
func PublicText(err error) string {
	var he *HTTPError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &he):
		return he.Msg
	}
	if msg, ok := fleet.PublicMessage(err); ok {
		return msg
	}
	if errors.As(FromFleet(err), &he) {
		return he.Msg
	}
	return "Something went wrong on our side; it has been logged."
}

type ctxKey int

const (
	sessionKey ctxKey = iota
	pageKey
	multipartKey
)

// WithMultipart returns ctx carrying the rest of a Multipart route's form
// (after its CSRF part).
func WithMultipart(ctx context.Context, mr *multipart.Reader) context.Context {
	return context.WithValue(ctx, multipartKey, mr)
}

// MultipartFrom returns the rest of a Multipart route's form, nil on any
// other route.
func MultipartFrom(r *http.Request) *multipart.Reader {
	mr, _ := r.Context().Value(multipartKey).(*multipart.Reader)
	return mr
}

// WithSession returns ctx carrying the request's session.
func WithSession(ctx context.Context, s *fleet.WebSession) context.Context {
	return context.WithValue(ctx, sessionKey, s)
}

// SessionFrom returns the request's session, nil when nobody is logged in.
func SessionFrom(ctx context.Context) *fleet.WebSession {
	s, _ := ctx.Value(sessionKey).(*fleet.WebSession)
	return s
}

// Actor returns the actor of the request's session (the zero Actor, which
// fleet refuses everything, when nobody is logged in).
func Actor(r *http.Request) fleet.Actor {
	if s := SessionFrom(r.Context()); s != nil {
		return s.Actor
	}
	return fleet.Actor{}
}

// ViewOrg is the organisation the request looks at (0: every organisation,
// for a super user who chose none).
func ViewOrg(r *http.Request) int64 {
	if s := SessionFrom(r.Context()); s != nil {
		return s.ViewOrg
	}
	return -1
}

// Page is what the layout needs on every page.
type Page struct {
	Title   string
	Nav     string // which navigation entry is current
	Session *fleet.WebSession
	Orgs    []fleet.Org // for a super user's organisation switcher
	Flash   string
	Error   string // a failure message shown above the page
	Path    string
}

// WithPage returns ctx carrying the base page model of the request.
func WithPage(ctx context.Context, p Page) context.Context {
	return context.WithValue(ctx, pageKey, p)
}

// NewPage returns the page model for r with a title and a navigation entry.
func NewPage(r *http.Request, title, nav string) Page {
	p, _ := r.Context().Value(pageKey).(Page)
	p.Title, p.Nav = title, nav
	p.Session = SessionFrom(r.Context())
	p.Path = r.URL.Path
	return p
}

// Can reports whether the page's user has at least role.
func (p Page) Can(role fleet.Role) bool {
	return p.Session != nil && RoleAtLeast(p.Session.Actor.Role, role)
}

// CSRF is the session's CSRF token ("" when logged out).
func (p Page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.CSRFToken
}

// OrgName names an organisation for display.
func (p Page) OrgName(id int64) string {
	for _, o := range p.Orgs {
		if o.ID == id {
			return o.Name
		}
	}
	return "#" + strconv.FormatInt(id, 10)
}

var rank = map[fleet.Role]int{fleet.RoleViewer: 1, fleet.RoleOperator: 2, fleet.RoleAdmin: 3, fleet.RoleSuper: 4}

// RoleAtLeast reports whether have is min or more powerful.
func RoleAtLeast(have, min fleet.Role) bool {
	return rank[have] > 0 && rank[have] >= rank[min]
}

// IsHTMX reports whether r was sent by htmx (and expects a fragment).
func IsHTMX(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Boosted") != "true"
}

// Render writes a component as HTML with status 200, or only the named
// fragments of it when fragments are given.
func Render(w http.ResponseWriter, r *http.Request, c templ.Component, fragments ...any) error {
	return RenderStatus(w, r, http.StatusOK, c, fragments...)
}

// RenderStatus is Render with a status.
func RenderStatus(w http.ResponseWriter, r *http.Request, status int, c templ.Component, fragments ...any) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Vary", "HX-Request")
	w.WriteHeader(status)
	if len(fragments) > 0 {
		return templ.RenderFragments(r.Context(), w, c, fragments...)
	}
	return c.Render(r.Context(), w)
}

// Redirect answers a form post with 303 See Other to url, leaving a flash
// message for the next page.
func Redirect(w http.ResponseWriter, r *http.Request, url, flash string) error {
	if flash != "" {
		SetFlash(w, r, flash)
	}
	http.Redirect(w, r, url, http.StatusSeeOther)
	return nil
}

const flashCookie = "bosun_flash"

// SetFlash leaves a one-line message for the next page the browser shows.
func SetFlash(w http.ResponseWriter, r *http.Request, msg string) {
	if len(msg) > 300 {
		msg = msg[:300]
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: "/", MaxAge: 60,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// TakeFlash reads and clears the flash message.
func TakeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	msg, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return ""
	}
	return string(msg)
}

// Now is the clock of Ago; snapshot tests fix it.
var Now = time.Now

// Ago formats how long ago t was, for people.
func Ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := Now().Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// Stamp formats a time exactly (UTC), for titles and tables.
func Stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
