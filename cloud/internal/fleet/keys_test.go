package fleet_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// auditRows counts the audit log.
func (e *admitEnv) auditRows(t *testing.T) int {
	t.Helper()
	return e.count(t, `SELECT count(*) FROM audit_log`)
}

// TestRejectedKeyAcceptedBack: a device rejected by an operator keeps
// registering and is refused each time without a write; the operator
// accepts its key again, by fingerprint, audited; its next registration is
// accepted. Naming a wrong key, or a revoked one, is refused with a public
// message and changes nothing, the audit log included.
func TestRejectedKeyAcceptedBack(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{})
	ctx := tctx(t)
	const addr = "192.0.2.20:4000"
	k1 := newDevKey(t)

	adm, v := e.admit(t, registration("back-1", k1), addr)
	e.acceptKey(t, "back-1", k1.fp)
	if err := e.svc.Reject(ctx, e.op, "back-1"); err != nil {
		t.Fatal(err)
	}
	e.end(t, adm.OrgID, "back-1", v)
	// Rejected and reconnecting in a loop: each attempt is refused with
	// 4003 and writes nothing (refused checks the database), no audit row.
	audit := e.auditRows(t)
	for range 3 {
		e.refused(t, registration("back-1", k1), addr, fleet.ReasonKeyRejected, rpcproto.CloseRejected)
	}
	if n := e.auditRows(t); n != audit {
		t.Fatalf("refused registrations wrote %d audit rows", n-audit)
	}
	rs, n, err := e.svc.RejectedKeys(ctx, e.op, 0, 10)
	if err != nil || n != 1 || rs[0].Fingerprint != k1.fp || rs[0].RejectedBy != e.op.Email || rs[0].RejectedAt == nil {
		t.Fatalf("rejected keys %+v, %d, %v", rs, n, err)
	}

	// Refusals: each with its public message, nothing changed, no audit.
	for _, tc := range []struct {
		name, fp, msg string
		want          error
		pendingOnly   bool
	}{
		{"another key", newDevKey(t).fp, "device back-1 has no key SHA256:", fleet.ErrKeyNotPending, false},
		{"malformed fingerprint", "SHA256:short", "fingerprint: want", fleet.ErrInvalid, false},
		{"pending only", k1.fp, "key " + k1.fp + " of device back-1 is rejected, not pending", fleet.ErrKeyNotPending, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, audit := e.dbState(t), e.auditRows(t)
			accept := e.svc.AcceptKey
			if tc.pendingOnly {
				accept = e.svc.AcceptPendingKey
			}
			_, err := accept(ctx, e.op, "back-1", tc.fp)
			msg, _ := fleet.PublicMessage(err)
			if !errors.Is(err, tc.want) || !strings.HasPrefix(msg, tc.msg) || strings.Contains(msg, "store") {
				t.Fatalf("err = %v (public %q), want %v %q", err, msg, tc.want, tc.msg)
			}
			if e.dbState(t) != before || e.auditRows(t) != audit {
				t.Fatal("a refused accept changed the database or the audit log")
			}
		})
	}
	// A viewer may not, and learns nothing more.
	viewer := fleet.Actor{Email: "viewer@admit.test", OrgID: e.op.OrgID, Role: fleet.RoleViewer}
	if _, err := e.svc.AcceptKey(ctx, viewer, "back-1", k1.fp); !errors.Is(err, fleet.ErrForbidden) {
		t.Fatalf("viewer accept: %v", err)
	}

	// Accept it back by its fingerprint: accepted, audited as a reversal.
	sub, err := e.bus.Conn().SubscribeSync(fleet.SubjectKey(adm.OrgID, "back-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	e.bus.Conn().Flush()
	k := e.acceptKey(t, "back-1", k1.fp)
	if k.Fingerprint != k1.fp || k.Status != store.KeyAccepted {
		t.Fatalf("accepted %+v", k)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	} else if km := (fleet.KeyMsg{}); json.Unmarshal(m.Data, &km) != nil || km.Accepted != k1.fp {
		t.Fatalf("key decision %s", m.Data)
	}
	rows, _ := e.svc.AuditLog(ctx, e.op, fleet.AuditFilter{Action: "device.accept", Target: "back-1", Limit: 1})
	var detail struct{ Fingerprint, Was string }
	if len(rows) == 1 {
		json.Unmarshal(rows[0].Detail, &detail)
	}
	if len(rows) != 1 || rows[0].Outcome != "ok" || rows[0].Actor != e.op.Email || detail.Fingerprint != k1.fp || detail.Was != store.KeyRejected {
		t.Fatalf("audit %+v (detail %+v)", rows, detail)
	}
	if rs, _, _ := e.svc.RejectedKeys(ctx, e.op, 0, 10); len(rs) != 0 {
		t.Fatalf("still listed as rejected: %+v", rs)
	}
	// The next registration is accepted.
	if adm, _ := e.admit(t, registration("back-1", k1), addr); adm.Reason != fleet.ReasonAccepted || adm.Status != rpcproto.StatusAccepted {
		t.Fatalf("registration after the accept: %+v", adm)
	}

	// Reject again, then accept without a fingerprint: the rejected key
	// is the device's only candidate.
	if err := e.svc.Reject(ctx, e.op, "back-1"); err != nil {
		t.Fatal(err)
	}
	if k, err := e.svc.AcceptKey(ctx, e.op, "back-1", ""); err != nil || k.Fingerprint != k1.fp {
		t.Fatalf("accept without a fingerprint: %+v, %v", k, err)
	}
	want := map[string]string{k1.fp: store.KeyAccepted}
	if got := e.keyStatuses(t, "back-1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys %v", got)
	}
}

// TestRevokedKeyStaysRevoked: decommissioning revokes; accept refuses a
// decommissioned device, by fingerprint or not, and changes nothing.
func TestRevokedKeyStaysRevoked(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{})
	ctx := tctx(t)
	k1 := newDevKey(t)
	e.admit(t, registration("gone-1", k1), "192.0.2.30:1")
	if err := e.svc.Reject(ctx, e.op, "gone-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Decommission(ctx, fleet.Actor{Role: fleet.RoleSuper, Email: "root@admit.test"}, "gone-1"); err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{k1.fp, ""} {
		before, audit := e.dbState(t), e.auditRows(t)
		_, err := e.svc.AcceptKey(ctx, e.op, "gone-1", fp)
		msg, _ := fleet.PublicMessage(err)
		if !errors.Is(err, fleet.ErrConflict) || !strings.HasPrefix(msg, "device gone-1 is decommissioned") {
			t.Fatalf("accept %q of a decommissioned device: %v (public %q)", fp, err, msg)
		}
		if e.dbState(t) != before || e.auditRows(t) != audit {
			t.Fatal("a refused accept changed the database or the audit log")
		}
	}
	e.refused(t, registration("gone-1", k1), "192.0.2.30:1", fleet.ReasonKeyRejected, rpcproto.CloseRejected)
}
