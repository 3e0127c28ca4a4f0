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
	routes := []struct {
		pattern string
		fn      apiFunc
	}{
		{"GET /devices", h.listDevices},
		{"GET /devices/{id}", h.getDevice},
		{"GET /devices/{id}/keys", h.listKeys},
		{"GET /devices/{id}/ota/reports", h.listOTAReports},
		{"POST /devices/{id}/accept", h.accept},
		{"POST /devices/{id}/reject", h.reject},
		{"POST /devices/{id}/decommission", h.decommission},
		{"PUT /devices/{id}/tags", h.setTags},
		{"POST /devices/{id}/preauthorize", h.preauthorize},
		{"POST /devices/preauthorize", h.preauthorizeBulk},
		{"POST /devices/{id}/call", h.callDevice},
		{"POST /calls", h.fanOut},
		{"GET /calls", h.listCalls},
		{"GET /calls/{id}", h.getCall},
		{"GET /audit", h.audit},
		{"GET /events", h.events},
		{"GET /tokens", h.listTokens},
		{"POST /tokens", h.createToken},
		{"DELETE /tokens/{id}", h.revokeToken},
		{"POST /artifacts", h.uploadArtifact}, // artifacts.go
		{"GET /artifacts", h.listArtifacts},
		{"GET /artifacts/{id}", h.getArtifact},
		{"DELETE /artifacts/{id}", h.deleteArtifact},
		{"PUT /artifacts/{id}/metadata", h.setArtifactMetadata},
		{"GET /release", h.getRelease}, // release.go
		{"PUT /release", h.putRelease},
		{"GET /deployments", h.listDeployments}, // deployments.go
		{"POST /deployments", h.createDeployment},
		{"GET /deployments/{id}", h.getDeployment},
		{"POST /deployments/{id}/pause", h.deploymentAction(svc.PauseDeployment)},
		{"POST /deployments/{id}/resume", h.deploymentAction(svc.ResumeDeployment)},
		{"POST /deployments/{id}/abort", h.deploymentAction(svc.AbortDeployment)},
		{"GET /ota/versions", h.otaVersions},
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		h.mux.Handle(method+" /api/v1"+path, h.wrap(rt.fn))
	}
	return h
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
