package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/keys"
)

// preauthorized makes devices of the actor's organisation with a
// preauthorized key each.
func preauthorized(t *testing.T, s *cloudtest.Server, a fleet.Actor, ids ...string) {
	t.Helper()
	for _, id := range ids {
		der, _ := keys.PublicDER(cloudtest.NewKey().Public())
		if err := s.Service().Preauthorize(context.Background(), a, id, der); err != nil {
			t.Fatalf("preauthorize %s: %v", id, err)
		}
	}
}

// fleetState is every device's status and tags, and the size of the audit
// log: what a refused bulk action must leave as it was.
func fleetState(t *testing.T, s *cloudtest.Server) string {
	t.Helper()
	var devs string
	var audit int
	err := s.Service().Store().Pool().QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(id || ':' || status || ':' || array_to_string(tags, '|'), ' ' ORDER BY id) FROM devices), ''),
		(SELECT count(*) FROM audit_log)`).Scan(&devs, &audit)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s audit=%d", devs, audit)
}

func TestTagDevices(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	op := s.Actor(t, "op@a.test", fleet.RoleOperator, "")
	viewer := s.Actor(t, "viewer@a.test", fleet.RoleViewer, "")
	stranger := s.Actor(t, "admin@b.test", fleet.RoleAdmin, "org-b")
	preauthorized(t, s, op, "a1", "a2", "a3")
	preauthorized(t, s, stranger, "b1")
	if err := svc.SetTags(ctx, op, "a2", []string{"old", "has space"}); err != nil {
		t.Fatal(err)
	}

	got, err := svc.TagDevices(ctx, op, []string{"a1", "a2", "a1"}, []string{"lab"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "map[a1:[lab] a2:[old has space lab]]" {
		t.Fatalf("tags %v", got)
	}
	rows, _ := svc.AuditLog(ctx, s.Super, fleet.AuditFilter{Action: "device.tags"})
	var targets []string
	for _, r := range rows {
		if strings.Contains(string(r.Detail), `"bulk": 2`) {
			targets = append(targets, r.Target)
		}
	}
	slices.Sort(targets)
	if fmt.Sprint(targets) != "[a1 a2]" {
		t.Fatalf("audit rows of the bulk action: %v", targets)
	}
	if got, err := svc.TagDevices(ctx, op, []string{"a2"}, nil, []string{"old"}); err != nil || fmt.Sprint(got["a2"]) != "[has space lab]" {
		t.Fatalf("remove: %v, %v", got, err)
	}

	// Every refusal says why and changes nothing.
	full := make([]string, 31)
	for i := range full {
		full[i] = fmt.Sprintf("t%d", i)
	}
	if err := svc.SetTags(ctx, op, "a3", full); err != nil {
		t.Fatal(err)
	}
	many := make([]string, fleet.MaxBulk+1)
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	for _, tc := range []struct {
		name     string
		a        fleet.Actor
		ids      []string
		add, rem []string
		kind     error
		msg      string
	}{
		{"unknown device among known ones", op, []string{"a1", "nope", "a2"}, []string{"new"}, nil, fleet.ErrNotFound, `there is no device "nope" in your organisation`},
		{"another organisation's device reads as unknown", op, []string{"a1", "b1"}, []string{"new"}, nil, fleet.ErrNotFound, `there is no device "b1" in your organisation`},
		{"viewer", viewer, []string{"a1"}, []string{"new"}, nil, fleet.ErrForbidden, "your role (viewer) may not tag device a1"},
		{"a tag against the rule", op, []string{"a1"}, []string{"a,b"}, nil, fleet.ErrInvalid, `"a,b" is not a tag`},
		{"no tag", op, []string{"a1"}, nil, nil, fleet.ErrInvalid, "name a tag"},
		{"no device", op, nil, []string{"new"}, nil, fleet.ErrInvalid, "no device was chosen"},
		{"one device would have 33 tags", op, []string{"a1", "a3"}, []string{"new", "newer"}, nil, fleet.ErrInvalid, "device a3: at most 32 tags"},
		{"past the bound", op, many, []string{"new"}, nil, fleet.ErrInvalid, "at most 500 devices at once (501 chosen)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fleetState(t, s)
			_, err := svc.TagDevices(ctx, tc.a, tc.ids, tc.add, tc.rem)
			msg, _ := fleet.PublicMessage(err)
			if !errors.Is(err, tc.kind) || !strings.Contains(msg, tc.msg) || !strings.HasPrefix(msg, "Nothing was changed") {
				t.Fatalf("err %v (message %q), want %v with %q", err, msg, tc.kind, tc.msg)
			}
			if after := fleetState(t, s); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}
}

func TestTagDevicesAtTheBound(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	if _, err := s.Service().Store().Pool().Exec(ctx, `INSERT INTO devices (id, org_id, status)
		SELECT 'bulk-' || i, 1, 'accepted' FROM generate_series(1, 500) i`); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, fleet.MaxBulk)
	for i := range ids {
		ids[i] = fmt.Sprintf("bulk-%d", i+1)
	}
	got, err := s.Service().TagDevices(ctx, s.Super, ids, []string{"all"}, nil)
	if err != nil || len(got) != fleet.MaxBulk {
		t.Fatalf("%d devices (the bound): %d tagged, %v", fleet.MaxBulk, len(got), err)
	}
}

func TestDecommissionDevices(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	op := s.Actor(t, "op@a.test", fleet.RoleOperator, "")
	admin := s.Actor(t, "admin@a.test", fleet.RoleAdmin, "")
	stranger := s.Actor(t, "admin@b.test", fleet.RoleAdmin, "org-b")
	preauthorized(t, s, admin, "a1", "a2")
	preauthorized(t, s, stranger, "b1")
	live := cloudtest.MustConnect(t, s, "a3", cloudtest.DeviceOptions{})
	if err := svc.Accept(ctx, admin, "a3"); err != nil {
		t.Fatal(err)
	}
	<-live.Accepted()

	for _, tc := range []struct {
		name string
		a    fleet.Actor
		ids  []string
		kind error
		msg  string
	}{
		{"an operator may not", op, []string{"a1"}, fleet.ErrForbidden, "your role (operator) may not decommission device a1; that needs admin"},
		{"another organisation's device", admin, []string{"a1", "b1"}, fleet.ErrNotFound, `no device "b1"`},
		{"an unknown device", admin, []string{"a1", "a2", "zz"}, fleet.ErrNotFound, `no device "zz"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fleetState(t, s)
			err := svc.DecommissionDevices(ctx, tc.a, tc.ids)
			msg, _ := fleet.PublicMessage(err)
			if !errors.Is(err, tc.kind) || !strings.Contains(msg, tc.msg) {
				t.Fatalf("err %v (message %q), want %v with %q", err, msg, tc.kind, tc.msg)
			}
			if after := fleetState(t, s); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}

	if err := svc.DecommissionDevices(ctx, admin, []string{"a3", "a1"}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a1": "decommissioned", "a3": "decommissioned", "a2": "preauthorized", "b1": "preauthorized"} {
		d, err := svc.GetDevice(ctx, s.Super, id)
		if err != nil || d.Status != want {
			t.Errorf("%s: %s, %v; want %s", id, d.Status, err, want)
		}
	}
	// The live session of a3 is closed, as by Decommission.
	live.WaitClosed(t, 10*time.Second)
	rows, _ := svc.AuditLog(ctx, s.Super, fleet.AuditFilter{Action: "device.decommission"})
	if len(rows) != 2 {
		t.Fatalf("%d decommission audit rows, want 2: %+v", len(rows), rows)
	}
}

// TestSetTagsRule: SetTags follows package tags' rule; a refusal changes
// nothing.
func TestSetTagsRule(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	preauthorized(t, s, s.Super, "d1")
	if err := svc.SetTags(ctx, s.Super, "d1", []string{"has space", "lab", strings.Repeat("t", 64)}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"a,b"}, {" lead"}, {"trail "}, {""}, {strings.Repeat("t", 65)}, {"a\tb"}} {
		before := fleetState(t, s)
		err := svc.SetTags(ctx, s.Super, "d1", bad)
		if !errors.Is(err, fleet.ErrInvalid) || !strings.Contains(err.Error(), "1 to 64 characters, with no comma") {
			t.Errorf("SetTags(%q): %v", bad, err)
		}
		if after := fleetState(t, s); after != before {
			t.Errorf("SetTags(%q) changed %s to %s", bad, before, after)
		}
	}
}
