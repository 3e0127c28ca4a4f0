package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// OTAReport is one ota.status report of a device.
type OTAReport struct {
	DeviceID   string
	Seq        int64
	OrgID      int64
	UpdateID   string
	Target     string
	Status     string
	Percent    *int
	Reason     string
	Slot       string
	ReportedAt time.Time
	ReceivedAt time.Time
}

// InsertOTAReport stores r unless the device's report r.Seq is stored
// already; it reports whether r was new.
func (s *Store) InsertOTAReport(ctx context.Context, r OTAReport) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO ota_reports
		(device_id, seq, org_id, update_id, target, status, percent, reason, slot, reported_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (device_id, seq) DO NOTHING`,
		r.DeviceID, r.Seq, r.OrgID, r.UpdateID, r.Target, r.Status, r.Percent, r.Reason, r.Slot, r.ReportedAt)
	if err != nil {
		return false, notFound(err)
	}
	return tag.RowsAffected() == 1, nil
}

// ListOTAReports returns a device's newest reports first, at most limit.
func (s *Store) ListOTAReports(ctx context.Context, deviceID string, limit int) ([]OTAReport, error) {
	rows, err := s.pool.Query(ctx, `SELECT device_id, seq, org_id, update_id, target, status, percent, reason, slot,
		reported_at, received_at FROM ota_reports WHERE device_id = $1 ORDER BY seq DESC LIMIT $2`, deviceID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (OTAReport, error) {
		var r OTAReport
		err := row.Scan(&r.DeviceID, &r.Seq, &r.OrgID, &r.UpdateID, &r.Target, &r.Status, &r.Percent, &r.Reason, &r.Slot,
			&r.ReportedAt, &r.ReceivedAt)
		return r, err
	})
}
