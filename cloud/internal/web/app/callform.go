package app

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// MaxCallParams bounds the params a call form may carry.
const MaxCallParams = 64 << 10

// CallParams checks the params field of a call form (the console, the
// fan-out): empty or {} is no params, otherwise a JSON object or array. The
// message, when not empty, says what is wrong.
func CallParams(s string) (json.RawMessage, string) {
	if len(s) > MaxCallParams {
		return nil, fmt.Sprintf("The parameters are larger than %d KiB.", MaxCallParams>>10)
	}
	p := strings.TrimSpace(s)
	if p == "" || p == "{}" {
		return nil, ""
	}
	var v any
	if err := json.Unmarshal([]byte(p), &v); err != nil {
		return nil, "The parameters are not valid JSON: " + err.Error()
	}
	switch v.(type) {
	case map[string]any, []any:
		return json.RawMessage(p), ""
	default:
		return nil, "The parameters must be a JSON object or array."
	}
}

// CallTimeout checks the timeout field of a call form, whole seconds from 1
// to fleet.MaxCallTimeout; empty is def.
func CallTimeout(s string, def time.Duration) (time.Duration, string) {
	if s == "" {
		return def, ""
	}
	max := int(fleet.MaxCallTimeout / time.Second)
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return def, fmt.Sprintf("The timeout is a number of seconds from 1 to %d.", max)
	}
	return time.Duration(n) * time.Second, ""
}
