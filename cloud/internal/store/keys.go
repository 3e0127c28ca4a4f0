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

// KeyStatuses returns the status of each key set of ids that exists.
func (s *Store) KeyStatuses(ctx context.Context, ids []int64) (map[int64]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, status FROM device_keys WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]string, len(ids))
	var id int64
	var st string
	_, err = pgx.ForEachRow(rows, []any{&id, &st}, func() error {
		out[id] = st
		return nil
	})
	return out, err
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
	Was      string   // by Accept: the accepted key set's status before, pending or rejected
}

// ErrNoPendingKey is returned (as *NothingToAcceptError) by Accept without
// a fingerprint when the device has no key set it could accept.
var ErrNoPendingKey = errors.New("store: no pending key set")

// NothingToAcceptError is the ErrNoPendingKey of one device: Accepted is
// the fingerprint of its accepted key set, "" when it has none.
type NothingToAcceptError struct {
	Accepted string
}

func (e *NothingToAcceptError) Error() string {
	if e.Accepted != "" {
		return fmt.Sprintf("%v (%s is accepted)", ErrNoPendingKey, e.Accepted)
	}
	return ErrNoPendingKey.Error()
}

// Is makes errors.Is(err, ErrNoPendingKey) hold.
func (e *NothingToAcceptError) Is(target error) bool { return target == ErrNoPendingKey }

// ErrDecommissioned is returned by Accept for a decommissioned device: it
// comes back by registering with a new key, or a preauthorised one.
var ErrDecommissioned = errors.New("store: device decommissioned")

// ErrKeyNotPending is returned (as *KeyNotPendingError) by Accept when the
// named key set is not one Accept may accept: not pending, or, unless the
// input is PendingOnly, not rejected either.
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
// fingerprint when the device has more than one candidate key set.
var ErrAmbiguousKey = errors.New("store: more than one pending key set")

// AmbiguousKeyError lists the key sets Accept could not choose between,
// newest first, with the status of each (pending or rejected).
type AmbiguousKeyError struct {
	Fingerprints []string
	Statuses     []string
}

func (e *AmbiguousKeyError) Error() string {
	return fmt.Sprintf("%v: %s", ErrAmbiguousKey, strings.Join(e.Fingerprints, ", "))
}

// Is makes errors.Is(err, ErrAmbiguousKey) hold.
func (e *AmbiguousKeyError) Is(target error) bool { return target == ErrAmbiguousKey }

// AcceptInput is what Accept accepts.
type AcceptInput struct {
	DeviceID string
	// Fingerprint names the key set; "" means the device's only
	// candidate (see Accept).
	Fingerprint string
	// PendingOnly limits Accept to pending key sets: a form that showed a
	// pending key, which someone rejected since, must not bring it back.
	PendingOnly bool
	// Actor is recorded as rejected_by on the key sets Accept rejects.
	Actor string
}

// Accept accepts one key set of a device that is pending or rejected (a
// rejection is reversible; a revocation is not): the one with
// in.Fingerprint, or, when it is "", the device's only candidate. The
// candidates are its pending key sets and, while no key set of it is
// accepted, its rejected ones; with PendingOnly, its pending key sets
// only. Any key set accepted before is revoked and every other pending key
// set of the device is rejected (KeyChange.Rejected): an acceptance is the
// operator's review of the device's keys, and a key it did not pick is not
// left waiting for a later, unreviewed accept. Errors: ErrNotFound (no
// device), ErrDecommissioned, *NothingToAcceptError (no candidate), *KeyNotPendingError (the
// named key set may not be accepted; the error says its status),
// *AmbiguousKeyError (no fingerprint and several candidates).
func (s *Store) Accept(ctx context.Context, in AcceptInput) (KeyChange, error) {
	var kc KeyChange
	deviceID, fingerprint := in.DeviceID, in.Fingerprint
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kc = KeyChange{}
		var decommissioned bool
		if err := tx.QueryRow(ctx, `SELECT org_id, decommissioned FROM devices WHERE id = $1 FOR UPDATE`, deviceID).
			Scan(&kc.OrgID, &decommissioned); err != nil {
			return notFound(err)
		}
		if decommissioned {
			// Every key it had is revoked or rejected, and it has no
			// pending one (a new key ends the decommissioning).
			return ErrDecommissioned
		}
		rows, err := tx.Query(ctx, `SELECT id, fingerprint, alg, status FROM device_keys
			WHERE device_id = $1 AND status IN ('pending', 'rejected', 'accepted') ORDER BY id DESC`, deviceID)
		if err != nil {
			return err
		}
		keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (KeySet, error) {
			var k KeySet
			err := row.Scan(&k.ID, &k.Fingerprint, &k.Alg, &k.Status)
			return k, err
		})
		if err != nil {
			return err
		}
		accepted := ""
		for _, k := range keys {
			if k.Status == KeyAccepted {
				accepted = k.Fingerprint
			}
		}
		var cands []*KeySet
		for i := range keys {
			switch k := &keys[i]; {
			case k.Status == KeyPending:
				cands = append(cands, k)
			case k.Status == KeyRejected && !in.PendingOnly && (fingerprint != "" || accepted == ""):
				// Without a fingerprint a rejected key is only a
				// candidate while nothing is accepted: bringing it back
				// must not silently replace a working key.
				cands = append(cands, k)
			}
		}
		var k *KeySet
		switch {
		case fingerprint != "":
			for _, c := range cands {
				if c.Fingerprint == fingerprint {
					k = c
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
		case len(cands) == 0:
			return &NothingToAcceptError{Accepted: accepted}
		case len(cands) > 1:
			e := &AmbiguousKeyError{}
			for _, c := range cands {
				e.Fingerprints = append(e.Fingerprints, c.Fingerprint)
				e.Statuses = append(e.Statuses, c.Status)
			}
			return e
		default:
			k = cands[0]
		}
		rows, err = tx.Query(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1 AND status = 'accepted' AND id <> $2
			RETURNING fingerprint`, deviceID, k.ID)
		if err != nil {
			return err
		}
		if kc.Revoked, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE device_keys SET status = 'rejected', rejected_at = now(), rejected_by = $3
			WHERE device_id = $1 AND status = 'pending' AND id <> $2 RETURNING fingerprint`, deviceID, k.ID, in.Actor)
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
		kc.Was = k.Status
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
// its accepted and preauthorised ones instead (taking access away). actor
// is recorded as rejected_by.
func (s *Store) Reject(ctx context.Context, deviceID, actor string) (KeyChange, error) {
	var kc KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kc = KeyChange{}
		if err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&kc.OrgID); err != nil {
			return notFound(err)
		}
		rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'rejected', rejected_at = now(), rejected_by = $2
			WHERE device_id = $1 AND status = 'pending' RETURNING fingerprint`, deviceID, actor)
		if err != nil {
			return err
		}
		if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(kc.Closed) == 0 {
			rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'rejected', rejected_at = now(), rejected_by = $2
				WHERE device_id = $1 AND status IN ('accepted', 'preauthorized') RETURNING fingerprint`, deviceID, actor)
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
	Online      bool // as Device.Online
	// Pending is how many pending key sets the device has (this one
	// included): more than one means the operator must choose.
	Pending int
}

// PendingKeys lists the pending key sets of the devices of org (0: all),
// newest first, and how many there are in all.
func (s *Store) PendingKeys(ctx context.Context, orgID int64, limit int) ([]PendingKey, int, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.id, k.device_id, d.org_id, k.fingerprint, k.alg, k.key_changed,
			k.attributes, k.first_seen, k.last_seen, `+liveOnline+`,
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

// RejectedKey is one rejected key set and its device, for the dashboard's
// list of rejected keys (an operator may accept one again).
type RejectedKey struct {
	KeySetID    int64
	DeviceID    string
	OrgID       int64
	Fingerprint string
	Alg         string
	Attributes  map[string]string
	FirstSeen   time.Time  // when this key was first presented
	RejectedAt  *time.Time // nil: rejected before decisions were recorded
	RejectedBy  string     // the actor's name; "" when not recorded
	// DeviceAccepted reports that the device has an accepted key set:
	// accepting this one revokes it.
	DeviceAccepted bool
}

// RejectedKeys lists the rejected key sets of the live (not decommissioned)
// devices of org (0: all), newest decision first, and how many there are
// in all.
func (s *Store) RejectedKeys(ctx context.Context, orgID int64, limit int) ([]RejectedKey, int, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.id, k.device_id, d.org_id, k.fingerprint, k.alg, k.attributes, k.first_seen,
			k.rejected_at, k.rejected_by,
			EXISTS (SELECT 1 FROM device_keys a WHERE a.device_id = k.device_id AND a.status = 'accepted'),
			count(*) OVER ()
		FROM device_keys k JOIN devices d ON d.id = k.device_id
		WHERE k.status = 'rejected' AND NOT d.decommissioned AND ($1::bigint = 0 OR d.org_id = $1)
		ORDER BY k.rejected_at DESC NULLS LAST, k.id DESC LIMIT $2`, orgID, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []RejectedKey
	total := 0
	for rows.Next() {
		var r RejectedKey
		var attrs []byte
		if err := rows.Scan(&r.KeySetID, &r.DeviceID, &r.OrgID, &r.Fingerprint, &r.Alg, &attrs, &r.FirstSeen,
			&r.RejectedAt, &r.RejectedBy, &r.DeviceAccepted, &total); err != nil {
			return nil, 0, err
		}
		_ = json.Unmarshal(attrs, &r.Attributes)
		out = append(out, r)
	}
	return out, total, rows.Err()
}
