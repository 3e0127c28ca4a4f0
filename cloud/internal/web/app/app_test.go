package app

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestFromFleetShowsOnlyPublicText: what a page shows of an error is its
// public message or a fixed text for its kind, never the text of its chain
// (which the returned error keeps, for the log).
func TestFromFleetShowsOnlyPublicText(t *testing.T) {
	constraint := &pgconn.PgError{Code: "23505", ConstraintName: "users_email_key", Message: "duplicate key value"}
	tests := []struct {
		name     string
		err      error
		status   int // 0: stays an internal error
		msg      string
		internal string
	}{
		{"public conflict", &fleet.PublicError{Kind: fleet.ErrConflict, Msg: "a user with email a@b exists already", Err: constraint},
			http.StatusUnprocessableEntity, "a user with email a@b exists already", "users_email_key"},
		{"public invalid", &fleet.PublicError{Kind: fleet.ErrInvalid, Msg: "tags: at most 32"}, http.StatusUnprocessableEntity, "tags: at most 32", ""},
		{"conflict around a store error", fmt.Errorf("%w: %w", fleet.ErrConflict, store.ErrNoPendingKey),
			http.StatusUnprocessableEntity, "The current state does not allow this.", "store: no pending key set"},
		{"invalid around a pgx error", fmt.Errorf("%w: %w", fleet.ErrInvalid, constraint),
			http.StatusUnprocessableEntity, "The input is not valid.", "users_email_key"},
		{"not found around a store error", fmt.Errorf("%w: %w", fleet.ErrNotFound, store.ErrNotFound), http.StatusNotFound, "Not found.", "store:"},
		{"throttled without a time", fleet.ErrThrottled, http.StatusTooManyRequests, "Too many failed logins. Try again in a few minutes.", ""},
		{"a pgx error", fmt.Errorf("loading: %w", constraint), 0, "Something went wrong on our side; it has been logged.", "users_email_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromFleet(tt.err)
			var he *HTTPError
			switch {
			case tt.status == 0 && errors.As(got, &he):
				t.Fatalf("an internal error became %v", he)
			case tt.status != 0 && (!errors.As(got, &he) || he.Status != tt.status || he.Msg != tt.msg):
				t.Fatalf("FromFleet = %#v, want %d %q", got, tt.status, tt.msg)
			}
			if !errors.Is(got, tt.err) {
				t.Fatalf("the chain is lost: %v", got)
			}
			if text := PublicText(tt.err); text != tt.msg || (tt.internal != "" && strings.Contains(text, tt.internal)) {
				t.Fatalf("PublicText = %q, want %q", text, tt.msg)
			}
		})
	}
}
