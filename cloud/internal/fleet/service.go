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

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
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
	// table. Defaults to "replica".
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
	// out overdue ones, heart-beats, and marks offline the devices of
	// replicas that stopped heart-beating (after 3 intervals, at least 15s).
	// Defaults to 5s.
	SweepInterval time.Duration
	// DefaultOrg is the organisation of devices that name no enrollment
	// token. Defaults to "default" (created by the first migration).
	DefaultOrg string
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

	wg        sync.WaitGroup // owns the sweeper and the Subscribe goroutines
	closeOnce sync.Once
}

// New checks the options and loads the default organisation.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.NATS == nil {
		return nil, errors.New("fleet: Store and NATS are required")
	}
	if opts.CloudID == "" {
		opts.CloudID = "bosun-cloud"
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
	if opts.DefaultOrg == "" {
		opts.DefaultOrg = "default"
	}
	org, err := opts.Store.OrgByName(ctx, opts.DefaultOrg)
	if err != nil {
		return nil, fmt.Errorf("loading default organisation %q: %w", opts.DefaultOrg, err)
	}
	s := &Service{st: opts.Store, nc: opts.NATS, log: opts.Logger, opts: opts, defOrg: org.ID}
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

// Start marks offline the devices a previous run of this replica left
// online, records a heartbeat, and starts the sweeper.
func (s *Service) Start(ctx context.Context) error {
	refs, err := s.st.ResetReplica(ctx, s.opts.Replica)
	if err != nil {
		return fmt.Errorf("resetting replica %s: %w", s.opts.Replica, err)
	}
	for _, r := range refs {
		s.publish(Event{Type: EventDeviceDisconnected, OrgID: r.OrgID, DeviceID: r.ID})
	}
	if err := s.st.Heartbeat(ctx, s.opts.Replica); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	s.goOwned(s.sweepLoop)
	return nil
}

// EndSubscriptions closes every Subscribe channel, so that long-lived
// streams (server-sent events) end and an HTTP server can shut down while
// the rest of the service keeps working. Later Subscribe calls fail.
func (s *Service) EndSubscriptions() { s.subStop() }

// Close stops the sweeper and every Subscribe channel and waits for them.
// Safe to call twice.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		s.wg.Wait()
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
	if err := s.st.Heartbeat(ctx, s.opts.Replica); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	expired, err := s.st.ExpireQueued(ctx, rpcErr(rpcproto.CodeExpired))
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
	stale := 3 * s.opts.SweepInterval
	if stale < 15*time.Second {
		stale = 15 * time.Second
	}
	refs, err := s.st.OfflineStale(ctx, stale)
	if err != nil {
		return fmt.Errorf("offlining devices of stale replicas: %w", err)
	}
	for _, r := range refs {
		s.log.Info("device offline: replica stopped heart-beating", "device_id", r.ID)
		s.publish(Event{Type: EventDeviceDisconnected, OrgID: r.OrgID, DeviceID: r.ID})
	}
	if err := s.prunePending(ctx); err != nil {
		return fmt.Errorf("pruning pending registrations: %w", err)
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

// mapStoreErr turns store errors into the package's own.
func mapStoreErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNoPendingKey):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}
