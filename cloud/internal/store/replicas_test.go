package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// lockReplica takes a replica name and releases it when the test ends.
func lockReplica(t *testing.T, st *store.Store, ctx context.Context, name string) *store.ReplicaLock {
	t.Helper()
	l, err := st.LockReplica(ctx, name)
	if err != nil {
		t.Fatalf("locking replica %s: %v", name, err)
	}
	t.Cleanup(l.Close)
	return l
}

// onlineDevice registers a device and starts a session of it on replica.
func onlineDevice(t *testing.T, st *store.Store, ctx context.Context, id, replica string) int64 {
	t.Helper()
	register(t, st, ctx, id, newTestKey(t))
	v, err := st.StartSession(ctx, id, replica)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func replicaCount(t *testing.T, st *store.Store, ctx context.Context) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM replicas`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// setHeartbeat makes the replica's last heartbeat age old.
func setHeartbeat(t *testing.T, st *store.Store, ctx context.Context, name string, age time.Duration) {
	t.Helper()
	if _, err := st.Pool().Exec(ctx, `UPDATE replicas SET heartbeat = now() - make_interval(secs => $2) WHERE name = $1`,
		name, age.Seconds()); err != nil {
		t.Fatal(err)
	}
}

// onlineEverywhere reads whether id is online through every query that
// shows it: GetDevice, ListDevices (and its online filter), Counts and
// PendingKeys. It fails the test when they disagree.
func onlineEverywhere(t *testing.T, st *store.Store, ctx context.Context, id string) bool {
	t.Helper()
	d, err := st.GetDevice(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{"GetDevice": d.Online}
	all, _, err := st.ListDevices(ctx, store.DeviceFilter{Text: id, Limit: 10})
	if err != nil || len(all) != 1 {
		t.Fatalf("ListDevices: %v, %v", all, err)
	}
	seen["ListDevices"] = all[0].Online
	yes := true
	on, _, err := st.ListDevices(ctx, store.DeviceFilter{Text: id, Online: &yes, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	seen["ListDevices online=true"] = len(on) == 1
	no := false
	off, _, err := st.ListDevices(ctx, store.DeviceFilter{Text: id, Online: &no, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	seen["ListDevices online=false"] = len(off) == 0
	c, err := st.Counts(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Online+c.Offline != c.Total {
		t.Fatalf("counts %+v: online and offline do not add up", c)
	}
	seen["Counts"] = c.Online == 1 // the only device of the test
	pks, _, err := st.PendingKeys(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pks {
		if p.DeviceID == id {
			seen["PendingKeys"] = p.Online
		}
	}
	for _, v := range seen {
		if v != d.Online {
			t.Fatalf("readers disagree on whether %s is online: %v", id, seen)
		}
	}
	return d.Online
}

// TestOnlineNeedsALiveReplica: a device counts online while its session's
// replica heart-beat within ReplicaTimeout, and not a moment longer, in
// every reader; the janitor then ends the session in the row, once.
func TestOnlineNeedsALiveReplica(t *testing.T) {
	st, ctx := migrated(t)
	l := lockReplica(t, st, ctx, "ra")
	if _, err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	v := onlineDevice(t, st, ctx, "dev-live", "ra")
	if !onlineEverywhere(t, st, ctx, "dev-live") {
		t.Fatal("a session on a replica that heart-beats reads offline")
	}
	// At the bound (just inside it): still online, and the janitor leaves it.
	setHeartbeat(t, st, ctx, "ra", store.ReplicaTimeout-time.Second)
	if !onlineEverywhere(t, st, ctx, "dev-live") {
		t.Fatalf("heartbeat %s old: offline, want online", store.ReplicaTimeout-time.Second)
	}
	if refs, err := st.EndStaleSessions(ctx); err != nil || len(refs) != 0 {
		t.Fatalf("janitor on a fresh replica ended %v, %v", refs, err)
	}
	// Beyond the bound: offline everywhere, before any janitor ran.
	setHeartbeat(t, st, ctx, "ra", store.ReplicaTimeout+10*time.Millisecond)
	if onlineEverywhere(t, st, ctx, "dev-live") {
		t.Fatalf("heartbeat %s old: online, want offline", store.ReplicaTimeout+10*time.Millisecond)
	}
	refs, err := st.EndStaleSessions(ctx)
	if err != nil || len(refs) != 1 || refs[0].ID != "dev-live" {
		t.Fatalf("janitor ended %v, %v; want dev-live", refs, err)
	}
	if refs, err := st.EndStaleSessions(ctx); err != nil || len(refs) != 0 {
		t.Fatalf("a second janitor round ended %v, %v; want nothing", refs, err)
	}
	// The replica was only slow: its heartbeat says so, and it claims its
	// live session again (only the current version).
	revived, err := l.Heartbeat(ctx)
	if err != nil || !revived {
		t.Fatalf("heartbeat after being declared dead: revived %v, %v", revived, err)
	}
	if refs, err := st.ReassertSessions(ctx, "ra", []store.SessionRef{{DeviceID: "dev-live", Version: v - 1}}); err != nil || len(refs) != 0 {
		t.Fatalf("reasserting an old session version: %v, %v", refs, err)
	}
	if refs, err := st.ReassertSessions(ctx, "rb", []store.SessionRef{{DeviceID: "dev-live", Version: v}}); err != nil || len(refs) != 0 {
		t.Fatalf("reasserting from another replica: %v, %v", refs, err)
	}
	refs, err = st.ReassertSessions(ctx, "ra", []store.SessionRef{{DeviceID: "dev-live", Version: v}})
	if err != nil || len(refs) != 1 {
		t.Fatalf("reasserting the live session: %v, %v", refs, err)
	}
	if !onlineEverywhere(t, st, ctx, "dev-live") {
		t.Fatal("reasserted session reads offline")
	}
	if revived, err := l.Heartbeat(ctx); err != nil || revived {
		t.Fatalf("a heartbeat in time: revived %v, %v", revived, err)
	}
}

// TestReplicaNameHeldOnce: a second live holder of a name is refused and
// changes nothing; the name is free again once the first lets go.
func TestReplicaNameHeldOnce(t *testing.T) {
	st, ctx := migrated(t)
	l := lockReplica(t, st, ctx, "host:8080")
	if _, err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	onlineDevice(t, st, ctx, "dev-held", "host:8080")
	before := replicaState(t, st, ctx)
	if _, err := st.LockReplica(ctx, "host:8080"); !errors.Is(err, store.ErrReplicaTaken) {
		t.Fatalf("second holder of host:8080: %v, want ErrReplicaTaken", err)
	}
	if after := replicaState(t, st, ctx); after != before {
		t.Fatalf("a refused second holder changed state: %s -> %s", before, after)
	}
	// Another name is another lock.
	lockReplica(t, st, ctx, "host:8081")
	l.Close()
	l.Close() // safe twice
	lockReplica(t, st, ctx, "host:8080")
}

// replicaState sums up the replicas rows and the devices' sessions.
func replicaState(t *testing.T, st *store.Store, ctx context.Context) string {
	t.Helper()
	var s string
	if err := st.Pool().QueryRow(ctx, `SELECT
		(SELECT coalesce(string_agg(name || '@' || started_at::text || '/' || heartbeat::text, ',' ORDER BY name), '') FROM replicas) || ' ' ||
		(SELECT coalesce(string_agg(id || ':' || online::text || ':' || replica, ',' ORDER BY id), '') FROM devices)`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReplicaRestartSameName: a restart under the same name keeps one
// replicas row and ends the sessions the dead run left behind.
func TestReplicaRestartSameName(t *testing.T) {
	st, ctx := migrated(t)
	l := lockReplica(t, st, ctx, "host:8080")
	if refs, err := l.Start(ctx); err != nil || len(refs) != 0 {
		t.Fatalf("first start: %v, %v", refs, err)
	}
	onlineDevice(t, st, ctx, "dev-rs", "host:8080")
	l.Close() // as a kill -9 would: the sessions stay recorded
	l2 := lockReplica(t, st, ctx, "host:8080")
	refs, err := l2.Start(ctx)
	if err != nil || len(refs) != 1 || refs[0].ID != "dev-rs" {
		t.Fatalf("restart ended %v, %v; want dev-rs", refs, err)
	}
	if n := replicaCount(t, st, ctx); n != 1 {
		t.Fatalf("%d replicas rows after a restart under the same name, want 1", n)
	}
	if onlineEverywhere(t, st, ctx, "dev-rs") {
		t.Fatal("the dead run's session still reads online")
	}
}

// TestReplicaLockLost: the lock lives with its connection. A connection
// that dies frees the name at once (a killed process); the survivor's next
// heartbeat takes it back if it is still free, and learns that it lost it
// if another process took it.
func TestReplicaLockLost(t *testing.T) {
	st, ctx := migrated(t)
	terminate := func(name string) {
		t.Helper()
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, "bosun-cloud replica "+name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("terminating the lock connection of %s: %d, %v", name, n, err)
		}
	}
	takeEventually := func(name string) *store.ReplicaLock {
		t.Helper()
		// Poll: PostgreSQL frees the lock once the backend has exited.
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			l, err := st.LockReplica(ctx, name)
			if err == nil {
				t.Cleanup(l.Close)
				return l
			}
			if !errors.Is(err, store.ErrReplicaTaken) || time.Now().After(deadline) {
				t.Fatalf("taking %s after its holder's connection died: %v", name, err)
			}
			<-tick.C
		}
	}

	t.Run("taken back", func(t *testing.T) {
		l := lockReplica(t, st, ctx, "r-back")
		if _, err := l.Start(ctx); err != nil {
			t.Fatal(err)
		}
		terminate("r-back")
		var err error
		for range 3 { // the first may still find the dead connection
			if _, err = l.Heartbeat(ctx); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("heartbeat after the connection died: %v", err)
		}
		if _, err := st.LockReplica(ctx, "r-back"); !errors.Is(err, store.ErrReplicaTaken) {
			t.Fatalf("the name is not held again: %v", err)
		}
	})
	t.Run("taken by another", func(t *testing.T) {
		l := lockReplica(t, st, ctx, "r-lost")
		if _, err := l.Start(ctx); err != nil {
			t.Fatal(err)
		}
		terminate("r-lost")
		other := takeEventually("r-lost")
		var err error
		for range 3 {
			if _, err = l.Heartbeat(ctx); errors.Is(err, store.ErrReplicaTaken) {
				break
			}
		}
		if !errors.Is(err, store.ErrReplicaTaken) {
			t.Fatalf("heartbeat of a replica whose name another took: %v, want ErrReplicaTaken", err)
		}
		if _, err := other.Heartbeat(ctx); err != nil {
			t.Fatalf("the new holder's heartbeat: %v", err)
		}
	})
}

// TestPruneReplicas: rows of replicas not heard from for the retention go
// (at the bound they stay), with any session still recorded on them; the
// caller's own row never goes.
func TestPruneReplicas(t *testing.T) {
	st, ctx := migrated(t)
	const retention = 24 * time.Hour
	for _, name := range []string{"old", "keep-me", "young", "self"} {
		l := lockReplica(t, st, ctx, name)
		if _, err := l.Start(ctx); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	onlineDevice(t, st, ctx, "dev-old", "old")
	setHeartbeat(t, st, ctx, "old", retention+time.Minute)
	setHeartbeat(t, st, ctx, "keep-me", retention-time.Minute)
	setHeartbeat(t, st, ctx, "self", retention+time.Hour)
	names, refs, err := st.PruneReplicas(ctx, retention, "self")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != "[old]" || len(refs) != 1 || refs[0].ID != "dev-old" {
		t.Fatalf("pruned %v, ended %v; want [old] and dev-old", names, refs)
	}
	rs, err := st.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range rs {
		left = append(left, r.Name)
	}
	if fmt.Sprint(left) != "[keep-me self young]" {
		t.Fatalf("replicas left: %v", left)
	}
	if d, _ := st.GetDevice(ctx, "dev-old"); d.Online {
		t.Fatal("a device of a pruned replica reads online")
	}
}

// TestEndOrphanSessions: a session recorded on a replica with no row at all
// ends.
func TestEndOrphanSessions(t *testing.T) {
	st, ctx := migrated(t)
	onlineDevice(t, st, ctx, "dev-orphan", "never-seen")
	refs, err := st.EndOrphanSessions(ctx)
	if err != nil || len(refs) != 1 || refs[0].ID != "dev-orphan" {
		t.Fatalf("orphans ended: %v, %v", refs, err)
	}
	var online bool
	st.Pool().QueryRow(ctx, `SELECT online FROM devices WHERE id = 'dev-orphan'`).Scan(&online)
	if online {
		t.Fatal("the orphan session is still recorded")
	}
}
