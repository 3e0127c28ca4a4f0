package store

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable names an error that says the database could not be
// reached, or went away in the middle of a statement: an outage, not a
// refusal. Unavailable recognises it and the driver errors of that kind.
var ErrUnavailable = errors.New("store: the database is unavailable")

// Unavailable reports whether err says the database is unreachable or went
// away (connection refused or reset, the server shutting down or not yet
// accepting connections, a connection closed under a statement), rather
// than that it refused the statement. Callers answer such an error "try
// again" (HTTP 503, JSON-RPC -32005) instead of "internal error": nothing
// was stored, and the same request can succeed once the database is back.
//
// A statement whose connection broke after it was sent may have been
// committed; the answer "unavailable" then means "not known to be stored",
// which is what a client must assume of any error.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08 is "connection exception"; 57P01..57P03 are the server
		// shutting down (admin_shutdown, crash_shutdown) or starting
		// (cannot_connect_now).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	// A refused or reset TCP connection (not a context deadline, which
	// also calls itself a net.Error: a slow statement is no outage).
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	// The connection failed before the statement was sent (pgx says it
	// is safe to retry), or broke so that the driver closed it.
	return pgconn.SafeToRetry(err)
}
