package store

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64
	OrgID   int64
	Actor   string
	Action  string
	Target  string
	Outcome string
	Detail  json.RawMessage
	At      time.Time
}

// AuditFilter selects audit rows, newest first.
type AuditFilter struct {
	OrgID                 int64 // 0: all
	Actor, Action, Target string
	Limit                 int
	// Before > 0 keeps the rows older than the row with this id (the
	// next page); After > 0 the Limit rows just newer than it (the
	// previous page), still listed newest first. Pages are keyset pages:
	// rows written meanwhile neither shift nor repeat them.
	Before, After int64
}

// InsertAudit appends to the audit log.
func (s *Store) InsertAudit(ctx context.Context, e AuditEntry) error {
	var detail []byte
	if len(e.Detail) > 0 {
		detail = e.Detail
	}
	return s.w.do(ctx, insertAuditSQL, nil, e.OrgID, e.Actor, e.Action, e.Target, e.Outcome, detail)
}

// ListAudit lists audit rows, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if !storable(f.Actor, f.Action, f.Target) {
		return nil, nil // matches nothing (see storable)
	}
	// Newest first, or, for the page after a cursor, oldest first and
	// reversed below: either way the primary key (or audit_org) is walked
	// from the cursor, never skipped over as OFFSET would.
	order := "DESC"
	if f.After > 0 {
		order = "ASC"
	}
	rows, err := s.pool.Query(ctx, `SELECT id, org_id, actor, action, target, outcome, detail, at FROM audit_log
		WHERE ($1::bigint = 0 OR org_id = $1) AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3) AND ($4 = '' OR target = $4)
		AND ($6::bigint <= 0 OR id < $6) AND ($7::bigint <= 0 OR id > $7)
		ORDER BY id `+order+` LIMIT $5`, f.OrgID, f.Actor, f.Action, f.Target, f.Limit, f.Before, f.After)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var detail []byte
		if err := rows.Scan(&e.ID, &e.OrgID, &e.Actor, &e.Action, &e.Target, &e.Outcome, &detail, &e.At); err != nil {
			return nil, err
		}
		if len(detail) > 0 {
			e.Detail = detail
		}
		out = append(out, e)
	}
	if f.After > 0 {
		slices.Reverse(out)
	}
	return out, rows.Err()
}
