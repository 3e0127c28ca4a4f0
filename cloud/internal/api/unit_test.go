package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/jackc/pgx/v5/pgconn"
)

// The pure helpers (error mapping, key parsing, strict decoding) are tested
// here from inside the package; the handlers are tested against a real
// replica in api_test.go and integration_test.go.

func TestErrorTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range wire.ErrorCodes {
		if seen[c.Code] {
			t.Errorf("code %q listed twice", c.Code)
		}
		seen[c.Code] = true
		if wire.StatusOf(c.Code) != c.Status || c.Status < 400 || c.Meaning == "" {
			t.Errorf("code %q: status %d, meaning %q", c.Code, c.Status, c.Meaning)
		}
	}
	if wire.StatusOf("no_such_code") != 500 {
		t.Error("an unknown code must be a 500")
	}
}

// TestToHTTPError: an error with a public message shows exactly that; any
// other shows a fixed text for its code, never its chain (a store error,
// a constraint name, a pgx error, a sentinel wrapped around either).
func TestToHTTPError(t *testing.T) {
	secret := errors.New("pq: relation devices on 10.0.0.7 is locked")
	constraint := &pgconn.PgError{Code: "23505", ConstraintName: "users_email_key", Message: "duplicate key value violates unique constraint \"users_email_key\""}
	tests := []struct {
		name       string
		err        error
		wantCode   string
		wantStatus int
		wantMsg    string
		internal   string // text of the chain that must not show
	}{
		{"unauthenticated", fmt.Errorf("token: %w", fleet.ErrUnauthenticated), wire.CodeUnauthenticated, 401, "invalid or revoked API token", "token:"},
		{"forbidden", fmt.Errorf("accept: %w", fleet.ErrForbidden), wire.CodeForbidden, 403, "your role may not do this", "accept:"},
		{"not found", fmt.Errorf("device x: %w", fleet.ErrNotFound), wire.CodeNotFound, 404, "not found", "device x"},
		{"invalid without a public message", fmt.Errorf("%w: %w", fleet.ErrInvalid, secret), wire.CodeInvalidRequest, 400, "invalid input", "10.0.0.7"},
		{"conflict around a store error", fmt.Errorf("%w: %w", fleet.ErrConflict, fmt.Errorf("accepting device dev-2: %w", store.ErrNoPendingKey)),
			wire.CodeConflict, 409, "the device's or object's state does not allow this", "store: no pending key set"},
		{"conflict around a constraint", fmt.Errorf("%w: %w", fleet.ErrConflict, fmt.Errorf("%w: %s", store.ErrConflict, constraint.ConstraintName)),
			wire.CodeConflict, 409, "the device's or object's state does not allow this", "users_email_key"},
		{"public message, not the cause's text", &fleet.PublicError{Kind: fleet.ErrNoPendingKey, Msg: "device x has no pending key to accept",
			Err: errors.New("store: no pending key set")}, wire.CodeConflict, 409, "device x has no pending key to accept", "store:"},
		{"public conflict around a pgx error", &fleet.PublicError{Kind: fleet.ErrConflict, Msg: "a user with email a@b exists already", Err: constraint},
			wire.CodeConflict, 409, "a user with email a@b exists already", "users_email_key"},
		{"public invalid", &fleet.PublicError{Kind: fleet.ErrInvalid, Msg: "fingerprint: bad"}, wire.CodeInvalidRequest, 400, "fingerprint: bad", ""},
		{"ambiguous key", &fleet.AmbiguousKeyError{DeviceID: "x", Fingerprints: []string{"SHA256:a", "SHA256:b"}}, wire.CodeAmbiguousKey, 409,
			"device x has 2 pending keys (SHA256:a, SHA256:b): name the fingerprint of the one to accept", ""},
		{"too large", &http.MaxBytesError{Limit: 10}, wire.CodeTooLarge, 413, "request body larger than 10 bytes", ""},
		{"http error as is", &HTTPError{Code: wire.CodeInvalidRequest, Msg: "x"}, wire.CodeInvalidRequest, 400, "x", ""},
		{"a pgx error is internal", fmt.Errorf("loading: %w", constraint), wire.CodeInternal, 500, "internal error", "users_email_key"},
		{"the database shutting down is unavailable", fmt.Errorf("loading device x: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command on 10.0.0.7"}),
			wire.CodeUnavailable, 503, "the database is unavailable: try again", "10.0.0.7"},
		{"a refused connection is unavailable", fmt.Errorf("creating call: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}),
			wire.CodeUnavailable, 503, "the database is unavailable: try again", "dial"},
		{"anything else is internal and hides its text", fmt.Errorf("loading: %w", secret), wire.CodeInternal, 500, "internal error", "10.0.0.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			he := toHTTPError(tt.err)
			if he.Msg != tt.wantMsg {
				t.Errorf("Msg = %q, want %q", he.Msg, tt.wantMsg)
			}
			if tt.internal != "" && strings.Contains(he.Msg, tt.internal) {
				t.Errorf("Msg %q shows internal text %q", he.Msg, tt.internal)
			}
			if he.Code != tt.wantCode || he.Status() != tt.wantStatus {
				t.Errorf("got %s/%d, want %s/%d", he.Code, he.Status(), tt.wantCode, tt.wantStatus)
			}
			if !errors.Is(he, tt.err) && tt.name != "http error as is" {
				t.Errorf("the cause is lost: %v", he)
			}
			if tt.internal != "" && !strings.Contains(he.Error(), tt.internal) {
				t.Errorf("the chain (for the log) lost %q: %v", tt.internal, he)
			}
			if tt.wantCode == wire.CodeAmbiguousKey && len(he.Fingerprints) != 2 {
				t.Errorf("ambiguous_key without its candidates: %+v", he)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	ed, err := keys.Generate(keys.AlgEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	der, err := keys.PublicDER(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.MarshalPublicPEM(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"pem", string(pem), true},
		{"pem with spaces", "\n  " + string(pem) + "  \n", true},
		{"base64 std", base64.StdEncoding.EncodeToString(der), true},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(der), true},
		{"empty", "", false},
		{"broken pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", false},
		{"not base64", "%%%", false},
		{"base64 of junk", base64.StdEncoding.EncodeToString([]byte("hello world")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePublicKey(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && string(got) != string(der) {
				t.Error("DER differs from the key's")
			}
			var he *HTTPError
			if !tt.ok && (!errors.As(err, &he) || he.Code != wire.CodeInvalidRequest) {
				t.Errorf("err = %#v, want an invalid_request HTTPError", err)
			}
		})
	}
}

func TestDecodeStrict(t *testing.T) {
	type body struct {
		A string `json:"a"`
		B []int  `json:"b"`
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", `{"a":"x","b":[1]}`, ""},
		{"unknown", `{"a":"x","c":1}`, `unknown field "c"`},
		{"trailing", `{"a":"x"} x`, "single JSON value"},
		{"truncated", `{"a":"x"`, "unexpected end"},
		{"syntax", `{"a" "x"}`, "malformed JSON at byte"},
		{"type", `{"b":"x"}`, `"b" must be an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v body
			err := decodeStrict([]byte(tt.in), &v)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
