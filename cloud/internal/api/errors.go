package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// HTTPError is an error a handler returns to answer with an API error code
// (see wire.ErrorCodes for the HTTP status of each). Msg is shown to the
// client; Err, if any, only goes to the log.
type HTTPError struct {
	Code string // one of the wire.Code* constants
	Msg  string // safe to show to the client
	Err  error  // the cause, logged, never sent
	// Fingerprints, for ambiguous_key, lists the candidates.
	Fingerprints []string
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return e.Code + ": " + e.Msg
}

func (e *HTTPError) Unwrap() error { return e.Err }

// Status returns the HTTP status of e's code.
func (e *HTTPError) Status() int { return wire.StatusOf(e.Code) }

func invalid(format string, args ...any) *HTTPError {
	return &HTTPError{Code: wire.CodeInvalidRequest, Msg: fmt.Sprintf(format, args...)}
}

// toHTTPError maps any error a handler returned to the answer the client
// gets. fleet's sentinels become their API codes. The message is the
// error's public message (fleet.PublicMessage) when it has one, else a
// fixed text for its code: the text of an error's chain (a store error, a
// constraint name, a pgx error) never reaches the client, only the log.
func toHTTPError(err error) *HTTPError {
	var he *HTTPError
	if errors.As(err, &he) {
		return he
	}
	var mbe *http.MaxBytesError
	var amb *fleet.AmbiguousKeyError
	if msg, ok := fleet.PublicMessage(err); ok {
		switch {
		case errors.As(err, &amb):
			return &HTTPError{Code: wire.CodeAmbiguousKey, Msg: msg, Err: err, Fingerprints: amb.Fingerprints}
		case errors.Is(err, fleet.ErrNotFound):
			return &HTTPError{Code: wire.CodeNotFound, Msg: msg, Err: err}
		case errors.Is(err, fleet.ErrInvalid):
			return &HTTPError{Code: wire.CodeInvalidRequest, Msg: msg, Err: err}
		case errors.Is(err, fleet.ErrConflict):
			return &HTTPError{Code: wire.CodeConflict, Msg: msg, Err: err}
		}
	}
	switch {
	case errors.As(err, &mbe):
		return &HTTPError{Code: wire.CodeTooLarge, Msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit), Err: err}
	case errors.Is(err, fleet.ErrUnauthenticated):
		return &HTTPError{Code: wire.CodeUnauthenticated, Msg: "invalid or revoked API token", Err: err}
	case errors.Is(err, fleet.ErrForbidden):
		return &HTTPError{Code: wire.CodeForbidden, Msg: "your role may not do this", Err: err}
	case errors.Is(err, fleet.ErrNotFound):
		return &HTTPError{Code: wire.CodeNotFound, Msg: "not found", Err: err}
	case errors.Is(err, fleet.ErrInvalid):
		return &HTTPError{Code: wire.CodeInvalidRequest, Msg: "invalid input", Err: err}
	case errors.Is(err, fleet.ErrConflict):
		return &HTTPError{Code: wire.CodeConflict, Msg: "the device's or object's state does not allow this", Err: err}
	case fleet.Unavailable(err):
		return &HTTPError{Code: wire.CodeUnavailable, Msg: fleet.UnavailableMessage, Err: err}
	}
	return &HTTPError{Code: wire.CodeInternal, Msg: "internal error", Err: err}
}

// notFoundAs names the missing object when err is fleet.ErrNotFound; a
// device of another organisation is reported the same way, so the answer
// never tells whether it exists.
func notFoundAs(err error, format string, args ...any) error {
	if errors.Is(err, fleet.ErrNotFound) {
		return &HTTPError{Code: wire.CodeNotFound, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	return err
}

// clientGone reports whether err only says the client went away.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && errors.Is(err, context.Canceled)
}
