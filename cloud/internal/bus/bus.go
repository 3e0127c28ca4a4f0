// Package bus connects a cloud replica to NATS: to an embedded nats-server
// running in this process when no URL is given (one box), or to an external
// NATS server or cluster (several replicas).
//
// It exists so that there is one code path for one box and for many: the
// fleet service and the hub only ever see a *nats.Conn. The embedded server
// listens on 127.0.0.1 (a random port by default) with a random token, so
// that a second replica on the same machine — or a test — can join it with
// URL(), and nothing else on the machine can.
//
// The embedded servers of several replicas can also be joined as a real
// NATS cluster (Options.Cluster): each listens for routes from the others,
// authenticated with a shared secret, and solicits routes to the addresses
// it is given. A message published on one replica then reaches the
// subscribers of every other, as with an external cluster.
package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure Open.
type Options struct {
	// URL of an external NATS server or cluster (comma-separated). Empty
	// means an embedded server in this process.
	URL string
	// Listen is the host:port the embedded server listens on. Defaults to
	// "127.0.0.1:0" (a random port on loopback).
	Listen string
	// Name names the connection in NATS monitoring. Defaults to "bosun-cloud".
	Name string
	// MaxPayload of the embedded server. Defaults to 8 MiB, room for a
	// 1 MiB envelope and its routing wrapper.
	MaxPayload int32
	// ServerName names the embedded server in the cluster; it must differ
	// between replicas (nats-server refuses duplicate names in one
	// cluster). Defaults to "bosun-cloud-embedded".
	ServerName string
	// Cluster joins the embedded server to other replicas' embedded
	// servers. nil means no cluster: a lone server. Ignored with URL
	// (Open refuses both).
	Cluster *Cluster
	// Logger receives connection events. nil means slog.Default().
	Logger *slog.Logger
}

// MinClusterSecret is the shortest route secret Open accepts.
const MinClusterSecret = 16

// ClusterUser is the user name every route authenticates with; the secret
// is its password.
const ClusterUser = "bosun-route"

// Cluster configures the embedded server's routes.
type Cluster struct {
	// Name of the NATS cluster; every member must use the same. Defaults
	// to "bosun".
	Name string
	// Listen is the host:port where this server accepts routes from the
	// other members. Required; port 0 picks a random port (see
	// Bus.ClusterURL).
	Listen string
	// Advertise is the host:port the other members are told to reach this
	// one at, when Listen is not reachable as given (0.0.0.0, NAT). Empty
	// means the listen address.
	Advertise string
	// Routes are the other members, as nats-route://host:port (or
	// host:port). Members need not list each other: routes are gossiped.
	// Each URL must carry no user or password; the secret is added. nil
	// means none: this server only accepts routes.
	Routes []string
	// Secret authenticates routes both ways: a member that does not know
	// it is refused. Required, at least MinClusterSecret bytes, the same
	// on every member. Never put it in a URL, a flag or git: read it from
	// a file or the environment.
	Secret string
}

// ErrClusterConfig marks an invalid Cluster (or Cluster with URL).
var ErrClusterConfig = errors.New("invalid nats cluster configuration")

// check validates c and returns the route URLs with the credentials.
func (c *Cluster) check() ([]*url.URL, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrClusterConfig, fmt.Sprintf(format, a...))
	}
	if c.Listen == "" {
		return nil, bad("a cluster listen address is required")
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		return nil, bad("cluster listen address: %v", err)
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort(c.Advertise); err != nil {
			return nil, bad("cluster advertise address: %v", err)
		}
	}
	if len(c.Secret) < MinClusterSecret {
		return nil, bad("the route secret has %d bytes, want at least %d (the same on every replica)", len(c.Secret), MinClusterSecret)
	}
	var routes []*url.URL
	for _, r := range c.Routes {
		raw := r
		if !strings.Contains(raw, "://") {
			raw = "nats-route://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, bad("route %q: %v", r, err)
		}
		if u.Scheme != "nats-route" && u.Scheme != "nats" {
			return nil, bad("route %q: want nats-route://host:port", r)
		}
		if u.User != nil {
			return nil, bad("route %q carries credentials; give the secret separately, never in a URL", u.Redacted())
		}
		if _, _, err := splitHostPort(u.Host); err != nil || (u.Path != "" && u.Path != "/") {
			return nil, bad("route %q: want nats-route://host:port", r)
		}
		u.User = url.UserPassword(ClusterUser, c.Secret)
		routes = append(routes, u)
	}
	return routes, nil
}

// splitHostPort splits host:port with a numeric port in 0..65535.
func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want a number from 0 to 65535", portStr)
	}
	return host, port, nil
}

// Bus is one replica's NATS connection and, when embedded, its server.
type Bus struct {
	nc  *nats.Conn
	srv *server.Server // nil when external
	url string
	log *slog.Logger

	closeOnce sync.Once
	closed    chan struct{} // closed by the ClosedHandler
}

// Open starts the embedded server (when opts.URL is empty) and connects.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if opts.Name == "" {
		opts.Name = "bosun-cloud"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 8 << 20
	}
	if opts.URL != "" && opts.Cluster != nil {
		return nil, fmt.Errorf("%w: an external NATS (URL) and an embedded cluster exclude each other", ErrClusterConfig)
	}
	b := &Bus{log: opts.Logger, closed: make(chan struct{}), url: opts.URL}
	natsOpts := []nats.Option{
		nats.Name(opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { b.log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	if opts.URL == "" {
		srv, u, err := startEmbedded(opts)
		if err != nil {
			return nil, err
		}
		b.srv, b.url = srv, u
		natsOpts = append(natsOpts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(b.url, natsOpts...)
	if err != nil {
		if b.srv != nil {
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
		}
		return nil, fmt.Errorf("connecting to nats: %w", err)
	}
	b.nc = nc
	return b, nil
}

func startEmbedded(opts Options) (*server.Server, string, error) {
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, port, err := splitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("nats listen address %q: %w", listen, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if opts.ServerName == "" {
		opts.ServerName = "bosun-cloud-embedded"
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	sopts := &server.Options{
		// nats-server refuses names with spaces.
		ServerName:    strings.Join(strings.Fields(opts.ServerName), "_"),
		Host:          host,
		Port:          port,
		NoSigs:        true,
		NoLog:         true,
		Authorization: token,
		MaxPayload:    opts.MaxPayload,
	}
	if c := opts.Cluster; c != nil {
		routes, err := c.check()
		if err != nil {
			return nil, "", err
		}
		chost, cport, _ := splitHostPort(c.Listen)
		if cport == 0 {
			cport = server.RANDOM_PORT
		}
		name := c.Name
		if name == "" {
			name = "bosun"
		}
		sopts.Cluster = server.ClusterOpts{Name: name, Host: chost, Port: cport, Advertise: c.Advertise,
			Username: ClusterUser, Password: c.Secret}
		sopts.Routes = routes
		// Clients stay on their own replica's server (in process); the
		// client port is not told to the others' clients.
		sopts.Cluster.NoAdvertise = true
		// A lost member is retried every second; say so in the log once
		// a minute, not every second (nats-server's default).
		sopts.ReconnectErrorReports = 60
	}
	if opts.Cluster != nil {
		// A cluster has failures worth reading (a route refused for a
		// wrong secret, a member unreachable): the server's warnings and
		// errors go to the replica's log.
		sopts.NoLog = false
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, "", fmt.Errorf("creating embedded nats: %w", err)
	}
	if opts.Cluster != nil {
		srv.SetLogger(natsLogger{opts.Logger.With("component", "nats")}, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, "", errors.New("embedded nats not ready after 10s")
	}
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, "", err
	}
	u.User = url.User(token)
	return srv, u.String(), nil
}

// Conn is the connection.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// URL is where another replica connects to join this bus: the external URL,
// or the embedded server's loopback URL with its token.
func (b *Bus) URL() string { return b.url }

// ClusterURL is where the other members route to this replica's embedded
// server (nats-route://host:port, without the secret), or "" when it is not
// in a cluster.
func (b *Bus) ClusterURL() string {
	if b.srv == nil {
		return ""
	}
	addr := b.srv.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats-route://" + addr.String()
}

// Routes is the number of other members the embedded server has a route
// to (0 when it is alone or not embedded).
func (b *Bus) Routes() int {
	if b.srv == nil {
		return 0
	}
	return b.srv.NumRemotes()
}

// Embedded reports whether the server runs in this process.
func (b *Bus) Embedded() bool { return b.srv != nil }

// Close drains the connection (pending messages are delivered, handlers
// finish), waiting at most until ctx ends, then shuts the embedded server
// down and waits for it. Safe to call twice.
func (b *Bus) Close(ctx context.Context) {
	b.closeOnce.Do(func() {
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		}
		select {
		case <-b.closed:
		case <-ctx.Done():
			b.nc.Close()
			<-b.closed
		}
		if b.srv != nil {
			b.srv.Shutdown()
			b.srv.WaitForShutdown()
		}
	})
}

// natsLogger passes the embedded server's warnings and errors to slog; its
// notices (the start banner, routes coming and going) are debug.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
