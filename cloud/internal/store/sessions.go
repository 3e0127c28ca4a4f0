package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file holds the bookkeeping of device sessions (the websocket a
// device holds on one replica) and of the replicas themselves.
//
// A device is online when two things hold: its row says a session started
// and has not ended (devices.online, on devices.replica), and that replica
// is alive, its replicas.heartbeat younger than ReplicaTimeout. Every query
// that shows a device's state uses the one expression liveOnline, so the
// dashboard, the API and the CLI agree, and a replica that dies (kill -9,
// power loss) stops counting its devices online ReplicaTimeout after its
// last heartbeat, before anyone has cleaned up after it. The janitor
// (EndStaleSessions) then ends those sessions in the rows, within the next
// second, so that the bookkeeping (registration limits, pruning) agrees too.

// ReplicaTimeout is how old a replica's heartbeat may be for the replica
// to count as alive. Replicas heartbeat every ReplicaTimeout/4 (1s).
const ReplicaTimeout = 4 * time.Second

// ErrReplicaTaken is returned when another live process holds the replica
// name asked for.
var ErrReplicaTaken = errors.New("store: replica name held by another live process")

// lockReplica namespaces the advisory locks on replica names (the key is
// the pair lockReplica, hashtext(name)); see registration.go for the others.
const lockReplica int32 = 0x626f0004

// replicaFresh holds for a replicas row r that heart-beat within
// ReplicaTimeout.
var replicaFresh = `r.heartbeat > now() - make_interval(secs => ` + strconv.FormatFloat(ReplicaTimeout.Seconds(), 'f', -1, 64) + `)`

// liveOnline is the one definition of "online" for a devices row d: a
// session that started and has not ended, on a replica that is alive.
var liveOnline = `(d.online AND EXISTS (SELECT 1 FROM replicas r WHERE r.name = d.replica AND ` + replicaFresh + `))`

// StartSession marks the device online on replica and bumps its
// session_version, returning the new version: the session holding it is the
// one live session of the device; any older one must close. The session
// now counts as live by being online, so the admission's reservation
// (pending_admitted_at, see Admit) ends.
func (s *Store) StartSession(ctx context.Context, deviceID, replica string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `UPDATE devices SET session_version = session_version + 1, online = true,
		replica = $2, last_seen = now(), pending_admitted_at = NULL WHERE id = $1 RETURNING session_version`, deviceID, replica).Scan(&v)
	return v, notFound(err)
}

// EndSession marks the device offline, unless a newer session took over in
// the meantime (then it changes nothing and returns false).
func (s *Store) EndSession(ctx context.Context, deviceID string, version int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET online = false, last_seen = now(), pending_admitted_at = NULL
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

// TouchMany is Touch for many sessions in one statement.
func (s *Store) TouchMany(ctx context.Context, refs []SessionRef) error {
	if len(refs) == 0 {
		return nil
	}
	ids := make([]string, len(refs))
	vs := make([]int64, len(refs))
	for i, r := range refs {
		ids[i], vs[i] = r.DeviceID, r.Version
	}
	_, err := s.pool.Exec(ctx, `UPDATE devices d SET last_seen = now()
		FROM unnest($1::text[], $2::bigint[]) AS t(id, v)
		WHERE d.id = t.id AND d.session_version = t.v`, ids, vs)
	return err
}

// DeviceRef names a device and its organisation.
type DeviceRef struct {
	OrgID int64
	ID    string
}

// SessionRef names a live session a replica holds.
type SessionRef struct {
	DeviceID string
	Version  int64
}

// ReplicaLock is a replica's hold on its name: a session-level advisory
// lock taken on a connection of its own, outside the pool. While the
// process lives and its connection stands, no other process can take the
// name; when the process dies, PostgreSQL sees the connection drop and
// frees the lock. The replica's heartbeat travels on the same connection,
// so a heartbeat that succeeds proves that the lock is still held.
type ReplicaLock struct {
	cfg  *pgx.ConnConfig
	name string

	mu   sync.Mutex // guards conn; held across each statement on it
	conn *pgx.Conn  // nil after Close, or while reconnecting failed
}

// LockReplica takes the replica name name, or returns ErrReplicaTaken when
// another live process holds it.
func (s *Store) LockReplica(ctx context.Context, name string) (*ReplicaLock, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "bosun-cloud replica " + name
	l := &ReplicaLock{cfg: cfg, name: name}
	conn, err := l.connect(ctx)
	if err != nil {
		return nil, err
	}
	l.conn = conn
	return l, nil
}

// connect opens a connection and takes the name's lock on it.
func (l *ReplicaLock) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting for the replica lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockReplica, l.name).Scan(&ok); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("taking the replica lock: %w", err)
	}
	if !ok {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("replica %q: %w", l.name, ErrReplicaTaken)
	}
	return conn, nil
}

// Name is the replica name the lock holds.
func (l *ReplicaLock) Name() string { return l.name }

// Start records the replica as started and alive (one replicas row per
// name, however often it restarts) and ends the sessions a previous run of
// the same name left behind: that run is dead, since this one holds the
// lock. It returns the devices marked offline.
func (l *ReplicaLock) Start(ctx context.Context) ([]DeviceRef, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil, errors.New("store: replica lock closed")
	}
	var refs []DeviceRef
	err := pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE devices SET online = false WHERE online AND replica = $1 RETURNING org_id, id`, l.name)
		if err != nil {
			return err
		}
		if refs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO replicas (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET started_at = now(), heartbeat = now()`, l.name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("starting replica %s: %w", l.name, err)
	}
	return refs, nil
}

// Heartbeat records that the replica is alive. revived reports that its
// previous heartbeat was older than ReplicaTimeout (or its row was gone):
// other replicas may have ended its sessions in the meantime, and the
// sessions it still holds must be claimed again (ReassertSessions).
//
// A connection that broke is replaced, and the lock taken again on the new
// one: ErrReplicaTaken then means that another process took the name while
// this one had no connection, and this process must stop serving.
func (l *ReplicaLock) Heartbeat(ctx context.Context) (revived bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.conn.IsClosed() {
		if l.conn != nil {
			l.conn.Close(context.WithoutCancel(ctx))
			l.conn = nil
		}
		conn, err := l.connect(ctx)
		if err != nil {
			return false, err
		}
		l.conn = conn
	}
	err = l.conn.QueryRow(ctx, `WITH prev AS (SELECT heartbeat FROM replicas WHERE name = $1)
		INSERT INTO replicas (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET heartbeat = now()
		RETURNING coalesce((SELECT NOT (`+replicaFresh+`) FROM prev r), true)`, l.name).Scan(&revived)
	if err != nil {
		return false, fmt.Errorf("heartbeat of replica %s: %w", l.name, err)
	}
	return revived, nil
}

// Close releases the name (closing the connection frees the lock). The
// replicas row stays, so a restart under the same name adds none. Safe to
// call twice.
func (l *ReplicaLock) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.conn.Close(ctx)
		l.conn = nil
	}
}

// ResetReplica marks offline every device the named replica held: called
// when a replica stops (it closed its sessions, but a disconnect may not
// have reached the database).
func (s *Store) ResetReplica(ctx context.Context, replica string) ([]DeviceRef, error) {
	rows, err := s.pool.Query(ctx, `UPDATE devices SET online = false WHERE online AND replica = $1 RETURNING org_id, id`, replica)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
}

// EndStaleSessions ends, in the rows, the sessions of every replica whose
// heartbeat is older than ReplicaTimeout, and returns the devices it marked
// offline. The stale replicas rows are locked first (in name order), so
// that a replica heart-beating at the same moment either counts as alive
// here or learns from its heartbeat that it was declared dead (revived),
// never neither; and so that two janitors never both report a device.
func (s *Store) EndStaleSessions(ctx context.Context) ([]DeviceRef, error) {
	var refs []DeviceRef
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name FROM replicas r WHERE NOT (`+replicaFresh+`) ORDER BY name FOR UPDATE`)
		if err != nil {
			return err
		}
		dead, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(dead) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE devices SET online = false WHERE online AND replica = ANY($1) RETURNING org_id, id`, dead)
		if err != nil {
			return err
		}
		refs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ending sessions of stale replicas: %w", err)
	}
	return refs, nil
}

// EndOrphanSessions ends the sessions held by replicas that have no
// replicas row at all (a row pruned, or a session recorded by a version
// that kept none). It reads every online device, so it runs at start and
// with the slower sweep, not every second.
func (s *Store) EndOrphanSessions(ctx context.Context) ([]DeviceRef, error) {
	rows, err := s.pool.Query(ctx, `UPDATE devices d SET online = false WHERE d.online AND NOT EXISTS (
		SELECT 1 FROM replicas r WHERE r.name = d.replica) RETURNING d.org_id, d.id`)
	if err != nil {
		return nil, fmt.Errorf("ending sessions of unknown replicas: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
}

// ReassertSessions marks online again the given sessions of replica that a
// janitor ended while the replica was thought dead (see Heartbeat's
// revived), as long as each is still the device's current session. It
// returns the devices it marked online.
func (s *Store) ReassertSessions(ctx context.Context, replica string, sessions []SessionRef) ([]DeviceRef, error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	ids := make([]string, len(sessions))
	versions := make([]int64, len(sessions))
	for i, r := range sessions {
		ids[i], versions[i] = r.DeviceID, r.Version
	}
	rows, err := s.pool.Query(ctx, `UPDATE devices d SET online = true FROM unnest($2::text[], $3::bigint[]) AS h(id, version)
		WHERE d.id = h.id AND d.session_version = h.version AND d.replica = $1 AND NOT d.online
		RETURNING d.org_id, d.id`, replica, ids, versions)
	if err != nil {
		return nil, fmt.Errorf("reasserting sessions of replica %s: %w", replica, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
}

// PruneReplicas deletes the rows of replicas not heard from for olderThan
// (never the row of keep, the caller's own), ending any session still
// recorded on them. It returns the names deleted and the devices marked
// offline.
func (s *Store) PruneReplicas(ctx context.Context, olderThan time.Duration, keep string) ([]string, []DeviceRef, error) {
	var names []string
	var refs []DeviceRef
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM replicas WHERE heartbeat < now() - make_interval(secs => $1) AND name <> $2
			RETURNING name`, olderThan.Seconds(), keep)
		if err != nil {
			return err
		}
		if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(names) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE devices SET online = false WHERE online AND replica = ANY($1) RETURNING org_id, id`, names)
		if err != nil {
			return err
		}
		refs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[DeviceRef])
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("pruning replicas: %w", err)
	}
	return names, refs, nil
}

// Replica is one row of the replicas table.
type Replica struct {
	Name      string
	StartedAt time.Time
	Heartbeat time.Time
	// Alive reports whether the heartbeat is younger than ReplicaTimeout.
	Alive bool
}

// Replicas lists the known replicas by name.
func (s *Store) Replicas(ctx context.Context) ([]Replica, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, started_at, heartbeat, `+replicaFresh+` FROM replicas r ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Replica])
}
