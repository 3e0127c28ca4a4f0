// Package datadir names the files of a device's data directory, the one place
// the bridge, the built-in worker and the worker SDK agree on where things
// live:
//
//	device_key.pem     the device's private key (PKCS#8 PEM, 0600), made on first start
//	device_public.pem  its public key (SPKI PEM), for operators to compare fingerprints
//	cloud_keys.pem     the cloud keys the cloud announced (auth.cloud_keys): when present, trusted instead of the configured pin
//	nats.url           the URL of the device-local NATS the bridge serves or uses
//	nats.token         the token that NATS requires (0600)
//	state.json         what the bridge last reported with state.report (State)
//	outbox/            reports that must reach the cloud (ota.status), one file each
//	ota/               bosun-ota's slots and boot state (device/internal/ota, docs/ota-device.md)
//	logs/              bridge.log, worker.log, ... (LogsDir)
package datadir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// File and directory names inside the data directory.
const (
	KeyFile       = "device_key.pem"
	PublicKeyFile = "device_public.pem"
	CloudKeysFile = "cloud_keys.pem"
	NATSURLFile   = "nats.url"
	NATSTokenFile = "nats.token"
	StateFile     = "state.json"
	OutboxDir     = "outbox"
	LogsDir       = "logs"
)

// State is the content of state.json: what the bridge reported to the cloud
// on its last successful state.report, and when.
type State struct {
	DeviceID   string                     `json:"device_id"`
	ReportedAt time.Time                  `json:"reported_at"`
	Report     rpcproto.StateReportParams `json:"report"`
}

// WriteState stores s as dir/state.json atomically.
func WriteState(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return keys.WriteFileAtomic(filepath.Join(dir, StateFile), append(b, '\n'), 0o644)
}

// ReadState reads dir/state.json. A missing file is an error wrapping
// os.ErrNotExist.
func ReadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("parsing %s: %w", StateFile, err)
	}
	return s, nil
}

// OpenLog opens (creating) dir/logs/<name>.log for appending.
func OpenLog(dir, name string) (*os.File, error) {
	ld := filepath.Join(dir, LogsDir)
	if err := os.MkdirAll(ld, 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(filepath.Join(ld, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// NewLogger returns a JSON logger writing to dir/logs/<name>.log and a text
// logger to stderr at once, and the function that closes the file. With an
// empty dir it logs to stderr only.
func NewLogger(dir, name string, level slog.Level, stderr io.Writer) (*slog.Logger, func() error, error) {
	opts := &slog.HandlerOptions{Level: level}
	if dir == "" {
		return slog.New(slog.NewTextHandler(stderr, opts)), func() error { return nil }, nil
	}
	f, err := OpenLog(dir, name)
	if err != nil {
		return nil, nil, fmt.Errorf("opening log: %w", err)
	}
	h := teeHandler{slog.NewTextHandler(f, opts), slog.NewTextHandler(stderr, opts)}
	return slog.New(h), f.Close, nil
}

// teeHandler sends every record to each of its handlers.
type teeHandler []slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := make(teeHandler, len(t))
	for i, h := range t {
		n[i] = h.WithAttrs(as)
	}
	return n
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	n := make(teeHandler, len(t))
	for i, h := range t {
		n[i] = h.WithGroup(name)
	}
	return n
}
