package fleet

import (
	"context"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// PendingKey is the newest pending key set of a device.
type PendingKey = store.PendingKey

// PendingKeys lists, newest first, the devices waiting for an operator in
// the organisations the actor looks at (see ListDevicesIn), with their
// newest pending key; total counts them all. Limit 0 means 50; at most 500.
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
