package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/metrics"
)

// How /metrics is protected. The metrics describe the whole replica,
// every organisation at once (how many devices, how many calls), so on the
// main listener they are served only to an API token of a super user:
//
//	no Authorization, or a token that is malformed, unknown or revoked → 401
//	a token of an admin, operator or viewer                            → 403
//	a super user's token                                               → 200
//
// Config.MetricsListen adds a listener that serves /metrics without a
// token, meant for an address only Prometheus reaches (127.0.0.1, an
// internal network); it serves nothing else.

// Metrics is the replica's metrics (its registry, for tests and for more
// collectors).
func (s *Server) Metrics() *metrics.Cloud { return s.metrics }

// MetricsAddr is the address of the Config.MetricsListen listener, or ""
// without one.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// protectedMetrics serves /metrics on the main listener to super users'
// API tokens.
func (s *Server) protectedMetrics() http.Handler {
	next := s.metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bosun"`)
			http.Error(w, "missing API token: send Authorization: Bearer bsn_... of a super user", http.StatusUnauthorized)
			return
		}
		a, err := s.svc.AuthenticateToken(r.Context(), tok)
		switch {
		case errors.Is(err, fleet.ErrUnauthenticated):
			w.Header().Set("WWW-Authenticate", `Bearer realm="bosun"`)
			http.Error(w, "invalid API token", http.StatusUnauthorized)
			return
		case err != nil:
			s.log.ErrorContext(r.Context(), "metrics: authenticating", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		case a.Role != fleet.RoleSuper:
			http.Error(w, "forbidden: metrics cover every organisation; they need a super user's token", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// listenMetrics starts the plain metrics listener of Config.MetricsListen,
// if any.
func (s *Server) listenMetrics() error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", s.cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	s.metricsLn = ln
	s.metricsDone = make(chan struct{})
	s.metricsHTTP = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.metricsDone)
		if err := s.metricsHTTP.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return nil
}

// stopMetrics stops the metrics listener and waits for it.
func (s *Server) stopMetrics(ctx context.Context) {
	if s.metricsHTTP == nil {
		return
	}
	if err := s.metricsHTTP.Shutdown(ctx); err != nil {
		s.metricsHTTP.Close()
	}
	<-s.metricsDone
}
