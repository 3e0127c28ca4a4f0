// Package web is Bosun's dashboard: server-rendered templ pages with a
// little htmx, live state over server-sent events, and logins kept in
// PostgreSQL.
//
// Every page lives in its own package under routes/ (handler.go, model.go,
// view.templ) and lists its routes with the least role each needs; New
// mounts them behind one chain that every request passes:
//
//  1. http.CrossOriginProtection refuses cross-origin state-changing requests;
//  2. the session cookie is looked up (fleet.Service.AuthenticateSession);
//  3. the route's role is checked (anonymous GET → /login, POST → 401);
//  4. a state-changing request must carry the session's CSRF token, in the
//     form field "csrf" or the X-CSRF-Token header htmx sends;
//  5. the handler runs, going through fleet.Service, which checks the
//     organisation and role again for the object it touches.
//
// Handlers return errors; an *app.HTTPError is shown with its status and
// message, anything else is a 500 whose text goes to the log only.
package web

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/web/app"
	"github.com/bosunhq/bosun/cloud/internal/web/assets"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/account"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/artifacts"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/audit"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/calls"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/deployments"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/device"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/devices"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/events"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/login"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/overview"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/pending"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/tokens"
	"github.com/bosunhq/bosun/cloud/internal/web/routes/users"
	"github.com/bosunhq/bosun/cloud/internal/web/ui"
)

// Options tune the dashboard. The zero value is ready for use.
type Options struct {
	// SecureCookies sets the Secure attribute on every cookie. false means
	// Secure exactly when the request arrived over TLS; set it when a
	// proxy terminates TLS in front of the cloud.
	SecureCookies bool
	// TrustedOrigins are extra origins (scheme://host[:port]) allowed to
	// send state-changing requests, e.g. the public URL behind a proxy
	// that rewrites Host. nil means same-origin only.
	TrustedOrigins []string
	// MaxBody limits request bodies. Defaults to 1 MiB.
	MaxBody int64
}

// Routes returns every route of the dashboard with its least role, in the
// order they are mounted (the authorisation test walks this list).
func Routes(svc *fleet.Service, logger *slog.Logger, opts Options) []app.Route {
	cookies := login.Cookies{Secure: opts.SecureCookies}
	var rs []app.Route
	rs = append(rs, login.Routes(svc, cookies)...)
	rs = append(rs, overview.Routes(svc)...)
	rs = append(rs, devices.Routes(svc)...)
	rs = append(rs, pending.Routes(svc)...)
	rs = append(rs, device.Routes(svc)...)
	rs = append(rs, calls.Routes(svc)...)
	rs = append(rs, artifacts.Routes(svc)...)
	rs = append(rs, deployments.Routes(svc)...)
	rs = append(rs, audit.Routes(svc)...)
	rs = append(rs, users.Routes(svc)...)
	rs = append(rs, tokens.Routes(svc)...)
	rs = append(rs, account.Routes(svc, cookies)...)
	rs = append(rs, events.Routes(svc, logger)...)
	return rs
}

// New returns the dashboard, to be mounted at "/" next to /api/v1/ and
// /v1/device.
func New(svc *fleet.Service, logger *slog.Logger, opts Options) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	s := &server{svc: svc, log: logger, opts: opts, cookies: login.Cookies{Secure: opts.SecureCookies}}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", assets.Handler())
	for _, rt := range Routes(svc, logger, opts) {
		mux.Handle(rt.Pattern, s.wrap(rt))
	}
	mux.Handle("/", s.wrap(app.Route{Pattern: "/", Handler: func(w http.ResponseWriter, r *http.Request) error {
		return app.Errorf(http.StatusNotFound, "There is no page here.")
	}}))
	cop := http.NewCrossOriginProtection()
	for _, o := range opts.TrustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			logger.Error("dashboard: ignoring trusted origin", "origin", o, "err", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, app.Errorf(http.StatusForbidden, "This request came from another site and was refused."))
	}))
	return securityHeaders(cop.Handler(mux))
}

type server struct {
	svc     *fleet.Service
	log     *slog.Logger
	opts    Options
	cookies login.Cookies
}

// csp allows only the dashboard's own files: no inline script or style, no
// eval (htmx runs with allowEval false), no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// wrap puts a route behind the chain described in the package doc.
func (s *server) wrap(rt app.Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := s.opts.MaxBody
		if rt.MaxBody > 0 {
			limit = rt.MaxBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		ctx := r.Context()
		var sess *fleet.WebSession
		if secret := s.cookies.Session(r); secret != "" {
			ws, err := s.svc.AuthenticateSession(ctx, secret)
			switch {
			case err == nil:
				sess = &ws
			case errors.Is(err, fleet.ErrUnauthenticated):
				s.cookies.Clear(w, r)
			default:
				s.fail(w, r, err)
				return
			}
		}
		ctx = app.WithSession(ctx, sess)
		page := app.Page{Session: sess}
		if r.Method == http.MethodGet && !app.IsHTMX(r) {
			page.Flash = app.TakeFlash(w, r)
		}
		r = r.WithContext(app.WithPage(ctx, page))
		if rt.Role != "" {
			if sess == nil {
				s.needLogin(w, r)
				return
			}
			if !app.RoleAtLeast(sess.Actor.Role, rt.Role) {
				s.fail(w, r, app.Errorf(http.StatusForbidden, "Your role (%s) does not allow this; it needs %s.", sess.Actor.Role, rt.Role))
				return
			}
		}
		if !safeMethod(r.Method) && sess != nil && rt.Role != "" {
			got := r.Header.Get(ui.CSRFHeader)
			if rt.Multipart {
				mr, token, err := csrfPart(r)
				if err != nil {
					s.fail(w, r, err)
					return
				}
				if got == "" {
					got = token
				}
				r = r.WithContext(app.WithMultipart(r.Context(), mr))
			} else if got == "" {
				got = r.PostFormValue(ui.CSRFField)
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRFToken)) != 1 {
				s.fail(w, r, app.Errorf(http.StatusForbidden, "This form has expired. Reload the page and try again."))
				return
			}
		}
		if sess != nil {
			if orgs, err := s.svc.ListOrgs(ctx, sess.Actor); err == nil {
				page.Orgs = orgs
				r = r.WithContext(app.WithPage(r.Context(), page))
			}
		}
		if err := rt.Handler(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// csrfPart reads the first part of a multipart form, which must be the
// CSRF field (forms put ui.CSRF first; browsers send fields in document
// order), and returns the reader of the other parts.
func csrfPart(r *http.Request) (*multipart.Reader, string, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", app.Errorf(http.StatusBadRequest, "This form must be sent as multipart/form-data.")
	}
	expired := app.Errorf(http.StatusForbidden, "This form has expired. Reload the page and try again.")
	p, err := mr.NextPart()
	if err != nil || p.FormName() != ui.CSRFField {
		return nil, "", expired
	}
	b, err := io.ReadAll(io.LimitReader(p, 256))
	if err != nil {
		return nil, "", expired
	}
	return mr, string(b), nil
}

// needLogin sends a visitor without a session to the login page.
func (s *server) needLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.RequestURI()
	if safeMethod(r.Method) && !app.IsHTMX(r) {
		http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	if app.IsHTMX(r) {
		w.Header().Set("HX-Redirect", "/login")
	}
	s.fail(w, r, app.Errorf(http.StatusUnauthorized, "Your session has ended. Please log in again."))
}

// fail shows an error: an HTTPError's message with its status, anything
// else as a 500 whose text goes only to the log.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	err = app.FromFleet(err)
	var he *app.HTTPError
	if !errors.As(err, &he) {
		s.log.Error("dashboard", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &app.HTTPError{Status: http.StatusInternalServerError, Msg: "Something went wrong on our side; it has been logged."}
	} else if he.Status >= 500 {
		s.log.Error("dashboard", "method", r.Method, "path", r.URL.Path, "err", he)
	} else if he.Err != nil {
		s.log.Debug("dashboard", "method", r.Method, "path", r.URL.Path, "status", he.Status, "err", he.Err)
	}
	if app.IsHTMX(r) {
		app.RenderStatus(w, r, he.Status, ui.ErrorFragment(he.Msg))
		return
	}
	p := app.NewPage(r, http.StatusText(he.Status), "")
	app.RenderStatus(w, r, he.Status, ui.ErrorPage(p, he.Status, he.Msg))
}
