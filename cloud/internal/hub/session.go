package hub

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
)

var jsonUnmarshal = json.Unmarshal

// deviceSession is one device websocket on this replica: a session engine
// (pkg/session) plus what the cloud keeps about it. The fields above mu
// are set before the session is registered and read-only afterwards.
type deviceSession struct {
	hub         *Hub
	peer        *session.Session
	remote      string
	deviceID    string
	orgID       int64
	keySetID    int64
	fingerprint string
	version     int64

	ctx    context.Context // ends when the session ends
	cancel context.CancelFunc
	kick   chan struct{} // wakes the drainer; capacity 1
	served *fleet.Served // which queued calls may be sent (state.report)

	accepted atomic.Bool

	mu     sync.Mutex     // guards the following
	ending bool           // no new owned goroutines once set
	wg     sync.WaitGroup // owned goroutines; Add only under mu while !ending
	subs   []*nats.Subscription
}

// goOwned starts fn as a goroutine the session waits for before it ends;
// false (fn not run) once the session is ending.
func (ds *deviceSession) goOwned(fn func()) bool {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.ending {
		return false
	}
	ds.wg.Add(1)
	go func() {
		defer ds.wg.Done()
		fn()
	}()
	return true
}

// close closes the websocket with code, once; the session then ends.
func (ds *deviceSession) close(code websocket.StatusCode, reason string) {
	ds.peer.Close(code, reason)
}

func (ds *deviceSession) info() fleet.DeviceInfo {
	return fleet.DeviceInfo{ID: ds.deviceID, OrgID: ds.orgID, Fingerprint: ds.fingerprint, Accepted: ds.accepted.Load,
		Reported: ds.reported}
}

// reported learns the methods of a state.report: queued calls of those
// methods may now flow.
func (ds *deviceSession) reported(methods []string) {
	ds.served.Report(methods)
	ds.kickDrain()
}

// handle serves one device → cloud request through fleet's method table.
func (ds *deviceSession) handle(ctx context.Context, msg []byte) []byte {
	return ds.hub.methods.HandleOne(fleet.WithDevice(ctx, ds.info()), msg)
}

// run serves the live session until it ends, then tears it down.
func (ds *deviceSession) run() {
	ds.goOwned(ds.drainLoop)
	if ds.accepted.Load() {
		ds.kickDrain()
	}
	err := ds.peer.Run(ds.ctx)
	ds.teardown(err)
}

// markAccepted moves a pending session to accepted: the device is told
// auth.accepted and queued calls start flowing.
func (ds *deviceSession) markAccepted() {
	if !ds.accepted.CompareAndSwap(false, true) {
		return
	}
	if err := ds.peer.Notify(ds.ctx, rpcproto.MethodAuthAccepted, rpcproto.AuthAcceptedParams{Fingerprint: ds.fingerprint}); err != nil {
		ds.hub.log.Info("sending auth.accepted", "device_id", ds.deviceID, "err", err)
	}
	ds.kickDrain()
}

func (ds *deviceSession) kickDrain() {
	select {
	case ds.kick <- struct{}{}:
	default:
	}
}

// drainLoop sends the device's queued persistent calls, in order, as
// fleet.Served allows: none until the device's first state.report (or
// until ReportWait passed without one), then those whose method it lists.
// The next call is claimed only once the previous one's write completed.
func (ds *deviceSession) drainLoop() {
	h := ds.hub
	svc := h.svc
	var (
		wait  *time.Timer // the wait for a first report, from acceptance
		waitC <-chan time.Time
	)
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		select {
		case <-ds.ctx.Done():
			return
		case <-ds.peer.Done():
			return
		case <-ds.kick:
		case <-waitC:
			waitC = nil
			if ds.served.GiveUpWaiting() {
				h.log.Info("no state.report: sending queued calls of any method", "device_id", ds.deviceID,
					"waited_ms", h.opts.ReportWait.Milliseconds())
			}
		}
		if !ds.accepted.Load() {
			continue
		}
		if !ds.served.Ready() {
			if wait == nil {
				wait = time.NewTimer(h.opts.ReportWait)
				waitC = wait.C
			}
			continue
		}
		for ds.ctx.Err() == nil {
			c, ok, err := svc.ClaimQueued(ds.ctx, ds.deviceID, ds.served)
			if err != nil {
				if ds.ctx.Err() == nil {
					h.log.Error("claiming queued call", "device_id", ds.deviceID, "err", err)
				}
				break
			}
			if !ok {
				break
			}
			written := make(chan bool, 1)
			if !ds.goOwned(func() { svc.Deliver(ds.ctx, c, ds.served, peerOf{ds.peer}, written) }) {
				svc.Requeue(ds.ctx, c.ID)
				return
			}
			if !<-written {
				break
			}
		}
	}
}

// onDrain answers a drain request and wakes the drainer. A request naming
// a call the device may not be sent yet (its method is not listed) is
// answered Unlisted, so the caller need not wait for an outcome.
func (ds *deviceSession) onDrain(m *nats.Msg) {
	var dr fleet.DrainRequest
	if len(m.Data) > 0 {
		json.Unmarshal(m.Data, &dr)
	}
	var reply fleet.DrainReply
	if dr.CallID != "" && ds.accepted.Load() && ds.served.Ready() && !ds.served.Allows(dr.Method) {
		ds.hub.svc.NoteUnlisted(ds.ctx, dr.CallID, dr.Method)
		reply.Unlisted = true
	}
	m.Respond(mustMarshal(reply))
	ds.kickDrain()
}

// onCall serves a call routed to this session over NATS.
func (ds *deviceSession) onCall(m *nats.Msg) {
	var rr fleet.RouteRequest
	if err := json.Unmarshal(m.Data, &rr); err != nil {
		return
	}
	svc := ds.hub.svc
	ok := ds.goOwned(func() {
		var c fleet.Call
		if !ds.accepted.Load() {
			c = svc.RefuseCall(ds.ctx, rr.CallID, rpcproto.CodeNotAccepted)
		} else {
			c = svc.Deliver(ds.ctx, fleet.CallFromRoute(rr), nil, peerOf{ds.peer}, nil)
		}
		m.Respond(mustMarshal(c))
	})
	if !ok {
		m.Respond(mustMarshal(svc.RefuseCall(context.Background(), rr.CallID, rpcproto.CodeDeviceOffline)))
	}
}

// peerOf adapts the session engine to fleet.Peer.
type peerOf struct{ s *session.Session }

func (p peerOf) Call(ctx context.Context, method string, params json.RawMessage, written func(error)) (json.RawMessage, error) {
	res, err := p.s.CallWritten(ctx, method, params, written)
	if errors.Is(err, session.ErrQueueFull) {
		err = errors.Join(err, fleet.ErrPeerQueueFull)
	}
	return res, err
}

func (p peerOf) Done() <-chan struct{} { return p.s.Done() }

// teardown ends the session once its websocket is closed: the owned
// goroutines stop (calls in flight are recorded as failed), the
// subscriptions go, and the device is marked offline unless a newer
// session took over.
func (ds *deviceSession) teardown(err error) {
	h := ds.hub
	// Drain, not Unsubscribe: requests already delivered to the
	// subscription still get an answer (device offline) instead of
	// leaving their callers waiting for a timeout.
	for _, sub := range ds.subs {
		sub.Drain()
	}
	ds.mu.Lock()
	ds.ending = true
	ds.mu.Unlock()
	ds.cancel()
	ds.wg.Wait()
	h.unregister(ds)
	if err := h.svc.SessionEnded(context.Background(), ds.orgID, ds.deviceID, ds.version); err != nil {
		h.log.Error("ending session", "device_id", ds.deviceID, "err", err)
	}
	args := []any{"device_id", ds.deviceID, "session_version", ds.version, "close", websocket.CloseStatus(err)}
	if code, reason, ok := ds.peer.SentClose(); ok {
		args = append(args, "sent_code", int(code), "sent_reason", reason)
	}
	h.log.Info("device session ended", args...)
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
