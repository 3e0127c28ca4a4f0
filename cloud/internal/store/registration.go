package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds registration: what happens in the database when a device
// presents its key. Admit applies a decision made by its caller (package
// fleet owns the rules) in the same transaction that reads what the
// decision looks at. PrunePending deletes what registrations left behind
// and no operator ever looked at.

// Advisory lock namespaces: the first key of the two-key form of
// pg_advisory_xact_lock, whose key space does not overlap the one-key form
// Migrate uses. The second key is hashtext of the device id, organisation
// id or address; a collision only serialises more than needed.
//
// Lock order, in every transaction that takes more than one: the device
// (advisory lock, then its row FOR UPDATE), then its organisation, then the
// source address. Only Admit takes the advisory locks.
const (
	lockDevice int32 = 0x626f0001
	lockOrg    int32 = 0x626f0002
	lockAddr   int32 = 0x626f0003
)

// AdmitReservation is how long an admission as pending counts as a live
// pending session before its session is marked online (StartSession ends
// the reservation sooner). It covers the moments between Admit and
// StartSession, so that concurrent registrations cannot all see the same
// free slot.
const AdmitReservation = 15 * time.Second

// livePending holds for a device row with a live pending session: one
// being admitted as pending, or one online whose session key is pending
// (when the session key is unknown, e.g. a session started before Admit
// existed, the device's status decides). A device online with its accepted
// key is not a pending session, even while another key of it is pending.
var livePending = `(d.online OR d.pending_admitted_at IS NOT NULL) AND (
	d.pending_admitted_at > now() - make_interval(secs => ` + strconv.Itoa(int(AdmitReservation/time.Second)) + `)
	OR (d.online AND coalesce((SELECT sk.status = 'pending' FROM device_keys sk WHERE sk.id = d.session_key_id), d.status = 'pending')))`

// unreviewed holds for a device row no operator has decided on: every key
// set of it (none, after pruning) is pending. Preauthorised, accepted,
// rejected and revoked key sets are all decisions.
const unreviewed = `d.status = 'pending' AND NOT EXISTS (
	SELECT 1 FROM device_keys uk WHERE uk.device_id = d.id AND uk.status <> 'pending')`

// AdmitInput is a registration to decide on: what the device presented,
// after its signature was verified, and where it came from.
type AdmitInput struct {
	DeviceID     string
	OrgID        int64 // organisation for a device not seen before
	PublicKeyDER []byte
	Fingerprint  string
	Alg          string
	Attributes   map[string]string
	// Addr is the source address the per-address limits count by (see
	// fleet's sourceAddr); it is recorded in devices.first_addr and
	// devices.last_addr.
	Addr string
}

// AdmitState is what a registration decision looks at, read inside the
// transaction that applies it, with the device's row locked. The count
// methods query on demand; the first of them takes the advisory locks of
// the organisation and of the address, so that what they count cannot
// change until the decision is applied. Counts leave the device itself out.
type AdmitState struct {
	Exists         bool  // the device row exists
	OrgID          int64 // the device's organisation (the input's for a new device)
	Decommissioned bool
	Online         bool    // the device holds a live session now
	HasAccepted    bool    // some key set of the device is accepted
	PendingKeys    int     // pending key sets of the device
	Key            *KeySet // the key set with the presented fingerprint; nil: a new key

	tx     pgx.Tx
	in     *AdmitInput
	locked bool
}

func (st *AdmitState) lock(ctx context.Context) error {
	if st.locked {
		return nil
	}
	if _, err := st.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockOrg, fmt.Sprint(st.OrgID)); err != nil {
		return fmt.Errorf("locking organisation %d: %w", st.OrgID, err)
	}
	if _, err := st.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockAddr, st.in.Addr); err != nil {
		return fmt.Errorf("locking address %s: %w", st.in.Addr, err)
	}
	st.locked = true
	return nil
}

func (st *AdmitState) count(ctx context.Context, what, q string, args ...any) (int, error) {
	if err := st.lock(ctx); err != nil {
		return 0, err
	}
	var n int
	if err := st.tx.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting %s: %w", what, err)
	}
	return n, nil
}

// LivePendingInOrg counts the other live pending sessions of the device's
// organisation.
func (st *AdmitState) LivePendingInOrg(ctx context.Context) (int, error) {
	return st.count(ctx, "live pending sessions of the organisation", `SELECT count(*) FROM devices d
		WHERE d.org_id = $1 AND d.id <> $2 AND `+livePending, st.OrgID, st.in.DeviceID)
}

// LivePendingFromAddr counts the other live pending sessions from the
// registration's address, in every organisation.
func (st *AdmitState) LivePendingFromAddr(ctx context.Context) (int, error) {
	return st.count(ctx, "live pending sessions of the address", `SELECT count(*) FROM devices d
		WHERE d.last_addr = $1 AND d.id <> $2 AND `+livePending, st.in.Addr, st.in.DeviceID)
}

// UnreviewedInOrg counts the device rows of the organisation no operator
// has decided on.
func (st *AdmitState) UnreviewedInOrg(ctx context.Context) (int, error) {
	return st.count(ctx, "unreviewed devices of the organisation", `SELECT count(*) FROM devices d
		WHERE d.org_id = $1 AND d.id <> $2 AND `+unreviewed, st.OrgID, st.in.DeviceID)
}

// NewUnreviewedFromAddr counts the unreviewed device rows, in every
// organisation, that registrations from the address created within the
// last period.
func (st *AdmitState) NewUnreviewedFromAddr(ctx context.Context, period time.Duration) (int, error) {
	return st.count(ctx, "new unreviewed devices of the address", `SELECT count(*) FROM devices d
		WHERE d.first_addr = $1 AND d.first_seen > now() - make_interval(secs => $2) AND d.id <> $3 AND `+unreviewed,
		st.in.Addr, period.Seconds(), st.in.DeviceID)
}

// AdmitVerdict is what a registration decision tells Admit to do.
type AdmitVerdict int

// Verdicts.
const (
	// AdmitRefuse writes nothing.
	AdmitRefuse AdmitVerdict = iota
	// AdmitKnown records that the presented key set, which is known and
	// accepted or pending, was seen.
	AdmitKnown
	// AdmitPromote accepts the presented preauthorised key set and revokes
	// any other accepted one: a planned key rotation.
	AdmitPromote
	// AdmitNew stores the presented key as a new pending key set (flagged
	// key_changed unless the device is new or decommissioned), creating
	// the device row when there is none.
	AdmitNew
)

// AdmitResult is what Admit did.
type AdmitResult struct {
	Verdict    AdmitVerdict
	OrgID      int64
	KeySetID   int64  // the presented key set; 0 for a refused new key
	KeyStatus  string // its status afterwards; "" for a refused new key
	KeyChanged bool
	NewDevice  bool // the device row was created
	NewKey     bool // the key set was created
}

// Admit decides on a registration and applies the decision in one
// transaction: it locks the device (an advisory lock on its id, then its
// row), reads its state, calls decide, and applies the verdict. A refusal
// writes nothing. Any other verdict also records the registration's address
// and key set as the device's session's (last_addr, first_addr when unset,
// session_key_id), sets last_seen, and for a pending key reserves a live
// pending session (pending_admitted_at, see AdmitReservation). decide may
// call the state's count methods; it must not keep the state.
func (s *Store) Admit(ctx context.Context, in AdmitInput, decide func(context.Context, *AdmitState) (AdmitVerdict, error)) (AdmitResult, error) {
	var res AdmitResult
	attrs, err := json.Marshal(nonNil(in.Attributes))
	if err != nil {
		return res, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		res = AdmitResult{}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockDevice, in.DeviceID); err != nil {
			return fmt.Errorf("locking: %w", err)
		}
		st := &AdmitState{tx: tx, in: &in, OrgID: in.OrgID}
		err := tx.QueryRow(ctx, `SELECT org_id, decommissioned, online FROM devices WHERE id = $1 FOR UPDATE`, in.DeviceID).
			Scan(&st.OrgID, &st.Decommissioned, &st.Online)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			st.Exists = true
			k := KeySet{DeviceID: in.DeviceID, Fingerprint: in.Fingerprint, Alg: in.Alg}
			err := tx.QueryRow(ctx, `SELECT id, status, key_changed FROM device_keys WHERE device_id = $1 AND fingerprint = $2`,
				in.DeviceID, in.Fingerprint).Scan(&k.ID, &k.Status, &k.KeyChanged)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			default:
				st.Key = &k
			}
			if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'), coalesce(bool_or(status = 'accepted'), false)
				FROM device_keys WHERE device_id = $1`, in.DeviceID).Scan(&st.PendingKeys, &st.HasAccepted); err != nil {
				return err
			}
		}
		v, err := decide(ctx, st)
		if err != nil {
			return err
		}
		res.Verdict, res.OrgID = v, st.OrgID
		if st.Key != nil {
			res.KeySetID, res.KeyStatus, res.KeyChanged = st.Key.ID, st.Key.Status, st.Key.KeyChanged
		}
		switch v {
		case AdmitRefuse:
			return nil
		case AdmitKnown:
			if st.Key == nil || (st.Key.Status != KeyAccepted && st.Key.Status != KeyPending) {
				return fmt.Errorf("verdict known for a key set that is %s", res.KeyStatus)
			}
			if _, err := tx.Exec(ctx, `UPDATE device_keys SET last_seen = now() WHERE id = $1`, res.KeySetID); err != nil {
				return err
			}
		case AdmitPromote:
			if st.Key == nil || st.Key.Status != KeyPreauthorized {
				return fmt.Errorf("verdict promote for a key set that is %s", res.KeyStatus)
			}
			if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1 AND status = 'accepted'`, in.DeviceID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'accepted', key_changed = false, last_seen = now() WHERE id = $1`, res.KeySetID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE devices SET attributes = $2 WHERE id = $1`, in.DeviceID, attrs); err != nil {
				return err
			}
			res.KeyStatus, res.KeyChanged = KeyAccepted, false
		case AdmitNew:
			if st.Key != nil {
				return errors.New("verdict new for a known key set")
			}
			if !st.Exists {
				if _, err := tx.Exec(ctx, `INSERT INTO devices (id, org_id, status, attributes, first_addr) VALUES ($1, $2, 'pending', $3, $4)`,
					in.DeviceID, st.OrgID, attrs, in.Addr); err != nil {
					return err
				}
				res.NewDevice = true
			} else if st.Decommissioned {
				if _, err := tx.Exec(ctx, `UPDATE devices SET decommissioned = false, attributes = $2 WHERE id = $1`, in.DeviceID, attrs); err != nil {
					return err
				}
			}
			res.KeyChanged = st.Exists && !st.Decommissioned
			if err := tx.QueryRow(ctx, `INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status, key_changed, attributes)
				VALUES ($1, $2, $3, $4, 'pending', $5, $6) RETURNING id`,
				in.DeviceID, in.PublicKeyDER, in.Fingerprint, in.Alg, res.KeyChanged, attrs).Scan(&res.KeySetID); err != nil {
				return err
			}
			res.NewKey, res.KeyStatus = true, KeyPending
		default:
			return fmt.Errorf("unknown verdict %d", v)
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET last_addr = $2, first_addr = CASE WHEN first_addr = '' THEN $2 ELSE first_addr END,
			session_key_id = $3, last_seen = now(), pending_admitted_at = CASE WHEN $4 THEN now() END WHERE id = $1`,
			in.DeviceID, in.Addr, res.KeySetID, res.KeyStatus == KeyPending); err != nil {
			return err
		}
		return refreshStatus(ctx, tx, in.DeviceID)
	})
	if err != nil {
		return AdmitResult{}, fmt.Errorf("admitting device %s: %w", in.DeviceID, err)
	}
	return res, nil
}

// Pruned is what one PrunePending round deleted.
type Pruned struct {
	KeySets []string    // "<device id> <fingerprint>" of every pending key set deleted
	Devices []DeviceRef // devices deleted
}

// PrunePending deletes what registrations left and no operator ever
// decided on, once not seen for olderThan: pending key sets (but not the key
// of the device's live or latest session while the device itself was seen
// within olderThan), then devices every key set of which is pending (or that
// have none left), that are not online and were not seen within olderThan.
// A device with an accepted, rejected, revoked or preauthorised key set
// keeps its row; only its stale pending key sets go. At most batch devices
// are looked at per call; a device some other transaction holds (being
// admitted, accepted, ...) is skipped until the next round, so pruning never
// waits for a lock and replicas pruning at once share the work.
func (s *Store) PrunePending(ctx context.Context, olderThan time.Duration, batch int) (Pruned, error) {
	var p Pruned
	secs := olderThan.Seconds()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		p = Pruned{}
		rows, err := tx.Query(ctx, `SELECT id FROM devices WHERE id IN (
				SELECT device_id FROM device_keys WHERE status = 'pending' AND last_seen < now() - make_interval(secs => $1)
				UNION
				SELECT id FROM devices WHERE status = 'pending' AND NOT online AND last_seen < now() - make_interval(secs => $1))
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, secs, batch)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `DELETE FROM device_keys k USING devices d
			WHERE d.id = k.device_id AND d.id = ANY($1) AND k.status = 'pending' AND k.last_seen < now() - make_interval(secs => $2)
			AND NOT (d.session_key_id = k.id AND (d.online OR d.last_seen >= now() - make_interval(secs => $2)))
			AND NOT (d.online AND d.session_key_id IS NULL)
			RETURNING k.device_id || ' ' || k.fingerprint`, ids, secs)
		if err != nil {
			return err
		}
		if p.KeySets, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `DELETE FROM devices d WHERE d.id = ANY($1) AND NOT d.online
			AND (d.pending_admitted_at IS NULL OR d.pending_admitted_at < now() - make_interval(secs => $3))
			AND d.last_seen < now() - make_interval(secs => $2) AND `+unreviewed+`
			RETURNING d.org_id, d.id`, ids, secs, AdmitReservation.Seconds())
		if err != nil {
			return err
		}
		if p.Devices, err = pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef]); err != nil {
			return err
		}
		for _, id := range ids {
			if err := refreshStatus(ctx, tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Pruned{}, fmt.Errorf("pruning pending registrations: %w", err)
	}
	return p, nil
}

// AdmitAccepted is Admit's path for the registration almost every
// reconnect is: a known device, accepted and not decommissioned,
// presenting its accepted key. It records the session as Admit's
// AdmitKnown verdict does (last_addr, session_key_id, last_seen, the key
// set's last_seen) in one statement, with the device and key set rows
// locked as Admit locks them, and reports ok. Any other registration —
// unknown device or key, a pending key beside it, any other status — is
// left untouched with ok false, for Admit to decide. (The device's status
// cannot change here: an accepted device with no pending key set stays
// accepted.)
func (s *Store) AdmitAccepted(ctx context.Context, deviceID, fingerprint, addr string) (AdmitResult, bool, error) {
	res := AdmitResult{Verdict: AdmitKnown, KeyStatus: KeyAccepted}
	err := s.pool.QueryRow(ctx, `WITH k AS (
			SELECT k.id, d.org_id, k.key_changed FROM devices d JOIN device_keys k ON k.device_id = d.id
			WHERE d.id = $1 AND k.fingerprint = $2 AND k.status = 'accepted'
				AND d.status = 'accepted' AND NOT d.decommissioned
			FOR UPDATE OF d, k
		), uk AS (
			UPDATE device_keys SET last_seen = now() WHERE id IN (SELECT id FROM k)
		), ud AS (
			UPDATE devices SET last_addr = $3, first_addr = CASE WHEN first_addr = '' THEN $3 ELSE first_addr END,
				session_key_id = (SELECT id FROM k), last_seen = now(), pending_admitted_at = NULL
			WHERE id = $1 AND EXISTS (SELECT 1 FROM k)
		)
		SELECT id, org_id, key_changed FROM k`, deviceID, fingerprint, addr).Scan(&res.KeySetID, &res.OrgID, &res.KeyChanged)
	if errors.Is(err, pgx.ErrNoRows) {
		return AdmitResult{}, false, nil
	}
	if err != nil {
		return AdmitResult{}, false, fmt.Errorf("admitting device %s: %w", deviceID, err)
	}
	return res, true, nil
}
