package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
)

// decodeJSON reads r's body into v strictly: application/json (or no
// Content-Type), at most maxBody bytes, exactly one JSON value, no unknown
// fields. An empty body is an error unless allowEmpty.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBody int64, v any, allowEmpty bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &HTTPError{Code: wire.CodeUnsupportedMedia, Msg: "request body must be application/json"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return err // MaxBytesError maps to payload_too_large; others are the client's I/O
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return invalid("request body is empty; want a JSON object")
	}
	return decodeStrict(body, v)
}

// decodeStrict decodes exactly one JSON value from body into v, rejecting
// unknown fields and trailing data, with messages safe to show.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return invalid("malformed JSON at byte %d", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("malformed JSON: unexpected end of body")
		case errors.As(err, &te):
			if te.Field != "" {
				return invalid("field %q must be %s", te.Field, jsonKind(te.Type.Kind().String()))
			}
			return invalid("request body must be a JSON object")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return invalid("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return invalid("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("request body must hold a single JSON value")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	default:
		return "a number"
	}
}

// parseDuration parses a Go duration field of a request. Empty means 0;
// otherwise it must be in (0, max].
func parseDuration(field, s string, max time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid("%s: %q is not a duration (want e.g. \"10s\", \"5m\", \"1h\")", field, s)
	}
	if d <= 0 || d > max {
		return 0, invalid("%s: must be more than 0 and at most %s", field, max)
	}
	return d, nil
}

// checkParams accepts absent or null params, or a JSON object or array as
// JSON-RPC requires, and returns them (nil for absent or null).
func checkParams(p json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(p)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if t[0] != '{' && t[0] != '[' {
		return nil, invalid("params must be a JSON object or array")
	}
	return t, nil
}

// query is a strict view of a request's query string: each parameter at
// most once, and only the ones the endpoint knows.
type query struct{ v url.Values }

func parseQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, invalid("malformed query string")
	}
	for k, vals := range v {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			if len(allowed) == 0 {
				return query{}, invalid("unknown query parameter %q (this endpoint takes none)", k)
			}
			return query{}, invalid("unknown query parameter %q (known: %s)", k, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return query{}, invalid("query parameter %q given more than once", k)
		}
	}
	return query{v}, nil
}

func (q query) str(k string) string { return q.v.Get(k) }

// oneOf returns parameter k, which must be empty or one of values.
func (q query) oneOf(k string, values ...string) (string, error) {
	s := q.v.Get(k)
	if s == "" {
		return "", nil
	}
	for _, v := range values {
		if s == v {
			return s, nil
		}
	}
	return "", invalid("%s: %q is not one of %s", k, s, strings.Join(values, ", "))
}

// intIn returns parameter k as an integer in [min, max], or def if absent.
func (q query) intIn(k string, def, min, max int) (int, error) {
	s := q.v.Get(k)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < min || n > max {
		return 0, invalid("%s: want an integer from %d to %d", k, min, max)
	}
	return n, nil
}

// boolPtr returns parameter k as true/false, or nil if absent.
func (q query) boolPtr(k string) (*bool, error) {
	switch q.v.Get(k) {
	case "":
		return nil, nil
	case "true", "1":
		b := true
		return &b, nil
	case "false", "0":
		b := false
		return &b, nil
	}
	return nil, invalid("%s: want true or false", k)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own wire types get here; a failure is a bug.
		panic(fmt.Sprintf("api: encoding %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
