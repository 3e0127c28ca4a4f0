package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	env := map[string]string{"BOSUN_DATABASE_URL": "postgres://db", "BOSUN_LISTEN": "127.0.0.1:9999"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(Config) bool
	}{
		{name: "serve from env", args: []string{"serve"}, check: func(c Config) bool {
			return c.DatabaseURL == "postgres://db" && c.Listen == "127.0.0.1:9999" && c.CloudKey == "keys/cloud_private.pem" &&
				c.CloudID == "bosun-cloud" && c.NATSURL == "" && c.Replica != ""
		}},
		{name: "flag beats env", args: []string{"serve", "--listen", ":1"}, check: func(c Config) bool { return c.Listen == ":1" }},
		{name: "user add super", args: []string{"user", "add", "--super", "a@b.c"}, check: func(c Config) bool {
			return c.Command == "user add" && c.Role == "super" && c.Email == "a@b.c"
		}},
		{name: "user add needs a role", args: []string{"user", "add", "a@b.c"}, wantErr: true},
		{name: "user add role and org", args: []string{"user", "add", "--role", "viewer", "--org", "acme", "v@b.c"},
			check: func(c Config) bool { return c.Role == "viewer" && c.Org == "acme" }},
		{name: "token create", args: []string{"token", "create", "--user", "a@b.c", "--name", "ci"},
			check: func(c Config) bool { return c.Email == "a@b.c" && c.TokenName == "ci" }},
		{name: "token create needs user", args: []string{"token", "create"}, wantErr: true},
		{name: "keys ensure", args: []string{"keys", "ensure", "--dir", "k"}, check: func(c Config) bool { return c.KeysDir == "k" }},
		{name: "max pending flag", args: []string{"serve", "--max-pending", "7"}, check: func(c Config) bool { return c.MaxPendingPerOrg == 7 }},
		{name: "registration limit flags", args: []string{"serve", "--max-pending-per-addr", "3", "--max-pending-devices", "50",
			"--max-new-pending-per-addr", "9", "--max-pending-keys", "2", "--pending-ttl", "24h"}, check: func(c Config) bool {
			return c.MaxPendingPerAddr == 3 && c.MaxPendingDevices == 50 && c.MaxNewPendingPerAddr == 9 && c.MaxPendingKeys == 2 && c.PendingTTL == 24*time.Hour
		}},
		{name: "registration limits default to 0 (fleet's defaults)", args: []string{"serve"}, check: func(c Config) bool {
			return c.MaxPendingPerAddr == 0 && c.MaxPendingDevices == 0 && c.MaxNewPendingPerAddr == 0 && c.MaxPendingKeys == 0 && c.PendingTTL == 0
		}},
		{name: "negative limit flag", args: []string{"serve", "--max-pending-keys", "-1"}, wantErr: true},
		{name: "negative ttl flag", args: []string{"serve", "--pending-ttl", "-1h"}, wantErr: true},
		{name: "user add quiet", args: []string{"user", "add", "--super", "--quiet", "a@b.c"}, check: func(c Config) bool { return c.Quiet && c.Email == "a@b.c" }},
		{name: "production settings", args: []string{"serve", "--public-url", "https://Bosun.Example.com", "--tls-cert", "c.pem", "--tls-key", "k.pem",
			"--trusted-proxies", "127.0.0.1, 10.0.0.0/8,::1"}, check: func(c Config) bool {
			return c.PublicURL == "https://Bosun.Example.com" && c.TLSCert == "c.pem" && c.TLSKey == "k.pem" && len(c.TrustedProxies) == 3 &&
				c.TrustedProxies[1].String() == "10.0.0.0/8" && c.TrustedProxies[2].String() == "::1/128"
		}},
		{name: "no proxies by default", args: []string{"serve"}, check: func(c Config) bool { return c.TrustedProxies == nil && c.PublicURL == "" }},
		{name: "public url with a path", args: []string{"serve", "--public-url", "https://bosun.example.com/bosun"}, wantErr: true},
		{name: "public url not http", args: []string{"serve", "--public-url", "ftp://bosun.example.com"}, wantErr: true},
		{name: "public url without host", args: []string{"serve", "--public-url", "https://"}, wantErr: true},
		{name: "tls cert without key", args: []string{"serve", "--tls-cert", "c.pem"}, wantErr: true},
		{name: "tls key without cert", args: []string{"serve", "--tls-key", "k.pem"}, wantErr: true},
		{name: "bad trusted proxy", args: []string{"serve", "--trusted-proxies", "10.0.0.0/8,proxy.local"}, wantErr: true},
		{name: "data dir and artifact limit", args: []string{"serve", "--data-dir", "/var/lib/bosun", "--max-artifact-size", "1048576"},
			check: func(c Config) bool { return c.DataDir == "/var/lib/bosun" && c.MaxArtifactSize == 1<<20 }},
		{name: "no data dir by default", args: []string{"serve"}, check: func(c Config) bool { return c.DataDir == "" && c.MaxArtifactSize == 0 }},
		{name: "negative artifact limit", args: []string{"serve", "--max-artifact-size", "-1"}, wantErr: true},
		{name: "unknown", args: []string{"frobnicate"}, wantErr: true},
		{name: "stray argument", args: []string{"migrate", "extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(tt.args, getenv)
			if err != nil {
				t.Logf("error: %v", err)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(c) {
				t.Fatalf("config = %+v", c)
			}
		})
	}
}

// TestParseProductionEnv: every production setting has its environment
// variable, and a bad one is refused with the variable's name.
func TestParseProductionEnv(t *testing.T) {
	env := map[string]string{"BOSUN_DATABASE_URL": "postgres://db", "BOSUN_PUBLIC_URL": "https://bosun.example.com",
		"BOSUN_TLS_CERT": "/etc/bosun/tls.crt", "BOSUN_TLS_KEY": "/etc/bosun/tls.key", "BOSUN_TRUSTED_PROXIES": "192.0.2.10"}
	c, err := parse([]string{"serve"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != env["BOSUN_PUBLIC_URL"] || c.TLSCert != env["BOSUN_TLS_CERT"] || c.TLSKey != env["BOSUN_TLS_KEY"] ||
		len(c.TrustedProxies) != 1 || c.TrustedProxies[0].String() != "192.0.2.10/32" {
		t.Fatalf("config = %+v", c)
	}
	for k, v := range map[string]string{"BOSUN_PUBLIC_URL": "bosun.example.com", "BOSUN_TRUSTED_PROXIES": "10.0.0.0/33"} {
		bad := map[string]string{"BOSUN_DATABASE_URL": "postgres://db", k: v}
		_, err := parse([]string{"serve"}, func(k string) string { return bad[k] })
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: err = %v, want one naming %s", k, v, err, k)
		}
	}
}

func TestEnsureKeysIdempotent(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := ensureKeys(dir, &out); err != nil {
		t.Fatal(err)
	}
	priv1, _ := os.ReadFile(filepath.Join(dir, "cloud_private.pem"))
	if err := ensureKeys(dir, &out); err != nil {
		t.Fatal(err)
	}
	priv2, _ := os.ReadFile(filepath.Join(dir, "cloud_private.pem"))
	if len(priv1) == 0 || !bytes.Equal(priv1, priv2) {
		t.Fatal("private key changed on the second run")
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "cloud_public.pem"))
	dev, _ := os.ReadFile(filepath.Join(dir, "device", "cloud_public.pem"))
	if len(pub) == 0 || !bytes.Equal(pub, dev) {
		t.Fatal("public key copies differ")
	}
	if st, _ := os.Stat(filepath.Join(dir, "cloud_private.pem")); st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", st.Mode())
	}
}

func TestParseMaxPendingFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		value   string
		want    int
		wantErr bool
	}{
		{name: "number", value: "12", want: 12},
		{name: "not a number", value: "lots", wantErr: true},
		{name: "negative", value: "-1", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BOSUN_DATABASE_URL": "postgres://db", "BOSUN_MAX_PENDING": tc.value}
			c, err := parse([]string{"serve"}, func(k string) string { return env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && c.MaxPendingPerOrg != tc.want {
				t.Fatalf("MaxPendingPerOrg = %d, want %d", c.MaxPendingPerOrg, tc.want)
			}
		})
	}
}

func TestParseRegistrationLimitsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name, key, value string
		wantErr          bool
		check            func(Config) bool
	}{
		{name: "per address", key: "BOSUN_MAX_PENDING_PER_ADDR", value: "5", check: func(c Config) bool { return c.MaxPendingPerAddr == 5 }},
		{name: "devices", key: "BOSUN_MAX_PENDING_DEVICES", value: "500", check: func(c Config) bool { return c.MaxPendingDevices == 500 }},
		{name: "new per address", key: "BOSUN_MAX_NEW_PENDING_PER_ADDR", value: "7", check: func(c Config) bool { return c.MaxNewPendingPerAddr == 7 }},
		{name: "keys", key: "BOSUN_MAX_PENDING_KEYS", value: "2", check: func(c Config) bool { return c.MaxPendingKeys == 2 }},
		{name: "ttl", key: "BOSUN_PENDING_TTL", value: "36h", check: func(c Config) bool { return c.PendingTTL == 36*time.Hour }},
		{name: "not a number", key: "BOSUN_MAX_PENDING_KEYS", value: "four", wantErr: true},
		{name: "negative", key: "BOSUN_MAX_PENDING_PER_ADDR", value: "-2", wantErr: true},
		{name: "not a duration", key: "BOSUN_PENDING_TTL", value: "3 days", wantErr: true},
		{name: "data dir", key: "BOSUN_DATA_DIR", value: "/srv/bosun", check: func(c Config) bool { return c.DataDir == "/srv/bosun" }},
		{name: "artifact limit", key: "BOSUN_MAX_ARTIFACT_SIZE", value: "4096", check: func(c Config) bool { return c.MaxArtifactSize == 4096 }},
		{name: "artifact limit not a number", key: "BOSUN_MAX_ARTIFACT_SIZE", value: "1G", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BOSUN_DATABASE_URL": "postgres://db", tc.key: tc.value}
			c, err := parse([]string{"serve"}, func(k string) string { return env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !tc.check(c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

// TestDefaultReplica: a replica without a name is named after the host and
// the port it listens on, so a restart keeps its name (and its replicas
// row); a random port (0) says nothing, and then the pid decides.
func TestDefaultReplica(t *testing.T) {
	for _, tt := range []struct {
		name, listen, want string
	}{
		{"host and port", "127.0.0.1:8080", "pi:8080"},
		{"any address", ":9000", "pi:9000"},
		{"ipv6", "[::1]:8443", "pi:8443"},
		{"random port", "127.0.0.1:0", "pi-4711"},
		{"no port", "127.0.0.1", "pi-4711"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultReplica("pi", tt.listen, 4711); got != tt.want {
				t.Fatalf("defaultReplica(pi, %q) = %q, want %q", tt.listen, got, tt.want)
			}
		})
	}
	host, _ := os.Hostname()
	env := map[string]string{"BOSUN_DATABASE_URL": "postgres://db", "BOSUN_LISTEN": "127.0.0.1:9999"}
	getenv := func(k string) string { return env[k] }
	for _, tt := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"from --listen's environment", []string{"serve"}, "", host + ":9999"},
		{"from --listen", []string{"serve", "--listen", "127.0.0.1:7070"}, "", host + ":7070"},
		{"BOSUN_REPLICA", []string{"serve"}, "eu-1", "eu-1"},
		{"--replica beats BOSUN_REPLICA", []string{"serve", "--replica", "eu-2"}, "eu-1", "eu-2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env["BOSUN_REPLICA"] = tt.env
			c, err := parse(tt.args, getenv)
			if err != nil || c.Replica != tt.want {
				t.Fatalf("replica = %q, %v; want %q", c.Replica, err, tt.want)
			}
			again, _ := parse(tt.args, getenv)
			if again.Replica != c.Replica {
				t.Fatalf("the default changed between two parses: %q, %q", c.Replica, again.Replica)
			}
		})
	}
}
