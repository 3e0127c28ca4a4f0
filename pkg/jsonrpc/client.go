package jsonrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// ErrClosed is wrapped by the error of every call that Close failed, and of
// every call made after Close.
var ErrClosed = errors.New("jsonrpc: connection closed")

// ErrInvalidResponse is wrapped by the error of a call whose response
// arrived but does not follow the specification (wrong "jsonrpc", both or
// neither of "result" and "error", a malformed error object).
var ErrInvalidResponse = errors.New("jsonrpc: invalid response")

// Client makes calls over one connection and matches the responses to them,
// so any number of calls can be in flight at once. It is safe for concurrent
// use. The transport feeds every response it receives to Deliver and calls
// Close when the connection ends.
//
// Ids are numbers the Client assigns; an id is never given to a new call
// while a call holding it is pending. A response whose id matches no pending
// call (late, unknown, or null, as in a Parse error) is ignored.
type Client struct {
	send func(ctx context.Context, msg []byte) error

	mu      sync.Mutex // guards the following
	nextID  uint64
	pending map[uint64]chan callResult // each buffered 1: Deliver and Close never block
	closed  error                      // nil until Close; then what every call fails with
}

type callResult struct {
	result json.RawMessage
	err    error
}

// NewClient returns a Client that writes each request with send. send may be
// called from several goroutines at once, must honour ctx, and may deliver
// the response (call Deliver) before it returns. It panics if send is nil.
func NewClient(send func(ctx context.Context, msg []byte) error) *Client {
	if send == nil {
		panic("jsonrpc: NewClient with a nil send func")
	}
	return &Client{send: send, nextID: 1, pending: make(map[uint64]chan callResult)}
}

// Call calls method with params and decodes the result into result, unless
// result is nil. params must marshal to a JSON array or object, or be nil
// (omitted). An error response comes back as an *Error (use errors.As); a
// done ctx returns at once with an error wrapping ctx.Err() and frees the
// call's slot; a response arriving after that is ignored.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	p, err := marshalParams(params)
	if err != nil {
		return err
	}
	res, err := c.call(ctx, method, p)
	if err != nil {
		return err
	}
	if result != nil {
		if err := json.Unmarshal(res, result); err != nil {
			return fmt.Errorf("jsonrpc: decoding result of %s: %w", method, err)
		}
	}
	return nil
}

// CallRaw is Call with params and result as raw JSON. params must be a JSON
// array or object, or empty (omitted).
func (c *Client) CallRaw(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	p, err := checkParams(params)
	if err != nil {
		return nil, err
	}
	return c.call(ctx, method, p)
}

// Notify sends a notification: no id, no response. It returns once send has.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	p, err := marshalParams(params)
	if err != nil {
		return err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed != nil {
		return closed
	}
	if err := c.send(ctx, appendRequest(nil, method, p, 0, false)); err != nil {
		return fmt.Errorf("jsonrpc: sending %s: %w", method, err)
	}
	return nil
}

func (c *Client) call(ctx context.Context, method string, params []byte) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jsonrpc: calling %s: %w", method, err)
	}
	ch := make(chan callResult, 1)
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return nil, c.closed
	}
	// The counter alone would do in practice; skipping ids still pending
	// makes "never reused while pending" hold even across a wrap-around.
	id := c.nextID
	for c.pending[id] != nil {
		id++
	}
	c.nextID = id + 1
	c.pending[id] = ch
	c.mu.Unlock()

	if err := c.send(ctx, appendRequest(nil, method, params, id, true)); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("jsonrpc: sending %s: %w", method, err)
	}
	select {
	case r := <-ch:
		return r.result, r.err
	case <-ctx.Done():
		c.forget(id)
		return nil, fmt.Errorf("jsonrpc: calling %s: %w", method, ctx.Err())
	}
}

// forget frees the slot of call id, if still pending.
func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Deliver hands a response, or a batch of responses, to the calls waiting
// for them. It reports whether msg was one (see IsResponse); responses
// matching no pending call are ignored and still count. Deliver does not
// keep msg.
func (c *Client) Deliver(msg []byte) bool {
	if !IsResponse(msg) {
		return false
	}
	b := trimSpace(msg)
	if b[0] != '[' {
		c.deliverOne(b)
		return true
	}
	forEachElement(b, func(e []byte) bool {
		c.deliverOne(e)
		return true
	})
	return true
}

func (c *Client) deliverOne(b []byte) {
	var version, id, result, errObj []byte
	dup := false
	forEachMember(b, func(k, v []byte) bool {
		var slot *[]byte
		switch string(unquote(k)) {
		case "jsonrpc":
			slot = &version
		case "id":
			slot = &id
		case "result":
			slot = &result
		case "error":
			slot = &errObj
		default:
			return true
		}
		dup = dup || *slot != nil
		*slot = v
		return true
	})
	if id == nil || !isNumber(id) {
		return // not one of our ids (ours are plain numbers)
	}
	n, err := strconv.ParseUint(string(id), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	ch := c.pending[n]
	delete(c.pending, n)
	c.mu.Unlock()
	if ch == nil {
		return // late (cancelled call) or unknown
	}

	var r callResult
	switch {
	case dup:
		r.err = fmt.Errorf("%w: duplicate member", ErrInvalidResponse)
	case version == nil || !isString(version) || string(unquote(version)) != Version:
		r.err = fmt.Errorf("%w: jsonrpc must be %q", ErrInvalidResponse, Version)
	case (result == nil) == (errObj == nil):
		r.err = fmt.Errorf("%w: exactly one of result and error must be present", ErrInvalidResponse)
	case errObj != nil:
		if e, ok := parseErrorObject(errObj); ok {
			r.err = e
		} else {
			r.err = fmt.Errorf("%w: malformed error object", ErrInvalidResponse)
		}
	default:
		r.result = append(json.RawMessage(nil), result...)
	}
	ch <- r
}

// parseErrorObject parses an error object strictly: an integer code and a
// string message, both required, and an optional data of any type.
func parseErrorObject(v []byte) (*Error, bool) {
	if v[0] != '{' {
		return nil, false
	}
	var code, message, data []byte
	dup := false
	forEachMember(v, func(k, val []byte) bool {
		var slot *[]byte
		switch string(unquote(k)) {
		case "code":
			slot = &code
		case "message":
			slot = &message
		case "data":
			slot = &data
		default:
			return true
		}
		dup = dup || *slot != nil
		*slot = val
		return true
	})
	if dup || code == nil || message == nil || !isString(message) {
		return nil, false
	}
	n, err := strconv.Atoi(string(code))
	if err != nil {
		return nil, false
	}
	e := &Error{Code: n, Message: string(unquote(message))}
	if data != nil {
		e.Data = append(json.RawMessage(nil), data...)
	}
	return e, true
}

// Close fails every pending call, and every later call, with an error
// wrapping ErrClosed and err (which may be nil). Only the first Close has
// an effect.
func (c *Client) Close(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed != nil {
		return
	}
	switch {
	case err == nil || errors.Is(err, ErrClosed):
		c.closed = ErrClosed
		if err != nil {
			c.closed = err
		}
	default:
		c.closed = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	for id, ch := range c.pending {
		ch <- callResult{err: c.closed}
		delete(c.pending, id)
	}
}

// Pending returns how many calls are waiting for their response.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// marshalParams marshals params; nil, or a value marshalling to null,
// omits them.
func marshalParams(params any) ([]byte, error) {
	if params == nil {
		return nil, nil
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("jsonrpc: marshalling params: %w", err)
	}
	return checkParams(b)
}

// checkParams checks that p is empty, null, an array or an object, and
// returns nil for the first two.
func checkParams(p []byte) ([]byte, error) {
	t := trimSpace(p)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if (t[0] != '[' && t[0] != '{') || !validJSON(t) {
		return nil, errors.New("jsonrpc: params must be a JSON array or object")
	}
	return t, nil
}

// appendRequest appends a request (withID) or a notification to dst, with
// the members in the order the specification's examples use.
func appendRequest(dst []byte, method string, params []byte, id uint64, withID bool) []byte {
	m, _ := json.Marshal(method) // a string always marshals
	dst = append(dst, `{"jsonrpc":"2.0","method":`...)
	dst = append(dst, m...)
	if params != nil {
		dst = append(dst, `,"params":`...)
		dst = append(dst, params...)
	}
	if withID {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, id, 10)
	}
	return append(dst, '}')
}
