package bridge

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// bus is the device-local NATS: an embedded server, or a connection to an
// external one.
type bus struct {
	srv     *server.Server // nil with an external NATS
	nc      *nats.Conn
	url     string
	urlFile string // nats.url, written once the bus is up
}

// natsMaxPayload lets a worker reply be larger than an envelope may be, so
// the bridge can answer "too large" instead of timing out.
const natsMaxPayload = 8 << 20

// startBus starts the embedded NATS server (or connects to opts.NATSURL),
// writes nats.url (and nats.token) into the data directory, and returns the
// bridge's own connection.
func startBus(opts *Options, log *slog.Logger) (*bus, error) {
	token, err := natsToken(opts)
	if err != nil {
		return nil, err
	}
	b := &bus{}
	if opts.NATSURL != "" {
		copts := []nats.Option{nats.Name("bosun-bridge"), nats.MaxReconnects(-1)}
		if token != "" {
			copts = append(copts, nats.Token(token))
		}
		nc, err := nats.Connect(opts.NATSURL, copts...)
		if err != nil {
			return nil, fmt.Errorf("connecting to NATS %s: %w", opts.NATSURL, err)
		}
		b.nc, b.url = nc, opts.NATSURL
	} else {
		host, port, err := splitListen(opts.NATSListen)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			log.Warn("embedded NATS listens beyond loopback", "listen", opts.NATSListen)
		}
		srv, err := server.NewServer(&server.Options{
			ServerName:    "bosun-bridge",
			Host:          host,
			Port:          port,
			Authorization: token,
			NoSigs:        true,
			NoLog:         true,
			MaxPayload:    natsMaxPayload,
		})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			srv.Shutdown()
			return nil, fmt.Errorf("embedded NATS on %s did not start", opts.NATSListen)
		}
		addr, ok := srv.Addr().(*net.TCPAddr)
		if !ok {
			srv.Shutdown()
			return nil, errors.New("embedded NATS has no TCP address")
		}
		b.srv = srv
		b.url = "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
		nc, err := nats.Connect(b.url, nats.InProcessServer(srv), nats.Token(token), nats.Name("bosun-bridge"))
		if err != nil {
			b.close()
			return nil, fmt.Errorf("connecting to embedded NATS: %w", err)
		}
		b.nc = nc
	}
	urlFile := filepath.Join(opts.DataDir, datadir.NATSURLFile)
	if err := keys.WriteFileAtomic(urlFile, []byte(b.url+"\n"), 0o644); err != nil {
		b.close()
		return nil, fmt.Errorf("writing %s: %w", datadir.NATSURLFile, err)
	}
	b.urlFile = urlFile
	return b, nil
}

// natsToken returns the token the device-local NATS requires: opts.NATSToken,
// else the one in the data directory, else (embedded server only) a new one
// written there with mode 0600 so workers started later can read it.
func natsToken(opts *Options) (string, error) {
	if opts.NATSToken != "" {
		return opts.NATSToken, nil
	}
	path := filepath.Join(opts.DataDir, datadir.NATSTokenFile)
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading NATS token: %w", err)
	}
	if opts.NATSURL != "" {
		return "", nil // an external NATS may need no token
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	tok := base64.RawURLEncoding.EncodeToString(raw)
	if err := keys.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing NATS token: %w", err)
	}
	return tok, nil
}

// splitListen parses host:port; port 0 means a random free port.
func splitListen(listen string) (string, int, error) {
	host, ps, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("NATS listen address %q: %w", listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("NATS listen address %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// close drains the connection and shuts the embedded server down. It is
// safe to call twice. It removes nats.url (if it still names this bus) so
// a worker started later fails clearly instead of dialling a dead port.
func (b *bus) close() {
	if b.urlFile != "" {
		if data, err := os.ReadFile(b.urlFile); err == nil && strings.TrimSpace(string(data)) == b.url {
			os.Remove(b.urlFile)
		}
		b.urlFile = ""
	}
	if b.nc != nil && !b.nc.IsClosed() {
		done := make(chan struct{})
		b.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		} else {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				b.nc.Close()
			}
		}
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}
