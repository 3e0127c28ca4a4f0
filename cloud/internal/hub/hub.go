// Package hub serves the device websocket endpoint (/v1/device): the auth
// handshake, one session per device across all replicas, and the holder's
// side of RPC routing over NATS.
//
// Every message in both directions is a signed envelope (pkg/envelope)
// bound to the session the cloud issued in its auth.challenge. A session's
// life:
//
//  1. The cloud sends a signed auth.challenge (audience "*") naming a fresh
//     random session.
//  2. The device answers with a registration.register request in that
//     session, signed by the key it presents (proof of possession); its
//     signer must equal params.device_id.
//  3. fleet.Service decides accepted, pending or rejected. Rejected closes
//     with 4003; pending sessions stay open (bounded per organisation) and
//     get auth.accepted the moment an operator accepts the key.
//  4. The session bumps devices.session_version and announces it on NATS;
//     any older session of the device, on any replica, closes with 4009.
//  5. The holder subscribes to the device's call and drain subjects (queue
//     group "holder") and relays calls as signed requests, verifying the
//     signed responses.
//
// The hub is transport only. The session engine (pkg/session) signs,
// verifies, orders, pings and runs the device's requests off the read
// goroutine; fleet decides registration (Admit), owns the call lifecycle
// (Deliver) and the device → cloud method table (DeviceMethods). Besides
// the engine's goroutines each session owns a watcher (last_seen and a
// backstop check of the key's status), a drainer that sends queued
// persistent calls in order once the device's state.report lists their
// methods (fleet.Served), and one goroutine per call in flight; it waits
// for all of them before it ends.
//
// Lock order: Hub.mu before deviceSession.mu; neither is held across I/O.
package hub

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
)

// Options configure a Hub. Service and Key are required.
type Options struct {
	// Service is the coordinator every decision goes through. Required.
	Service *fleet.Service
	// Key signs the cloud's envelopes (its public half is what devices
	// pin). Required.
	Key crypto.Signer
	// Logger receives the hub's logs. nil means Service.Logger().
	Logger *slog.Logger
	// HandshakeTimeout bounds the wait for the device's first frame (its
	// registration) after the challenge; when it passes the cloud closes
	// with 4002 "handshake timeout". Defaults to 10s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds every websocket write. Defaults to 10s.
	WriteTimeout time.Duration
	// PingInterval is how often the cloud pings a device (and refreshes
	// last_seen and re-checks the key). Defaults to 20s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take before the device is
	// disconnected. Defaults to 10s.
	PingTimeout time.Duration
	// SendQueue is the number of messages that may wait for a device's
	// websocket; one more closes the session with 4008. Defaults to
	// session.DefaultSendQueue.
	SendQueue int
	// MaxConcurrent bounds the device's requests served at once; one more
	// is answered with CodeBusy. Defaults to session.DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxMessageSize is the read limit of one frame. Defaults to
	// envelope.DefaultMaxSize.
	MaxMessageSize int
	// Skew is the accepted clock difference. Defaults to envelope.DefaultSkew.
	Skew time.Duration
	// Methods are extra device → cloud methods (e.g. ota.status), served
	// to accepted devices only; fleet.DeviceFromContext names the caller.
	Methods map[string]jsonrpc.HandlerFunc
	// ReportWait is how long after acceptance the holder waits for the
	// device's first state.report before it sends queued calls of any
	// method (a device that never reports still gets them; see
	// fleet.Served). Defaults to 10s.
	ReportWait time.Duration
	// Observer is told how each handshake ended (package metrics counts
	// them). nil means nobody is.
	Observer Observer
	// CloudKeys, when not empty, are the cloud keys devices are to trust
	// from now on (a rotation of Key, docs/security.md): every accepted
	// session is sent them in auth.cloud_keys. They must include Key's
	// public half. nil means no announcement.
	CloudKeys []crypto.PublicKey
}

// Hub is the device websocket endpoint. It implements http.Handler.
type Hub struct {
	opts     Options
	announce json.RawMessage // auth.cloud_keys params, or nil
	svc      *fleet.Service
	log      *slog.Logger
	sealer   *envelope.Sealer
	methods  *jsonrpc.Dispatcher
	nc       *nats.Conn

	baseCtx context.Context // server-owned: sessions never use r.Context()
	cancel  context.CancelFunc
	wg      sync.WaitGroup // one per connection being served

	mu       sync.Mutex // guards the following
	sessions map[string]*deviceSession
	latest   map[string]int64 // highest session version announced per device
	closing  bool

	subs     []*nats.Subscription
	stopOnce sync.Once

	// inbox receives every session's call and drain requests (their
	// subscriptions are channel subscriptions); see dispatch.
	inbox chan *nats.Msg

	rejected    sync.Map     // reason → *atomic.Int64
	handshaking atomic.Int64 // connections between upgrade and their session's start

	watchStarted bool // guarded by mu
	watchStop    chan struct{}
	watchOnce    sync.Once
	watchWG      sync.WaitGroup
}

// New creates a hub and subscribes to the evict and key subjects of every
// device (to close the sessions it holds when told).
func New(opts Options) (*Hub, error) {
	if opts.Service == nil || opts.Key == nil {
		return nil, errors.New("hub: Service and Key are required")
	}
	if opts.Logger == nil {
		opts.Logger = opts.Service.Logger()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.HandshakeTimeout, 10*time.Second)
	def(&opts.WriteTimeout, 10*time.Second)
	def(&opts.PingInterval, 20*time.Second)
	def(&opts.PingTimeout, 10*time.Second)
	def(&opts.Skew, envelope.DefaultSkew)
	def(&opts.ReportWait, 10*time.Second)
	if opts.Observer == nil {
		opts.Observer = noObserver{}
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = envelope.DefaultMaxSize
	}
	sealer, err := envelope.NewSealer(opts.Service.CloudID(), opts.Key)
	if err != nil {
		return nil, fmt.Errorf("hub: cloud key: %w", err)
	}
	var announce json.RawMessage
	if len(opts.CloudKeys) > 0 {
		if announce, err = cloudKeysParams(opts.Key.Public(), opts.CloudKeys); err != nil {
			return nil, fmt.Errorf("hub: cloud keys: %w", err)
		}
	}
	h := &Hub{
		announce: announce,
		opts:     opts, svc: opts.Service, log: opts.Logger, sealer: sealer, nc: opts.Service.NATS(),
		sessions: map[string]*deviceSession{}, latest: map[string]int64{}, watchStop: make(chan struct{}),
		inbox: make(chan *nats.Msg, InboxSize),
	}
	h.baseCtx, h.cancel = context.WithCancel(context.Background())
	for range dispatchers {
		go h.dispatch()
	}
	h.methods = opts.Service.DeviceMethods(opts.Methods)
	opts.Service.SetHeldSessions(h.held)
	opts.Service.SetLocalSessions(h.localSession)
	for subj, fn := range map[string]nats.MsgHandler{fleet.SubjectEvictAll: h.onEvict, fleet.SubjectKeyAll: h.onKey} {
		sub, err := h.nc.Subscribe(subj, fn)
		if err != nil {
			h.unsubscribe()
			return nil, fmt.Errorf("hub: subscribing %s: %w", subj, err)
		}
		h.subs = append(h.subs, sub)
	}
	if err := h.nc.Flush(); err != nil {
		h.unsubscribe()
		return nil, fmt.Errorf("hub: %w", err)
	}
	return h, nil
}

func (h *Hub) unsubscribe() {
	for _, s := range h.subs {
		s.Unsubscribe()
	}
}

// ServeHTTP upgrades the request to a websocket (subprotocol bosun.v1) and
// starts serving the session, which outlives the handler. There is no cookie or header
// authentication here: the handshake's signatures are the authentication.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	closing := h.closing
	if !closing {
		h.wg.Add(1)
	}
	h.mu.Unlock()
	if closing {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()
	// The frame guard answers a frame header claiming more than the limit
	// with 1009 at once, instead of waiting for bytes that never come.
	c, err := websocket.Accept(session.GuardFrames(w, int64(h.opts.MaxMessageSize)), r, &websocket.AcceptOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
	if err != nil {
		h.reject("upgrade", "remote_addr", r.RemoteAddr, "err", err)
		return
	}
	if c.Subprotocol() != rpcproto.WebsocketSubprotocol {
		h.reject("subprotocol", "remote_addr", r.RemoteAddr)
		c.Close(websocket.StatusPolicyViolation, "subprotocol "+rpcproto.WebsocketSubprotocol+" required")
		return
	}
	c.SetReadLimit(int64(h.opts.MaxMessageSize))
	// The session runs on a goroutine of its own (still counted in h.wg)
	// and the handler returns: net/http then drops what it holds for the
	// request — the connection's read buffer (the frame guard reads the
	// socket itself), the response's buffer, the request — about 9 KiB
	// per device that would otherwise live as long as the session.
	remote := r.RemoteAddr // not r: the goroutine must not keep the request
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.serve(c, remote)
	}()
}

// reject logs a refused message or connection and counts it by reason.
func (h *Hub) reject(reason string, args ...any) {
	h.count(reason)
	h.log.Warn("device message rejected", append([]any{"reason", reason}, args...)...)
}

// count counts a refusal by reason (the session engine logs its own).
func (h *Hub) count(reason string) {
	v, _ := h.rejected.LoadOrStore(reason, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Rejected returns how many messages or connections were rejected, by
// reason (stable snake_case names such as bad_signature, wrong_session,
// replay, signer_mismatch, too_large, malformed).
func (h *Hub) Rejected() map[string]int64 {
	out := map[string]int64{}
	h.rejected.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Sessions returns the number of live sessions on this replica.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Shutdown closes every session with 1001 (going away), finishing its calls
// in flight, and waits for them, at most until ctx ends; then it drops the
// remaining connections. New connections are refused from the start. Safe
// to call twice.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing = true
	ss := make([]*deviceSession, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	h.stopOnce.Do(h.unsubscribe)
	h.stopWatch()
	for _, s := range ss {
		s.close(websocket.StatusGoingAway, "cloud shutting down")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		h.cancel()
		return nil
	case <-ctx.Done():
		h.cancel() // aborts every remaining read and write
		<-done
		return ctx.Err()
	}
}

// InboxSize bounds the call and drain requests waiting for a dispatcher
// on one replica. One more is dropped by nats.go as a slow consumer: its
// caller sees no answer and times out (fleet reports the call timed out,
// and a queued call stays queued). The dispatchers only parse and hand
// over, so the inbox fills only when the replica is starved of CPU.
const InboxSize = 1 << 16

// dispatchers serve the inbox.
const dispatchers = 4

// dispatch serves the inbox until the hub is shut down: each request goes
// to the session this replica holds for the device it names (the newest
// one, whichever session's subscription carried it), or is refused as
// offline when there is none.
func (h *Hub) dispatch() {
	for {
		select {
		case <-h.baseCtx.Done():
			return
		case m := <-h.inbox:
			org, dev, what, ok := fleet.ParseDevSubject(m.Subject)
			if !ok {
				continue
			}
			h.mu.Lock()
			ds := h.sessions[dev]
			h.mu.Unlock()
			if ds != nil && ds.orgID != org {
				ds = nil
			}
			switch what {
			case "call":
				if ds == nil {
					var rr fleet.RouteRequest
					if json.Unmarshal(m.Data, &rr) == nil {
						h.refuseOffline(m, rr.CallID)
					}
				} else {
					ds.onCall(m)
				}
			case "drain":
				if ds == nil {
					m.Respond(mustMarshal(fleet.DrainReply{}))
				} else {
					ds.onDrain(m)
				}
			}
		}
	}
}

// refuseOffline answers a routed call that no session here can serve.
func (h *Hub) refuseOffline(m *nats.Msg, callID string) {
	m.Respond(mustMarshal(h.svc.RefuseCall(context.Background(), callID, rpcproto.CodeDeviceOffline)))
}

// deviceOf extracts the device id from bosun.dev.<org>.<device>.<what>
// (the id is encoded there: fleet.DeviceToken); "" for any other subject.
func deviceOf(subject string) string {
	_, dev, _, ok := fleet.ParseDevSubject(subject)
	if !ok {
		return ""
	}
	return dev
}

func (h *Hub) onEvict(m *nats.Msg) {
	var e fleet.EvictMsg
	if jsonUnmarshal(m.Data, &e) != nil {
		return
	}
	id := deviceOf(m.Subject)
	h.mu.Lock()
	if e.Version > h.latest[id] {
		h.latest[id] = e.Version
	}
	s := h.sessions[id]
	h.mu.Unlock()
	if s != nil && s.version < e.Version {
		s.close(rpcproto.CloseEvicted, "a newer session took over")
	}
}

func (h *Hub) onKey(m *nats.Msg) {
	var k fleet.KeyMsg
	if jsonUnmarshal(m.Data, &k) != nil {
		return
	}
	h.mu.Lock()
	s := h.sessions[deviceOf(m.Subject)]
	h.mu.Unlock()
	if s == nil {
		return
	}
	for _, fp := range k.Closed {
		if fp == s.fingerprint {
			s.close(rpcproto.CloseRejected, "key rejected")
			return
		}
	}
	if k.Accepted == s.fingerprint {
		s.markAccepted()
	}
}

// register makes s the live session of its device on this replica. It
// returns false when a newer session is already known (s must close).
func (h *Hub) register(s *deviceSession) bool {
	h.mu.Lock()
	if h.closing || s.version < h.latest[s.deviceID] {
		h.mu.Unlock()
		return false
	}
	h.latest[s.deviceID] = s.version
	old := h.sessions[s.deviceID]
	h.sessions[s.deviceID] = s
	h.startWatch()
	h.mu.Unlock()
	if old != nil {
		old.close(rpcproto.CloseEvicted, "a newer session took over")
	}
	return true
}

// localSession is the live session of a device on this replica, if this
// replica holds the newest session it knows of, for fleet's calls that
// need no NATS.
func (h *Hub) localSession(deviceID string) fleet.LocalSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[deviceID]
	if s == nil || h.closing || s.version < h.latest[deviceID] {
		return nil
	}
	return s
}

// held lists the sessions this replica holds, for fleet's reassert.
func (h *Hub) held() []fleet.SessionRef {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]fleet.SessionRef, 0, len(h.sessions))
	for _, s := range h.sessions {
		out = append(out, fleet.SessionRef{DeviceID: s.deviceID, Version: s.version})
	}
	return out
}

func (h *Hub) unregister(s *deviceSession) {
	h.mu.Lock()
	if h.sessions[s.deviceID] == s {
		delete(h.sessions, s.deviceID)
	}
	h.mu.Unlock()
}

// cloudKeysParams encodes the auth.cloud_keys params for a key set, which
// must be valid and hold the signing key: devices would otherwise be told to
// stop trusting the key that signs their sessions.
func cloudKeysParams(signing crypto.PublicKey, set []crypto.PublicKey) (json.RawMessage, error) {
	own, err := keys.PublicDER(signing)
	if err != nil {
		return nil, err
	}
	ders := make([][]byte, len(set))
	p := rpcproto.AuthCloudKeysParams{Keys: make([]string, len(set))}
	found := false
	for i, k := range set {
		if ders[i], err = keys.PublicDER(k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		found = found || bytes.Equal(ders[i], own)
		p.Keys[i] = base64.StdEncoding.EncodeToString(ders[i])
	}
	if _, err := keys.ParsePublicDERs(ders); err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New("the set does not hold the public half of the signing key")
	}
	return json.Marshal(p)
}
