package fleet

import (
	"context"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// PendingKey is one pending key set and its device; Pending counts the
// pending key sets of the device (more than one: the operator must pick).
type PendingKey = store.PendingKey

// PendingKeys lists, newest first, the pending key sets of the devices in
// the organisations the actor looks at (see ListDevicesIn), one entry per
// key set; total counts them all. Limit 0 means 50; at most 500.
func (s *Service) PendingKeys(ctx context.Context, a Actor, org int64, limit int) ([]PendingKey, int, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, 0, err
	}
	ps, n, err := s.st.PendingKeys(ctx, scope, clampLimit(limit))
	if ps == nil {
		ps = []PendingKey{}
	}
	return ps, n, err
}

// RejectedKey is one rejected key set and its device, with who rejected it
// and when; DeviceAccepted means accepting it revokes the device's
// accepted key.
type RejectedKey = store.RejectedKey

// RejectedKeys lists, newest decision first, the rejected key sets of the
// devices the actor looks at (see PendingKeys), which an operator may
// accept again (AcceptKey); total counts them all. Limit 0 means 50; at
// most 500.
func (s *Service) RejectedKeys(ctx context.Context, a Actor, org int64, limit int) ([]RejectedKey, int, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, 0, err
	}
	rs, n, err := s.st.RejectedKeys(ctx, scope, clampLimit(limit))
	if rs == nil {
		rs = []RejectedKey{}
	}
	return rs, n, err
}
