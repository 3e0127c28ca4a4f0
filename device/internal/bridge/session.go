package bridge

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// guardMax bounds the nonces one session remembers.
const guardMax = 1 << 16

// errProtocol marks a handshake the cloud got wrong (or an impostor).
var errProtocol = errors.New("protocol violation")

// session is one websocket connection to the cloud, from the verified
// auth.challenge on. Every message it reads goes through opener first.
type session struct {
	b       *Bridge
	conn    *websocket.Conn
	id      string // the session the challenge set
	cloudID string // the challenge's signer
	opener  *envelope.Opener
	client  *jsonrpc.Client
	log     *slog.Logger
	sem     chan struct{} // bounds requests served at once

	accepted   atomic.Bool
	acceptedCh chan struct{} // closed once accepted
	acceptOnce sync.Once

	done    chan struct{} // closed when the read loop ends
	readErr error         // why it ended; set before done is closed
	wg      sync.WaitGroup
}

// connResult says how one connection ended.
type connResult struct {
	accepted bool          // the cloud accepted the device during it
	rejected bool          // the cloud rejected the key
	lasted   time.Duration // time from acceptance to the end
	err      error
}

func (s *session) isAccepted() bool { return s.accepted.Load() }

func (s *session) markAccepted() {
	s.acceptOnce.Do(func() {
		s.accepted.Store(true)
		close(s.acceptedCh)
	})
}

// connectOnce dials the cloud, completes the handshake and serves the
// session until it ends or ctx does.
func (b *Bridge) connectOnce(ctx context.Context) (res connResult) {
	b.status.Store(StatusConnecting)
	hctx, hcancel := context.WithTimeout(ctx, b.opts.HandshakeTimeout)
	defer hcancel()
	conn, _, err := websocket.Dial(hctx, b.opts.CloudURL, &websocket.DialOptions{
		HTTPClient:   b.opts.HTTPClient,
		Subprotocols: []string{rpcproto.WebsocketSubprotocol},
	})
	if err != nil {
		return connResult{err: fmt.Errorf("dialling %s: %w", b.opts.CloudURL, err)}
	}
	defer conn.CloseNow()
	if p := conn.Subprotocol(); p != rpcproto.WebsocketSubprotocol {
		conn.Close(websocket.StatusProtocolError, "subprotocol "+rpcproto.WebsocketSubprotocol+" required")
		return connResult{err: fmt.Errorf("cloud chose subprotocol %q, want %q", p, rpcproto.WebsocketSubprotocol)}
	}
	// Messages up to twice the limit are read and rejected by the opener
	// (the session lives on); anything larger ends the connection.
	conn.SetReadLimit(int64(2 * b.opts.MaxMessageSize))

	s, err := b.handshake(hctx, conn)
	if err != nil {
		if errors.Is(err, errProtocol) {
			conn.Close(rpcproto.CloseProtocolViolation, "auth.challenge failed verification")
		}
		return connResult{rejected: websocket.CloseStatus(err) == rpcproto.CloseRejected, err: err}
	}
	hcancel()
	return s.run(ctx)
}

// handshake reads and verifies the auth.challenge against the pinned cloud
// key. Nothing of the challenge is trusted before Open succeeds: Peek only
// tells which session and signer to verify against.
func (b *Bridge) handshake(ctx context.Context, conn *websocket.Conn) (*session, error) {
	typ, wire, err := conn.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading auth.challenge: %w", err)
	}
	log := b.log.With("phase", "handshake")
	if typ != websocket.MessageText {
		return nil, fmt.Errorf("%w: binary frame", errProtocol)
	}
	meta, _, err := envelope.Peek(wire, b.opts.MaxMessageSize)
	if err != nil {
		b.reject(log, err)
		return nil, fmt.Errorf("%w: auth.challenge: %w", errProtocol, err)
	}
	if meta.Session == "" {
		return nil, fmt.Errorf("%w: auth.challenge without a session", errProtocol)
	}
	guard := envelope.NewReplayGuard(2*b.opts.Skew, guardMax)
	challenge := &envelope.Opener{
		Self:             b.opts.DeviceID,
		AllowAnyAudience: true,
		Direction:        envelope.CloudToDevice,
		Session:          meta.Session,
		Key:              b.pinnedKey,
		Guard:            guard,
		Skew:             b.opts.Skew,
		MaxSize:          b.opts.MaxMessageSize,
		Now:              b.opts.Now,
	}
	opened, err := challenge.Open(wire)
	if err != nil {
		b.reject(log, err)
		return nil, fmt.Errorf("%w: auth.challenge: %w", errProtocol, err)
	}
	req, perr := jsonrpc.ParseRequest(opened.Payload)
	if perr != nil || req.Method != rpcproto.MethodAuthChallenge || !req.IsNotification() {
		return nil, fmt.Errorf("%w: first message is not an auth.challenge notification", errProtocol)
	}
	var cp rpcproto.AuthChallengeParams
	if len(req.Params) > 0 {
		if err := json.Unmarshal(req.Params, &cp); err != nil {
			return nil, fmt.Errorf("%w: auth.challenge params: %v", errProtocol, err)
		}
	}
	if cp.CloudID != "" && cp.CloudID != opened.Meta.Signer {
		return nil, fmt.Errorf("%w: auth.challenge names cloud %q but is signed by %q", errProtocol, cp.CloudID, opened.Meta.Signer)
	}
	s := &session{
		b:          b,
		conn:       conn,
		id:         opened.Meta.Session,
		cloudID:    opened.Meta.Signer,
		sem:        make(chan struct{}, b.opts.MaxConcurrent),
		acceptedCh: make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.log = b.log.With("session", s.id, "cloud_id", s.cloudID)
	s.opener = &envelope.Opener{
		Self:      b.opts.DeviceID,
		Direction: envelope.CloudToDevice,
		Session:   s.id,
		Key: func(signer string) (crypto.PublicKey, error) {
			if signer != s.cloudID {
				return nil, fmt.Errorf("%w: %q", envelope.ErrUnknownSigner, signer)
			}
			return b.opts.CloudKey, nil
		},
		Guard:   guard, // the challenge's nonce stays spent
		Skew:    b.opts.Skew,
		MaxSize: b.opts.MaxMessageSize,
		Now:     b.opts.Now,
	}
	s.client = jsonrpc.NewClient(s.send)
	s.log.Info("challenge verified", "replica", cp.Replica)
	return s, nil
}

// pinnedKey is the KeyFunc of the auth.challenge: only the pinned key, and
// only under the configured cloud id when there is one.
func (b *Bridge) pinnedKey(signer string) (crypto.PublicKey, error) {
	if b.opts.CloudID != "" && signer != b.opts.CloudID {
		return nil, fmt.Errorf("%w: %q is not the pinned cloud %q", envelope.ErrUnknownSigner, signer, b.opts.CloudID)
	}
	return b.opts.CloudKey, nil
}

// run registers and serves the session until the connection or ctx ends.
func (s *session) run(ctx context.Context) (res connResult) {
	b := s.b
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	go s.readLoop(sctx, scancel)
	b.live.Store(s)
	defer func() {
		b.live.CompareAndSwap(s, nil)
		scancel()
		if ctx.Err() != nil {
			s.conn.Close(websocket.StatusGoingAway, "device bridge stopping")
		}
		s.conn.CloseNow()
		<-s.done
		s.wg.Wait()
		s.client.Close(errors.New("session ended"))
		if res.err == nil && s.readErr != nil && ctx.Err() == nil {
			res.err = s.readErr
		}
		if websocket.CloseStatus(s.readErr) == rpcproto.CloseRejected {
			res.rejected = true
		}
		s.log.Info("session ended", "error", res.err, "rejected", res.rejected)
	}()

	status, err := s.register(sctx)
	if err != nil {
		return connResult{err: err}
	}
	switch status {
	case rpcproto.StatusAccepted:
		s.markAccepted()
	case rpcproto.StatusPending:
		b.status.Store(StatusPending)
		s.log.Info("registration pending: waiting for an operator to accept this device", "fingerprint", b.fp)
		select {
		case <-s.acceptedCh:
		case <-sctx.Done():
			return connResult{err: errors.New("session ended while pending")}
		}
	case rpcproto.StatusRejected:
		s.log.Warn("registration rejected", "fingerprint", b.fp)
		s.conn.Close(websocket.StatusNormalClosure, "rejected")
		return connResult{rejected: true, err: errors.New("registration rejected")}
	default:
		return connResult{err: fmt.Errorf("registration: unknown status %q", status)}
	}
	acceptedAt := time.Now()
	b.status.Store(StatusAccepted)
	s.log.Info("session accepted")
	s.wg.Go(func() { s.reportLoop(sctx) })
	s.wg.Go(func() { s.outboxLoop(sctx) })
	<-sctx.Done()
	return connResult{accepted: true, lasted: time.Since(acceptedAt)}
}

// register sends registration.register and returns the status.
func (s *session) register(ctx context.Context) (string, error) {
	b := s.b
	ctx, cancel := context.WithTimeout(ctx, b.opts.HandshakeTimeout)
	defer cancel()
	var rr rpcproto.RegisterResult
	err := s.client.Call(ctx, rpcproto.MethodRegister, rpcproto.RegisterParams{
		DeviceID:        b.opts.DeviceID,
		PublicKey:       b.pubB64,
		Attributes:      b.opts.Attributes,
		EnrollmentToken: b.opts.EnrollmentToken,
	}, &rr)
	if err != nil {
		return "", fmt.Errorf("registration: %w", err)
	}
	if rr.Fingerprint != "" && rr.Fingerprint != b.fp {
		s.log.Warn("cloud reports another fingerprint for this device", "cloud_fingerprint", rr.Fingerprint, "fingerprint", b.fp)
	}
	s.log.Info("registration answered", "status", rr.Status, "key_changed", rr.KeyChanged)
	return rr.Status, nil
}

// readLoop reads, verifies and routes every message until the connection
// ends; then it fails pending calls and cancels the session.
func (s *session) readLoop(ctx context.Context, cancel context.CancelFunc) {
	var err error
	defer func() {
		s.readErr = err
		close(s.done)
		s.client.Close(err)
		cancel()
	}()
	for {
		var (
			typ  websocket.MessageType
			wire []byte
		)
		typ, wire, err = s.conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			s.b.reject(s.log, fmt.Errorf("%w: binary frame", envelope.ErrMalformed))
			continue
		}
		s.handle(ctx, wire)
	}
}

// handle verifies one message and routes it. A message that fails
// verification is logged and counted, and nothing else happens.
func (s *session) handle(ctx context.Context, wire []byte) {
	opened, err := s.opener.Open(wire)
	if err != nil {
		s.b.reject(s.log, err)
		return
	}
	p := opened.Payload
	switch jsonrpc.Classify(p) {
	case jsonrpc.KindResponse:
		s.client.Deliver(p)
		return
	case jsonrpc.KindBatch:
		if jsonrpc.IsResponse(p) {
			s.client.Deliver(p)
			return
		}
	case jsonrpc.KindNotification:
		req, perr := jsonrpc.ParseRequest(p)
		if perr == nil {
			switch req.Method {
			case rpcproto.MethodAuthAccepted:
				var ap rpcproto.AuthAcceptedParams
				json.Unmarshal(req.Params, &ap)
				if ap.Fingerprint != "" && ap.Fingerprint != s.b.fp {
					s.log.Warn("auth.accepted names another fingerprint", "cloud_fingerprint", ap.Fingerprint)
				}
				s.log.Info("device accepted by the cloud")
				s.markAccepted()
				return
			case rpcproto.MethodAuthChallenge:
				s.log.Warn("ignoring a second auth.challenge")
				return
			}
		}
	}
	select {
	case s.sem <- struct{}{}:
	default:
		// Never block the read loop: it also carries the answers that
		// handlers calling the cloud are waiting for.
		s.wg.Go(func() { s.sendBusy(ctx, p) })
		return
	}
	s.wg.Go(func() {
		defer func() { <-s.sem }()
		if reply := s.b.forward(ctx, p); reply != nil {
			if err := s.send(ctx, reply); err != nil {
				s.log.Warn("sending reply", "error", err)
			}
		}
	})
}

// sendBusy answers a request that found MaxConcurrent requests in flight.
func (s *session) sendBusy(ctx context.Context, p []byte) {
	s.log.Warn("too many requests in flight; refusing one", "max", s.b.opts.MaxConcurrent)
	var id json.RawMessage
	switch jsonrpc.Classify(p) {
	case jsonrpc.KindNotification:
		return
	case jsonrpc.KindRequest:
		if req, err := jsonrpc.ParseRequest(p); err == nil {
			id = req.ID
		}
	}
	e := &jsonrpc.Error{Code: rpcproto.CodeQueueFull, Message: fmt.Sprintf("device busy: %d requests in flight", s.b.opts.MaxConcurrent)}
	if err := s.send(ctx, mustResponse(id, nil, e)); err != nil {
		s.log.Warn("sending reply", "error", err)
	}
}

// send seals payload for the cloud and writes it, bounded by WriteTimeout.
func (s *session) send(ctx context.Context, payload []byte) error {
	wire, err := s.b.sealer.Seal(envelope.Header{
		Audience:  s.cloudID,
		Direction: envelope.DeviceToCloud,
		Session:   s.id,
	}, payload)
	if err != nil {
		return fmt.Errorf("sealing: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.b.opts.WriteTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, wire)
}

// reportLoop sends state.report now and again whenever the set of workers
// changes (debounced).
func (s *session) reportLoop(ctx context.Context) {
	s.report(ctx)
	var (
		t  *time.Timer
		tc <-chan time.Time
	)
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.b.reg.changed:
			if t == nil {
				t = time.NewTimer(s.b.opts.StateDebounce)
			} else {
				t.Reset(s.b.opts.StateDebounce)
			}
			tc = t.C
		case <-tc:
			tc = nil
			s.report(ctx)
		}
	}
}

// report sends state.report and stores what was reported in state.json.
func (s *session) report(ctx context.Context) {
	b := s.b
	params := b.stateReport()
	ctx, cancel := context.WithTimeout(ctx, b.opts.CloudCallTimeout)
	defer cancel()
	var res rpcproto.StateReportResult
	if err := s.client.Call(ctx, rpcproto.MethodStateReport, params, &res); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("state.report failed", "error", err)
		}
		return
	}
	if err := datadir.WriteState(b.opts.DataDir, datadir.State{
		DeviceID: b.opts.DeviceID, ReportedAt: b.opts.Now().UTC(), Report: params,
	}); err != nil {
		s.log.Error("writing state.json", "error", err)
	}
	s.log.Info("state reported", "workers", len(params.Workers), "stored", res.Stored)
}

// outboxLoop delivers the outbox in order while the session lives. An entry
// is removed only after the cloud answered it with a result.
func (s *session) outboxLoop(ctx context.Context) {
	b := s.b
	ob := b.outbox
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// Transient refusals (a cloud that does not serve the method yet, say)
	// are retried with backoff, so a stuck entry costs little.
	retry := Backoff{Base: b.opts.OutboxRetry, Cap: 5 * time.Minute}
	failures := 0
	for ctx.Err() == nil {
		e, ok, err := ob.peek()
		if err != nil {
			s.log.Error("outbox", "error", err)
			if !wait(b.opts.OutboxRetry) {
				return
			}
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-ob.notify:
			}
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, b.opts.CloudCallTimeout)
		_, err = s.client.CallRaw(cctx, e.Method, e.Params)
		cancel()
		var re *jsonrpc.Error
		switch {
		case err == nil:
			if err := ob.remove(e.name); err != nil {
				s.log.Error("removing delivered outbox entry", "entry", e.name, "error", err)
				if !wait(b.opts.OutboxRetry) {
					return
				}
				continue
			}
			failures = 0
			s.log.Info("outbox entry delivered", "entry", e.name, "method", e.Method)
		case errors.As(err, &re) && permanentCode(re.Code):
			s.log.Error("cloud refused outbox entry; moved to outbox/dead", "entry", e.name, "method", e.Method, "code", re.Code, "message", re.Message)
			ob.bury(e.name)
		default:
			if ctx.Err() != nil {
				return
			}
			d := retry.Window(failures)
			failures++
			s.log.Warn("outbox delivery failed; will retry", "entry", e.name, "method", e.Method, "error", err, "retry_ms", d.Milliseconds())
			if !wait(d) {
				return
			}
		}
	}
}

// permanentCode reports whether retrying a request refused with code can
// never succeed.
func permanentCode(code int) bool {
	switch code {
	case jsonrpc.CodeParseError, jsonrpc.CodeInvalidRequest, jsonrpc.CodeInvalidParams:
		return true
	}
	return false
}
