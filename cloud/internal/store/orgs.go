package store

import (
	"context"

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

// OrgByID loads one organisation.
func (s *Store) OrgByID(ctx context.Context, id int64) (Org, error) {
	var o Org
	err := s.pool.QueryRow(ctx, `SELECT id, name FROM orgs WHERE id = $1`, id).Scan(&o.ID, &o.Name)
	return o, notFound(err)
}

// ListOrgs lists every organisation by name.
func (s *Store) ListOrgs(ctx context.Context) ([]Org, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name FROM orgs ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Org])
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
