package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/bus"
)

// TestParseCluster: the NATS cluster settings from flags and environment,
// and every combination that cannot work refused before anything starts.
func TestParseCluster(t *testing.T) {
	base := map[string]string{"BOSUN_DATABASE_URL": "postgres://db"}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(Config) bool
	}{
		{name: "no cluster by default", args: []string{"serve"}, check: func(c Config) bool {
			return c.NATSClusterListen == "" && c.NATSRoutes == nil && c.NATSClusterSecret == ""
		}},
		{name: "flags", args: []string{"serve", "--nats-cluster-listen", "127.0.0.1:6222", "--nats-routes", " nats-route://10.0.0.2:6222, 10.0.0.3:6222 ,",
			"--nats-cluster-name", "eu", "--nats-cluster-advertise", "10.0.0.1:6222", "--nats-cluster-secret-file", "/run/secret"},
			check: func(c Config) bool {
				return c.NATSClusterListen == "127.0.0.1:6222" && slices.Equal(c.NATSRoutes, []string{"nats-route://10.0.0.2:6222", "10.0.0.3:6222"}) &&
					c.NATSClusterName == "eu" && c.NATSClusterAdvertise == "10.0.0.1:6222" && c.NATSClusterSecretFile == "/run/secret"
			}},
		{name: "environment, secret in it", env: map[string]string{"BOSUN_NATS_CLUSTER_LISTEN": "0.0.0.0:6222",
			"BOSUN_NATS_ROUTES": "a:1,b:2", "BOSUN_NATS_CLUSTER_SECRET": "s3cret-s3cret-s3cret"}, args: []string{"serve"},
			check: func(c Config) bool {
				return c.NATSClusterListen == "0.0.0.0:6222" && len(c.NATSRoutes) == 2 && c.NATSClusterSecret == "s3cret-s3cret-s3cret"
			}},
		{name: "listener without a secret", args: []string{"serve", "--nats-cluster-listen", "127.0.0.1:6222"}, wantErr: "needs the route secret"},
		{name: "secret twice", args: []string{"serve", "--nats-cluster-listen", "127.0.0.1:6222", "--nats-cluster-secret-file", "f"},
			env: map[string]string{"BOSUN_NATS_CLUSTER_SECRET": "x"}, wantErr: "give the route secret once"},
		{name: "routes without a listener", args: []string{"serve", "--nats-routes", "127.0.0.1:6222"}, wantErr: "need --nats-cluster-listen"},
		{name: "name without a listener", args: []string{"serve", "--nats-cluster-name", "eu"}, wantErr: "need --nats-cluster-listen"},
		{name: "external and cluster", args: []string{"serve", "--nats-url", "nats://n:4222", "--nats-cluster-listen", "127.0.0.1:6222",
			"--nats-cluster-secret-file", "f"}, wantErr: "exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := parse(tc.args, func(k string) string { return env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(cfg) {
				t.Fatalf("parse: %+v, %v", cfg, err)
			}
		})
	}
}

// TestNATSClusterSecretFile: serve reads the secret from its file without
// the white space around it; a missing file is an error, and a short
// secret is refused by the bus, at and beyond its bound.
func TestNATSClusterSecretFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, []byte("  0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := natsCluster(Config{NATSClusterListen: "127.0.0.1:0", NATSClusterSecretFile: f, NATSRoutes: []string{"127.0.0.1:1"}})
	if err != nil || c.Secret != "0123456789abcdef" || c.Listen != "127.0.0.1:0" || len(c.Routes) != 1 {
		t.Fatalf("natsCluster: %+v, %v", c, err)
	}
	if c, err := natsCluster(Config{}); c != nil || err != nil {
		t.Fatalf("no listener: %+v, %v; want nil, nil", c, err)
	}
	if _, err := natsCluster(Config{NATSClusterListen: "127.0.0.1:0", NATSClusterSecretFile: filepath.Join(dir, "none")}); err == nil ||
		!strings.Contains(err.Error(), "reading the nats route secret") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(f, []byte("0123456789abcde\n"), 0o600); err != nil { // 15 bytes
		t.Fatal(err)
	}
	c, err = natsCluster(Config{NATSClusterListen: "127.0.0.1:0", NATSClusterSecretFile: f})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(t.Context(), bus.Options{Cluster: c})
	if err == nil {
		b.Close(t.Context())
		t.Fatal("a 15-byte secret was accepted")
	}
	if !errors.Is(err, bus.ErrClusterConfig) {
		t.Fatalf("short secret: %v", err)
	}
}
