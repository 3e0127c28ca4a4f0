package fleet_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/cloud/internal/store"
)

// These tests are item 4 of issue 9: after kill -9 of the cloud, a
// restarted cloud showed dev-1 online, on the dead replica, for about 20 s.
// (The kill -9 itself, with real processes, is e2e's TestReplicaKilled.)

func replicaRows(t *testing.T, s *cloudtest.Server) []store.Replica {
	t.Helper()
	rs, err := s.Service().Store().Replicas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func online(t *testing.T, s *cloudtest.Server, id string) bool {
	t.Helper()
	d, err := s.Service().GetDevice(context.Background(), s.Super, id)
	if err != nil {
		t.Fatal(err)
	}
	return d.Online
}

// TestReplicaNameTaken: a second live process with a replica's name does
// not start, says why, and changes nothing; after the first stops, the
// name is free and a restart under it adds no replicas row.
func TestReplicaNameTaken(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithReplica("box:8080"))
	acceptDevice(t, s, "dev-n1")
	before := replicaRows(t, s)
	_, err := server.Start(ctxT(t), server.Config{DatabaseURL: s.DatabaseURL, Listen: "127.0.0.1:0", CloudKey: s.Key,
		Replica: "box:8080", ShutdownTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, fleet.ErrReplicaTaken) || !strings.Contains(err.Error(), `"box:8080"`) || !strings.Contains(err.Error(), "--replica") {
		t.Fatalf("second replica with the same name: %v, want ErrReplicaTaken naming it and --replica", err)
	}
	after := replicaRows(t, s)
	if len(after) != 1 || after[0].Name != before[0].Name || !after[0].StartedAt.Equal(before[0].StartedAt) {
		t.Fatalf("replicas rows changed: %+v -> %+v", before, after)
	}
	if !online(t, s, "dev-n1") {
		t.Fatal("the refused replica knocked the first one's device offline")
	}
	s.Stop()
	s2 := cloudtest.NewServer(t, cloudtest.WithReplica("box:8080"), cloudtest.WithDatabase(s.DatabaseURL), cloudtest.WithKey(s.Key))
	if rs := replicaRows(t, s2); len(rs) != 1 || rs[0].Name != "box:8080" || !rs[0].StartedAt.After(before[0].StartedAt) {
		t.Fatalf("replicas after a restart under the same name: %+v", rs)
	}
}

// TestDeadReplicaDevicesGoOffline: the devices of a replica that stops
// heart-beating read offline as soon as its heartbeat is ReplicaTimeout
// old, and the janitor tells the dashboard (device.disconnected) within a
// second; the row of a replica gone for the retention is pruned.
func TestDeadReplicaDevicesGoOffline(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	st := s.Service().Store()
	// A replica "ghost" that held dev-g, as a process that was killed
	// leaves it: its lock freed, its row and its session recorded.
	d := acceptDevice(t, s, "dev-g")
	d.Close()
	waitOffline(t, s, "dev-g")
	ghost, err := st.LockReplica(ctx, "ghost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ghost.Start(ctx); err != nil {
		t.Fatal(err)
	}
	events, err := s.Service().Subscribe(ctx, s.Super)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	if _, err := st.StartSession(ctx, "dev-g", "ghost"); err != nil {
		t.Fatal(err)
	}
	ghost.Close()
	if !online(t, s, "dev-g") {
		t.Fatal("a session on a replica that just heart-beat reads offline")
	}
	cloudtest.Eventually(t, store.ReplicaTimeout+time.Second, func() bool { return !online(t, s, "dev-g") },
		"dev-g offline once ghost's heartbeat is %s old", store.ReplicaTimeout)
	died := time.Now()
	for {
		select {
		case e := <-events:
			if e.Type == fleet.EventDeviceDisconnected && e.DeviceID == "dev-g" && e.At.After(since) {
				if el := time.Since(died); el > 2*time.Second {
					t.Fatalf("device.disconnected %v after dev-g read offline, want within the janitor's second", el)
				}
				goto pruned
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no device.disconnected for dev-g")
		}
	}
pruned:
	if _, err := st.Pool().Exec(ctx, `UPDATE replicas SET heartbeat = now() - interval '25 hours' WHERE name = 'ghost'`); err != nil {
		t.Fatal(err)
	}
	if err := s.Service().Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicaRows(t, s) {
		if r.Name == "ghost" {
			t.Fatalf("the row of a replica gone for 25h was kept: %+v", r)
		}
	}
}

// TestLateReplicaReclaimsItsSessions: a replica whose heartbeat was late
// enough for another to end its sessions claims its live ones again with
// its next heartbeat.
func TestLateReplicaReclaimsItsSessions(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	acceptDevice(t, s, "dev-late")
	events, err := s.Service().Subscribe(ctx, s.Super)
	if err != nil {
		t.Fatal(err)
	}
	// What another replica's janitor does to a replica it thinks dead.
	since := time.Now()
	if _, err := s.Service().Store().Pool().Exec(ctx, `WITH r AS (
			UPDATE replicas SET heartbeat = now() - interval '1 minute' WHERE name = 'r1' RETURNING name)
		UPDATE devices SET online = false WHERE replica IN (SELECT name FROM r)`); err != nil {
		t.Fatal(err)
	}
	if online(t, s, "dev-late") {
		t.Fatal("dev-late online while its replica is declared dead")
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool { return online(t, s, "dev-late") }, "dev-late claimed again")
	for {
		select {
		case e := <-events:
			if e.Type == fleet.EventDeviceConnected && e.DeviceID == "dev-late" && e.At.After(since) {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no device.connected for the reclaimed session")
		}
	}
}
