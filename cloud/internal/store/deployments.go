package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/jackc/pgx/v5"
)

// Deployment is a row of deployments (migration 011).
type Deployment struct {
	ID               int64
	OrgID            int64
	ArtifactID       *int64 // nil once the artifact was deleted
	Name, Version    string
	DeviceIDs        []string
	Tag              string
	Phases           []int
	MaxInFlight      int
	FailureThreshold int
	MaxAttempts      int
	CommitTimeout    int
	NotBefore        time.Time
	State            string
	Phase            int
	Reason           string
	AckedFailures    int
	CreatedBy        string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	FinishedAt       *time.Time
}

const deploymentCols = `id, org_id, artifact_id, name, version, device_ids, tag, phases, max_in_flight, failure_threshold,
	max_attempts, commit_timeout, not_before, state, phase, reason, acked_failures, created_by, created_at, updated_at, finished_at`

func scanDeployment(row pgx.Row) (Deployment, error) {
	var d Deployment
	var phases []int32
	err := row.Scan(&d.ID, &d.OrgID, &d.ArtifactID, &d.Name, &d.Version, &d.DeviceIDs, &d.Tag, &phases, &d.MaxInFlight,
		&d.FailureThreshold, &d.MaxAttempts, &d.CommitTimeout, &d.NotBefore, &d.State, &d.Phase, &d.Reason,
		&d.AckedFailures, &d.CreatedBy, &d.CreatedAt, &d.UpdatedAt, &d.FinishedAt)
	for _, p := range phases {
		d.Phases = append(d.Phases, int(p))
	}
	return d, notFound(err)
}

// DeploymentMember is a row of deployment_devices.
type DeploymentMember struct {
	DeploymentID int64
	DeviceID     string
	Phase        int
	Status       string
	Percent      *int
	Reason       string
	Attempts     int
	RetryAt      *time.Time
	CallID       *string
	AbortCallID  *string
	ReportSeq    int64
	UpdatedAt    time.Time
}

const memberCols = `deployment_id, device_id, phase, status, percent, reason, attempts, retry_at, call_id::text,
	abort_call_id::text, report_seq, updated_at`

func scanMember(row pgx.Row) (DeploymentMember, error) {
	var m DeploymentMember
	err := row.Scan(&m.DeploymentID, &m.DeviceID, &m.Phase, &m.Status, &m.Percent, &m.Reason, &m.Attempts, &m.RetryAt,
		&m.CallID, &m.AbortCallID, &m.ReportSeq, &m.UpdatedAt)
	return m, err
}

// deploymentLockClass is the first key of the advisory locks that
// serialise the work on one deployment across replicas (the second is its
// id). "depl" in ASCII.
const deploymentLockClass int32 = 0x6465706c

// splitPhases assigns every member of deployment $1 its phase: members in
// device id order, phase k (0-based) takes those up to ceil(phases[k]% of
// them).
const splitPhases = `WITH r AS (
		SELECT device_id, row_number() OVER (ORDER BY device_id) AS rn, count(*) OVER () AS n
		FROM deployment_devices WHERE deployment_id = $1)
	UPDATE deployment_devices m SET phase = coalesce((SELECT min(i) - 1 FROM generate_subscripts($2::int[], 1) i
		WHERE r.rn <= ceil(($2::int[])[i] * r.n / 100.0)), array_length($2::int[], 1) - 1)
	FROM r WHERE m.deployment_id = $1 AND m.device_id = r.device_id AND m.phase IS DISTINCT FROM
		coalesce((SELECT min(i) - 1 FROM generate_subscripts($2::int[], 1) i
		WHERE r.rn <= ceil(($2::int[])[i] * r.n / 100.0)), array_length($2::int[], 1) - 1)`

// InsertDeployment stores a deployment and its first members (pending,
// split into phases), in one transaction.
func (s *Store) InsertDeployment(ctx context.Context, d Deployment, members []string) (Deployment, error) {
	var out Deployment
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if d.DeviceIDs == nil {
			d.DeviceIDs = []string{}
		}
		out, err = scanDeployment(tx.QueryRow(ctx, `INSERT INTO deployments (org_id, artifact_id, name, version, device_ids, tag,
			phases, max_in_flight, failure_threshold, max_attempts, commit_timeout, not_before, state, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING `+deploymentCols,
			d.OrgID, d.ArtifactID, d.Name, d.Version, d.DeviceIDs, d.Tag, d.Phases, d.MaxInFlight, d.FailureThreshold,
			d.MaxAttempts, d.CommitTimeout, d.NotBefore, d.State, d.CreatedBy))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deployment_devices (deployment_id, device_id, phase, status)
			SELECT $1, unnest($2::text[]), 0, 'pending' ON CONFLICT DO NOTHING`, out.ID, members); err != nil {
			return notFound(err)
		}
		_, err = tx.Exec(ctx, splitPhases, out.ID, d.Phases)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("storing deployment: %w", err)
	}
	return out, nil
}

// GetDeployment loads one deployment.
func (s *Store) GetDeployment(ctx context.Context, id int64) (Deployment, error) {
	d, err := scanDeployment(s.pool.QueryRow(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE id = $1`, id))
	if err != nil {
		return d, fmt.Errorf("loading deployment %d: %w", id, err)
	}
	return d, nil
}

// ListDeployments lists deployments of org (0: all), newest first.
func (s *Store) ListDeployments(ctx context.Context, org int64, state string, limit int) ([]Deployment, error) {
	if !storable(state) {
		return nil, nil // matches nothing (see storable)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deploymentCols+` FROM deployments
		WHERE ($1::bigint = 0 OR org_id = $1) AND ($2 = '' OR state = $2) ORDER BY id DESC LIMIT $3`, org, state, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Deployment, error) { return scanDeployment(r) })
}

// LiveDeployments lists the ids of the deployments the engine works on:
// scheduled, running and paused ones, and aborted ones with members still
// in flight.
func (s *Store) LiveDeployments(ctx context.Context) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM deployments d WHERE state IN ('scheduled', 'running', 'paused')
		OR (state = 'aborted' AND EXISTS (SELECT 1 FROM deployment_devices m WHERE m.deployment_id = d.id
			AND m.status IN ('sent', 'downloading', 'installing', 'awaiting_commit')))
		ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// WithDeployment runs fn holding deployment id's advisory lock: the work of
// one replica on one deployment excludes every other. wait false returns
// false at once when another holds it. fn uses the pool (the lock blocks
// no row).
func (s *Store) WithDeployment(ctx context.Context, id int64, wait bool, fn func() error) (bool, error) {
	got := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if wait {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2::int)`, deploymentLockClass, id); err != nil {
				return err
			}
			got = true
		} else if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, $2::int)`, deploymentLockClass, id).Scan(&got); err != nil || !got {
			return err
		}
		return fn()
	})
	return got, err
}

// SetDeploymentState moves deployment id from one of from to state with
// reason (finished_at set for completed and aborted); false when it was
// in none of from.
func (s *Store) SetDeploymentState(ctx context.Context, id int64, from []string, state, reason string) (Deployment, bool, error) {
	d, err := scanDeployment(s.pool.QueryRow(ctx, `UPDATE deployments SET state = $3, reason = $4, updated_at = now(),
		finished_at = CASE WHEN $3 IN ('completed', 'aborted') THEN now() END
		WHERE id = $1 AND state = ANY($2) RETURNING `+deploymentCols, id, from, state, reason))
	if err == ErrNotFound {
		return d, false, nil
	}
	return d, err == nil, err
}

// ResumeDeployment moves a paused deployment to running (scheduled if
// not_before is still ahead), remembering acked final failures of its
// current phase.
func (s *Store) ResumeDeployment(ctx context.Context, id int64, acked int) (Deployment, bool, error) {
	d, err := scanDeployment(s.pool.QueryRow(ctx, `UPDATE deployments SET
		state = CASE WHEN not_before > now() THEN 'scheduled' ELSE 'running' END, reason = '', acked_failures = $2,
		updated_at = now() WHERE id = $1 AND state = 'paused' RETURNING `+deploymentCols, id, acked))
	if err == ErrNotFound {
		return d, false, nil
	}
	return d, err == nil, err
}

// AdvancePhase moves a running deployment from phase from to from+1.
func (s *Store) AdvancePhase(ctx context.Context, id int64, from int) error {
	_, err := s.pool.Exec(ctx, `UPDATE deployments SET phase = phase + 1, acked_failures = 0, updated_at = now()
		WHERE id = $1 AND phase = $2 AND state = 'running'`, id, from)
	return err
}

// CountMembers counts the members of a deployment.
func (s *Store) CountMembers(ctx context.Context, id int64) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM deployment_devices WHERE deployment_id = $1`, id).Scan(&n)
	return n, err
}

// AddTagMembers adds, in phase, the devices of org with tag that have an
// accepted key, are not decommissioned and are not members yet, while the
// deployment has fewer than max members. It returns the ids added.
func (s *Store) AddTagMembers(ctx context.Context, id, org int64, tag string, phase, max int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `INSERT INTO deployment_devices (deployment_id, device_id, phase, status)
		SELECT $1, d.id, $4, 'pending' FROM devices d
		WHERE d.org_id = $2 AND $3 = ANY(d.tags) AND NOT d.decommissioned
			AND EXISTS (SELECT 1 FROM device_keys k WHERE k.device_id = d.id AND k.status = 'accepted')
			AND NOT EXISTS (SELECT 1 FROM deployment_devices m WHERE m.deployment_id = $1 AND m.device_id = d.id)
		ORDER BY d.id
		LIMIT greatest(0, $5 - (SELECT count(*) FROM deployment_devices WHERE deployment_id = $1))
		ON CONFLICT DO NOTHING RETURNING device_id`, id, org, tag, phase, max)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// TagDevices lists the ids of org's devices with tag that may be members
// (accepted key, not decommissioned), at most limit.
func (s *Store) TagDevices(ctx context.Context, org int64, tag string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.id FROM devices d
		WHERE d.org_id = $1 AND $2 = ANY(d.tags) AND NOT d.decommissioned
			AND EXISTS (SELECT 1 FROM device_keys k WHERE k.device_id = d.id AND k.status = 'accepted')
		ORDER BY d.id LIMIT $3`, org, tag, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DeviceEligibility is what a deployment needs to know of a named device.
type DeviceEligibility struct {
	ID             string
	OrgID          int64
	Decommissioned bool
	Accepted       bool // it has an accepted key set
}

// Eligibility loads the eligibility of the devices ids that exist.
func (s *Store) Eligibility(ctx context.Context, ids []string) (map[string]DeviceEligibility, error) {
	rows, err := s.pool.Query(ctx, `SELECT d.id, d.org_id, d.decommissioned,
		EXISTS (SELECT 1 FROM device_keys k WHERE k.device_id = d.id AND k.status = 'accepted')
		FROM devices d WHERE d.id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeviceEligibility, error) {
		var e DeviceEligibility
		err := r.Scan(&e.ID, &e.OrgID, &e.Decommissioned, &e.Accepted)
		return e, err
	})
	out := make(map[string]DeviceEligibility, len(list))
	for _, e := range list {
		out[e.ID] = e
	}
	return out, err
}

// SplitPhases assigns every member its phase again (while the deployment
// has not started).
func (s *Store) SplitPhases(ctx context.Context, id int64, phases []int) error {
	_, err := s.pool.Exec(ctx, splitPhases, id, phases)
	return err
}

// PhaseCount is how many members of a phase have a status.
type PhaseCount struct {
	Phase  int
	Status string
	N      int
}

// MemberCounts counts the members of a deployment by phase and status.
func (s *Store) MemberCounts(ctx context.Context, id int64) ([]PhaseCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT phase, status, count(*) FROM deployment_devices WHERE deployment_id = $1
		GROUP BY phase, status ORDER BY phase, status`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PhaseCount, error) {
		var c PhaseCount
		err := r.Scan(&c.Phase, &c.Status, &c.N)
		return c, err
	})
}

// StatusCounts counts the members of each of ids by status.
func (s *Store) StatusCounts(ctx context.Context, ids []int64) (map[int64]map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT deployment_id, status, count(*) FROM deployment_devices
		WHERE deployment_id = ANY($1) GROUP BY deployment_id, status`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]map[string]int{}
	for rows.Next() {
		var id int64
		var st string
		var n int
		if err := rows.Scan(&id, &st, &n); err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][st] = n
	}
	return out, rows.Err()
}

// ListMembers lists the members of a deployment by phase and device id.
func (s *Store) ListMembers(ctx context.Context, id int64) ([]DeploymentMember, error) {
	return s.members(ctx, `SELECT `+memberCols+` FROM deployment_devices WHERE deployment_id = $1
		ORDER BY phase, device_id`, id)
}

// GetMember loads one member.
func (s *Store) GetMember(ctx context.Context, id int64, deviceID string) (DeploymentMember, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, `SELECT `+memberCols+` FROM deployment_devices
		WHERE deployment_id = $1 AND device_id = $2`, id, deviceID))
	return m, notFound(err)
}

func (s *Store) members(ctx context.Context, q string, args ...any) ([]DeploymentMember, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeploymentMember, error) { return scanMember(r) })
}

// ClaimPending moves up to n pending members of phases up to maxPhase
// whose retry time has come to sent, counting an attempt and giving each
// a fresh call id, and returns them.
func (s *Store) ClaimPending(ctx context.Context, id int64, maxPhase, n int) ([]DeploymentMember, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.members(ctx, `UPDATE deployment_devices m SET status = 'sent', attempts = attempts + 1,
		call_id = gen_random_uuid(), abort_call_id = NULL, percent = NULL, retry_at = NULL, resends = 0, updated_at = now()
		WHERE m.deployment_id = $1 AND m.device_id IN (SELECT device_id FROM deployment_devices
			WHERE deployment_id = $1 AND status = 'pending' AND phase <= $2 AND (retry_at IS NULL OR retry_at <= now())
			ORDER BY phase, device_id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+memberCols, id, maxPhase, n)
}

// MemberUpdate changes a member, unless it changed since it was read
// (attempts, report_seq and status are compared).
type MemberUpdate struct {
	DeploymentID int64
	DeviceID     string
	// What the row must still be.
	Attempts  int
	ReportSeq int64
	Status    string
	// What it becomes.
	NewStatus    string
	Percent      *int
	Reason       string
	RetryAt      *time.Time
	NewReportSeq int64
}

// UpdateMember applies u; false when the row changed since (nothing is
// written).
func (s *Store) UpdateMember(ctx context.Context, u MemberUpdate) (DeploymentMember, bool, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, `UPDATE deployment_devices SET status = $6, percent = $7, reason = $8,
		retry_at = $9, report_seq = $10, updated_at = now()
		WHERE deployment_id = $1 AND device_id = $2 AND attempts = $3 AND report_seq = $4 AND status = $5
		RETURNING `+memberCols, u.DeploymentID, u.DeviceID, u.Attempts, u.ReportSeq, u.Status,
		u.NewStatus, u.Percent, u.Reason, u.RetryAt, u.NewReportSeq))
	if err == pgx.ErrNoRows {
		return m, false, nil
	}
	return m, err == nil, err
}

// SetAbortCall records the ota.abort call sent to a member.
func (s *Store) SetAbortCall(ctx context.Context, id int64, deviceID, callID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE deployment_devices SET abort_call_id = $3, updated_at = now()
		WHERE deployment_id = $1 AND device_id = $2`, id, deviceID, callID)
	return err
}

// AbortPending makes every pending member of a deployment aborted and
// returns them.
func (s *Store) AbortPending(ctx context.Context, id int64, reason string) ([]DeploymentMember, error) {
	return s.members(ctx, `UPDATE deployment_devices SET status = 'aborted', reason = $2, retry_at = NULL, updated_at = now()
		WHERE deployment_id = $1 AND status = 'pending' RETURNING `+memberCols, id, reason)
}

// MemberReport is a member and the newest report of its current attempt
// not applied yet.
type MemberReport struct {
	Member DeploymentMember
	Report OTAReport
}

// NewReports returns the members of a deployment that are not final and
// have a report of their current update id (dep-<id>-<attempts>) newer
// than the last one applied, each with the newest such report. deviceID
// "" means every member.
func (s *Store) NewReports(ctx context.Context, id int64, deviceID string) ([]MemberReport, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+prefixed("m.", memberCols)+`,
		r.device_id, r.seq, r.org_id, r.update_id, r.target, r.status, r.percent, r.reason, r.slot, r.reported_at, r.received_at
		FROM deployment_devices m JOIN LATERAL (SELECT * FROM ota_reports r WHERE r.device_id = m.device_id
			AND r.update_id = 'dep-' || m.deployment_id || '-' || m.attempts AND r.seq > m.report_seq
			ORDER BY r.seq DESC LIMIT 1) r ON true
		WHERE m.deployment_id = $1 AND ($2 = '' OR m.device_id = $2) AND m.attempts > 0
			AND m.status IN ('pending', 'sent', 'downloading', 'installing', 'awaiting_commit', 'aborted')`, id, deviceID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (MemberReport, error) {
		var mr MemberReport
		m, r := &mr.Member, &mr.Report
		err := row.Scan(&m.DeploymentID, &m.DeviceID, &m.Phase, &m.Status, &m.Percent, &m.Reason, &m.Attempts, &m.RetryAt,
			&m.CallID, &m.AbortCallID, &m.ReportSeq, &m.UpdatedAt,
			&r.DeviceID, &r.Seq, &r.OrgID, &r.UpdateID, &r.Target, &r.Status, &r.Percent, &r.Reason, &r.Slot, &r.ReportedAt, &r.ReceivedAt)
		return mr, err
	})
}

// MemberCall is a member and the outcome of one of its calls.
type MemberCall struct {
	Member        DeploymentMember
	Resends       int
	CallFound     bool
	CallStatus    string
	CallError     *jsonrpc.Error
	CallDelivered bool
}

// ResendUpdate gives a member at sent a new call id for its current
// attempt (the call is sent again with the same update id), counting a
// resend; false when the member changed since.
func (s *Store) ResendUpdate(ctx context.Context, id int64, deviceID string, attempts int, oldCall, newCall string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deployment_devices SET call_id = $5, resends = resends + 1, updated_at = now()
		WHERE deployment_id = $1 AND device_id = $2 AND attempts = $3 AND call_id = $4 AND status = 'sent'`,
		id, deviceID, attempts, oldCall, newCall)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// FailedUpdateCalls returns the members still at sent (no report yet)
// whose ota.update call ended without success, or was never recorded.
func (s *Store) FailedUpdateCalls(ctx context.Context, id int64) ([]MemberCall, error) {
	return s.memberCalls(ctx, `SELECT `+prefixed("m.", memberCols)+`, m.resends, c.id IS NOT NULL, coalesce(c.status, ''), c.error,
		c.delivered_at IS NOT NULL
		FROM deployment_devices m LEFT JOIN calls c ON c.id = m.call_id
		WHERE m.deployment_id = $1 AND m.status = 'sent'
			AND (c.id IS NULL OR c.status IN ('failed', 'timeout', 'expired'))`, id)
}

// FinishedAbortCalls returns the in-flight members whose ota.abort call
// ended without success (or was never recorded); those whose abort
// succeeded end with their report.
func (s *Store) FinishedAbortCalls(ctx context.Context, id int64) ([]MemberCall, error) {
	return s.memberCalls(ctx, `SELECT `+prefixed("m.", memberCols)+`, m.resends, c.id IS NOT NULL, coalesce(c.status, ''), c.error,
		c.delivered_at IS NOT NULL
		FROM deployment_devices m LEFT JOIN calls c ON c.id = m.abort_call_id
		WHERE m.deployment_id = $1 AND m.abort_call_id IS NOT NULL
			AND m.status IN ('sent', 'downloading', 'installing', 'awaiting_commit')
			AND (c.id IS NULL OR c.status IN ('failed', 'timeout', 'expired'))`, id)
}

func (s *Store) memberCalls(ctx context.Context, q string, args ...any) ([]MemberCall, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (MemberCall, error) {
		var mc MemberCall
		m := &mc.Member
		var errj []byte
		err := row.Scan(&m.DeploymentID, &m.DeviceID, &m.Phase, &m.Status, &m.Percent, &m.Reason, &m.Attempts, &m.RetryAt,
			&m.CallID, &m.AbortCallID, &m.ReportSeq, &m.UpdatedAt, &mc.Resends, &mc.CallFound, &mc.CallStatus, &errj, &mc.CallDelivered)
		if err == nil && len(errj) > 0 {
			mc.CallError = new(jsonrpc.Error)
			err = json.Unmarshal(errj, mc.CallError)
		}
		return mc, err
	})
}

// SilentMembers returns the members in flight whose device has not
// reported for longer than silence plus the commit timeout (a member at
// sent counts only once its ota.update call was answered).
func (s *Store) SilentMembers(ctx context.Context, id int64, silence time.Duration) ([]DeploymentMember, error) {
	return s.members(ctx, `SELECT `+prefixed("m.", memberCols)+` FROM deployment_devices m
		JOIN deployments d ON d.id = m.deployment_id
		LEFT JOIN calls c ON c.id = m.call_id
		WHERE m.deployment_id = $1 AND m.status IN ('sent', 'downloading', 'installing', 'awaiting_commit')
			AND (m.status <> 'sent' OR c.status = 'succeeded')
			AND m.updated_at < now() - make_interval(secs => $2::float8 + d.commit_timeout)`, id, silence.Seconds())
}

// InFlightWithoutAbort returns the in-flight members of a deployment not
// yet told to abort.
func (s *Store) InFlightWithoutAbort(ctx context.Context, id int64) ([]DeploymentMember, error) {
	return s.members(ctx, `SELECT `+memberCols+` FROM deployment_devices WHERE deployment_id = $1
		AND status IN ('sent', 'downloading', 'installing', 'awaiting_commit') AND abort_call_id IS NULL
		ORDER BY device_id`, id)
}

// CancelQueued fails a call that is still queued (never claimed for a
// device) with e; false when it was not queued any more.
func (s *Store) CancelQueued(ctx context.Context, callID string, e *jsonrpc.Error) (Call, bool, error) {
	errj, _ := json.Marshal(e)
	c, err := scanCall(s.pool.QueryRow(ctx, `UPDATE calls SET status = 'failed', error = $2, finished_at = now(),
		sent_at = coalesce(sent_at, now()) WHERE id = $1 AND status = 'queued' RETURNING `+callColumns, callID, errj))
	if err == pgx.ErrNoRows {
		return c, false, nil
	}
	return c, err == nil, err
}

// VersionCount is how many devices run a version ("" none known).
type VersionCount struct {
	Version string
	Devices int
}

// OTAVersions counts org's devices (accepted, not decommissioned) by the
// version of the newest succeeded ota.status report whose target is
// name/VERSION; "" counts those with none.
func (s *Store) OTAVersions(ctx context.Context, org int64, name string) ([]VersionCount, error) {
	if !storable(name) {
		return nil, nil // matches nothing (see storable)
	}
	rows, err := s.pool.Query(ctx, `SELECT v, count(*) FROM (
		SELECT coalesce((SELECT substr(r.target, length($2) + 2) FROM ota_reports r
			WHERE r.device_id = d.id AND r.status = 'succeeded' AND starts_with(r.target, $2 || '/')
			ORDER BY r.seq DESC LIMIT 1), '') AS v
		FROM devices d WHERE ($1::bigint = 0 OR d.org_id = $1) AND NOT d.decommissioned
			AND EXISTS (SELECT 1 FROM device_keys k WHERE k.device_id = d.id AND k.status = 'accepted')) x
		GROUP BY v`, org, name)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (VersionCount, error) {
		var v VersionCount
		err := r.Scan(&v.Version, &v.Devices)
		return v, err
	})
}

// prefixed puts p before every column of a column list.
func prefixed(p, cols string) string {
	out := make([]byte, 0, len(cols)+64)
	start := true
	for i := 0; i < len(cols); i++ {
		c := cols[i]
		if start && c != ' ' && c != '\t' && c != '\n' {
			out = append(out, p...)
			start = false
		}
		out = append(out, c)
		if c == ',' {
			start = true
		}
	}
	return string(out)
}
