package ui

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// KV is one member of an audit row's detail, for display.
type KV struct{ Key, Value string }

// DetailKVs reads an audit row's detail (a JSON object) as pairs, the
// telling ones (method, tags, error, ...) first, then by name;
// a value that is not a string is shown as compact JSON. A detail that is
// not an object is one pair with no key.
func DetailKVs(e fleet.AuditEntry) []KV {
	if len(e.Detail) == 0 || string(e.Detail) == "null" {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(e.Detail, &m) != nil {
		return []KV{{Value: string(e.Detail)}}
	}
	out := make([]KV, 0, len(m))
	for k, raw := range m {
		out = append(out, KV{Key: k, Value: jsonText(raw)})
	}
	sort.Slice(out, func(i, j int) bool {
		pi, pj := keyRank(out[i].Key), keyRank(out[j].Key)
		if pi != pj {
			return pi < pj
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// firstKeys are the members of a detail that say the most, shown first.
var firstKeys = []string{"method", "tags", "error", "fingerprint", "role"}

func keyRank(k string) int {
	for i, f := range firstKeys {
		if k == f {
			return i
		}
	}
	return len(firstKeys)
}

// jsonText is a string's text, or any other JSON value compacted; a list
// of strings reads "a, b".
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var ss []string
	if json.Unmarshal(raw, &ss) == nil {
		return "[" + strings.Join(ss, ", ") + "]"
	}
	return string(raw)
}

// AuditMethod is the method an audit row of a call names ("" for other
// rows).
func AuditMethod(e fleet.AuditEntry) string {
	if e.Action != "call" {
		return ""
	}
	for _, kv := range DetailKVs(e) {
		if kv.Key == "method" {
			return kv.Value
		}
	}
	return ""
}
