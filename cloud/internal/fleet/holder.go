package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the call lifecycle on the replica that holds a device's
// session: sent → delivered (the websocket write completed) → outcome
// (answer, error, timeout, session ended), and requeue for a persistent
// call that never reached the device, or that the device answered "method
// not found" while its ttl lasts. Which queued calls may be sent at all is
// Served's rule. The hub only moves bytes: it gives Deliver a Peer.

// Served is what the holder of one session knows of the methods its device
// serves, and so which of the device's queued (persistent) calls it may
// send. The rule, for the whole session:
//
//   - Nothing is sent before the device's first state.report: that report
//     is the device saying its workers are ready. A device that sends none
//     within the hub's ReportWait (10s) gets every queued call, as if its
//     reports listed no methods (GiveUpWaiting).
//   - Then a queued call is sent only if the latest report lists its
//     method (a report that lists none allows every method) and the device
//     has not answered "method not found" (-32601) for that method since
//     that report. Every later report starts that over: it is the moment
//     to retry.
//   - Among the calls allowed, the oldest goes first (queued order per
//     device); a call that is not allowed stays queued in its place and
//     does not hold up the calls behind it.
//
// Synchronous calls (no ttl) do not go through Served: they are sent at
// once, as ever. All methods are safe for concurrent use.
type Served struct {
	wake func() // wakes the session's drainer; never nil

	mu       sync.Mutex      // guards the following
	ready    bool            // a report came, or the wait for one ended
	methods  map[string]bool // of the latest report; nil: any method
	unserved map[string]bool // answered -32601 since the latest report
}

// NewServed returns the state of a session that has not reported yet;
// wake (nil: none) wakes the session's drainer when a call goes back to
// the queue that may be sent at once.
func NewServed(wake func()) *Served {
	if wake == nil {
		wake = func() {}
	}
	return &Served{wake: wake, unserved: map[string]bool{}}
}

// Report records a state.report that lists methods (nil or empty: it lists
// none, so any method may be sent).
func (q *Served) Report(methods []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ready = true
	q.methods = nil
	if len(methods) > 0 {
		q.methods = make(map[string]bool, len(methods))
		for _, m := range methods {
			q.methods[m] = true
		}
	}
	clear(q.unserved)
}

// GiveUpWaiting ends the wait for a first report: from now on queued calls
// of any method may be sent. It reports whether the session had not
// reported (and so whether this changed anything).
func (q *Served) GiveUpWaiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ready {
		return false
	}
	q.ready = true
	return true
}

// Ready reports whether queued calls may be sent at all.
func (q *Served) Ready() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready
}

// Allows reports whether a queued call of method may be sent now.
func (q *Served) Allows(method string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready && (q.methods == nil || q.methods[method]) && !q.unserved[method]
}

// markUnserved records that the device answered -32601 for method.
func (q *Served) markUnserved(method string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.unserved[method] = true
}

// filter is the claim filter of the calls Allows.
func (q *Served) filter() store.ClaimFilter {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := store.ClaimFilter{Skip: make([]string, 0, len(q.unserved))}
	for m := range q.unserved {
		f.Skip = append(f.Skip, m)
	}
	if q.methods != nil {
		f.Methods = make([]string, 0, len(q.methods))
		for m := range q.methods {
			f.Methods = append(f.Methods, m)
		}
	}
	return f
}

// The errors a persistent call carries while it waits for its method, and
// when it expires without having been served. Their shape is part of the
// API (docs/api.md): data.method always names the method.
const (
	// unlistedDetail is data.detail of the last error of a queued call
	// whose method the device does not list.
	unlistedDetail = "the device does not list this method (yet): the call stays queued until it does or its ttl passes"
	// expiredUnserved is the message of a call that expired without the
	// device ever serving its method; %s is the method.
	expiredUnserved = "expired: the device never served %s before the ttl passed"
)

// unlistedError is the last error of a queued call whose method the
// device does not list.
func unlistedError(method string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "Method not found",
		Data: mustJSON(map[string]string{"method": method, "detail": unlistedDetail})}
}

// expiredError is the error of a call that expired after last (nil: it
// never reached a device that could tell).
func expiredError(method string, last *jsonrpc.Error) *jsonrpc.Error {
	if last == nil {
		return rpcErr(rpcproto.CodeExpired)
	}
	return &jsonrpc.Error{Code: rpcproto.CodeExpired, Message: fmt.Sprintf(expiredUnserved, method),
		Data: mustJSON(map[string]any{"method": method, "last_error": last})}
}

// Peer is a device's live session as the call lifecycle needs it.
type Peer interface {
	// Call sends method with params and waits for the answer. written is
	// called exactly once with the outcome of the websocket write (nil:
	// written), before Call returns; it must not block. An answer that is
	// an error comes
	// back as a *jsonrpc.Error.
	Call(ctx context.Context, method string, params json.RawMessage, written func(error)) (json.RawMessage, error)
	// Done is closed when the session ends.
	Done() <-chan struct{}
}

// Deliver sends call c to the device over p and records every step. q is
// the session's Served for a persistent call (one claimed from the queue),
// nil for a synchronous one. A persistent call that could not be written
// goes back to the queue, so it is delivered by a later session; one the
// device answers -32601 (method not found) goes back too while its ttl
// lasts, and is tried again after the device's next state.report. Any
// other call that could not be written fails. written, when not nil,
// learns whether the write completed, as soon as it is known: the drainer
// claims the next queued call only then, so queued calls are written (and
// marked delivered) in order. Deliver returns the call as stored.
func (s *Service) Deliver(ctx context.Context, c Call, q *Served, p Peer, written chan<- bool) Call {
	persistent := q != nil
	ctx = context.WithoutCancel(ctx) // outcomes are recorded even as the session ends
	signal := func(ok bool) {
		if written != nil {
			written <- ok
			written = nil
		}
	}
	defer signal(false)
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	// The session ending fails the call at once (the session fails every
	// pending call when it ends), not at its timeout.
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// The write callback runs on the session's writer: it must not block,
	// so a persistent call's delivered mark is written by a goroutine of
	// this call (the drainer waits for it). A synchronous call's is not
	// written on its own: its finish records when its request was written.
	var (
		wrote       chan bool
		marked      chan struct{}
		deliveredAt time.Time
	)
	if persistent {
		wrote, marked = make(chan bool, 1), make(chan struct{})
		go func() {
			defer close(marked)
			if <-wrote {
				if err := s.st.MarkDelivered(ctx, c.ID); err != nil {
					s.log.Error("marking call delivered", "call_id", c.ID, "err", err)
				}
				// Only now may the drainer claim the next queued call, so
				// queued calls are written, and marked delivered, in order.
				signal(true)
			}
		}()
	}
	delivered := false
	res, err := p.Call(cctx, c.Method, c.Params, func(werr error) {
		delivered = werr == nil
		if delivered {
			deliveredAt = time.Now()
		}
		if persistent {
			wrote <- delivered
		}
	})
	if persistent {
		<-marked
	}
	finish := func(status string, result json.RawMessage, e *jsonrpc.Error) (Call, error) {
		if persistent || !delivered {
			return s.finish(ctx, c.ID, status, result, e)
		}
		return s.finishDelivered(ctx, c.ID, status, result, e, deliveredAt)
	}
	var out Call
	var ferr error
	var re *jsonrpc.Error
	switch {
	case !delivered:
		if persistent {
			if err := s.st.Requeue(ctx, c.ID); err != nil {
				s.log.Error("requeueing call", "call_id", c.ID, "err", err)
			}
			out, ferr = s.st.GetCall(ctx, c.ID)
		} else {
			code := rpcproto.CodeDeviceOffline
			if errors.Is(err, ErrPeerQueueFull) {
				code = rpcproto.CodeQueueFull
			}
			out, ferr = finish(store.CallFailed, nil, rpcErr(code))
		}
	case err == nil:
		if len(res) == 0 {
			res = json.RawMessage("null")
		}
		out, ferr = finish(store.CallSucceeded, res, nil)
	case errors.As(err, &re) && persistent && re.Code == jsonrpc.CodeMethodNotFound:
		out, ferr = s.notServed(ctx, c, q, re)
	case errors.As(err, &re):
		out, ferr = finish(store.CallFailed, nil, re)
	case isClosed(p):
		out, ferr = finish(store.CallFailed, nil, rpcErr(rpcproto.CodeSessionEvicted))
	case errors.Is(err, context.DeadlineExceeded):
		out, ferr = finish(store.CallTimeout, nil, rpcErr(rpcproto.CodeTimeout))
	default:
		out, ferr = finish(store.CallFailed, nil, rpcErr(rpcproto.CodeSessionEvicted))
	}
	if ferr != nil {
		s.log.Error("recording call outcome", "call_id", c.ID, "err", ferr)
	}
	return out
}

// notServed handles a persistent call the device answered -32601: while
// its ttl lasts it goes back to the queue with that answer as its last
// error, and whoever waits on it learns that it is queued again; after
// its ttl it ends expired.
func (s *Service) notServed(ctx context.Context, c Call, q *Served, re *jsonrpc.Error) (Call, error) {
	// Before the row is queued again, so the drainer cannot claim it anew.
	q.markUnserved(c.Method)
	ok, err := s.st.RequeueAnswered(ctx, c.ID, re)
	if err != nil {
		return c, err
	}
	if !ok {
		// The ttl passed (or the call already finished: then this
		// changes nothing).
		return s.finish(ctx, c.ID, store.CallExpired, nil, expiredError(c.Method, re))
	}
	if q.Allows(c.Method) {
		// A report came between the answer and the requeue: it is
		// this call's retry.
		q.wake()
	}
	out, err := s.st.GetCall(ctx, c.ID)
	if err != nil {
		return out, err
	}
	s.log.Info("queued call not served yet: queued again", "call_id", c.ID, "device_id", c.DeviceID, "method", c.Method)
	s.nc.Publish(SubjectCallDone(c.ID), mustJSON(out))
	return out, nil
}

// NoteUnlisted records on a queued call the reason it waits: the device
// does not list its method. The holder calls it when asked to send a call
// it may not send yet.
func (s *Service) NoteUnlisted(ctx context.Context, callID, method string) {
	if err := s.st.SetLastError(context.WithoutCancel(ctx), callID, unlistedError(method)); err != nil {
		s.log.Error("recording why a call waits", "call_id", callID, "err", err)
	}
}

// ErrPeerQueueFull is what a Peer's Call wraps when its send queue was
// full: the synchronous call fails with CodeQueueFull.
var ErrPeerQueueFull = errors.New("send queue full")

func isClosed(p Peer) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// RefuseCall records the outcome of a call the holder cannot send: code is
// CodeNotAccepted for a pending device, CodeDeviceOffline for a session
// that is ending.
func (s *Service) RefuseCall(ctx context.Context, callID string, code int) Call {
	c, err := s.finish(context.WithoutCancel(ctx), callID, store.CallFailed, nil, rpcErr(code))
	if err != nil {
		s.log.Error("recording call outcome", "call_id", callID, "err", err)
	}
	return c
}

// CallFromRoute is the call a RouteRequest carries.
func CallFromRoute(rr RouteRequest) Call {
	return Call{ID: rr.CallID, Method: rr.Method, Params: rr.Params, Timeout: time.Duration(rr.TimeoutMS) * time.Millisecond}
}
