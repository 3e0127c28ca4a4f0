package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Org is an organisation (tenant).
type Org struct {
	ID   int64
	Name string
}

// OrgByName loads an organisation by name.
func (s *Store) OrgByName(ctx context.Context, name string) (Org, error) {
	var o Org
	err := s.pool.QueryRow(ctx, `SELECT id, name FROM orgs WHERE name = $1`, name).Scan(&o.ID, &o.Name)
	return o, notFound(err)
}

// CreateOrg creates an organisation.
func (s *Store) CreateOrg(ctx context.Context, name string) (Org, error) {
	o := Org{Name: name}
	err := s.pool.QueryRow(ctx, `INSERT INTO orgs (name) VALUES ($1) RETURNING id`, name).Scan(&o.ID)
	return o, notFound(err)
}

// SetEnrollmentToken sets the token devices name to join org ("" clears it).
func (s *Store) SetEnrollmentToken(ctx context.Context, orgID int64, token string) error {
	var t *string
	if token != "" {
		t = &token
	}
	_, err := s.pool.Exec(ctx, `UPDATE orgs SET enrollment_token = $2 WHERE id = $1`, orgID, t)
	return notFound(err)
}

// OrgByEnrollmentToken finds the organisation a device's enrollment token names.
func (s *Store) OrgByEnrollmentToken(ctx context.Context, token string) (Org, error) {
	var o Org
	err := s.pool.QueryRow(ctx, `SELECT id, name FROM orgs WHERE enrollment_token = $1`, token).Scan(&o.ID, &o.Name)
	return o, notFound(err)
}

// User is an operator account.
type User struct {
	ID           int64
	OrgID        int64
	Email        string
	Role         string
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
}

// CreateUser inserts a user; ErrConflict when the email is taken.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	err := s.pool.QueryRow(ctx, `INSERT INTO users (org_id, email, role, password_hash) VALUES ($1, $2, $3, $4)
		RETURNING id, created_at`, u.OrgID, u.Email, u.Role, u.PasswordHash).Scan(&u.ID, &u.CreatedAt)
	if err != nil {
		return u, fmt.Errorf("creating user %s: %w", u.Email, notFound(err))
	}
	return u, nil
}

// UserByEmail loads a user by email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	var u User
	err := s.pool.QueryRow(ctx, `SELECT id, org_id, email, role, password_hash, disabled, created_at FROM users WHERE email = $1`, email).
		Scan(&u.ID, &u.OrgID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.CreatedAt)
	return u, notFound(err)
}

// Token is an API token (the secret itself is never stored).
type Token struct {
	ID        int64
	Name      string
	UserID    int64
	CreatedAt time.Time
	LastUsed  *time.Time
	Revoked   bool
}

// InsertToken stores the hash of a new token.
func (s *Store) InsertToken(ctx context.Context, orgID, userID int64, name string, hash []byte) (Token, error) {
	t := Token{Name: name, UserID: userID}
	err := s.pool.QueryRow(ctx, `INSERT INTO api_tokens (org_id, user_id, name, hash) VALUES ($1, $2, $3, $4)
		RETURNING id, created_at`, orgID, userID, name, hash).Scan(&t.ID, &t.CreatedAt)
	return t, notFound(err)
}

// TokenOwner is what a valid token authenticates as.
type TokenOwner struct {
	TokenID int64
	User    User
}

// TokenByHash finds an unrevoked token of an enabled user and records its
// use.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (TokenOwner, error) {
	var o TokenOwner
	err := s.pool.QueryRow(ctx, `UPDATE api_tokens t SET last_used = now() FROM users u
		WHERE t.hash = $1 AND NOT t.revoked AND u.id = t.user_id AND NOT u.disabled
		RETURNING t.id, u.id, u.org_id, u.email, u.role, u.created_at`, hash).
		Scan(&o.TokenID, &o.User.ID, &o.User.OrgID, &o.User.Email, &o.User.Role, &o.User.CreatedAt)
	return o, notFound(err)
}

// ListTokens lists the tokens of a user (0: all tokens of org; both 0: all).
func (s *Store) ListTokens(ctx context.Context, orgID, userID int64) ([]Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, user_id, created_at, last_used, revoked FROM api_tokens
		WHERE ($1::bigint = 0 OR org_id = $1) AND ($2::bigint = 0 OR user_id = $2) ORDER BY id`, orgID, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Token])
}

// TokenOrgUser returns the organisation and user of a token.
func (s *Store) TokenOrgUser(ctx context.Context, id int64) (orgID, userID int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT org_id, user_id FROM api_tokens WHERE id = $1`, id).Scan(&orgID, &userID)
	return orgID, userID, notFound(err)
}

// RevokeToken revokes a token.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_tokens SET revoked = true WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64
	OrgID   int64
	Actor   string
	Action  string
	Target  string
	Outcome string
	Detail  json.RawMessage
	At      time.Time
}

// AuditFilter selects audit rows, newest first.
type AuditFilter struct {
	OrgID                 int64 // 0: all
	Actor, Action, Target string
	Limit                 int
}

// InsertAudit appends to the audit log.
func (s *Store) InsertAudit(ctx context.Context, e AuditEntry) error {
	var detail []byte
	if len(e.Detail) > 0 {
		detail = e.Detail
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (org_id, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
		e.OrgID, e.Actor, e.Action, e.Target, e.Outcome, detail)
	return err
}

// ListAudit lists audit rows, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, actor, action, target, outcome, detail, at FROM audit_log
		WHERE ($1::bigint = 0 OR org_id = $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3) AND ($4 = '' OR target = $4)
		ORDER BY id DESC LIMIT $5`, f.OrgID, f.Actor, f.Action, f.Target, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var detail []byte
		if err := rows.Scan(&e.ID, &e.OrgID, &e.Actor, &e.Action, &e.Target, &e.Outcome, &detail, &e.At); err != nil {
			return nil, err
		}
		if len(detail) > 0 {
			e.Detail = detail
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
