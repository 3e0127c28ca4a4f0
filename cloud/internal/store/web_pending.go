package store

import (
	"context"
	"encoding/json"
	"time"
)

// PendingKey is the newest pending key set of a device, for the
// dashboard's pending keys page.
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
}

// PendingKeys lists the newest pending key set of each device of org (0:
// all), newest first, and how many devices have one.
func (s *Store) PendingKeys(ctx context.Context, orgID int64, limit int) ([]PendingKey, int, error) {
	rows, err := s.pool.Query(ctx, `SELECT * FROM (
		SELECT DISTINCT ON (k.device_id) k.id, k.device_id, d.org_id, k.fingerprint, k.alg, k.key_changed,
			k.attributes, k.first_seen, k.last_seen, d.online, count(*) OVER ()
		FROM device_keys k JOIN devices d ON d.id = k.device_id
		WHERE k.status = 'pending' AND ($1::bigint = 0 OR d.org_id = $1)
		ORDER BY k.device_id, k.id DESC) p
		ORDER BY p.first_seen DESC, p.device_id LIMIT $2`, orgID, limit)
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
			&p.FirstSeen, &p.LastSeen, &p.Online, &total); err != nil {
			return nil, 0, err
		}
		_ = json.Unmarshal(attrs, &p.Attributes)
		out = append(out, p)
	}
	return out, total, rows.Err()
}
