package rpcproto

import (
	"fmt"
	"math/rand/v2"
	"regexp"
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
	label := func(n int) string { return strings.Repeat("a", n) }
	// 253 bytes: three labels of 63 and one of 61, with three dots.
	longest := label(63) + "." + label(63) + "." + label(63) + "." + label(61)
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"plain", "dev-1", true},
		{"underscore", "a_b", true},
		{"one character", "a", true},
		{"digits first", "1pi", true},
		{"host name", "pi.kitchen.local", true},
		{"upper case", "Pi.Kitchen.LOCAL", true},
		{"dotted quad", "10.0.0.1", true},
		{"label ends with dash", "a-.b-", true},
		{"label ends with underscore", "a_.b_", true},
		{"empty", "", false},
		{"leading dash", "-a", false},
		{"leading underscore", "_a", false},
		{"label starts with dash", "a.-b", false},
		{"label starts with underscore", "a._b", false},
		{"leading dot", ".a", false},
		{"trailing dot (absolute name)", "a.", false},
		{"empty label", "a..b", false},
		{"lone dot", ".", false},
		{"trailing newline", "a\n", false},
		{"64-byte label", label(64), true},
		{"65-byte label", label(65), false},
		{"65-byte label after a dot", "a." + label(65), false},
		{"253 bytes", longest, true},
		{"254 bytes", longest + "a", false},
		{"254 bytes of short labels", strings.Repeat("a.", 126) + "ab", false},
		{"253 bytes of short labels", strings.Repeat("a.", 126) + "a", true},
	}
	// Every other byte is forbidden, first, inside and last in a label.
	for c := 0; c < 256; c++ {
		b := byte(c)
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.' {
			continue
		}
		for _, pos := range []struct{ where, id string }{
			{"first", string(b) + "a"}, {"inside", "a" + string(b) + "a"}, {"last", "a.a" + string(b)},
		} {
			tests = append(tests, struct {
				name string
				in   string
				want bool
			}{fmt.Sprintf("byte %#02x %s", b, pos.where), pos.id, false})
		}
	}
	tests = append(tests, struct {
		name string
		in   string
		want bool
	}{"non-ASCII letter", "grüß.local", false})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidDeviceID(tc.in); got != tc.want {
				t.Fatalf("ValidDeviceID(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	if len(longest) != DeviceIDMaxLen {
		t.Fatalf("the longest case is %d bytes, want %d", len(longest), DeviceIDMaxLen)
	}
}

// TestValidDeviceIDKeepsOldIDs: every id valid before ids could hold dots
// (^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$) is still valid, so stored devices stay
// valid under the new CHECK constraint.
func TestValidDeviceIDKeepsOldIDs(t *testing.T) {
	old := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	alphabet := "aZ09-_.!"
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, 1+r.IntN(70))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if id := string(b); old.MatchString(id) && !ValidDeviceID(id) {
			t.Fatalf("%q was a valid id and is not any more", id)
		}
	}
}
