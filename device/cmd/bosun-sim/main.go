// Command bosun-sim runs a simulated fleet: N devices in one process, each
// with its own key, data directory and websocket session, running the real
// bridge (handshake, registration, reconnect with the bridge's backoff,
// state.report) and the real built-in methods (system.info, ...) in
// process, without a NATS server per device (bridge.Options.Local).
//
//	bosun-sim keys [flags]   generate (or reuse) the keys and print the
//	                         fleet as the body of the bulk preauthorisation
//	                         API, for `bosun preauth --file -`
//	bosun-sim [run] [flags]  connect the fleet until --duration passes or
//	                         SIGINT/SIGTERM
//
// Keys live in <data-dir>/<id>/device_key.pem (0600) and are reused on the
// next start, so the fleet keeps its identities. Connections come from
// 127.0.0.x source addresses (one per --per-addr devices) so that tens of
// thousands of them fit in the ephemeral port range.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Limits of the flags.
const (
	maxDevices  = 100_000
	maxDuration = 24 * time.Hour
	// maxSourceAddrs is how many 127.0.x.y addresses sourceAddr hands out.
	maxSourceAddrs = 250 * 254
)

// Config is everything bosun-sim is told.
type Config struct {
	Command        string // "run" or "keys"
	Devices        int
	Prefix         string
	First          int
	DataDir        string
	CloudURL       string
	CloudPublicKey string
	KeyAlg         string
	Duration       time.Duration
	PerAddr        int
	StatusListen   string
	BackoffBase    time.Duration
	BackoffCap     time.Duration
	Rate           int
	LogLevel       slog.Level
}

func parse(args []string, getenv func(string) string) (Config, error) {
	cfg := Config{Command: "run"}
	if len(args) > 0 && (args[0] == "run" || args[0] == "keys") {
		cfg.Command, args = args[0], args[1:]
	}
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("bosun-sim "+cfg.Command, flag.ContinueOnError)
	fs.IntVar(&cfg.Devices, "devices", 100, fmt.Sprintf("number of simulated devices, 1 to %d", maxDevices))
	fs.StringVar(&cfg.Prefix, "prefix", "sim-", "device ids are PREFIX + a number from --first")
	fs.IntVar(&cfg.First, "first", 1, "number of the first device")
	fs.StringVar(&cfg.DataDir, "data-dir", env("BOSUN_SIM_DATA_DIR", ".dev/sim"), "directory of the devices' keys and state, one subdirectory per device (BOSUN_SIM_DATA_DIR)")
	fs.StringVar(&cfg.CloudURL, "cloud-url", env("BOSUN_CLOUD_URL", ""), "cloud device endpoint, e.g. ws://127.0.0.1:8080/v1/device (BOSUN_CLOUD_URL)")
	fs.StringVar(&cfg.CloudPublicKey, "cloud-public-key", env("BOSUN_CLOUD_PUBLIC_KEY", "keys/device/cloud_public.pem"), "the cloud's public key (PEM) to pin (BOSUN_CLOUD_PUBLIC_KEY)")
	fs.StringVar(&cfg.KeyAlg, "key-alg", "ed25519", "algorithm of newly generated keys: ed25519 or rsa (RSA-PSS 3072, slow to generate)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "stop after this long (at most 24h)")
	fs.IntVar(&cfg.PerAddr, "per-addr", 1000, "devices per 127.0.x.y source address")
	fs.StringVar(&cfg.StatusListen, "status-listen", "", "serve GET /status (JSON counts by bridge status) on this loopback address; empty: none")
	fs.DurationVar(&cfg.BackoffBase, "backoff-base", 0, "reconnect backoff window of the first retry; 0: the bridge's default, 1s")
	fs.DurationVar(&cfg.BackoffCap, "backoff-cap", 0, "largest reconnect backoff window; 0: the bridge's default, 60s")
	fs.IntVar(&cfg.Rate, "rate", 0, "devices started per second at start-up; 0: all at once")
	level := fs.String("log-level", "warn", "debug, info, warn or error (info logs every session of every device)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	if cfg.Devices < 1 || cfg.Devices > maxDevices {
		errs = append(errs, fmt.Errorf("--devices %d: want 1 to %d", cfg.Devices, maxDevices))
	}
	if cfg.First < 0 {
		errs = append(errs, fmt.Errorf("--first %d: want 0 or more", cfg.First))
	}
	if !rpcproto.ValidDeviceID(cfg.Prefix + "1") {
		errs = append(errs, fmt.Errorf("--prefix %q: ids must match %s", cfg.Prefix, rpcproto.DeviceIDRule))
	}
	if cfg.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if cfg.KeyAlg != keys.AlgEd25519 && cfg.KeyAlg != "rsa" {
		errs = append(errs, fmt.Errorf("--key-alg %q: want ed25519 or rsa", cfg.KeyAlg))
	}
	if cfg.PerAddr < 1 || cfg.PerAddr > 20_000 {
		errs = append(errs, fmt.Errorf("--per-addr %d: want 1 to 20000", cfg.PerAddr))
	}
	if cfg.PerAddr >= 1 && cfg.Devices >= 1 && (cfg.Devices+cfg.PerAddr-1)/cfg.PerAddr > maxSourceAddrs {
		errs = append(errs, fmt.Errorf("--devices %d at --per-addr %d needs more than %d source addresses", cfg.Devices, cfg.PerAddr, maxSourceAddrs))
	}
	if cfg.Rate < 0 {
		errs = append(errs, fmt.Errorf("--rate %d: want 0 or more", cfg.Rate))
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level))
	}
	if cfg.Command == "run" {
		if cfg.Duration <= 0 || cfg.Duration > maxDuration {
			errs = append(errs, fmt.Errorf("--duration %v: want more than 0, at most %v", cfg.Duration, maxDuration))
		}
		if !strings.HasPrefix(cfg.CloudURL, "ws://") && !strings.HasPrefix(cfg.CloudURL, "wss://") {
			errs = append(errs, fmt.Errorf("--cloud-url %q: want ws:// or wss://", cfg.CloudURL))
		}
		if cfg.StatusListen != "" && !loopbackAddr(cfg.StatusListen) {
			errs = append(errs, fmt.Errorf("--status-listen %q: want a loopback host:port", cfg.StatusListen))
		}
	}
	return cfg, errors.Join(errs...)
}

func main() {
	cfg, err := parse(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-sim:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cfg.Command {
	case "keys":
		err = runKeys(ctx, cfg, os.Stdout)
	default:
		err = run(ctx, cfg, logger)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-sim:", err)
		os.Exit(1)
	}
}
