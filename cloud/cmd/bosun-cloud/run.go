package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/bus"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/keys"
)

// run executes one subcommand.
func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	switch cfg.Command {
	case "serve":
		return serve(ctx, cfg, logger)
	case "migrate":
		st, err := store.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer st.Close()
		applied, err := st.Migrate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.Stdout, "applied %d migrations %v\n", len(applied), applied)
		return nil
	case "user add":
		return withService(ctx, cfg, logger, func(svc *fleet.Service) error {
			pw, err := svc.CreateUser(ctx, cfg.Email, fleet.Role(cfg.Role), cfg.Org)
			if err != nil {
				return err
			}
			if cfg.Quiet {
				fmt.Fprintln(cfg.Stdout, pw)
				return nil
			}
			fmt.Fprintf(cfg.Stdout, "user %s (%s) created; password (shown once): %s\n", cfg.Email, cfg.Role, pw)
			return nil
		})
	case "token create":
		return withService(ctx, cfg, logger, func(svc *fleet.Service) error {
			secret, _, err := svc.CreateTokenForUser(ctx, cfg.Email, cfg.TokenName)
			if err != nil {
				return err
			}
			fmt.Fprintln(cfg.Stdout, secret)
			return nil
		})
	case "keys ensure":
		return ensureKeys(cfg.KeysDir, cfg.Stdout)
	}
	return fmt.Errorf("unknown command %q", cfg.Command)
}

// serve runs a replica until ctx ends (SIGTERM), then shuts it down in
// order (see server.Server.Shutdown).
func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	key, err := keys.LoadPrivate(cfg.CloudKey)
	if err != nil {
		return fmt.Errorf("loading cloud key (run scripts/ensure-cloud-keys.sh): %w", err)
	}
	var trust []crypto.PublicKey
	if cfg.CloudTrust != "" {
		if trust, err = keys.LoadPublics(cfg.CloudTrust); err != nil {
			return fmt.Errorf("loading --cloud-trust: %w", err)
		}
	}
	cluster, err := natsCluster(cfg)
	if err != nil {
		return err
	}
	srv, err := server.Start(ctx, server.Config{DatabaseURL: cfg.DatabaseURL, Listen: cfg.Listen, NATSURL: cfg.NATSURL, NATSCluster: cluster,
		CloudKey: key, CloudKeys: trust, CloudID: cfg.CloudID, Replica: cfg.Replica, PublicURL: cfg.PublicURL, TLSCertFile: cfg.TLSCert,
		TLSKeyFile: cfg.TLSKey, TrustedProxies: cfg.TrustedProxies, MaxPendingPerOrg: cfg.MaxPendingPerOrg,
		MaxPendingPerAddr: cfg.MaxPendingPerAddr, MaxPendingDevices: cfg.MaxPendingDevices,
		MaxNewPendingPerAddr: cfg.MaxNewPendingPerAddr, MaxPendingKeys: cfg.MaxPendingKeys, PendingTTL: cfg.PendingTTL,
		DataDir: cfg.DataDir, MaxArtifactSize: cfg.MaxArtifactSize, MetricsListen: cfg.MetricsListen}, logger)
	if err != nil {
		return err
	}
	if cfg.PprofListen != "" {
		stop, err := servePprof(cfg.PprofListen, logger)
		if err != nil {
			srv.Shutdown(context.Background())
			return err
		}
		defer stop()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var serveErr error
	for serving := true; serving; {
		select {
		case <-ctx.Done():
			logger.Info("shutting down")
			serving = false
		case serveErr = <-srv.Done():
			serving = false
		case serveErr = <-srv.Service().Lost():
			serving = false
		case <-hup:
			// A renewed certificate is served from now on; a broken one is
			// refused and the current one stays.
			if err := srv.ReloadTLS(); err != nil {
				logger.Error("SIGHUP: keeping the current TLS certificate", "err", err)
			} else if cfg.TLSCert != "" {
				logger.Info("SIGHUP: TLS certificate reloaded", "cert", cfg.TLSCert)
			}
		}
	}
	return errors.Join(serveErr, srv.Shutdown(context.Background()))
}

// natsCluster is the bus.Cluster of cfg (nil without --nats-cluster-listen),
// with the route secret read from its file: the content, without the
// surrounding white space.
func natsCluster(cfg Config) (*bus.Cluster, error) {
	if cfg.NATSClusterListen == "" {
		return nil, nil
	}
	secret := cfg.NATSClusterSecret
	if cfg.NATSClusterSecretFile != "" {
		b, err := os.ReadFile(cfg.NATSClusterSecretFile)
		if err != nil {
			return nil, fmt.Errorf("reading the nats route secret: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	return &bus.Cluster{Name: cfg.NATSClusterName, Listen: cfg.NATSClusterListen, Advertise: cfg.NATSClusterAdvertise,
		Routes: cfg.NATSRoutes, Secret: secret}, nil
}

// withService opens the store and a private embedded NATS (bootstrap
// commands publish nothing anyone hears) and runs fn with a Service.
func withService(ctx context.Context, cfg Config, logger *slog.Logger, fn func(*fleet.Service) error) error {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}
	b, err := bus.Open(ctx, bus.Options{Listen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Close(cctx)
	}()
	svc, err := fleet.New(ctx, fleet.Options{Store: st, NATS: b.Conn(), Logger: logger, Replica: "cli"})
	if err != nil {
		return err
	}
	defer svc.Close()
	return fn(svc)
}

// ensureKeys creates dir/cloud_private.pem when missing (never overwriting
// it), derives dir/cloud_public.pem and copies it to
// dir/device/cloud_public.pem. Idempotent.
func ensureKeys(dir string, out interface{ Write([]byte) (int, error) }) error {
	priv := filepath.Join(dir, "cloud_private.pem")
	key, created, err := keys.LoadOrGenerate(priv, keys.AlgEd25519, 0)
	if err != nil {
		return fmt.Errorf("cloud key %s: %w", priv, err)
	}
	for _, p := range []string{filepath.Join(dir, "cloud_public.pem"), filepath.Join(dir, "device", "cloud_public.pem")} {
		if err := keys.SavePublic(p, key.Public()); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	fp, _ := keys.Fingerprint(key.Public())
	verb := "kept"
	if created {
		verb = "created"
	}
	fmt.Fprintf(out, "cloud key %s %s (%s)\n", verb, priv, fp)
	return nil
}
