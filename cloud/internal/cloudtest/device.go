package cloudtest

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// DeviceOptions configure Connect; the zero value is a fresh Ed25519 key
// and an empty dispatcher.
type DeviceOptions struct {
	// Key is the device key. nil means a fresh Ed25519 key.
	Key crypto.Signer
	// Attributes are sent with the registration.
	Attributes map[string]string
	// EnrollmentToken is sent with the registration.
	EnrollmentToken string
	// Dispatcher serves the cloud's calls. nil means an empty one (add
	// handlers with Device.Handle before calls arrive).
	Dispatcher *jsonrpc.Dispatcher
	// Sequential serves calls one at a time in the order they arrived
	// (to observe delivery order). false serves them concurrently, like
	// the bridge.
	Sequential bool
}

// Device is a test device holding one session.
type Device struct {
	ID  string
	Key crypto.Signer
	// Registration is the cloud's answer to registration.register.
	Registration rpcproto.RegisterResult
	// Session is the session the cloud issued.
	Session string
	// Dispatcher serves the cloud's calls.
	Dispatcher *jsonrpc.Dispatcher
	// Client calls the cloud (state.report, ...).
	Client *jsonrpc.Client

	conn     *websocket.Conn
	sealer   *envelope.Sealer
	opener   *envelope.Opener
	cloudID  string
	accepted chan rpcproto.AuthAcceptedParams
	done     chan struct{}
	seq      bool

	mu       sync.Mutex // guards the following
	closeErr error
	paused   chan struct{}
	wg       sync.WaitGroup
}

// NewKey returns a fresh Ed25519 key.
func NewKey() crypto.Signer {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

// Connect dials url, performs the handshake as device id and returns once
// the cloud answered the registration. A rejected device's connection is
// closed by the cloud: Wait returns its close code. The device is closed
// when the test ends.
func Connect(ctx context.Context, tb testing.TB, url string, cloudPub crypto.PublicKey, id string, opts DeviceOptions) (*Device, error) {
	tb.Helper()
	if opts.Key == nil {
		opts.Key = NewKey()
	}
	if opts.Dispatcher == nil {
		opts.Dispatcher = jsonrpc.NewDispatcher()
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(envelope.DefaultMaxSize)
	d := &Device{ID: id, Key: opts.Key, Dispatcher: opts.Dispatcher, conn: c,
		accepted: make(chan rpcproto.AuthAcceptedParams, 4), done: make(chan struct{}), seq: opts.Sequential}
	tb.Cleanup(func() { d.Close() })
	if err := d.handshake(ctx, cloudPub, opts); err != nil {
		c.CloseNow()
		return nil, err
	}
	d.Client = jsonrpc.NewClient(func(ctx context.Context, msg []byte) error { return d.send(ctx, msg) })
	d.wg.Add(1)
	go d.readLoop()
	return d, nil
}

// MustConnect is Connect that fails the test on error.
func MustConnect(tb testing.TB, s *Server, id string, opts DeviceOptions) *Device {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := Connect(ctx, tb, s.DeviceURL(), s.CloudPublic(), id, opts)
	if err != nil {
		tb.Fatalf("cloudtest: connecting device %s: %v", id, err)
	}
	return d
}

func (d *Device) handshake(ctx context.Context, cloudPub crypto.PublicKey, opts DeviceOptions) error {
	_, frame, err := d.conn.Read(ctx)
	if err != nil {
		return fmt.Errorf("reading challenge: %w", err)
	}
	meta, _, err := envelope.Peek(frame, envelope.DefaultMaxSize)
	if err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	d.Session, d.cloudID = meta.Session, meta.Signer
	cloudKey := func(signer string) (crypto.PublicKey, error) {
		if signer != d.cloudID {
			return nil, envelope.ErrUnknownSigner
		}
		return cloudPub, nil
	}
	guard := envelope.NewReplayGuard(0, 0)
	challengeOpener := &envelope.Opener{Self: d.ID, AllowAnyAudience: true, Direction: envelope.CloudToDevice,
		Session: d.Session, Key: cloudKey, Guard: guard}
	op, err := challengeOpener.Open(frame)
	if err != nil {
		return fmt.Errorf("opening challenge: %w", err)
	}
	if req, err := jsonrpc.ParseRequest(op.Payload); err != nil || req.Method != rpcproto.MethodAuthChallenge {
		return fmt.Errorf("first message is not %s", rpcproto.MethodAuthChallenge)
	}
	d.opener = &envelope.Opener{Self: d.ID, Direction: envelope.CloudToDevice, Session: d.Session, Key: cloudKey, Guard: guard}
	if d.sealer, err = envelope.NewSealer(d.ID, d.Key); err != nil {
		return err
	}
	der, err := keys.PublicDER(d.Key.Public())
	if err != nil {
		return err
	}
	params, _ := json.Marshal(rpcproto.RegisterParams{DeviceID: d.ID, PublicKey: base64.StdEncoding.EncodeToString(der),
		Attributes: opts.Attributes, EnrollmentToken: opts.EnrollmentToken})
	req, _ := json.Marshal(jsonrpc.Request{JSONRPC: jsonrpc.Version, ID: json.RawMessage("1"), Method: rpcproto.MethodRegister, Params: params})
	if err := d.send(ctx, req); err != nil {
		return fmt.Errorf("sending registration: %w", err)
	}
	_, frame, err = d.conn.Read(ctx)
	if err != nil {
		return fmt.Errorf("reading registration answer: %w", err)
	}
	op, err = d.opener.Open(frame)
	if err != nil {
		return fmt.Errorf("opening registration answer: %w", err)
	}
	var resp jsonrpc.Response
	if err := json.Unmarshal(op.Payload, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	return json.Unmarshal(resp.Result, &d.Registration)
}

// Seal signs payload as this device for the cloud in this session.
func (d *Device) Seal(payload []byte) ([]byte, error) {
	return d.sealer.Seal(envelope.Header{Audience: d.cloudID, Direction: envelope.DeviceToCloud, Session: d.Session}, payload)
}

func (d *Device) send(ctx context.Context, payload []byte) error {
	wire, err := d.Seal(payload)
	if err != nil {
		return err
	}
	return d.WriteRaw(ctx, wire)
}

// WriteRaw writes a frame as is (for tests of malformed input).
func (d *Device) WriteRaw(ctx context.Context, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return d.conn.Write(ctx, websocket.MessageText, frame)
}

// Handle registers a handler for calls from the cloud.
func (d *Device) Handle(method string, h jsonrpc.HandlerFunc) { d.Dispatcher.Register(method, h) }

// Report sends state.report.
func (d *Device) Report(ctx context.Context, p rpcproto.StateReportParams) (rpcproto.StateReportResult, error) {
	var r rpcproto.StateReportResult
	err := d.Client.Call(ctx, rpcproto.MethodStateReport, p, &r)
	return r, err
}

// Accepted receives the params of every auth.accepted notification.
func (d *Device) Accepted() <-chan rpcproto.AuthAcceptedParams { return d.accepted }

// PauseReading stops reading from the websocket (a device that cannot keep
// up) until ResumeReading.
func (d *Device) PauseReading() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.paused == nil {
		d.paused = make(chan struct{})
	}
}

// ResumeReading resumes after PauseReading.
func (d *Device) ResumeReading() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.paused != nil {
		close(d.paused)
		d.paused = nil
	}
}

func (d *Device) readLoop() {
	defer d.wg.Done()
	defer close(d.done)
	ctx := context.Background()
	for {
		d.mu.Lock()
		p := d.paused
		d.mu.Unlock()
		if p != nil {
			select {
			case <-p:
			case <-d.done:
			}
		}
		_, frame, err := d.conn.Read(ctx)
		if err != nil {
			d.mu.Lock()
			d.closeErr = err
			d.mu.Unlock()
			d.Client.Close(err)
			return
		}
		op, err := d.opener.Open(frame)
		if err != nil {
			continue
		}
		if jsonrpc.IsResponse(op.Payload) {
			d.Client.Deliver(op.Payload)
			continue
		}
		if req, err := jsonrpc.ParseRequest(op.Payload); err == nil && req.Method == rpcproto.MethodAuthAccepted {
			var p rpcproto.AuthAcceptedParams
			json.Unmarshal(req.Params, &p)
			select {
			case d.accepted <- p:
			default:
			}
			continue
		}
		if d.seq {
			if reply := d.Dispatcher.Handle(ctx, op.Payload); reply != nil {
				d.send(ctx, reply)
			}
			continue
		}
		// Serve calls concurrently, like the bridge does.
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if reply := d.Dispatcher.Handle(ctx, op.Payload); reply != nil {
				d.send(ctx, reply)
			}
		}()
	}
}

// Wait waits until the cloud closes the connection (or ctx ends) and
// returns the close code (-1 when the connection broke without one).
func (d *Device) Wait(ctx context.Context) (websocket.StatusCode, error) {
	select {
	case <-d.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return websocket.CloseStatus(d.closeErr), nil
}

// WaitClosed is Wait that fails the test after timeout.
func (d *Device) WaitClosed(tb testing.TB, timeout time.Duration) websocket.StatusCode {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code, err := d.Wait(ctx)
	if err != nil {
		tb.Fatalf("device %s: connection not closed within %s", d.ID, timeout)
	}
	return code
}

// Closed reports whether the connection has ended.
func (d *Device) Closed() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Close closes the connection normally and waits for the device's
// goroutines. Safe to call twice.
func (d *Device) Close() {
	d.ResumeReading()
	d.conn.Close(websocket.StatusNormalClosure, "bye")
	d.conn.CloseNow()
	d.wg.Wait()
	if d.Client != nil {
		d.Client.Close(errors.New("device closed"))
	}
}
