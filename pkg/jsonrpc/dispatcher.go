package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// HandlerFunc serves one method. params holds the request's params exactly
// as received (an array or an object), or is nil when they were omitted; it
// is the handler's own copy and may be kept.
//
// The result is marshalled with encoding/json (nil becomes null; a
// json.RawMessage is sent as is). A returned error that is, or wraps, an
// *Error is sent as that *Error; any other error becomes CodeInternalError
// with the message "Internal error", and its text is never sent: the
// Dispatcher logs it if it has a logger (see SetLogger).
type HandlerFunc func(ctx context.Context, params json.RawMessage) (result any, err error)

// Handler adapts a typed function to a HandlerFunc. The params are decoded
// into a P by DecodeParams, so every typed handler is strict: a member that
// is not exactly the name of a field (case included), a duplicated member
// and a value of the wrong type are CodeInvalidParams with a message naming
// the member, and fn is not called. Positional params (an array) are
// accepted only when P is a slice or an array (or a pointer to one, an
// interface, or a type with its own UnmarshalJSON). Omitted params leave P
// at its zero value.
func Handler[P, R any](fn func(ctx context.Context, p P) (R, error)) HandlerFunc {
	positional := acceptsArray(reflect.TypeFor[P]())
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		var p P
		if err := decodeParams(params, &p, positional); err != nil {
			return nil, err
		}
		return fn(ctx, p)
	}
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// acceptsArray reports whether a JSON array may be decoded into a t.
func acceptsArray(t reflect.Type) bool {
	for {
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return true
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Interface:
		return true
	}
	return false
}

// jsonTypeName names the JSON type a Go type decodes from, so that error
// messages do not expose Go type names.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "a value"
}

// MaxBatch is the most entries a batch may hold. Handle and SplitBatch
// refuse a larger batch as a whole, with one CodeInvalidRequest error, so
// that one payload cannot make a peer run thousands of handlers. It is part
// of the protocol: both sides of a Bosun connection enforce it.
const MaxBatch = 64

// batchConcurrency bounds how many entries of one batch Handle runs at once.
const batchConcurrency = 16

// Dispatcher routes requests to registered handlers. It is safe for
// concurrent use, including Register while Handle runs.
type Dispatcher struct {
	logger atomic.Pointer[slog.Logger] // nil: no logging

	mu       sync.RWMutex // guards the following
	handlers map[string]HandlerFunc
}

// NewDispatcher returns a Dispatcher with no methods.
func NewDispatcher() *Dispatcher {
	return &Dispatcher{handlers: make(map[string]HandlerFunc)}
}

// SetLogger sets where the Dispatcher logs what it does not send: the text
// of internal errors and recovered panics (with their stack). nil, the
// default, means no logging.
func (d *Dispatcher) SetLogger(l *slog.Logger) { d.logger.Store(l) }

// Register serves method with h, replacing any handler registered for it
// before. Names beginning with "rpc." are allowed. It panics if h is nil.
func (d *Dispatcher) Register(method string, h HandlerFunc) {
	if h == nil {
		panic("jsonrpc: Register " + method + " with a nil handler")
	}
	d.mu.Lock()
	d.handlers[method] = h
	d.mu.Unlock()
}

// Methods returns the registered method names, sorted.
func (d *Dispatcher) Methods() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Sorted(maps.Keys(d.handlers))
}

func (d *Dispatcher) lookup(method []byte) HandlerFunc {
	d.mu.RLock()
	h := d.handlers[string(method)]
	d.mu.RUnlock()
	return h
}

// Handle serves msg, a single request or notification or a batch of them,
// and returns the reply to send, or nil when there is none (notifications
// and batches of only notifications). Handle does not keep msg.
//
// Handlers run with ctx. A batch of more than MaxBatch entries is refused
// as a whole: the reply is one error response (id null) with
// CodeInvalidRequest, and no handler runs. The entries of a smaller batch
// run concurrently (a bounded number at a time) and their replies keep the
// order of the requests. Once ctx is done, entries that have not started
// are not run: requests among them get CodeInternalError. A panicking
// handler is recovered and its request gets CodeInternalError. Handle
// returns when every handler it started has returned, so a transport that
// must keep reading runs it on a goroutine of its own.
//
// A transport that runs batch entries itself (through a pool of its own)
// uses SplitBatch, HandleOne and JoinReplies instead.
func (d *Dispatcher) Handle(ctx context.Context, msg []byte) []byte {
	if !validJSON(msg) {
		return appendResponse(nil, nil, nil, stdError(CodeParseError))
	}
	msg = trimSpace(msg)
	if msg[0] != '[' {
		return d.handleOne(ctx, msg)
	}
	entries, rerr := splitBatch(msg)
	if rerr != nil {
		return appendResponse(nil, nil, nil, rerr)
	}
	replies := make([][]byte, len(entries))
	workers := min(len(entries), batchConcurrency)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(entries) {
					return
				}
				replies[i] = d.handleOne(ctx, entries[i])
			}
		})
	}
	wg.Wait()
	return JoinReplies(replies)
}

// HandleOne serves msg, exactly one request or notification object, and
// returns its reply, or nil for a notification. It is Handle for one entry
// of a batch that a transport split with SplitBatch: a batch given to
// HandleOne is not served but answered with CodeInvalidRequest (id null),
// and invalid JSON with CodeParseError. HandleOne does not keep msg.
func (d *Dispatcher) HandleOne(ctx context.Context, msg []byte) []byte {
	if !validJSON(msg) {
		return appendResponse(nil, nil, nil, stdError(CodeParseError))
	}
	return d.handleOne(ctx, trimSpace(msg))
}

// SplitBatch returns the entries of msg, a batch: each is one JSON value,
// without surrounding whitespace, sharing msg's memory. It refuses msg with
// the *Error to send back (as the whole reply, with id null) when msg is
// not valid JSON (CodeParseError), is not an array, is an empty batch or
// holds more than MaxBatch entries (CodeInvalidRequest). The entries are
// not checked: HandleOne answers one that is not a request object with its
// own error.
func SplitBatch(msg []byte) (entries [][]byte, err *Error) {
	if !validJSON(msg) {
		return nil, stdError(CodeParseError)
	}
	msg = trimSpace(msg)
	if msg[0] != '[' {
		return nil, stdError(CodeInvalidRequest)
	}
	return splitBatch(msg)
}

// splitBatch is SplitBatch for a valid, trimmed array.
func splitBatch(msg []byte) ([][]byte, *Error) {
	n := 0
	forEachElement(msg, func([]byte) bool { n++; return true })
	switch {
	case n == 0:
		return nil, stdError(CodeInvalidRequest)
	case n > MaxBatch:
		return nil, &Error{Code: CodeInvalidRequest,
			Message: "batch of " + strconv.Itoa(n) + " entries exceeds the limit of " + strconv.Itoa(MaxBatch)}
	}
	entries := make([][]byte, 0, n)
	forEachElement(msg, func(e []byte) bool {
		entries = append(entries, e)
		return true
	})
	return entries, nil
}

// JoinReplies joins the replies to the entries of a batch, in order, into
// the batch reply to send, skipping nil (and empty) ones: the entries that
// were notifications. It returns nil when every reply is nil, since a batch
// of only notifications gets no reply at all.
func JoinReplies(replies [][]byte) []byte {
	size := 0
	for _, r := range replies {
		size += len(r) + 1
	}
	if size == len(replies) {
		return nil
	}
	out := make([]byte, 0, size+1)
	for _, r := range replies {
		if len(r) == 0 {
			continue
		}
		if len(out) == 0 {
			out = append(out, '[')
		} else {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	return append(out, ']')
}

// handleOne serves one request object (valid JSON, trimmed) and appends its
// reply; it returns nil for a notification.
func (d *Dispatcher) handleOne(ctx context.Context, b []byte) []byte {
	req, rerr := parseRaw(b)
	if rerr != nil {
		return appendResponse(nil, req.id, nil, rerr) // even without an id: it is no notification
	}
	notification := req.id == nil
	h := d.lookup(req.method)
	if h == nil {
		if notification {
			return nil
		}
		return appendResponse(nil, req.id, nil, stdError(CodeMethodNotFound))
	}
	if err := ctx.Err(); err != nil {
		d.logError(ctx, req.method, "request not run", err)
		if notification {
			return nil
		}
		return appendResponse(nil, req.id, nil, stdError(CodeInternalError))
	}
	result, err := d.call(ctx, h, req.method, bytes.Clone(req.params))
	if notification {
		return nil
	}
	if err != nil {
		return appendResponse(nil, req.id, nil, d.toError(ctx, req.method, err))
	}
	res, merr := json.Marshal(result)
	if merr != nil {
		d.logError(ctx, req.method, "marshalling result", merr)
		return appendResponse(nil, req.id, nil, stdError(CodeInternalError))
	}
	return appendResponse(nil, req.id, res, nil)
}

// call runs h, turning a panic into an internal error.
func (d *Dispatcher) call(ctx context.Context, h HandlerFunc, method []byte, params json.RawMessage) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if l := d.logger.Load(); l != nil {
				l.ErrorContext(ctx, "jsonrpc handler panicked", "method", string(method),
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			result, err = nil, stdError(CodeInternalError)
		}
	}()
	return h(ctx, params)
}

// toError returns the *Error to send for err.
func (d *Dispatcher) toError(ctx context.Context, method []byte, err error) *Error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e
	}
	d.logError(ctx, method, "handler failed", err)
	return stdError(CodeInternalError)
}

func (d *Dispatcher) logError(ctx context.Context, method []byte, msg string, err error) {
	if l := d.logger.Load(); l != nil {
		l.ErrorContext(ctx, "jsonrpc "+msg, "method", string(method), "error", err)
	}
}
