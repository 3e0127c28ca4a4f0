// Package api serves Bosun's JSON HTTP API under /api/v1 for the bosun CLI
// and scripts: devices, calls (single, queued and fan-out), the audit log,
// live events (server-sent events) and API tokens.
//
// Every request carries an API token (Authorization: Bearer bsn_...) and
// every handler goes through fleet.Service, which checks organisation and
// role. Handlers return error: an *HTTPError carries an API error code and a
// message safe to show; any other error is a 500 whose text only reaches the
// log. The shapes and error codes live in package wire.
package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// New returns the handler for everything under /api/v1/. The server mounts
// it at "/api/v1/" without stripping the prefix.
func New(svc *fleet.Service, logger *slog.Logger) http.Handler {
	return newHandler(svc, logger, nil)
}

// options tunes the handler; the zero value means the defaults.
type options struct {
	// Heartbeat is how often GET /events writes a comment line so proxies
	// keep the stream open. Defaults to 15s.
	Heartbeat time.Duration
	// MaxBody limits request bodies. Defaults to 1 MiB.
	MaxBody int64
	// WriteTimeout bounds each write of a stream (events, fan-out); a client
	// that does not read is cut off. Defaults to 10s.
	WriteTimeout time.Duration
	// MaxEventStream bounds how long one GET /events lasts; the client then
	// reconnects (SSE "retry"), which also spreads streams over replicas
	// behind a load balancer. Defaults to 1h.
	MaxEventStream time.Duration
}

// Limits of request fields.
const (
	maxCallTimeout = fleet.MaxCallTimeout
	maxCallTTL     = fleet.MaxCallTTL
	maxFanOutIDs   = 1000
	maxTokenName   = 100
	maxLimit       = 500
)

type handler struct {
	svc  *fleet.Service
	log  *slog.Logger
	opts options
	mux  *http.ServeMux
}

// apiFunc is an authenticated handler.
type apiFunc func(w http.ResponseWriter, r *http.Request, a fleet.Actor) error

func newHandler(svc *fleet.Service, logger *slog.Logger, o *options) *handler {
	h := &handler{svc: svc, log: logger, mux: http.NewServeMux()}
	if o != nil {
		h.opts = *o
	}
	if h.opts.Heartbeat <= 0 {
		h.opts.Heartbeat = 15 * time.Second
	}
	if h.opts.MaxBody <= 0 {
		h.opts.MaxBody = 1 << 20
	}
	if h.opts.WriteTimeout <= 0 {
		h.opts.WriteTimeout = 10 * time.Second
	}
	if h.opts.MaxEventStream <= 0 {
		h.opts.MaxEventStream = time.Hour
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for _, rt := range h.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		h.mux.Handle(method+" /api/v1"+path, h.wrap(rt.fn))
	}
	return h
}

// route is one endpoint: its pattern under /api/v1, the least role
// docs/api.md promises for it and its handler. The role is not checked
// here: fleet.Service checks it, with the object's organisation, and
// e2e's TestHostileWeb proves that the two agree.
type route struct {
	pattern string
	role    fleet.Role
	fn      apiFunc
}

// routes lists every endpoint in the order they are mounted. h.svc may be
// nil (Routes only reads the patterns and roles).
func (h *handler) routes() []route {
	return []route{
		{"GET /devices", fleet.RoleViewer, h.listDevices},
		{"GET /devices/{id}", fleet.RoleViewer, h.getDevice},
		{"GET /devices/{id}/keys", fleet.RoleViewer, h.listKeys},
		{"GET /devices/{id}/ota/reports", fleet.RoleViewer, h.listOTAReports},
		{"POST /devices/{id}/accept", fleet.RoleOperator, h.accept},
		{"POST /devices/{id}/reject", fleet.RoleOperator, h.reject},
		{"POST /devices/{id}/decommission", fleet.RoleAdmin, h.decommission},
		{"PUT /devices/{id}/tags", fleet.RoleOperator, h.setTags},
		{"POST /devices/{id}/preauthorize", fleet.RoleOperator, h.preauthorize},
		{"POST /devices/preauthorize", fleet.RoleOperator, h.preauthorizeBulk},
		{"POST /devices/{id}/call", fleet.RoleOperator, h.callDevice},
		{"POST /calls", fleet.RoleOperator, h.fanOut},
		{"GET /calls", fleet.RoleViewer, h.listCalls},
		{"GET /calls/{id}", fleet.RoleViewer, h.getCall},
		{"GET /audit", fleet.RoleViewer, h.audit},
		{"GET /events", fleet.RoleViewer, h.events},
		{"GET /tokens", fleet.RoleViewer, h.listTokens},
		{"POST /tokens", fleet.RoleViewer, h.createToken},
		{"DELETE /tokens/{id}", fleet.RoleViewer, h.revokeToken},
		{"POST /artifacts", fleet.RoleOperator, h.uploadArtifact}, // artifacts.go
		{"GET /artifacts", fleet.RoleViewer, h.listArtifacts},
		{"GET /artifacts/{id}", fleet.RoleViewer, h.getArtifact},
		{"DELETE /artifacts/{id}", fleet.RoleOperator, h.deleteArtifact},
		{"PUT /artifacts/{id}/metadata", fleet.RoleOperator, h.setArtifactMetadata},
		{"GET /release", fleet.RoleViewer, h.getRelease}, // release.go
		{"PUT /release", fleet.RoleOperator, h.putRelease},
		{"GET /deployments", fleet.RoleViewer, h.listDeployments}, // deployments.go
		{"POST /deployments", fleet.RoleOperator, h.createDeployment},
		{"GET /deployments/{id}", fleet.RoleViewer, h.getDeployment},
		{"POST /deployments/{id}/pause", fleet.RoleOperator, h.deploymentAction(h.svc.PauseDeployment)},
		{"POST /deployments/{id}/resume", fleet.RoleOperator, h.deploymentAction(h.svc.ResumeDeployment)},
		{"POST /deployments/{id}/abort", fleet.RoleOperator, h.deploymentAction(h.svc.AbortDeployment)},
		{"GET /ota/versions", fleet.RoleViewer, h.otaVersions},
	}
}

// Route is one endpoint of the API as docs/api.md lists it.
type Route struct {
	Pattern string     // "METHOD /api/v1/path", a Go 1.22 ServeMux pattern
	Role    fleet.Role // the least role that may use it
}

// Routes lists every endpoint of the API, in the order they are mounted.
// The dashboard's route test writes them, with its own, to
// cloud/internal/web/testdata/routes.txt and checks docs/api.md lists them.
func Routes() []Route {
	var h handler
	var rs []Route
	for _, rt := range h.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		rs = append(rs, Route{Pattern: method + " /api/v1" + path, Role: rt.role})
	}
	return rs
}

// ServeHTTP routes; an unknown route or method gets a JSON error too.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fallback, pattern := h.mux.Handler(r)
	if pattern != "" {
		h.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux decide between 404 and 405 (and the Allow header), then
	// answer in our format.
	rec := &statusRecorder{header: http.Header{}}
	fallback.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		h.writeError(w, r, &HTTPError{Code: wire.CodeMethodNotAllowed, Msg: r.Method + " is not allowed here"})
	case http.StatusNotFound, 0:
		h.writeError(w, r, &HTTPError{Code: wire.CodeNotFound, Msg: "no such endpoint"})
	default: // a redirect that cleans the path
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
	}
}

// wrap authenticates the request, runs fn and answers its error.
func (h *handler) wrap(fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := h.authenticate(r)
		if err == nil {
			err = fn(w, r, a)
		}
		if err != nil {
			h.writeError(w, r, err)
		}
	})
}

func (h *handler) authenticate(r *http.Request) (fleet.Actor, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return fleet.Actor{}, &HTTPError{Code: wire.CodeUnauthenticated, Msg: "missing API token: send Authorization: Bearer bsn_..."}
	}
	return h.svc.AuthenticateToken(r.Context(), tok)
}

// writeError answers err as {"error":{...}} and logs what the client does
// not see.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	he := toHTTPError(err)
	status := he.Status()
	switch {
	case clientGone(r, err):
		h.log.DebugContext(r.Context(), "api: client went away", "method", r.Method, "path", r.URL.Path)
	case status >= 500:
		h.log.ErrorContext(r.Context(), "api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		h.log.DebugContext(r.Context(), "api: request rejected", "method", r.Method, "path", r.URL.Path, "code", he.Code, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bosun"`)
	}
	writeJSON(w, status, wire.ErrorBody{Error: wire.ErrorDetail{Code: he.Code, Message: he.Msg, Fingerprints: he.Fingerprints}})
}

// statusRecorder captures what the mux's own 404/405 handler would write.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
func (s *statusRecorder) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return len(b), nil
}
