package fleet

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file holds the operator's decisions on a device's keys: accept,
// reject, preauthorise, decommission. Each is audited, tells the replica
// holding the device's session (keyDecision) and publishes an event.

// Errors of AcceptKey. Each is an ErrConflict, so callers that only know
// ErrConflict still answer 409.
var (
	// ErrNoPendingKey: the device has no pending key set to accept.
	ErrNoPendingKey = fmt.Errorf("%w: no pending key", ErrConflict)
	// ErrKeyNotPending: the key set named by fingerprint is not pending
	// (the device has it with another status, or not at all).
	ErrKeyNotPending = fmt.Errorf("%w: key not pending", ErrConflict)
	// ErrAmbiguousKey: no fingerprint was named and the device has more
	// than one pending key set; the error is an *AmbiguousKeyError listing
	// them.
	ErrAmbiguousKey = fmt.Errorf("%w: more than one pending key", ErrConflict)
)

// AmbiguousKeyError is the ErrAmbiguousKey of one device: its pending key
// sets, newest first. Its message is safe to show.
type AmbiguousKeyError struct {
	DeviceID     string
	Fingerprints []string
}

func (e *AmbiguousKeyError) Error() string { return e.PublicMessage() }

// PublicMessage lists the candidates.
func (e *AmbiguousKeyError) PublicMessage() string {
	return fmt.Sprintf("device %s has %d pending keys (%s): name the fingerprint of the one to accept",
		e.DeviceID, len(e.Fingerprints), strings.Join(e.Fingerprints, ", "))
}

// Unwrap returns ErrAmbiguousKey.
func (e *AmbiguousKeyError) Unwrap() error { return ErrAmbiguousKey }

// ValidFingerprint reports whether fp has the form keys.FingerprintDER
// writes: "SHA256:" and the unpadded base64 of 32 bytes.
func ValidFingerprint(fp string) bool {
	b64, ok := strings.CutPrefix(fp, "SHA256:")
	if !ok {
		return false
	}
	b, err := base64.RawStdEncoding.DecodeString(b64)
	return err == nil && len(b) == 32
}

// AcceptKey accepts one pending key set of a device and returns it as it
// is now. fingerprint names the key set the operator reviewed; "" means the
// device's only pending key set, and when it has several the answer is an
// *AmbiguousKeyError listing them, so that nobody accepts a key they were
// not shown. Every other pending key set of the device is rejected and a
// key set accepted before is revoked: their live sessions close (4003),
// and a live pending session using the accepted key is told auth.accepted
// at once, on whichever replica holds it. Errors carry a public message
// (see PublicMessage): ErrNotFound, ErrForbidden, ErrInvalid (malformed
// fingerprint), ErrNoPendingKey, ErrKeyNotPending, ErrAmbiguousKey.
func (s *Service) AcceptKey(ctx context.Context, a Actor, deviceID, fingerprint string) (KeySet, error) {
	if fingerprint != "" && !ValidFingerprint(fingerprint) {
		return KeySet{}, &PublicError{Kind: ErrInvalid,
			Msg: `fingerprint: want "SHA256:" and 43 base64 characters, as bosun device ID shows it`}
	}
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return KeySet{}, err
	}
	kc, err := s.st.Accept(ctx, deviceID, fingerprint)
	if err != nil {
		err = acceptError(deviceID, fingerprint, err)
		// A refusal (nothing or several pending, a key not pending)
		// changes nothing, the audit log included; a failure is recorded.
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			s.audit(ctx, d.OrgID, a, "device.accept", deviceID, "error", map[string]string{"fingerprint": fingerprint, "error": err.Error()})
		}
		return KeySet{}, err
	}
	k := *kc.Accepted
	s.audit(ctx, d.OrgID, a, "device.accept", deviceID, "ok",
		map[string]any{"fingerprint": k.Fingerprint, "revoked": nonNilList(kc.Revoked), "rejected": nonNilList(kc.Rejected)})
	s.keyDecision(kc.OrgID, deviceID, KeyMsg{Accepted: k.Fingerprint, Closed: kc.Closed})
	s.publish(Event{Type: EventDeviceAccepted, OrgID: d.OrgID, DeviceID: deviceID,
		Data: mustJSON(map[string]string{"fingerprint": k.Fingerprint})})
	return k, nil
}

// Accept is AcceptKey without a fingerprint: it accepts the device's only
// pending key set and refuses (ErrAmbiguousKey) when there are several.
//
// Deprecated: name what the operator reviewed with AcceptKey.
func (s *Service) Accept(ctx context.Context, a Actor, deviceID string) error {
	_, err := s.AcceptKey(ctx, a, deviceID, "")
	return err
}

// acceptError turns an error of store.Accept into one with a public
// message; the store's text stays in the chain, for the log.
func acceptError(deviceID, fingerprint string, err error) error {
	var amb *store.AmbiguousKeyError
	var knp *store.KeyNotPendingError
	switch {
	case errors.As(err, &amb):
		return &AmbiguousKeyError{DeviceID: deviceID, Fingerprints: amb.Fingerprints}
	case errors.As(err, &knp):
		msg := fmt.Sprintf("device %s has no key %s", deviceID, fingerprint)
		if knp.Status != "" {
			msg = fmt.Sprintf("key %s of device %s is %s, not pending", fingerprint, deviceID, knp.Status)
		}
		return &PublicError{Kind: ErrKeyNotPending, Msg: msg, Err: err}
	case errors.Is(err, store.ErrNoPendingKey):
		return &PublicError{Kind: ErrNoPendingKey, Msg: fmt.Sprintf("device %s has no pending key to accept", deviceID), Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &PublicError{Kind: ErrNotFound, Msg: fmt.Sprintf("device %q not found", deviceID), Err: err}
	}
	return fmt.Errorf("accepting device %s: %w", deviceID, err)
}

func nonNilList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// Reject rejects the device's pending key sets, or, when none is pending,
// its accepted key: a live session using a rejected key is closed with 4003
// within a second.
func (s *Service) Reject(ctx context.Context, a Actor, deviceID string) error {
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return err
	}
	kc, err := s.st.Reject(ctx, deviceID)
	if err != nil {
		s.audit(ctx, d.OrgID, a, "device.reject", deviceID, "error", map[string]string{"error": err.Error()})
		return mapStoreErr(err)
	}
	s.audit(ctx, d.OrgID, a, "device.reject", deviceID, "ok", map[string]any{"rejected": kc.Closed})
	s.keyDecision(kc.OrgID, deviceID, KeyMsg{Closed: kc.Closed})
	s.publish(Event{Type: EventDeviceRejected, OrgID: d.OrgID, DeviceID: deviceID})
	return nil
}

// Preauthorize records a public key (DER SPKI) that is accepted the first
// time the device presents it. The device is created in the actor's
// organisation when unknown.
func (s *Service) Preauthorize(ctx context.Context, a Actor, deviceID string, publicKeyDER []byte) error {
	if !ValidDeviceID(deviceID) {
		return fmt.Errorf("%w: device id: want %s", ErrInvalid, rpcproto.DeviceIDRule)
	}
	pub, err := keys.ParsePublicDER(publicKeyDER)
	if err != nil {
		return fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	alg, _ := keys.Alg(pub)
	fp := keys.FingerprintDER(publicKeyDER)
	org := a.OrgID
	if d, err := s.st.GetDevice(ctx, deviceID); err == nil {
		if !a.sees(d.OrgID) {
			// Ids are global: do not reveal that another org has it.
			return fmt.Errorf("%w: device id %s is taken", ErrConflict, deviceID)
		}
		org = d.OrgID
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if !a.operates(org) {
		return fmt.Errorf("%w: role %s may not preauthorise devices", ErrForbidden, a.Role)
	}
	kc, err := s.st.Preauthorize(ctx, org, deviceID, publicKeyDER, fp, alg)
	if err != nil {
		s.audit(ctx, org, a, "device.preauthorize", deviceID, "error", map[string]string{"fingerprint": fp, "error": err.Error()})
		return mapStoreErr(err)
	}
	s.audit(ctx, org, a, "device.preauthorize", deviceID, "ok", map[string]string{"fingerprint": fp})
	if kc.Accepted != nil {
		s.keyDecision(org, deviceID, KeyMsg{Accepted: kc.Accepted.Fingerprint, Closed: kc.Closed})
		s.publish(Event{Type: EventDeviceAccepted, OrgID: org, DeviceID: deviceID})
	}
	return nil
}

// Decommission revokes every key of a device and closes its session; the
// device's history (calls, audit rows, key sets) is kept. Admins only.
func (s *Service) Decommission(ctx context.Context, a Actor, deviceID string) error {
	d, err := s.operable(ctx, a, deviceID, true)
	if err != nil {
		return err
	}
	kc, err := s.st.Decommission(ctx, deviceID)
	if err != nil {
		s.audit(ctx, d.OrgID, a, "device.decommission", deviceID, "error", map[string]string{"error": err.Error()})
		return mapStoreErr(err)
	}
	s.audit(ctx, d.OrgID, a, "device.decommission", deviceID, "ok", map[string]any{"revoked": kc.Closed})
	s.keyDecision(kc.OrgID, deviceID, KeyMsg{Closed: kc.Closed})
	s.publish(Event{Type: EventDeviceDecommissioned, OrgID: d.OrgID, DeviceID: deviceID})
	return nil
}

// keyDecision tells whichever replica holds the device's session.
func (s *Service) keyDecision(org int64, deviceID string, m KeyMsg) {
	if m.Accepted == "" && len(m.Closed) == 0 {
		return
	}
	if err := s.nc.Publish(SubjectKey(org, deviceID), mustJSON(m)); err != nil {
		s.log.Error("publishing key decision", "device_id", deviceID, "err", err)
	}
}
