package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// DeleteExpiredWebSessions removes sessions past their expiry and up to
// batch login failures older than keep, oldest first. Failures are
// appended in time order, so the oldest have the lowest ids and the
// primary key finds them without scanning the table.
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, keep time.Duration, batch int) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM web_sessions WHERE expires_at <= now()`); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM web_login_failures WHERE id IN (
		SELECT id FROM web_login_failures WHERE at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2)`,
		keep.Seconds(), batch)
	return err
}

// LoginFailures are the failed logins within a window that login
// throttling looks at, counted by the database's clock.
type LoginFailures struct {
	// Pair counts the failures of the email from the source, Source those
	// from the source for every email.
	Pair, Source int
	// PairFreeIn and SourceFreeIn are how long until Pair and Source drop
	// below the maxima asked for (0 when they are below already).
	PairFreeIn, SourceFreeIn time.Duration
}

// LoginAttempt is what BeginLoginAttempt saw and did.
type LoginAttempt struct {
	// Before are the failures of the window before this attempt.
	Before LoginFailures
	// Recorded: the attempt was let through and recorded as a failure in
	// advance; a login that succeeds clears it (ClearLoginFailures).
	Recorded bool
}

// lockLogin is the advisory lock namespace (see registration.go) of a
// source address's login attempts.
const lockLogin int32 = 0x626f0004

// BeginLoginAttempt counts the failed logins of the last window for email
// and source and, unless the pair has pairMax failures already or the
// source sourceMax, records this attempt as one more failure before its
// password is checked: so concurrent attempts cannot all pass a count
// taken before any of them failed (the attempts of one source are
// serialised on an advisory lock for the few statements of this
// transaction), and an attempt abandoned half-way still counts. The
// durations say how long until the counts drop below the maxima: when the
// newest pairMax-th (sourceMax-th) failure leaves the window.
func (s *Store) BeginLoginAttempt(ctx context.Context, email, source string, window time.Duration, pairMax, sourceMax int) (LoginAttempt, error) {
	var la LoginAttempt
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		la = LoginAttempt{}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockLogin, source); err != nil {
			return fmt.Errorf("locking login attempts of %s: %w", source, err)
		}
		f := &la.Before
		var pairFree, sourceFree *float64
		err := tx.QueryRow(ctx, `WITH w AS (SELECT now() - make_interval(secs => $3) AS since)
			SELECT
				(SELECT count(*) FROM web_login_failures, w WHERE email = $1 AND remote_ip = $2 AND at > w.since),
				(SELECT count(*) FROM web_login_failures, w WHERE remote_ip = $2 AND at > w.since),
				(SELECT extract(epoch FROM at - w.since)::float8 FROM web_login_failures, w
					WHERE email = $1 AND remote_ip = $2 AND at > w.since ORDER BY at DESC OFFSET $4 - 1 LIMIT 1),
				(SELECT extract(epoch FROM at - w.since)::float8 FROM web_login_failures, w
					WHERE remote_ip = $2 AND at > w.since ORDER BY at DESC OFFSET $5 - 1 LIMIT 1)`,
			email, source, window.Seconds(), max(pairMax, 1), max(sourceMax, 1)).
			Scan(&f.Pair, &f.Source, &pairFree, &sourceFree)
		if err != nil {
			return err
		}
		if pairFree != nil {
			f.PairFreeIn = time.Duration(*pairFree * float64(time.Second))
		}
		if sourceFree != nil {
			f.SourceFreeIn = time.Duration(*sourceFree * float64(time.Second))
		}
		if f.Pair >= pairMax || f.Source >= sourceMax {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO web_login_failures (email, remote_ip) VALUES ($1, $2)`, email, source); err != nil {
			return err
		}
		la.Recorded = true
		return nil
	})
	if err != nil {
		return LoginAttempt{}, fmt.Errorf("counting login failures: %w", err)
	}
	return la, nil
}

// ClearLoginFailures forgets the failures of email from source after a
// successful login from there; those from other sources stay.
func (s *Store) ClearLoginFailures(ctx context.Context, email, source string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM web_login_failures WHERE email = $1 AND remote_ip = $2`, email, source)
	return err
}
