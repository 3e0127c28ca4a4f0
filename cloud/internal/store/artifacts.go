package store

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Artifact is one (name, version) of an organisation and the bytes it
// names.
type Artifact struct {
	ID         int64
	OrgID      int64
	Name       string
	Version    string
	SHA256     []byte
	Length     int64
	Metadata   []byte // the signed targets.json as uploaded; nil: none
	UploadedBy string
	UploadedAt time.Time
}

const artifactCols = `id, org_id, name, version, sha256, length, metadata, uploaded_by, uploaded_at`

func scanArtifact(row pgx.Row) (Artifact, error) {
	var a Artifact
	err := row.Scan(&a.ID, &a.OrgID, &a.Name, &a.Version, &a.SHA256, &a.Length, &a.Metadata, &a.UploadedBy, &a.UploadedAt)
	return a, notFound(err)
}

// InsertArtifact stores a row under the blob lock of its sha256 (see
// lockBlob), calling place (which puts the bytes under their name) first.
// A (org, name, version) taken is ErrConflict; when the insert fails and
// no row names the bytes, unplace removes them, still under the lock.
// Should the commit itself fail after place, the bytes stay without a
// row: harmless, the next upload of them reuses the file.
func (s *Store) InsertArtifact(ctx context.Context, a Artifact, place, unplace func() error) (Artifact, error) {
	var out Artifact
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockBlob(ctx, tx, a.SHA256); err != nil {
			return err
		}
		if err := place(); err != nil {
			return err
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		out, err = scanArtifact(sp.QueryRow(ctx, `INSERT INTO artifacts (org_id, name, version, sha256, length, metadata, uploaded_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+artifactCols,
			a.OrgID, a.Name, a.Version, a.SHA256, a.Length, a.Metadata, a.UploadedBy))
		if err == nil {
			return sp.Commit(ctx)
		}
		sp.Rollback(ctx)
		var n int64
		if cerr := tx.QueryRow(ctx, `SELECT count(*) FROM artifacts WHERE sha256 = $1`, a.SHA256).Scan(&n); cerr == nil && n == 0 {
			unplace()
		}
		return err
	})
	return out, err
}

// ArtifactByID returns one artifact.
func (s *Store) ArtifactByID(ctx context.Context, id int64) (Artifact, error) {
	return scanArtifact(s.pool.QueryRow(ctx, `SELECT `+artifactCols+` FROM artifacts WHERE id = $1`, id))
}

// ArtifactByVersion returns the artifact (org, name, version).
func (s *Store) ArtifactByVersion(ctx context.Context, orgID int64, name, version string) (Artifact, error) {
	return scanArtifact(s.pool.QueryRow(ctx, `SELECT `+artifactCols+` FROM artifacts
		WHERE org_id = $1 AND name = $2 AND version = $3`, orgID, name, version))
}

// ListArtifacts lists the artifacts of org (0: every organisation), of
// one name when name is not "", in id order; the caller orders versions.
func (s *Store) ListArtifacts(ctx context.Context, orgID int64, name string) ([]Artifact, error) {
	if !storable(name) {
		return nil, nil // matches nothing (see storable)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+artifactCols+` FROM artifacts
		WHERE ($1::bigint = 0 OR org_id = $1) AND ($2 = '' OR name = $2) ORDER BY id`, orgID, name)
	if err != nil {
		return nil, err
	}
	var out []Artifact
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteArtifact deletes a row under the blob lock of its bytes and,
// when no row names them any more, calls remove before committing, so an
// upload of the same bytes (which waits for the lock) places them again
// after the removal, never before it. It returns whether remove ran.
func (s *Store) DeleteArtifact(ctx context.Context, id int64, remove func(sha []byte) error) (removed bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var sha []byte
		if err := tx.QueryRow(ctx, `SELECT sha256 FROM artifacts WHERE id = $1`, id).Scan(&sha); err != nil {
			return notFound(err)
		}
		if err := lockBlob(ctx, tx, sha); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM artifacts WHERE id = $1`, id); err != nil {
			return err
		}
		var left int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM artifacts WHERE sha256 = $1`, sha).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return nil
		}
		removed = true
		return remove(sha)
	})
	return removed, err
}

// blobLockClass is the first key of the two-key advisory locks on blobs
// ("bart" in ASCII); the second is the first four bytes of the sha256, so
// two hashes rarely share a lock, and if they do they only wait.
const blobLockClass int32 = 0x62617274

// lockBlob takes the transaction's advisory lock on the bytes of sha,
// across every replica on the database: uploads hold it from placing the
// file to committing the row, deletions from deleting the row to
// removing the file, so the deletion of the last row and a new upload of
// the same bytes never interleave.
func lockBlob(ctx context.Context, tx pgx.Tx, sha []byte) error {
	if len(sha) < 4 {
		return errors.New("store: a blob lock needs a sha256")
	}
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, blobLockClass, int32(binary.BigEndian.Uint32(sha[:4])))
	return err
}

// SetArtifactMetadata replaces the opaque metadata of an artifact.
func (s *Store) SetArtifactMetadata(ctx context.Context, id int64, metadata []byte) error {
	tag, err := s.pool.Exec(ctx, `UPDATE artifacts SET metadata = $2 WHERE id = $1`, id, metadata)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// DownloadKey returns the HMAC key of download tokens, storing newKey
// first if there is none yet (all replicas then use the first stored).
func (s *Store) DownloadKey(ctx context.Context, newKey []byte) ([]byte, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO ota_download_keys (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, newKey); err != nil {
		return nil, err
	}
	var key []byte
	err := s.pool.QueryRow(ctx, `SELECT key FROM ota_download_keys WHERE id = 1`).Scan(&key)
	return key, notFound(err)
}
