// Package bridge connects a device to the Bosun cloud: it holds the one
// websocket to the cloud, verifies every message that arrives on it, forwards
// the cloud's requests to workers over the device-local NATS, signs and
// forwards the workers' calls to the cloud, and keeps reports that must not
// be lost in an on-disk outbox.
//
// Device-local NATS contract (for workers; the worker package implements it):
//
//   - bosun.rpc.<method>, queue group "workers": the data is a JSON-RPC 2.0
//     request object exactly as the cloud sent it; the reply is a JSON-RPC
//     response object (the bridge re-stamps its id). Notifications are
//     published without a reply subject.
//   - bosun.cloud.<method>: the data is the params (a JSON object or array,
//     or empty); the reply is a JSON-RPC response object whose id is null.
//     bosun.cloud.ota.status goes through the outbox: the reply
//     {"queued":true,...} comes once the report is on disk.
//   - bosun.workers.announce: rpcproto.WorkerAnnounce; an empty method list
//     withdraws the worker. bosun.workers.discover: the bridge asks every
//     worker to announce again.
//
// Lifecycle: New starts NATS; Run keeps a session with the cloud until its
// ctx ends, reconnecting with jittered exponential backoff (while the key
// is rejected, at a fixed jittered interval instead, Options.RejectedRetry);
// Close stops everything and is safe to call twice.
package bridge

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	peer "github.com/bosunhq/bosun/pkg/session"
	"github.com/nats-io/nats.go"
)

// Status is where the bridge stands with the cloud.
type Status string

// The statuses, in the order a session goes through them.
const (
	StatusOffline    Status = "offline"
	StatusConnecting Status = "connecting"
	StatusPending    Status = "pending"
	StatusAccepted   Status = "accepted"
	StatusRejected   Status = "rejected"
)

// Bridge is one device's bridge. See the package doc.
type Bridge struct {
	opts   Options
	log    *slog.Logger
	key    crypto.Signer
	pubB64 string // base64 std DER SPKI of key
	fp     string // fingerprint of key
	sealer *envelope.Sealer
	bus    *bus
	reg    *registry
	outbox *outbox

	// ctx is cancelled by Close; it bounds Run and every handler.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // NATS-triggered handlers
	runMu  sync.Mutex     // held while Run runs, so Close can wait for it

	trust    atomic.Pointer[[]crypto.PublicKey] // the cloud keys a challenge may be signed by
	live     atomic.Pointer[session]            // the session whose handshake completed, or nil
	urlIndex atomic.Uint32                      // which of opts.cloudURLs Run dials next
	status   atomic.Value                       // Status

	rejectMu sync.Mutex // guards rejected
	rejected map[string]int
	recent   *recentSessions
	metrics  *metrics // nil without Options.Metrics

	closeOnce sync.Once
}

// own methods the bridge answers itself.
var ownMethods = []rpcproto.MethodInfo{
	{Name: rpcproto.MethodRPCList, Description: "List the methods this device serves", Worker: "bridge"},
}

// New prepares the data directory and the device key, starts the
// device-local NATS and subscribes to it. It does not connect to the cloud;
// Run does.
func New(ctx context.Context, opts Options) (*Bridge, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("bridge options: %w", err)
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	log := opts.Logger.With("device_id", opts.DeviceID)
	key := opts.Key
	if key == nil {
		k, created, err := keys.LoadOrGenerate(filepath.Join(opts.DataDir, datadir.KeyFile), opts.KeyAlg, 0)
		if err != nil {
			return nil, fmt.Errorf("device key: %w", err)
		}
		key = k
		if created {
			log.Info("generated device key", "path", filepath.Join(opts.DataDir, datadir.KeyFile), "alg", opts.KeyAlg)
		}
	}
	der, err := keys.PublicDER(key.Public())
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	// Written only when it differs: an fsynced write on every start costs
	// a simulated fleet of thousands of bridges minutes.
	pubPath := filepath.Join(opts.DataDir, datadir.PublicKeyFile)
	if old, err := keys.LoadPublic(pubPath); err != nil || !publicEqual(old, der) {
		if err := keys.SavePublic(pubPath, key.Public()); err != nil {
			return nil, fmt.Errorf("writing public key: %w", err)
		}
	}
	sealer, err := envelope.NewSealer(opts.DeviceID, key)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	sealer.Now = opts.Now
	ob, err := openOutbox(filepath.Join(opts.DataDir, datadir.OutboxDir))
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		opts:     opts,
		log:      log,
		key:      key,
		pubB64:   base64.StdEncoding.EncodeToString(der),
		fp:       keys.FingerprintDER(der),
		sealer:   sealer,
		reg:      newRegistry(),
		outbox:   ob,
		rejected: map[string]int{},
		recent:   &recentSessions{life: 2 * opts.Skew, max: 256, seen: map[string]time.Time{}},
	}
	b.status.Store(StatusOffline)
	trust, err := loadTrust(opts)
	if err != nil {
		return nil, err
	}
	b.trust.Store(&trust)
	if opts.Metrics {
		b.metrics = newMetrics(b)
	}
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if l := opts.Local; l != nil {
		// No NATS: the local worker is announced once, for good.
		b.bus = &bus{}
		ann, _ := json.Marshal(rpcproto.WorkerAnnounce{Worker: l.Name, Methods: l.Methods})
		b.reg.announce(ann)
		log.Debug("bridge ready", "fingerprint", b.fp, "local_worker", l.Name, "cloud_url", opts.CloudURL)
		return b, nil
	}
	b.bus, err = startBus(&b.opts, log)
	if err != nil {
		b.cancel()
		return nil, err
	}
	if err := b.subscribe(); err != nil {
		b.cancel()
		b.bus.close()
		return nil, err
	}
	log.Info("bridge ready", "fingerprint", b.fp, "nats_url", b.bus.url, "cloud_url", opts.CloudURL,
		"outbox", ob.len())
	return b, nil
}

// publicEqual reports whether pub's DER is der.
func publicEqual(pub crypto.PublicKey, der []byte) bool {
	d, err := keys.PublicDER(pub)
	return err == nil && bytes.Equal(d, der)
}

// Fingerprint returns the fingerprint of the device key.
func (b *Bridge) Fingerprint() string { return b.fp }

// NATSURL returns the URL of the device-local NATS; empty with
// Options.Local.
func (b *Bridge) NATSURL() string { return b.bus.url }

// Status returns where the bridge stands with the cloud.
func (b *Bridge) Status() Status { return b.status.Load().(Status) }

// Rejected returns how many messages from the cloud failed verification,
// by reason.
func (b *Bridge) Rejected() map[string]int {
	b.rejectMu.Lock()
	defer b.rejectMu.Unlock()
	m := make(map[string]int, len(b.rejected))
	for k, v := range b.rejected {
		m[k] = v
	}
	return m
}

// OutboxLen returns the number of reports waiting in the outbox.
func (b *Bridge) OutboxLen() int { return b.outbox.len() }

// Close stops Run, waits for it and for every handler, drains NATS and
// shuts the embedded server down. It is safe to call twice.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.runMu.Lock() // wait for Run
		b.runMu.Unlock()
		b.wg.Wait()
		b.bus.close()
		b.log.Info("bridge stopped")
	})
	return nil
}

// subscribe sets up the bridge's NATS subscriptions and asks running
// workers to announce themselves.
func (b *Bridge) subscribe() error {
	nc := b.bus.nc
	if _, err := nc.Subscribe(rpcproto.SubjectAnnounce, func(m *nats.Msg) {
		a, ok := b.reg.announce(m.Data)
		if !ok {
			b.log.Warn("ignoring malformed worker announcement")
			return
		}
		b.log.Info("worker announced", "worker", a.Worker, "methods", len(a.Methods))
	}); err != nil {
		return fmt.Errorf("subscribing announcements: %w", err)
	}
	if _, err := nc.Subscribe(rpcproto.SubjectCloudPrefix+">", func(m *nats.Msg) {
		b.goHandle(func() { b.serveCloudCall(m) })
	}); err != nil {
		return fmt.Errorf("subscribing cloud calls: %w", err)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("flushing NATS: %w", err)
	}
	if err := nc.Publish(rpcproto.SubjectDiscover, nil); err != nil {
		return fmt.Errorf("asking workers to announce: %w", err)
	}
	return nil
}

// goHandle runs fn in a goroutine the bridge waits for on Close.
func (b *Bridge) goHandle(fn func()) {
	if b.ctx.Err() != nil {
		return
	}
	b.wg.Go(fn)
}

// Run keeps a session with the cloud until ctx ends (or Close is called),
// reconnecting with jittered exponential backoff. It returns nil then.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.runMu.TryLock() {
		return errors.New("bridge: Run called twice")
	}
	defer b.runMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	attempt := 0
	for ctx.Err() == nil {
		b.metrics.connecting()
		res := b.connectOnce(ctx)
		if ctx.Err() != nil {
			break
		}
		failed := b.cloudURL()
		b.nextCloudURL()
		var delay time.Duration
		switch {
		case res.rejected:
			// A fixed interval, not a growing one: an operator may accept
			// the key again at any time (see Options.RejectedRetry).
			b.status.Store(StatusRejected)
			delay = rejectedBackoff(b.opts).Delay(0)
		default:
			b.status.Store(StatusOffline)
			if res.accepted && res.lasted >= b.opts.HealthyAfter {
				attempt = 0
			}
			delay = b.opts.Backoff.Delay(attempt)
			attempt++
		}
		if errors.Is(res.err, ErrCloudCertUntrusted) {
			// A configuration problem no retry fixes by itself: say so loudly.
			b.log.Error("cannot connect: the cloud's TLS certificate is not trusted; trust the CA that signed it "+
				"(bosun-bridge --cloud-ca, BOSUN_CLOUD_CA) or give the cloud a certificate this system trusts",
				"cloud_url", failed, "err", res.err)
		}
		b.log.Info("reconnecting after backoff", "delay_ms", delay.Milliseconds(), "attempt", attempt,
			"rejected", res.rejected, "err", res.err, "cloud_url", failed, "next_cloud_url", b.cloudURL())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	b.status.Store(StatusOffline)
	return nil
}

// rejectedBackoff is the schedule while the key is rejected: every wait
// uniform in [RejectedRetry/2, RejectedRetry].
func rejectedBackoff(o Options) Backoff {
	return Backoff{Min: o.RejectedRetry / 2, Base: o.RejectedRetry, Cap: o.RejectedRetry, Rand: o.Backoff.Rand}
}

// forwardRequest serves one cloud → device request or notification (not a
// batch): rpc.list here, everything else through NATS. It returns the
// response to send, or nil for a notification.
func (b *Bridge) forwardRequest(ctx context.Context, raw []byte) []byte {
	req, perr := jsonrpc.ParseRequest(raw)
	if perr != nil {
		return mustResponse(req.ID, nil, asRPCError(perr))
	}
	log := b.log.With("method", req.Method)
	if req.Method == rpcproto.MethodRPCList {
		if req.IsNotification() {
			return nil
		}
		// Params: none (docs/protocol.md §9.5): any member is -32602.
		if err := jsonrpc.DecodeParams(req.Params, &struct{}{}); err != nil {
			return mustResponse(req.ID, nil, asRPCError(err))
		}
		return mustResponse(req.ID, rpcproto.RPCListResult{Methods: b.reg.methods(ownMethods)}, nil)
	}
	if l := b.opts.Local; l != nil {
		return l.Dispatcher.HandleOne(ctx, raw)
	}
	subj := rpcproto.SubjectRPCPrefix + req.Method
	if !rpcproto.ValidMethod(req.Method) {
		if req.IsNotification() {
			return nil
		}
		return mustResponse(req.ID, nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "Method not found", map[string]string{"method": req.Method}))
	}
	if req.IsNotification() {
		if err := b.bus.nc.Publish(subj, raw); err != nil {
			log.Warn("forwarding notification", "err", err)
		}
		return nil
	}
	start := time.Now()
	status := callOK
	defer b.metrics.served(req.Method, start, &status)
	wctx, cancel := context.WithTimeout(ctx, b.opts.WorkerTimeout)
	defer cancel()
	msg, err := b.bus.nc.RequestWithContext(wctx, subj, raw)
	dur := time.Since(start)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		status = callNoWorker
		log.Info("no worker serves method")
		return mustResponse(req.ID, nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "Method not found", map[string]string{"method": req.Method}))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		status = callTimeout
		log.Warn("worker timeout", "timeout_ms", b.opts.WorkerTimeout.Milliseconds())
		return mustResponse(req.ID, nil, &jsonrpc.Error{Code: rpcproto.CodeWorkerTimeout,
			Message: fmt.Sprintf("worker timeout: no worker answered %s within %s", req.Method, b.opts.WorkerTimeout)})
	case err != nil:
		status = callUnavailable
		log.Warn("forwarding request", "err", err)
		return mustResponse(req.ID, nil, &jsonrpc.Error{Code: rpcproto.CodeUnavailable, Message: "unavailable: device bus: " + err.Error()})
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *jsonrpc.Error  `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil || (resp.Error == nil && resp.Result == nil) {
		status = callInvalid
		log.Warn("worker sent an invalid reply", "err", err)
		return mustResponse(req.ID, nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "Internal error", map[string]string{"detail": "invalid reply from worker"}))
	}
	log.Debug("worker answered", "duration_ms", dur.Milliseconds(), "err", resp.Error != nil)
	if resp.Error != nil {
		status = callError
		return mustResponse(req.ID, nil, resp.Error)
	}
	out := mustResponse(req.ID, resp.Result, nil)
	// The signed meta block adds well under 2 KiB, even for RSA-4096.
	if len(out) > b.opts.MaxMessageSize-2048 {
		status = callTooLarge
		log.Warn("worker result too large for an envelope", "bytes", len(out))
		return mustResponse(req.ID, nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "Internal error",
			map[string]any{"detail": "result too large", "bytes": len(out), "limit": b.opts.MaxMessageSize - 2048}))
	}
	return out
}

// serveCloudCall serves a worker's request on bosun.cloud.<method>.
func (b *Bridge) serveCloudCall(m *nats.Msg) {
	method := strings.TrimPrefix(m.Subject, rpcproto.SubjectCloudPrefix)
	reply := func(result any, e *jsonrpc.Error) {
		if m.Reply == "" {
			return
		}
		if err := m.Respond(mustResponse(nil, result, e)); err != nil {
			b.log.Warn("replying to worker", "method", method, "err", err)
		}
	}
	params := json.RawMessage(m.Data)
	if len(strings.TrimSpace(string(params))) == 0 {
		params = nil
	} else if c := strings.TrimSpace(string(params))[0]; (c != '{' && c != '[') || !json.Valid(params) {
		reply(nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params", map[string]string{"detail": "params must be a JSON object or array"}))
		return
	}
	if method == rpcproto.MethodOTAStatus {
		name, again, err := b.outbox.enqueue(method, params, b.opts.Now())
		if err != nil {
			b.log.Error("outbox enqueue", "method", method, "err", err)
			reply(nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "Internal error", map[string]string{"detail": "outbox: " + err.Error()}))
			return
		}
		b.log.Info("report queued", "method", method, "entry", name, "again", again)
		reply(map[string]any{"queued": true, "entry": name}, nil)
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.CloudCallTimeout)
	defer cancel()
	result, e := b.callCloud(ctx, method, params)
	reply(result, e)
}

// callCloud calls the cloud over the live session.
func (b *Bridge) callCloud(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *jsonrpc.Error) {
	s := b.live.Load()
	if s == nil {
		return nil, &jsonrpc.Error{Code: rpcproto.CodeDeviceOffline, Message: "device offline: the bridge has no session with the cloud"}
	}
	if !s.isAccepted() && !rpcproto.PendingOnlyMethods[method] {
		return nil, &jsonrpc.Error{Code: rpcproto.CodeNotAccepted, Message: "device not accepted: the cloud has not accepted this device's key yet"}
	}
	res, err := s.peer.CallRaw(ctx, method, params)
	if err == nil {
		return res, nil
	}
	var re *jsonrpc.Error
	switch {
	case errors.As(err, &re):
		return nil, re
	case errors.Is(err, jsonrpc.ErrClosed) || errors.Is(err, peer.ErrClosed):
		return nil, &jsonrpc.Error{Code: rpcproto.CodeDeviceOffline, Message: "device offline: the connection to the cloud was lost"}
	case errors.Is(err, context.DeadlineExceeded):
		return nil, &jsonrpc.Error{Code: rpcproto.CodeTimeout, Message: "timeout: the cloud did not answer " + method}
	default:
		b.log.Warn("calling cloud", "method", method, "err", err)
		return nil, &jsonrpc.Error{Code: rpcproto.CodeDeviceOffline, Message: "device offline: " + err.Error()}
	}
}

// stateReport is what state.report sends now.
func (b *Bridge) stateReport() rpcproto.StateReportParams {
	host, _ := os.Hostname()
	versions := map[string]string{"bridge": Version, "go": runtime.Version()}
	for k, v := range b.opts.Versions {
		versions[k] = v
	}
	return rpcproto.StateReportParams{
		Hostname:   host,
		OS:         osName(),
		Arch:       runtime.GOARCH,
		Versions:   versions,
		Workers:    b.reg.workerNames(),
		Methods:    b.reg.methods(ownMethods),
		Attributes: b.opts.Attributes,
	}
}

// osName returns PRETTY_NAME from /etc/os-release, or GOOS.
func osName() string {
	data, err := os.ReadFile("/etc/os-release")
	if err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return runtime.GOOS
}

// mustResponse encodes a response; id nil means null.
func mustResponse(id json.RawMessage, result any, e *jsonrpc.Error) []byte {
	r := jsonrpc.Response{JSONRPC: jsonrpc.Version, ID: id, Error: e}
	if e == nil {
		raw, ok := result.(json.RawMessage)
		if !ok {
			b, err := json.Marshal(result)
			if err != nil {
				r.Error = jsonrpc.NewError(jsonrpc.CodeInternalError, "Internal error", nil)
			}
			raw = b
		}
		r.Result = raw
	}
	if len(r.ID) == 0 {
		r.ID = json.RawMessage("null")
	}
	out, err := json.Marshal(r)
	if err != nil {
		return []byte(`{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":null}`)
	}
	return out
}

func asRPCError(err error) *jsonrpc.Error {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e
	}
	return jsonrpc.NewError(jsonrpc.CodeInternalError, "Internal error", nil)
}

// count records a message or handshake refused, by reason.
func (b *Bridge) count(reason string) {
	b.rejectMu.Lock()
	b.rejected[reason]++
	b.rejectMu.Unlock()
}

// recentSessions remembers the sessions of the challenges this bridge
// accepted lately, so that a recorded challenge replayed to it (by someone
// between it and the cloud, within the clock skew) is refused: the device
// would otherwise register in a session whose cloud messages the replayer
// holds. A session only has to be remembered as long as the skew check
// would pass its challenge; a bridge connects at most a few times a minute,
// so the set stays tiny, and it is bounded anyway.
type recentSessions struct {
	life time.Duration
	max  int

	mu   sync.Mutex // guards seen
	seen map[string]time.Time
}

// add records session at now and reports whether it was new.
func (r *recentSessions) add(session string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, t := range r.seen {
		if now.Sub(t) > r.life {
			delete(r.seen, k)
		}
	}
	if _, ok := r.seen[session]; ok {
		return false
	}
	if len(r.seen) >= r.max {
		// Forget the oldest: by construction it is older than any
		// challenge a full set could have been made of.
		var oldest string
		for k, t := range r.seen {
			if oldest == "" || t.Before(r.seen[oldest]) {
				oldest = k
			}
		}
		delete(r.seen, oldest)
	}
	r.seen[session] = now
	return true
}
