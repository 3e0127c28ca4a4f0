package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the bookkeeping of device sessions (the websocket a
// device holds on one replica) and of the replicas themselves.

// StartSession marks the device online on replica and bumps its
// session_version, returning the new version: the session holding it is the
// one live session of the device; any older one must close. The session
// now counts as live by being online, so the admission's reservation
// (pending_admitted_at, see Admit) ends.
func (s *Store) StartSession(ctx context.Context, deviceID, replica string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `UPDATE devices SET session_version = session_version + 1, online = true,
		replica = $2, last_seen = now(), pending_admitted_at = NULL WHERE id = $1 RETURNING session_version`, deviceID, replica).Scan(&v)
	return v, notFound(err)
}

// EndSession marks the device offline, unless a newer session took over in
// the meantime (then it changes nothing and returns false).
func (s *Store) EndSession(ctx context.Context, deviceID string, version int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET online = false, last_seen = now(), pending_admitted_at = NULL
		WHERE id = $1 AND session_version = $2`, deviceID, version)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() > 0, nil
}

// Touch records that the device was seen (last_seen), if version is still
// the live one.
func (s *Store) Touch(ctx context.Context, deviceID string, version int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE devices SET last_seen = now() WHERE id = $1 AND session_version = $2`, deviceID, version)
	return err
}

// DeviceRef names a device and its organisation.
type DeviceRef struct {
	OrgID int64
	ID    string
}

// Heartbeat records that replica is alive.
func (s *Store) Heartbeat(ctx context.Context, replica string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO replicas (name) VALUES ($1)
		ON CONFLICT (name) DO UPDATE SET heartbeat = now()`, replica)
	return err
}

// ResetReplica marks offline every device the named replica held: called
// when a replica starts (a previous run of the same name died holding them)
// and when it stops.
func (s *Store) ResetReplica(ctx context.Context, replica string) ([]DeviceRef, error) {
	rows, err := s.pool.Query(ctx, `UPDATE devices SET online = false WHERE online AND replica = $1 RETURNING org_id, id`, replica)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
}

// OfflineStale marks offline the devices held by replicas that have not
// heart-beaten within staleAfter (or are not known at all).
func (s *Store) OfflineStale(ctx context.Context, staleAfter time.Duration) ([]DeviceRef, error) {
	rows, err := s.pool.Query(ctx, `UPDATE devices d SET online = false WHERE d.online AND NOT EXISTS (
		SELECT 1 FROM replicas r WHERE r.name = d.replica AND r.heartbeat > now() - make_interval(secs => $1))
		RETURNING d.org_id, d.id`, staleAfter.Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
}
