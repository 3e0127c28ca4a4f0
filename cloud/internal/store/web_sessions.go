package store

import (
	"context"
	"time"
)

// WebSession is one dashboard login, joined with its user as the user is
// now. Valid reports whether the user still matches what the session was
// started with.
type WebSession struct {
	IDHash    []byte
	CSRFToken string
	ViewOrg   int64 // 0: none chosen
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
	User      User
	// Valid is false when, since login, the user was disabled, or its role
	// or password changed: such a session is over.
	Valid bool
}

// NewWebSession is what CreateWebSession stores.
type NewWebSession struct {
	IDHash    []byte
	UserID    int64
	CSRFToken string
	RemoteIP  string
	UserAgent string
	ExpiresAt time.Time
}

// CreateWebSession starts a session for a user, recording the user's
// current role and a digest of its password hash.
func (s *Store) CreateWebSession(ctx context.Context, n NewWebSession) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO web_sessions (id_hash, user_id, role, pw_tag, csrf_token, remote_ip, user_agent, expires_at)
		SELECT $1, u.id, u.role, sha256(convert_to(u.password_hash, 'UTF8')), $3, $4, $5, $6
		FROM users u WHERE u.id = $2 AND NOT u.disabled`,
		n.IDHash, n.UserID, n.CSRFToken, n.RemoteIP, n.UserAgent, n.ExpiresAt)
	if err != nil {
		return notFound(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// WebSessionByHash loads an unexpired session and its user.
func (s *Store) WebSessionByHash(ctx context.Context, idHash []byte) (WebSession, error) {
	var w WebSession
	var viewOrg *int64
	err := s.pool.QueryRow(ctx, `SELECT ws.id_hash, ws.csrf_token, ws.view_org, ws.created_at, ws.last_seen, ws.expires_at,
		u.id, u.org_id, u.email, u.role, u.disabled, u.created_at,
		(NOT u.disabled AND u.role = ws.role AND sha256(convert_to(u.password_hash, 'UTF8')) = ws.pw_tag)
		FROM web_sessions ws JOIN users u ON u.id = ws.user_id
		WHERE ws.id_hash = $1 AND ws.expires_at > now()`, idHash).
		Scan(&w.IDHash, &w.CSRFToken, &viewOrg, &w.CreatedAt, &w.LastSeen, &w.ExpiresAt,
			&w.User.ID, &w.User.OrgID, &w.User.Email, &w.User.Role, &w.User.Disabled, &w.User.CreatedAt, &w.Valid)
	if viewOrg != nil {
		w.ViewOrg = *viewOrg
	}
	return w, notFound(err)
}

// TouchWebSession records activity and slides the session's expiry.
func (s *Store) TouchWebSession(ctx context.Context, idHash []byte, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE web_sessions SET last_seen = now(), expires_at = greatest(expires_at, $2) WHERE id_hash = $1`,
		idHash, expires)
	return err
}

// SetWebSessionOrg records the organisation a super user looks at (0: all).
func (s *Store) SetWebSessionOrg(ctx context.Context, idHash []byte, org int64) error {
	var o *int64
	if org != 0 {
		o = &org
	}
	tag, err := s.pool.Exec(ctx, `UPDATE web_sessions SET view_org = $2 WHERE id_hash = $1`, idHash, o)
	if err != nil {
		return notFound(err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteWebSession ends one session.
func (s *Store) DeleteWebSession(ctx context.Context, idHash []byte) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE id_hash = $1`, idHash)
	return err
}

// DeleteUserWebSessions ends every session of a user and returns how many.
func (s *Store) DeleteUserWebSessions(ctx context.Context, userID int64) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// DeleteExpiredWebSessions removes sessions past their expiry and login
// failures older than keep.
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, keep time.Duration) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE expires_at <= now()`); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM web_login_failures WHERE at < now() - $1::interval`, keep.String())
	return err
}

// RecordLoginFailure counts one failed login.
func (s *Store) RecordLoginFailure(ctx context.Context, email, remoteIP string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO web_login_failures (email, remote_ip) VALUES ($1, $2)`, email, remoteIP)
	return err
}

// LoginFailures counts the failed logins for email and from remoteIP since
// the given time.
func (s *Store) LoginFailures(ctx context.Context, email, remoteIP string, since time.Time) (byEmail, byIP int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM web_login_failures WHERE email = $1 AND at > $3),
		(SELECT count(*) FROM web_login_failures WHERE remote_ip = $2 AND at > $3)`, email, remoteIP, since).Scan(&byEmail, &byIP)
	return byEmail, byIP, err
}

// ClearLoginFailures forgets the failures of an email after a successful
// login.
func (s *Store) ClearLoginFailures(ctx context.Context, email string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM web_login_failures WHERE email = $1`, email)
	return err
}
