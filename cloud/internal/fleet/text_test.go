package fleet

import "testing"

// TestTextThePostgresTypesHold: names and JSON documents with NUL bytes,
// U+0000 or invalid UTF-8 are refused before the database sees them
// (found by e2e's TestHostileWeb: they were 500s).
func TestTextThePostgresTypesHold(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"plain", "ci token", true},
		{"unicode", "jalapeño ✓", true},
		{"NUL", "a\x00b", false},
		{"only NUL", "\x00", false},
		{"invalid UTF-8", "a\xff\xfe", false},
		{"truncated rune", "caf\xc3", false},
	} {
		if got := validText(tc.in); got != tc.want {
			t.Errorf("validText %s %q: %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"object", `{"k":"v","n":[1,2,{"x":null}]}`, true},
		{"escaped backslash then u0000", `{"k":"\\u0000"}`, true},
		{"U+0000 in a value", `{"k":"a\u0000b"}`, false},
		{"U+0000 in a key", `{"a\u0000":1}`, false},
		{"U+0000 deep", `[1,{"x":["ok","\u0000"]}]`, false},
		{"other escapes", `{"k":"\u0001\u00e9"}`, true},
		{"invalid UTF-8", "{\"k\":\"\xff\"}", false},
	} {
		if got := jsonStorable([]byte(tc.in)); got != tc.want {
			t.Errorf("jsonStorable %s %s: %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}
