package rpcproto

import (
	"strings"
	"testing"
)

func TestValidMethod(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"dotted", "containers.logs", true},
		{"underscore and dash", "ota.create_snapshot-v2", true},
		{"single token", "ping", true},
		{"empty", "", false},
		{"empty token", "a..b", false},
		{"leading dot", ".a", false},
		{"trailing dot", "a.", false},
		{"wildcard", "a.*", false},
		{"full wildcard", "a.>", false},
		{"space", "a b", false},
		{"non-ASCII", "grüß.dich", false},
		{"too long", strings.Repeat("a", 201), false},
		{"longest", strings.Repeat("a", 200), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidMethod(tc.in); got != tc.want {
				t.Fatalf("ValidMethod(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidDeviceID(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"plain", "dev-1", true},
		{"underscore", "a_b", true},
		{"empty", "", false},
		{"leading dash", "-a", false},
		{"dot", "a.b", false},
		{"64 chars", strings.Repeat("a", 64), true},
		{"65 chars", strings.Repeat("a", 65), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidDeviceID(tc.in); got != tc.want {
				t.Fatalf("ValidDeviceID(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
