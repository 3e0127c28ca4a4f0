package fleet

import "errors"

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
// err's chain that has one (a *PublicError, an *AmbiguousKeyError), and
// whether there was one.
func PublicMessage(err error) (string, bool) {
	var p interface{ PublicMessage() string }
	if errors.As(err, &p) {
		return p.PublicMessage(), true
	}
	return "", false
}
