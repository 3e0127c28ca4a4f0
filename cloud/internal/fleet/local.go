package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// LocalSession is a device session held by this replica. A call to a
// device whose session is here needs neither the device's row (the session
// knows its organisation and whether its key is accepted) nor NATS (the
// call goes straight to the session): Call takes this path whenever it
// can, and routes over NATS otherwise.
type LocalSession interface {
	// OrgID is the organisation of the session's device.
	OrgID() int64
	// Accepted reports whether the session's key is accepted.
	Accepted() bool
	// Enter counts one call in flight on the session, which waits for it
	// before it ends; false once the session is ending. Leave ends it.
	Enter() (Peer, bool)
	Leave()
}

type localSessions struct {
	mu sync.RWMutex
	fn func(deviceID string) LocalSession
}

// SetLocalSessions installs the hub's lookup of the sessions it holds
// (nil: none; every call goes over NATS).
func (s *Service) SetLocalSessions(fn func(deviceID string) LocalSession) {
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	s.local.fn = fn
}

func (s *Service) localSession(deviceID string) LocalSession {
	s.local.mu.RLock()
	fn := s.local.fn
	s.local.mu.RUnlock()
	if fn == nil {
		return nil
	}
	return fn(deviceID)
}

// callLocal makes a synchronous call through a session held here, and
// writes its row once, with its outcome and its audit entry, in one
// statement (group-committed with the other calls'): before Call returns,
// so a call the API answered is in PostgreSQL, and with the actor, method
// and outcome, so the row is its own record of who did what. A call in
// flight has no row yet: a replica that dies meanwhile leaves no row for
// it, and its caller, who got no answer, no call id either.
//
// A caller that leaves gets the call's id at once (and audits that it
// left); the call goes on, and its row is written when it ends, then
// without an audit entry. audited reports whether the entry was written.
func (s *Service) callLocal(ctx context.Context, a Actor, ls LocalSession, req CallRequest) (c Call, audited bool, err error) {
	n := store.NewCall{ID: newUUID(), OrgID: ls.OrgID(), DeviceID: req.DeviceID, Method: req.Method,
		Params: req.Params, Actor: a.Name(), Timeout: req.Timeout, Status: store.CallSent}
	sentAt := time.Now()
	p, ok := ls.Enter()
	if !ok {
		c, err := s.recordLocal(ctx, n, sentAt, nil, store.CallFailed, nil, rpcErr(rpcproto.CodeDeviceOffline), true)
		return c, err == nil, err
	}
	type outcome struct {
		c       Call
		audited bool
		err     error
	}
	var state atomic.Int32 // 0: under way; 1: the caller left; 2: being recorded for the caller
	done := make(chan outcome, 1)
	go func() {
		defer ls.Leave()
		status, res, e, at := s.deliverSync(ctx, n, p)
		audit := state.CompareAndSwap(0, 2)
		c, err := s.recordLocal(context.WithoutCancel(ctx), n, sentAt, at, status, res, e, audit)
		done <- outcome{c, audit && err == nil, err}
	}()
	select {
	case o := <-done:
		return o.c, o.audited, o.err
	case <-ctx.Done():
		if !state.CompareAndSwap(0, 1) {
			o := <-done // the outcome is being written: a moment
			return o.c, o.audited, o.err
		}
		return Call{ID: n.ID, OrgID: n.OrgID, DeviceID: n.DeviceID, Method: n.Method, Params: n.Params,
			Status: store.CallSent, Actor: n.Actor, Timeout: n.Timeout, CreatedAt: sentAt, SentAt: &sentAt}, false, ctx.Err()
	}
}

// deliverSync sends a synchronous call on p and classifies its outcome as
// Deliver does for a synchronous call.
func (s *Service) deliverSync(ctx context.Context, n store.NewCall, p Peer) (status string, result json.RawMessage,
	e *jsonrpc.Error, deliveredAt *time.Time) {
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var at time.Time
	delivered := false
	res, err := p.Call(cctx, n.Method, n.Params, func(werr error) {
		if werr == nil {
			delivered, at = true, time.Now()
		}
	})
	if delivered {
		deliveredAt = &at
	}
	var re *jsonrpc.Error
	switch {
	case !delivered:
		code := rpcproto.CodeDeviceOffline
		if errors.Is(err, ErrPeerQueueFull) {
			code = rpcproto.CodeQueueFull
		}
		return store.CallFailed, nil, rpcErr(code), nil
	case err == nil:
		if len(res) == 0 {
			res = json.RawMessage("null")
		}
		return store.CallSucceeded, res, nil, deliveredAt
	case errors.As(err, &re):
		return store.CallFailed, nil, re, deliveredAt
	case isClosed(p):
		return store.CallFailed, nil, rpcErr(rpcproto.CodeSessionEvicted), deliveredAt
	case errors.Is(err, context.DeadlineExceeded):
		return store.CallTimeout, nil, rpcErr(rpcproto.CodeTimeout), deliveredAt
	default:
		return store.CallFailed, nil, rpcErr(rpcproto.CodeSessionEvicted), deliveredAt
	}
}

// recordLocal writes a local call's row with its outcome (and, if audit,
// its audit entry) and tells the event subscribers.
func (s *Service) recordLocal(ctx context.Context, n store.NewCall, sentAt time.Time, deliveredAt *time.Time,
	status string, result json.RawMessage, e *jsonrpc.Error, audit bool) (Call, error) {
	n.Status, n.Error = status, e
	c, err := s.st.InsertFinishedCall(context.WithoutCancel(ctx), store.FinishedCall{NewCall: n, Result: result,
		SentAt: sentAt, DeliveredAt: deliveredAt, Audit: audit})
	if err != nil {
		s.log.Error("recording call outcome", "call_id", n.ID, "err", err)
		return c, err
	}
	s.callFinished(c)
	return c, nil
}
