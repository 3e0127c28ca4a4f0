package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Device statuses, derived from the device's key sets by refreshStatus.
const (
	DevicePending        = "pending"
	DeviceAccepted       = "accepted"
	DeviceRejected       = "rejected"
	DevicePreauthorized  = "preauthorized"
	DeviceDecommissioned = "decommissioned"
)

// Key set statuses.
const (
	KeyPending       = "pending"
	KeyAccepted      = "accepted"
	KeyRejected      = "rejected"
	KeyPreauthorized = "preauthorized"
	KeyRevoked       = "revoked"
)

// Device is one row of devices joined with its current key set: the newest
// pending one if any (that is what needs an operator), else the accepted
// one, else the newest.
type Device struct {
	OrgID          int64
	ID             string
	Status         string // pending|accepted|rejected|preauthorized|decommissioned
	Fingerprint    string
	Alg            string
	KeyChanged     bool
	Online         bool
	Replica        string
	SessionVersion int64
	FirstSeen      time.Time
	LastSeen       time.Time
	Tags           []string
	Attributes     map[string]string // identity attributes from registration
	Inventory      json.RawMessage   // last state.report params, or nil
	// HasAcceptedKey reports whether some key set of the device is
	// accepted (a device whose new key is pending still has its old one).
	HasAcceptedKey bool
}

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

// DeviceFilter selects devices. Zero fields do not filter.
type DeviceFilter struct {
	OrgID  int64 // 0: every organisation
	Status string
	Online *bool
	Tag    string
	Text   string // substring of the id or of an attribute value
	Limit  int
	Offset int
}

// Counts are the numbers the dashboard shows at the top.
type Counts struct {
	Online, Offline, Pending, Rejected, Total int
}

const deviceColumns = `d.org_id, d.id, d.status, coalesce(k.fingerprint, ''), coalesce(k.alg, ''),
	coalesce(k.key_changed, false), d.online, d.replica, d.session_version, d.first_seen, d.last_seen,
	d.tags, d.attributes, d.inventory,
	EXISTS (SELECT 1 FROM device_keys a WHERE a.device_id = d.id AND a.status = 'accepted')`

const deviceFrom = ` FROM devices d LEFT JOIN LATERAL (
	SELECT fingerprint, alg, key_changed FROM device_keys dk WHERE dk.device_id = d.id
	ORDER BY CASE dk.status WHEN 'pending' THEN 0 WHEN 'accepted' THEN 1 WHEN 'preauthorized' THEN 2 ELSE 3 END, dk.id DESC
	LIMIT 1) k ON true`

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	var attrs []byte
	var inv []byte
	err := row.Scan(&d.OrgID, &d.ID, &d.Status, &d.Fingerprint, &d.Alg, &d.KeyChanged, &d.Online,
		&d.Replica, &d.SessionVersion, &d.FirstSeen, &d.LastSeen, &d.Tags, &attrs, &inv, &d.HasAcceptedKey)
	if err != nil {
		return d, err
	}
	if len(attrs) > 0 {
		if err := json.Unmarshal(attrs, &d.Attributes); err != nil {
			return d, fmt.Errorf("device %s attributes: %w", d.ID, err)
		}
	}
	if len(inv) > 0 {
		d.Inventory = json.RawMessage(inv)
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	return d, nil
}

// GetDevice loads one device.
func (s *Store) GetDevice(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+deviceFrom+` WHERE d.id = $1`, id))
	if err != nil {
		return d, fmt.Errorf("loading device %s: %w", id, notFound(err))
	}
	return d, nil
}

// ListDevices returns one page of devices ordered by id and the total number
// matching the filter.
func (s *Store) ListDevices(ctx context.Context, f DeviceFilter) ([]Device, int, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if f.OrgID != 0 {
		add("d.org_id = ?", f.OrgID)
	}
	if f.Status != "" {
		add("d.status = ?", f.Status)
	}
	if f.Online != nil {
		add("d.online = ?", *f.Online)
	}
	if f.Tag != "" {
		add("? = ANY(d.tags)", f.Tag)
	}
	if f.Text != "" {
		add("(strpos(lower(d.id), lower(?)) > 0 OR strpos(lower(d.attributes::text), lower(?)) > 0)", f.Text)
	}
	q := `SELECT ` + deviceColumns + `, count(*) OVER ()` + deviceFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit, f.Offset)
	q += fmt.Sprintf(" ORDER BY d.id LIMIT $%d OFFSET $%d", len(args)-1, len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	total := 0
	for rows.Next() {
		var d Device
		var attrs, inv []byte
		if err := rows.Scan(&d.OrgID, &d.ID, &d.Status, &d.Fingerprint, &d.Alg, &d.KeyChanged, &d.Online,
			&d.Replica, &d.SessionVersion, &d.FirstSeen, &d.LastSeen, &d.Tags, &attrs, &inv, &d.HasAcceptedKey, &total); err != nil {
			return nil, 0, fmt.Errorf("listing devices: %w", err)
		}
		if len(attrs) > 0 {
			_ = json.Unmarshal(attrs, &d.Attributes)
		}
		if len(inv) > 0 {
			d.Inventory = inv
		}
		if d.Tags == nil {
			d.Tags = []string{}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("listing devices: %w", err)
	}
	if len(out) == 0 && f.Offset > 0 {
		// count(*) OVER () has no row to ride on past the last page.
		n, err := s.countDevices(ctx, where, args[:len(args)-2])
		return out, n, err
	}
	return out, total, nil
}

func (s *Store) countDevices(ctx context.Context, where []string, args []any) (int, error) {
	q := `SELECT count(*) FROM devices d`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	var n int
	err := s.pool.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

// DeviceIDsByTag returns the ids of the devices of org (0: all) carrying tag.
func (s *Store) DeviceIDsByTag(ctx context.Context, orgID int64, tag string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM devices WHERE $2 = ANY(tags) AND ($1::bigint = 0 OR org_id = $1) ORDER BY id`, orgID, tag)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Counts counts devices of org (0: every organisation).
func (s *Store) Counts(ctx context.Context, orgID int64) (Counts, error) {
	var c Counts
	err := s.pool.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE online),
		count(*) FILTER (WHERE NOT online),
		count(*) FILTER (WHERE status = 'pending'),
		count(*) FILTER (WHERE status = 'rejected'),
		count(*)
		FROM devices WHERE $1::bigint = 0 OR org_id = $1`, orgID).Scan(&c.Online, &c.Offline, &c.Pending, &c.Rejected, &c.Total)
	return c, err
}

// SetTags replaces the tags of a device.
func (s *Store) SetTags(ctx context.Context, id string, tags []string) error {
	if tags == nil {
		tags = []string{}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET tags = $2 WHERE id = $1`, id, tags)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
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

// RegisterInput is what a device presented in registration.register, after
// its signature was verified.
type RegisterInput struct {
	DeviceID     string
	OrgID        int64 // organisation for a device not seen before
	PublicKeyDER []byte
	Fingerprint  string
	Alg          string
	Attributes   map[string]string
}

// RegisterOutcome is the decision for one registration.
type RegisterOutcome struct {
	Status     string // accepted, pending or rejected (key set status mapped)
	OrgID      int64
	KeySetID   int64
	KeyChanged bool
	NewDevice  bool // the device row was created by this registration
	NewKey     bool // the key set was created by this registration
}

// Register applies the registration rules in one transaction:
//
//   - unknown device id: new device and new pending key set;
//   - known id, accepted key: accepted;
//   - known id, preauthorised key: accepted (and any other accepted key of
//     the device is revoked: this is a planned key rotation);
//   - known id, pending key: still pending;
//   - known id, rejected or revoked key: rejected;
//   - known id, new key: new pending key set flagged key_changed, never a
//     silent replacement (a decommissioned device starts over, unflagged).
func (s *Store) Register(ctx context.Context, in RegisterInput) (RegisterOutcome, error) {
	var out RegisterOutcome
	attrs, err := json.Marshal(nonNil(in.Attributes))
	if err != nil {
		return out, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out = RegisterOutcome{}
		var decommissioned bool
		err := tx.QueryRow(ctx, `SELECT org_id, decommissioned FROM devices WHERE id = $1 FOR UPDATE`, in.DeviceID).
			Scan(&out.OrgID, &decommissioned)
		switch {
		case err == pgx.ErrNoRows:
			out.OrgID = in.OrgID
			out.NewDevice, out.NewKey = true, true
			if _, err := tx.Exec(ctx, `INSERT INTO devices (id, org_id, status, attributes) VALUES ($1, $2, 'pending', $3)`,
				in.DeviceID, in.OrgID, attrs); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status, attributes)
				VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id`,
				in.DeviceID, in.PublicKeyDER, in.Fingerprint, in.Alg, attrs).Scan(&out.KeySetID); err != nil {
				return err
			}
			out.Status = KeyPending
			return nil
		case err != nil:
			return err
		}
		var status string
		err = tx.QueryRow(ctx, `SELECT id, status, key_changed FROM device_keys WHERE device_id = $1 AND fingerprint = $2 FOR UPDATE`,
			in.DeviceID, in.Fingerprint).Scan(&out.KeySetID, &status, &out.KeyChanged)
		switch {
		case err == pgx.ErrNoRows:
			if decommissioned {
				if _, err := tx.Exec(ctx, `UPDATE devices SET decommissioned = false, attributes = $2 WHERE id = $1`, in.DeviceID, attrs); err != nil {
					return err
				}
			}
			out.KeyChanged = !decommissioned
			out.NewKey = true
			if err := tx.QueryRow(ctx, `INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status, key_changed, attributes)
				VALUES ($1, $2, $3, $4, 'pending', $5, $6) RETURNING id`,
				in.DeviceID, in.PublicKeyDER, in.Fingerprint, in.Alg, out.KeyChanged, attrs).Scan(&out.KeySetID); err != nil {
				return err
			}
			out.Status = KeyPending
		case err != nil:
			return err
		default:
			switch status {
			case KeyAccepted, KeyPending:
				out.Status = status
			case KeyPreauthorized:
				if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1 AND status = 'accepted'`, in.DeviceID); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'accepted', key_changed = false WHERE id = $1`, out.KeySetID); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `UPDATE devices SET attributes = $2 WHERE id = $1`, in.DeviceID, attrs); err != nil {
					return err
				}
				out.Status = KeyAccepted
			default:
				out.Status = KeyRejected
			}
			if _, err := tx.Exec(ctx, `UPDATE device_keys SET last_seen = now() WHERE id = $1`, out.KeySetID); err != nil {
				return err
			}
		}
		return refreshStatus(ctx, tx, in.DeviceID)
	})
	if err != nil {
		return RegisterOutcome{}, fmt.Errorf("registering device %s: %w", in.DeviceID, err)
	}
	return out, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// KeyChange reports what an operator decision did to a device's key sets.
type KeyChange struct {
	OrgID    int64
	Accepted *KeySet  // the key set accepted, if any
	Closed   []string // fingerprints whose live sessions must close
}

// Accept accepts the newest pending key set of a device and revokes any key
// set accepted before it. ErrNoPendingKey when there is none.
func (s *Store) Accept(ctx context.Context, deviceID string) (KeyChange, error) {
	var kc KeyChange
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		kc = KeyChange{}
		if err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&kc.OrgID); err != nil {
			return notFound(err)
		}
		var k KeySet
		err := tx.QueryRow(ctx, `SELECT id, fingerprint, alg FROM device_keys WHERE device_id = $1 AND status = 'pending'
			ORDER BY id DESC LIMIT 1`, deviceID).Scan(&k.ID, &k.Fingerprint, &k.Alg)
		if err == pgx.ErrNoRows {
			return ErrNoPendingKey
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1 AND status = 'accepted' AND id <> $2
			RETURNING fingerprint`, deviceID, k.ID)
		if err != nil {
			return err
		}
		if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE device_keys SET status = 'accepted' WHERE id = $1`, k.ID); err != nil {
			return err
		}
		k.DeviceID, k.Status = deviceID, KeyAccepted
		kc.Accepted = &k
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
		kc = KeyChange{}
		if err := tx.QueryRow(ctx, `SELECT org_id FROM devices WHERE id = $1 FOR UPDATE`, deviceID).Scan(&kc.OrgID); err != nil {
			return notFound(err)
		}
		rows, err := tx.Query(ctx, `UPDATE device_keys SET status = 'revoked' WHERE device_id = $1
			AND status IN ('pending', 'accepted', 'preauthorized') RETURNING fingerprint`, deviceID)
		if err != nil {
			return err
		}
		if kc.Closed, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET decommissioned = true WHERE id = $1`, deviceID); err != nil {
			return err
		}
		return refreshStatus(ctx, tx, deviceID)
	})
	if err != nil {
		return KeyChange{}, fmt.Errorf("decommissioning device %s: %w", deviceID, err)
	}
	return kc, nil
}

// StartSession marks the device online on replica and bumps its
// session_version, returning the new version: the session holding it is the
// one live session of the device; any older one must close.
func (s *Store) StartSession(ctx context.Context, deviceID, replica string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `UPDATE devices SET session_version = session_version + 1, online = true,
		replica = $2, last_seen = now() WHERE id = $1 RETURNING session_version`, deviceID, replica).Scan(&v)
	return v, notFound(err)
}

// EndSession marks the device offline, unless a newer session took over in
// the meantime (then it changes nothing and returns false).
func (s *Store) EndSession(ctx context.Context, deviceID string, version int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET online = false, last_seen = now()
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

// SetInventory stores the params of the device's last state.report.
func (s *Store) SetInventory(ctx context.Context, deviceID string, inv json.RawMessage) error {
	_, err := s.pool.Exec(ctx, `UPDATE devices SET inventory = $2, last_seen = now() WHERE id = $1`, deviceID, []byte(inv))
	return err
}

// OnlinePending counts the online devices of org whose status is pending.
func (s *Store) OnlinePending(ctx context.Context, orgID int64) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM devices WHERE org_id = $1 AND online AND status = 'pending'`, orgID).Scan(&n)
	return n, err
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
