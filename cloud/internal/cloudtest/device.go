package cloudtest

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
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
	// LocalAddr, when set, is the source IP the device dials from (a
	// 127.0.0.0/8 address: a device "from another address").
	LocalAddr string
	// Sequential serves calls one at a time in the order they arrived
	// (to observe delivery order). false serves them concurrently, like
	// the bridge.
	Sequential bool
}

// Device is a test device holding one session, run by the same session
// engine as the bridge (pkg/session).
type Device struct {
	ID  string
	Key crypto.Signer
	// Registration is the cloud's answer to registration.register.
	Registration rpcproto.RegisterResult
	// Session is the session the cloud issued.
	Session string
	// Dispatcher serves the cloud's calls.
	Dispatcher *jsonrpc.Dispatcher
	// Peer is the session engine: Call, Notify, Seal, ...
	Peer *session.Session

	conn       *websocket.Conn
	cloudID    string
	accepted   chan rpcproto.AuthAcceptedParams
	done       chan struct{}
	sequential bool

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
	dopts := &websocket.DialOptions{Subprotocols: []string{rpcproto.WebsocketSubprotocol}}
	if opts.LocalAddr != "" {
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(opts.LocalAddr)}}
		dopts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	}
	c, _, err := websocket.Dial(ctx, url, dopts)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(envelope.DefaultMaxSize)
	d := &Device{ID: id, Key: opts.Key, Dispatcher: opts.Dispatcher, conn: c,
		accepted: make(chan rpcproto.AuthAcceptedParams, 4), done: make(chan struct{})}
	tb.Cleanup(func() { d.Close() })
	if err := d.handshake(ctx, cloudPub, opts); err != nil {
		c.CloseNow()
		return nil, err
	}
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
	frame, herr := session.ReadFirst(d.conn, 10*time.Second)
	if herr != nil {
		return fmt.Errorf("reading challenge: %w", herr)
	}
	ch, herr := session.OpenChallenge(frame, session.ChallengeCheck{Self: d.ID, CloudKey: cloudPub})
	if herr != nil {
		return fmt.Errorf("opening challenge: %w", herr)
	}
	d.Session, d.cloudID = ch.Session, ch.CloudID
	sealer, err := envelope.NewSealer(d.ID, d.Key)
	if err != nil {
		return err
	}
	d.sequential = opts.Sequential
	d.Peer, err = session.New(session.Options{
		Conn: d.conn, Sealer: sealer, Self: d.ID, Peer: ch.CloudID, PeerKey: cloudPub, Session: ch.Session,
		Direction: envelope.DeviceToCloud, Window: ch.Window, Handler: d.Dispatcher.HandleOne,
		Inline: d.inline, ReadGate: d.gate, PingInterval: -1,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(d.done)
		err := d.Peer.Run(context.Background())
		d.mu.Lock()
		d.closeErr = err
		d.mu.Unlock()
	}()
	der, err := keys.PublicDER(d.Key.Public())
	if err != nil {
		return err
	}
	err = d.Peer.Call(ctx, rpcproto.MethodRegister, rpcproto.RegisterParams{DeviceID: d.ID,
		PublicKey: base64.StdEncoding.EncodeToString(der), Attributes: opts.Attributes,
		EnrollmentToken: opts.EnrollmentToken}, &d.Registration)
	if err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	return nil
}

// inline takes auth.accepted, and with Sequential every request, on the
// read goroutine.
func (d *Device) inline(req *jsonrpc.Request) bool {
	if req.Method != rpcproto.MethodAuthAccepted {
		if !d.sequential || req.IsNotification() {
			return false
		}
		msg, _ := json.Marshal(req)
		if reply := d.Dispatcher.HandleOne(d.Peer.Context(), msg); reply != nil {
			d.Peer.Send(d.Peer.Context(), reply)
		}
		return true
	}
	var p rpcproto.AuthAcceptedParams
	jsonrpc.DecodeParams(req.Params, &p)
	select {
	case d.accepted <- p:
	default:
	}
	return true
}

// gate blocks the reader while the device is paused.
func (d *Device) gate(ctx context.Context) error {
	d.mu.Lock()
	p := d.paused
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Seal signs payload as this device for the cloud in this session, with
// the next sequence number (spent whether or not it is sent).
func (d *Device) Seal(payload []byte) ([]byte, error) { return d.Peer.Seal(payload) }

// CloudID is the cloud's signer name, the audience of the device's messages.
func (d *Device) CloudID() string { return d.cloudID }

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
	err := d.Peer.Call(ctx, rpcproto.MethodStateReport, p, &r)
	return r, err
}

// ReportMethods sends a state.report that lists methods: the device says
// which methods it serves, and so which queued calls the cloud may send.
func (d *Device) ReportMethods(ctx context.Context, methods ...string) error {
	p := rpcproto.StateReportParams{Hostname: d.ID}
	for _, m := range methods {
		p.Methods = append(p.Methods, rpcproto.MethodInfo{Name: m, Description: m})
	}
	_, err := d.Report(ctx, p)
	return err
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
	if d.Peer != nil {
		d.Peer.Close(websocket.StatusNormalClosure, "bye")
	}
	d.wg.Wait()
	d.conn.CloseNow()
}

// MustConnectFrom is MustConnect from source address addr (127.0.0.0/8).
func MustConnectFrom(tb testing.TB, s *Server, id, addr string) *Device {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := Connect(ctx, tb, s.DeviceURL(), s.CloudPublic(), id, DeviceOptions{LocalAddr: addr})
	if err != nil {
		tb.Fatalf("cloudtest: connecting device %s from %s: %v", id, addr, err)
	}
	return d
}
