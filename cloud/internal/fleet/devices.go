package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// ValidDeviceID reports whether id is a valid device id.
func ValidDeviceID(id string) bool { return rpcproto.ValidDeviceID(id) }

// device loads a device the actor may see; another organisation's device
// is ErrNotFound.
func (s *Service) device(ctx context.Context, a Actor, id string) (Device, error) {
	if !ValidDeviceID(id) {
		return Device{}, fmt.Errorf("%w: device %q", ErrNotFound, id)
	}
	d, err := s.st.GetDevice(ctx, id)
	if err != nil {
		return d, mapStoreErr(err)
	}
	if !a.sees(d.OrgID) {
		return Device{}, fmt.Errorf("%w: device %s", ErrNotFound, id)
	}
	return d, nil
}

// ListDevices returns one page of the devices the actor may see and the
// total matching the filter.
func (s *Service) ListDevices(ctx context.Context, a Actor, f DeviceFilter) ([]Device, int, error) {
	if !a.Role.Valid() {
		return nil, 0, ErrForbidden
	}
	if f.Offset < 0 {
		return nil, 0, fmt.Errorf("%w: negative offset", ErrInvalid)
	}
	devs, n, err := s.st.ListDevices(ctx, store.DeviceFilter{OrgID: a.scope(), Status: f.Status, Online: f.Online,
		Tag: f.Tag, Text: f.Text, Limit: clampLimit(f.Limit), Offset: f.Offset})
	if devs == nil {
		devs = []Device{}
	}
	return devs, n, err
}

// GetDevice returns one device.
func (s *Service) GetDevice(ctx context.Context, a Actor, id string) (Device, error) {
	return s.device(ctx, a, id)
}

// ListKeySets returns the key sets of a device, newest first.
func (s *Service) ListKeySets(ctx context.Context, a Actor, deviceID string) ([]KeySet, error) {
	if _, err := s.device(ctx, a, deviceID); err != nil {
		return nil, err
	}
	ks, err := s.st.ListKeySets(ctx, deviceID)
	if ks == nil {
		ks = []KeySet{}
	}
	return ks, err
}

// Counts counts the devices the actor may see.
func (s *Service) Counts(ctx context.Context, a Actor) (Counts, error) {
	if !a.Role.Valid() {
		return Counts{}, ErrForbidden
	}
	return s.st.Counts(ctx, a.scope())
}

// operable loads a device the actor may operate on.
func (s *Service) operable(ctx context.Context, a Actor, id string, admin bool) (Device, error) {
	d, err := s.device(ctx, a, id)
	if err != nil {
		return d, err
	}
	ok := a.operates(d.OrgID)
	if admin {
		ok = a.administers(d.OrgID)
	}
	if !ok {
		return d, fmt.Errorf("%w: role %s may not change device %s", ErrForbidden, a.Role, id)
	}
	return d, nil
}

// Accept accepts the newest pending key set of a device. A live pending
// session using that key is told auth.accepted at once, on whichever
// replica holds it; a session using a key the acceptance replaced closes.
func (s *Service) Accept(ctx context.Context, a Actor, deviceID string) error {
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return err
	}
	kc, err := s.st.Accept(ctx, deviceID)
	if err != nil {
		s.audit(ctx, d.OrgID, a, "device.accept", deviceID, "error", map[string]string{"error": err.Error()})
		return mapStoreErr(err)
	}
	s.audit(ctx, d.OrgID, a, "device.accept", deviceID, "ok", map[string]any{"fingerprint": kc.Accepted.Fingerprint, "revoked": kc.Closed})
	s.keyDecision(kc.OrgID, deviceID, KeyMsg{Accepted: kc.Accepted.Fingerprint, Closed: kc.Closed})
	s.publish(Event{Type: EventDeviceAccepted, OrgID: d.OrgID, DeviceID: deviceID})
	return nil
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
		return fmt.Errorf("%w: device id must match %s", ErrInvalid, rpcproto.DeviceIDPattern)
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

// SetTags replaces a device's tags (at most 32, each 1-64 characters).
func (s *Service) SetTags(ctx context.Context, a Actor, deviceID string, tags []string) error {
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return err
	}
	if len(tags) > 32 {
		return fmt.Errorf("%w: at most 32 tags", ErrInvalid)
	}
	seen := map[string]bool{}
	clean := make([]string, 0, len(tags))
	for _, t := range tags {
		if len(t) == 0 || len(t) > 64 {
			return fmt.Errorf("%w: a tag has 1 to 64 characters", ErrInvalid)
		}
		if !seen[t] {
			seen[t] = true
			clean = append(clean, t)
		}
	}
	if err := s.st.SetTags(ctx, deviceID, clean); err != nil {
		return mapStoreErr(err)
	}
	s.audit(ctx, d.OrgID, a, "device.tags", deviceID, "ok", map[string]any{"tags": clean})
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
