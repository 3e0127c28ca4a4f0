// Command bosun-worker is the worker every Bosun device runs next to the
// bridge: system.info, containers.list, containers.logs, logs.tail and
// state.get (see device/internal/builtin).
//
// It finds the device-local NATS through the bridge's data directory
// (nats.url, nats.token) unless BOSUN_NATS_URL / BOSUN_NATS_TOKEN say
// otherwise, and logs to <data dir>/logs/worker.log and stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bosunhq/bosun/device/internal/builtin"
	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/device/worker"
)

// Config is everything bosun-worker is told.
type Config struct {
	DataDir    string
	NATSURL    string
	NATSToken  string
	DockerHost string
	DiskPath   string
	LogLevel   slog.Level
}

func loadConfig(args []string, getenv func(string) string) (Config, error) {
	or := func(env, def string) string {
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("bosun-worker", flag.ContinueOnError)
	var c Config
	var level string
	fs.StringVar(&c.DataDir, "data-dir", or("BOSUN_DATA_DIR", worker.DefaultDataDir), "the bridge's data directory (env BOSUN_DATA_DIR)")
	fs.StringVar(&c.NATSURL, "nats-url", getenv("BOSUN_NATS_URL"), "device-local NATS (env BOSUN_NATS_URL; default: <data-dir>/nats.url)")
	fs.StringVar(&c.NATSToken, "nats-token", getenv("BOSUN_NATS_TOKEN"), "NATS token (env BOSUN_NATS_TOKEN; default: <data-dir>/nats.token)")
	fs.StringVar(&c.DockerHost, "docker-host", or("DOCKER_HOST", "unix:///var/run/docker.sock"), "container engine (env DOCKER_HOST; Podman's socket works)")
	fs.StringVar(&c.DiskPath, "disk-path", or("BOSUN_DISK_PATH", "/"), "file system reported by system.info (env BOSUN_DISK_PATH)")
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
	if c.DataDir == "" {
		return c, errors.New("data dir: set BOSUN_DATA_DIR or --data-dir")
	}
	return c, nil
}

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-worker:", err)
		os.Exit(2)
	}
	logger, closeLog, err := datadir.NewLogger(cfg.DataDir, "worker", cfg.LogLevel, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-worker:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, logger)
	stop()
	if err != nil {
		logger.Error("worker failed", "err", err)
	}
	closeLog()
	if err != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	nc, err := worker.Connect(worker.ConnectOptions{DataDir: cfg.DataDir, URL: cfg.NATSURL, Token: cfg.NATSToken, Name: "bosun-worker"})
	if err != nil {
		return err
	}
	defer nc.Close()
	m := builtin.New(builtin.Config{DataDir: cfg.DataDir, DockerHost: cfg.DockerHost, DiskPath: cfg.DiskPath})
	defer m.Close()
	w := worker.New(nc, "system", worker.Options{Logger: logger})
	m.Register(w)
	logger.Info("bosun-worker starting", "version", builtin.Version, "nats_url", nc.ConnectedUrlRedacted(), "docker_host", cfg.DockerHost)
	return w.Run(ctx)
}
