package hub

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
)

var jsonUnmarshal = json.Unmarshal

// outMsg is one sealed envelope waiting for the websocket. done, when not
// nil, receives the write's outcome (it has room for it).
type outMsg struct {
	wire []byte
	done chan error
}

// session is one device websocket. The fields above mu are set during the
// handshake and read-only afterwards.
type session struct {
	hub       *Hub
	conn      *websocket.Conn
	remote    string
	sessionID string
	guard     *envelope.ReplayGuard

	deviceID    string
	orgID       int64
	keySetID    int64
	fingerprint string
	pub         crypto.PublicKey
	version     int64
	opener      *envelope.Opener

	ctx    context.Context // ends when the session ends
	cancel context.CancelFunc
	sendq  chan outMsg
	kick   chan struct{} // wakes the drainer; capacity 1

	accepted atomic.Bool
	nextID   atomic.Uint64

	mu      sync.Mutex // guards the following
	pending map[string]chan jsonrpc.Response
	ending  bool           // no new owned goroutines once set
	wg      sync.WaitGroup // owned goroutines; Add only under mu while !ending
	subs    []*nats.Subscription

	closeOnce sync.Once
}

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// goOwned starts fn as a goroutine the session waits for before it ends;
// false (fn not run) once the session is ending.
func (s *session) goOwned(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// close closes the websocket with code, once; the reader then tears the
// session down. It does not block.
func (s *session) close(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		s.hub.log.Info("closing device session", "device_id", s.deviceID, "code", int(code), "reason", reason)
		// Not goOwned: the close handshake must run even while ending;
		// teardown waits on closed instead.
		go func() {
			s.conn.Close(code, reason)
		}()
	})
}

// drop cuts the connection at once, without a close handshake: used for a
// device that cannot keep up, whose pipe a close frame would queue behind.
func (s *session) drop() {
	s.closeOnce.Do(func() {
		go s.conn.CloseNow()
	})
}

// seal signs payload for this device in this session.
func (s *session) seal(payload []byte) ([]byte, error) {
	return s.hub.sealer.Seal(envelope.Header{Audience: s.deviceID, Direction: envelope.CloudToDevice, Session: s.sessionID}, payload)
}

// send queues a payload for the device. A full queue means the device
// cannot keep up: it is disconnected and send returns false.
func (s *session) send(payload []byte, done chan error) bool {
	wire, err := s.seal(payload)
	if err != nil {
		s.hub.log.Error("sealing message", "device_id", s.deviceID, "err", err)
		return false
	}
	select {
	case s.sendq <- outMsg{wire: wire, done: done}:
		return true
	default:
		s.hub.log.Warn("device send queue full: disconnecting", "device_id", s.deviceID, "queue", cap(s.sendq))
		s.drop()
		return false
	}
}

func (s *session) writeLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.sendq:
			ctx, cancel := context.WithTimeout(s.hub.baseCtx, s.hub.opts.WriteTimeout)
			err := s.conn.Write(ctx, websocket.MessageText, m.wire)
			cancel()
			if m.done != nil {
				m.done <- err
			}
			if err != nil {
				s.close(websocket.StatusInternalError, "write failed")
				return
			}
		}
	}
}

func (s *session) pingLoop() {
	t := time.NewTicker(s.hub.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.hub.opts.PingTimeout)
		err := s.conn.Ping(ctx)
		cancel()
		if err != nil {
			if s.ctx.Err() == nil {
				s.hub.log.Info("device did not answer ping", "device_id", s.deviceID, "err", err)
				s.conn.CloseNow()
			}
			return
		}
		s.hub.svc.Touch(s.ctx, s.deviceID, s.version)
		// Backstop for a lost NATS message: the key's status decides.
		switch st, err := s.hub.svc.KeyStatus(s.ctx, s.keySetID); {
		case err != nil:
		case st == store.KeyRejected || st == store.KeyRevoked:
			s.close(rpcproto.CloseRejected, "key rejected")
			return
		case st == store.KeyAccepted:
			s.markAccepted()
		}
	}
}

// markAccepted moves a pending session to accepted: the device is told
// auth.accepted and queued calls start flowing.
func (s *session) markAccepted() {
	if !s.accepted.CompareAndSwap(false, true) {
		return
	}
	b, _ := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, Method: rpcproto.MethodAuthAccepted,
		Params: mustMarshal(rpcproto.AuthAcceptedParams{Fingerprint: s.fingerprint})})
	s.send(b, nil)
	s.kickDrain()
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *session) kickDrain() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// drainLoop sends the device's queued persistent calls, in order: the next
// is claimed only once the previous one's write completed.
func (s *session) drainLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
		for s.ctx.Err() == nil && s.accepted.Load() {
			c, ok, err := s.hub.svc.ClaimQueued(s.ctx, s.deviceID)
			if err != nil {
				if s.ctx.Err() == nil {
					s.hub.log.Error("claiming queued call", "device_id", s.deviceID, "err", err)
				}
				break
			}
			if !ok {
				break
			}
			written := make(chan bool, 1)
			if !s.goOwned(func() { s.exec(c, true, written) }) {
				s.hub.svc.Requeue(s.ctx, c.ID)
				return
			}
			if !<-written {
				break
			}
		}
	}
}

// onDrain answers a drain request and wakes the drainer.
func (s *session) onDrain(m *nats.Msg) {
	m.Respond(nil)
	s.kickDrain()
}

// onCall serves a call routed to this session over NATS.
func (s *session) onCall(m *nats.Msg) {
	var rr fleet.RouteRequest
	if err := json.Unmarshal(m.Data, &rr); err != nil {
		return
	}
	ok := s.goOwned(func() {
		var c fleet.Call
		if !s.accepted.Load() {
			c, _ = s.hub.svc.FinishCall(s.ctx, rr.CallID, store.CallFailed, nil, fleet.RPCError(rpcproto.CodeNotAccepted))
		} else {
			c = s.exec(fleet.Call{ID: rr.CallID, Method: rr.Method, Params: rr.Params,
				Timeout: time.Duration(rr.TimeoutMS) * time.Millisecond}, false, nil)
		}
		m.Respond(mustMarshal(c))
	})
	if !ok {
		c, _ := s.hub.svc.FinishCall(context.Background(), rr.CallID, store.CallFailed, nil, fleet.RPCError(rpcproto.CodeDeviceOffline))
		m.Respond(mustMarshal(c))
	}
}

// exec sends one call to the device and records its outcome. written, when
// not nil, learns whether the websocket write completed. A persistent call
// that could not be written goes back to the queue.
func (s *session) exec(c fleet.Call, persistent bool, written chan<- bool) fleet.Call {
	svc := s.hub.svc
	ctx := context.WithoutCancel(s.ctx) // outcomes are recorded even as the session ends
	signal := func(ok bool) {
		if written != nil {
			written <- ok
			written = nil
		}
	}
	defer signal(false)
	id := strconv.FormatUint(s.nextID.Add(1), 10)
	payload, err := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, ID: json.RawMessage(id), Method: c.Method, Params: c.Params})
	if err != nil {
		out, _ := svc.FinishCall(ctx, c.ID, store.CallFailed, nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "invalid params", nil))
		return out
	}
	resp := make(chan jsonrpc.Response, 1)
	s.mu.Lock()
	s.pending[id] = resp
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	notDelivered := func(code int) fleet.Call {
		if persistent {
			svc.Requeue(ctx, c.ID)
			out, _ := svc.CallByID(ctx, c.ID)
			return out
		}
		out, _ := svc.FinishCall(ctx, c.ID, store.CallFailed, nil, fleet.RPCError(code))
		return out
	}
	done := make(chan error, 1)
	if !s.send(payload, done) {
		return notDelivered(rpcproto.CodeQueueFull)
	}
	select {
	case err := <-done:
		if err != nil {
			return notDelivered(rpcproto.CodeDeviceOffline)
		}
	case <-s.ctx.Done():
		select {
		case err := <-done:
			if err != nil {
				return notDelivered(rpcproto.CodeDeviceOffline)
			}
		default:
			return notDelivered(rpcproto.CodeDeviceOffline)
		}
	}
	if err := svc.MarkDelivered(ctx, c.ID); err != nil {
		s.hub.log.Error("marking call delivered", "call_id", c.ID, "err", err)
	}
	// Only now may the drainer claim the next call, so that queued calls
	// are written, and marked delivered, in order.
	signal(true)
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = fleet.DefaultCallTimeout
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var out fleet.Call
	select {
	case r := <-resp:
		if r.Error != nil {
			out, err = svc.FinishCall(ctx, c.ID, store.CallFailed, nil, r.Error)
		} else {
			res := r.Result
			if len(res) == 0 {
				res = json.RawMessage("null")
			}
			out, err = svc.FinishCall(ctx, c.ID, store.CallSucceeded, res, nil)
		}
	case <-t.C:
		out, err = svc.FinishCall(ctx, c.ID, store.CallTimeout, nil, fleet.RPCError(rpcproto.CodeTimeout))
	case <-s.ctx.Done():
		out, err = svc.FinishCall(ctx, c.ID, store.CallFailed, nil, fleet.RPCError(rpcproto.CodeSessionEvicted))
	}
	if err != nil {
		s.hub.log.Error("recording call outcome", "call_id", c.ID, "err", err)
	}
	return out
}

// deliver hands a verified response to the call waiting for it.
func (s *session) deliver(payload []byte) {
	var r jsonrpc.Response
	if err := json.Unmarshal(payload, &r); err != nil || (r.Error == nil && r.Result == nil) {
		s.hub.reject("bad_response", "device_id", s.deviceID)
		return
	}
	s.mu.Lock()
	ch := s.pending[string(r.ID)]
	s.mu.Unlock()
	if ch == nil {
		s.hub.reject("unexpected_response", "device_id", s.deviceID)
		return
	}
	select {
	case ch <- r:
	default:
	}
}

// readLoop reads, verifies and routes the device's messages until the
// websocket closes. A message that fails verification is dropped, logged
// and counted.
func (s *session) readLoop() {
	ctx := context.WithValue(s.ctx, sessionKey{}, s)
	for {
		typ, frame, err := s.conn.Read(s.hub.baseCtx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			s.hub.reject("binary_frame", "device_id", s.deviceID)
			continue
		}
		op, err := s.opener.Open(frame)
		if err != nil {
			s.hub.reject(envelope.Reason(err), "device_id", s.deviceID, "err", err)
			continue
		}
		if jsonrpc.IsResponse(op.Payload) {
			s.deliver(op.Payload)
			continue
		}
		if reply := s.hub.disp.Handle(ctx, op.Payload); reply != nil {
			s.send(reply, nil)
		}
	}
}
