// Package session is Bosun's session engine: one signed JSON-RPC 2.0 peer
// over one websocket. The cloud's hub, the device's bridge and the test
// peers of both sides all run it, so the two ends of a connection obey one
// set of rules, written once.
//
// A Session, once its handshake is done (see handshake.go), does:
//
//   - seal every outgoing message with the next sequence number of its
//     direction (1, 2, 3, ...) and write them in that order, from one writer
//     goroutine draining a bounded queue, each write bounded by a timeout;
//   - open every incoming message with an envelope.Opener whose replay
//     window belongs to this session;
//   - hand responses to a jsonrpc.Client (outgoing calls, any number in
//     flight);
//   - run requests and notifications on a bounded pool of handler
//     goroutines, never on the read goroutine, answering a request that
//     finds the pool full with CodeBusy at once;
//   - ping the peer and drop it when the pong does not come in time.
//
// A session never gets into a state where it silently drops everything: an
// envelope that fails verification closes the session with
// rpcproto.CloseProtocolViolation and the reason, a peer that stops reading
// (its queue fills) is cut, logged as rpcproto.CloseTooSlow (a close frame
// could not get through the backlog it does not read), and the side that
// dials reconnects. Every close code is in pkg/rpcproto and docs/protocol.md.
//
// Ordering and the replay window: the sequence number is assigned and the
// message queued under one lock, and the writer takes the queue in order,
// waiting for each message's signature if it is still being computed; so
// signatures are computed concurrently, yet the wire carries sequence
// numbers strictly in increasing order. The receiver's window (1024 by
// default) thus never sees a reordering; it tolerates one of up to its size
// from other implementations.
//
// Goroutines: Run owns the reader (itself), the writer, a ping in flight
// (pings come from a timer: an idle session holds two goroutines) and the
// handlers; it returns only once all of them have. Close is safe to call
// any number of times, from anywhere.
package session

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// Defaults of Options.
const (
	DefaultMaxConcurrent = 32
	DefaultSendQueue     = 256
	DefaultWriteTimeout  = 10 * time.Second
	DefaultPingInterval  = 20 * time.Second
	DefaultPingTimeout   = 10 * time.Second
)

// MaxBatch is the most entries a JSON-RPC batch may hold. A larger batch is
// answered with one CodeInvalidRequest error and runs nothing.
const MaxBatch = jsonrpc.MaxBatch

// Errors returned by Send and the calls.
var (
	// ErrClosed: the session has ended.
	ErrClosed = errors.New("session: closed")
	// ErrQueueFull: the send queue was full, so the peer is not reading;
	// the connection is being cut (rpcproto.CloseTooSlow).
	ErrQueueFull = errors.New("session: send queue full")
	// ErrSeqExhausted: the outgoing sequence reached envelope.MaxSeq; the
	// session is being closed so that a new one starts over at 1.
	ErrSeqExhausted = errors.New("session: sequence numbers exhausted")
)

// Handler serves one message from the peer that is neither a batch nor a
// response: a request, a notification, or something invalid, which it
// answers as JSON-RPC says (jsonrpc.Dispatcher.HandleOne does all of that).
// It returns the response to send, or nil for a notification. ctx ends when
// the session does.
type Handler func(ctx context.Context, msg []byte) []byte

// Options configure a Session. Conn, Sealer, Self, Peer, PeerKey, Session
// and Direction are required.
type Options struct {
	// Conn is the websocket, after the handshake.
	Conn *websocket.Conn
	// Sealer signs outgoing messages; its Signer is Self.
	Sealer *envelope.Sealer
	// Self is this side's name: incoming audience.
	Self string
	// Peer is the other side's name: the only signer accepted, and the
	// audience of every outgoing message.
	Peer string
	// PeerKey is the peer's public key.
	PeerKey crypto.PublicKey
	// Session is the session the cloud's auth.challenge named.
	Session string
	// Direction is the direction this side writes (the cloud writes
	// envelope.CloudToDevice); it reads the other one.
	Direction envelope.Direction
	// Window is the replay window of incoming messages. nil means a new
	// one; pass the handshake's so its messages stay spent.
	Window *envelope.ReplayWindow
	// NextSeq is the sequence number of the first message this Session
	// seals. Zero means 1; the cloud passes 2 (its challenge was 1).
	NextSeq uint64
	// Handler serves the peer's requests. nil means an empty
	// jsonrpc.Dispatcher: every request is answered method not found.
	Handler Handler
	// Inline, when set, sees every incoming request and notification (not
	// batches) first, on the read goroutine, and returns true when it
	// consumed it (answering a request itself, with Send). It should not
	// block: it is for control messages (auth.accepted) that must not wait
	// for a free handler, and for test peers that serve in arrival order.
	Inline func(req *jsonrpc.Request) bool
	// MaxConcurrent bounds the handlers running at once (a batch takes
	// one). Defaults to DefaultMaxConcurrent.
	MaxConcurrent int
	// SendQueue is the number of sealed messages that may wait for the
	// websocket; one more cuts the connection (SentClose reports
	// CloseTooSlow). Defaults to DefaultSendQueue.
	SendQueue int
	// WriteTimeout bounds every websocket write. Defaults to 10s.
	WriteTimeout time.Duration
	// PingInterval is how often this side pings; negative disables
	// pinging. Defaults to 20s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take. Defaults to 10s.
	PingTimeout time.Duration
	// Skew is the accepted clock difference. Defaults to envelope.DefaultSkew.
	Skew time.Duration
	// MaxMessageSize is the largest envelope accepted. Defaults to
	// envelope.DefaultMaxSize. The caller sets the websocket's read limit.
	MaxMessageSize int
	// Logger receives the session's logs. nil means slog.Default().
	Logger *slog.Logger
	// OnReject, when set, is told about every refused envelope or frame
	// (reason as envelope.Reason, or "binary_frame"), before the session
	// closes.
	OnReject func(reason string, err error)
	// ReadGate, when set, is called before every read and may block (a
	// test device that stops reading). nil means never.
	ReadGate func(ctx context.Context) error
	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// Session is one live signed JSON-RPC peer. See the package doc.
type Session struct {
	opts   Options
	opener *envelope.Opener
	client *jsonrpc.Client
	log    *slog.Logger
	sem    chan struct{} // one token per running handler

	ctx    context.Context // ends when Run ends
	cancel context.CancelFunc
	wg     sync.WaitGroup // writer, a ping in flight and handlers
	pinger *time.Timer    // the next ping (see ping); set under mu
	ran    atomic.Bool

	mu      sync.Mutex // guards the following
	nextSeq uint64
	queue   chan *outgoing // appended under mu only, so queue order is seq order
	ending  bool           // no more sends or handlers once set

	closeOnce sync.Once
	closedBy  atomic.Pointer[closeInfo] // the close this side sent, if any
	closing   atomic.Bool               // a close was decided: read only to end the handshake
	closeDone chan struct{}             // closed when the close handshake started by Close ended
	done      chan struct{}
	err       error // why Run ended; set before done is closed
}

type closeInfo struct {
	code   websocket.StatusCode
	reason string
}

// outgoing is one message on its way to the websocket. wire is set, and
// ready closed, by the goroutine that seals it.
type outgoing struct {
	ready   chan struct{}
	wire    []byte
	written func(error) // nil, or told the write's outcome
}

// writtenKey carries a *writeHook through a call's context to Send.
type writtenKey struct{}

// writeHook tells a caller the outcome of one message's websocket write,
// exactly once.
type writeHook struct {
	fn      func(error)
	once    sync.Once
	done    chan struct{}
	entered atomic.Bool // Send saw the hook: it, or the writer, fires it
}

func (h *writeHook) fire(err error) {
	h.once.Do(func() {
		h.fn(err)
		close(h.done)
	})
}

// errNotSent is the write outcome of a call that never reached Send.
var errNotSent = errors.New("session: not sent")

// NewID returns a fresh session id: 16 random bytes, unpadded base64url.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// New returns a Session ready to Run.
func New(opts Options) (*Session, error) {
	if opts.Conn == nil || opts.Sealer == nil || opts.PeerKey == nil {
		return nil, errors.New("session: Conn, Sealer and PeerKey are required")
	}
	if opts.Self == "" || opts.Peer == "" || opts.Session == "" {
		return nil, errors.New("session: Self, Peer and Session are required")
	}
	var read envelope.Direction
	switch opts.Direction {
	case envelope.CloudToDevice:
		read = envelope.DeviceToCloud
	case envelope.DeviceToCloud:
		read = envelope.CloudToDevice
	default:
		return nil, fmt.Errorf("session: direction %q", opts.Direction)
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = DefaultSendQueue
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = DefaultPingTimeout
	}
	if opts.Skew <= 0 {
		opts.Skew = envelope.DefaultSkew
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = envelope.DefaultMaxSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Window == nil {
		opts.Window = envelope.NewReplayWindow(0)
	}
	if opts.NextSeq == 0 {
		opts.NextSeq = 1
	}
	if opts.Handler == nil {
		opts.Handler = jsonrpc.NewDispatcher().HandleOne
	}
	peer, key := opts.Peer, opts.PeerKey
	s := &Session{
		opts: opts,
		opener: &envelope.Opener{
			Self: opts.Self, Direction: read, Session: opts.Session,
			Key: func(signer string) (crypto.PublicKey, error) {
				if signer != peer {
					return nil, envelope.ErrUnknownSigner
				}
				return key, nil
			},
			Window: opts.Window, Skew: opts.Skew, MaxSize: opts.MaxMessageSize, Now: opts.Now,
		},
		log:       opts.Logger,
		sem:       make(chan struct{}, opts.MaxConcurrent),
		nextSeq:   opts.NextSeq,
		queue:     make(chan *outgoing, opts.SendQueue),
		done:      make(chan struct{}),
		closeDone: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.client = jsonrpc.NewClient(s.Send)
	return s, nil
}

// ID returns the session id.
func (s *Session) ID() string { return s.opts.Session }

// Peer returns the peer's name.
func (s *Session) Peer() string { return s.opts.Peer }

// Context returns a context that ends when the session does.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed once Run has returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil while it runs): the websocket's
// read error, a *websocket.CloseError when the peer closed.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// SentClose returns the close code and reason this side sent, if it closed
// the session (ok false otherwise).
func (s *Session) SentClose() (code websocket.StatusCode, reason string, ok bool) {
	if c := s.closedBy.Load(); c != nil {
		return c.code, c.reason, true
	}
	return 0, "", false
}

// Pending returns the number of outgoing calls waiting for an answer.
func (s *Session) Pending() int { return s.client.Pending() }

// Call calls method on the peer and decodes the result into result (unless
// nil); an error response comes back as a *jsonrpc.Error.
func (s *Session) Call(ctx context.Context, method string, params, result any) error {
	return s.client.Call(ctx, method, params, result)
}

// CallWritten is CallRaw that also tells written the outcome of the
// request's websocket write (nil: written) exactly once, before it returns.
// The cloud marks a call delivered with it. written runs on the writer
// goroutine: it must not block.
func (s *Session) CallWritten(ctx context.Context, method string, params json.RawMessage, written func(error)) (json.RawMessage, error) {
	h := &writeHook{fn: written, done: make(chan struct{})}
	res, err := s.client.CallRaw(context.WithValue(ctx, writtenKey{}, h), method, params)
	if !h.entered.Load() {
		h.fire(errNotSent)
	}
	<-h.done // bounded: the writer writes (WriteTimeout) or fails it at the end
	return res, err
}

// CallRaw is Call with raw JSON params and result.
func (s *Session) CallRaw(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	return s.client.CallRaw(ctx, method, params)
}

// Notify sends a notification.
func (s *Session) Notify(ctx context.Context, method string, params any) error {
	return s.client.Notify(ctx, method, params)
}

// Seal signs payload with the next sequence number WITHOUT sending it, for
// tests that write frames themselves (a replay, say). The number is spent.
func (s *Session) Seal(payload []byte) ([]byte, error) {
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	return s.seal(seq, payload)
}

func (s *Session) seal(seq uint64, payload []byte) ([]byte, error) {
	return s.opts.Sealer.Seal(envelope.Header{Audience: s.opts.Peer, Direction: s.opts.Direction,
		Session: s.opts.Session, Seq: seq}, payload)
}

// Send seals payload and queues it for the websocket. It does not wait for
// the write (see OnWritten). A full queue closes the session with
// CloseTooSlow and returns ErrQueueFull.
func (s *Session) Send(ctx context.Context, payload []byte) error {
	o := &outgoing{ready: make(chan struct{})}
	if h, _ := ctx.Value(writtenKey{}).(*writeHook); h != nil {
		h.entered.Store(true)
		o.written = h.fire
	}
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		s.tell(o, ErrClosed)
		return ErrClosed
	}
	seq := s.nextSeq
	if seq > envelope.MaxSeq {
		s.mu.Unlock()
		s.Close(websocket.StatusGoingAway, "sequence numbers exhausted")
		s.tell(o, ErrSeqExhausted)
		return ErrSeqExhausted
	}
	select {
	case s.queue <- o:
		s.nextSeq++
	default:
		s.mu.Unlock()
		s.log.Warn("send queue full: the peer is not reading; closing", "queue", cap(s.queue))
		// A close frame would wait behind the very backlog the peer does
		// not read: cut the connection, recording 4008 as the reason.
		s.dropWith(rpcproto.CloseTooSlow, "send queue full")
		s.tell(o, ErrQueueFull)
		return ErrQueueFull
	}
	s.mu.Unlock()
	wire, err := s.seal(seq, payload)
	if err != nil {
		// The writer skips it; the gap in the sequence is harmless.
		s.log.Error("sealing message", "err", err)
		close(o.ready)
		return fmt.Errorf("session: sealing: %w", err)
	}
	o.wire = wire
	close(o.ready)
	return nil
}

// SendWritten is Send that calls written with the outcome of the websocket
// write (nil: written), exactly once; also when Send fails.
func (s *Session) SendWritten(ctx context.Context, payload []byte, written func(error)) error {
	return s.Send(context.WithValue(ctx, writtenKey{}, &writeHook{fn: written, done: make(chan struct{})}), payload)
}

// Close closes the websocket with code and reason, once; Run then returns.
// It does not block.
func (s *Session) Close(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		s.closedBy.Store(&closeInfo{code: code, reason: reason})
		s.closing.Store(true)
		s.log.Info("closing session", "code", int(code), "reason", reason)
		// The close handshake waits for the peer; never make the caller
		// wait for it. Run waits for it (it ends at the latest when Run
		// cuts the connection).
		go func() {
			defer close(s.closeDone)
			s.opts.Conn.Close(code, reason)
		}()
	})
}

// drop cuts the connection without a close handshake.
func (s *Session) drop(reason string) { s.dropWith(websocket.StatusAbnormalClosure, reason) }

// dropWith cuts the connection, recording code as what SentClose reports.
func (s *Session) dropWith(code websocket.StatusCode, reason string) {
	s.closeOnce.Do(func() {
		s.closedBy.Store(&closeInfo{code: code, reason: reason})
		s.closing.Store(true)
		s.log.Info("dropping session", "code", int(code), "reason", reason)
		s.opts.Conn.CloseNow()
		close(s.closeDone)
	})
}

// Run serves the session until the websocket closes or ctx ends (which
// closes it with 1001 going away). It returns why it ended and only once
// every goroutine of the session has returned. Run may be called once.
func (s *Session) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("session: Run called twice")
	}
	s.wg.Add(1)
	go s.writeLoop()
	if s.opts.PingInterval > 0 {
		s.mu.Lock()
		s.pinger = time.AfterFunc(s.opts.PingInterval, s.ping)
		s.mu.Unlock()
	}
	stop := context.AfterFunc(ctx, func() { s.Close(websocket.StatusGoingAway, "shutting down") })
	err := s.readLoop()
	stop()

	s.mu.Lock()
	s.ending = true
	s.mu.Unlock()
	s.opts.Conn.CloseNow() // no-op when already closed
	s.cancel()
	if s.pinger != nil { // set before ending, under mu
		s.pinger.Stop() // a ping already running is counted in wg
	}
	s.client.Close(fmt.Errorf("%w: %v", ErrClosed, err))
	s.wg.Wait()
	if s.closedBy.Load() != nil {
		<-s.closeDone
	}
	s.err = err
	close(s.done)
	return err
}

func (s *Session) readLoop() error {
	for {
		if g := s.opts.ReadGate; g != nil {
			if err := g(s.ctx); err != nil {
				return err
			}
		}
		typ, frame, err := s.opts.Conn.Read(s.ctx)
		if err != nil {
			return err
		}
		if s.closing.Load() {
			// Once a close is decided nothing more is opened or served:
			// the reader only waits for the close handshake to end.
			continue
		}
		if typ != websocket.MessageText {
			s.reject("binary_frame", errors.New("binary frame"))
			s.Close(websocket.StatusUnsupportedData, "text frames only")
			continue // the close ends the read
		}
		op, err := s.opener.Open(frame)
		if err != nil {
			reason := envelope.Reason(err)
			s.reject(reason, err)
			s.Close(rpcproto.CloseProtocolViolation, "envelope rejected: "+reason)
			continue
		}
		s.route(op.Payload)
	}
}

func (s *Session) reject(reason string, err error) {
	s.log.Warn("message rejected", "reason", reason, "err", err)
	if s.opts.OnReject != nil {
		s.opts.OnReject(reason, err)
	}
}

// route hands one verified payload to where it belongs. It never blocks.
func (s *Session) route(p []byte) {
	switch jsonrpc.Classify(p) {
	case jsonrpc.KindResponse:
		s.client.Deliver(p)
		return
	case jsonrpc.KindBatch:
		if jsonrpc.IsResponse(p) {
			s.client.Deliver(p)
			return
		}
	case jsonrpc.KindNotification, jsonrpc.KindRequest:
		if s.opts.Inline != nil {
			if req, err := jsonrpc.ParseRequest(p); err == nil && s.opts.Inline(req) {
				return
			}
		}
	}
	select {
	case s.sem <- struct{}{}:
	default:
		s.busy(p)
		return
	}
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		<-s.sem
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		if reply := s.serve(p); reply != nil {
			if err := s.Send(s.ctx, reply); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Warn("sending reply", "err", err)
			}
		}
	}()
}

// serve runs one request, notification or batch and returns the reply.
func (s *Session) serve(p []byte) []byte {
	if jsonrpc.Classify(p) != jsonrpc.KindBatch {
		return s.serveOne(p)
	}
	entries, rerr := jsonrpc.SplitBatch(p)
	if rerr != nil {
		return errorReply(nil, rerr)
	}
	replies := make([][]byte, 0, len(entries))
	for _, e := range entries {
		if s.ctx.Err() != nil {
			break
		}
		replies = append(replies, s.serveOne(e))
	}
	return jsonrpc.JoinReplies(replies)
}

func (s *Session) serveOne(p []byte) []byte { return s.opts.Handler(s.ctx, p) }

// busy answers a message that found every handler slot taken, from a
// goroutine of its own so the reader never waits for the queue.
func (s *Session) busy(p []byte) {
	var ids []json.RawMessage
	batch := jsonrpc.Classify(p) == jsonrpc.KindBatch
	if batch {
		entries, rerr := jsonrpc.SplitBatch(p)
		if rerr != nil {
			s.sendAsync(errorReply(nil, rerr))
			return
		}
		for _, e := range entries {
			if req, err := jsonrpc.ParseRequest(e); err == nil && !req.IsNotification() {
				ids = append(ids, req.ID)
			}
		}
	} else if req, err := jsonrpc.ParseRequest(p); err == nil && !req.IsNotification() {
		ids = append(ids, req.ID)
	}
	s.log.Warn("every handler busy: refusing", "max_concurrent", s.opts.MaxConcurrent, "requests", len(ids))
	if len(ids) == 0 {
		return // notifications are dropped: nobody waits for them
	}
	e := jsonrpc.NewError(rpcproto.CodeBusy, rpcproto.ErrorMessages[rpcproto.CodeBusy],
		map[string]int{"max_concurrent": s.opts.MaxConcurrent})
	replies := make([][]byte, len(ids))
	for i, id := range ids {
		replies[i] = errorReply(id, e)
	}
	if batch {
		s.sendAsync(jsonrpc.JoinReplies(replies))
	} else {
		s.sendAsync(replies[0])
	}
}

// sendAsync queues a reply without blocking the caller (Send never blocks
// anyway: it only seals, and sealing is what we keep off the reader).
func (s *Session) sendAsync(reply []byte) {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if err := s.Send(s.ctx, reply); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("sending reply", "err", err)
		}
	}()
}

func errorReply(id json.RawMessage, e *jsonrpc.Error) []byte {
	b, err := json.Marshal(jsonrpc.Response{JSONRPC: jsonrpc.Version, ID: id, Error: e})
	if err != nil {
		panic(err) // an *Error always marshals
	}
	return b
}

// writeLoop writes the queue in order until the session ends; then it
// tells every waiting message's callback that it was not written.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	for {
		select {
		case o := <-s.queue:
			select {
			case <-o.ready:
			case <-s.ctx.Done():
				s.fail(o)
				s.drain()
				return
			}
			if o.wire == nil {
				s.tell(o, errors.New("session: message could not be sealed"))
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.WriteTimeout)
			err := s.opts.Conn.Write(ctx, websocket.MessageText, o.wire)
			cancel()
			s.tell(o, err)
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Info("write failed: dropping the session", "err", err)
				}
				s.drop("write failed")
				s.drain()
				return
			}
		case <-s.ctx.Done():
			s.drain()
			return
		}
	}
}

func (s *Session) tell(o *outgoing, err error) {
	if o.written != nil {
		o.written(err)
	}
}

func (s *Session) fail(o *outgoing) { s.tell(o, ErrClosed) }

// drain fails what is still queued. Sends racing with the end either see
// ending (set before ctx is cancelled) or land in the queue before it.
func (s *Session) drain() {
	<-s.ctx.Done()
	for {
		select {
		case o := <-s.queue:
			s.fail(o)
		default:
			return
		}
	}
}

// ping runs on the ping timer: one ping, then the timer is set again.
// No goroutine waits between pings (thousands of idle sessions would
// each hold one); a ping in flight is one of the session's goroutines,
// so Run waits for it.
func (s *Session) ping() {
	s.mu.Lock()
	if s.ending {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	next := s.pinger
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.PingTimeout)
	err := s.opts.Conn.Ping(ctx)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Info("peer did not answer ping: dropping the session", "err", err)
			s.drop("ping timeout")
		}
		return
	}
	if s.ctx.Err() == nil {
		next.Reset(s.opts.PingInterval) // after Run's Stop, the next ping sees ending
	}
}

// IsReadLimit reports whether err is coder/websocket's "message too big"
// read error (after which it has sent 1009).
func IsReadLimit(err error) bool {
	return websocket.CloseStatus(err) == websocket.StatusMessageTooBig || (err != nil && strings.Contains(err.Error(), "read limited"))
}
