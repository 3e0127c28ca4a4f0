// Package worker is the SDK for adding methods to a Bosun device.
//
// A worker is a small program next to the bridge. It connects to the
// device-local NATS the bridge serves (Connect finds it through the data
// directory), registers handlers and runs:
//
//	nc, err := worker.Connect(worker.ConnectOptions{DataDir: "/var/lib/bosun"})
//	w := worker.New(nc, "camera")
//	w.Handle("camera.snapshot", "Take a JPEG", worker.Func(snapshot))
//	err = w.Run(ctx)
//
// The cloud reaches a method as a JSON-RPC request that the bridge verifies
// and forwards on NATS subject "bosun.rpc.<method>" (queue group "workers",
// so several instances of one worker share the load). The request and the
// reply on NATS are plain JSON-RPC 2.0 objects; the bridge signs the reply.
// Params are decoded strictly (Func, DecodeParams): member names match
// exactly, case included, and an unknown or duplicated member is refused
// with -32602 before the handler runs. A handler's error becomes a JSON-RPC
// error: a *jsonrpc.Error (or an error wrapping one) is sent as is,
// anything else as -32603 "Internal error" whose text only goes to the
// worker's log.
//
// A worker calls the cloud with Call; the bridge signs the request, sends it
// over its websocket and relays the verified reply.
//
// When Run starts it announces its methods (subject
// "bosun.workers.announce"), so rpc.list shows them, and announces again
// whenever the bridge asks ("bosun.workers.discover") or the NATS connection
// comes (back) up. When ctx ends it stops taking requests, lets the ones in
// flight finish (up to Options.DrainTimeout) and withdraws its methods.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

// HandlerFunc serves one method; see jsonrpc.HandlerFunc.
type HandlerFunc = jsonrpc.HandlerFunc

// Func adapts a typed function to a HandlerFunc: params are decoded into a
// P by DecodeParams and the R is marshalled as the result. A member that is
// not exactly a field's name ({"Name":...} for `json:"name"`), an unknown
// member or a duplicated one is -32602 Invalid params naming it, and fn is
// not called.
func Func[P, R any](fn func(ctx context.Context, p P) (R, error)) HandlerFunc {
	return jsonrpc.Handler(fn)
}

// DecodeParams decodes params into v (a non-nil pointer) with the rules of
// Func, for a HandlerFunc that takes its params raw: exact, case-sensitive
// member names, no unknown or duplicated members. Its error is a
// *jsonrpc.Error with code -32602 to return as is. See
// jsonrpc.DecodeParams.
func DecodeParams(params json.RawMessage, v any) error {
	return jsonrpc.DecodeParams(params, v)
}

// Errorf returns a *jsonrpc.Error with code and a formatted message, the
// way for a handler to send an error the caller can act on.
func Errorf(code int, format string, args ...any) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Options tune a Worker. The zero value is ready to use.
type Options struct {
	// Logger receives the worker's own logs and the text of handler errors
	// that are not sent to the caller. nil means slog.Default().
	Logger *slog.Logger
	// DrainTimeout bounds how long Run waits for requests in flight after
	// ctx ends; then their contexts are cancelled. Defaults to 10s.
	DrainTimeout time.Duration
	// CallTimeout bounds Call when ctx has no deadline. Defaults to 30s.
	CallTimeout time.Duration
}

// Worker serves methods on the device-local NATS. Handle may be called
// before Run only; Call may be used at any time.
type Worker struct {
	nc   *nats.Conn
	name string
	opts Options
	log  *slog.Logger
	d    *jsonrpc.Dispatcher

	mu      sync.Mutex // guards the following
	methods []rpcproto.MethodInfo
	running bool
}

// New returns a Worker named name (shown by rpc.list) that uses nc. The
// Worker does not close nc.
func New(nc *nats.Conn, name string, opts ...Options) *Worker {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	d := jsonrpc.NewDispatcher()
	log := o.Logger.With("worker", name)
	d.SetLogger(log)
	return &Worker{nc: nc, name: name, opts: o, log: log, d: d}
}

// Name returns the worker's name.
func (w *Worker) Name() string { return w.name }

// Handle registers h for method with a one-line description for rpc.list.
// It panics when method is not a valid method name (dot-separated tokens of
// letters, digits, '_' and '-') or when called after Run started.
func (w *Worker) Handle(method, description string, h HandlerFunc) {
	if !ValidMethod(method) {
		panic(fmt.Sprintf("worker: invalid method name %q", method))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		panic("worker: Handle called after Run")
	}
	w.d.Register(method, h)
	w.methods = slices.DeleteFunc(w.methods, func(m rpcproto.MethodInfo) bool { return m.Name == method })
	w.methods = append(w.methods, rpcproto.MethodInfo{Name: method, Description: description, Worker: w.name})
}

// Methods returns what the worker announces, sorted by name.
func (w *Worker) Methods() []rpcproto.MethodInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := slices.Clone(w.methods)
	slices.SortFunc(ms, func(a, b rpcproto.MethodInfo) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// ValidMethod reports whether name can be served: non-empty dot-separated
// tokens of ASCII letters, digits, '_' and '-', so that it is also a valid
// NATS subject suffix. It is rpcproto.ValidMethod, the protocol's rule.
func ValidMethod(name string) bool { return rpcproto.ValidMethod(name) }

// Run serves the registered methods until ctx ends, then drains: it stops
// taking requests, waits for those in flight (up to DrainTimeout) and
// withdraws its announcement. It returns nil after a drain caused by ctx,
// and an error when it could not subscribe.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("worker: Run called twice")
	}
	w.running = true
	methods := slices.Clone(w.methods)
	w.mu.Unlock()

	// Handlers outlive ctx by up to DrainTimeout, so their context is
	// detached from it and cancelled only when the drain gives up.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	// inflight counts handlers; stopping (guarded by stopMu) makes sure no
	// handler is added once the drain has begun waiting.
	var (
		inflight sync.WaitGroup
		stopMu   sync.Mutex
		stopping bool
	)

	var subs []*nats.Subscription
	unsubscribe := func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
	}
	for _, m := range methods {
		s, err := w.nc.QueueSubscribe(rpcproto.SubjectRPCPrefix+m.Name, rpcproto.QueueWorkers, func(msg *nats.Msg) {
			stopMu.Lock()
			defer stopMu.Unlock()
			if stopping {
				return // delivered after we unsubscribed; the bridge times out
			}
			inflight.Go(func() { w.serve(hctx, msg) })
		})
		if err != nil {
			unsubscribe()
			return fmt.Errorf("worker: subscribing %s: %w", m.Name, err)
		}
		subs = append(subs, s)
	}
	disc, err := w.nc.Subscribe(rpcproto.SubjectDiscover, func(*nats.Msg) { w.announce(methods) })
	if err != nil {
		unsubscribe()
		return fmt.Errorf("worker: subscribing discover: %w", err)
	}
	subs = append(subs, disc)
	// Make sure the bridge hears the subscriptions before the announcement
	// that makes callers use them.
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	if err := w.nc.FlushWithContext(fctx); err != nil && ctx.Err() == nil {
		// Not fatal: with RetryOnFailedConnect the subscriptions are
		// sent when the connection comes up, and announced again then.
		w.log.Warn("flushing subscriptions", "err", err)
	}
	fcancel()
	// Announce again whenever the connection comes (back) up: a bridge that
	// restarted, or started after us, learns our methods that way too.
	status := w.nc.StatusChanged(nats.CONNECTED)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-status:
				if !ok {
					return
				}
				w.announce(methods)
			}
		}
	}()
	w.announce(methods)
	w.log.Info("worker running", "methods", len(methods))

	<-ctx.Done()

	w.nc.RemoveStatusListener(status)
	<-statusDone
	// Stop taking requests: a request already delivered to us is still
	// served; new ones go to other instances or get "no responders".
	unsubscribe()
	w.announce(nil)
	stopMu.Lock()
	stopping = true
	stopMu.Unlock()
	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	t := time.NewTimer(w.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		w.log.Warn("drain timed out; cancelling handlers", "timeout", w.opts.DrainTimeout)
		hcancel()
		<-done
	}
	if w.nc.IsConnected() {
		fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		w.nc.FlushWithContext(fctx)
		cancel()
	}
	w.log.Info("worker stopped")
	return nil
}

func (w *Worker) serve(ctx context.Context, msg *nats.Msg) {
	reply := w.d.Handle(ctx, msg.Data)
	if reply == nil || msg.Reply == "" {
		return
	}
	if err := msg.Respond(reply); err != nil {
		w.log.Warn("sending reply", "subject", msg.Subject, "err", err)
	}
}

func (w *Worker) announce(methods []rpcproto.MethodInfo) {
	b, err := json.Marshal(rpcproto.WorkerAnnounce{Worker: w.name, Methods: methods})
	if err != nil {
		return
	}
	if err := w.nc.Publish(rpcproto.SubjectAnnounce, b); err != nil {
		w.log.Warn("announcing", "err", err)
	}
}

// Call calls a cloud method through the bridge and decodes the result into
// result (unless nil). params must marshal to a JSON object or array, or be
// nil. A JSON-RPC error comes back as a *jsonrpc.Error: CodeDeviceOffline
// when the bridge has no session with the cloud or is not running.
func (w *Worker) Call(ctx context.Context, method string, params, result any) error {
	return call(ctx, w.nc, w.opts.CallTimeout, method, params, result)
}

// Call is Worker.Call for programs that only call the cloud and serve
// nothing. A ctx without a deadline gets 30s.
func Call(ctx context.Context, nc *nats.Conn, method string, params, result any) error {
	return call(ctx, nc, 30*time.Second, method, params, result)
}

func call(ctx context.Context, nc *nats.Conn, timeout time.Duration, method string, params, result any) error {
	if !ValidMethod(method) {
		return fmt.Errorf("worker: invalid method name %q", method)
	}
	var data []byte
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("worker: encoding params of %s: %w", method, err)
		}
		data = b
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	msg, err := nc.RequestWithContext(ctx, rpcproto.SubjectCloudPrefix+method, data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return &jsonrpc.Error{Code: rpcproto.CodeDeviceOffline, Message: "device offline: the bridge is not running"}
		}
		return fmt.Errorf("worker: calling %s: %w", method, err)
	}
	return decodeReply(method, msg.Data, result)
}

// decodeReply decodes a JSON-RPC response to method: its error as a
// *jsonrpc.Error, else its result into result (unless nil).
func decodeReply(method string, data []byte, result any) error {
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *jsonrpc.Error  `json:"error"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("worker: reply to %s: %w", method, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("worker: decoding result of %s: %w", method, err)
		}
	}
	return nil
}
