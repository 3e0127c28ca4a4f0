// Package cloudtest runs cloud replicas and protocol-speaking test devices
// in-process, for tests of the cloud, the API, the CLI and the device side.
//
// NewServer starts a full replica (server.Start: store, embedded NATS,
// fleet service, hub, HTTP) on a random loopback port against a fresh
// database from testpg, creates a super user, and stops it when the test
// ends. Options let a second replica share the first one's database, NATS
// and cloud key. Connect dials a test device that registers over a real
// websocket with pkg/envelope, answers calls through a jsonrpc.Dispatcher
// and reports what the cloud told it.
package cloudtest

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/cloud/internal/testpg"
)

// SuperEmail is the email of the super user every harness creates.
const SuperEmail = "super@bosun.test"

type config struct {
	dbURL   string
	natsURL string
	key     crypto.Signer
	replica string
	hub     func(*hub.Options)
	server  func(*server.Config)
	logger  *slog.Logger
}

// Option configures NewServer.
type Option func(*config)

// WithDatabase uses an existing database (e.g. another Server's
// DatabaseURL) instead of a fresh one.
func WithDatabase(url string) Option { return func(c *config) { c.dbURL = url } }

// WithNATS joins an existing NATS (e.g. another Server's NATSURL())
// instead of embedding one.
func WithNATS(url string) Option { return func(c *config) { c.natsURL = url } }

// WithKey signs with key instead of a fresh Ed25519 key (replicas of one
// cloud share its key).
func WithKey(key crypto.Signer) Option { return func(c *config) { c.key = key } }

// WithReplica names the replica. Defaults to "r1".
func WithReplica(name string) Option { return func(c *config) { c.replica = name } }

// WithHub tunes the hub options (timeouts, queue sizes).
func WithHub(fn func(*hub.Options)) Option { return func(c *config) { c.hub = fn } }

// WithConfig tunes the server config after the harness filled it in.
func WithConfig(fn func(*server.Config)) Option { return func(c *config) { c.server = fn } }

// WithLogger logs to logger instead of discarding logs.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Server is a running replica for tests.
type Server struct {
	*server.Server
	// DatabaseURL is the replica's database (pass it to WithDatabase).
	DatabaseURL string
	// Key is the cloud's signing key (pass it to WithKey).
	Key crypto.Signer
	// Super is an Actor for the super user SuperEmail.
	Super fleet.Actor

	tb       testing.TB
	stopOnce sync.Once
	tokMu    sync.Mutex
	token    string
}

// NewServer starts a replica; it is shut down when the test ends (or by
// Stop). The sweeper runs every 200ms so expiry tests stay fast, and the
// holder waits 1s (not 10s) for a device's first state.report before it
// sends queued calls of any method (hub.Options.ReportWait; WithHub
// overrides it), so tests whose devices never report stay fast too.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	c := config{replica: "r1"}
	for _, o := range opts {
		o(&c)
	}
	if c.dbURL == "" {
		c.dbURL = testpg.URL(tb)
	}
	if c.key == nil {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		c.key = priv
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	cfg := server.Config{
		DatabaseURL: c.dbURL, Listen: "127.0.0.1:0", NATSURL: c.natsURL, CloudKey: c.key,
		CloudID: "bosun-cloud", Replica: c.replica, SweepInterval: 200 * time.Millisecond,
		Hub: func(o *hub.Options) {
			o.ReportWait = time.Second
			if c.hub != nil {
				c.hub(o)
			}
		},
		ShutdownTimeout: 10 * time.Second,
		DataDir:         tb.TempDir(), // OTA artifacts
	}
	if c.server != nil {
		c.server(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, cfg, c.logger)
	if err != nil {
		tb.Fatalf("cloudtest: starting replica %s: %v", c.replica, err)
	}
	s := &Server{Server: srv, DatabaseURL: c.dbURL, Key: c.key, tb: tb}
	tb.Cleanup(s.Stop)
	svc := srv.Service()
	if _, err := svc.CreateUser(ctx, SuperEmail, fleet.RoleSuper, ""); err != nil && !errors.Is(err, fleet.ErrConflict) {
		tb.Fatalf("cloudtest: creating super user: %v", err)
	}
	u, err := svc.Store().UserByEmail(ctx, SuperEmail)
	if err != nil {
		tb.Fatalf("cloudtest: loading super user: %v", err)
	}
	s.Super = fleet.Actor{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: fleet.RoleSuper}
	return s
}

// Stop shuts the replica down (as SIGTERM would). Safe to call twice.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if err := s.Server.Shutdown(context.Background()); err != nil {
			s.tb.Logf("cloudtest: shutdown: %v", err)
		}
	})
}

// DeviceURL is the websocket URL devices dial.
func (s *Server) DeviceURL() string {
	return "ws" + strings.TrimPrefix(s.URL(), "http") + "/v1/device"
}

// CloudPublic is the public key devices pin.
func (s *Server) CloudPublic() crypto.PublicKey { return s.Key.Public() }

// Token returns an API token of the super user (created once per Server).
func (s *Server) Token(tb testing.TB) string {
	tb.Helper()
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	if s.token == "" {
		tok, _, err := s.Service().CreateTokenForUser(context.Background(), SuperEmail, "cloudtest")
		if err != nil {
			tb.Fatalf("cloudtest: creating token: %v", err)
		}
		s.token = tok
	}
	return s.token
}

// Actor returns an Actor for a new user of role in the default
// organisation (or the named one), for role tests.
func (s *Server) Actor(tb testing.TB, email string, role fleet.Role, org string) fleet.Actor {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.Service().CreateUser(ctx, email, role, org); err != nil {
		tb.Fatalf("cloudtest: creating user %s: %v", email, err)
	}
	u, err := s.Service().Store().UserByEmail(ctx, email)
	if err != nil {
		tb.Fatal(err)
	}
	return fleet.Actor{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: role}
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %s: "+format, append([]any{timeout}, args...)...)
		}
		<-t.C
	}
}
