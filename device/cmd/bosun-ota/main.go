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
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/device/internal/ota"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Config is everything bosun-ota is told.
type Config struct {
	DataDir       string
	NATSURL       string
	NATSToken     string
	Hook          string
	HookTimeout   time.Duration
	TrustedHashes string // dev only: file of "NAME/VERSION SHA256 LENGTH" lines
	LogLevel      slog.Level
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
	var level, hookTimeout string
	fs.StringVar(&c.DataDir, "data-dir", or("BOSUN_DATA_DIR", worker.DefaultDataDir), "the bridge's data directory; slots live in <data-dir>/ota (env BOSUN_DATA_DIR)")
	fs.StringVar(&c.NATSURL, "nats-url", getenv("BOSUN_NATS_URL"), "device-local NATS (env BOSUN_NATS_URL; default: <data-dir>/nats.url)")
	fs.StringVar(&c.NATSToken, "nats-token", getenv("BOSUN_NATS_TOKEN"), "NATS token (env BOSUN_NATS_TOKEN; default: <data-dir>/nats.token)")
	fs.StringVar(&c.Hook, "hook", getenv("BOSUN_OTA_HOOK"), "restart hook run with the new active slot's directory after every switch (env BOSUN_OTA_HOOK; default: none)")
	fs.StringVar(&hookTimeout, "hook-timeout", or("BOSUN_OTA_HOOK_TIMEOUT", "60s"), "how long the hook may run (env BOSUN_OTA_HOOK_TIMEOUT)")
	fs.StringVar(&c.TrustedHashes, "trusted-hashes", getenv("BOSUN_OTA_TRUSTED_HASHES"), "until TUF verification is wired in: a file of \"NAME/VERSION SHA256 LENGTH\" lines naming the only targets that may be installed (env BOSUN_OTA_TRUSTED_HASHES)")
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
	if c.DataDir == "" {
		return c, errors.New("data dir: set BOSUN_DATA_DIR or --data-dir")
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
	var v ota.Verifier
	if cfg.TrustedHashes != "" {
		hv, err := loadHashVerifier(cfg.TrustedHashes)
		if err != nil {
			return err
		}
		v = hv
	}
	nc, err := worker.Connect(worker.ConnectOptions{DataDir: cfg.DataDir, URL: cfg.NATSURL, Token: cfg.NATSToken, Name: "bosun-ota"})
	if err != nil {
		return err
	}
	defer nc.Close()
	m, err := ota.New(ota.Config{
		Dir:         filepath.Join(cfg.DataDir, "ota"),
		Verifier:    v,
		Hook:        cfg.Hook,
		HookTimeout: cfg.HookTimeout,
		Send: func(ctx context.Context, p rpcproto.OTAStatusParams) error {
			return worker.Call(ctx, nc, rpcproto.MethodOTAStatus, p, nil)
		},
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

// hashVerifier trusts the targets a local file lists. It stands in for
// pkg/release's TUF verifier until that is wired in.
type hashVerifier map[string]ota.TargetInfo

func loadHashVerifier(path string) (hashVerifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted hashes: %w", err)
	}
	v := hashVerifier{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		var n int64
		if len(f) == 3 {
			_, err = fmt.Sscan(f[2], &n)
		}
		sum, herr := hex.DecodeString(f[min(1, len(f)-1)])
		if len(f) != 3 || err != nil || n <= 0 || herr != nil || len(sum) != 32 {
			return nil, fmt.Errorf("trusted hashes %s:%d: want \"NAME/VERSION SHA256 LENGTH\"", path, i+1)
		}
		name, version, _ := strings.Cut(f[0], "/")
		v[f[0]] = ota.TargetInfo{Path: f[0] + "/bundle.tar.gz", Length: n, Hashes: map[string][]byte{"sha256": sum}, Name: name, Version: version}
	}
	return v, nil
}

func (v hashVerifier) Target(_ context.Context, name, version string) (ota.TargetInfo, error) {
	t, ok := v[name+"/"+version]
	if !ok {
		return ota.TargetInfo{}, fmt.Errorf("target %s/%s is not trusted", name, version)
	}
	return t, nil
}
