// Command bosun-bridge connects a device to the Bosun cloud: it holds the
// signed websocket session, serves the device-local NATS that workers use,
// and forwards calls both ways. See device/internal/bridge.
//
// Configuration comes from, in increasing precedence: defaults, a JSON file
// (--config or BOSUN_BRIDGE_CONFIG), the environment, then flags. Run with -h for
// the list.
//
// `bosun-bridge fingerprint [flags]` prints the device's id, key algorithm
// and fingerprint from its data dir, for the operator to compare with what
// the dashboard shows before accepting it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/keys"
)

func main() {
	args := os.Args[1:]
	fingerprint := len(args) > 0 && args[0] == "fingerprint"
	if fingerprint {
		args = args[1:]
	}
	cfg, err := loadConfigFor(args, os.Getenv, !fingerprint)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-bridge:", err)
		os.Exit(2)
	}
	if fingerprint {
		if err := printFingerprint(cfg, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bosun-bridge fingerprint:", err)
			os.Exit(1)
		}
		return
	}
	logger, closeLog, err := datadir.NewLogger(cfg.DataDir, "bridge", cfg.level, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-bridge:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, logger)
	stop()
	if err != nil {
		logger.Error("bridge failed", "err", err)
		closeLog()
		os.Exit(1)
	}
	closeLog()
}

// releaseVersion is the module version `go install …/bosun-bridge@vX.Y.Z`
// records in the binary; empty for a build of a working tree, which reports
// bridge.Version.
func releaseVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return ""
	}
	return bi.Main.Version
}

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if v := releaseVersion(); v != "" {
		bridge.Version = v
	}
	// Every key of the file is pinned: during a rotation it may hold the
	// cloud's current and next key.
	cloudKeys, err := keys.LoadPublics(cfg.CloudPublicKey)
	if err != nil {
		return fmt.Errorf("loading the cloud's public key (BOSUN_CLOUD_PUBLIC_KEY): %w", err)
	}
	b, err := bridge.New(ctx, bridge.Options{
		DeviceID:        cfg.DeviceID,
		DataDir:         cfg.DataDir,
		CloudURL:        cfg.CloudURL,
		CloudKey:        cloudKeys[0],
		CloudKeys:       cloudKeys[1:],
		CloudID:         cfg.CloudID,
		KeyAlg:          cfg.KeyAlg,
		Attributes:      cfg.Attributes,
		EnrollmentToken: cfg.EnrollmentToken,
		NATSListen:      cfg.NATSListen,
		NATSURL:         cfg.NATSURL,
		NATSToken:       cfg.NATSToken,
		HTTPClient:      cfg.httpClient,
		RejectedRetry:   cfg.rejectedRetry,
		Logger:          logger,
		Metrics:         cfg.MetricsListen != "",
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if cfg.PprofListen != "" {
		stop, err := servePprof(cfg.PprofListen, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.MetricsListen != "" {
		stop, err := serveMetrics(cfg.MetricsListen, b.MetricsHandler(), logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	logger.Info("bosun-bridge starting", "version", bridge.Version, "fingerprint", b.Fingerprint(),
		"data_dir", cfg.DataDir, "nats_url", b.NATSURL(), "metrics_listen", cfg.MetricsListen)
	return b.Run(ctx)
}

// serveMetrics serves h at http://addr/metrics until stop, which waits for
// the server to end.
func serveMetrics(addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen (BOSUN_METRICS_LISTEN): %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}
