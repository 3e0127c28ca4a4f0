package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// This file holds the user and organisation queries of the dashboard's
// users page and organisation switcher.

// ListOrgs lists every organisation by name.
func (s *Store) ListOrgs(ctx context.Context) ([]Org, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name FROM orgs ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Org])
}

// OrgByID loads one organisation.
func (s *Store) OrgByID(ctx context.Context, id int64) (Org, error) {
	var o Org
	err := s.pool.QueryRow(ctx, `SELECT id, name FROM orgs WHERE id = $1`, id).Scan(&o.ID, &o.Name)
	return o, notFound(err)
}

const userColumns = `id, org_id, email, role, password_hash, disabled, created_at`

// ListUsers lists the users of an organisation (0: all) by email.
func (s *Store) ListUsers(ctx context.Context, orgID int64) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE $1::bigint = 0 OR org_id = $1 ORDER BY email`, orgID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[User])
}

// UserByID loads one user.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.OrgID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.CreatedAt)
	return u, notFound(err)
}

// SetUserRole changes a user's role and ends its web sessions, in one
// transaction.
func (s *Store) SetUserRole(ctx context.Context, id int64, role string) error {
	return s.updateUser(ctx, id, `UPDATE users SET role = $2 WHERE id = $1`, role)
}

// SetUserDisabled disables or enables a user and ends its web sessions.
func (s *Store) SetUserDisabled(ctx context.Context, id int64, disabled bool) error {
	return s.updateUser(ctx, id, `UPDATE users SET disabled = $2 WHERE id = $1`, disabled)
}

// SetPasswordHash replaces a user's password hash and ends its web
// sessions.
func (s *Store) SetPasswordHash(ctx context.Context, id int64, hash string) error {
	return s.updateUser(ctx, id, `UPDATE users SET password_hash = $2 WHERE id = $1`, hash)
}

func (s *Store) updateUser(ctx context.Context, id int64, q string, v any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q, id, v)
		if err != nil {
			return notFound(err)
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM web_sessions WHERE user_id = $1`, id)
		return err
	})
}
