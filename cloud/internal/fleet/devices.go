package fleet

import (
	"context"
	"fmt"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/cloud/internal/tags"
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
		return nil, 0, invalidf("negative offset")
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
	return d, mayChange(a, d, admin)
}

// mayChange is operable's rule for a device already loaded (and seen by
// the actor): operators change devices, administrators (admin) more.
func mayChange(a Actor, d Device, admin bool) error {
	ok := a.operates(d.OrgID)
	if admin {
		ok = a.administers(d.OrgID)
	}
	if !ok {
		return fmt.Errorf("%w: role %s may not change device %s", ErrForbidden, a.Role, d.ID)
	}
	return nil
}

// SetTags replaces a device's tags. The rule is package tags' (at most 32,
// each 1-64 characters with no comma and no space at either end);
// duplicates are dropped.
func (s *Service) SetTags(ctx context.Context, a Actor, deviceID string, ts []string) error {
	d, err := s.operable(ctx, a, deviceID, false)
	if err != nil {
		return err
	}
	clean, err := tags.Check(ts)
	if err != nil {
		return invalidf("%v", err)
	}
	if err := s.st.SetTags(ctx, deviceID, clean); err != nil {
		return mapStoreErr(err)
	}
	s.audit(ctx, d.OrgID, a, "device.tags", deviceID, "ok", map[string]any{"tags": clean})
	return nil
}
