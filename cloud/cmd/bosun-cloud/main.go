// Command bosun-cloud is the Bosun control plane.
//
//	bosun-cloud serve                        serve devices, the API (and later the dashboard)
//	bosun-cloud migrate                      apply database migrations
//	bosun-cloud user add [--super|--role R] [--org O] EMAIL   print the generated password once
//	bosun-cloud token create --user EMAIL [--name N]          print the API token once
//	bosun-cloud keys ensure [--dir keys]     create the cloud key when missing, derive public copies
//
// Every flag has an environment fallback (BOSUN_DATABASE_URL, BOSUN_LISTEN,
// BOSUN_NATS_URL, the NATS cluster's BOSUN_NATS_CLUSTER_LISTEN,
// BOSUN_NATS_CLUSTER_ADVERTISE, BOSUN_NATS_ROUTES, BOSUN_NATS_CLUSTER_NAME,
// BOSUN_NATS_CLUSTER_SECRET_FILE (or the secret itself in
// BOSUN_NATS_CLUSTER_SECRET, environment only), BOSUN_CLOUD_KEY, BOSUN_CLOUD_ID, BOSUN_REPLICA,
// BOSUN_PUBLIC_URL, BOSUN_TLS_CERT, BOSUN_TLS_KEY, BOSUN_TRUSTED_PROXIES,
// BOSUN_METRICS_LISTEN,
// and the registration limits BOSUN_MAX_PENDING,
// BOSUN_MAX_PENDING_PER_ADDR, BOSUN_MAX_PENDING_DEVICES,
// BOSUN_MAX_NEW_PENDING_PER_ADDR, BOSUN_MAX_PENDING_KEYS, BOSUN_PENDING_TTL,
// and for OTA artifacts BOSUN_DATA_DIR, BOSUN_MAX_ARTIFACT_SIZE);
// main only parses them into a Config and calls run. SIGHUP makes serve
// read its TLS certificate again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/server"
)

// Config is everything a subcommand needs.
type Config struct {
	Command     string // serve, migrate, user add, token create, keys ensure
	DatabaseURL string
	Listen      string
	NATSURL     string
	// NATSClusterListen, NATSClusterAdvertise, NATSRoutes and
	// NATSClusterName are bus.Cluster's Listen, Advertise, Routes and
	// Name; an empty NATSClusterListen means no cluster. The route secret
	// is NATSClusterSecret (BOSUN_NATS_CLUSTER_SECRET) or the content of
	// the file NATSClusterSecretFile, read by serve.
	NATSClusterListen     string
	NATSClusterAdvertise  string
	NATSRoutes            []string
	NATSClusterName       string
	NATSClusterSecretFile string
	NATSClusterSecret     string
	CloudKey              string // path of the PEM private key
	CloudTrust            string // path of the PEM public keys announced to devices, or ""
	CloudID               string
	Replica               string
	// PublicURL, TLSCert, TLSKey and TrustedProxies are server.Config's
	// PublicURL, TLSCertFile, TLSKeyFile and TrustedProxies.
	PublicURL      string
	TLSCert        string
	TLSKey         string
	TrustedProxies []netip.Prefix
	// MetricsListen is server.Config's: a plain listener serving /metrics
	// without a token; empty means none.
	MetricsListen string
	// DataDir and MaxArtifactSize are server.Config's (OTA artifacts).
	DataDir         string
	MaxArtifactSize int64
	// PprofListen, when set, serves net/http/pprof there (profiling).
	PprofListen string

	// user add
	Email string
	Role  string
	// Quiet makes user add print the password alone, for scripts.
	Quiet bool
	// MaxPendingPerOrg bounds live pending device sessions per organisation;
	// 0 means the server's default. The other registration limits below
	// are fleet.Options of the same names; 0 means fleet's default.
	MaxPendingPerOrg     int
	MaxPendingPerAddr    int
	MaxPendingDevices    int
	MaxNewPendingPerAddr int
	MaxPendingKeys       int
	PendingTTL           time.Duration
	Org                  string
	// token create
	TokenName string
	// keys ensure
	KeysDir string

	Stdout io.Writer
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parse(os.Args[1:], os.Getenv)
	var help *helpError
	if errors.As(err, &help) {
		fmt.Print(help.text)
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bosun-cloud:", err)
		os.Exit(2)
	}
	cfg.Stdout = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("bosun-cloud failed", "command", cfg.Command, "err", err)
		os.Exit(1)
	}
}

const usage = `usage:
  bosun-cloud serve [--database-url URL] [--listen ADDR] [--nats-url URL] [--cloud-key PATH]
                    [--nats-cluster-listen ADDR --nats-cluster-secret-file PATH [--nats-routes URLS]
                     [--nats-cluster-name NAME] [--nats-cluster-advertise ADDR]]
                    [--cloud-id ID] [--replica NAME] [--public-url URL] [--tls-cert PEM --tls-key PEM]
                    [--trusted-proxies CIDR,...] [--metrics-listen ADDR] [--pending-ttl 72h]
                    [--max-pending N] [--max-pending-per-addr N] [--max-pending-devices N]
                    [--max-new-pending-per-addr N] [--max-pending-keys N]
                    [--data-dir DIR] [--max-artifact-size N]
  bosun-cloud migrate [--database-url URL]
  bosun-cloud user add [--super | --role ROLE] [--org ORG] [--quiet] EMAIL
  bosun-cloud token create --user EMAIL [--name NAME]
  bosun-cloud keys ensure [--dir DIR]`

// parse turns arguments and environment into a validated Config.
func parse(args []string, getenv func(string) string) (Config, error) {
	var cfg Config
	if len(args) == 0 {
		return cfg, errors.New(usage + "\n(run bosun-cloud --help for every flag)")
	}
	switch {
	case len(args) == 1 && (wantsHelp(args) || args[0] == "help"):
		return cfg, &helpError{allHelp()}
	case args[0] == "help":
		args = append(args[1:], "--help")
	}
	if wantsHelp(args) {
		// Help shows the built-in defaults, not the environment's.
		getenv = func(string) string { return "" }
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	host, _ := os.Hostname()
	cmd, rest := args[0], args[1:]
	if (cmd == "user" || cmd == "token" || cmd == "keys") && len(rest) > 0 {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	cfg.Command = cmd
	var proxies string // --trusted-proxies, parsed after the flags
	var routes string  // --nats-routes, split after the flags
	fs := flag.NewFlagSet("bosun-cloud "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors and help itself
	fs.Usage = func() {}
	db := func() {
		fs.StringVar(&cfg.DatabaseURL, "database-url", env("BOSUN_DATABASE_URL", ""), "PostgreSQL URL (BOSUN_DATABASE_URL)")
	}
	switch cmd {
	case "serve":
		db()
		fs.StringVar(&cfg.Listen, "listen", env("BOSUN_LISTEN", "127.0.0.1:8080"), "HTTP address (BOSUN_LISTEN)")
		fs.StringVar(&cfg.NATSURL, "nats-url", env("BOSUN_NATS_URL", ""), "external NATS URL; empty: embedded (BOSUN_NATS_URL)")
		fs.StringVar(&cfg.NATSClusterListen, "nats-cluster-listen", env("BOSUN_NATS_CLUSTER_LISTEN", ""), "`ADDR` (host:port) where the embedded NATS accepts the other replicas' routes; needs the route secret; empty: no cluster (BOSUN_NATS_CLUSTER_LISTEN)")
		fs.StringVar(&cfg.NATSClusterAdvertise, "nats-cluster-advertise", env("BOSUN_NATS_CLUSTER_ADVERTISE", ""), "`ADDR` (host:port) the other replicas are told to route to; empty: --nats-cluster-listen (BOSUN_NATS_CLUSTER_ADVERTISE)")
		fs.StringVar(&routes, "nats-routes", env("BOSUN_NATS_ROUTES", ""), "`URLS`: comma-separated nats-route://host:port of other replicas' cluster listeners, without credentials; the rest are learnt from them (BOSUN_NATS_ROUTES)")
		fs.StringVar(&cfg.NATSClusterName, "nats-cluster-name", env("BOSUN_NATS_CLUSTER_NAME", ""), "NATS cluster `NAME`, the same on every replica; empty: bosun (BOSUN_NATS_CLUSTER_NAME)")
		fs.StringVar(&cfg.NATSClusterSecretFile, "nats-cluster-secret-file", env("BOSUN_NATS_CLUSTER_SECRET_FILE", ""), "`PATH` of a file holding the route secret, the same on every replica, at least 16 bytes; or set BOSUN_NATS_CLUSTER_SECRET (BOSUN_NATS_CLUSTER_SECRET_FILE)")
		cfg.NATSClusterSecret = getenv("BOSUN_NATS_CLUSTER_SECRET")
		fs.StringVar(&cfg.CloudKey, "cloud-key", env("BOSUN_CLOUD_KEY", "keys/cloud_private.pem"), "cloud private key PEM (BOSUN_CLOUD_KEY)")
		fs.StringVar(&cfg.CloudTrust, "cloud-trust", env("BOSUN_CLOUD_TRUST", ""), "`FILE` of PEM public keys that accepted devices are told to trust from now on, the --cloud-key's among them: a rotation of the cloud key (docs/security.md); empty: none announced (BOSUN_CLOUD_TRUST)")
		fs.StringVar(&cfg.CloudID, "cloud-id", env("BOSUN_CLOUD_ID", "bosun-cloud"), "cloud signer name (BOSUN_CLOUD_ID)")
		fs.StringVar(&cfg.PublicURL, "public-url", env("BOSUN_PUBLIC_URL", ""), "where users and devices reach the cloud, e.g. https://bosun.example.com; https makes dashboard cookies Secure, its origin is trusted (BOSUN_PUBLIC_URL)")
		fs.StringVar(&cfg.TLSCert, "tls-cert", env("BOSUN_TLS_CERT", ""), "serve HTTPS with this PEM certificate (chain); needs --tls-key; reread on SIGHUP (BOSUN_TLS_CERT)")
		fs.StringVar(&cfg.TLSKey, "tls-key", env("BOSUN_TLS_KEY", ""), "the PEM private key of --tls-cert (BOSUN_TLS_KEY)")
		fs.StringVar(&proxies, "trusted-proxies", env("BOSUN_TRUSTED_PROXIES", ""), "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client; empty: none (BOSUN_TRUSTED_PROXIES)")
		fs.StringVar(&cfg.MetricsListen, "metrics-listen", env("BOSUN_METRICS_LISTEN", ""), "also serve /metrics here without a token, for Prometheus on an internal network (e.g. 127.0.0.1:9464); empty: only on --listen, to a super user's API token (BOSUN_METRICS_LISTEN)")
		for _, l := range []struct {
			flag, env string
			v         *int
			help      string
		}{
			{"max-pending", "BOSUN_MAX_PENDING", &cfg.MaxPendingPerOrg, "live pending device sessions per organisation; 0: the default, 1000"},
			{"max-pending-per-addr", "BOSUN_MAX_PENDING_PER_ADDR", &cfg.MaxPendingPerAddr, "live pending device sessions per source address (IPv6: per /64); 0: the default, 16"},
			{"max-pending-devices", "BOSUN_MAX_PENDING_DEVICES", &cfg.MaxPendingDevices, "devices per organisation no operator has decided on; 0: the default, 10000"},
			{"max-new-pending-per-addr", "BOSUN_MAX_NEW_PENDING_PER_ADDR", &cfg.MaxNewPendingPerAddr, "new undecided devices per source address and hour; 0: the default, 100"},
			{"max-pending-keys", "BOSUN_MAX_PENDING_KEYS", &cfg.MaxPendingKeys, "pending keys per device; 0: the default, 4"},
		} {
			if v := env(l.env, ""); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return cfg, fmt.Errorf("%s: want a number >= 0, got %q", l.env, v)
				}
				*l.v = n
			}
			fs.IntVar(l.v, l.flag, *l.v, l.help+" ("+l.env+")")
		}
		if v := env("BOSUN_PENDING_TTL", ""); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return cfg, fmt.Errorf("BOSUN_PENDING_TTL: want a duration like 72h, got %q", v)
			}
			cfg.PendingTTL = d
		}
		fs.DurationVar(&cfg.PendingTTL, "pending-ttl", cfg.PendingTTL, "undecided devices and pending keys not seen for this long are deleted; 0: the default, 72h (BOSUN_PENDING_TTL)")
		fs.StringVar(&cfg.DataDir, "data-dir", env("BOSUN_DATA_DIR", ""), "directory of the cloud's files: OTA artifacts under artifacts/sha256 (shared by every replica); empty: artifacts are refused (BOSUN_DATA_DIR)")
		if v := env("BOSUN_MAX_ARTIFACT_SIZE", ""); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return cfg, fmt.Errorf("BOSUN_MAX_ARTIFACT_SIZE: want a number of bytes >= 0, got %q", v)
			}
			cfg.MaxArtifactSize = n
		}
		fs.Int64Var(&cfg.MaxArtifactSize, "max-artifact-size", cfg.MaxArtifactSize, "largest OTA artifact upload in bytes, accepted at it, refused beyond (413); 0: the default, 1073741824 (1 GiB) (BOSUN_MAX_ARTIFACT_SIZE)")
		fs.StringVar(&cfg.PprofListen, "pprof-listen", env("BOSUN_PPROF_LISTEN", ""), "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; never expose it; empty: off (BOSUN_PPROF_LISTEN)")
		fs.StringVar(&cfg.Replica, "replica", env("BOSUN_REPLICA", ""), "this replica's name, held while it runs; default HOST:PORT of --listen, stable across restarts (BOSUN_REPLICA)")
	case "migrate":
		db()
	case "user add":
		db()
		super := fs.Bool("super", false, "make a super user (same as --role super)")
		fs.StringVar(&cfg.Role, "role", "", "super, admin, operator or viewer")
		fs.StringVar(&cfg.Org, "org", "", "organisation (created when missing); default: default")
		fs.BoolVar(&cfg.Quiet, "quiet", false, "print the password alone (for scripts)")
		if err := fs.Parse(rest); err != nil {
			return cfg, flagError(cmd, fs, err)
		}
		if *super {
			if cfg.Role != "" && cfg.Role != "super" {
				return cfg, errors.New("--super and --role disagree")
			}
			cfg.Role = "super"
		}
		if cfg.Role == "" {
			return cfg, errors.New("user add: give --super or --role")
		}
		if fs.NArg() != 1 {
			return cfg, errors.New("user add: give exactly one EMAIL")
		}
		cfg.Email = fs.Arg(0)
		return cfg, validate(cfg)
	case "token create":
		db()
		fs.StringVar(&cfg.Email, "user", "", "email of the token's user")
		fs.StringVar(&cfg.TokenName, "name", "cli", "token name")
	case "keys ensure":
		fs.StringVar(&cfg.KeysDir, "dir", "keys", "keys directory")
	default:
		return cfg, fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	if err := fs.Parse(rest); err != nil {
		return cfg, flagError(cmd, fs, err)
	}
	if fs.NArg() != 0 {
		return cfg, fmt.Errorf("%s: unexpected arguments %s", cmd, strings.Join(fs.Args(), " "))
	}
	if proxies != "" {
		p, err := server.ParseTrustedProxies(proxies)
		if err != nil {
			return cfg, fmt.Errorf("--trusted-proxies (BOSUN_TRUSTED_PROXIES): %w", err)
		}
		cfg.TrustedProxies = p
	}
	for _, r := range strings.Split(routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.NATSRoutes = append(cfg.NATSRoutes, r)
		}
	}
	if cmd == "serve" && cfg.Replica == "" {
		cfg.Replica = defaultReplica(host, cfg.Listen, os.Getpid())
	}
	return cfg, validate(cfg)
}

// defaultReplica names a replica that was given no name: the host name and
// the port it listens on (pi-cloud:8080), the same after every restart, so
// a restart takes over its previous run's row and sessions instead of
// adding a row. With port 0 (a random port) the port says nothing, and the
// name is host-pid.
func defaultReplica(host, listen string, pid int) string {
	if host == "" {
		host = "localhost"
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "0" {
		return fmt.Sprintf("%s-%d", host, pid)
	}
	return host + ":" + port
}

func validate(cfg Config) error {
	switch cfg.Command {
	case "serve", "migrate", "user add", "token create":
		if cfg.DatabaseURL == "" {
			return errors.New("--database-url or BOSUN_DATABASE_URL is required")
		}
	}
	switch cfg.Command {
	case "serve":
		if cfg.CloudKey == "" || cfg.Listen == "" || cfg.Replica == "" {
			return errors.New("serve: --cloud-key, --listen and --replica must not be empty")
		}
		if cfg.PublicURL != "" {
			if _, err := server.ParsePublicURL(cfg.PublicURL); err != nil {
				return fmt.Errorf("serve: --public-url (BOSUN_PUBLIC_URL): %w", err)
			}
		}
		if err := validateCluster(cfg); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
			return errors.New("serve: --tls-cert and --tls-key (BOSUN_TLS_CERT, BOSUN_TLS_KEY) go together")
		}
		if cfg.MaxPendingPerOrg < 0 || cfg.MaxPendingPerAddr < 0 || cfg.MaxPendingDevices < 0 ||
			cfg.MaxNewPendingPerAddr < 0 || cfg.MaxPendingKeys < 0 || cfg.PendingTTL < 0 || cfg.MaxArtifactSize < 0 {
			return errors.New("serve: the registration limits, --pending-ttl and --max-artifact-size must not be negative (0: the default)")
		}
	case "token create":
		if cfg.Email == "" {
			return errors.New("token create: --user is required")
		}
	case "keys ensure":
		if cfg.KeysDir == "" {
			return errors.New("keys ensure: --dir must not be empty")
		}
	}
	return nil
}

// validateCluster checks the NATS cluster settings that go together; the
// secret's length and the addresses are checked by bus.Open.
func validateCluster(cfg Config) error {
	if cfg.NATSClusterListen == "" {
		if len(cfg.NATSRoutes) > 0 || cfg.NATSClusterAdvertise != "" || cfg.NATSClusterName != "" || cfg.NATSClusterSecretFile != "" {
			return errors.New("--nats-routes, --nats-cluster-advertise, --nats-cluster-name and --nats-cluster-secret-file need --nats-cluster-listen (BOSUN_NATS_CLUSTER_LISTEN)")
		}
		return nil
	}
	if cfg.NATSURL != "" {
		return errors.New("--nats-url (an external NATS) and --nats-cluster-listen (a cluster of embedded servers) exclude each other")
	}
	switch {
	case cfg.NATSClusterSecretFile == "" && cfg.NATSClusterSecret == "":
		return errors.New("--nats-cluster-listen needs the route secret: --nats-cluster-secret-file (BOSUN_NATS_CLUSTER_SECRET_FILE) or BOSUN_NATS_CLUSTER_SECRET")
	case cfg.NATSClusterSecretFile != "" && cfg.NATSClusterSecret != "":
		return errors.New("give the route secret once: --nats-cluster-secret-file (BOSUN_NATS_CLUSTER_SECRET_FILE) or BOSUN_NATS_CLUSTER_SECRET")
	}
	return nil
}
