package hub

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
)

// handshakeError is a refused handshake: reason is the counter name, code
// and text the websocket close.
type handshakeError struct {
	reason string
	code   websocket.StatusCode
	text   string
	err    error
}

func (e *handshakeError) Error() string { return e.reason + ": " + e.text }

func refuse(reason string, err error) *handshakeError {
	return &handshakeError{reason: reason, code: rpcproto.CloseProtocolViolation, text: "handshake failed: " + reason, err: err}
}

// serve runs one websocket from handshake to teardown.
func (h *Hub) serve(c *websocket.Conn, remote string) {
	s := &session{
		hub: h, conn: c, remote: remote, sessionID: newSessionID(),
		guard:   envelope.NewReplayGuard(2*h.opts.Skew, envelope.DefaultGuardMax),
		sendq:   make(chan outMsg, h.opts.SendQueue),
		kick:    make(chan struct{}, 1),
		pending: map[string]chan jsonrpc.Response{},
	}
	s.ctx, s.cancel = context.WithCancel(h.baseCtx)
	defer s.cancel()

	reg, reqID, herr := s.handshake()
	if herr != nil {
		args := []any{"remote_addr", remote, "session", s.sessionID}
		if herr.err != nil {
			args = append(args, "err", herr.err)
		}
		h.reject(herr.reason, args...)
		c.Close(herr.code, herr.text)
		return
	}
	if !s.start(reg, reqID) {
		return
	}
	s.readLoop()
	s.teardown()
}

// handshake sends the challenge and verifies the registration. It changes
// no state anywhere: the database is only touched once the registration's
// signature holds (in start).
func (s *session) handshake() (*fleet.Registration, json.RawMessage, *handshakeError) {
	h := s.hub
	ctx, cancel := context.WithTimeout(s.ctx, h.opts.HandshakeTimeout)
	defer cancel()
	challenge, _ := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, Method: rpcproto.MethodAuthChallenge,
		Params: mustMarshal(rpcproto.AuthChallengeParams{CloudID: h.svc.CloudID(), Replica: h.svc.Replica()})})
	wire, err := h.sealer.Seal(envelope.Header{Audience: envelope.AudienceAny, Direction: envelope.CloudToDevice, Session: s.sessionID}, challenge)
	if err != nil {
		return nil, nil, &handshakeError{reason: "seal", code: websocket.StatusInternalError, text: "internal error", err: err}
	}
	wctx, wcancel := context.WithTimeout(ctx, h.opts.WriteTimeout)
	err = s.conn.Write(wctx, websocket.MessageText, wire)
	wcancel()
	if err != nil {
		return nil, nil, &handshakeError{reason: "handshake_write", code: websocket.StatusGoingAway, text: "write failed", err: err}
	}
	typ, frame, err := s.conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		switch {
		case websocket.CloseStatus(err) == websocket.StatusMessageTooBig || strings.Contains(err.Error(), "read limited"):
			// coder/websocket has already closed with 1009.
			return nil, nil, &handshakeError{reason: "too_large", code: websocket.StatusMessageTooBig, text: "message too large", err: err}
		case ctx.Err() != nil:
			return nil, nil, &handshakeError{reason: "handshake_timeout", code: rpcproto.CloseProtocolViolation, text: "handshake timeout", err: err}
		case errors.As(err, &ce):
			return nil, nil, &handshakeError{reason: "handshake_closed", code: websocket.StatusNormalClosure, err: err}
		}
		return nil, nil, &handshakeError{reason: "handshake_read", code: rpcproto.CloseProtocolViolation, text: "read failed", err: err}
	}
	if typ != websocket.MessageText {
		return nil, nil, refuse("binary_frame", nil)
	}
	meta, payload, err := envelope.Peek(frame, h.opts.MaxMessageSize)
	if err != nil {
		return nil, nil, refuse(envelope.Reason(err), err)
	}
	req, err := jsonrpc.ParseRequest(payload)
	if err != nil || req.Method != rpcproto.MethodRegister || req.IsNotification() {
		return nil, nil, refuse("not_register", err)
	}
	var p rpcproto.RegisterParams
	if err := strictDecode(req.Params, &p); err != nil {
		return nil, nil, refuse("bad_params", err)
	}
	if !fleet.ValidDeviceID(p.DeviceID) {
		return nil, nil, refuse("bad_device_id", nil)
	}
	if len(p.Attributes) > 64 {
		return nil, nil, refuse("bad_params", errors.New("more than 64 attributes"))
	}
	for k, v := range p.Attributes {
		if len(k) > 64 || len(v) > 1024 {
			return nil, nil, refuse("bad_params", errors.New("attribute too long"))
		}
	}
	der, err := base64.StdEncoding.DecodeString(p.PublicKey)
	if err != nil {
		return nil, nil, refuse("bad_public_key", err)
	}
	pub, err := keys.ParsePublicDER(der)
	if err != nil {
		return nil, nil, refuse("bad_public_key", err)
	}
	alg, _ := keys.Alg(pub)
	if meta.Signer != p.DeviceID {
		return nil, nil, refuse("signer_mismatch", fmt.Errorf("signer %.64q is not device_id %q", meta.Signer, p.DeviceID))
	}
	// Signing with the key it presents proves the device holds it.
	op := &envelope.Opener{
		Self: h.svc.CloudID(), Direction: envelope.DeviceToCloud, Session: s.sessionID,
		Key: func(signer string) (crypto.PublicKey, error) {
			if signer != p.DeviceID {
				return nil, envelope.ErrUnknownSigner
			}
			return pub, nil
		},
		Guard: s.guard, Skew: h.opts.Skew, MaxSize: h.opts.MaxMessageSize,
	}
	opened, err := op.Open(frame)
	if err != nil {
		return nil, nil, refuse(envelope.Reason(err), err)
	}
	if !bytes.Equal(opened.Payload, payload) {
		return nil, nil, refuse("malformed", errors.New("payload differs from peek"))
	}
	s.opener = op
	s.pub = pub
	return &fleet.Registration{Params: p, PublicKeyDER: der, Fingerprint: keys.FingerprintDER(der), Alg: alg}, req.ID, nil
}

// strictDecode decodes one JSON object into v, refusing unknown fields and
// trailing data.
func strictDecode(data []byte, v any) error {
	if len(data) == 0 {
		return errors.New("missing params")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// respond writes a response to the registration directly (the writer does
// not run yet).
func (s *session) respond(id json.RawMessage, result any, rpcErr *jsonrpc.Error) error {
	r := jsonrpc.Response{JSONRPC: jsonrpc.Version, ID: id, Error: rpcErr}
	if rpcErr == nil {
		r.Result = mustMarshal(result)
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return err
	}
	wire, err := s.seal(payload)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.hub.opts.WriteTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, wire)
}

// start records the registration, answers it, and for accepted and pending
// devices makes this the device's live session. It returns false when the
// connection ended here.
func (s *session) start(reg *fleet.Registration, reqID json.RawMessage) bool {
	h := s.hub
	s.deviceID = reg.Params.DeviceID
	s.fingerprint = reg.Fingerprint
	out, err := h.svc.RegisterDevice(s.ctx, *reg)
	if errors.Is(err, fleet.ErrUnknownEnrollment) {
		s.respond(reqID, nil, fleet.RPCError(rpcproto.CodeUnauthorized))
		s.conn.Close(rpcproto.CloseRejected, "unknown enrollment token")
		return false
	}
	if err != nil {
		h.log.Error("registering device", "device_id", s.deviceID, "err", err)
		s.conn.Close(websocket.StatusInternalError, "internal error")
		return false
	}
	s.orgID, s.keySetID = out.OrgID, out.KeySetID
	result := rpcproto.RegisterResult{Status: out.Status, Fingerprint: reg.Fingerprint, KeyChanged: out.KeyChanged}
	log := h.log.With("device_id", s.deviceID, "fingerprint", reg.Fingerprint, "session", s.sessionID)
	switch out.Status {
	case rpcproto.StatusRejected:
		log.Info("device key rejected")
		result.KeyChanged = false
		s.respond(reqID, result, nil)
		s.conn.Close(rpcproto.CloseRejected, "key rejected")
		return false
	case rpcproto.StatusPending:
		// A new key for a device that is online with its accepted key
		// must not take the session over: anyone knowing a device id
		// could otherwise knock the device offline. The key set is
		// recorded (key_changed) for the operator; this connection ends.
		if out.KeyChanged {
			if online, err := h.svc.OnlineWithAcceptedKey(s.ctx, s.deviceID); err != nil || online {
				log.Warn("new key for a device online with its accepted key: not taking over")
				s.respond(reqID, result, nil)
				s.conn.Close(websocket.StatusTryAgainLater, "key change pending")
				return false
			}
		}
		ok, err := h.svc.PendingSlot(s.ctx, s.orgID)
		if err != nil || !ok {
			log.Warn("too many pending devices in organisation", "org_id", s.orgID)
			s.respond(reqID, result, nil)
			s.conn.Close(websocket.StatusTryAgainLater, "too many pending devices")
			return false
		}
	case rpcproto.StatusAccepted:
		s.accepted.Store(true)
	}
	s.version, err = h.svc.SessionStarted(s.ctx, s.orgID, s.deviceID)
	if err != nil {
		log.Error("starting session", "err", err)
		s.conn.Close(websocket.StatusInternalError, "internal error")
		return false
	}
	if !h.register(s) {
		s.conn.Close(rpcproto.CloseEvicted, "a newer session took over")
		h.svc.SessionEnded(s.ctx, s.orgID, s.deviceID, s.version)
		return false
	}
	for subj, fn := range map[string]nats.MsgHandler{
		fleet.SubjectCall(s.orgID, s.deviceID):  s.onCall,
		fleet.SubjectDrain(s.orgID, s.deviceID): s.onDrain,
	} {
		sub, err := h.nc.QueueSubscribe(subj, fleet.QueueHolder, fn)
		if err != nil {
			log.Error("subscribing", "subject", subj, "err", err)
			s.close(websocket.StatusInternalError, "internal error")
			break
		}
		s.subs = append(s.subs, sub)
	}
	if err := s.respond(reqID, result, nil); err != nil {
		s.close(websocket.StatusGoingAway, "write failed")
	}
	log.Info("device session started", "status", out.Status, "key_changed", out.KeyChanged, "session_version", s.version)
	s.goOwned(s.writeLoop)
	s.goOwned(s.pingLoop)
	s.goOwned(s.drainLoop)
	if s.accepted.Load() {
		s.kickDrain()
	}
	return true
}

// teardown ends the session once its websocket is closed: the owned
// goroutines stop (calls in flight are recorded as failed), the
// subscriptions go, and the device is marked offline unless a newer
// session took over.
func (s *session) teardown() {
	h := s.hub
	// Drain, not Unsubscribe: requests already delivered to the
	// subscription still get an answer (device offline) instead of
	// leaving their callers waiting for a timeout.
	for _, sub := range s.subs {
		sub.Drain()
	}
	s.conn.CloseNow() // no-op when already closed
	s.mu.Lock()
	s.ending = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	h.unregister(s)
	if err := h.svc.SessionEnded(context.Background(), s.orgID, s.deviceID, s.version); err != nil {
		h.log.Error("ending session", "device_id", s.deviceID, "err", err)
	}
	h.log.Info("device session ended", "device_id", s.deviceID, "session_version", s.version)
}
