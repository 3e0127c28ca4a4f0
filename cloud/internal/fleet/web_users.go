package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// This file holds the dashboard's user management (users page, own
// password) and the organisation-narrowed lists a super user sees after
// switching organisation.

// User is a dashboard account; PasswordHash is never shown.
type User = store.User

// Org is an organisation (tenant).
type Org = store.Org

// MinPasswordLength is the shortest password ChangePassword accepts.
const MinPasswordLength = 12

// viewScope is the organisation filter of a list for an actor looking at
// org: a super user narrows to org (0: every organisation); everyone else
// always sees exactly their own.
func (a Actor) viewScope(org int64) (int64, error) {
	if a.Role == RoleSuper {
		return org, nil
	}
	if !a.Role.Valid() {
		return 0, ErrForbidden
	}
	return a.OrgID, nil
}

// ListOrgs lists the organisations the actor may look at.
func (s *Service) ListOrgs(ctx context.Context, a Actor) ([]Org, error) {
	if !a.Role.Valid() {
		return nil, ErrForbidden
	}
	if a.Role == RoleSuper {
		return s.st.ListOrgs(ctx)
	}
	o, err := s.st.OrgByID(ctx, a.OrgID)
	if err != nil {
		return nil, mapStoreErr(err)
	}
	return []Org{o}, nil
}

// ListDevicesIn is ListDevices narrowed to org for a super user (see
// viewScope); for other roles org is ignored.
func (s *Service) ListDevicesIn(ctx context.Context, a Actor, org int64, f DeviceFilter) ([]Device, int, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, 0, err
	}
	if f.Offset < 0 {
		return nil, 0, invalidf("negative offset")
	}
	devs, n, err := s.st.ListDevices(ctx, store.DeviceFilter{OrgID: scope, Status: f.Status, Online: f.Online,
		Tag: f.Tag, Text: f.Text, Limit: clampLimit(f.Limit), Offset: f.Offset})
	if devs == nil {
		devs = []Device{}
	}
	return devs, n, err
}

// CountsIn is Counts narrowed like ListDevicesIn.
func (s *Service) CountsIn(ctx context.Context, a Actor, org int64) (Counts, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return Counts{}, err
	}
	return s.st.Counts(ctx, scope)
}

// AuditLogIn is AuditLog narrowed like ListDevicesIn.
func (s *Service) AuditLogIn(ctx context.Context, a Actor, org int64, f AuditFilter) ([]AuditEntry, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, err
	}
	return s.st.ListAudit(ctx, store.AuditFilter{OrgID: scope, Actor: f.Actor, Action: f.Action,
		Target: f.Target, Limit: clampLimit(f.Limit), Before: f.Before, After: f.After})
}

// ListUsers lists the users of org (0: every organisation, super only).
// Admins list their own organisation's users.
func (s *Service) ListUsers(ctx context.Context, a Actor, org int64) ([]User, error) {
	scope, err := a.viewScope(org)
	if err != nil {
		return nil, err
	}
	if !(a.Role == RoleSuper || a.administers(scope)) {
		return nil, fmt.Errorf("%w: role %s may not list users", ErrForbidden, a.Role)
	}
	us, err := s.st.ListUsers(ctx, scope)
	for i := range us {
		us[i].PasswordHash = ""
	}
	return us, err
}

// managedUser loads a user the actor may manage: admins manage the users of
// their organisation except super users, super users manage everyone, and
// nobody manages themselves here (so that nobody locks themselves out).
// Another organisation's user is ErrNotFound.
func (s *Service) managedUser(ctx context.Context, a Actor, id int64) (User, error) {
	u, err := s.st.UserByID(ctx, id)
	if err != nil {
		return u, mapStoreErr(err)
	}
	if !a.sees(u.OrgID) {
		return User{}, fmt.Errorf("%w: user %d", ErrNotFound, id)
	}
	if !a.administers(u.OrgID) || (Role(u.Role) == RoleSuper && a.Role != RoleSuper) {
		return User{}, fmt.Errorf("%w: role %s may not manage user %d", ErrForbidden, a.Role, id)
	}
	if u.ID == a.UserID {
		return User{}, invalidf("you cannot change your own role or disable yourself")
	}
	return u, nil
}

// SetUserRole changes a user's role; the user's web sessions end.
func (s *Service) SetUserRole(ctx context.Context, a Actor, id int64, role Role) error {
	if !role.Valid() {
		return invalidf("role must be super, admin, operator or viewer")
	}
	u, err := s.managedUser(ctx, a, id)
	if err != nil {
		return err
	}
	if role == RoleSuper && a.Role != RoleSuper {
		return fmt.Errorf("%w: only super users grant super", ErrForbidden)
	}
	if err := s.st.SetUserRole(ctx, id, string(role)); err != nil {
		return mapStoreErr(err)
	}
	s.authChanged()
	s.audit(ctx, u.OrgID, a, "user.role", u.Email, "ok", map[string]string{"from": u.Role, "to": string(role)})
	return nil
}

// SetUserDisabled disables (or enables again) a user; a disabled user's web
// sessions end and its API tokens stop working.
func (s *Service) SetUserDisabled(ctx context.Context, a Actor, id int64, disabled bool) error {
	u, err := s.managedUser(ctx, a, id)
	if err != nil {
		return err
	}
	if err := s.st.SetUserDisabled(ctx, id, disabled); err != nil {
		return mapStoreErr(err)
	}
	s.authChanged()
	action := "user.enable"
	if disabled {
		action = "user.disable"
	}
	s.audit(ctx, u.OrgID, a, action, u.Email, "ok", nil)
	return nil
}

// ChangePassword changes the actor's own password after checking the
// current one. Every web session of the user ends, this one included; the
// caller logs the browser in again with the returned session.
func (s *Service) ChangePassword(ctx context.Context, a Actor, current, next, remoteIP, userAgent string) (string, WebSession, error) {
	if a.UserID == 0 || a.TokenID != 0 {
		return "", WebSession{}, fmt.Errorf("%w: only a logged-in user changes its password", ErrForbidden)
	}
	if len(next) < MinPasswordLength || len(next) > 1024 {
		return "", WebSession{}, invalidf("a password has %d to 1024 characters", MinPasswordLength)
	}
	u, err := s.st.UserByID(ctx, a.UserID)
	if err != nil {
		return "", WebSession{}, mapStoreErr(err)
	}
	if u.Disabled || !CheckPassword(u.PasswordHash, current) {
		s.audit(ctx, u.OrgID, a, "user.password", u.Email, "denied", nil)
		return "", WebSession{}, invalidf("the current password is wrong")
	}
	if err := s.st.SetPasswordHash(ctx, u.ID, HashPassword(next)); err != nil {
		return "", WebSession{}, mapStoreErr(err)
	}
	s.audit(ctx, u.OrgID, a, "user.password", u.Email, "ok", nil)
	secret, ws, err := s.startWebSession(ctx, a, remoteIP, userAgent)
	if errors.Is(err, ErrNotFound) {
		return "", ws, ErrUnauthenticated
	}
	return secret, ws, err
}

// WEB-REQUEST: an OrgID field in DeviceFilter and AuditFilter (honoured for
// super users only) would let ListDevicesIn, CountsIn and AuditLogIn go.
// WEB-REQUEST: Subscribe's doc could say that ctx needs a deadline
// (nats FlushWithContext refuses a context without one).
