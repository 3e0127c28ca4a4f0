package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bridge.json")
	os.WriteFile(file, []byte(`{"device_id":"from-file","cloud_url":"ws://file/v1/device","nats_listen":"127.0.0.1:5000","attributes":{"model":"m1"}}`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"device":"typo"}`), 0o644)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr bool
		check   func(t *testing.T, c Config)
	}{
		{
			name: "defaults",
			env:  map[string]string{"BOSUN_DEVICE_ID": "dev-1", "BOSUN_CLOUD_URL": "ws://127.0.0.1:8080/v1/device"},
			check: func(t *testing.T, c Config) {
				if c.DataDir != "/var/lib/bosun" || c.NATSListen != "127.0.0.1:4222" || c.KeyAlg != "ed25519" ||
					c.CloudPublicKey != "keys/device/cloud_public.pem" {
					t.Errorf("defaults: %+v", c)
				}
			},
		},
		{
			name: "file, then env, then flags",
			args: []string{"--config", file, "--device-id", "from-flag", "--attr", "serial=S1"},
			env:  map[string]string{"BOSUN_DEVICE_ID": "from-env", "BOSUN_NATS_LISTEN": "127.0.0.1:0"},
			check: func(t *testing.T, c Config) {
				if c.DeviceID != "from-flag" {
					t.Errorf("device id %q, want the flag's", c.DeviceID)
				}
				if c.NATSListen != "127.0.0.1:0" {
					t.Errorf("nats listen %q, want the env's", c.NATSListen)
				}
				if c.CloudURL != "ws://file/v1/device" {
					t.Errorf("cloud url %q, want the file's", c.CloudURL)
				}
				if c.Attributes["model"] != "m1" || c.Attributes["serial"] != "S1" {
					t.Errorf("attributes %v", c.Attributes)
				}
			},
		},
		{name: "missing cloud url", env: map[string]string{"BOSUN_DEVICE_ID": "d"}, wantErr: true},
		{name: "bad key alg", env: map[string]string{"BOSUN_CLOUD_URL": "ws://x", "BOSUN_KEY_ALG": "dsa"}, wantErr: true},
		{name: "unknown config field", args: []string{"--config", bad}, env: map[string]string{"BOSUN_CLOUD_URL": "ws://x"}, wantErr: true},
		{name: "bad attribute", args: []string{"--attr", "novalue"}, env: map[string]string{"BOSUN_CLOUD_URL": "ws://x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// TestDeviceIDRule: the bridge takes the host name as its id by default,
// whole and lower-cased, and refuses, before connecting, any id the cloud
// would refuse (rpcproto.ValidDeviceID), saying how to set one.
func TestDeviceIDRule(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 63) + "." + strings.Repeat("a", 61)
	for _, tt := range []struct {
		name, host, id string
		want           string // the device id, or "" for an error
		wantErr        string
	}{
		{name: "host name", host: "pi.kitchen.local", want: "pi.kitchen.local"},
		{name: "host name lower-cased", host: "Pi.Kitchen.LOCAL", want: "pi.kitchen.local"},
		{name: "absolute host name", host: "pi.kitchen.local.", want: "pi.kitchen.local"},
		{name: "short host name", host: "rpi4", want: "rpi4"},
		{name: "host name that is no id", host: "my host", wantErr: `the host name "my host" is not a device id`},
		{name: "host name too long", host: long + "a", wantErr: "set BOSUN_DEVICE_ID or --device-id"},
		{name: "unknown host name", host: "", wantErr: "the host name is unknown"},
		{name: "explicit id kept as given", host: "x", id: "Pi.Kitchen", want: "Pi.Kitchen"},
		{name: "explicit id of 253 bytes", host: "x", id: long, want: long},
		{name: "explicit id of 254 bytes", host: "x", id: long + "a", wantErr: "1 to 253 bytes"},
		{name: "explicit id with an empty label", host: "x", id: "pi..local", wantErr: `device id "pi..local": want 1 to 253 bytes`},
		{name: "explicit id with a wildcard", host: "x", id: "pi.*", wantErr: `device id "pi.*"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old := hostname
			hostname = func() (string, error) {
				if tt.host == "" {
					return "", errors.New("no host name")
				}
				return tt.host, nil
			}
			defer func() { hostname = old }()
			env := map[string]string{"BOSUN_CLOUD_URL": "ws://127.0.0.1:1/v1/device", "BOSUN_DEVICE_ID": tt.id}
			c, err := loadConfig(nil, func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.DeviceID != tt.want {
				t.Fatalf("device id %q, %v; want %q", c.DeviceID, err, tt.want)
			}
		})
	}
}

// TestRejectedRetryBounds: --rejected-retry (BOSUN_REJECTED_RETRY) takes a
// duration from 1s to 1h, 10s by default; beyond either bound, or not a
// duration, it is refused and says the rule.
func TestRejectedRetryBounds(t *testing.T) {
	base := map[string]string{"BOSUN_DEVICE_ID": "dev-1", "BOSUN_CLOUD_URL": "ws://127.0.0.1:8080/v1/device"}
	for _, tc := range []struct {
		name, env string
		args      []string
		want      time.Duration // 0: refused
	}{
		{"default", "", nil, 10 * time.Second},
		{"the least", "1s", nil, time.Second},
		{"below the least", "999ms", nil, 0},
		{"the most", "1h", nil, time.Hour},
		{"above the most", "61m", nil, 0},
		{"not a duration", "soon", nil, 0},
		{"the flag wins", "30s", []string{"--rejected-retry", "2s"}, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BOSUN_REJECTED_RETRY": tc.env}
			for k, v := range base {
				env[k] = v
			}
			c, err := loadConfig(tc.args, func(k string) string { return env[k] })
			switch {
			case tc.want == 0 && (err == nil || !strings.Contains(err.Error(), "want a duration from 1s to 1h,")):
				t.Fatalf("err = %v, want the rule", err)
			case tc.want != 0 && (err != nil || c.rejectedRetry != tc.want):
				t.Fatalf("rejected retry %v (%v), want %v", c.rejectedRetry, err, tc.want)
			}
		})
	}
}
