package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReleaseRepo is an organisation's release repository as stored: the
// newest root.json, targets.json, snapshot.json and timestamp.json
// (pkg/release.Repo) and the root's version.
type ReleaseRepo struct {
	OrgID       int64
	Root        []byte
	RootVersion int64
	Targets     []byte
	Snapshot    []byte
	Timestamp   []byte
	UpdatedAt   time.Time
}

// releaseLockKey is the first half of the advisory lock that serialises
// changes to one organisation's release repository (the second is the
// organisation id), also while it has no row yet.
const releaseLockKey int32 = 0x626f0010

// ReleaseRepo returns the organisation's release repository, ErrNotFound
// when it has received no root yet.
func (s *Store) ReleaseRepo(ctx context.Context, org int64) (ReleaseRepo, error) {
	return scanRelease(s.pool.QueryRow(ctx, releaseSelect+` WHERE r.org_id = $1`, org))
}

const releaseSelect = `SELECT r.org_id, r.root, COALESCE((SELECT max(version) FROM release_roots v WHERE v.org_id = r.org_id), 0),
	r.targets, r.snapshot, r.timestamp, r.updated_at FROM release_repos r`

func scanRelease(row pgx.Row) (ReleaseRepo, error) {
	var r ReleaseRepo
	err := row.Scan(&r.OrgID, &r.Root, &r.RootVersion, &r.Targets, &r.Snapshot, &r.Timestamp, &r.UpdatedAt)
	return r, notFound(err)
}

// ReleaseRoot returns version of the organisation's root.json,
// ErrNotFound when it never accepted that version.
func (s *Store) ReleaseRoot(ctx context.Context, org, version int64) ([]byte, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM release_roots WHERE org_id = $1 AND version = $2`, org, version).Scan(&b)
	return b, notFound(err)
}

// ReleaseOrgs returns the organisations that have a release repository.
func (s *Store) ReleaseOrgs(ctx context.Context) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT org_id FROM release_repos ORDER BY org_id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// UpdateRelease changes the organisation's release repository in one
// transaction that holds the organisation's release lock: edit gets the
// current repository (the zero ReleaseRepo with OrgID set when there is
// none) and returns the next one, or changed false to store nothing. A
// next root whose RootVersion is new is added to release_roots. An error
// of edit is returned and nothing is stored.
func (s *Store) UpdateRelease(ctx context.Context, org int64, edit func(cur ReleaseRepo) (next ReleaseRepo, changed bool, err error)) (ReleaseRepo, error) {
	var out ReleaseRepo
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, releaseLockKey, int32(org)); err != nil {
			return err
		}
		cur, err := scanRelease(tx.QueryRow(ctx, releaseSelect+` WHERE r.org_id = $1`, org))
		if errors.Is(err, ErrNotFound) {
			cur = ReleaseRepo{OrgID: org}
		} else if err != nil {
			return err
		}
		next, changed, err := edit(cur)
		if err != nil {
			return err
		}
		if !changed {
			out = cur
			return nil
		}
		next.OrgID = org
		err = tx.QueryRow(ctx, `INSERT INTO release_repos (org_id, root, targets, snapshot, timestamp, updated_at)
			VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (org_id) DO UPDATE SET root = $2, targets = $3, snapshot = $4, timestamp = $5, updated_at = now()
			RETURNING updated_at`, org, next.Root, next.Targets, next.Snapshot, next.Timestamp).Scan(&next.UpdatedAt)
		if err != nil {
			return err
		}
		if next.RootVersion > cur.RootVersion {
			if _, err := tx.Exec(ctx, `INSERT INTO release_roots (org_id, version, body) VALUES ($1, $2, $3)`,
				org, next.RootVersion, next.Root); err != nil {
				return notFound(err)
			}
		}
		out = next
		return nil
	})
	return out, err
}
