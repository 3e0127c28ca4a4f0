package main

import (
	"os"
	"path/filepath"
	"testing"
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
