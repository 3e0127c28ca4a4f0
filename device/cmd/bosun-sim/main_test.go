package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestParse(t *testing.T) {
	ok := []string{"--cloud-url", "ws://127.0.0.1:1/v1/device"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", ok, ""},
		{"keys needs no cloud", []string{"keys", "--devices", "3"}, ""},
		{"at the device bound", append([]string{"--devices", "100000"}, ok...), ""},
		{"over the device bound", append([]string{"--devices", "100001"}, ok...), "--devices 100001"},
		{"no devices", append([]string{"--devices", "0"}, ok...), "--devices 0"},
		{"bad prefix", append([]string{"--prefix", "a b"}, ok...), "--prefix"},
		{"bad key alg", append([]string{"--key-alg", "dsa"}, ok...), "--key-alg"},
		{"no cloud url", nil, "--cloud-url"},
		{"http cloud url", []string{"--cloud-url", "http://x"}, "--cloud-url"},
		{"duration at the bound", append([]string{"--duration", "24h"}, ok...), ""},
		{"duration over the bound", append([]string{"--duration", "25h"}, ok...), "--duration"},
		{"no duration", append([]string{"--duration", "0s"}, ok...), "--duration"},
		{"status beyond loopback", append([]string{"--status-listen", "0.0.0.0:9"}, ok...), "--status-listen"},
		{"per-addr zero", append([]string{"--per-addr", "0"}, ok...), "--per-addr"},
		{"one address per device, at the bound", append([]string{"--devices", "63500", "--per-addr", "1"}, ok...), ""},
		{"too many source addresses", append([]string{"--devices", "63501", "--per-addr", "1"}, ok...), "source addresses"},
		{"negative rate", append([]string{"--rate", "-1"}, ok...), "--rate"},
		{"bad log level", append([]string{"--log-level", "loud"}, ok...), "--log-level"},
		{"stray argument", append([]string{"extra"}, ok...), "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(tt.args, noEnv)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if tt.name == "defaults" && (cfg.Devices != 100 || cfg.Prefix != "sim-" || cfg.Duration != 10*time.Minute || cfg.KeyAlg != "ed25519") {
					t.Fatalf("defaults %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parse: %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestSourceAddr: every group of devices gets its own loopback address.
func TestSourceAddr(t *testing.T) {
	seen := map[string]bool{}
	for n := range maxSourceAddrs {
		ip := sourceAddr(n)
		if !ip.IsLoopback() || ip.To4() == nil {
			t.Fatalf("group %d: %v is not an IPv4 loopback address", n, ip)
		}
		if seen[ip.String()] {
			t.Fatalf("group %d: %v used twice", n, ip)
		}
		seen[ip.String()] = true
	}
	if got := sourceAddr(0); !got.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("group 0: %v", got)
	}
}
