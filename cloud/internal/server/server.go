// Package server assembles one cloud replica: the store (migrated at
// start), the NATS bus, the fleet service, the device hub and the HTTP
// server with its routes, and takes them down in order.
//
// It exists so that `bosun-cloud serve` and the in-process test harness
// (cloudtest) start exactly the same thing. Routes:
//
//	/v1/device   device websockets (hub)
//	/healthz     the process is up
//	/readyz      the database and NATS answer
//	/api/v1/     the JSON API (package api)
//	/v1/ota/download/{token}  device artifact downloads (api.Download)
//	/metrics     Prometheus metrics, to a super user's API token (metrics.go)
//	/            the dashboard (package web)
//
// More handlers mount through Config.Mount or Server.Handle.
//
// Production settings: Config.TLSCertFile/TLSKeyFile serve HTTPS directly;
// Config.PublicURL names the address users reach (a reverse proxy's), from
// which the dashboard's Secure cookies and trusted origin follow;
// Config.TrustedProxies says whose X-Forwarded-For names the client. See
// docs/operations.md.
package server

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api"
	"github.com/bosunhq/bosun/cloud/internal/artifacts"
	"github.com/bosunhq/bosun/cloud/internal/bus"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/cloud/internal/metrics"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/cloud/internal/web"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Config configures a replica. DatabaseURL and CloudKey are required.
type Config struct {
	// DatabaseURL is the PostgreSQL URL. Required.
	DatabaseURL string
	// Listen is the HTTP address. Defaults to "127.0.0.1:8080"; use
	// "127.0.0.1:0" for a random port.
	Listen string
	// NATSURL joins an external NATS. Empty means an embedded server.
	NATSURL string
	// NATSCluster joins the embedded server to the other replicas' as a
	// NATS cluster (see bus.Cluster). nil means a lone embedded server.
	NATSCluster *bus.Cluster
	// CloudKey signs the cloud's envelopes. Required.
	CloudKey crypto.Signer
	// CloudKeys are the cloud keys announced to accepted devices
	// (auth.cloud_keys) during a rotation of CloudKey; they must hold its
	// public half. nil means none are announced.
	CloudKeys []crypto.PublicKey
	// CloudID is the cloud's signer name. Defaults to "bosun-cloud".
	CloudID string
	// Replica names this replica. Defaults to "replica".
	Replica string
	// MaxPendingPerOrg bounds live pending sessions per organisation.
	// Defaults to 1000.
	MaxPendingPerOrg int
	// MaxPendingPerAddr, MaxPendingDevices, MaxNewPendingPerAddr,
	// MaxPendingKeys and PendingTTL bound registration: see fleet.Options,
	// whose defaults zero means.
	MaxPendingPerAddr    int
	MaxPendingDevices    int
	MaxNewPendingPerAddr int
	MaxPendingKeys       int
	PendingTTL           time.Duration
	// SweepInterval: see fleet.Options. Defaults to 5s.
	SweepInterval time.Duration
	// DataDir holds the cloud's files: OTA artifacts under
	// DataDir/artifacts/sha256 (see package artifacts) and the online
	// release keys under DataDir/release (snapshot.key, timestamp.key,
	// made on first start; pkg/release). Replicas share it (one file
	// system). Empty means no artifacts are stored and no release
	// metadata signed: uploads are refused.
	DataDir string
	// ReleaseOptions and ReleaseRefresh tune the signing of release
	// metadata (fleet.Options.ReleaseRefresh); nil and zero mean the
	// defaults. Tests shorten them.
	ReleaseOptions *release.OnlineOptions
	ReleaseRefresh time.Duration
	// MaxArtifactSize bounds one artifact upload in bytes. Defaults to
	// artifacts.DefaultMaxSize (1 GiB).
	MaxArtifactSize int64
	// DownloadTokenTTL is how long a device's artifact download token is
	// valid. Defaults to fleet.DefaultDownloadTokenTTL (15m).
	DownloadTokenTTL time.Duration
	// Deployments tune the OTA deployments engine (fleet.DeploymentOptions;
	// the zero value means its defaults).
	Deployments fleet.DeploymentOptions
	// Hub tunes the device hub (Service, Key and Logger are filled in).
	// nil means the defaults.
	Hub func(*hub.Options)
	// Mount adds handlers to the mux before serving (say, OTA artifact
	// downloads). nil adds nothing.
	Mount func(mux *http.ServeMux, svc *fleet.Service)
	// ShutdownTimeout bounds the whole of Shutdown. Defaults to 20s.
	ShutdownTimeout time.Duration

	// PublicURL is where users and devices reach this cloud, e.g.
	// https://bosun.example.com when a reverse proxy terminates TLS in
	// front of it (see ParsePublicURL). An https URL makes every dashboard
	// cookie Secure; its origin is trusted for state-changing dashboard
	// requests, whatever Host the proxy forwards. Empty means cookies are
	// Secure exactly when a request arrives over TLS, and only same-origin
	// requests change state.
	PublicURL string
	// TLSCertFile and TLSKeyFile are a PEM certificate (chain) and its key:
	// both set, the cloud serves HTTPS (TLS 1.2 or later) and
	// Server.ReloadTLS reads them again. Both empty means plain HTTP, for
	// loopback or behind a proxy.
	TLSCertFile string
	TLSKeyFile  string
	// TrustedProxies are the addresses of reverse proxies whose
	// X-Forwarded-For header names the client (see ClientAddr). nil means
	// none: the client is the TCP peer and the header is ignored.
	TrustedProxies []netip.Prefix

	// MetricsListen is the address of a second, plain HTTP listener that
	// serves /metrics to anyone who reaches it, for a Prometheus on an
	// internal network (see metrics.go). Empty means none: /metrics is
	// then only on Listen, behind a super user's API token.
	MetricsListen string
	// Metrics tunes the replica's metrics; the zero value means the
	// defaults.
	Metrics metrics.Options
}

// Server is a running replica.
type Server struct {
	cfg   Config
	log   *slog.Logger
	st    *store.Store
	bus   *bus.Bus
	svc   *fleet.Service
	hub   *hub.Hub
	mux   *http.ServeMux
	http  *http.Server
	ln    net.Listener
	cert  *certificate // nil without TLS
	serve chan error   // the result of http.Server.Serve

	metrics     *metrics.Cloud
	metricsHTTP *http.Server // nil without Config.MetricsListen
	metricsLn   net.Listener
	metricsDone chan struct{} // closed when metricsHTTP's Serve returned

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start migrates the database (under the advisory lock, so replicas may
// start together), connects everything and starts serving.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Server, err error) {
	if cfg.DatabaseURL == "" || cfg.CloudKey == nil {
		return nil, errors.New("server: DatabaseURL and CloudKey are required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	if logger == nil {
		logger = slog.Default()
	}
	// Configuration mistakes are refused before anything is touched.
	var public *url.URL
	if cfg.PublicURL != "" {
		if public, err = ParsePublicURL(cfg.PublicURL); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	s := &Server{cfg: cfg, log: logger, serve: make(chan error, 1), metrics: metrics.New(cfg.Metrics)}
	switch {
	case cfg.TLSCertFile != "" && cfg.TLSKeyFile != "":
		if s.cert, err = loadCertificate(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	case cfg.TLSCertFile != "" || cfg.TLSKeyFile != "":
		return nil, errors.New("server: TLSCertFile and TLSKeyFile go together")
	}
	defer func() {
		if err != nil {
			s.teardown(context.Background())
		}
	}()
	if s.st, err = store.Open(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	applied, err := s.st.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		logger.Info("database migrated", "applied", applied)
	}
	var disk *artifacts.Disk
	var online *release.Online
	if cfg.DataDir != "" {
		if disk, err = artifacts.OpenDisk(cfg.DataDir, cfg.MaxArtifactSize); err != nil {
			return nil, err
		}
		// The online release keys: made by the first replica, shared
		// with the others through the data directory.
		if online, err = release.OpenOnline(filepath.Join(cfg.DataDir, "release"), cfg.ReleaseOptions); err != nil {
			return nil, fmt.Errorf("release keys: %w", err)
		}
	}
	if s.bus, err = bus.Open(ctx, bus.Options{URL: cfg.NATSURL, Name: "bosun-cloud " + cfg.Replica,
		ServerName: "bosun-cloud-" + cfg.Replica, Cluster: cfg.NATSCluster, Logger: logger}); err != nil {
		return nil, err
	}
	if s.svc, err = fleet.New(ctx, fleet.Options{Store: s.st, NATS: s.bus.Conn(), CloudID: cfg.CloudID, Replica: cfg.Replica,
		Logger: logger, MaxPendingPerOrg: cfg.MaxPendingPerOrg, MaxPendingPerAddr: cfg.MaxPendingPerAddr,
		MaxPendingDevices: cfg.MaxPendingDevices, MaxNewPendingPerAddr: cfg.MaxNewPendingPerAddr,
		MaxPendingKeys: cfg.MaxPendingKeys, PendingTTL: cfg.PendingTTL, SweepInterval: cfg.SweepInterval,
		Artifacts: disk, DownloadTokenTTL: cfg.DownloadTokenTTL, PublicURL: cfg.PublicURL, Release: online, ReleaseRefresh: cfg.ReleaseRefresh,
		Deployments: cfg.Deployments, Observer: s.metrics}); err != nil {
		return nil, err
	}
	if err = s.svc.Start(ctx); err != nil {
		return nil, err
	}
	hopts := hub.Options{Service: s.svc, Key: cfg.CloudKey, CloudKeys: cfg.CloudKeys, Logger: logger, Observer: s.metrics}
	if cfg.Hub != nil {
		cfg.Hub(&hopts)
	}
	if s.hub, err = hub.New(hopts); err != nil {
		return nil, err
	}
	s.metrics.WatchHub(s.hub)
	s.metrics.WatchService(s.svc)
	s.metrics.WatchNATS(s.bus.Conn())
	s.mux = http.NewServeMux()
	s.mux.Handle(rpcproto.DeviceEndpointPath, s.hub)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.svc.Ready(ctx); err != nil {
			s.log.Warn("not ready", "err", err)
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.mux.Handle("/api/v1/", s.metrics.API(api.New(s.svc, logger)))
	s.mux.Handle("GET "+fleet.DownloadPath+"{token}", s.metrics.Downloads(api.Download(s.svc, logger)))
	s.mux.Handle("GET /metrics", s.protectedMetrics())
	var wopts web.Options
	if public != nil {
		wopts.SecureCookies = public.Scheme == "https"
		wopts.TrustedOrigins = []string{public.Scheme + "://" + public.Host}
	}
	s.mux.Handle("/", web.New(s.svc, logger, wopts)) // the dashboard
	if cfg.Mount != nil {
		cfg.Mount(s.mux, s.svc)
	}
	if err = s.listenMetrics(); err != nil {
		return nil, err
	}
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	s.http = &http.Server{
		Handler:           clientAddrs(s.mux, cfg.TrustedProxies),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Event streams would hold Shutdown up: end them when it begins.
	s.http.RegisterOnShutdown(s.svc.EndSubscriptions)
	if s.cert != nil {
		s.http.TLSConfig = s.cert.config()
		go func() { s.serve <- s.http.ServeTLS(s.ln, "", "") }()
	} else {
		go func() { s.serve <- s.http.Serve(s.ln) }()
	}
	logger.Info("cloud replica serving", "addr", s.ln.Addr().String(), "tls", s.cert != nil, "public_url", cfg.PublicURL,
		"trusted_proxies", len(cfg.TrustedProxies), "replica", s.svc.Replica(),
		"nats", map[bool]string{true: "embedded", false: "external"}[s.bus.Embedded()], "nats_cluster", s.bus.ClusterURL(),
		"metrics_addr", s.MetricsAddr())
	return s, nil
}

// Handle adds a route to the server's mux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Addr is the address the HTTP server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the server's base URL: http://host:port, or https://host:port
// when it serves TLS.
func (s *Server) URL() string {
	if s.cert != nil {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// ReloadTLS reads Config.TLSCertFile and TLSKeyFile again and serves the
// new certificate to connections from now on (bosun-cloud does this on
// SIGHUP, e.g. after a renewal). On an error the current certificate
// stays. Without TLS it does nothing.
func (s *Server) ReloadTLS() error {
	if s.cert == nil {
		return nil
	}
	return s.cert.reload()
}

// Service is the replica's coordinator.
func (s *Server) Service() *fleet.Service { return s.svc }

// Hub is the replica's device endpoint.
func (s *Server) Hub() *hub.Hub { return s.hub }

// NATSClusterURL is where the other members of the NATS cluster route to
// this replica's embedded server, or "" outside a cluster.
func (s *Server) NATSClusterURL() string { return s.bus.ClusterURL() }

// NATSURL is where another replica joins this one's NATS.
func (s *Server) NATSURL() string { return s.bus.URL() }

// Done receives the HTTP server's error if it stops on its own.
func (s *Server) Done() <-chan error { return s.serve }

// Shutdown stops the replica in order — stop accepting and let HTTP
// requests finish, close device sessions (their calls in flight are
// recorded), stop the sweeper, drain NATS, close the database — within
// Config.ShutdownTimeout in total. Safe to call twice.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
		s.shutdownErr = s.teardown(ctx)
	})
	return s.shutdownErr
}

func (s *Server) teardown(ctx context.Context) error {
	var errs []error
	if s.http != nil {
		// Stop accepting; wait for requests in flight (calls included).
		hctx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownTimeout/2)
		if err := s.http.Shutdown(hctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			s.http.Close()
		}
		cancel()
	}
	s.stopMetrics(ctx)
	if s.hub != nil {
		if err := s.hub.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("closing device sessions: %w", err))
		}
	}
	if s.svc != nil {
		s.svc.Close()
	}
	if s.bus != nil {
		s.bus.Close(ctx)
	}
	if s.st != nil {
		s.st.Close()
	}
	s.log.Info("cloud replica stopped")
	return errors.Join(errs...)
}
