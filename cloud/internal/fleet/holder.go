package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the call lifecycle on the replica that holds a device's
// session: sent → delivered (the websocket write completed) → outcome
// (answer, error, timeout, session ended), and requeue for a persistent
// call that never reached the device. The hub only moves bytes: it gives
// Deliver a Peer.

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

// Deliver sends call c to the device over p and records every step. A
// persistent call (one claimed from the queue) that could not be written
// goes back to the queue, so it is delivered by a later session; any other
// call that could not be written fails. written, when not nil, learns
// whether the write completed, as soon as it is known: the drainer claims
// the next queued call only then, so queued calls are written (and marked
// delivered) in order. Deliver returns the call as stored.
func (s *Service) Deliver(ctx context.Context, c Call, persistent bool, p Peer, written chan<- bool) Call {
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
	// so the delivered mark is written by a goroutine of this call.
	wrote := make(chan bool, 1)
	marked := make(chan struct{})
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
	delivered := false
	res, err := p.Call(cctx, c.Method, c.Params, func(werr error) {
		delivered = werr == nil
		wrote <- delivered
	})
	<-marked
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
			out, ferr = s.finish(ctx, c.ID, store.CallFailed, nil, rpcErr(code))
		}
	case err == nil:
		if len(res) == 0 {
			res = json.RawMessage("null")
		}
		out, ferr = s.finish(ctx, c.ID, store.CallSucceeded, res, nil)
	case errors.As(err, &re):
		out, ferr = s.finish(ctx, c.ID, store.CallFailed, nil, re)
	case isClosed(p):
		out, ferr = s.finish(ctx, c.ID, store.CallFailed, nil, rpcErr(rpcproto.CodeSessionEvicted))
	case errors.Is(err, context.DeadlineExceeded):
		out, ferr = s.finish(ctx, c.ID, store.CallTimeout, nil, rpcErr(rpcproto.CodeTimeout))
	default:
		out, ferr = s.finish(ctx, c.ID, store.CallFailed, nil, rpcErr(rpcproto.CodeSessionEvicted))
	}
	if ferr != nil {
		s.log.Error("recording call outcome", "call_id", c.ID, "err", ferr)
	}
	return out
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
