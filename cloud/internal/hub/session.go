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
	// The drainer runs only while there may be queued calls to send: a
	// kick starts it unless it runs, and a kick while it runs makes it go
	// round once more (see kickDrain).
	draining   atomic.Bool
	drainAgain atomic.Bool
	reportWait *time.Timer   // the wait for a first report, from acceptance; under mu
	served     *fleet.Served // which queued calls may be sent (state.report)

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

// OrgID, Accepted, Enter and Leave make the session a fleet.LocalSession.
func (ds *deviceSession) OrgID() int64   { return ds.orgID }
func (ds *deviceSession) Accepted() bool { return ds.accepted.Load() }

// Enter counts a call in flight as one of the session's owned goroutines
// would be: teardown waits for it.
func (ds *deviceSession) Enter() (fleet.Peer, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.ending {
		return nil, false
	}
	ds.wg.Add(1)
	return peerOf{ds.peer}, true
}

func (ds *deviceSession) Leave() { ds.wg.Done() }

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
	if ds.accepted.Load() {
		ds.announceKeys()
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
	ds.announceKeys()
	ds.kickDrain()
}

// announceKeys sends auth.cloud_keys when the hub has a key set to announce.
// Only an accepted session is told: a pending device has not been reviewed.
func (ds *deviceSession) announceKeys() {
	if ds.hub.announce == nil {
		return
	}
	if err := ds.peer.Notify(ds.ctx, rpcproto.MethodAuthCloudKeys, ds.hub.announce); err != nil {
		ds.hub.log.Info("sending auth.cloud_keys", "device_id", ds.deviceID, "err", err)
	}
}

// kickDrain makes the drainer look for queued calls: it starts it, as
// an owned goroutine, or tells the one running to go round again.
func (ds *deviceSession) kickDrain() {
	ds.drainAgain.Store(true)
	if !ds.draining.CompareAndSwap(false, true) {
		return
	}
	if !ds.goOwned(ds.drain) {
		ds.draining.Store(false)
	}
}

// drain runs drainOnce until no kick came during the last round.
func (ds *deviceSession) drain() {
	for {
		ds.drainAgain.Store(false)
		ds.drainOnce()
		ds.draining.Store(false)
		// A kick after the Store(false) above started its own drainer or
		// will find this one again.
		if !ds.drainAgain.Load() || !ds.draining.CompareAndSwap(false, true) {
			return
		}
	}
}

// drainOnce sends the device's queued persistent calls, in order, as
// fleet.Served allows: none until the device's first state.report (or
// until ReportWait passed without one), then those whose method it lists.
// The next call is claimed only once the previous one's write completed.
func (ds *deviceSession) drainOnce() {
	h := ds.hub
	svc := h.svc
	if ds.ctx.Err() != nil || !ds.accepted.Load() {
		return
	}
	select {
	case <-ds.peer.Done():
		return
	default:
	}
	if !ds.served.Ready() {
		ds.waitForReport()
		return
	}
	for ds.ctx.Err() == nil {
		c, ok, err := svc.ClaimQueued(ds.ctx, ds.deviceID, ds.served)
		if err != nil {
			if ds.ctx.Err() == nil {
				h.log.Error("claiming queued call", "device_id", ds.deviceID, "err", err)
			}
			return
		}
		if !ok {
			return
		}
		written := make(chan bool, 1)
		if !ds.goOwned(func() { svc.Deliver(ds.ctx, c, ds.served, peerOf{ds.peer}, written) }) {
			svc.Requeue(ds.ctx, c.ID)
			return
		}
		if !<-written {
			return
		}
	}
}

// waitForReport starts, once, the wait for the device's first
// state.report: when ReportWait passes without one, queued calls of any
// method may flow.
func (ds *deviceSession) waitForReport() {
	h := ds.hub
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.reportWait != nil || ds.ending {
		return
	}
	ds.reportWait = time.AfterFunc(h.opts.ReportWait, func() {
		if ds.served.GiveUpWaiting() {
			h.log.Info("no state.report: sending queued calls of any method", "device_id", ds.deviceID,
				"waited_ms", h.opts.ReportWait.Milliseconds())
		}
		ds.kickDrain()
	})
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
		ds.hub.refuseOffline(m, rr.CallID)
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
	if ds.reportWait != nil {
		ds.reportWait.Stop()
	}
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
