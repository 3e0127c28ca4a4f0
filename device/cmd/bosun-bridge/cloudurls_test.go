package main

import (
	"strings"
	"testing"
)

// TestCloudURLList: --cloud-url is repeatable and takes a comma-separated
// list, as BOSUN_CLOUD_URL does; a bad entry, and a ws:// entry with a
// cloud CA, are refused before anything starts.
func TestCloudURLList(t *testing.T) {
	const a, b, c = "ws://a:8080/v1/device", "ws://b:8080/v1/device", "wss://c/v1/device"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // the CloudURL, or "" for an error
		err  string
	}{
		{name: "repeated flag", args: []string{"--cloud-url", a, "--cloud-url", b}, want: a + "," + b},
		{name: "a list in one flag", args: []string{"--cloud-url", a + "," + b, "--cloud-url", c}, want: a + "," + b + "," + c},
		{name: "env list", env: map[string]string{"BOSUN_CLOUD_URL": a + ", " + b}, want: a + ", " + b},
		{name: "the flags replace the env", args: []string{"--cloud-url", c}, env: map[string]string{"BOSUN_CLOUD_URL": a + "," + b}, want: c},
		{name: "empty entry", args: []string{"--cloud-url", a + ",,"}, err: "an empty entry"},
		{name: "not a websocket", args: []string{"--cloud-url", a, "--cloud-url", "https://b/v1/device"}, err: "want ws:// or wss://"},
		{name: "cloud CA with a ws:// entry", args: []string{"--cloud-url", c + "," + a, "--cloud-ca", "/nonexistent.pem"}, err: "the cloud URL " + a + " has no TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"BOSUN_DEVICE_ID": "dev-1"}
			for k, v := range tc.env {
				env[k] = v
			}
			cfg, err := loadConfig(tc.args, func(k string) string { return env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || cfg.CloudURL != tc.want {
				t.Fatalf("cloud URL %q, %v; want %q", cfg.CloudURL, err, tc.want)
			}
		})
	}
}
