package bridge_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
)

// testCloudID is the signer name of the test cloud.
const testCloudID = "cloud-test"

// testCloud is a minimal cloud peer on the session engine the real cloud
// runs (pkg/session): the same handshake helpers, the same verification,
// the same sequence numbers. Tests steer it with the knobs below, take each
// registered connection from conns, and send crafted frames on it.
type testCloud struct {
	t      testing.TB
	srv    *httptest.Server
	key    crypto.Signer
	sealer *envelope.Sealer
	logs   *logBuf

	regStatus  atomic.Value                    // string: the answer to registration.register, or "close4003" (pending, then close 4003)
	refuse     atomic.Bool                     // answer the websocket upgrade with 503
	dropOnOTA  atomic.Int32                    // drop the connection instead of answering this many ota.status
	challenger atomic.Pointer[envelope.Sealer] // signs the auth.challenge instead of the cloud key
	// replayChallenge: this many connections get the previous connection's
	// auth.challenge again, with the same session, time and key; Ed25519 is
	// deterministic, so they are the very bytes a recorder would replay.
	replayChallenge atomic.Int32
	// raw serves registered connections without the session engine (see
	// serveRaw), so a test can read batch replies, which the engine's
	// client consumes.
	raw atomic.Bool

	lastMu        sync.Mutex // guards lastSession and lastAt
	lastSession   string     // the session of the last auth.challenge sent
	lastAt        time.Time  // and its time
	conns         chan *cloudConn
	refusals      chan refusal // handshakes that ended before a registration
	dials         atomic.Int32
	dialMu        sync.Mutex  // guards dialAt
	dialAt        []time.Time // when each dial arrived
	reports       chan rpcproto.StateReportParams
	otaMu         sync.Mutex // guards otaSeen
	otaSeen       []json.RawMessage
	ctx           context.Context
	cancel        context.CancelFunc
	handlers      sync.WaitGroup
	deviceRejects atomic.Int32 // device messages the cloud refused; always 0 for a correct bridge
}

// refusal is a connection that ended before the device registered: the
// session its challenge named and how the device closed it.
type refusal struct {
	session string
	err     *session.HandshakeError
}

// cloudConn is one registered device connection as the test cloud sees it.
type cloudConn struct {
	c        *testCloud
	ws       *websocket.Conn
	session  string
	deviceID string
	devKey   crypto.PublicKey
	sess     *session.Session // nil in raw mode

	// Raw mode only.
	rawMu   sync.Mutex  // serialises rawSend, so seqs reach the wire in order
	rawSeq  uint64      // the last seq sent; 1 is the challenge
	replies chan []byte // every response (or batch of them) from the device

	done chan struct{} // closed when the connection has ended
	err  error         // why it ended; set before done is closed
}

func loadCloudKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := keys.LoadPrivate("testdata/cloud_private.pem")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func newTestCloud(tb testing.TB) *testCloud {
	tb.Helper()
	return startTestCloud(tb, false)
}

// newTestCloudTLS is newTestCloud serving wss:// with a certificate of
// httptest's own CA (c.srv.Certificate()), which nothing trusts by default.
func newTestCloudTLS(tb testing.TB) *testCloud {
	tb.Helper()
	return startTestCloud(tb, true)
}

func startTestCloud(tb testing.TB, useTLS bool) *testCloud {
	tb.Helper()
	key := loadCloudKey(tb)
	sealer, err := envelope.NewSealer(testCloudID, key)
	if err != nil {
		tb.Fatal(err)
	}
	c := &testCloud{
		t:        tb,
		key:      key,
		sealer:   sealer,
		logs:     &logBuf{},
		conns:    make(chan *cloudConn, 16),
		refusals: make(chan refusal, 16),
		reports:  make(chan rpcproto.StateReportParams, 64),
	}
	c.regStatus.Store(rpcproto.StatusAccepted)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+rpcproto.DeviceEndpointPath, c.serveDevice)
	c.srv = httptest.NewUnstartedServer(mux)
	if useTLS {
		c.srv.Config.ErrorLog = log.New(c.logs, "test-cloud http: ", 0) // refused handshakes
		c.srv.StartTLS()
	} else {
		c.srv.Start()
	}
	tb.Cleanup(func() {
		c.cancel()
		c.srv.CloseClientConnections()
		c.srv.Close()
		c.handlers.Wait()
		if n := c.deviceRejects.Load(); n != 0 {
			tb.Errorf("test cloud refused %d device messages", n)
		}
		if tb.Failed() {
			tb.Logf("test cloud log:\n%s", c.logs.String())
		}
	})
	return c
}

// dialTimes returns when each dial arrived, in order.
func (c *testCloud) dialTimes() []time.Time {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	return append([]time.Time(nil), c.dialAt...)
}

// URL is the device endpoint.
func (c *testCloud) URL() string {
	return "ws" + c.srv.URL[len("http"):] + rpcproto.DeviceEndpointPath // https → wss
}

func (c *testCloud) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("side", "test-cloud")
}

// challenge returns the session and time of the next auth.challenge: a new
// one, or the last one again while replayChallenge says so.
func (c *testCloud) challenge() (string, time.Time) {
	c.lastMu.Lock()
	defer c.lastMu.Unlock()
	// Only this function decrements the knob, under lastMu.
	if c.lastSession != "" && c.replayChallenge.Load() > 0 {
		c.replayChallenge.Add(-1)
		return c.lastSession, c.lastAt
	}
	c.lastSession, c.lastAt = session.NewID(), time.Now()
	return c.lastSession, c.lastAt
}

func (c *testCloud) serveDevice(w http.ResponseWriter, r *http.Request) {
	// Before the upgrade, so that the cleanup's srv.Close (which waits for
	// requests not yet hijacked) orders every Add before handlers.Wait.
	c.handlers.Add(1)
	defer c.handlers.Done()
	c.dials.Add(1)
	c.dialMu.Lock()
	c.dialAt = append(c.dialAt, time.Now())
	c.dialMu.Unlock()
	if c.refuse.Load() {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(envelope.DefaultMaxSize)

	sid, at := c.challenge()
	challenger := c.challenger.Load()
	if challenger == nil {
		// A sealer per challenge, with its time pinned, so a replayed
		// challenge carries the original's time and signature.
		challenger, err = envelope.NewSealer(testCloudID, c.key)
		if err != nil {
			c.t.Errorf("test cloud: %v", err)
			return
		}
		challenger.Now = func() time.Time { return at }
	}
	if err := session.WriteChallenge(c.ctx, ws, challenger, sid, rpcproto.AuthChallengeParams{CloudID: testCloudID}, 5*time.Second); err != nil {
		return
	}
	frame, herr := session.ReadFirst(ws, 10*time.Second)
	if herr != nil {
		select {
		case c.refusals <- refusal{session: sid, err: herr}:
		default:
		}
		return
	}
	reg, herr := session.OpenRegistration(frame, session.RegistrationCheck{Self: testCloudID, Session: sid})
	if herr != nil {
		c.deviceRejects.Add(1)
		c.t.Errorf("test cloud: registration refused: %v", herr)
		ws.Close(herr.Code, herr.Text)
		return
	}
	cc := &cloudConn{c: c, ws: ws, session: sid, deviceID: reg.Params.DeviceID, devKey: reg.PublicKey, done: make(chan struct{})}
	defer close(cc.done)

	status := c.regStatus.Load().(string)
	answer := status
	if status == "close4003" {
		answer = rpcproto.StatusPending // the connection is closed right after
	}
	result, _ := json.Marshal(rpcproto.RegisterResult{Status: answer, Fingerprint: reg.Fingerprint})
	reply, _ := json.Marshal(jsonrpc.Response{JSONRPC: jsonrpc.Version, ID: reg.RequestID, Result: result})
	d := c.dispatcher()

	if c.raw.Load() {
		cc.err = c.serveRaw(cc, reg, d, reply)
		return
	}
	cc.sess, err = session.New(session.Options{
		Conn: ws, Sealer: c.sealer, Self: testCloudID, Peer: reg.Params.DeviceID, PeerKey: reg.PublicKey,
		Session: sid, Direction: envelope.CloudToDevice, Window: reg.Window, NextSeq: 2,
		Handler: c.handler(cc, d), Logger: c.logger().With("session", sid),
		OnReject: func(reason string, err error) {
			c.deviceRejects.Add(1)
			c.t.Errorf("test cloud: device message refused (%s): %v", reason, err)
		},
	})
	if err != nil {
		c.t.Errorf("test cloud: %v", err)
		return
	}
	written := make(chan error, 1)
	if err := cc.sess.SendWritten(c.ctx, reply, func(err error) { written <- err }); err != nil {
		return
	}
	ran := make(chan error, 1)
	go func() { ran <- cc.sess.Run(c.ctx) }()
	if err := <-written; err == nil { // bounded: the writer writes it, or fails it when Run ends
		switch status {
		case rpcproto.StatusRejected, "close4003":
			cc.sess.Close(rpcproto.CloseRejected, "rejected")
		default:
			c.register(cc)
		}
	}
	cc.err = <-ran
}

// register hands a registered connection to the test.
func (c *testCloud) register(cc *cloudConn) {
	select {
	case c.conns <- cc:
	default:
		c.t.Errorf("test cloud: too many connections not taken by the test")
	}
}

// handler serves the device's requests with d, dropping the connection on
// ota.status while dropOnOTA says so.
func (c *testCloud) handler(cc *cloudConn, d *jsonrpc.Dispatcher) session.Handler {
	return func(ctx context.Context, msg []byte) []byte {
		if req, err := jsonrpc.ParseRequest(msg); err == nil && req.Method == rpcproto.MethodOTAStatus {
			if c.dropOnOTA.Add(-1) >= 0 {
				c.recordOTA(req.Params)
				cc.ws.CloseNow() // the report arrived but its answer is lost
				return nil
			}
			c.dropOnOTA.Add(1)
		}
		return d.HandleOne(ctx, msg)
	}
}

// serveRaw serves a registered connection without the session engine: it
// opens every device message with an Opener on the registration's window,
// answers requests with the dispatcher, and hands every response, single
// or batch, to cc.replies. What it writes is sealed with the next seq after
// the challenge, in order.
func (c *testCloud) serveRaw(cc *cloudConn, reg *session.Registration, d *jsonrpc.Dispatcher, answer []byte) error {
	cc.rawSeq = 1
	cc.replies = make(chan []byte, 16)
	op := &envelope.Opener{
		Self: testCloudID, Direction: envelope.DeviceToCloud, Session: cc.session,
		Key: func(signer string) (crypto.PublicKey, error) {
			if signer != cc.deviceID {
				return nil, envelope.ErrUnknownSigner
			}
			return cc.devKey, nil
		},
		Window: reg.Window,
	}
	if err := cc.rawSend(c.ctx, answer); err != nil {
		return err
	}
	c.register(cc)
	for {
		_, wire, err := cc.ws.Read(c.ctx)
		if err != nil {
			return err
		}
		opened, err := op.Open(wire)
		if err != nil {
			c.deviceRejects.Add(1)
			c.t.Errorf("test cloud: device message refused: %v", err)
			cc.ws.Close(rpcproto.CloseProtocolViolation, "envelope rejected: "+envelope.Reason(err))
			return err
		}
		if jsonrpc.IsResponse(opened.Payload) {
			select {
			case cc.replies <- opened.Payload:
			default:
				c.t.Errorf("test cloud: device reply not taken by the test: %.200s", opened.Payload)
			}
			continue
		}
		if reply := d.Handle(c.ctx, opened.Payload); reply != nil {
			if err := cc.rawSend(c.ctx, reply); err != nil {
				return err
			}
		}
	}
}

// rawSend seals payload with the next seq and writes it (raw mode).
func (cc *cloudConn) rawSend(ctx context.Context, payload []byte) error {
	cc.rawMu.Lock()
	defer cc.rawMu.Unlock()
	wire, err := cc.c.sealer.Seal(cc.header(cc.rawSeq+1), payload)
	if err != nil {
		return err
	}
	cc.rawSeq++
	return cc.sendWire(ctx, wire)
}

// rawCall sends payload (raw mode) and returns the device's reply.
func (cc *cloudConn) rawCall(tb testing.TB, payload string) []byte {
	tb.Helper()
	if err := cc.rawSend(context.Background(), []byte(payload)); err != nil {
		tb.Fatal(err)
	}
	return cc.nextReply(tb)
}

// nextReply waits for the device's next response or batch of responses
// (raw mode).
func (cc *cloudConn) nextReply(tb testing.TB) []byte {
	tb.Helper()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case r := <-cc.replies:
		return r
	case <-cc.done:
		tb.Fatalf("connection ended waiting for a reply: %v", cc.err)
	case <-t.C:
		tb.Fatal("no reply from the device")
	}
	return nil
}

func (c *testCloud) recordOTA(p json.RawMessage) {
	c.otaMu.Lock()
	defer c.otaMu.Unlock()
	c.otaSeen = append(c.otaSeen, append(json.RawMessage(nil), p...))
}

func (c *testCloud) ota() []json.RawMessage {
	c.otaMu.Lock()
	defer c.otaMu.Unlock()
	return append([]json.RawMessage(nil), c.otaSeen...)
}

// dispatcher serves the methods the device calls after registering.
func (c *testCloud) dispatcher() *jsonrpc.Dispatcher {
	d := jsonrpc.NewDispatcher()
	d.Register(rpcproto.MethodStateReport, jsonrpc.Handler(func(ctx context.Context, p rpcproto.StateReportParams) (rpcproto.StateReportResult, error) {
		select {
		case c.reports <- p:
		case <-ctx.Done():
			return rpcproto.StateReportResult{}, ctx.Err()
		}
		return rpcproto.StateReportResult{Stored: true}, nil
	}))
	d.Register(rpcproto.MethodOTAStatus, func(ctx context.Context, p json.RawMessage) (any, error) {
		c.recordOTA(p)
		return map[string]bool{"ok": true}, nil
	})
	d.Register("test.echo", func(ctx context.Context, p json.RawMessage) (any, error) {
		return p, nil
	})
	return d
}

// send seals payload in this session and queues it (writes it, in raw mode).
func (cc *cloudConn) send(ctx context.Context, payload []byte) error {
	if cc.sess == nil {
		return cc.rawSend(ctx, payload)
	}
	return cc.sess.Send(ctx, payload)
}

// sendWire writes exact bytes, for crafted and replayed envelopes.
func (cc *cloudConn) sendWire(ctx context.Context, wire []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cc.ws.Write(ctx, websocket.MessageText, wire)
}

// sealNext seals payload with the session's next seq without sending it,
// and returns the wire and its seq.
func (cc *cloudConn) sealNext(tb testing.TB, payload string) ([]byte, uint64) {
	tb.Helper()
	wire, err := cc.sess.Seal([]byte(payload))
	if err != nil {
		tb.Fatal(err)
	}
	meta, _, err := envelope.Peek(wire, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return wire, meta.Seq
}

// forge seals payload under h as signer with key (nil: the cloud key), at
// time at (zero: now).
func (cc *cloudConn) forge(tb testing.TB, signer string, key crypto.Signer, h envelope.Header, at time.Time, payload string) []byte {
	tb.Helper()
	if key == nil {
		key = cc.c.key
	}
	if at.IsZero() {
		at = time.Now()
	}
	s, err := envelope.NewSealer(signer, key)
	if err != nil {
		tb.Fatal(err)
	}
	wire, err := s.SealAt(h, []byte(payload), at)
	if err != nil {
		tb.Fatal(err)
	}
	return wire
}

// header is the correct header of cloud → device message seq on cc.
func (cc *cloudConn) header(seq uint64) envelope.Header {
	return envelope.Header{Audience: cc.deviceID, Direction: envelope.CloudToDevice, Session: cc.session, Seq: seq}
}

// call calls a device method and returns the result or the *jsonrpc.Error.
func (cc *cloudConn) call(tb testing.TB, method string, params any) (json.RawMessage, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			tb.Fatal(err)
		}
		p = b
	}
	res, err := cc.sess.CallRaw(ctx, method, p)
	var re *jsonrpc.Error
	if err != nil && !errors.As(err, &re) {
		tb.Fatalf("calling %s: %v", method, err)
	}
	return res, err
}

// notify sends a notification to the device.
func (cc *cloudConn) notify(tb testing.TB, method string, params any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cc.sess.Notify(ctx, method, params); err != nil {
		tb.Fatalf("notifying %s: %v", method, err)
	}
}

// closedBy waits for the connection to end and returns the close the
// device sent; it fails the test when the device did not close it.
func (cc *cloudConn) closedBy(tb testing.TB) websocket.CloseError {
	tb.Helper()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-cc.done:
	case <-t.C:
		tb.Fatalf("%v: the device did not close the connection", cc)
	}
	var ce websocket.CloseError
	if !errors.As(cc.err, &ce) {
		tb.Fatalf("%v ended with %v, not a close from the device", cc, cc.err)
	}
	return ce
}

// nextConn waits for the next registered connection.
func (c *testCloud) nextConn(tb testing.TB) *cloudConn {
	tb.Helper()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case cc := <-c.conns:
		return cc
	case <-t.C:
		tb.Fatal("no device connected to the test cloud")
		return nil
	}
}

// nextRefusal waits for the next connection that ended in the handshake.
func (c *testCloud) nextRefusal(tb testing.TB) refusal {
	tb.Helper()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case r := <-c.refusals:
		return r
	case <-t.C:
		tb.Fatal("no connection ended in the handshake")
		return refusal{}
	}
}

// nextReport waits for the next state.report.
func (c *testCloud) nextReport(tb testing.TB) rpcproto.StateReportParams {
	tb.Helper()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case r := <-c.reports:
		return r
	case <-t.C:
		tb.Fatal("no state.report arrived")
		return rpcproto.StateReportParams{}
	}
}

// drop closes the connection abruptly, as a crashed replica would.
func (cc *cloudConn) drop() {
	cc.ws.CloseNow()
	<-cc.done
}

func (cc *cloudConn) String() string { return fmt.Sprintf("conn(%s)", cc.session) }
