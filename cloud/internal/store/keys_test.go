package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// keyDigest is a digest of every key set and device row: equal digests mean
// nothing changed.
func keyDigest(t *testing.T, st *store.Store) string {
	t.Helper()
	var s string
	err := st.Pool().QueryRow(t.Context(), `SELECT
		(SELECT coalesce(md5(string_agg(row_to_json(d)::text, ',' ORDER BY d.id)), '') FROM devices d) || ' ' ||
		(SELECT coalesce(md5(string_agg(row_to_json(k)::text, ',' ORDER BY k.id)), '') FROM device_keys k)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func statuses(t *testing.T, st *store.Store, id string) map[string]string {
	t.Helper()
	ks, err := st.ListKeySets(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range ks {
		m[k.Fingerprint] = k.Status
	}
	return m
}

// TestAcceptRejectedKey: a rejection is reversible (by fingerprint, or
// without one when the rejected key is the only candidate) and recorded
// with who and when; a revocation is final; every refusal changes nothing.
func TestAcceptRejectedKey(t *testing.T) {
	st, ctx := migrated(t)
	k1, k2, k3 := newTestKey(t), newTestKey(t), newTestKey(t)
	register(t, st, ctx, "rj-1", k1)
	if _, err := st.Reject(ctx, "rj-1", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	rs, n, err := st.RejectedKeys(ctx, 0, 10)
	if err != nil || n != 1 || len(rs) != 1 {
		t.Fatalf("rejected keys %+v, %d, %v", rs, n, err)
	}
	if r := rs[0]; r.DeviceID != "rj-1" || r.Fingerprint != k1.fp || r.RejectedBy != "ann@example.com" || r.RejectedAt == nil || r.DeviceAccepted {
		t.Fatalf("rejected key %+v", r)
	}

	// Pending only: the rejected key is not accepted, nothing changes.
	before := keyDigest(t, st)
	_, err = st.Accept(ctx, store.AcceptInput{DeviceID: "rj-1", Fingerprint: k1.fp, PendingOnly: true})
	var knp *store.KeyNotPendingError
	if !errors.As(err, &knp) || knp.Status != store.KeyRejected {
		t.Fatalf("pending-only accept of a rejected key: %v", err)
	}
	_, err = st.Accept(ctx, store.AcceptInput{DeviceID: "rj-1", PendingOnly: true})
	if !errors.Is(err, store.ErrNoPendingKey) {
		t.Fatalf("pending-only accept without a fingerprint: %v", err)
	}
	if keyDigest(t, st) != before {
		t.Fatal("a refused accept changed the database")
	}

	// Without a fingerprint the only rejected key is the candidate.
	kc, err := st.Accept(ctx, store.AcceptInput{DeviceID: "rj-1", Actor: "bob@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if kc.Accepted == nil || kc.Accepted.Fingerprint != k1.fp || kc.Was != store.KeyRejected || len(kc.Closed) != 0 {
		t.Fatalf("accepting the rejected key: %+v", kc)
	}
	if d, _ := st.GetDevice(ctx, "rj-1"); d.Status != store.DeviceAccepted {
		t.Fatalf("device %s, want accepted", d.Status)
	}
	if _, n, _ := st.RejectedKeys(ctx, 0, 10); n != 0 {
		t.Fatalf("%d rejected keys after accepting the only one", n)
	}

	// K2 arrives and is accepted: K1 is revoked, for good.
	register(t, st, ctx, "rj-1", k2)
	if _, err := st.Accept(ctx, store.AcceptInput{DeviceID: "rj-1", Fingerprint: k2.fp}); err != nil {
		t.Fatal(err)
	}
	// K3 arrives and is rejected while K2 stays accepted.
	register(t, st, ctx, "rj-1", k3)
	if _, err := st.Reject(ctx, "rj-1", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{k1.fp: store.KeyRevoked, k2.fp: store.KeyAccepted, k3.fp: store.KeyRejected}
	if got := statuses(t, st, "rj-1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	if rs, _, _ := st.RejectedKeys(ctx, 0, 10); len(rs) != 1 || rs[0].Fingerprint != k3.fp || !rs[0].DeviceAccepted {
		t.Fatalf("rejected keys %+v, want K3 of an accepted device", rs)
	}

	for _, tc := range []struct {
		name  string
		in    store.AcceptInput
		check func(error) bool
	}{
		{"revoked key", store.AcceptInput{DeviceID: "rj-1", Fingerprint: k1.fp}, func(err error) bool {
			return errors.As(err, &knp) && knp.Status == store.KeyRevoked
		}},
		{"accepted key", store.AcceptInput{DeviceID: "rj-1", Fingerprint: k2.fp}, func(err error) bool {
			return errors.As(err, &knp) && knp.Status == store.KeyAccepted
		}},
		{"unknown key", store.AcceptInput{DeviceID: "rj-1", Fingerprint: newTestKey(t).fp}, func(err error) bool {
			return errors.As(err, &knp) && knp.Status == ""
		}},
		{"no fingerprint: a rejected key does not replace the accepted one", store.AcceptInput{DeviceID: "rj-1"}, func(err error) bool {
			var none *store.NothingToAcceptError
			return errors.As(err, &none) && none.Accepted == k2.fp && errors.Is(err, store.ErrNoPendingKey)
		}},
		{"unknown device", store.AcceptInput{DeviceID: "rj-none"}, func(err error) bool { return errors.Is(err, store.ErrNotFound) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := keyDigest(t, st)
			if _, err := st.Accept(ctx, tc.in); !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			if keyDigest(t, st) != before {
				t.Fatal("a refused accept changed the database")
			}
		})
	}

	// By its fingerprint K3 is accepted, and K2 revoked.
	kc, err = st.Accept(ctx, store.AcceptInput{DeviceID: "rj-1", Fingerprint: k3.fp})
	if err != nil || kc.Was != store.KeyRejected || fmt.Sprint(kc.Revoked) != fmt.Sprint([]string{k2.fp}) {
		t.Fatalf("accepting K3 by its fingerprint: %+v, %v", kc, err)
	}

	// Two rejected keys and none accepted: ambiguous, with their statuses.
	k4, k5 := newTestKey(t), newTestKey(t)
	register(t, st, ctx, "rj-2", k4)
	if _, err := st.Reject(ctx, "rj-2", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	register(t, st, ctx, "rj-2", k5)
	before = keyDigest(t, st)
	_, err = st.Accept(ctx, store.AcceptInput{DeviceID: "rj-2"})
	var amb *store.AmbiguousKeyError
	if !errors.As(err, &amb) || fmt.Sprint(amb.Fingerprints) != fmt.Sprint([]string{k5.fp, k4.fp}) ||
		fmt.Sprint(amb.Statuses) != fmt.Sprint([]string{store.KeyPending, store.KeyRejected}) {
		t.Fatalf("a pending and a rejected key: %v", err)
	}
	if keyDigest(t, st) != before {
		t.Fatal("a refused accept changed the database")
	}
	// Pending only, the pending key is the one candidate.
	if kc, err := st.Accept(ctx, store.AcceptInput{DeviceID: "rj-2", PendingOnly: true}); err != nil || kc.Accepted.Fingerprint != k5.fp {
		t.Fatalf("pending-only accept: %+v, %v", kc, err)
	}

	// A decommissioned device accepts nothing, its rejected key included.
	k6 := newTestKey(t)
	register(t, st, ctx, "rj-3", k6)
	if _, err := st.Reject(ctx, "rj-3", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Decommission(ctx, "rj-3"); err != nil {
		t.Fatal(err)
	}
	before = keyDigest(t, st)
	if _, err := st.Accept(ctx, store.AcceptInput{DeviceID: "rj-3", Fingerprint: k6.fp}); !errors.Is(err, store.ErrDecommissioned) {
		t.Fatalf("accepting a key of a decommissioned device: %v", err)
	}
	if keyDigest(t, st) != before {
		t.Fatal("a refused accept changed the database")
	}
	rs, _, _ = st.RejectedKeys(ctx, 0, 10)
	for _, r := range rs {
		if r.DeviceID == "rj-3" {
			t.Fatalf("a rejected key of a decommissioned device is listed: %+v", r)
		}
	}
	if len(rs) != 1 || rs[0].Fingerprint != k4.fp {
		t.Fatalf("rejected keys %+v, want K4 (rejected by accepting K5)", rs)
	}
}

// TestDeleteOldLoginFailures: a sweep deletes at most batch failures older
// than keep, oldest first, and keeps recent ones.
func TestDeleteOldLoginFailures(t *testing.T) {
	st, ctx := migrated(t)
	exec := func(sql string) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO web_login_failures (email, remote_ip, at) VALUES
		('a@x', '192.0.2.1', now() - interval '30 hours'), ('b@x', '192.0.2.1', now() - interval '29 hours'),
		('c@x', '192.0.2.1', now() - interval '25 hours'), ('d@x', '192.0.2.1', now() - interval '1 hour')`)
	left := func() string {
		t.Helper()
		var s string
		if err := st.Pool().QueryRow(ctx, `SELECT string_agg(email, ',' ORDER BY id) FROM web_login_failures`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, want := range []string{"c@x,d@x", "d@x", "d@x"} {
		if err := st.DeleteExpiredWebSessions(ctx, 24*time.Hour, 2); err != nil {
			t.Fatal(err)
		}
		if got := left(); got != want {
			t.Fatalf("left %q, want %q", got, want)
		}
	}
}
