package session_test

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
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

const cloudID = "cloud-test"

func newKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// pair is a cloud and a device session over one real websocket on
// loopback, after a real handshake.
type pair struct {
	cloud, device *session.Session
	cloudConn     *websocket.Conn
	deviceConn    *websocket.Conn
	cloudDisp     *jsonrpc.Dispatcher
	deviceDisp    *jsonrpc.Dispatcher
	deviceKey     crypto.Signer
	cloudKey      crypto.Signer
	cloudErr      chan error
	deviceErr     chan error
}

type pairOpts struct {
	cloud  func(*session.Options)
	device func(*session.Options)
}

// newPair runs the whole handshake: challenge, registration, answer.
func newPair(t testing.TB, po pairOpts) *pair {
	t.Helper()
	p := &pair{cloudDisp: jsonrpc.NewDispatcher(), deviceDisp: jsonrpc.NewDispatcher(),
		deviceKey: newKey(t), cloudKey: newKey(t), cloudErr: make(chan error, 1), deviceErr: make(chan error, 1)}
	cloudSealer, _ := envelope.NewSealer(cloudID, p.cloudKey)
	ready := make(chan *session.Session, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(session.GuardFrames(w, envelope.DefaultMaxSize), r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(envelope.DefaultMaxSize)
		sid := session.NewID()
		if err := session.WriteChallenge(context.Background(), c, cloudSealer, sid, rpcproto.AuthChallengeParams{CloudID: cloudID}, 0); err != nil {
			t.Errorf("challenge: %v", err)
			return
		}
		frame, herr := session.ReadFirst(c, 5*time.Second)
		if herr != nil {
			t.Errorf("reading registration: %v", herr)
			return
		}
		reg, herr := session.OpenRegistration(frame, session.RegistrationCheck{Self: cloudID, Session: sid})
		if herr != nil {
			t.Errorf("registration: %v", herr)
			return
		}
		o := session.Options{Conn: c, Sealer: cloudSealer, Self: cloudID, Peer: reg.Params.DeviceID,
			PeerKey: reg.PublicKey, Session: sid, Direction: envelope.CloudToDevice, Window: reg.Window, NextSeq: 2,
			Handler: p.cloudDisp.HandleOne, Logger: quiet()}
		if po.cloud != nil {
			po.cloud(&o)
		}
		s, err := session.New(o)
		if err != nil {
			t.Errorf("cloud session: %v", err)
			return
		}
		res, _ := json.Marshal(jsonrpc.Response{JSONRPC: jsonrpc.Version, ID: reg.RequestID,
			Result: json.RawMessage(`{"status":"accepted","fingerprint":"` + reg.Fingerprint + `"}`)})
		if err := s.Send(context.Background(), res); err != nil {
			t.Errorf("answering: %v", err)
		}
		p.cloudConn = c
		ready <- s
		p.cloudErr <- s.Run(context.Background())
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(envelope.DefaultMaxSize)
	p.deviceConn = c
	frame, herr := session.ReadFirst(c, 5*time.Second)
	if herr != nil {
		t.Fatal(herr)
	}
	ch, herr := session.OpenChallenge(frame, session.ChallengeCheck{Self: "dev-1", CloudKey: p.cloudKey.Public(), CloudID: cloudID})
	if herr != nil {
		t.Fatal(herr)
	}
	devSealer, _ := envelope.NewSealer("dev-1", p.deviceKey)
	o := session.Options{Conn: c, Sealer: devSealer, Self: "dev-1", Peer: ch.CloudID, PeerKey: p.cloudKey.Public(),
		Session: ch.Session, Direction: envelope.DeviceToCloud, Window: ch.Window, Handler: p.deviceDisp.HandleOne,
		Logger: quiet()}
	if po.device != nil {
		po.device(&o)
	}
	p.device, err = session.New(o)
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.deviceErr <- p.device.Run(context.Background()) }()
	der, _ := keys.PublicDER(p.deviceKey.Public())
	var rr rpcproto.RegisterResult
	if err := p.device.Call(ctx, rpcproto.MethodRegister, rpcproto.RegisterParams{DeviceID: "dev-1",
		PublicKey: base64.StdEncoding.EncodeToString(der)}, &rr); err != nil {
		t.Fatal(err)
	}
	if rr.Status != "accepted" {
		t.Fatalf("registration = %+v", rr)
	}
	select {
	case p.cloud = <-ready:
	case <-ctx.Done():
		t.Fatal("cloud session not ready")
	}
	t.Cleanup(func() {
		p.device.Close(websocket.StatusNormalClosure, "bye")
		p.cloud.Close(websocket.StatusNormalClosure, "bye")
		waitDone(t, p.device)
		waitDone(t, p.cloud)
	})
	return p
}

func waitDone(t testing.TB, s *session.Session) {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("session %s did not end", s.ID())
	}
}

// closedWith waits for the session to end and returns the close code the
// other side sent.
func closedWith(t testing.TB, s *session.Session) websocket.StatusCode {
	t.Helper()
	waitDone(t, s)
	return websocket.CloseStatus(s.Err())
}

func echo(ctx context.Context, p json.RawMessage) (any, error) { return p, nil }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// soak returns n, or big when BOSUN_SOAK=1 (scripts/soak.sh).
func soak(n, big int) int {
	if os.Getenv("BOSUN_SOAK") == "1" {
		return big
	}
	return n
}

// TestManyCallsInARow is the v1 failure turned into a test: v1 refused
// every message after 16,384 in four minutes. Both directions, 100,000 in
// the soak run.
func TestManyCallsInARow(t *testing.T) {
	n := soak(20_000, 100_000)
	for _, dir := range []string{"cloud_to_device", "device_to_cloud"} {
		t.Run(dir, func(t *testing.T) {
			p := newPair(t, pairOpts{})
			p.deviceDisp.Register("test.echo", echo)
			p.cloudDisp.Register("test.echo", echo)
			caller := p.cloud
			if dir == "device_to_cloud" {
				caller = p.device
			}
			ctx := ctxT(t, 5*time.Minute)
			const workers = 16
			var failed, done atomic.Int64
			var next atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(n) {
							return
						}
						var got int64
						if err := caller.Call(ctx, "test.echo", []int64{i}, &[]*int64{&got}); err != nil || got != i {
							failed.Add(1)
							if failed.Load() < 5 {
								t.Errorf("call %d: %v (got %d)", i, err, got)
							}
							continue
						}
						done.Add(1)
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			t.Logf("%d calls %s in %v: %.0f calls/s", n, dir, el.Round(time.Millisecond), float64(n)/el.Seconds())
			if failed.Load() != 0 || done.Load() != int64(n) {
				t.Fatalf("%d of %d calls failed", failed.Load(), n)
			}
		})
	}
}

// TestRefusedEnvelopeClosesSession: a replay, a forgery, a wrong session:
// each closes the session with 4002 naming the reason, and reaches no
// handler.
func TestRefusedEnvelopeClosesSession(t *testing.T) {
	payload := []byte(`{"jsonrpc":"2.0","id":99,"method":"test.count","params":{}}`)
	cases := []struct {
		name   string
		reason string
		frames func(t *testing.T, p *pair) [][]byte
	}{
		{"replay of the same seq", "replay", func(t *testing.T, p *pair) [][]byte {
			w, err := p.device.Seal(payload)
			if err != nil {
				t.Fatal(err)
			}
			return [][]byte{w, w}
		}},
		{"seq below the window", "replay", func(t *testing.T, p *pair) [][]byte {
			old, _ := p.device.Seal(payload)
			var fs [][]byte
			for range 1030 {
				w, _ := p.device.Seal([]byte(`{"jsonrpc":"2.0","method":"test.noop"}`))
				fs = append(fs, w)
			}
			return append(fs, old)
		}},
		{"forged signature", "bad_signature", func(t *testing.T, p *pair) [][]byte {
			w, _ := p.device.Seal(payload)
			var env map[string]map[string]any
			json.Unmarshal(w, &env)
			return [][]byte{[]byte(strings.Replace(string(w), env["meta"]["sig"].(string), base64.RawURLEncoding.EncodeToString(make([]byte, 64)), 1))}
		}},
		{"other session", "wrong_session", func(t *testing.T, p *pair) [][]byte {
			s, _ := envelope.NewSealer("dev-1", p.deviceKey)
			w, _ := s.Seal(envelope.Header{Audience: cloudID, Direction: envelope.DeviceToCloud, Session: session.NewID(), Seq: 500}, payload)
			return [][]byte{w}
		}},
		{"reflected direction", "wrong_direction", func(t *testing.T, p *pair) [][]byte {
			s, _ := envelope.NewSealer("dev-1", p.deviceKey)
			w, _ := s.Seal(envelope.Header{Audience: cloudID, Direction: envelope.CloudToDevice, Session: p.cloud.ID(), Seq: 500}, payload)
			return [][]byte{w}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rejected atomic.Value
			p := newPair(t, pairOpts{cloud: func(o *session.Options) {
				o.OnReject = func(reason string, _ error) { rejected.Store(reason) }
			}})
			var served atomic.Int64
			p.cloudDisp.Register("test.count", func(ctx context.Context, _ json.RawMessage) (any, error) {
				served.Add(1)
				return nil, nil
			})
			frames := tc.frames(t, p)
			ctx := ctxT(t, 20*time.Second)
			for _, f := range frames {
				if err := p.deviceConn.Write(ctx, websocket.MessageText, f); err != nil {
					break // the cloud may close while we write
				}
			}
			if code := closedWith(t, p.device); code != rpcproto.CloseProtocolViolation {
				t.Fatalf("device session closed with %d, want %d", code, rpcproto.CloseProtocolViolation)
			}
			code, reason, ok := p.cloud.SentClose()
			if !ok || code != rpcproto.CloseProtocolViolation || reason != "envelope rejected: "+tc.reason {
				t.Fatalf("cloud sent close %d %q (%v), want 4002 %q", code, reason, ok, "envelope rejected: "+tc.reason)
			}
			if got, _ := rejected.Load().(string); got != tc.reason {
				t.Fatalf("rejected reason %q, want %q", got, tc.reason)
			}
			want := int64(0)
			if tc.name == "replay of the same seq" {
				want = 1 // the first copy is genuine
			}
			if got := served.Load(); got != want {
				t.Fatalf("handler ran %d times, want %d", got, want)
			}
		})
	}
}

// TestReorderInsideWindowAcceptedOnce: frames sealed 1..n written in
// reverse order are each accepted exactly once.
func TestReorderInsideWindowAcceptedOnce(t *testing.T) {
	p := newPair(t, pairOpts{})
	var served atomic.Int64
	p.cloudDisp.Register("test.count", func(ctx context.Context, _ json.RawMessage) (any, error) {
		served.Add(1)
		return nil, nil
	})
	var frames [][]byte
	for range 100 {
		w, err := p.device.Seal([]byte(`{"jsonrpc":"2.0","method":"test.count"}`))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, w)
	}
	ctx := ctxT(t, 20*time.Second)
	for i := len(frames) - 1; i >= 0; i-- {
		if err := p.deviceConn.Write(ctx, websocket.MessageText, frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for served.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := served.Load(); got != 100 {
		t.Fatalf("served %d of 100 reordered notifications", got)
	}
	// The session still works, and a replay of any of them closes it.
	if err := p.device.Call(ctx, "rpc.missing", nil, nil); err == nil {
		t.Fatal("call of an unknown method succeeded")
	}
	p.deviceConn.Write(ctx, websocket.MessageText, frames[50])
	if code := closedWith(t, p.device); code != rpcproto.CloseProtocolViolation {
		t.Fatalf("closed with %d after a replay, want 4002", code)
	}
	if got := served.Load(); got != 100 {
		t.Fatalf("served %d after the replay, want 100", got)
	}
}

// TestBusy: requests beyond MaxConcurrent are answered CodeBusy at once,
// and the session stays usable.
func TestBusy(t *testing.T) {
	const max = 4
	p := newPair(t, pairOpts{device: func(o *session.Options) { o.MaxConcurrent = max }})
	release := make(chan struct{})
	var started atomic.Int64
	p.deviceDisp.Register("test.block", func(ctx context.Context, _ json.RawMessage) (any, error) {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "ok", nil
	})
	p.deviceDisp.Register("test.echo", echo)
	ctx := ctxT(t, 20*time.Second)
	errs := make(chan error, max+3)
	for range max {
		go func() { errs <- p.cloud.Call(ctx, "test.block", nil, nil) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < max && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if started.Load() != max {
		t.Fatalf("%d handlers started, want %d", started.Load(), max)
	}
	for range 3 {
		err := p.cloud.Call(ctx, "test.echo", []int{1}, nil)
		var re *jsonrpc.Error
		if !errors.As(err, &re) || re.Code != rpcproto.CodeBusy {
			t.Fatalf("call beyond the limit: %v, want code %d", err, rpcproto.CodeBusy)
		}
	}
	close(release)
	for range max {
		if err := <-errs; err != nil {
			t.Fatalf("blocked call: %v", err)
		}
	}
	var got []int
	if err := p.cloud.Call(ctx, "test.echo", []int{7}, &got); err != nil || len(got) != 1 || got[0] != 7 {
		t.Fatalf("call after busy: %v %v", got, err)
	}
}

// TestBatchLimit: a batch of MaxBatch is served in full; one more entry
// and nothing runs, one error comes back.
func TestBatchLimit(t *testing.T) {
	p := newPair(t, pairOpts{})
	var served atomic.Int64
	p.deviceDisp.Register("test.count", func(ctx context.Context, _ json.RawMessage) (any, error) {
		served.Add(1)
		return 1, nil
	})
	batch := func(n int) []byte {
		var b strings.Builder
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"test.count"}`, i+1)
		}
		b.WriteByte(']')
		return []byte(b.String())
	}
	ctx := ctxT(t, 20*time.Second)
	if err := p.cloud.Send(ctx, batch(session.MaxBatch)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for served.Load() < session.MaxBatch && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if got := served.Load(); got != session.MaxBatch {
		t.Fatalf("batch of %d: %d entries served", session.MaxBatch, got)
	}
	if err := p.cloud.Send(ctx, batch(session.MaxBatch+1)); err != nil {
		t.Fatal(err)
	}
	// A call after the refused batch is answered, so the batch has been
	// handled (the reader hands messages to handlers in order, and the
	// batch was refused before any entry ran).
	p.deviceDisp.Register("test.echo", echo)
	for i := range 20 {
		if err := p.cloud.Call(ctx, "test.echo", []int{i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := served.Load(); got != session.MaxBatch {
		t.Fatalf("after a batch of %d: %d entries served, want still %d", session.MaxBatch+1, got, session.MaxBatch)
	}
}

// TestQueueFullCloses: a peer that stops reading is closed with 4008 once
// its queue fills, instead of blocking its senders.
func TestQueueFullCloses(t *testing.T) {
	gate := make(chan struct{})
	var paused atomic.Bool
	p := newPair(t, pairOpts{
		cloud: func(o *session.Options) { o.SendQueue = 8; o.WriteTimeout = 30 * time.Second },
		device: func(o *session.Options) {
			o.ReadGate = func(ctx context.Context) error {
				if !paused.Load() {
					return nil
				}
				select {
				case <-gate:
				case <-ctx.Done():
				}
				return nil
			}
		},
	})
	defer close(gate)
	paused.Store(true)
	// The device's reader may sit in a Read already: one more message
	// gets it to the gate.
	p.cloud.Send(context.Background(), []byte(`{"jsonrpc":"2.0","method":"test.noop"}`))
	ctx := ctxT(t, 60*time.Second)
	big := []byte(`{"jsonrpc":"2.0","method":"test.noop","params":["` + strings.Repeat("x", 64<<10) + `"]}`)
	var err error
	for i := 0; i < 100_000 && err == nil; i++ {
		err = p.cloud.Send(ctx, big)
	}
	if !errors.Is(err, session.ErrQueueFull) {
		t.Fatalf("Send to a peer that does not read: %v, want ErrQueueFull", err)
	}
	if code, _, ok := p.cloud.SentClose(); !ok || code != rpcproto.CloseTooSlow {
		t.Fatalf("cloud close = %d (%v), want %d", code, ok, rpcproto.CloseTooSlow)
	}
	if err := p.cloud.Send(ctx, big); err == nil {
		waitDone(t, p.cloud)
		if err := p.cloud.Send(ctx, big); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Send after the end: %v, want ErrClosed", err)
		}
	}
}

// TestSeqExhausted: a session whose sequence numbers run out closes
// (1001) rather than wrap around, and says so.
func TestSeqExhausted(t *testing.T) {
	p := newPair(t, pairOpts{device: func(o *session.Options) { o.NextSeq = envelope.MaxSeq - 1 }})
	// The device's first message (registration) used MaxSeq-1; one more is
	// MaxSeq; then no more.
	p.cloudDisp.Register("test.echo", echo)
	ctx := ctxT(t, 20*time.Second)
	if err := p.device.Call(ctx, "test.echo", []int{1}, nil); err != nil {
		t.Fatalf("call with seq MaxSeq: %v", err)
	}
	err := p.device.Call(ctx, "test.echo", []int{2}, nil)
	if !errors.Is(err, session.ErrSeqExhausted) {
		t.Fatalf("call past MaxSeq: %v, want ErrSeqExhausted", err)
	}
	if code := closedWith(t, p.cloud); code != websocket.StatusGoingAway {
		t.Fatalf("cloud saw close %d, want 1001", code)
	}
}

// TestHandshakeTimeoutSendsClose: a device that never registers gets a
// 4002 close frame, not a cut connection.
func TestHandshakeTimeoutSendsClose(t *testing.T) {
	res := make(chan *session.HandshakeError, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_, herr := session.ReadFirst(c, 200*time.Millisecond)
		res <- herr
	}))
	defer srv.Close()
	ctx := ctxT(t, 10*time.Second)
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(ctx)
	if code := websocket.CloseStatus(err); code != rpcproto.CloseProtocolViolation {
		t.Fatalf("device read: %v (code %d), want close 4002", err, code)
	}
	if herr := <-res; herr == nil || herr.Reason != "handshake_timeout" {
		t.Fatalf("ReadFirst = %v, want handshake_timeout", herr)
	}
}

// TestFrameHeaderClaimingTerabytes: a frame header that claims 2^40 bytes
// is answered with 1009 at once, not after the ping timeout.
func TestFrameHeaderClaimingTerabytes(t *testing.T) {
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(session.GuardFrames(w, envelope.DefaultMaxSize), r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(envelope.DefaultMaxSize)
		_, _, err = c.Read(context.Background())
		got <- err
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// FIN + text, masked, 127 → 64-bit length 2^40, mask key, 3 bytes.
	hdr := []byte{0x81, 0xff}
	hdr = binary.BigEndian.AppendUint64(hdr, 1<<40)
	hdr = append(hdr, 1, 2, 3, 4, 'a', 'b', 'c')
	if _, err := conn.Write(hdr); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b0, err := br.ReadByte()
	if err != nil {
		t.Fatalf("no close frame within 5s: %v", err)
	}
	b1, _ := br.ReadByte()
	body := make([]byte, b1&0x7f)
	io.ReadFull(br, body)
	if b0 != 0x88 || len(body) < 2 || binary.BigEndian.Uint16(body) != 1009 {
		t.Fatalf("server sent frame %#x %q, want a close frame with 1009", b0, body)
	}
	select {
	case err := <-got:
		if !session.IsReadLimit(err) {
			t.Fatalf("server read: %v, want the read limit", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server read did not end")
	}
}

// TestChallengeChecks: OpenChallenge refuses what is not the pinned
// cloud's challenge, each with its reason.
func TestChallengeChecks(t *testing.T) {
	cloudKey, other := newKey(t), newKey(t)
	seal := func(key crypto.Signer, signer string, h envelope.Header, payload string) []byte {
		s, _ := envelope.NewSealer(signer, key)
		w, err := s.Seal(h, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	sid := session.NewID()
	h := envelope.Header{Audience: envelope.AudienceAny, Direction: envelope.CloudToDevice, Session: sid, Seq: 1}
	good := `{"jsonrpc":"2.0","method":"auth.challenge","params":{"cloud_id":"cloud-test"}}`
	cases := []struct {
		name, reason string
		frame        []byte
	}{
		{"signed by another key", "bad_signature", seal(other, cloudID, h, good)},
		{"another signer", "unknown_signer", seal(cloudKey, "evil", h, good)},
		{"seq 2", "bad_challenge", seal(cloudKey, cloudID, envelope.Header{Audience: "*", Direction: envelope.CloudToDevice, Session: sid, Seq: 2}, good)},
		{"not a challenge", "bad_challenge", seal(cloudKey, cloudID, h, `{"jsonrpc":"2.0","method":"auth.accepted","params":{}}`)},
		{"case-variant param", "bad_challenge", seal(cloudKey, cloudID, h, `{"jsonrpc":"2.0","method":"auth.challenge","params":{"Cloud_ID":"cloud-test"}}`)},
		{"names another cloud", "bad_challenge", seal(cloudKey, cloudID, h, `{"jsonrpc":"2.0","method":"auth.challenge","params":{"cloud_id":"x"}}`)},
		{"wrong direction", "wrong_direction", seal(cloudKey, cloudID, envelope.Header{Audience: "*", Direction: envelope.DeviceToCloud, Session: sid, Seq: 1}, good)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, herr := session.OpenChallenge(tc.frame, session.ChallengeCheck{Self: "dev-1", CloudKey: cloudKey.Public(), CloudID: cloudID})
			if herr == nil || herr.Reason != tc.reason || herr.Code != rpcproto.CloseProtocolViolation {
				t.Fatalf("OpenChallenge = %v, want reason %s", herr, tc.reason)
			}
		})
	}
	ch, herr := session.OpenChallenge(seal(cloudKey, cloudID, h, good), session.ChallengeCheck{Self: "dev-1", CloudKey: cloudKey.Public(), CloudID: cloudID})
	if herr != nil || ch.Session != sid || ch.Window.Top() != 1 || !cloudKey.Public().(ed25519.PublicKey).Equal(ch.Key) {
		t.Fatalf("good challenge: %+v %v", ch, herr)
	}

	// During a rotation the device trusts several keys: a challenge signed
	// by any of them opens, and the session keeps the key that signed it.
	next, rsaNext := newKey(t), testRSAKey(t)
	for _, signer := range []crypto.Signer{cloudKey, next, rsaNext} {
		check := session.ChallengeCheck{Self: "dev-1", CloudKey: cloudKey.Public(), CloudKeys: []crypto.PublicKey{rsaNext.Public(), next.Public()}, CloudID: cloudID}
		ch, herr := session.OpenChallenge(seal(signer, cloudID, h, good), check)
		if herr != nil {
			t.Fatalf("challenge signed by a trusted %T: %v", signer.Public(), herr)
		}
		if k, ok := ch.Key.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(signer.Public()) {
			t.Fatalf("challenge signed by a trusted %T: session key %T is another key", signer.Public(), ch.Key)
		}
	}
	// Signed by none of them: a bad signature as soon as one trusted key has
	// the envelope's algorithm, else the algorithm mismatch.
	otherRSA := testRSAKey(t)
	for _, tc := range []struct {
		name    string
		signer  crypto.Signer
		trusted []crypto.PublicKey
		reason  string
	}{
		{"ed25519, trusting ed25519 and rsa", next, []crypto.PublicKey{other.Public(), otherRSA.Public()}, "bad_signature"},
		{"rsa, trusting ed25519 and rsa", rsaNext, []crypto.PublicKey{other.Public(), otherRSA.Public()}, "bad_signature"},
		{"rsa, trusting ed25519 only", rsaNext, []crypto.PublicKey{other.Public()}, "alg_mismatch"},
	} {
		check := session.ChallengeCheck{Self: "dev-1", CloudKey: cloudKey.Public(), CloudKeys: tc.trusted, CloudID: cloudID}
		if _, herr := session.OpenChallenge(seal(tc.signer, cloudID, h, good), check); herr == nil || herr.Reason != tc.reason {
			t.Fatalf("%s: %v, want %s", tc.name, herr, tc.reason)
		}
	}
}

// testRSAKey is a 2048-bit RSA key, the smallest the envelope accepts.
func testRSAKey(tb testing.TB) crypto.Signer {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// TestPings: pings come from a timer, so an idle session holds no pinger
// goroutine; a peer that answers them keeps its session through many
// intervals, one that stops reading (no pong) is dropped with "ping
// timeout" after PingInterval + PingTimeout.
func TestPings(t *testing.T) {
	release := make(chan struct{})
	var gate atomic.Bool
	p := newPair(t, pairOpts{
		cloud: func(o *session.Options) { o.PingInterval, o.PingTimeout = 20*time.Millisecond, 300*time.Millisecond },
		device: func(o *session.Options) {
			o.ReadGate = func(ctx context.Context) error {
				if gate.Load() {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return nil
			}
		},
	})
	defer close(release)
	p.deviceDisp.Register("echo", echo)
	time.Sleep(400 * time.Millisecond) // about 20 pings, each answered
	select {
	case <-p.cloud.Done():
		t.Fatalf("a session whose peer answers pings ended: %v", p.cloud.Err())
	default:
	}
	var got []string
	if err := p.cloud.Call(ctxT(t, 5*time.Second), "echo", []string{"still here"}, &got); err != nil || len(got) != 1 || got[0] != "still here" {
		t.Fatalf("call after 400 ms of pings = %q, %v", got, err)
	}
	// The device stops reading: after the next message its next read
	// waits at the gate, so no pong goes back.
	gate.Store(true)
	if err := p.cloud.Notify(ctxT(t, 5*time.Second), "echo", []string{"last"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitDone(t, p.cloud)
	if code, reason, ok := p.cloud.SentClose(); !ok || reason != "ping timeout" || code != websocket.StatusAbnormalClosure {
		t.Fatalf("cloud ended with %v %q %v, want the ping timeout drop", code, reason, ok)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("dropped %v after the peer stopped reading, before the ping timeout", d)
	}
}
