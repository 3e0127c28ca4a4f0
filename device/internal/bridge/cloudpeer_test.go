package bridge_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/coder/websocket"
)

// testCloudID is the signer name of the test cloud.
const testCloudID = "cloud-test"

// testCloud is a minimal cloud peer: it speaks the device protocol exactly
// as the real cloud must (signed challenge, registration, verified
// messages), and lets tests steer registration, record what the device
// reports and send crafted envelopes.
type testCloud struct {
	t      testing.TB
	srv    *httptest.Server
	key    crypto.Signer
	sealer *envelope.Sealer

	regStatus  atomic.Value // string: the answer to registration.register, or "close4003"
	refuse     atomic.Bool  // answer the websocket upgrade with 503
	dropOnOTA  atomic.Int32 // drop the connection instead of answering this many ota.status
	challenger atomic.Pointer[envelope.Sealer]

	conns    chan *cloudConn // every registered connection
	dials    atomic.Int32
	reports  chan rpcproto.StateReportParams
	otaMu    sync.Mutex
	otaSeen  []json.RawMessage // every ota.status params received, in order
	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup
}

// cloudConn is one device connection as the test cloud sees it.
type cloudConn struct {
	c        *testCloud
	ws       *websocket.Conn
	session  string
	deviceID string
	devKey   crypto.PublicKey
	opener   *envelope.Opener
	client   *jsonrpc.Client
	batches  chan []byte // batch responses from the device, raw
	done     chan struct{}
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
	key := loadCloudKey(tb)
	sealer, err := envelope.NewSealer(testCloudID, key)
	if err != nil {
		tb.Fatal(err)
	}
	c := &testCloud{
		t:       tb,
		key:     key,
		sealer:  sealer,
		conns:   make(chan *cloudConn, 16),
		reports: make(chan rpcproto.StateReportParams, 64),
	}
	c.regStatus.Store(rpcproto.StatusAccepted)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+rpcproto.DeviceEndpointPath, c.serveDevice)
	c.srv = httptest.NewServer(mux)
	tb.Cleanup(func() {
		c.cancel()
		c.srv.CloseClientConnections()
		c.srv.Close()
		c.handlers.Wait()
	})
	return c
}

// URL is the device endpoint.
func (c *testCloud) URL() string {
	return "ws" + c.srv.URL[len("http"):] + rpcproto.DeviceEndpointPath
}

func (c *testCloud) serveDevice(w http.ResponseWriter, r *http.Request) {
	c.dials.Add(1)
	if c.refuse.Load() {
		http.Error(w, "down for the test", http.StatusServiceUnavailable)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
	if err != nil {
		return
	}
	c.handlers.Add(1)
	defer c.handlers.Done()
	defer ws.CloseNow()
	ctx := c.ctx
	sessRaw := make([]byte, 16)
	rand.Read(sessRaw)
	cc := &cloudConn{c: c, ws: ws, session: base64.RawURLEncoding.EncodeToString(sessRaw),
		batches: make(chan []byte, 4), done: make(chan struct{})}
	defer close(cc.done)
	cc.client = jsonrpc.NewClient(cc.sendPayload)
	defer cc.client.Close(errors.New("closed"))

	challenger := c.sealer
	if s := c.challenger.Load(); s != nil {
		challenger = s
	}
	ch, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": rpcproto.MethodAuthChallenge,
		"params": rpcproto.AuthChallengeParams{CloudID: testCloudID}})
	wire, err := challenger.Seal(envelope.Header{Audience: envelope.AudienceAny, Direction: envelope.CloudToDevice, Session: cc.session}, ch)
	if err != nil {
		c.t.Errorf("sealing challenge: %v", err)
		return
	}
	if err := ws.Write(ctx, websocket.MessageText, wire); err != nil {
		return
	}
	// registration.register: the key to verify it with is inside it.
	_, wire, err = ws.Read(ctx)
	if err != nil {
		return
	}
	meta, payload, err := envelope.Peek(wire, envelope.DefaultMaxSize)
	if err != nil {
		c.t.Errorf("registration: %v", err)
		return
	}
	req, perr := jsonrpc.ParseRequest(payload)
	if perr != nil || req.Method != rpcproto.MethodRegister {
		c.t.Errorf("first device message is not registration.register: %s", payload)
		return
	}
	var rp rpcproto.RegisterParams
	if err := json.Unmarshal(req.Params, &rp); err != nil {
		c.t.Errorf("registration params: %v", err)
		return
	}
	der, err := base64.StdEncoding.DecodeString(rp.PublicKey)
	if err != nil {
		c.t.Errorf("registration public key: %v", err)
		return
	}
	devKey, err := keys.ParsePublicDER(der)
	if err != nil {
		c.t.Errorf("registration public key: %v", err)
		return
	}
	if meta.Signer != rp.DeviceID {
		c.t.Errorf("registration signed by %q for device %q", meta.Signer, rp.DeviceID)
		return
	}
	cc.deviceID, cc.devKey = rp.DeviceID, devKey
	cc.opener = &envelope.Opener{
		Self:      testCloudID,
		Direction: envelope.DeviceToCloud,
		Session:   cc.session,
		Key: func(signer string) (crypto.PublicKey, error) {
			if signer != cc.deviceID {
				return nil, envelope.ErrUnknownSigner
			}
			return cc.devKey, nil
		},
		Guard: envelope.NewReplayGuard(4*time.Minute, 1<<14),
	}
	d := c.dispatcher(cc)
	if !cc.handle(ctx, d, wire) {
		return
	}
	if c.regStatus.Load().(string) == "close4003" {
		ws.Close(rpcproto.CloseRejected, "rejected")
		return
	}
	select {
	case c.conns <- cc:
	default:
		c.t.Errorf("test cloud: too many connections not taken by the test")
	}
	for {
		_, wire, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if !cc.handle(ctx, d, wire) {
			return
		}
	}
}

// handle verifies and serves one device message; false ends the connection.
func (cc *cloudConn) handle(ctx context.Context, d *jsonrpc.Dispatcher, wire []byte) bool {
	opened, err := cc.opener.Open(wire)
	if err != nil {
		cc.c.t.Errorf("test cloud: device message failed verification: %v", err)
		return false
	}
	p := opened.Payload
	if jsonrpc.IsResponse(p) {
		if jsonrpc.Classify(p) == jsonrpc.KindBatch {
			cc.batches <- p
		} else {
			cc.client.Deliver(p)
		}
		return true
	}
	req, perr := jsonrpc.ParseRequest(p)
	if perr == nil && req.Method == rpcproto.MethodOTAStatus && cc.c.dropOnOTA.Load() > 0 {
		cc.c.dropOnOTA.Add(-1)
		cc.c.recordOTA(req.Params)
		cc.ws.CloseNow() // the report arrived but its answer is lost
		return false
	}
	if reply := d.Handle(ctx, p); reply != nil {
		if err := cc.sendPayload(ctx, reply); err != nil {
			return false
		}
	}
	if perr == nil && req.Method == rpcproto.MethodRegister && cc.c.regStatus.Load().(string) == rpcproto.StatusRejected {
		cc.ws.Close(rpcproto.CloseRejected, "rejected")
		return false
	}
	return true
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

func (c *testCloud) dispatcher(cc *cloudConn) *jsonrpc.Dispatcher {
	d := jsonrpc.NewDispatcher()
	d.Register(rpcproto.MethodRegister, jsonrpc.Handler(func(ctx context.Context, p rpcproto.RegisterParams) (rpcproto.RegisterResult, error) {
		st := c.regStatus.Load().(string)
		if st == "close4003" {
			st = rpcproto.StatusPending // the connection is closed right after
		}
		der, _ := base64.StdEncoding.DecodeString(p.PublicKey)
		return rpcproto.RegisterResult{Status: st, Fingerprint: keys.FingerprintDER(der)}, nil
	}))
	d.Register(rpcproto.MethodStateReport, jsonrpc.Handler(func(ctx context.Context, p rpcproto.StateReportParams) (rpcproto.StateReportResult, error) {
		c.reports <- p
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

// sendPayload seals a cloud → device payload in this session and writes it.
func (cc *cloudConn) sendPayload(ctx context.Context, payload []byte) error {
	wire, err := cc.c.sealer.Seal(envelope.Header{Audience: cc.deviceID, Direction: envelope.CloudToDevice, Session: cc.session}, payload)
	if err != nil {
		return err
	}
	return cc.sendWire(ctx, wire)
}

// sendWire writes exact bytes, for crafted and replayed envelopes.
func (cc *cloudConn) sendWire(ctx context.Context, wire []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cc.ws.Write(ctx, websocket.MessageText, wire)
}

// seal seals payload with h using key (nil: the cloud key) and signer.
func (cc *cloudConn) seal(tb testing.TB, signer string, key crypto.Signer, h envelope.Header, payload string) []byte {
	tb.Helper()
	if key == nil {
		key = cc.c.key
	}
	s, err := envelope.NewSealer(signer, key)
	if err != nil {
		tb.Fatal(err)
	}
	wire, err := s.Seal(h, []byte(payload))
	if err != nil {
		tb.Fatal(err)
	}
	return wire
}

// header is the correct header of a cloud → device message on cc.
func (cc *cloudConn) header() envelope.Header {
	return envelope.Header{Audience: cc.deviceID, Direction: envelope.CloudToDevice, Session: cc.session}
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
	res, err := cc.client.CallRaw(ctx, method, p)
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
	if err := cc.client.Notify(ctx, method, params); err != nil {
		tb.Fatalf("notifying %s: %v", method, err)
	}
}

// nextConn waits for the next registered connection.
func (c *testCloud) nextConn(tb testing.TB) *cloudConn {
	tb.Helper()
	select {
	case cc := <-c.conns:
		return cc
	case <-time.After(15 * time.Second):
		tb.Fatal("no device connected to the test cloud")
		return nil
	}
}

// nextReport waits for the next state.report.
func (c *testCloud) nextReport(tb testing.TB) rpcproto.StateReportParams {
	tb.Helper()
	select {
	case r := <-c.reports:
		return r
	case <-time.After(15 * time.Second):
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
