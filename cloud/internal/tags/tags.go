// Package tags is the one rule for device tags, shared by everything that
// reads or writes them: fleet.Service (which refuses anything else), the
// dashboard's tag field and the bosun CLI's tag list. It has no
// dependencies, so the CLI links it without linking the server.
//
// A tag is 1 to 64 bytes of text with no comma, no control character and
// no space at either end ("has space" is one tag). A list of tags is
// written with commas between them ("lab, has space"); Parse reads such a
// list and Format writes one, so that Parse(Format(ts)) == ts for every
// list of valid tags, and saving a list unchanged changes nothing.
package tags

import (
	"fmt"
	"strings"
	"unicode"
)

// Limits of the rule.
const (
	// MaxLen is the longest tag, in bytes.
	MaxLen = 64
	// MaxPerDevice is how many tags one device may carry.
	MaxPerDevice = 32
)

// Rule says in words what Valid checks.
const Rule = "a tag has 1 to 64 characters, with no comma, no control character and no space at either end"

// Valid reports whether t is a tag.
func Valid(t string) bool {
	if len(t) == 0 || len(t) > MaxLen || strings.TrimSpace(t) != t {
		return false
	}
	for _, r := range t {
		if r == ',' || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// Check validates a device's list of tags and returns it without
// duplicates (the first of each kept, in order). An error says what is
// wrong, in words fit for the user.
func Check(ts []string) ([]string, error) {
	seen := make(map[string]bool, len(ts))
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		if !Valid(t) {
			return nil, fmt.Errorf("tag %.80q: %s", t, Rule)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > MaxPerDevice {
		return nil, fmt.Errorf("at most %d tags per device (%d given)", MaxPerDevice, len(out))
	}
	return out, nil
}

// Parse reads a comma-separated list of tags: each item is trimmed of
// spaces and empty items are dropped. It does not validate; Check does.
// Parse("lab, has space,,eu ") is ["lab", "has space", "eu"].
func Parse(s string) []string {
	out := []string{}
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Format writes tags as Parse reads them.
func Format(ts []string) string { return strings.Join(ts, ", ") }
