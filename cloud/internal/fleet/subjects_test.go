package fleet_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats-server/v2/server"
)

func TestDeviceToken(t *testing.T) {
	for _, tc := range []struct {
		name, id, want string
	}{
		{"plain id unchanged", "dev-1", "dev-1"},
		{"underscore unchanged", "a_b", "a_b"},
		{"dots escaped", "pi.kitchen.local", "pi%2Ekitchen%2Elocal"},
		{"case kept", "Pi.A", "Pi%2EA"},
		{"percent escaped", "a%2Eb", "a%252Eb"},
		{"wildcards escaped", "*.>", "%2A%2E%3E"},
		{"space escaped", "a b", "a%20b"},
		{"non-ASCII escaped byte by byte", "ü", "%C3%BC"},
		{"empty", "", "%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fleet.DeviceToken(tc.id)
			if got != tc.want {
				t.Fatalf("DeviceToken(%q) = %q, want %q", tc.id, got, tc.want)
			}
			back, ok := fleet.ParseDeviceToken(got)
			if !ok || back != tc.id {
				t.Fatalf("ParseDeviceToken(%q) = %q, %v; want %q", got, back, ok, tc.id)
			}
		})
	}
}

// TestDeviceTokenOneTokenPerID: for any strings, the token is one literal
// subject token, decodes back, and two different strings never share a
// token, so two devices never share a subject; ids that a naive encoding
// would confuse (a.b, a_b, a-b, a%2Eb) stay apart.
func TestDeviceTokenOneTokenPerID(t *testing.T) {
	ids := []string{"a.b", "a_b", "a-b", "a%2Eb", "a%2eb", "a.b.", "a..b", "ab", "a", "A.b", "a.B", "*", ">", "a.*", "a.>", ""}
	r := rand.New(rand.NewPCG(7, 9))
	const alphabet = "aZ09-_.%*> \t\x00\xff"
	for range 5000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		ids = append(ids, string(b))
	}
	seen := map[string]string{}
	for _, id := range ids {
		tok := fleet.DeviceToken(id)
		if other, dup := seen[tok]; dup && other != id {
			t.Fatalf("%q and %q share the token %q", id, other, tok)
		}
		seen[tok] = id
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n\x00") {
			t.Fatalf("DeviceToken(%q) = %q is not one literal token", id, tok)
		}
		for _, subj := range []string{fleet.SubjectCall(1, id), fleet.SubjectDrain(1, id), fleet.SubjectEvict(1, id), fleet.SubjectKey(1, id)} {
			if strings.Count(subj, ".") != 4 {
				t.Fatalf("%q: subject %q has not 5 tokens", id, subj)
			}
			if !server.IsValidLiteralSubject(subj) {
				t.Fatalf("%q: subject %q is not a valid literal subject", id, subj)
			}
			org, dev, _, ok := fleet.ParseDevSubject(subj)
			if !ok || org != 1 || dev != id {
				t.Fatalf("ParseDevSubject(%q) = %d %q %v, want 1 %q", subj, org, dev, ok, id)
			}
		}
		if back, ok := fleet.ParseDeviceToken(tok); !ok || back != id {
			t.Fatalf("ParseDeviceToken(DeviceToken(%q)) = %q, %v", id, back, ok)
		}
	}
}

// TestParseDeviceTokenCanonical: only what DeviceToken writes decodes, so no
// second spelling of a token names the same device.
func TestParseDeviceTokenCanonical(t *testing.T) {
	for _, tok := range []string{
		"",         // no token at all
		"a.b",      // a dot is never in a token
		"a%2eb",    // lower-case hex
		"a%2",      // truncated escape
		"a%",       // truncated escape
		"a%41",     // 'A' is never escaped
		"a%5F",     // '_' is never escaped
		"%%",       // '%' must be escaped
		"a*", "a>", // wildcards
		"a b",
	} {
		if id, ok := fleet.ParseDeviceToken(tok); ok {
			t.Errorf("ParseDeviceToken(%q) = %q, want refusal", tok, id)
		}
	}
	for _, subj := range []string{"bosun.dev.1.a.b.call", "bosun.dev.x.a.call", "bosun.dev.1.a%2e.call", "bosun.events.1", "other.dev.1.a.call"} {
		if _, dev, _, ok := fleet.ParseDevSubject(subj); ok {
			t.Errorf("ParseDevSubject(%q) = %q, want refusal", subj, dev)
		}
	}
}

// TestDeviceTokenOfValidIDs: a valid id's token uses only letters, digits,
// '-', '_' and "%2E", and is at most 3 bytes longer per dot.
func TestDeviceTokenOfValidIDs(t *testing.T) {
	id := strings.Repeat("a.", 126) + "a" // the longest id, with the most dots
	if !rpcproto.ValidDeviceID(id) {
		t.Fatal("test id invalid")
	}
	tok := fleet.DeviceToken(id)
	if want := len(id) + 2*strings.Count(id, "."); len(tok) != want {
		t.Fatalf("token is %d bytes, want %d", len(tok), want)
	}
	if strings.Trim(tok, "a%2E") != "" {
		t.Fatalf("token %q", tok)
	}
}
