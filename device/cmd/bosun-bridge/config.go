package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Config is everything bosun-bridge is told. JSON names are those of the
// config file.
type Config struct {
	DeviceID        string            `json:"device_id"`
	DataDir         string            `json:"data_dir"`
	CloudURL        string            `json:"cloud_url"`
	CloudPublicKey  string            `json:"cloud_public_key"`
	CloudID         string            `json:"cloud_id"`
	CloudCA         string            `json:"cloud_ca"`
	KeyAlg          string            `json:"key_alg"`
	NATSListen      string            `json:"nats_listen"`
	NATSURL         string            `json:"nats_url"`
	NATSToken       string            `json:"nats_token"`
	EnrollmentToken string            `json:"enrollment_token"`
	Attributes      map[string]string `json:"attributes"`
	LogLevel        string            `json:"log_level"`
	RejectedRetry   string            `json:"rejected_retry"`
	PprofListen     string            `json:"pprof_listen"`
	MetricsListen   string            `json:"metrics_listen"`

	level         slog.Level
	httpClient    *http.Client // trusts CloudCA; nil: the system's roots
	rejectedRetry time.Duration
}

// Bounds of --rejected-retry: often enough that a device accepted again is
// back within seconds, never so often that a rejected fleet floods the
// cloud with handshakes.
const (
	minRejectedRetry = time.Second
	maxRejectedRetry = time.Hour
)

// setting ties a field to its flag and environment variable.
type setting struct {
	flag, env, def, usage string
	field                 func(*Config) *string
}

var settings = []setting{
	{"device-id", "BOSUN_DEVICE_ID", "", "device id (default: the host name, lower-cased)", func(c *Config) *string { return &c.DeviceID }},
	{"data-dir", "BOSUN_DATA_DIR", "/var/lib/bosun", "data directory: key, nats.url, nats.token, state.json, outbox/, logs/", func(c *Config) *string { return &c.DataDir }},
	{"cloud-url", "BOSUN_CLOUD_URL", "", "cloud device endpoint `URL`, e.g. ws://127.0.0.1:8080/v1/device; several, comma-separated, are tried in turn (one per replica, when no load balancer is in front)", func(c *Config) *string { return &c.CloudURL }},
	{"cloud-public-key", "BOSUN_CLOUD_PUBLIC_KEY", "keys/device/cloud_public.pem", "the cloud's public key (PEM) to pin; the file may hold several keys (a rotation), and the keys the cloud announces later are kept in the data dir (cloud_keys.pem)", func(c *Config) *string { return &c.CloudPublicKey }},
	{"cloud-ca", "BOSUN_CLOUD_CA", "", "PEM file of the CA certificate(s) to trust for a wss:// cloud, instead of the system's roots", func(c *Config) *string { return &c.CloudCA }},
	{"cloud-id", "BOSUN_CLOUD_ID", "", "the cloud's signer name to require (default: any, verified by the pinned key)", func(c *Config) *string { return &c.CloudID }},
	{"key-alg", "BOSUN_KEY_ALG", "ed25519", "algorithm of a newly generated device key: ed25519 or rsa", func(c *Config) *string { return &c.KeyAlg }},
	{"nats-listen", "BOSUN_NATS_LISTEN", "127.0.0.1:4222", "embedded NATS address (port 0: random)", func(c *Config) *string { return &c.NATSListen }},
	{"nats-url", "BOSUN_NATS_URL", "", "use this NATS instead of the embedded server", func(c *Config) *string { return &c.NATSURL }},
	{"nats-token", "BOSUN_NATS_TOKEN", "", "NATS token (default: <data-dir>/nats.token, generated)", func(c *Config) *string { return &c.NATSToken }},
	{"enrollment-token", "BOSUN_ENROLLMENT_TOKEN", "", "organisation enrollment token sent with registration", func(c *Config) *string { return &c.EnrollmentToken }},
	{"log-level", "BOSUN_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }},
	{"pprof-listen", "BOSUN_PPROF_LISTEN", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6061; never expose it; empty: off",
		func(c *Config) *string { return &c.PprofListen }},
	{"rejected-retry", "BOSUN_REJECTED_RETRY", "10s", "reconnect interval while the cloud rejects the key (1s to 1h; each wait is jittered between half of it and all of it)",
		func(c *Config) *string { return &c.RejectedRetry }},
	{"metrics-listen", "BOSUN_METRICS_LISTEN", "", "serve Prometheus metrics at http://ADDR/metrics, without authentication: use a loopback or internal address (default: off)",
		func(c *Config) *string { return &c.MetricsListen }},
}

// loadConfig builds the Config from defaults, the config file, the
// environment and the flags, in that order of precedence, and validates it.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	return loadConfigFor(args, getenv, true)
}

// loadConfigFor is loadConfig; needCloud false (the fingerprint command)
// does not require a cloud URL.
func loadConfigFor(args []string, getenv func(string) string, needCloud bool) (Config, error) {
	fs := flag.NewFlagSet("bosun-bridge", flag.ContinueOnError)
	configPath := fs.String("config", getenv("BOSUN_BRIDGE_CONFIG"), "JSON config file (env BOSUN_BRIDGE_CONFIG)")
	flagVals := map[string]*string{}
	for _, s := range settings {
		usage := fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def)
		if s.flag == "cloud-url" {
			// Repeatable: each --cloud-url adds one to the list.
			v := new(string)
			fs.Var(listFlag{v}, s.flag, usage+"; repeatable")
			flagVals[s.flag] = v
			continue
		}
		flagVals[s.flag] = fs.String(s.flag, "", usage)
	}
	var attrs attrFlag
	fs.Var(&attrs, "attr", "identity attribute key=value, repeatable (env BOSUN_ATTRIBUTES=k=v,k=v)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var cfg Config
	for _, s := range settings {
		*s.field(&cfg) = s.def
	}
	if *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return Config{}, fmt.Errorf("reading config: %w", err)
		}
		var file Config
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&file); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", *configPath, err)
		}
		for _, s := range settings {
			if v := *s.field(&file); v != "" {
				*s.field(&cfg) = v
			}
		}
		cfg.Attributes = file.Attributes
	}
	visited := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { visited[f.Name] = true })
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			*s.field(&cfg) = v
		}
		if visited[s.flag] {
			*s.field(&cfg) = *flagVals[s.flag]
		}
	}
	if v := getenv("BOSUN_ATTRIBUTES"); v != "" {
		m, err := parseAttrs(strings.Split(v, ","))
		if err != nil {
			return Config{}, fmt.Errorf("BOSUN_ATTRIBUTES: %w", err)
		}
		cfg.Attributes = merge(cfg.Attributes, m)
	}
	if len(attrs) > 0 {
		m, err := parseAttrs(attrs)
		if err != nil {
			return Config{}, fmt.Errorf("--attr: %w", err)
		}
		cfg.Attributes = merge(cfg.Attributes, m)
	}
	return cfg, cfg.validate(needCloud)
}

// hostname is os.Hostname; tests replace it.
var hostname = os.Hostname

// defaultDeviceID is the device id of a host named h: the whole host name,
// lower-cased (host names are case-insensitive, device ids are not, so one
// host is one id whatever the case of its name), without the trailing dot
// of an absolute name.
func defaultDeviceID(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

func (c *Config) validate(needCloud bool) error {
	var errs []error
	if c.DeviceID == "" {
		h, err := hostname()
		switch {
		case err != nil || h == "":
			errs = append(errs, errors.New("device id: the host name is unknown; set BOSUN_DEVICE_ID or --device-id"))
		case !rpcproto.ValidDeviceID(defaultDeviceID(h)):
			errs = append(errs, fmt.Errorf("device id: the host name %q is not a device id (%s); set BOSUN_DEVICE_ID or --device-id", h, rpcproto.DeviceIDRule))
		default:
			c.DeviceID = defaultDeviceID(h)
		}
	} else if !rpcproto.ValidDeviceID(c.DeviceID) {
		errs = append(errs, fmt.Errorf("device id %q: want %s", c.DeviceID, rpcproto.DeviceIDRule))
	}
	if c.CloudURL == "" && needCloud {
		errs = append(errs, errors.New("cloud URL: set BOSUN_CLOUD_URL or --cloud-url"))
	} else if _, err := bridge.SplitCloudURLs(c.CloudURL); err != nil && needCloud {
		errs = append(errs, err)
	}
	if c.CloudCA != "" && needCloud {
		var plain string // a cloud URL without TLS
		for _, u := range strings.Split(c.CloudURL, ",") {
			if u = strings.TrimSpace(u); u != "" && !strings.HasPrefix(strings.ToLower(u), "wss://") {
				plain = u
			}
		}
		if plain != "" {
			errs = append(errs, fmt.Errorf("cloud CA %s: the cloud URL %s has no TLS; use wss:// or drop BOSUN_CLOUD_CA", c.CloudCA, plain))
		} else if client, err := cloudHTTPClient(c.CloudCA); err != nil {
			errs = append(errs, err)
		} else {
			c.httpClient = client
		}
	}
	switch c.KeyAlg {
	case "ed25519", "rsa", "rsa-pss-sha256":
	default:
		errs = append(errs, fmt.Errorf("key alg %q: want ed25519 or rsa", c.KeyAlg))
	}
	if err := c.level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level %q: %w", c.LogLevel, err))
	}
	if d, err := time.ParseDuration(c.RejectedRetry); err != nil || d < minRejectedRetry || d > maxRejectedRetry {
		errs = append(errs, fmt.Errorf("rejected retry %q: want a duration from 1s to 1h, e.g. 10s", c.RejectedRetry))
	} else {
		c.rejectedRetry = d
	}
	return errors.Join(errs...)
}

type attrFlag []string

func (a *attrFlag) String() string     { return strings.Join(*a, ",") }
func (a *attrFlag) Set(v string) error { *a = append(*a, v); return nil }

func parseAttrs(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func merge(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

// listFlag is a repeatable string flag whose values are joined with
// commas: --cloud-url a --cloud-url b is --cloud-url a,b.
type listFlag struct{ p *string }

func (f listFlag) String() string {
	if f.p == nil {
		return ""
	}
	return *f.p
}

func (f listFlag) Set(v string) error {
	if *f.p != "" {
		v = *f.p + "," + v
	}
	*f.p = v
	return nil
}
