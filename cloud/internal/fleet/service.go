package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/artifacts"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

// Options configure a Service. Store and NATS are required.
type Options struct {
	// Store holds the durable state. Required.
	Store *store.Store
	// NATS connects the replicas: call routing, evictions, events. Required.
	NATS *nats.Conn
	// CloudID is the cloud's signer name in envelopes. Defaults to "bosun-cloud".
	CloudID string
	// Replica names this replica in devices.replica and the replicas
	// table. Start takes the name for as long as the service runs: a second
	// live process with the same name cannot start. Defaults to "replica".
	Replica string
	// Logger receives the service's logs. nil means slog.Default().
	Logger *slog.Logger
	// MaxPendingPerOrg bounds the live sessions of pending devices per
	// organisation. Defaults to 1000.
	MaxPendingPerOrg int
	// MaxPendingPerAddr bounds the live pending sessions per source
	// address (an IPv6 address counts as its /64), so that a flood from one
	// address cannot take the organisation's slots. Defaults to 16.
	MaxPendingPerAddr int
	// MaxPendingDevices bounds the devices per organisation no operator
	// has decided on (every key set pending); a new device beyond it is
	// refused and stored nowhere. Defaults to 10000.
	MaxPendingDevices int
	// MaxNewPendingPerAddr bounds the undecided devices registrations from
	// one source address may create per hour. Defaults to 100.
	MaxNewPendingPerAddr int
	// MaxPendingKeys bounds the pending key sets per device; a further new
	// key is refused and stored nowhere. Defaults to 4.
	MaxPendingKeys int
	// PendingTTL is how long undecided devices and pending key sets are
	// kept without being seen; Sweep deletes them after it (a device with
	// an accepted key keeps its row). Defaults to 72h.
	PendingTTL time.Duration
	// SweepInterval is how often the sweeper expires queued calls, times
	// out overdue ones and prunes stale registrations and replicas.
	// Defaults to 5s. (The heartbeat and the janitor that ends the sessions
	// of dead replicas run every second, see Start.)
	SweepInterval time.Duration
	// ReplicaRetention is how long the row of a replica not heard from is
	// kept; the sweeper deletes it after that. Defaults to 24h.
	ReplicaRetention time.Duration
	// DefaultOrg is the organisation of devices that name no enrollment
	// token. Defaults to "default" (created by the first migration).
	DefaultOrg string
	// Artifacts stores OTA artifact bytes (see artifacts.go). nil means
	// the cloud stores none: uploads are refused, ota.latest fails.
	Artifacts *artifacts.Disk
	// DownloadTokenTTL is how long a device's download token is valid.
	// Defaults to DefaultDownloadTokenTTL (15m).
	DownloadTokenTTL time.Duration
	// PublicURL prefixes download URLs handed to devices. Empty means
	// a URL of the path alone, resolved by the device against its cloud.
	PublicURL string
	// Release holds the online snapshot and timestamp keys that sign
	// each organisation's release metadata (release.go). nil means the
	// cloud signs none: release uploads are refused and devices find no
	// metadata.
	Release *release.Online
	// ReleaseRefresh is how often snapshots and timestamps near their
	// expiry are re-signed. Defaults to DefaultReleaseRefresh (10m).
	ReleaseRefresh time.Duration
	// Deployments tune the deployments engine; the zero value means
	// every default (see DeploymentOptions).
	Deployments DeploymentOptions
	// Observer is told of finished calls and routing failures (package
	// metrics counts them). nil means nobody is.
	Observer Observer
}

// Service is the coordinator. Create it with New, start its sweeper with
// Start, stop it with Close.
type Service struct {
	st      *store.Store
	nc      *nats.Conn
	log     *slog.Logger
	opts    Options
	defOrg  int64
	stop    context.CancelFunc
	stopCtx context.Context
	subStop context.CancelFunc // ends every Subscribe channel
	subCtx  context.Context

	lock *store.ReplicaLock // this replica's name, held from Start to Close
	lost chan error         // receives once when the name is lost

	heldMu sync.Mutex // guards held
	held   func() []SessionRef

	wg        sync.WaitGroup // owns the sweeper, the heartbeat and the Subscribe goroutines
	closeOnce sync.Once

	throttled *auditOnce // which throttled logins were audited lately

	dlKeyMu sync.Mutex // guards dlKey
	dlKey   []byte     // the download token key, once loaded

	depWake chan struct{} // wakes the deployments engine; buffered 1

	local   localSessions      // the hub's sessions, for calls that need no NATS
	tokens  *tokenCache        // API tokens this replica looked up lately
	authSub *nats.Subscription // SubjectAuthChanged
}

// New checks the options and loads the default organisation.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.NATS == nil {
		return nil, errors.New("fleet: Store and NATS are required")
	}
	if opts.CloudID == "" {
		opts.CloudID = "bosun-cloud"
	}
	if opts.Observer == nil {
		opts.Observer = noObserver{}
	}
	if opts.Replica == "" {
		opts.Replica = "replica"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxPendingPerOrg <= 0 {
		opts.MaxPendingPerOrg = 1000
	}
	if opts.MaxPendingPerAddr <= 0 {
		opts.MaxPendingPerAddr = 16
	}
	if opts.MaxPendingDevices <= 0 {
		opts.MaxPendingDevices = 10000
	}
	if opts.MaxNewPendingPerAddr <= 0 {
		opts.MaxNewPendingPerAddr = 100
	}
	if opts.MaxPendingKeys <= 0 {
		opts.MaxPendingKeys = 4
	}
	if opts.PendingTTL <= 0 {
		opts.PendingTTL = 72 * time.Hour
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 5 * time.Second
	}
	if opts.ReplicaRetention <= 0 {
		opts.ReplicaRetention = 24 * time.Hour
	}
	if opts.ReleaseRefresh <= 0 {
		opts.ReleaseRefresh = DefaultReleaseRefresh
	}
	if opts.DownloadTokenTTL <= 0 {
		opts.DownloadTokenTTL = DefaultDownloadTokenTTL
	}
	opts.Deployments.defaults()
	if opts.DefaultOrg == "" {
		opts.DefaultOrg = "default"
	}
	org, err := opts.Store.OrgByName(ctx, opts.DefaultOrg)
	if err != nil {
		return nil, fmt.Errorf("loading default organisation %q: %w", opts.DefaultOrg, err)
	}
	s := &Service{st: opts.Store, nc: opts.NATS, log: opts.Logger, opts: opts, defOrg: org.ID, lost: make(chan error, 1),
		throttled: newAuditOnce(throttledAuditEvery, 4096), depWake: make(chan struct{}, 1), tokens: newTokenCache()}
	if s.authSub, err = s.subscribeAuthChanged(); err != nil {
		return nil, fmt.Errorf("subscribing to auth changes: %w", err)
	}
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.subCtx, s.subStop = context.WithCancel(s.stopCtx)
	return s, nil
}

// CloudID is the cloud's signer name.
func (s *Service) CloudID() string { return s.opts.CloudID }

// Replica is this replica's name.
func (s *Service) Replica() string { return s.opts.Replica }

// NATS is the connection the service routes over (the hub subscribes on it).
func (s *Service) NATS() *nats.Conn { return s.nc }

// Logger is the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

// Store exposes the store to the packages of later issues that add their own
// tables; handlers must go through Service methods.
func (s *Service) Store() *store.Store { return s.st }

// Ready checks the database and NATS.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.st.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if !s.nc.IsConnected() {
		return errors.New("nats: not connected")
	}
	return nil
}

// Start takes this replica's name, marks offline the devices a previous
// run of the same name left online, ends the sessions of replicas that
// stopped heart-beating, and starts the heartbeat (every second, with the
// janitor), the sweeper and the deployments engine. A name held by another live process is
// ErrReplicaTaken.
//
// Why a replica holds its name: the previous run of a name is dead once
// the name is free (its lock went with its database connection), so a
// restart may end that run's sessions at once; and two live processes
// sharing a name would end each other's.
func (s *Service) Start(ctx context.Context) error {
	lock, err := s.st.LockReplica(ctx, s.opts.Replica)
	if errors.Is(err, store.ErrReplicaTaken) {
		return fmt.Errorf("%w: %q is held by another live bosun-cloud process on this database; give this one another name (--replica, BOSUN_REPLICA)",
			ErrReplicaTaken, s.opts.Replica)
	}
	if err != nil {
		return fmt.Errorf("taking replica name %s: %w", s.opts.Replica, err)
	}
	refs, err := lock.Start(ctx)
	if err != nil {
		lock.Close()
		return err
	}
	s.lock = lock
	s.offline(refs, "its replica restarted")
	orphans, err := s.st.EndOrphanSessions(ctx)
	if err != nil {
		s.log.Warn("janitor", "err", err)
	}
	s.offline(orphans, "its replica is unknown")
	s.janitor(ctx)
	s.goOwned(s.heartbeatLoop)
	s.goOwned(s.sweepLoop)
	s.goOwned(s.releaseLoop)
	s.goOwned(s.deploymentLoop)
	return nil
}

// Lost receives an error, once, if this replica lost its name to another
// process (its database connection broke and another process took the
// name before it could take it back): the process must stop serving.
func (s *Service) Lost() <-chan error { return s.lost }

// EndSubscriptions closes every Subscribe channel, so that long-lived
// streams (server-sent events) end and an HTTP server can shut down while
// the rest of the service keeps working. Later Subscribe calls fail.
func (s *Service) EndSubscriptions() { s.subStop() }

// Close stops the sweeper, the heartbeat and every Subscribe channel and
// waits for them, marks offline any device still recorded on this replica,
// and releases the replica's name. Safe to call twice.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		s.wg.Wait()
		s.authSub.Unsubscribe()
		if s.lock == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		refs, err := s.st.ResetReplica(ctx, s.opts.Replica)
		if err != nil {
			s.log.Warn("marking this replica's devices offline", "err", err)
		}
		s.offline(refs, "its replica stopped")
		s.lock.Close()
	})
}

// goOwned runs fn in a goroutine that Close waits for.
func (s *Service) goOwned(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(s.stopCtx)
	}()
}

// heartbeatInterval is how often a replica heart-beats and runs the
// janitor: a quarter of store.ReplicaTimeout, so that three heartbeats in
// a row may be late before the others count this replica dead.
const heartbeatInterval = store.ReplicaTimeout / 4

// heartbeatLoop heart-beats and runs the janitor every heartbeatInterval.
func (s *Service) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, store.ReplicaTimeout/2)
		revived, err := s.lock.Heartbeat(hctx)
		cancel()
		switch {
		case errors.Is(err, store.ErrReplicaTaken):
			err = fmt.Errorf("%w: %q was taken by another process while this one had no database connection", ErrReplicaTaken, s.opts.Replica)
			s.log.Error("replica name lost: this process must stop", "replica", s.opts.Replica, "err", err)
			s.lost <- err
			return
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("heartbeat", "replica", s.opts.Replica, "err", err)
			}
		case revived:
			s.reassert(ctx)
		}
		s.janitor(ctx)
	}
}

// janitor ends the sessions of replicas whose heartbeat is stale and
// tells the dashboard (device.disconnected). Every replica runs it; the
// store makes sure each device is reported once.
func (s *Service) janitor(ctx context.Context) {
	refs, err := s.st.EndStaleSessions(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("janitor", "err", err)
	}
	s.offline(refs, "its replica stopped heart-beating")
}

// reassert claims again the live sessions of this replica after its
// heartbeat was late enough for the others to end them.
func (s *Service) reassert(ctx context.Context) {
	s.heldMu.Lock()
	held := s.held
	s.heldMu.Unlock()
	if held == nil {
		return
	}
	refs, err := s.st.ReassertSessions(ctx, s.opts.Replica, held())
	if err != nil {
		s.log.Warn("reasserting sessions", "err", err)
		return
	}
	if len(refs) > 0 {
		s.log.Warn("heartbeat was late: sessions ended by another replica claimed again", "replica", s.opts.Replica, "devices", len(refs))
	}
	for _, r := range refs {
		s.publish(Event{Type: EventDeviceConnected, OrgID: r.OrgID, DeviceID: r.ID,
			Data: mustJSON(map[string]any{"replica": s.opts.Replica})})
	}
}

// offline publishes device.disconnected for devices whose sessions the
// replica bookkeeping ended.
func (s *Service) offline(refs []store.DeviceRef, why string) {
	for _, r := range refs {
		s.log.Info("device offline: "+why, "device_id", r.ID)
		s.publish(Event{Type: EventDeviceDisconnected, OrgID: r.OrgID, DeviceID: r.ID})
	}
}

func (s *Service) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("sweep", "err", err)
			}
		}
	}
}

// Sweep runs one round of the sweeper; every statement is idempotent, so
// all replicas sweep and a restart never leaves a call stuck.
func (s *Service) Sweep(ctx context.Context) error {
	expired, err := s.st.ExpireQueued(ctx, rpcErr(rpcproto.CodeExpired), rpcproto.CodeExpired, expiredUnserved)
	if err != nil {
		return fmt.Errorf("expiring calls: %w", err)
	}
	timedOut, err := s.st.TimeoutOverdue(ctx, 2*time.Second, rpcErr(rpcproto.CodeTimeout))
	if err != nil {
		return fmt.Errorf("timing out calls: %w", err)
	}
	for _, c := range append(expired, timedOut...) {
		s.callFinished(c)
	}
	if err := s.prunePending(ctx); err != nil {
		return fmt.Errorf("pruning pending registrations: %w", err)
	}
	names, refs, err := s.st.PruneReplicas(ctx, s.opts.ReplicaRetention, s.opts.Replica)
	if err != nil {
		return err
	}
	if len(names) > 0 {
		s.log.Info("pruned replicas not heard from", "replicas", names, "retention", s.opts.ReplicaRetention.String())
	}
	s.offline(refs, "its replica was pruned")
	if err := s.SweepWebSessions(ctx); err != nil {
		return fmt.Errorf("sweeping web sessions: %w", err)
	}
	return nil
}

// rpcErr returns the application error of code with its stable message.
func rpcErr(code int) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: rpcproto.ErrorMessages[code]}
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// audit appends to the audit log; a failure is logged, never returned: the
// action already happened.
func (s *Service) audit(ctx context.Context, org int64, a Actor, action, target, outcome string, detail any) {
	var d json.RawMessage
	if detail != nil {
		d, _ = json.Marshal(detail)
	}
	err := s.st.InsertAudit(context.WithoutCancel(ctx), store.AuditEntry{
		OrgID: org, Actor: a.Name(), Action: action, Target: target, Outcome: outcome, Detail: d})
	if err != nil {
		s.log.Error("writing audit row", "action", action, "target", target, "err", err)
	}
}

// AuditLog lists audit rows visible to the actor, newest first.
func (s *Service) AuditLog(ctx context.Context, a Actor, f AuditFilter) ([]AuditEntry, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	return s.st.ListAudit(ctx, store.AuditFilter{OrgID: a.scope(), Actor: f.Actor, Action: f.Action,
		Target: f.Target, Limit: clampLimit(f.Limit), Before: f.Before, After: f.After})
}

// mapStoreErr turns store errors into the package's own, with a fixed
// public message: the store's text (a constraint name, say) stays in the
// chain, for the log. Callers that know better name the object themselves.
func mapStoreErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &PublicError{Kind: ErrNotFound, Msg: "not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &PublicError{Kind: ErrConflict, Msg: "this conflicts with an existing record", Err: err}
	}
	return err
}
