package tags

import (
	"slices"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		tag  string
		want bool
	}{
		{"word", "lab", true},
		{"inner space", "has space", true},
		{"unicode", "küche", true},
		{"64 bytes: the bound", strings.Repeat("t", 64), true},
		{"65 bytes: past the bound", strings.Repeat("t", 65), false},
		{"empty", "", false},
		{"comma", "a,b", false},
		{"leading space", " lab", false},
		{"trailing space", "lab ", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"invalid utf-8", "a\xffb", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Valid(tc.tag); got != tc.want {
				t.Fatalf("Valid(%q) = %v, want %v", tc.tag, got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{}},
		{"only separators", " , ,", []string{}},
		{"one", "lab", []string{"lab"}},
		{"space inside a tag is kept", "has space", []string{"has space"}},
		{"commas separate, spaces are trimmed", " lab,has space ,, eu-west", []string{"lab", "has space", "eu-west"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parse(tc.in); !slices.Equal(got, tc.want) {
				t.Fatalf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRoundTrip: what Format writes, Parse reads back unchanged, for valid
// tags; so re-saving a form that shows a device's tags keeps them.
func TestRoundTrip(t *testing.T) {
	for _, ts := range [][]string{{}, {"lab"}, {"has space", "lab"}, {"a b c", "küche", strings.Repeat("x", 64)}} {
		if got := Parse(Format(ts)); !slices.Equal(got, ts) {
			t.Errorf("Parse(Format(%q)) = %q", ts, got)
		}
		if _, err := Check(ts); err != nil {
			t.Errorf("Check(%q): %v", ts, err)
		}
	}
}

func TestCheck(t *testing.T) {
	got, err := Check([]string{"lab", "eu", "lab"})
	if err != nil || !slices.Equal(got, []string{"lab", "eu"}) {
		t.Fatalf("Check dedupes in order: %q, %v", got, err)
	}
	if _, err := Check([]string{"ok", "a,b"}); err == nil || !strings.Contains(err.Error(), Rule) || !strings.Contains(err.Error(), `"a,b"`) {
		t.Fatalf("a comma: %v", err)
	}
	many := make([]string, MaxPerDevice)
	for i := range many {
		many[i] = strings.Repeat("t", i+1)
	}
	if _, err := Check(many); err != nil {
		t.Fatalf("%d tags (the bound): %v", MaxPerDevice, err)
	}
	if _, err := Check(append(many, "one-more")); err == nil || !strings.Contains(err.Error(), "at most 32 tags") {
		t.Fatalf("%d tags: %v", MaxPerDevice+1, err)
	}
	// Duplicates do not count against the bound.
	if _, err := Check(append(many, many[0])); err != nil {
		t.Fatalf("32 tags and a duplicate: %v", err)
	}
}
