package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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

const userColumns = `id, org_id, email, role, password_hash, disabled, created_at`

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
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email).
		Scan(&u.ID, &u.OrgID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.CreatedAt)
	return u, notFound(err)
}

// UserByID loads one user.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	var u User
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.OrgID, &u.Email, &u.Role, &u.PasswordHash, &u.Disabled, &u.CreatedAt)
	return u, notFound(err)
}

// ListUsers lists the users of an organisation (0: all) by email.
func (s *Store) ListUsers(ctx context.Context, orgID int64) ([]User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE $1::bigint = 0 OR org_id = $1 ORDER BY email`, orgID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[User])
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
