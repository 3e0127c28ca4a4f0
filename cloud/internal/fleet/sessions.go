package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the part of Service the device hub uses: registration,
// session bookkeeping and the holder's side of calls. None of it takes an
// Actor: the hub has verified the device's signature before calling.

// ErrUnknownEnrollment is returned by RegisterDevice for an enrollment
// token no organisation has.
var ErrUnknownEnrollment = errors.New("unknown enrollment token")

// Registration is a registration.register whose envelope signature has
// been verified with the key it presents.
type Registration struct {
	Params       rpcproto.RegisterParams
	PublicKeyDER []byte
	Fingerprint  string
	Alg          string
}

// RegisterOutcome is the decision about a registration.
type RegisterOutcome = store.RegisterOutcome

// RegisterDevice applies the registration rules (see store.Register) and
// publishes device.pending, device.key_changed or device.accepted.
func (s *Service) RegisterDevice(ctx context.Context, r Registration) (RegisterOutcome, error) {
	org := s.defOrg
	if r.Params.EnrollmentToken != "" {
		o, err := s.st.OrgByEnrollmentToken(ctx, r.Params.EnrollmentToken)
		if errors.Is(err, store.ErrNotFound) {
			return RegisterOutcome{}, ErrUnknownEnrollment
		}
		if err != nil {
			return RegisterOutcome{}, err
		}
		org = o.ID
	}
	out, err := s.st.Register(ctx, store.RegisterInput{DeviceID: r.Params.DeviceID, OrgID: org,
		PublicKeyDER: r.PublicKeyDER, Fingerprint: r.Fingerprint, Alg: r.Alg, Attributes: r.Params.Attributes})
	if err != nil {
		return out, err
	}
	data := mustJSON(map[string]string{"fingerprint": r.Fingerprint})
	switch {
	case out.NewKey && out.KeyChanged:
		s.log.Warn("device presented a new key", "device_id", r.Params.DeviceID, "fingerprint", r.Fingerprint)
		s.publish(Event{Type: EventDeviceKeyChanged, OrgID: out.OrgID, DeviceID: r.Params.DeviceID, Data: data})
	case out.NewKey:
		s.publish(Event{Type: EventDevicePending, OrgID: out.OrgID, DeviceID: r.Params.DeviceID, Data: data})
	}
	return out, nil
}

// PendingSlot reports whether org may hold one more live pending session.
func (s *Service) PendingSlot(ctx context.Context, org int64) (bool, error) {
	n, err := s.st.OnlinePending(ctx, org)
	return n < s.opts.MaxPendingPerOrg, err
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

// StateReported stores a device's inventory (the params of state.report).
func (s *Service) StateReported(ctx context.Context, deviceID string, inventory json.RawMessage) error {
	return s.st.SetInventory(ctx, deviceID, inventory)
}

// KeyStatus returns the current status of a key set.
func (s *Service) KeyStatus(ctx context.Context, keySetID int64) (string, error) {
	return s.st.KeyStatus(ctx, keySetID)
}

// ClaimQueued takes the device's oldest unexpired queued call for sending;
// false when there is none.
func (s *Service) ClaimQueued(ctx context.Context, deviceID string) (Call, bool, error) {
	c, err := s.st.ClaimQueued(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return c, false, nil
	}
	return c, err == nil, err
}

// Requeue returns a claimed persistent call that was never written to the
// device to the queue.
func (s *Service) Requeue(ctx context.Context, callID string) error {
	return s.st.Requeue(context.WithoutCancel(ctx), callID)
}

// MarkDelivered records that the call's websocket write completed.
func (s *Service) MarkDelivered(ctx context.Context, callID string) error {
	return s.st.MarkDelivered(ctx, callID)
}

// FinishCall records a call's outcome (unless it already has one), tells
// whoever waits for it and publishes call.finished. It returns the call as
// stored.
func (s *Service) FinishCall(ctx context.Context, callID, status string, result json.RawMessage, rpcErr *jsonrpc.Error) (Call, error) {
	return s.finish(ctx, callID, status, result, rpcErr)
}

// RPCError returns the application error of an rpcproto code with its
// stable message.
func RPCError(code int) *jsonrpc.Error { return rpcErr(code) }

// Touch records that the device was seen, if version is its live session.
func (s *Service) Touch(ctx context.Context, deviceID string, version int64) {
	if err := s.st.Touch(ctx, deviceID, version); err != nil && ctx.Err() == nil {
		s.log.Warn("updating last_seen", "device_id", deviceID, "err", err)
	}
}

// CallByID loads a call without an authorisation check (for the hub).
func (s *Service) CallByID(ctx context.Context, id string) (Call, error) {
	return s.st.GetCall(ctx, id)
}

// OnlineWithAcceptedKey reports whether the device holds a live session
// and has an accepted key set.
func (s *Service) OnlineWithAcceptedKey(ctx context.Context, deviceID string) (bool, error) {
	ks, err := s.st.ListKeySets(ctx, deviceID)
	if err != nil {
		return false, err
	}
	d, err := s.st.GetDevice(ctx, deviceID)
	if err != nil {
		return false, err
	}
	for _, k := range ks {
		if k.Status == store.KeyAccepted {
			return d.Online, nil
		}
	}
	return false, nil
}
