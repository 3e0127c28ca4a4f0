package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/jackc/pgx/v5"
)

// Group commit of the call path's rows.
//
// A synchronous call writes its row twice (sent, then finished) and one
// audit row. Written one statement and one transaction at a time, that was
// three round trips and three commits per call, each waiting for a pool
// connection; at a few hundred calls a second PostgreSQL spent more CPU
// than the signatures did. The writer queues these statements from every
// caller and sends whatever has queued up, up to maxGroup, as one pgx
// batch: one round trip, one transaction, one commit (one WAL flush) for
// the group. With no load a group is one statement and costs what the
// plain statement did; under load groups grow by themselves, without a
// timer, because statements queue while the previous group is in flight.
//
// Every caller still waits for its own statement's commit before it goes
// on: a call the API answered is in PostgreSQL. A group that fails as a
// whole (one bad row aborts the transaction) is retried one statement at a
// time, so one caller's error never becomes another's.

// maxGroup bounds the statements in one group, and so the size of a
// transaction and the time one group holds its connection.
const maxGroup = 256

// groupWriters is how many groups may be in flight at once, each on its
// own pool connection.
const groupWriters = 2

type groupOp struct {
	sql  string
	args []any
	// scan reads the statement's row (nil: the statement returns none).
	scan func(pgx.Row) error
	// rows, when set, is a finished call (sql and args unused): a group
	// writes all of its finished calls in one multi-row statement.
	rows *finishedRow
	done chan error // capacity 1
}

// finishedRow is one finished call's values, as insertFinishedCallsSQL
// takes them in arrays.
type finishedRow struct {
	id, deviceID, method, status, actor string
	org, timeoutMS                      int64
	params, result, errj                []byte
	sent, finished                      time.Time
	delivered                           *time.Time
	audit                               bool
}

type groupWriter struct {
	s     *Store
	queue chan *groupOp
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu     sync.RWMutex // held (read) while queueing; close takes it to set closed
	closed bool

	stats groupCounters
}

type groupCounters struct {
	groups, statements, multiCalls atomic.Int64
}

// GroupStats counts what the call path's group writers wrote: groups
// (commits), statements in them, and finished calls written by multi-row
// statements (several calls in one).
type GroupStats struct{ Groups, Statements, MultiRowCalls int64 }

// GroupStats returns the group writers' counts since Open.
func (s *Store) GroupStats() GroupStats {
	c := &s.w.stats
	return GroupStats{Groups: c.groups.Load(), Statements: c.statements.Load(), MultiRowCalls: c.multiCalls.Load()}
}

func newGroupWriter(s *Store) *groupWriter {
	g := &groupWriter{s: s, queue: make(chan *groupOp, 4*maxGroup), stop: make(chan struct{})}
	for range groupWriters {
		g.wg.Add(1)
		go g.loop()
	}
	return g
}

// close stops the writers once the statements already queued are written.
func (g *groupWriter) close() {
	g.once.Do(func() {
		// No statement is queued after this: the writers' last drain
		// finds every one.
		g.mu.Lock()
		g.closed = true
		close(g.stop)
		g.mu.Unlock()
		g.wg.Wait()
	})
}

var errWriterClosed = errors.New("store: closed")

var opPool = sync.Pool{New: func() any { return &groupOp{done: make(chan error, 1)} }}

// do queues one statement and waits for its group's commit. ctx bounds
// only the wait for room in the queue: once queued, the statement is
// written and do waits for it, so that what the caller does next (answer
// an API request) never runs ahead of the commit.
func (g *groupWriter) do(ctx context.Context, sql string, scan func(pgx.Row) error, args ...any) error {
	return g.enqueue(ctx, nil, sql, scan, args)
}

// doRows is do for a finished call, which its group writes together with
// the group's other finished calls.
func (g *groupWriter) doRows(ctx context.Context, rows *finishedRow) error {
	return g.enqueue(ctx, rows, "", nil, nil)
}

func (g *groupWriter) enqueue(ctx context.Context, rows *finishedRow, sql string, scan func(pgx.Row) error, args []any) error {
	op := opPool.Get().(*groupOp)
	op.sql, op.args, op.scan, op.rows = sql, args, scan, rows
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return errWriterClosed
	}
	select {
	case g.queue <- op:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return ctx.Err()
	}
	err := <-op.done
	op.sql, op.args, op.scan, op.rows = "", nil, nil, nil
	opPool.Put(op)
	return err
}

func (g *groupWriter) loop() {
	defer g.wg.Done()
	ops := make([]*groupOp, 0, maxGroup)
	for {
		ops = ops[:0]
		select {
		case op := <-g.queue:
			ops = append(ops, op)
		case <-g.stop:
			// Write what is still queued, then stop.
			for {
				select {
				case op := <-g.queue:
					g.write([]*groupOp{op})
				default:
					return
				}
			}
		}
	fill:
		for len(ops) < maxGroup {
			select {
			case op := <-g.queue:
				ops = append(ops, op)
			default:
				break fill
			}
		}
		g.write(ops)
	}
}

// write sends ops as one batch; if the batch fails as a whole, each op is
// sent again on its own so that each caller gets its own outcome.
func (g *groupWriter) write(ops []*groupOp) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g.stats.groups.Add(1)
	g.stats.statements.Add(int64(len(ops)))
	if len(ops) == 1 {
		ops[0].done <- g.one(ctx, ops[0])
		return
	}
	// The group's finished calls become one multi-row statement, queued
	// where the first of them was; every other statement is queued as is.
	b := &pgx.Batch{}
	type slot struct {
		ops []*groupOp // the ops whose outcome this statement's is
		one bool       // a statement of its own (scan or exec)
	}
	var slots []slot
	var multi *finishedArrays
	multiAt := -1
	for _, op := range ops {
		if op.rows != nil {
			if multi == nil {
				multi = &finishedArrays{}
				multiAt = len(slots)
				slots = append(slots, slot{})
			}
			multi.add(op.rows)
			slots[multiAt].ops = append(slots[multiAt].ops, op)
			continue
		}
		slots = append(slots, slot{ops: []*groupOp{op}, one: true})
	}
	for i, sl := range slots {
		if i == multiAt {
			b.Queue(insertFinishedCallsSQL, multi.args()...)
			continue
		}
		b.Queue(sl.ops[0].sql, sl.ops[0].args...)
	}
	// A batch with no BEGIN of its own is one implicit transaction (pgx
	// sends one Sync after the last statement): all or nothing, one commit.
	errs := make([][]error, len(slots))
	br := g.s.pool.SendBatch(ctx, b)
	var err error
	for i, sl := range slots {
		var e error
		if sl.one && sl.ops[0].scan != nil {
			e = sl.ops[0].scan(br.QueryRow())
		} else {
			_, e = br.Exec()
		}
		errs[i] = make([]error, len(sl.ops))
		for j := range sl.ops {
			errs[i][j] = e
		}
		if e != nil && !errors.Is(e, pgx.ErrNoRows) {
			err = e
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		for _, op := range ops {
			op.done <- g.one(ctx, op)
		}
		return
	}
	if multiAt >= 0 && len(slots[multiAt].ops) > 1 {
		g.stats.multiCalls.Add(int64(len(slots[multiAt].ops)))
	}
	for i, sl := range slots {
		for j, op := range sl.ops {
			op.done <- errs[i][j]
		}
	}
}

func (g *groupWriter) one(ctx context.Context, op *groupOp) error {
	if op.rows != nil {
		var a finishedArrays
		a.add(op.rows)
		_, err := g.s.pool.Exec(ctx, insertFinishedCallsSQL, a.args()...)
		return err
	}
	if op.scan != nil {
		return op.scan(g.s.pool.QueryRow(ctx, op.sql, op.args...))
	}
	_, err := g.s.pool.Exec(ctx, op.sql, op.args...)
	return err
}

// Statements of the call path, written through the group writer.

const insertCallSQL = `INSERT INTO calls (id, org_id, device_id, method, params, status, actor, timeout_ms,
		expires_at, error, sent_at, deadline, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
			CASE WHEN $6 = 'sent' THEN now() END,
			CASE WHEN $6 = 'sent' THEN now() + make_interval(secs => $8::bigint / 1000.0) END,
			CASE WHEN $6 IN ('succeeded', 'failed', 'timeout', 'expired') THEN now() END)
		RETURNING ` + callColumns

// finishCallSQL gives an unfinished call its final status; $5, when set,
// is when its request was written to the device (delivered_at, if the
// call was not marked delivered already).
const finishCallSQL = `UPDATE calls SET status = $2, result = $3, error = $4, finished_at = now(),
		sent_at = coalesce(sent_at, now()), delivered_at = coalesce(delivered_at, $5)
		WHERE id = $1 AND status IN ('queued', 'sent', 'delivered') RETURNING ` + callColumns

const insertAuditSQL = `INSERT INTO audit_log (org_id, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)`

func callArgsErr(e *jsonrpc.Error) []byte {
	if e == nil {
		return nil
	}
	b, _ := json.Marshal(e)
	return b
}

// FinishedCall is a synchronous call written once, with its outcome: the
// call path of a session held by the writing replica.
type FinishedCall struct {
	NewCall
	Result      json.RawMessage
	SentAt      time.Time  // when the call was made
	DeliveredAt *time.Time // when its request was written to the device; nil: never
	// Audit, when set, writes the call's audit row (action "call", the
	// call's outcome, detail {"method", "call_id"}) in the same statement.
	Audit bool
}

// InsertFinishedCall records a synchronous call and its outcome at once,
// finished now, and returns it as stored (but for Seq; Result as given).
func (s *Store) InsertFinishedCall(ctx context.Context, f FinishedCall) (Call, error) {
	var params, result []byte
	if len(f.Params) > 0 {
		params = f.Params
	}
	if len(f.Result) > 0 {
		result = f.Result
	}
	// Microseconds, as PostgreSQL keeps them: the call returned is the
	// call stored.
	sent := f.SentAt.UTC().Truncate(time.Microsecond)
	finished := time.Now().UTC().Truncate(time.Microsecond)
	if finished.Before(sent) {
		finished = sent
	}
	var delivered *time.Time
	if f.DeliveredAt != nil {
		d := f.DeliveredAt.UTC().Truncate(time.Microsecond)
		delivered = &d
	}
	err := s.w.doRows(ctx, &finishedRow{id: f.ID, org: f.OrgID, deviceID: f.DeviceID, method: f.Method, params: params,
		status: f.Status, actor: f.Actor, timeoutMS: f.Timeout.Milliseconds(), result: result, errj: callArgsErr(f.Error),
		sent: sent, delivered: delivered, finished: finished, audit: f.Audit})
	if err != nil {
		return Call{}, fmt.Errorf("recording call to %s: %w", f.DeviceID, notFound(err))
	}
	return Call{ID: f.ID, OrgID: f.OrgID, DeviceID: f.DeviceID, Method: f.Method, Params: f.Params, Status: f.Status,
		Result: f.Result, Error: f.Error, Actor: f.Actor, CreatedAt: sent, SentAt: &sent, FinishedAt: &finished,
		DurationMS: finished.Sub(sent).Milliseconds(), Timeout: f.Timeout, DeliveredAt: delivered}, nil
}

// insertFinishedCallsSQL writes finished calls and, where audit is set,
// their audit rows: one statement (one executor start, one commit with its
// group) for all the finished calls of a group.
const insertFinishedCallsSQL = `WITH v AS (
		SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[],
			$8::bigint[], $9::jsonb[], $10::jsonb[], $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::boolean[])
			AS v(id, org_id, device_id, method, params, status, actor, timeout_ms, result, error, sent_at, delivered_at,
				finished_at, audit)
	), c AS (
		INSERT INTO calls (id, org_id, device_id, method, params, status, actor, timeout_ms, result, error,
			created_at, sent_at, delivered_at, finished_at)
		SELECT id, org_id, device_id, method, params, status, actor, timeout_ms, result, error,
			sent_at, sent_at, delivered_at, finished_at FROM v
	)
	INSERT INTO audit_log (org_id, actor, action, target, outcome, detail)
	SELECT org_id, actor, 'call', device_id, status, jsonb_build_object('method', method, 'call_id', id::text)
	FROM v WHERE audit`

// finishedArrays are a group's finished calls, column by column.
type finishedArrays struct {
	id, deviceID, method, status, actor []string
	org, timeoutMS                      []int64
	params, result, errj                [][]byte
	sent, finished                      []time.Time
	delivered                           []*time.Time
	audit                               []bool
}

func (a *finishedArrays) add(r *finishedRow) {
	a.id = append(a.id, r.id)
	a.org = append(a.org, r.org)
	a.deviceID = append(a.deviceID, r.deviceID)
	a.method = append(a.method, r.method)
	a.params = append(a.params, r.params)
	a.status = append(a.status, r.status)
	a.actor = append(a.actor, r.actor)
	a.timeoutMS = append(a.timeoutMS, r.timeoutMS)
	a.result = append(a.result, r.result)
	a.errj = append(a.errj, r.errj)
	a.sent = append(a.sent, r.sent)
	a.delivered = append(a.delivered, r.delivered)
	a.finished = append(a.finished, r.finished)
	a.audit = append(a.audit, r.audit)
}

func (a *finishedArrays) args() []any {
	return []any{a.id, a.org, a.deviceID, a.method, a.params, a.status, a.actor, a.timeoutMS, a.result, a.errj,
		a.sent, a.delivered, a.finished, a.audit}
}
