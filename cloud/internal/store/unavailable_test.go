package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestUnavailable: the errors of a database that is down or going away
// are Unavailable; a refusal of the statement, a missing row or a slow
// statement's deadline is not. The first case is a real connection to a
// closed port, as a stopped PostgreSQL gives it.
func TestUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, refused := pgx.Connect(ctx, "postgres://bosun@"+addr+"/bosun?sslmode=disable&connect_timeout=5")
	if refused == nil {
		t.Fatalf("connecting to the closed port %s succeeded", addr)
	}
	_, openErr := store.Open(ctx, "postgres://bosun@"+addr+"/bosun?sslmode=disable&connect_timeout=5")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"store.Open on a stopped database", openErr, true},
		{"wrapped", fmt.Errorf("loading device x: %w", refused), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now (starting up)", &pgconn.PgError{Code: "57P03"}, true},
		{"connection exception class", &pgconn.PgError{Code: "08006"}, true},
		{"conn closed", fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		{"ErrUnavailable", store.ErrUnavailable, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"not found", store.ErrNotFound, false},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), false},
		{"cancelled", context.Canceled, false},
		{"nil", nil, false},
		{"other", errors.New("something"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.Unavailable(tt.err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
