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
	Online         bool // a session that has not ended, on a live replica (see liveOnline)
	Replica        string
	SessionVersion int64
	FirstSeen      time.Time
	LastSeen       time.Time
	Tags           []string
	Attributes     map[string]string // identity attributes from registration
	Inventory      json.RawMessage   // last state.report params, or nil
	// HasAcceptedKey reports whether some key set of the device is
	// accepted (a device whose new key is pending still has its old one)
	// or preauthorized (accepted before the device first connects, so a
	// call with a ttl waits for it).
	HasAcceptedKey bool
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

// deviceColumns reads Online as liveOnline: a session on a live replica.
var deviceColumns = `d.org_id, d.id, d.status, coalesce(k.fingerprint, ''), coalesce(k.alg, ''),
	coalesce(k.key_changed, false), ` + liveOnline + `, d.replica, d.session_version, d.first_seen, d.last_seen,
	d.tags, d.attributes, d.inventory,
	EXISTS (SELECT 1 FROM device_keys a WHERE a.device_id = d.id AND a.status IN ('accepted', 'preauthorized'))`

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
	if !storable(id) {
		return Device{}, fmt.Errorf("loading device %q: %w", id, ErrNotFound)
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceColumns+deviceFrom+` WHERE d.id = $1`, id))
	if err != nil {
		return d, fmt.Errorf("loading device %s: %w", id, notFound(err))
	}
	return d, nil
}

// GetDevices loads the devices of ids that exist, by id, in one query.
func (s *Store) GetDevices(ctx context.Context, ids []string) (map[string]Device, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deviceColumns+deviceFrom+` WHERE d.id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("loading devices: %w", err)
	}
	defer rows.Close()
	out := make(map[string]Device, len(ids))
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("loading devices: %w", err)
		}
		out[d.ID] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading devices: %w", err)
	}
	return out, nil
}

// ListDevices returns one page of devices ordered by id and the total number
// matching the filter.
func (s *Store) ListDevices(ctx context.Context, f DeviceFilter) ([]Device, int, error) {
	if !storable(f.Status, f.Tag, f.Text) {
		return nil, 0, nil // matches nothing (see storable)
	}
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
		add(liveOnline+" = ?", *f.Online)
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
		count(*) FILTER (WHERE `+liveOnline+`),
		count(*) FILTER (WHERE NOT `+liveOnline+`),
		count(*) FILTER (WHERE d.status = 'pending'),
		count(*) FILTER (WHERE d.status = 'rejected'),
		count(*)
		FROM devices d WHERE $1::bigint = 0 OR d.org_id = $1`, orgID).Scan(&c.Online, &c.Offline, &c.Pending, &c.Rejected, &c.Total)
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

// SetInventory stores the params of the device's last state.report.
func (s *Store) SetInventory(ctx context.Context, deviceID string, inv json.RawMessage) error {
	_, err := s.pool.Exec(ctx, `UPDATE devices SET inventory = $2, last_seen = now() WHERE id = $1`, deviceID, []byte(inv))
	return err
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
