package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/nats-io/nats.go"
)

// Environment variables Connect reads when the matching option is empty.
const (
	EnvDataDir   = "BOSUN_DATA_DIR"
	EnvNATSURL   = "BOSUN_NATS_URL"
	EnvNATSToken = "BOSUN_NATS_TOKEN"
)

// DefaultDataDir is the data directory when neither the option nor
// BOSUN_DATA_DIR names one.
const DefaultDataDir = "/var/lib/bosun"

// ConnectOptions say where the device-local NATS is. Empty fields are taken
// from the environment, then from files the bridge writes into the data
// directory.
type ConnectOptions struct {
	// DataDir holds nats.url and nats.token. Empty means $BOSUN_DATA_DIR,
	// then DefaultDataDir.
	DataDir string
	// URL of the NATS server. Empty means $BOSUN_NATS_URL, then the
	// content of <DataDir>/nats.url.
	URL string
	// Token for the NATS server. Empty means $BOSUN_NATS_TOKEN, then the
	// content of <DataDir>/nats.token (none when the file is missing).
	Token string
	// Name is the NATS connection name. Empty means "bosun-worker".
	Name string
}

// Resolve fills the empty fields of o from the environment and the data
// directory, without connecting.
func (o ConnectOptions) Resolve() (ConnectOptions, error) {
	if o.DataDir == "" {
		o.DataDir = os.Getenv(EnvDataDir)
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.URL == "" {
		o.URL = os.Getenv(EnvNATSURL)
	}
	if o.URL == "" {
		b, err := os.ReadFile(filepath.Join(o.DataDir, datadir.NATSURLFile))
		if err != nil {
			return o, fmt.Errorf("worker: no NATS URL (is the bridge running with data dir %s?): %w", o.DataDir, err)
		}
		o.URL = strings.TrimSpace(string(b))
	}
	if o.Token == "" {
		o.Token = os.Getenv(EnvNATSToken)
	}
	if o.Token == "" {
		b, err := os.ReadFile(filepath.Join(o.DataDir, datadir.NATSTokenFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return o, fmt.Errorf("worker: reading NATS token: %w", err)
		}
		o.Token = strings.TrimSpace(string(b))
	}
	if o.Name == "" {
		o.Name = "bosun-worker"
	}
	return o, nil
}

// Connect connects to the device-local NATS described by o (see
// ConnectOptions). It keeps reconnecting forever when the bridge restarts.
// Extra nats options are applied last.
func Connect(o ConnectOptions, extra ...nats.Option) (*nats.Conn, error) {
	o, err := o.Resolve()
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	nc, err := nats.Connect(o.URL, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("worker: connecting to %s: %w", o.URL, err)
	}
	return nc, nil
}
