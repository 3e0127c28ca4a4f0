package bridge

import (
	"context"
	"crypto"
	"crypto/tls"
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
	peer "github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
)

// errProtocol marks a handshake the cloud got wrong (or an impostor).
var errProtocol = errors.New("protocol violation")

// ErrCloudCertUntrusted marks a connection that failed because the cloud's
// TLS certificate does not verify against the roots the bridge trusts
// (Options.HTTPClient's; the system's by default). Nothing was sent.
var ErrCloudCertUntrusted = errors.New("the cloud's TLS certificate is not trusted")

// session is one websocket connection to the cloud, from the verified
// auth.challenge on: a session engine (pkg/session) plus the bridge's state
// of it.
type session struct {
	b        *Bridge
	peer     *peer.Session
	id       string           // the session the challenge set
	cloudID  string           // the challenge's signer
	cloudKey crypto.PublicKey // the trusted key that signed the challenge
	log      *slog.Logger

	accepted   atomic.Bool
	acceptedCh chan struct{} // closed once accepted
	acceptOnce sync.Once

	wg sync.WaitGroup // the report and outbox loops
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

// cloudURL is the cloud endpoint the next connection dials.
func (b *Bridge) cloudURL() string {
	return b.opts.cloudURLs[b.urlIndex.Load()%uint32(len(b.opts.cloudURLs))]
}

// nextCloudURL moves on to the next endpoint of the list, so that a
// device whose replica died reconnects to another (and one whose replica
// came back spreads over them all again).
func (b *Bridge) nextCloudURL() {
	if len(b.opts.cloudURLs) > 1 {
		b.urlIndex.Add(1)
	}
}

// connectOnce dials the cloud, completes the handshake and serves the
// session until it ends or ctx does.
func (b *Bridge) connectOnce(ctx context.Context) (res connResult) {
	b.status.Store(StatusConnecting)
	hctx, hcancel := context.WithTimeout(ctx, b.opts.HandshakeTimeout)
	defer hcancel()
	cloudURL := b.cloudURL()
	conn, _, err := websocket.Dial(hctx, cloudURL, &websocket.DialOptions{
		HTTPClient:   b.opts.HTTPClient,
		Subprotocols: []string{rpcproto.WebsocketSubprotocol},
	})
	if err != nil {
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			err = fmt.Errorf("%w: %w", ErrCloudCertUntrusted, err)
		}
		return connResult{err: fmt.Errorf("dialling %s: %w", cloudURL, err)}
	}
	defer conn.CloseNow()
	if p := conn.Subprotocol(); p != rpcproto.WebsocketSubprotocol {
		conn.Close(websocket.StatusPolicyViolation, "subprotocol "+rpcproto.WebsocketSubprotocol+" required")
		return connResult{err: fmt.Errorf("cloud chose subprotocol %q, want %q", p, rpcproto.WebsocketSubprotocol)}
	}
	conn.SetReadLimit(int64(b.opts.MaxMessageSize))

	s, err := b.handshake(conn)
	if err != nil {
		return connResult{rejected: websocket.CloseStatus(err) == rpcproto.CloseRejected, err: err}
	}
	hcancel()
	return s.run(ctx)
}

// handshake reads and verifies the auth.challenge against the pinned cloud
// key and sets up the session engine. A challenge that fails verification
// closes the connection with 4002.
func (b *Bridge) handshake(conn *websocket.Conn) (*session, error) {
	frame, herr := peer.ReadFirst(conn, b.opts.HandshakeTimeout)
	if herr != nil {
		if herr.Code != 0 && herr.Reason != "handshake_closed" {
			conn.Close(herr.Code, herr.Text)
		}
		return nil, fmt.Errorf("reading auth.challenge: %w", herr)
	}
	trust := *b.trust.Load()
	ch, herr := peer.OpenChallenge(frame, peer.ChallengeCheck{
		Self: b.opts.DeviceID, CloudKey: trust[0], CloudKeys: trust[1:], CloudID: b.opts.CloudID,
		Skew: b.opts.Skew, MaxSize: b.opts.MaxMessageSize, Now: b.opts.Now,
	})
	if herr == nil && !b.recent.add(ch.Session, b.opts.Now()) {
		herr = &peer.HandshakeError{Reason: "replayed_challenge", Code: rpcproto.CloseProtocolViolation,
			Text: "handshake failed: replayed_challenge", Err: fmt.Errorf("session %s was used before", ch.Session)}
	}
	if herr != nil {
		b.count(herr.Reason)
		b.log.Warn("auth.challenge refused", "reason", herr.Reason, "err", herr.Err)
		conn.Close(rpcproto.CloseProtocolViolation, herr.Text)
		return nil, fmt.Errorf("%w: auth.challenge: %w", errProtocol, herr)
	}
	s := &session{b: b, id: ch.Session, cloudID: ch.CloudID, cloudKey: ch.Key, acceptedCh: make(chan struct{})}
	s.log = b.log.With("session", s.id, "cloud_id", s.cloudID)
	var err error
	s.peer, err = peer.New(peer.Options{
		Conn: conn, Sealer: b.sealer, Self: b.opts.DeviceID, Peer: ch.CloudID, PeerKey: ch.Key,
		Session: ch.Session, Direction: envelope.DeviceToCloud, Window: ch.Window,
		Handler: b.forwardRequest, Inline: s.inline, MaxConcurrent: b.opts.MaxConcurrent,
		WriteTimeout: b.opts.WriteTimeout, Skew: b.opts.Skew, MaxMessageSize: b.opts.MaxMessageSize,
		Logger: s.log, OnReject: func(reason string, _ error) { b.count(reason) }, Now: b.opts.Now,
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("challenge verified", "replica", ch.Replica)
	return s, nil
}

// inline handles the cloud's control notifications on the read goroutine.
// A request of those names falls through to the handler, which answers it
// (method not found) rather than leave the caller waiting.
func (s *session) inline(req *jsonrpc.Request) bool {
	if !req.IsNotification() {
		return false
	}
	switch req.Method {
	case rpcproto.MethodAuthAccepted:
		var ap rpcproto.AuthAcceptedParams
		if err := jsonrpc.DecodeParams(req.Params, &ap); err != nil {
			s.log.Warn("auth.accepted with invalid params", "err", err)
		}
		if ap.Fingerprint != "" && ap.Fingerprint != s.b.fp {
			s.log.Warn("auth.accepted names another fingerprint", "cloud_fingerprint", ap.Fingerprint)
		}
		s.log.Info("device accepted by the cloud")
		s.markAccepted()
		return true
	case rpcproto.MethodAuthChallenge:
		s.log.Warn("ignoring a second auth.challenge")
		return true
	case rpcproto.MethodAuthCloudKeys:
		if err := s.b.learnTrust(req.Params, s.cloudKey); err != nil {
			s.b.count("bad_cloud_keys")
			s.log.Warn("auth.cloud_keys refused", "err", err)
		}
		return true
	}
	return false
}

// run registers and serves the session until the connection or ctx ends.
func (s *session) run(ctx context.Context) (res connResult) {
	b := s.b
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	runErr := make(chan error, 1)
	go func() { runErr <- s.peer.Run(sctx) }()
	b.live.Store(s)
	defer func() {
		b.live.CompareAndSwap(s, nil)
		scancel()
		err := <-runErr
		s.wg.Wait()
		if res.err == nil && err != nil && ctx.Err() == nil {
			res.err = err
		}
		if websocket.CloseStatus(err) == rpcproto.CloseRejected {
			res.rejected = true
		}
		s.log.Info("session ended", "err", res.err, "rejected", res.rejected)
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
		case <-s.peer.Done():
			return connResult{err: errors.New("session ended while pending")}
		case <-sctx.Done():
			return connResult{err: errors.New("session ended while pending")}
		}
	case rpcproto.StatusRejected:
		s.log.Warn("registration rejected", "fingerprint", b.fp)
		s.peer.Close(websocket.StatusNormalClosure, "rejected")
		return connResult{rejected: true, err: errors.New("registration rejected")}
	default:
		return connResult{err: fmt.Errorf("registration: unknown status %q", status)}
	}
	acceptedAt := time.Now()
	b.status.Store(StatusAccepted)
	s.log.Info("session accepted")
	s.wg.Go(func() { s.reportLoop(sctx) })
	s.wg.Go(func() { s.outboxLoop(sctx) })
	select {
	case <-sctx.Done():
	case <-s.peer.Done():
	}
	return connResult{accepted: true, lasted: time.Since(acceptedAt)}
}

// register sends registration.register and returns the status.
func (s *session) register(parent context.Context) (string, error) {
	b := s.b
	ctx, cancel := context.WithTimeout(parent, b.opts.HandshakeTimeout)
	defer cancel()
	var rr rpcproto.RegisterResult
	err := s.peer.Call(ctx, rpcproto.MethodRegister, rpcproto.RegisterParams{
		DeviceID:        b.opts.DeviceID,
		PublicKey:       b.pubB64,
		Attributes:      b.opts.Attributes,
		EnrollmentToken: b.opts.EnrollmentToken,
	}, &rr)
	if err != nil {
		// Our own deadline, not the bridge stopping (which closes 1001).
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
			s.peer.Close(rpcproto.CloseProtocolViolation, "handshake timeout")
		}
		return "", fmt.Errorf("registration: %w", err)
	}
	if rr.Fingerprint != "" && rr.Fingerprint != b.fp {
		s.log.Warn("cloud reports another fingerprint for this device", "cloud_fingerprint", rr.Fingerprint, "fingerprint", b.fp)
	}
	s.log.Info("registration answered", "status", rr.Status, "key_changed", rr.KeyChanged)
	return rr.Status, nil
}

// reportLoop sends state.report once the workers have settled (settle),
// and again whenever the set of workers changes (debounced).
func (s *session) reportLoop(ctx context.Context) {
	s.settle(ctx)
	// What changed while settling is in this first report.
	select {
	case <-s.b.reg.changed:
	default:
	}
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

// settle asks every worker to announce itself and waits until none has
// announced for SettleQuiet, at most SettleMax in all: the first report of
// a session is the device saying which methods it serves, and the cloud
// holds the device's queued calls until then.
func (s *session) settle(ctx context.Context) {
	b := s.b
	if b.opts.Local != nil {
		return // the local worker never changes
	}
	start := time.Now()
	select { // an announcement from before this session is not news
	case <-b.reg.announced:
	default:
	}
	if err := b.bus.nc.Publish(rpcproto.SubjectDiscover, nil); err != nil {
		s.log.Warn("asking workers to announce", "err", err)
	}
	quiet := time.NewTimer(b.opts.SettleQuiet)
	defer quiet.Stop()
	limit := time.NewTimer(b.opts.SettleMax)
	defer limit.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.reg.announced:
			quiet.Reset(b.opts.SettleQuiet)
			continue
		case <-quiet.C:
		case <-limit.C:
		}
		s.log.Info("workers settled", "waited_ms", time.Since(start).Milliseconds(), "workers", len(b.reg.workerNames()))
		return
	}
}

// report sends state.report and stores what was reported in state.json.
func (s *session) report(ctx context.Context) {
	b := s.b
	params := b.stateReport()
	ctx, cancel := context.WithTimeout(ctx, b.opts.CloudCallTimeout)
	defer cancel()
	var res rpcproto.StateReportResult
	if err := s.peer.Call(ctx, rpcproto.MethodStateReport, params, &res); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("state.report failed", "err", err)
		}
		return
	}
	if err := datadir.WriteState(b.opts.DataDir, datadir.State{
		DeviceID: b.opts.DeviceID, ReportedAt: b.opts.Now().UTC(), Report: params,
	}); err != nil {
		s.log.Error("writing state.json", "err", err)
	}
	s.log.Info("state reported", "workers", len(params.Workers), "methods", len(params.Methods), "stored", res.Stored)
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
			s.log.Error("outbox", "err", err)
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
		_, err = s.peer.CallRaw(cctx, e.Method, e.Params)
		cancel()
		var re *jsonrpc.Error
		switch {
		case err == nil:
			if err := ob.remove(e.name); err != nil {
				s.log.Error("removing delivered outbox entry", "entry", e.name, "err", err)
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
			s.log.Warn("outbox delivery failed; will retry", "entry", e.name, "method", e.Method, "err", err, "retry_ms", d.Milliseconds())
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
