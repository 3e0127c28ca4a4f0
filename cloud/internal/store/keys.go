package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the key sets of devices and the operator decisions on
// them: accept, reject, preauthorise, decommission. A device's status is
// derived from its key sets (refreshStatus).

// Key set statuses.
const (
	KeyPending       = "pending"
	KeyAccepted      = "accepted"
	KeyRejected      = "rejected"
	KeyPreauthorized = "preauthorized"
	KeyRevoked       = "revoked"
)

// KeySet is one public key a device has presented or an operator has
// preauthorised, with its own status.
type KeySet struct {
	ID           int64
	DeviceID     string
	Fingerprint  string
	Alg          string
	Status       string // pending|accepted|rejected|preauthorized|revoked
	KeyChanged   bool
	PublicKeyDER []byte
	Attributes   map[string]string
	FirstSeen    time.Time
	LastSeen     time.Time
}

// ListKeySets returns the key sets of a device, newest first.
func (s *Store) ListKeySets(ctx context.Context, deviceID string) ([]KeySet, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, device_id, fingerprint, alg, status, key_changed, public_key,
		attributes, first_seen, last_seen FROM device_keys WHERE device_id = $1 ORDER BY id DESC`, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []KeySet
	for rows.Next() {
		var k KeySet
		var attrs []byte
		if err := rows.Scan(&k.ID, &k.DeviceID, &k.Fingerprint, &k.Alg, &k.Status, &k.KeyChanged, &k.PublicKeyDER,
			&attrs, &k.FirstSeen, &k.LastSeen); err != nil {
			return nil, err
		}
		_ = json.Unmarshal(attrs, &k.Attributes)
		out = append(out, k)
	}
	return out, rows.Err()
}

// KeyStatus returns the status of one key set.
func (s *Store) KeyStatus(ctx context.Context, keySetID int64) (string, error) {
	var st string
	err := s.pool.QueryRow(ctx, `SELECT status FROM device_keys WHERE id = $1`, keySetID).Scan(&st)
	return st, notFound(err)
}

// refreshStatus recomputes devices.status from the key sets, in tx. A
// pending key set wins (it needs an operator), then an accepted one.
func refreshStatus(ctx context.Context, tx pgx.Tx, id string) error {
	_, err := tx.Exec(ctx, `UPDATE devices d SET status = CASE
		WHEN d.decommissioned THEN 'decommissioned'
		WHEN EXISTS (SELECT 1 FROM device_keys WHERE device_id = d.id AND status = 'pending') THEN 'pending'
		WHEN EXISTS (SELECT 1 FROM device_keys WHERE device_id = d.id AND status = 'accepted') THEN 'accepted'
		WHEN EXISTS (SELECT 1 FROM device_keys WHERE device_id = d.id AND status = 'preauthorized') THEN 'preauthorized'
		ELSE 'rejected' END
		WHERE d.id = $1`, id)
	return err
}

// KeyChange reports what an operator decision did to a device's key sets.
type KeyChange struct {
	OrgID    int64
	Accepted *KeySet  // the key set accepted, if any
	Closed   []string // fingerprints whose live sessions must close
	Revoked  []string // by Accept: the key sets accepted before, now revoked (also in Closed)
	Rejected []string // by Accept: the other pending key sets, now rejected (also in Closed)
}

// ErrNoPendingKey is returned by Accept when the device has no pending
// key set to accept.
var ErrNoPendingKey = errors.New("store: no pending key set")

// ErrKeyNotPending is returned (as *KeyNotPendingError) by Accept when the
// named key set is not a pending key set of the device.
var ErrKeyNotPending = errors.New("store: key set not pending")

// KeyNotPendingError says what the key set Accept was asked for is
// instead: its status, or "" when the device has no key set of that
// fingerprint.
type KeyNotPendingError struct {
	Fingerprint string
	Status      string
}

func (e *KeyNotPendingError) Error() string {
	if e.Status == "" {
		return fmt.Sprintf("%v: %s is not a key of the device", ErrKeyNotPending, e.Fingerprint)
	}
	return fmt.Sprintf("%v: %s is %s", ErrKeyNotPending, e.Fingerprint, e.Status)
}

// Is makes errors.Is(err, ErrKeyNotPending) hold.
func (e *KeyNotPendingError) Is(target error) bool { return target == ErrKeyNotPending }

// ErrAmbiguousKey is returned (as *AmbiguousKeyError) by Accept without a
// fingerprint when the device has more than one pending key set.
var ErrAmbiguousKey = errors.New("store: more than one pending key set")

// AmbiguousKeyError lists the pending key sets Accept could not choose
// between, newest first.
type AmbiguousKeyError struct {
	Fingerprints []string
}

func (e *AmbiguousKeyError) Error() string {
	return fmt.Sprintf("%v: %s", ErrAmbiguousKey, strings.Join(e.Fingerprints, ", "))
}

// Is makes errors.Is(err, ErrAmbiguousKey) hold.
func (e *AmbiguousKeyError) Is(target error) bool { return target == ErrAmbiguousKey }

// Accept accepts one pending key set of a device: the one with fingerprint,
// or, when fingerprint is "", the device's only pending key set. Any key set
// accepted before is revoked and every other pending key set of the device
// is rejected (KeyChange.Rejected): an acceptance is the operator's review
// of the device's keys, and a key it did not pick is not left waiting for a
// later, unreviewed accept. Errors: ErrNotFound (no device),
// ErrNoPendingKey (nothing pending), ErrKeyNotPending (the named key set is
// not pending; the message says its status), *AmbiguousKeyError (no
// fingerprint and several pending key sets).
func (s *Store) Accept(ctx context.Context, deviceID, fingerprint string) (KeyChange, error) {
	var kc KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kc = KeyChange{}
		if err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&kc.OrgID); err != nil {
			return notFound(err)
		}
		rows, err := tx.Query(ctx, `SELECT id, fingerprint, alg FROM device_keys WHERE device_id = $1 AND status = 'pending'
			ORDER BY id DESC`, deviceID)
		if err != nil {
			return err
		}
		pending, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (KeySet, error) {
			var k KeySet
			err := row.Scan(&k.ID, &k.Fingerprint, &k.Alg)
			return k, err
		})
		if err != nil {
			return err
		}
		var k *KeySet
		switch {
		case fingerprint != "":
			for i := range pending {
				if pending[i].Fingerprint == fingerprint {
					k = &pending[i]
				}
			}
			if k == nil {
				e := &KeyNotPendingError{Fingerprint: fingerprint}
				err := tx.QueryRow(ctx, `SELECT status FROM device_keys WHERE device_id = $1 AND fingerprint = $2`,
					deviceID, fingerprint).Scan(&e.Status)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				return e
			}
		case len(pending) == 0:
			return ErrNoPendingKey
		case len(pending) > 1:
			e := &AmbiguousKeyError{}
			for _, p := range pending {
				e.Fingerprints = append(e.Fingerprints, p.Fingerprint)
			}
			return e
		default:
			k = &pending[0]
		}
		rows, err = tx.Query(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1 AND status = 'accepted' AND id <> $2
			RETURNING fingerprint`, deviceID, k.ID)
		if err != nil {
			return err
		}
		if kc.Revoked, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE device_keys SET status = 'rejected' WHERE device_id = $1 AND status = 'pending' AND id <> $2
			RETURNING fingerprint`, deviceID, k.ID)
		if err != nil {
			return err
		}
		if kc.Rejected, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		kc.Closed = append(append([]string{}, kc.Revoked...), kc.Rejected...)
		if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'accepted' WHERE id = $1`, k.ID); err != nil {
			return err
		}
		k.DeviceID, k.Status = deviceID, KeyAccepted
		kc.Accepted = k
		return refreshStatus(ctx, tx, deviceID)
	})
	if err != nil {
		return KeyChange{}, fmt.Errorf("accepting device %s: %w", deviceID, err)
	}
	return kc, nil
}

// Reject rejects the device's pending key sets; when it has none, it rejects
// its accepted and preauthorised ones instead (taking access away).
func (s *Store) Reject(ctx context.Context, deviceID string) (KeyChange, error) {
	var kc KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kc = KeyChange{}
		if err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&kc.OrgID); err != nil {
			return notFound(err)
		}
		rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'rejected' WHERE device_id = $1 AND status = 'pending'
			RETURNING fingerprint`, deviceID)
		if err != nil {
			return err
		}
		if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(kc.Closed) == 0 {
			rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'rejected' WHERE device_id = $1
				AND status IN ('accepted', 'preauthorized') RETURNING fingerprint`, deviceID)
			if err != nil {
				return err
			}
			if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
		}
		return refreshStatus(ctx, tx, deviceID)
	})
	if err != nil {
		return KeyChange{}, fmt.Errorf("rejecting device %s: %w", deviceID, err)
	}
	return kc, nil
}

// Preauthorize records a key that is accepted on the device's first contact
// with it. The device row is created in orgID when missing; an existing
// device of another organisation is ErrNotFound. A key that is already
// pending is accepted at once (KeyChange.Accepted set).
func (s *Store) Preauthorize(ctx context.Context, orgID int64, deviceID string, der []byte, fingerprint, alg string) (KeyChange, error) {
	var kc KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kc = KeyChange{OrgID: orgID}
		var devOrg int64
		err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&devOrg)
		switch {
		case err == pgx.ErrNoRows:
			if _, err := tx.Exec(ctx, `INSERT INTO devices (id, org_id, status) VALUES ($1, $2, 'preauthorized')`, deviceID, orgID); err != nil {
				return err
			}
		case err != nil:
			return err
		case devOrg != orgID:
			return ErrNotFound
		default:
			if _, err := tx.Exec(ctx, `UPDATE devices SET decommissioned = false WHERE id = $1`, deviceID); err != nil {
				return err
			}
		}
		var id int64
		var status string
		err = tx.QueryRow(ctx, `SELECT id, status FROM device_keys WHERE device_id = $1 AND fingerprint = $2 FOR UPDATE`,
			deviceID, fingerprint).Scan(&id, &status)
		switch {
		case err == pgx.ErrNoRows:
			_, err = tx.Exec(ctx, `INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status)
				VALUES ($1, $2, $3, $4, 'preauthorized')`, deviceID, der, fingerprint, alg)
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case status == KeyPending:
			rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1 AND status = 'accepted'
				RETURNING fingerprint`, deviceID)
			if err != nil {
				return err
			}
			if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'accepted' WHERE id = $1`, id); err != nil {
				return err
			}
			kc.Accepted = &KeySet{ID: id, DeviceID: deviceID, Fingerprint: fingerprint, Alg: alg, Status: KeyAccepted}
		case status == KeyAccepted:
			// already usable: nothing to do
		default:
			if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'preauthorized' WHERE id = $1`, id); err != nil {
				return err
			}
		}
		return refreshStatus(ctx, tx, deviceID)
	})
	if err != nil {
		return KeyChange{}, fmt.Errorf("preauthorising device %s: %w", deviceID, err)
	}
	return kc, nil
}

// Decommission revokes every key set of the device and marks it
// decommissioned; its history (calls, audit, key sets) stays.
func (s *Store) Decommission(ctx context.Context, deviceID string) (KeyChange, error) {
	var kc KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		kc, err = decommissionTx(ctx, tx, deviceID)
		return err
	})
	if err != nil {
		return KeyChange{}, fmt.Errorf("decommissioning device %s: %w", deviceID, err)
	}
	return kc, nil
}

// decommissionTx is Decommission inside tx (DecommissionMany runs it for
// several devices in one transaction).
func decommissionTx(ctx context.Context, tx pgx.Tx, deviceID string) (KeyChange, error) {
	kc := KeyChange{}
	if err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&kc.OrgID); err != nil {
		return kc, notFound(err)
	}
	rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1
		AND status IN ('pending', 'accepted', 'preauthorized') RETURNING fingerprint`, deviceID)
	if err != nil {
		return kc, err
	}
	if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return kc, err
	}
	if _, err := tx.Exec(ctx, `UPDATE devices SET decommissioned = true WHERE id = $1`, deviceID); err != nil {
		return kc, err
	}
	return kc, refreshStatus(ctx, tx, deviceID)
}

// PendingKey is one pending key set and its device, for the dashboard's
// pending keys page.
type PendingKey struct {
	KeySetID    int64
	DeviceID    string
	OrgID       int64
	Fingerprint string
	Alg         string
	KeyChanged  bool
	Attributes  map[string]string
	FirstSeen   time.Time // when this key was first presented
	LastSeen    time.Time
	Online      bool
	// Pending is how many pending key sets the device has (this one
	// included): more than one means the operator must choose.
	Pending int
}

// PendingKeys lists the pending key sets of the devices of org (0: all),
// newest first, and how many there are in all.
func (s *Store) PendingKeys(ctx context.Context, orgID int64, limit int) ([]PendingKey, int, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.id, k.device_id, d.org_id, k.fingerprint, k.alg, k.key_changed,
			k.attributes, k.first_seen, k.last_seen, d.online,
			count(*) OVER (PARTITION BY k.device_id), count(*) OVER ()
		FROM device_keys k JOIN devices d ON d.id = k.device_id
		WHERE k.status = 'pending' AND ($1::bigint = 0 OR d.org_id = $1)
		ORDER BY k.first_seen DESC, k.device_id, k.id DESC LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []PendingKey
	total := 0
	for rows.Next() {
		var p PendingKey
		var attrs []byte
		if err := rows.Scan(&p.KeySetID, &p.DeviceID, &p.OrgID, &p.Fingerprint, &p.Alg, &p.KeyChanged, &attrs,
			&p.FirstSeen, &p.LastSeen, &p.Online, &p.Pending, &total); err != nil {
			return nil, 0, err
		}
		_ = json.Unmarshal(attrs, &p.Attributes)
		out = append(out, p)
	}
	return out, total, rows.Err()
}
