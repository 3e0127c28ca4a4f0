// Package bus connects a cloud replica to NATS: to an embedded nats-server
// running in this process when no URL is given (one box), or to an external
// NATS server or cluster (several replicas).
//
// It exists so that there is one code path for one box and for many: the
// fleet service and the hub only ever see a *nats.Conn. The embedded server
// listens on 127.0.0.1 (a random port by default) with a random token, so
// that a second replica on the same machine — or a test — can join it with
// URL(), and nothing else on the machine can.
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
	// Logger receives connection events. nil means slog.Default().
	Logger *slog.Logger
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
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("nats listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, "", fmt.Errorf("nats listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	srv, err := server.NewServer(&server.Options{
		ServerName:    "bosun-cloud-embedded",
		Host:          host,
		Port:          port,
		NoSigs:        true,
		NoLog:         true,
		Authorization: token,
		MaxPayload:    opts.MaxPayload,
	})
	if err != nil {
		return nil, "", fmt.Errorf("creating embedded nats: %w", err)
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
