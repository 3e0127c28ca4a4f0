package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the part of Service the device hub uses for session
// bookkeeping (registration is Admit, in registration.go; the holder's side
// of calls is Deliver, in holder.go). None of it takes an Actor: the hub
// has verified the device's signature before calling.

// Registration is a registration.register whose envelope signature has
// been verified with the key it presents.
type Registration struct {
	Params       rpcproto.RegisterParams
	PublicKeyDER []byte
	Fingerprint  string
	Alg          string
}

// SessionStarted records that this replica now holds the device's one live
// session and tells every replica, so that an older session anywhere closes
// with 4009. It returns the session's version.
func (s *Service) SessionStarted(ctx context.Context, org int64, deviceID string) (int64, error) {
	v, err := s.st.StartSession(ctx, deviceID, s.opts.Replica)
	if err != nil {
		return 0, fmt.Errorf("starting session of %s: %w", deviceID, err)
	}
	if err := s.nc.Publish(SubjectEvict(org, deviceID), mustJSON(EvictMsg{Version: v, Replica: s.opts.Replica})); err != nil {
		s.log.Error("publishing eviction", "device_id", deviceID, "err", err)
	}
	s.publish(Event{Type: EventDeviceConnected, OrgID: org, DeviceID: deviceID,
		Data: mustJSON(map[string]any{"replica": s.opts.Replica, "session_version": v})})
	return v, nil
}

// SessionEnded marks the device offline unless a newer session has taken
// over (an evicted session's late disconnect changes nothing).
func (s *Service) SessionEnded(ctx context.Context, org int64, deviceID string, version int64) error {
	ok, err := s.st.EndSession(context.WithoutCancel(ctx), deviceID, version)
	if err != nil {
		return err
	}
	if ok {
		s.publish(Event{Type: EventDeviceDisconnected, OrgID: org, DeviceID: deviceID})
	}
	return nil
}

// KeyStatus returns the current status of a key set.
func (s *Service) KeyStatus(ctx context.Context, keySetID int64) (string, error) {
	return s.st.KeyStatus(ctx, keySetID)
}

// ClaimQueued takes the device's oldest unexpired queued call that q
// allows (see Served) for sending; false when there is none.
func (s *Service) ClaimQueued(ctx context.Context, deviceID string, q *Served) (Call, bool, error) {
	if !q.Ready() {
		return Call{}, false, nil
	}
	// The filter is a snapshot: a call the device answered -32601 while
	// the claim was under way (marked unserved, then queued again) can be
	// claimed with a filter taken before the mark. It goes straight back
	// to the queue unsent, and the claim is tried again with the mark in
	// the filter (a bounded number of times: each retry adds a method).
	for range 8 {
		c, err := s.st.ClaimQueued(ctx, deviceID, q.filter())
		if errors.Is(err, store.ErrNotFound) {
			return c, false, nil
		}
		if err != nil {
			return c, false, err
		}
		if q.Allows(c.Method) {
			return c, true, nil
		}
		if err := s.st.Requeue(ctx, c.ID); err != nil {
			return Call{}, false, err
		}
	}
	return Call{}, false, nil
}

// SessionRef names a live session a replica holds: the device and the
// session's version.
type SessionRef = store.SessionRef

// SetHeldSessions gives the service a way to list the sessions this replica
// holds (the hub's), so that a replica declared dead by the others while it
// was merely slow can claim its live sessions again when its heartbeat
// comes back. nil means none.
func (s *Service) SetHeldSessions(fn func() []SessionRef) {
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	s.held = fn
}

// Requeue returns a claimed persistent call that was never written to the
// device to the queue.
func (s *Service) Requeue(ctx context.Context, callID string) error {
	return s.st.Requeue(context.WithoutCancel(ctx), callID)
}

// RPCError returns the application error of an rpcproto code with its
// stable message.
func RPCError(code int) *jsonrpc.Error { return rpcErr(code) }

// Touch records that the device was seen, if version is its live session.
// TouchMany is Touch for many sessions at once (the hub's watch).
func (s *Service) TouchMany(ctx context.Context, refs []store.SessionRef) {
	if err := s.st.TouchMany(ctx, refs); err != nil && ctx.Err() == nil {
		s.log.Warn("updating last_seen", "sessions", len(refs), "err", err)
	}
}

// KeyStatuses returns the status of each key set of ids that exists.
func (s *Service) KeyStatuses(ctx context.Context, ids []int64) (map[int64]string, error) {
	return s.st.KeyStatuses(ctx, ids)
}

func (s *Service) Touch(ctx context.Context, deviceID string, version int64) {
	if err := s.st.Touch(ctx, deviceID, version); err != nil && ctx.Err() == nil {
		s.log.Warn("updating last_seen", "device_id", deviceID, "err", err)
	}
}
