package store_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/jackc/pgx/v5"
)

func migrated(t *testing.T) (*store.Store, context.Context) {
	t.Helper()
	st := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st, ctx
}

type testKey struct {
	der []byte
	fp  string
}

func newTestKey(t *testing.T) testKey {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	der, err := keys.PublicDER(pub)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{der: der, fp: keys.FingerprintDER(der)}
}

// register admits a key the simple way: known keys are seen, new ones
// stored as pending.
func register(t *testing.T, st *store.Store, ctx context.Context, id string, k testKey) store.AdmitResult {
	t.Helper()
	org, err := st.OrgByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Admit(ctx, store.AdmitInput{DeviceID: id, OrgID: org.ID, PublicKeyDER: k.der, Fingerprint: k.fp, Alg: "ed25519", Addr: "192.0.2.1"},
		func(ctx context.Context, s *store.AdmitState) (store.AdmitVerdict, error) {
			if s.Key != nil {
				return store.AdmitKnown, nil
			}
			return store.AdmitNew, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func exec(t *testing.T, st *store.Store, ctx context.Context, q string, args ...any) {
	t.Helper()
	if _, err := st.Pool().Exec(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// keySets lists a device's key sets as "fingerprint:status", sorted.
func keySets(t *testing.T, st *store.Store, ctx context.Context, id string) []string {
	t.Helper()
	ks, err := st.ListKeySets(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range ks {
		out = append(out, k.Fingerprint+":"+k.Status)
	}
	sort.Strings(out)
	return out
}

// TestPrunePending back-dates rows and checks what one round deletes: the
// undecided, unseen devices and the unseen pending key sets, and nothing an
// operator decided on or a live session uses.
func TestPrunePending(t *testing.T) {
	st, ctx := migrated(t)
	const ttl = 72 * time.Hour
	old := func(id string) {
		exec(t, st, ctx, `UPDATE devices SET last_seen = now() - interval '100 hours', first_seen = now() - interval '100 hours',
			pending_admitted_at = pending_admitted_at - interval '100 hours' WHERE id = $1`, id)
		exec(t, st, ctx, `UPDATE device_keys SET last_seen = now() - interval '100 hours' WHERE device_id = $1`, id)
	}
	type want struct {
		gone   bool
		status string
		keys   []string
	}
	wants := map[string]want{}

	// An undecided device not seen for 100h: gone, with its key sets.
	k := newTestKey(t)
	register(t, st, ctx, "old-new", k)
	register(t, st, ctx, "old-new", newTestKey(t))
	old("old-new")
	wants["old-new"] = want{gone: true}

	// An undecided device seen now: kept.
	k = newTestKey(t)
	register(t, st, ctx, "fresh-new", k)
	wants["fresh-new"] = want{status: store.DevicePending, keys: []string{k.fp + ":pending"}}

	// An accepted device with a pending key not seen for 100h: the key
	// goes, the device stays and is accepted again.
	k1, k2 := newTestKey(t), newTestKey(t)
	register(t, st, ctx, "acc-stale", k1)
	if _, err := st.Accept(ctx, store.AcceptInput{DeviceID: "acc-stale", Fingerprint: k1.fp}); err != nil {
		t.Fatal(err)
	}
	register(t, st, ctx, "acc-stale", k2)
	old("acc-stale")
	wants["acc-stale"] = want{status: store.DeviceAccepted, keys: []string{k1.fp + ":accepted"}}

	// The same with a pending key seen now: everything stays.
	k1, k2 = newTestKey(t), newTestKey(t)
	register(t, st, ctx, "acc-fresh", k1)
	if _, err := st.Accept(ctx, store.AcceptInput{DeviceID: "acc-fresh", Fingerprint: k1.fp}); err != nil {
		t.Fatal(err)
	}
	register(t, st, ctx, "acc-fresh", k2)
	wants["acc-fresh"] = want{status: store.DevicePending, keys: sorted(k1.fp+":accepted", k2.fp+":pending")}

	// Rejected by an operator, not seen for 100h: a decision, kept.
	k = newTestKey(t)
	register(t, st, ctx, "rejected", k)
	if _, err := st.Reject(ctx, "rejected", "op@test"); err != nil {
		t.Fatal(err)
	}
	old("rejected")
	wants["rejected"] = want{status: store.DeviceRejected, keys: []string{k.fp + ":rejected"}}

	// Preauthorised and never seen: kept.
	org, _ := st.OrgByName(ctx, "default")
	k = newTestKey(t)
	if _, err := st.Preauthorize(ctx, org.ID, "preauth", k.der, k.fp, "ed25519"); err != nil {
		t.Fatal(err)
	}
	old("preauth")
	wants["preauth"] = want{status: store.DevicePreauthorized, keys: []string{k.fp + ":preauthorized"}}

	// Undecided, registered 100h ago and online ever since: kept.
	k = newTestKey(t)
	register(t, st, ctx, "online", k)
	if _, err := st.StartSession(ctx, "online", "r1"); err != nil {
		t.Fatal(err)
	}
	old("online")
	wants["online"] = want{status: store.DevicePending, keys: []string{k.fp + ":pending"}}

	// Offline now, its key last presented 100h ago but the device (whose
	// session used that key) seen recently: kept.
	k = newTestKey(t)
	register(t, st, ctx, "session-key", k)
	exec(t, st, ctx, `UPDATE device_keys SET last_seen = now() - interval '100 hours' WHERE device_id = 'session-key'`)
	wants["session-key"] = want{status: store.DevicePending, keys: []string{k.fp + ":pending"}}

	p, err := st.PrunePending(ctx, ttl, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Devices) != 1 || p.Devices[0].ID != "old-new" || len(p.KeySets) != 3 {
		t.Fatalf("pruned %+v, want device old-new and 3 key sets (2 of old-new, 1 of acc-stale)", p)
	}
	for id, w := range wants {
		d, err := st.GetDevice(ctx, id)
		if w.gone {
			if err == nil {
				t.Errorf("%s: still there", id)
			}
			if n := countRows(t, st, ctx, `SELECT count(*) FROM device_keys WHERE device_id = $1`, id); n != 0 {
				t.Errorf("%s: %d key sets left", id, n)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if d.Status != w.status {
			t.Errorf("%s: status %s, want %s", id, d.Status, w.status)
		}
		if got := keySets(t, st, ctx, id); strings.Join(got, " ") != strings.Join(w.keys, " ") {
			t.Errorf("%s: key sets %v, want %v", id, got, w.keys)
		}
	}
	// A second round finds nothing more.
	if p, err := st.PrunePending(ctx, ttl, 100); err != nil || len(p.Devices)+len(p.KeySets) != 0 {
		t.Fatalf("second round pruned %+v, %v", p, err)
	}
}

// TestPrunePendingSkipsLockedDevices: a device another transaction holds
// is left for the next round instead of waited for, and batch bounds a
// round.
func TestPrunePendingSkipsLockedDevices(t *testing.T) {
	st, ctx := migrated(t)
	for i := range 3 {
		register(t, st, ctx, fmt.Sprintf("stale-%d", i), newTestKey(t))
	}
	exec(t, st, ctx, `UPDATE devices SET last_seen = now() - interval '100 hours', pending_admitted_at = pending_admitted_at - interval '100 hours'`)
	exec(t, st, ctx, `UPDATE device_keys SET last_seen = now() - interval '100 hours'`)
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM devices WHERE id = 'stale-0' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := st.PrunePending(pctx, time.Hour, 1)
	if err != nil || len(p.Devices) != 1 || p.Devices[0].ID != "stale-1" {
		t.Fatalf("round 1 (batch 1, stale-0 locked): %+v, %v", p, err)
	}
	p, err = st.PrunePending(pctx, time.Hour, 10)
	if err != nil || len(p.Devices) != 1 || p.Devices[0].ID != "stale-2" {
		t.Fatalf("round 2 (stale-0 locked): %+v, %v", p, err)
	}
	tx.Rollback(ctx)
	p, err = st.PrunePending(pctx, time.Hour, 10)
	if err != nil || len(p.Devices) != 1 || p.Devices[0].ID != "stale-0" {
		t.Fatalf("round 3: %+v, %v", p, err)
	}
}

// TestAdmitRefusalWritesNothing: a refusal commits nothing, even after
// the decision counted (and so took the organisation's and address's
// locks).
func TestAdmitRefusalWritesNothing(t *testing.T) {
	st, ctx := migrated(t)
	org, _ := st.OrgByName(ctx, "default")
	k := newTestKey(t)
	res, err := st.Admit(ctx, store.AdmitInput{DeviceID: "refused-1", OrgID: org.ID, PublicKeyDER: k.der, Fingerprint: k.fp, Alg: "ed25519", Addr: "192.0.2.9"},
		func(ctx context.Context, s *store.AdmitState) (store.AdmitVerdict, error) {
			if _, err := s.LivePendingInOrg(ctx); err != nil {
				return 0, err
			}
			if _, err := s.UnreviewedInOrg(ctx); err != nil {
				return 0, err
			}
			return store.AdmitRefuse, nil
		})
	if err != nil || res.Verdict != store.AdmitRefuse || res.KeySetID != 0 {
		t.Fatalf("refusal: %+v, %v", res, err)
	}
	if n := countRows(t, st, ctx, `SELECT count(*) FROM devices`); n != 0 {
		t.Fatalf("%d devices after a refusal", n)
	}
	// The locks went with the transaction: another registration proceeds.
	register(t, st, ctx, "after", newTestKey(t))
}

func countRows(t *testing.T, st *store.Store, ctx context.Context, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(ctx, q, args...).Scan(&n); err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return n
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}

// TestAdmitAccepted: the one-statement path admits exactly the accepted
// device presenting its accepted key, recording what Admit's known
// verdict records; every other registration is left to Admit with
// nothing written.
func TestAdmitAccepted(t *testing.T) {
	st, ctx := migrated(t)
	k, other := newTestKey(t), newTestKey(t)
	register(t, st, ctx, "fast-1", k)
	row := func() string {
		var s string
		if err := st.Pool().QueryRow(ctx, `SELECT d.status || ' ' || d.last_addr || ' ' || coalesce(d.session_key_id::text, '-') || ' ' ||
			(SELECT string_agg(status || ':' || last_seen::text, ',' ORDER BY id) FROM device_keys WHERE device_id = d.id)
			FROM devices d WHERE d.id = 'fast-1'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	refused := func(what, fp string) {
		t.Helper()
		before := row()
		if res, ok, err := st.AdmitAccepted(ctx, "fast-1", fp, "198.51.100.7"); err != nil || ok {
			t.Fatalf("%s: %+v, %v, %v; want left to Admit", what, res, ok, err)
		}
		if after := row(); after != before {
			t.Fatalf("%s wrote: %s → %s", what, before, after)
		}
	}
	refused("pending key", k.fp)
	if res, ok, err := st.AdmitAccepted(ctx, "nobody", k.fp, "198.51.100.7"); err != nil || ok {
		t.Fatalf("unknown device: %+v, %v, %v", res, ok, err)
	}
	if _, err := st.Accept(ctx, store.AcceptInput{DeviceID: "fast-1", Fingerprint: k.fp}); err != nil {
		t.Fatal(err)
	}
	refused("another key", other.fp)
	before := row()
	res, ok, err := st.AdmitAccepted(ctx, "fast-1", k.fp, "198.51.100.7")
	if err != nil || !ok || res.Verdict != store.AdmitKnown || res.KeyStatus != store.KeyAccepted || res.KeySetID == 0 || res.OrgID == 0 {
		t.Fatalf("accepted key: %+v, %v, %v", res, ok, err)
	}
	after := row()
	if !strings.HasPrefix(after, fmt.Sprintf("accepted 198.51.100.7 %d ", res.KeySetID)) || after == before {
		t.Fatalf("accepted key recorded %q (before %q)", after, before)
	}
	// A key change waiting for review: the device is pending again, and
	// its accepted key goes the slow way.
	register(t, st, ctx, "fast-1", other)
	refused("accepted key beside a pending one", k.fp)
	exec(t, st, ctx, `DELETE FROM device_keys WHERE device_id = 'fast-1' AND fingerprint = $1`, other.fp)
	exec(t, st, ctx, `UPDATE devices SET status = 'accepted', decommissioned = true WHERE id = 'fast-1'`)
	refused("decommissioned", k.fp)
}
