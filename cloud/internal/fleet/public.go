package fleet

import (
	"errors"
	"fmt"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// Errors shown to people. Every error Service returns for a person to read
// (a refusal: bad input, a conflicting state) carries a fixed message in a
// *PublicError (made by invalidf, conflictf, or by hand with the cause in
// Err), and that message is all the API, the dashboard and the audit log
// ever show of it. Anything else (a store error, a pgx error, a wrapped
// chain) is internal: people see a fixed text for its kind (PublicText)
// and the whole chain goes to the log. A sentinel wrapped with fmt.Errorf
// ("%w: ...", ErrInvalid) is no longer shown as it is: its text may carry
// whatever was formatted into it.

// PublicError is an error of Service whose message is fixed and safe to
// show to users as it is: the API and the dashboard show Msg, and only the
// log sees Err. errors.Is finds Kind (ErrConflict, ErrNoPendingKey, ...)
// and whatever Err wraps.
type PublicError struct {
	Kind error  // the sentinel the error is, e.g. ErrNoPendingKey
	Msg  string // for people; never internal detail
	Err  error  // the cause, for the log; may be nil
}

func (e *PublicError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns Kind and Err.
func (e *PublicError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// PublicMessage returns Msg.
func (e *PublicError) PublicMessage() string { return e.Msg }

// PublicMessage returns the message meant for people of the first error in
// err's chain that has one (a *PublicError, an *AmbiguousKeyError, a
// *ThrottledError), and whether there was one.
func PublicMessage(err error) (string, bool) {
	var p interface{ PublicMessage() string }
	if errors.As(err, &p) {
		return p.PublicMessage(), true
	}
	return "", false
}

// PublicText is what people may read of err: its public message, or else a
// fixed text naming its kind ("internal error" for anything unknown). It
// never contains the text of err's chain.
func PublicText(err error) string {
	if msg, ok := PublicMessage(err); ok {
		return msg
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotFound):
		return "not found"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrInvalid):
		return "invalid input"
	case errors.Is(err, ErrConflict):
		return "the current state does not allow this"
	case Unavailable(err):
		return UnavailableMessage
	}
	return "internal error"
}

// UnavailableMessage is what people read when the database is unavailable
// (see Unavailable): nothing was stored, and the same request can succeed
// once it is back.
const UnavailableMessage = "the database is unavailable: try again"

// Unavailable reports whether err says the database is unreachable or went
// away (store.Unavailable): an outage to answer "try again" (HTTP 503,
// JSON-RPC -32005), not an internal error.
func Unavailable(err error) bool { return store.Unavailable(err) }

// invalidf returns an ErrInvalid whose formatted message is shown to
// people as it is: format only what they sent or may see.
func invalidf(format string, args ...any) error {
	return &PublicError{Kind: ErrInvalid, Msg: fmt.Sprintf(format, args...)}
}

// conflictf is invalidf for ErrConflict.
func conflictf(format string, args ...any) error {
	return &PublicError{Kind: ErrConflict, Msg: fmt.Sprintf(format, args...)}
}

// auditError is the "error" of an audit row's detail: the public text,
// because the audit page shows it to users. The chain is logged: as an
// error when it is internal, at debug level when it is a refusal.
func (s *Service) auditError(action, target string, err error) string {
	if _, ok := PublicMessage(err); ok {
		s.log.Debug("action refused", "action", action, "target", target, "err", err)
	} else {
		s.log.Error("action failed", "action", action, "target", target, "err", err)
	}
	return PublicText(err)
}
