package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/jackc/pgx/v5"
)

// Call statuses. queued → sent → delivered → succeeded|failed|timeout;
// queued → expired. "delivered" means the websocket write to a live session
// completed; a call is never delivered while its device is offline.
const (
	CallQueued    = "queued"
	CallSent      = "sent"
	CallDelivered = "delivered"
	CallSucceeded = "succeeded"
	CallFailed    = "failed"
	CallTimeout   = "timeout"
	CallExpired   = "expired"
)

// Call is one RPC call to a device and, once finished, its outcome.
type Call struct {
	ID         string
	OrgID      int64
	DeviceID   string
	Method     string
	Params     json.RawMessage
	Status     string // queued|sent|delivered|succeeded|failed|timeout|expired
	Result     json.RawMessage
	Error      *jsonrpc.Error
	Actor      string
	CreatedAt  time.Time
	SentAt     *time.Time
	FinishedAt *time.Time
	ExpiresAt  *time.Time
	DurationMS int64 // from sent to finished; 0 while unfinished

	// Seq orders a device's calls; Timeout is the answer timeout; Deadline
	// is when a sent call times out.
	Seq         int64
	Timeout     time.Duration
	DeliveredAt *time.Time
	Deadline    *time.Time
}

// Finished reports whether the call reached a final status.
func (c *Call) Finished() bool {
	switch c.Status {
	case CallSucceeded, CallFailed, CallTimeout, CallExpired:
		return true
	}
	return false
}

const callColumns = `id::text, org_id, device_id, method, params, status, result, error, actor, created_at,
	sent_at, finished_at, expires_at, seq, timeout_ms, delivered_at, deadline`

func scanCall(row pgx.Row) (Call, error) {
	var c Call
	var params, result, errj []byte
	var timeoutMS int64
	err := row.Scan(&c.ID, &c.OrgID, &c.DeviceID, &c.Method, &params, &c.Status, &result, &errj, &c.Actor,
		&c.CreatedAt, &c.SentAt, &c.FinishedAt, &c.ExpiresAt, &c.Seq, &timeoutMS, &c.DeliveredAt, &c.Deadline)
	if err != nil {
		return c, err
	}
	c.Timeout = time.Duration(timeoutMS) * time.Millisecond
	if len(params) > 0 {
		c.Params = params
	}
	if len(result) > 0 {
		c.Result = result
	}
	if len(errj) > 0 {
		c.Error = new(jsonrpc.Error)
		if err := json.Unmarshal(errj, c.Error); err != nil {
			return c, fmt.Errorf("call %s error: %w", c.ID, err)
		}
	}
	if c.SentAt != nil && c.FinishedAt != nil {
		c.DurationMS = c.FinishedAt.Sub(*c.SentAt).Milliseconds()
	}
	return c, nil
}

// NewCall is a call to record.
type NewCall struct {
	ID        string // a UUID
	OrgID     int64
	DeviceID  string
	Method    string
	Params    json.RawMessage
	Status    string // CallQueued or CallSent (or a final status for calls refused at once)
	Actor     string
	Timeout   time.Duration
	ExpiresAt *time.Time // persistent calls only
	Error     *jsonrpc.Error
}

// InsertCall records a call. A CallSent call gets sent_at now and its
// deadline; a call inserted with a final status is finished now.
func (s *Store) InsertCall(ctx context.Context, n NewCall) (Call, error) {
	var errj []byte
	if n.Error != nil {
		errj, _ = json.Marshal(n.Error)
	}
	var params []byte
	if len(n.Params) > 0 {
		params = n.Params
	}
	var c Call
	err := s.w.do(ctx, insertCallSQL, func(r pgx.Row) (err error) { c, err = scanCall(r); return err },
		n.ID, n.OrgID, n.DeviceID, n.Method, params, n.Status, n.Actor, n.Timeout.Milliseconds(), ptrTime(n.ExpiresAt), errj)
	if err != nil {
		return c, fmt.Errorf("recording call to %s: %w", n.DeviceID, notFound(err))
	}
	return c, nil
}

// GetCall loads one call.
func (s *Store) GetCall(ctx context.Context, id string) (Call, error) {
	if !validUUID(id) {
		return Call{}, fmt.Errorf("loading call %q: %w", id, ErrNotFound)
	}
	c, err := scanCall(s.pool.QueryRow(ctx, `SELECT `+callColumns+` FROM calls WHERE id = $1`, id))
	if err != nil {
		return c, fmt.Errorf("loading call %s: %w", id, notFound(err))
	}
	return c, nil
}

// CallFilter selects calls, newest first.
type CallFilter struct {
	OrgID    int64 // 0: all organisations
	DeviceID string
	Status   string
	Limit    int
}

// ListCalls lists calls, newest first.
func (s *Store) ListCalls(ctx context.Context, f CallFilter) ([]Call, error) {
	if !storable(f.DeviceID, f.Status) {
		return nil, nil // matches nothing (see storable)
	}
	return s.collectCalls(ctx, `SELECT `+callColumns+` FROM calls
		WHERE ($1::bigint = 0 OR org_id = $1) AND ($2 = '' OR device_id = $2) AND ($3 = '' OR status = $3)
		ORDER BY seq DESC LIMIT $4`, f.OrgID, f.DeviceID, f.Status, f.Limit)
}

// ClaimFilter says which of a device's queued calls the holder may send
// now.
type ClaimFilter struct {
	// Methods are the methods the device lists. nil means any method (the
	// device has not said which it serves).
	Methods []string
	// Skip are methods not to send now (they were answered "method not
	// found" since the device last reported).
	Skip []string
}

// ClaimQueued moves the oldest unexpired queued call of the device that f
// allows to sent, starting its deadline, and returns it; ErrNotFound when
// none is left. Calls f does not allow stay queued, in their place: they do
// not hold up the calls behind them.
func (s *Store) ClaimQueued(ctx context.Context, deviceID string, f ClaimFilter) (Call, error) {
	skip := f.Skip
	if skip == nil {
		skip = []string{}
	}
	c, err := scanCall(s.pool.QueryRow(ctx, `UPDATE calls SET status = 'sent', sent_at = now(),
		deadline = now() + make_interval(secs => timeout_ms / 1000.0)
		WHERE id = (SELECT id FROM calls WHERE device_id = $1 AND status = 'queued' AND expires_at > now()
			AND ($2::text[] IS NULL OR method = ANY($2)) AND method <> ALL($3::text[])
			ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+callColumns, deviceID, f.Methods, skip))
	return c, notFound(err)
}

// Requeue puts a persistent call that was claimed but never written to the
// device back in the queue. Calls without expires_at are not persistent and
// are left alone.
func (s *Store) Requeue(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE calls SET status = 'queued', sent_at = NULL, deadline = NULL
		WHERE id = $1 AND status = 'sent' AND expires_at IS NOT NULL`, id)
	return err
}

// RequeueAnswered puts a persistent call the device answered with e (a
// method it does not serve yet) back in the queue, e kept as its last
// error, unless its ttl has passed or it has finished: then it returns
// false and changes nothing.
func (s *Store) RequeueAnswered(ctx context.Context, id string, e *jsonrpc.Error) (bool, error) {
	errj, _ := json.Marshal(e)
	tag, err := s.pool.Exec(ctx, `UPDATE calls SET status = 'queued', sent_at = NULL, deadline = NULL, delivered_at = NULL,
		error = $2 WHERE id = $1 AND status IN ('sent', 'delivered') AND expires_at > now()`, id, errj)
	if err != nil {
		return false, fmt.Errorf("requeueing call %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// SetLastError records e as the last error of a queued call that has none
// yet (why it waits).
func (s *Store) SetLastError(ctx context.Context, id string, e *jsonrpc.Error) error {
	errj, _ := json.Marshal(e)
	_, err := s.pool.Exec(ctx, `UPDATE calls SET error = $2 WHERE id = $1 AND status = 'queued' AND error IS NULL`, id, errj)
	return err
}

// MarkUnlisted records, as the last error of each unexpired queued call of
// the device whose method is not among methods, a "method not found" with
// code, message and detail (data: {"method", "detail"}), unless the call
// already has a last error. It returns how many calls it marked.
func (s *Store) MarkUnlisted(ctx context.Context, deviceID string, methods []string, code int, message, detail string) (int64, error) {
	if methods == nil {
		methods = []string{}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE calls SET error = jsonb_build_object('code', $3::int, 'message', $4::text,
			'data', jsonb_build_object('method', method, 'detail', $5::text))
		WHERE device_id = $1 AND status = 'queued' AND expires_at > now() AND error IS NULL AND method <> ALL($2::text[])`,
		deviceID, methods, code, message, detail)
	if err != nil {
		return 0, fmt.Errorf("marking unlisted calls of %s: %w", deviceID, err)
	}
	return tag.RowsAffected(), nil
}

// MarkDelivered records that the websocket write of the call completed.
func (s *Store) MarkDelivered(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE calls SET status = 'delivered', delivered_at = now()
		WHERE id = $1 AND status = 'sent'`, id)
	return err
}

// FinishCall gives an unfinished call its final status. It returns the call
// as stored and true, or false when the call had already finished (e.g. the
// sweeper timed it out first): a final status is never overwritten.
func (s *Store) FinishCall(ctx context.Context, id, status string, result json.RawMessage, rpcErr *jsonrpc.Error) (Call, bool, error) {
	return s.FinishCallDelivered(ctx, id, status, result, rpcErr, nil)
}

// FinishCallDelivered is FinishCall for a call whose request was written
// to the device at delivered (nil: not written, or already marked): a
// synchronous call learns both at once, in one write.
func (s *Store) FinishCallDelivered(ctx context.Context, id, status string, result json.RawMessage, rpcErr *jsonrpc.Error,
	delivered *time.Time) (Call, bool, error) {
	var res []byte
	if len(result) > 0 {
		res = result
	}
	var c Call
	err := s.w.do(ctx, finishCallSQL, func(r pgx.Row) (err error) { c, err = scanCall(r); return err },
		id, status, res, callArgsErr(rpcErr), ptrTime(delivered))
	if err == pgx.ErrNoRows {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("finishing call %s: %w", id, err)
	}
	return c, true, nil
}

// ExpireQueued marks expired every queued call whose expires_at passed.
// A call with no last error gets plain; one the device never served (its
// last error says why) gets code with the message format(unserved, method)
// (unserved has one %s) and data {"method", "last_error"}.
func (s *Store) ExpireQueued(ctx context.Context, plain *jsonrpc.Error, code int, unserved string) ([]Call, error) {
	errj, _ := json.Marshal(plain)
	return s.collectCalls(ctx, `UPDATE calls SET status = 'expired', finished_at = now(),
		error = CASE WHEN error IS NULL THEN $1::jsonb ELSE jsonb_build_object('code', $2::int, 'message', format($3::text, method),
			'data', jsonb_build_object('method', method, 'last_error', error)) END
		WHERE status = 'queued' AND expires_at <= now() RETURNING `+callColumns, errj, code, unserved)
}

// TimeoutOverdue marks timed out every sent or delivered call whose deadline
// passed more than grace ago (grace leaves the holder time to record the
// answer itself).
func (s *Store) TimeoutOverdue(ctx context.Context, grace time.Duration, rpcErr *jsonrpc.Error) ([]Call, error) {
	errj, _ := json.Marshal(rpcErr)
	return s.collectCalls(ctx, `UPDATE calls SET status = 'timeout', error = $1, finished_at = now()
		WHERE status IN ('sent', 'delivered') AND deadline < now() - make_interval(secs => $2)
		RETURNING `+callColumns, errj, grace.Seconds())
}

func (s *Store) collectCalls(ctx context.Context, q string, args ...any) ([]Call, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// HasQueued reports whether the device has unexpired queued calls.
func (s *Store) HasQueued(ctx context.Context, deviceID string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM calls WHERE device_id = $1 AND status = 'queued' AND expires_at > now())`, deviceID).Scan(&ok)
	return ok, err
}

// validUUID reports whether id has the canonical UUID text form, so that a
// bad id is ErrNotFound rather than a database error.
func validUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, r := range id {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
				return false
			}
		}
	}
	return true
}
