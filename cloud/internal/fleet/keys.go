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
	// ErrNoPendingKey: the device has no key set to accept (none pending,
	// and none rejected that could be, see AcceptKey).
	ErrNoPendingKey = fmt.Errorf("%w: no pending key", ErrConflict)
	// ErrKeyNotPending: the key set named by fingerprint may not be
	// accepted: it is accepted already, revoked, preauthorised, or not a
	// key of the device (or, for AcceptPendingKey, rejected).
	ErrKeyNotPending = fmt.Errorf("%w: key not pending", ErrConflict)
	// ErrAmbiguousKey: no fingerprint was named and the device has more
	// than one key set that could be accepted; the error is an
	// *AmbiguousKeyError listing them.
	ErrAmbiguousKey = fmt.Errorf("%w: more than one pending key", ErrConflict)
)

// AmbiguousKeyError is the ErrAmbiguousKey of one device: the key sets
// that could be accepted, newest first, and the status of each (pending or
// rejected; nil means all pending). Its message is safe to show.
type AmbiguousKeyError struct {
	DeviceID     string
	Fingerprints []string
	Statuses     []string
}

func (e *AmbiguousKeyError) Error() string { return e.PublicMessage() }

// PublicMessage lists the candidates.
func (e *AmbiguousKeyError) PublicMessage() string {
	pending := true
	for _, st := range e.Statuses {
		pending = pending && st == store.KeyPending
	}
	if pending {
		return fmt.Sprintf("device %s has %d pending keys (%s): name the fingerprint of the one to accept",
			e.DeviceID, len(e.Fingerprints), strings.Join(e.Fingerprints, ", "))
	}
	l := make([]string, len(e.Fingerprints))
	for i, fp := range e.Fingerprints {
		l[i] = fp + " " + e.Statuses[i]
	}
	return fmt.Sprintf("device %s has %d keys that could be accepted (%s): name the fingerprint of the one to accept",
		e.DeviceID, len(e.Fingerprints), strings.Join(l, ", "))
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

// AcceptKey accepts a key set of a device, pending or rejected, and
// returns it as it is now: a rejection is reversible, a revocation is
// final (revoking is what decommissioning and key rotation do: the old key
// may be in someone else's hands). fingerprint names the key set the
// operator reviewed; "" means the device's only candidate: its pending key
// sets and, while it has no accepted key, its rejected ones (a rejected key
// never silently replaces an accepted one). With several candidates the
// answer is an *AmbiguousKeyError listing them, so that nobody accepts a key
// they were not shown. Every other pending key set of the device is
// rejected and a key set accepted before is revoked: their live sessions
// close (4003), and a live pending session using the accepted key is told
// auth.accepted at once, on whichever replica holds it; a device whose
// rejected key is accepted again is accepted the next time it connects
// (the reference bridge retries every 10 s while rejected). Errors carry a
// public message (see PublicMessage): ErrNotFound, ErrForbidden,
// ErrInvalid (malformed fingerprint), ErrNoPendingKey, ErrKeyNotPending,
// ErrAmbiguousKey, ErrConflict (a decommissioned device).
func (s *Service) AcceptKey(ctx context.Context, a Actor, deviceID, fingerprint string) (KeySet, error) {
	return s.acceptKey(ctx, a, deviceID, fingerprint, false)
}

// AcceptPendingKey is AcceptKey for a key set that must still be pending: a
// page that listed a pending key, which someone rejected since, must not
// bring it back (the named key is then ErrKeyNotPending, and without a
// fingerprint only pending key sets are candidates).
func (s *Service) AcceptPendingKey(ctx context.Context, a Actor, deviceID, fingerprint string) (KeySet, error) {
	return s.acceptKey(ctx, a, deviceID, fingerprint, true)
}

func (s *Service) acceptKey(ctx context.Context, a Actor, deviceID, fingerprint string, pendingOnly bool) (KeySet, error) {
	if fingerprint != "" && !ValidFingerprint(fingerprint) {
		return KeySet{}, invalidf(`fingerprint: want "SHA256:" and 43 base64 characters, as bosun device ID shows it`)
	}
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return KeySet{}, err
	}
	kc, err := s.st.Accept(ctx, store.AcceptInput{DeviceID: deviceID, Fingerprint: fingerprint, PendingOnly: pendingOnly, Actor: a.Name()})
	if err != nil {
		err = acceptError(deviceID, fingerprint, pendingOnly, err)
		// A refusal (nothing or several to accept, a key that may not be)
		// changes nothing, the audit log included; a failure is recorded.
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			s.audit(ctx, d.OrgID, a, "device.accept", deviceID, "error",
				map[string]string{"fingerprint": fingerprint, "error": s.auditError("device.accept", deviceID, err)})
		}
		return KeySet{}, err
	}
	k := *kc.Accepted
	s.audit(ctx, d.OrgID, a, "device.accept", deviceID, "ok",
		map[string]any{"fingerprint": k.Fingerprint, "was": kc.Was, "revoked": nonNilList(kc.Revoked), "rejected": nonNilList(kc.Rejected)})
	s.keyDecision(kc.OrgID, deviceID, KeyMsg{Accepted: k.Fingerprint, Closed: kc.Closed})
	s.publish(Event{Type: EventDeviceAccepted, OrgID: d.OrgID, DeviceID: deviceID,
		Data: mustJSON(map[string]string{"fingerprint": k.Fingerprint})})
	return k, nil
}

// Accept is AcceptKey without a fingerprint: it accepts the device's only
// candidate and refuses (ErrAmbiguousKey) when there are several.
//
// Deprecated: name what the operator reviewed with AcceptKey.
func (s *Service) Accept(ctx context.Context, a Actor, deviceID string) error {
	_, err := s.AcceptKey(ctx, a, deviceID, "")
	return err
}

// acceptError turns an error of store.Accept into one with a public
// message; the store's text stays in the chain, for the log.
func acceptError(deviceID, fingerprint string, pendingOnly bool, err error) error {
	var amb *store.AmbiguousKeyError
	var knp *store.KeyNotPendingError
	var none *store.NothingToAcceptError
	switch {
	case errors.As(err, &amb):
		return &AmbiguousKeyError{DeviceID: deviceID, Fingerprints: amb.Fingerprints, Statuses: amb.Statuses}
	case errors.As(err, &knp):
		var msg string
		switch knp.Status {
		case "":
			msg = fmt.Sprintf("device %s has no key %s", deviceID, fingerprint)
		case store.KeyAccepted:
			msg = fmt.Sprintf("key %s of device %s is accepted already", fingerprint, deviceID)
		case store.KeyRevoked:
			msg = fmt.Sprintf("key %s of device %s is revoked, and a revoked key is never accepted again: "+
				"the device must register with a new key", fingerprint, deviceID)
		case store.KeyRejected:
			// Only AcceptPendingKey refuses a rejected key.
			msg = fmt.Sprintf("key %s of device %s is rejected, not pending", fingerprint, deviceID)
		default:
			msg = fmt.Sprintf("key %s of device %s is %s, not pending", fingerprint, deviceID, knp.Status)
		}
		return &PublicError{Kind: ErrKeyNotPending, Msg: msg, Err: err}
	case errors.As(err, &none):
		msg := fmt.Sprintf("device %s has no pending or rejected key to accept", deviceID)
		switch {
		case pendingOnly:
			msg = fmt.Sprintf("device %s has no pending key to accept", deviceID)
		case none.Accepted != "":
			msg = fmt.Sprintf("device %s has no pending key to accept: its key %s is accepted", deviceID, none.Accepted)
		}
		return &PublicError{Kind: ErrNoPendingKey, Msg: msg, Err: err}
	case errors.Is(err, store.ErrDecommissioned):
		return &PublicError{Kind: ErrConflict, Err: err,
			Msg: fmt.Sprintf("device %s is decommissioned: it comes back by registering with a new key (or a preauthorised one)", deviceID)}
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
// within a second. A rejection is reversible: AcceptKey accepts a rejected
// key again.
func (s *Service) Reject(ctx context.Context, a Actor, deviceID string) error {
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return err
	}
	kc, err := s.st.Reject(ctx, deviceID, a.Name())
	if err != nil {
		err = mapStoreErr(err)
		s.audit(ctx, d.OrgID, a, "device.reject", deviceID, "error", map[string]string{"error": s.auditError("device.reject", deviceID, err)})
		return err
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
		return invalidf("device id: want %s", rpcproto.DeviceIDRule)
	}
	pub, err := keys.ParsePublicDER(publicKeyDER)
	if err != nil {
		return &PublicError{Kind: ErrInvalid, Err: err,
			Msg: fmt.Sprintf("public key: not a usable DER SPKI key (Ed25519, or RSA of at least %d bits)", keys.MinRSABits)}
	}
	alg, _ := keys.Alg(pub)
	fp := keys.FingerprintDER(publicKeyDER)
	org := a.OrgID
	if d, err := s.st.GetDevice(ctx, deviceID); err == nil {
		if !a.sees(d.OrgID) {
			// Ids are global: do not reveal that another org has it.
			return conflictf("device id %s is taken", deviceID)
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
		err = mapStoreErr(err)
		s.audit(ctx, org, a, "device.preauthorize", deviceID, "error",
			map[string]string{"fingerprint": fp, "error": s.auditError("device.preauthorize", deviceID, err)})
		return err
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
		err = mapStoreErr(err)
		s.audit(ctx, d.OrgID, a, "device.decommission", deviceID, "error",
			map[string]string{"error": s.auditError("device.decommission", deviceID, err)})
		return err
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
