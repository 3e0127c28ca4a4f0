package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

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
