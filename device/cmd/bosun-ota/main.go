// Command bosun-ota is the device's OTA worker: it serves ota.update,
// ota.commit, ota.revert, ota.create_snapshot, ota.get_boot_state and
// ota.set_boot_state (device/internal/ota, docs/ota-device.md) and sends
// ota.status reports to the cloud through the bridge's outbox.
//
// It finds the device-local NATS through the bridge's data directory
// (nats.url, nats.token) unless BOSUN_NATS_URL / BOSUN_NATS_TOKEN say
// otherwise; its slots live in <data dir>/ota, and it logs to
// <data dir>/logs/ota.log and stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/device/internal/ota"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

// Config is everything bosun-ota is told.
type Config struct {
	DataDir     string
	NATSURL     string
	NATSToken   string
	Hook        string
	HookTimeout time.Duration
	// ReleaseRoot is the pinned root.json updates are verified against;
	// ReleaseMetadata, when set, a directory to read the release
	// metadata from instead of asking the cloud.
	ReleaseRoot     string
	ReleaseMetadata string
	// BaseURL is where a download URL of a path alone points: the
	// http(s) form of the bridge's cloud URL (BOSUN_CLOUD_URL).
	BaseURL  *url.URL
	LogLevel slog.Level
}

func loadConfig(args []string, getenv func(string) string) (Config, error) {
	or := func(env, def string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("bosun-ota", flag.ContinueOnError)
	var c Config
	var level, hookTimeout, cloudURL string
	fs.StringVar(&c.DataDir, "data-dir", or("BOSUN_DATA_DIR", worker.DefaultDataDir), "the bridge's data directory; slots live in <data-dir>/ota (env BOSUN_DATA_DIR)")
	fs.StringVar(&c.NATSURL, "nats-url", getenv("BOSUN_NATS_URL"), "device-local NATS (env BOSUN_NATS_URL; default: <data-dir>/nats.url)")
	fs.StringVar(&c.NATSToken, "nats-token", getenv("BOSUN_NATS_TOKEN"), "NATS token (env BOSUN_NATS_TOKEN; default: <data-dir>/nats.token)")
	fs.StringVar(&c.Hook, "hook", getenv("BOSUN_OTA_HOOK"), "restart hook run with the new active slot's directory after every switch (env BOSUN_OTA_HOOK; default: none)")
	fs.StringVar(&hookTimeout, "hook-timeout", or("BOSUN_OTA_HOOK_TIMEOUT", "60s"), "how long the hook may run (env BOSUN_OTA_HOOK_TIMEOUT)")
	fs.StringVar(&c.ReleaseRoot, "release-root", getenv("BOSUN_OTA_RELEASE_ROOT"), "the pinned release root (the organisation's 1.root.json) every update is verified against (env BOSUN_OTA_RELEASE_ROOT; default: <data-dir>/release-root.json)")
	fs.StringVar(&c.ReleaseMetadata, "release-metadata", getenv("BOSUN_OTA_RELEASE_METADATA"), "read the release metadata (timestamp.json, snapshot.json, targets.json, N.root.json) from this directory instead of the cloud, e.g. for installs from a USB stick (env BOSUN_OTA_RELEASE_METADATA)")
	fs.StringVar(&cloudURL, "cloud-url", getenv("BOSUN_CLOUD_URL"), "the bridge's cloud URL (ws(s)://host/v1/device): a download URL of a path alone is fetched from its host (env BOSUN_CLOUD_URL; the bridge's)")
	fs.StringVar(&level, "log-level", or("BOSUN_LOG_LEVEL", "info"), "debug, info, warn or error (env BOSUN_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return c, fmt.Errorf("log level %q: %w", level, err)
	}
	d, err := time.ParseDuration(hookTimeout)
	if err != nil || d <= 0 {
		return c, fmt.Errorf("hook timeout %q: must be a positive duration", hookTimeout)
	}
	c.HookTimeout = d
	if cloudURL != "" {
		u, err := url.Parse(cloudURL)
		if err != nil || u.Host == "" || (u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https") {
			return c, fmt.Errorf("cloud URL %q: want ws(s)://host/... as the bridge's", cloudURL)
		}
		c.BaseURL = &url.URL{Scheme: map[string]string{"ws": "http", "wss": "https", "http": "http", "https": "https"}[u.Scheme], Host: u.Host}
	}
	if c.DataDir == "" {
		return c, errors.New("data dir: set BOSUN_DATA_DIR or --data-dir")
	}
	if c.ReleaseRoot == "" {
		c.ReleaseRoot = filepath.Join(c.DataDir, "release-root.json")
	}
	if c.Hook != "" {
		if fi, err := os.Stat(c.Hook); err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return c, fmt.Errorf("hook %s: not an executable file", c.Hook)
		}
	}
	return c, nil
}

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-ota:", err)
		os.Exit(2)
	}
	logger, closeLog, err := datadir.NewLogger(cfg.DataDir, "ota", cfg.LogLevel, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-ota:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, logger)
	stop()
	if err != nil {
		logger.Error("ota worker failed", "err", err)
	}
	closeLog()
	if err != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	nc, err := worker.Connect(worker.ConnectOptions{DataDir: cfg.DataDir, URL: cfg.NATSURL, Token: cfg.NATSToken, Name: "bosun-ota"})
	if err != nil {
		return err
	}
	defer nc.Close()
	v, err := newVerifier(cfg, nc)
	if err != nil {
		return err
	}
	m, err := ota.New(ota.Config{
		Dir:         filepath.Join(cfg.DataDir, "ota"),
		Verifier:    v,
		Hook:        cfg.Hook,
		BaseURL:     cfg.BaseURL,
		HookTimeout: cfg.HookTimeout,
		Send: func(ctx context.Context, p rpcproto.OTAStatusParams) error {
			return worker.Call(ctx, nc, rpcproto.MethodOTAStatus, p, nil)
		},
		// Each step of an update at debug level: where a kill landed
		// (kill_test.go waits for these lines).
		OnStep: func(step string) { logger.Debug("ota step", "step", step) },
		Logger: logger,
	})
	if err != nil {
		return err
	}
	defer m.Close()
	w := worker.New(nc, "ota", worker.Options{Logger: logger})
	m.Register(w)
	bs := m.BootState()
	logger.Info("bosun-ota starting", "nats_url", nc.ConnectedUrlRedacted(), "active_slot", bs.ActiveSlot, "is_committed", bs.IsCommitted)
	return w.Run(ctx)
}

// sessionFetcher fetches release metadata from the cloud through the
// bridge: ota.metadata, answered from the device's organisation's release
// repository inside the signed session.
type sessionFetcher struct{ nc *nats.Conn }

func (f sessionFetcher) Fetch(ctx context.Context, name string, maxLen int64) ([]byte, error) {
	var res struct {
		Data []byte `json:"data"`
	}
	err := worker.Call(ctx, f.nc, rpcproto.MethodOTAMetadata, map[string]string{"file": name}, &res)
	var je *jsonrpc.Error
	if errors.As(err, &je) && je.Code == rpcproto.CodeNotFound {
		return nil, fmt.Errorf("%w: %s", release.ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s from the cloud: %w", name, err)
	}
	if int64(len(res.Data)) > maxLen {
		return nil, fmt.Errorf("%s from the cloud is %d bytes, over the limit of %d", name, len(res.Data), maxLen)
	}
	return res.Data, nil
}

// tufVerifier is the ota.Verifier of pkg/release: TUF metadata checked
// against the pinned root, refreshed before every update.
type tufVerifier struct{ v *release.Verifier }

func (t tufVerifier) Target(ctx context.Context, name, version string) (ota.TargetInfo, error) {
	ti, err := t.v.Target(ctx, name, version)
	if err != nil {
		return ota.TargetInfo{}, err
	}
	return ota.TargetInfo{Path: ti.Path, Length: ti.Length, Hashes: ti.Hashes, Name: ti.Name, Version: ti.Version}, nil
}

// noRoot is the Verifier of a device without a pinned release root: every
// update fails, saying what to install.
type noRoot struct{ path string }

func (n noRoot) Target(context.Context, string, string) (ota.TargetInfo, error) {
	return ota.TargetInfo{}, fmt.Errorf("no pinned release root at %s: install the organisation's 1.root.json there (see docs/ota-device.md)", n.path)
}

// newVerifier makes the Verifier: the pinned root from cfg.ReleaseRoot,
// metadata from cfg.ReleaseMetadata or else the cloud, trusted state in
// <data dir>/ota/tuf.
func newVerifier(cfg Config, nc *nats.Conn) (ota.Verifier, error) {
	root, err := os.ReadFile(cfg.ReleaseRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return noRoot{cfg.ReleaseRoot}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("release root: %w", err)
	}
	var f release.Fetcher = sessionFetcher{nc}
	if cfg.ReleaseMetadata != "" {
		f = release.DirFetcher(cfg.ReleaseMetadata)
	}
	v, err := release.NewVerifier(root, f, filepath.Join(cfg.DataDir, "ota", "tuf"), nil)
	if err != nil {
		return nil, fmt.Errorf("release root %s: %w", cfg.ReleaseRoot, err)
	}
	return tufVerifier{v}, nil
}
