package fleet

import (
	"context"
	"sync"

	"github.com/bosunhq/bosun/cloud/internal/store"
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

// callLocal makes a synchronous call through a session held here: the
// row is written (sent) before the request, and its outcome before Call
// returns, like the routed path, without the device lookup and the two
// NATS messages.
func (s *Service) callLocal(ctx context.Context, a Actor, ls LocalSession, req CallRequest) (Call, error) {
	c, err := s.st.InsertCall(ctx, store.NewCall{ID: newUUID(), OrgID: ls.OrgID(), DeviceID: req.DeviceID,
		Method: req.Method, Params: req.Params, Actor: a.Name(), Timeout: req.Timeout, Status: store.CallSent})
	if err != nil {
		return c, err
	}
	p, ok := ls.Enter()
	if !ok {
		return s.finish(ctx, c.ID, store.CallFailed, nil, rpcErr(rpcproto.CodeDeviceOffline))
	}
	// The call goes on if the caller leaves (its outcome lands in its
	// row), as it does on the session's replica when routed.
	done := make(chan Call, 1)
	go func() {
		defer ls.Leave()
		done <- s.Deliver(ctx, c, nil, p, nil)
	}()
	select {
	case out := <-done:
		return out, nil
	case <-ctx.Done():
		return c, ctx.Err()
	}
}
