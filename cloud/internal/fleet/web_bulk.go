package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/cloud/internal/tags"
)

// This file holds the dashboard's actions on many devices at once and the
// organisation-narrowed lists its pages need besides those of web_users.go.
//
// A bulk action is all or nothing: every device named is checked first
// (it exists, the actor sees its organisation, the actor's role may do the
// action there), then all of them change in one transaction. One device
// that fails a check changes nothing, and the error's public message names
// it and says why. Each device changed gets its own audit row.

// MaxBulk is how many devices one bulk action may name.
const MaxBulk = 500

// bulkTargets checks ids for a bulk action (verb names it in messages) and
// returns the devices, each once, in the order given.
func (s *Service) bulkTargets(ctx context.Context, a Actor, ids []string, verb string, admin bool) ([]Device, error) {
	switch {
	case len(ids) == 0:
		return nil, &PublicError{Kind: ErrInvalid, Msg: "Nothing was changed: no device was chosen."}
	case len(ids) > MaxBulk:
		return nil, &PublicError{Kind: ErrInvalid, Msg: fmt.Sprintf("Nothing was changed: at most %d devices at once (%d chosen).", MaxBulk, len(ids))}
	}
	seen := make(map[string]bool, len(ids))
	devs := make([]Device, 0, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		d, err := s.operable(ctx, a, id, admin)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, &PublicError{Kind: ErrNotFound, Err: err,
				Msg: fmt.Sprintf("Nothing was changed: there is no device %.80q in your organisation.", id)}
		case errors.Is(err, ErrForbidden):
			need := RoleOperator
			if admin {
				need = RoleAdmin
			}
			return nil, &PublicError{Kind: ErrForbidden, Err: err,
				Msg: fmt.Sprintf("Nothing was changed: your role (%s) may not %s device %s; that needs %s.", a.Role, verb, id, need)}
		case err != nil:
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// TagDevices adds the tags add to, and removes the tags remove from, every
// device of ids, all or nothing (see the top of this file). The tags follow
// package tags' rule; a device that would end with more than
// tags.MaxPerDevice tags changes nothing either. It returns each device's
// new tags.
func (s *Service) TagDevices(ctx context.Context, a Actor, ids, add, remove []string) (map[string][]string, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, &PublicError{Kind: ErrInvalid, Msg: "Nothing was changed: name a tag to add or to remove."}
	}
	for _, t := range slices.Concat(add, remove) {
		if !tags.Valid(t) {
			return nil, &PublicError{Kind: ErrInvalid, Msg: fmt.Sprintf("Nothing was changed: %.80q is not a tag: %s.", t, tags.Rule)}
		}
	}
	devs, err := s.bulkTargets(ctx, a, ids, "tag", false)
	if err != nil {
		return nil, err
	}
	ids = make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	got, err := s.st.EditTags(ctx, ids, func(id string, cur []string) ([]string, error) {
		next := slices.DeleteFunc(slices.Concat(cur, add), func(t string) bool { return slices.Contains(remove, t) })
		clean, err := tags.Check(next)
		if err != nil {
			return nil, &PublicError{Kind: ErrInvalid, Err: err, Msg: fmt.Sprintf("Nothing was changed: device %s: %v.", id, err)}
		}
		return clean, nil
	})
	if err != nil {
		if _, ok := PublicMessage(err); ok {
			return nil, err
		}
		if errors.Is(err, store.ErrNotFound) {
			// Deleted between the check and the transaction.
			return nil, &PublicError{Kind: ErrNotFound, Err: err, Msg: "Nothing was changed: a device chosen no longer exists."}
		}
		return nil, err
	}
	for _, d := range devs {
		s.audit(ctx, d.OrgID, a, "device.tags", d.ID, "ok", map[string]any{"tags": got[d.ID], "bulk": len(devs)})
	}
	return got, nil
}

// DecommissionDevices decommissions every device of ids (see
// Decommission), all or nothing. Admins only.
func (s *Service) DecommissionDevices(ctx context.Context, a Actor, ids []string) error {
	devs, err := s.bulkTargets(ctx, a, ids, "decommission", true)
	if err != nil {
		return err
	}
	ids = make([]string, len(devs))
	org := make(map[string]int64, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
		org[d.ID] = d.OrgID
	}
	kcs, err := s.st.DecommissionMany(ctx, ids)
	if errors.Is(err, store.ErrNotFound) {
		return &PublicError{Kind: ErrNotFound, Err: err, Msg: "Nothing was changed: a device chosen no longer exists."}
	}
	if err != nil {
		return err
	}
	slices.Sort(ids) // the order of kcs
	for i, id := range ids {
		kc := kcs[i]
		s.audit(ctx, org[id], a, "device.decommission", id, "ok", map[string]any{"revoked": nonNilList(kc.Closed), "bulk": len(ids)})
		s.keyDecision(kc.OrgID, id, KeyMsg{Closed: kc.Closed})
		s.publish(Event{Type: EventDeviceDecommissioned, OrgID: org[id], DeviceID: id})
	}
	return nil
}

// TagsIn lists the tags carried by the devices the actor sees in org (see
// viewScope), sorted; at most 500.
func (s *Service) TagsIn(ctx context.Context, a Actor, org int64) ([]string, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, err
	}
	return s.st.ListTags(ctx, scope, 500)
}

// DevicesWithTagIn returns the ids of the devices with tag that the actor
// sees in org (see viewScope), sorted.
func (s *Service) DevicesWithTagIn(ctx context.Context, a Actor, org int64, tag string) ([]string, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, err
	}
	if !tags.Valid(tag) {
		return nil, &PublicError{Kind: ErrInvalid, Msg: fmt.Sprintf("%.80q is not a tag: %s.", tag, tags.Rule)}
	}
	return s.st.DeviceIDsByTag(ctx, scope, tag)
}

// ListCallsIn is ListCalls narrowed like ListDevicesIn.
func (s *Service) ListCallsIn(ctx context.Context, a Actor, org int64, f CallFilter) ([]Call, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, err
	}
	cs, err := s.st.ListCalls(ctx, store.CallFilter{OrgID: scope, DeviceID: f.DeviceID, Status: f.Status, Limit: clampLimit(f.Limit)})
	if cs == nil {
		cs = []Call{}
	}
	return cs, err
}
