package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/bus"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/cloud/internal/testpg"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// These tests drive Service.Admit and Service.AcceptKey directly, against
// a real database and an embedded NATS but without the hub: the decision
// is fleet's, and its limits are Options the harness's server does not
// expose. Every refusal is checked for both halves: the reason, and that
// the database did not change at all.

// admitEnv is a Service with chosen options, its store and an operator.
type admitEnv struct {
	svc *fleet.Service
	st  *store.Store
	bus *bus.Bus
	op  fleet.Actor
}

func newAdmitEnv(t *testing.T, opts fleet.Options) *admitEnv {
	t.Helper()
	ctx := tctx(t)
	st, err := store.Open(ctx, testpg.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	opts.Store, opts.NATS, opts.Logger, opts.Replica = st, b.Conn(), logger, "r1"
	svc, err := fleet.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if _, err := svc.CreateUser(ctx, "op@admit.test", fleet.RoleOperator, ""); err != nil {
		t.Fatal(err)
	}
	u, err := st.UserByEmail(ctx, "op@admit.test")
	if err != nil {
		t.Fatal(err)
	}
	return &admitEnv{svc: svc, st: st, bus: b, op: fleet.Actor{UserID: u.ID, Email: u.Email, OrgID: u.OrgID, Role: fleet.RoleOperator}}
}

func tctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// devKey is a device key pair's public half as registration presents it.
type devKey struct {
	der []byte
	fp  string
}

func newDevKey(t testing.TB) devKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := keys.PublicDER(pub)
	if err != nil {
		t.Fatal(err)
	}
	return devKey{der: der, fp: keys.FingerprintDER(der)}
}

func registration(id string, k devKey) fleet.Registration {
	return fleet.Registration{Params: rpcproto.RegisterParams{DeviceID: id, PublicKey: base64.StdEncoding.EncodeToString(k.der)},
		PublicKeyDER: k.der, Fingerprint: k.fp, Alg: "ed25519"}
}

// admit registers and, when admitted, starts the session as the hub does.
// It returns the admission and the session version (0 when refused).
func (e *admitEnv) admit(t testing.TB, r fleet.Registration, remote string) (fleet.Admission, int64) {
	t.Helper()
	ctx := tctx(t)
	adm, err := e.svc.Admit(ctx, r, remote)
	if err != nil {
		t.Fatalf("admit %s: %v", r.Params.DeviceID, err)
	}
	if adm.Refused {
		return adm, 0
	}
	v, err := e.svc.SessionStarted(ctx, adm.OrgID, r.Params.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	return adm, v
}

// end ends a session as the hub's teardown does.
func (e *admitEnv) end(t testing.TB, org int64, id string, version int64) {
	t.Helper()
	if err := e.svc.SessionEnded(tctx(t), org, id, version); err != nil {
		t.Fatal(err)
	}
}

// dbState is a digest of every device and key set row: equal digests mean
// nothing changed, not even a last_seen.
func (e *admitEnv) dbState(t testing.TB) string {
	t.Helper()
	var s string
	err := e.st.Pool().QueryRow(tctx(t), `SELECT
		(SELECT count(*)::text || ' devices ' || coalesce(md5(string_agg(row_to_json(d)::text, ',' ORDER BY d.id)), '') FROM devices d)
		|| ', ' ||
		(SELECT count(*)::text || ' keys ' || coalesce(md5(string_agg(row_to_json(k)::text, ',' ORDER BY k.id)), '') FROM device_keys k)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *admitEnv) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.st.Pool().QueryRow(tctx(t), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// refused checks a refusal: the reason, the answer, and that the database
// is as it was.
func (e *admitEnv) refused(t testing.TB, r fleet.Registration, remote, reason string, code int) fleet.Admission {
	t.Helper()
	before := e.dbState(t)
	adm, err := e.svc.Admit(tctx(t), r, remote)
	if err != nil {
		t.Fatalf("admit %s: %v", r.Params.DeviceID, err)
	}
	if !adm.Refused || adm.Reason != reason || adm.CloseCode != code {
		t.Fatalf("admit %s = %+v, want refused %s with close %d", r.Params.DeviceID, adm, reason, code)
	}
	if after := e.dbState(t); after != before {
		t.Fatalf("refused admission (%s) changed the database:\nbefore %s\nafter  %s", reason, before, after)
	}
	return adm
}

func (e *admitEnv) acceptKey(t testing.TB, id, fp string) fleet.KeySet {
	t.Helper()
	k, err := e.svc.AcceptKey(tctx(t), e.op, id, fp)
	if err != nil {
		t.Fatalf("accepting %s %s: %v", id, fp, err)
	}
	return k
}

func (e *admitEnv) keyStatuses(t testing.TB, id string) map[string]string {
	t.Helper()
	ks, err := e.st.ListKeySets(tctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range ks {
		m[k.Fingerprint] = k.Status
	}
	return m
}

// TestAdmitReasons reaches every reason that is not a limit (the limits
// are TestAdmitLimits) and checks the answer of each.
func TestAdmitReasons(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{})
	ctx := tctx(t)
	const addr = "192.0.2.1:5000"
	k1, k2, k3 := newDevKey(t), newDevKey(t), newDevKey(t)

	// New device: pending, stored.
	adm, v := e.admit(t, registration("dev-a", k1), addr)
	if adm.Reason != fleet.ReasonPending || adm.Status != rpcproto.StatusPending || adm.Refused || adm.KeyChanged || adm.KeySetID == 0 || adm.Fingerprint != k1.fp {
		t.Fatalf("new device: %+v", adm)
	}
	if n := e.count(t, `SELECT count(*) FROM device_keys WHERE device_id = 'dev-a'`); n != 1 {
		t.Fatalf("%d key sets, want 1", n)
	}
	e.end(t, adm.OrgID, "dev-a", v)
	// The same pending key again: pending, nothing new stored.
	adm, v = e.admit(t, registration("dev-a", k1), addr)
	if adm.Reason != fleet.ReasonPending || adm.KeyChanged || e.count(t, `SELECT count(*) FROM device_keys`) != 1 {
		t.Fatalf("known pending key: %+v", adm)
	}
	// Accepted by an operator: the next registration is accepted.
	e.acceptKey(t, "dev-a", k1.fp)
	e.end(t, adm.OrgID, "dev-a", v)
	adm, v = e.admit(t, registration("dev-a", k1), addr)
	if adm.Reason != fleet.ReasonAccepted || adm.Status != rpcproto.StatusAccepted || adm.Refused {
		t.Fatalf("accepted key: %+v", adm)
	}
	// Online with the accepted key: another key may not take over, and is
	// not stored.
	e.refused(t, registration("dev-a", k2), "198.51.100.7:1", fleet.ReasonKeyChangeWhileOnline, fleet.CloseTryAgainLater)
	e.end(t, adm.OrgID, "dev-a", v)
	// Offline: the new key is stored, pending and flagged.
	adm, v = e.admit(t, registration("dev-a", k2), addr)
	if adm.Reason != fleet.ReasonPending || !adm.KeyChanged {
		t.Fatalf("new key while offline: %+v", adm)
	}
	e.end(t, adm.OrgID, "dev-a", v)
	// Online again with the accepted key: the known pending key may not
	// take over either.
	_, v = e.admit(t, registration("dev-a", k1), addr)
	e.refused(t, registration("dev-a", k2), addr, fleet.ReasonKeyChangeWhileOnline, fleet.CloseTryAgainLater)
	e.end(t, adm.OrgID, "dev-a", v)

	// Rejected: answered "rejected", closed with 4003, nothing changes.
	if err := e.svc.Reject(ctx, e.op, "dev-a"); err != nil {
		t.Fatal(err)
	}
	adm = e.refused(t, registration("dev-a", k2), addr, fleet.ReasonKeyRejected, rpcproto.CloseRejected)
	if adm.Status != rpcproto.StatusRejected || adm.RPCError != nil {
		t.Fatalf("rejected key: %+v", adm)
	}

	// Unknown enrollment token: a JSON-RPC error, 4003, nothing stored.
	r := registration("dev-b", k3)
	r.Params.EnrollmentToken = "no-such-token"
	adm = e.refused(t, r, addr, fleet.ReasonUnknownEnrollment, rpcproto.CloseRejected)
	if adm.RPCError == nil || adm.RPCError.Code != rpcproto.CodeUnauthorized || adm.Status != "" {
		t.Fatalf("unknown enrollment: %+v", adm)
	}

	// Preauthorised key: accepted on first contact.
	if err := e.svc.Preauthorize(ctx, e.op, "dev-c", k3.der); err != nil {
		t.Fatal(err)
	}
	adm, v = e.admit(t, registration("dev-c", k3), addr)
	if adm.Reason != fleet.ReasonPreauthorized || adm.Status != rpcproto.StatusAccepted || adm.KeyChanged {
		t.Fatalf("preauthorised key: %+v", adm)
	}
	e.end(t, adm.OrgID, "dev-c", v)

	// Decommissioned: a new key starts over, unflagged.
	if err := e.svc.Decommission(ctx, fleet.Actor{Role: fleet.RoleSuper, Email: "root@admit.test"}, "dev-c"); err != nil {
		t.Fatal(err)
	}
	e.refused(t, registration("dev-c", k3), addr, fleet.ReasonKeyRejected, rpcproto.CloseRejected)
	adm, _ = e.admit(t, registration("dev-c", k2), addr)
	if adm.Reason != fleet.ReasonPending || adm.KeyChanged {
		t.Fatalf("decommissioned device, new key: %+v", adm)
	}
	d, err := e.svc.GetDevice(ctx, e.op, "dev-c")
	if err != nil || d.Status != store.DevicePending {
		t.Fatalf("decommissioned device after a new key: %+v, %v", d, err)
	}

	// The address is recorded, port stripped.
	var first, last string
	e.st.Pool().QueryRow(ctx, `SELECT first_addr, last_addr FROM devices WHERE id = 'dev-a'`).Scan(&first, &last)
	if first != "192.0.2.1" || last != "192.0.2.1" {
		t.Fatalf("dev-a addresses %q, %q", first, last)
	}
}

// TestAdmitLimits takes each limit to its value (admitted) and one beyond
// (refused, nothing stored), and shows that the refusal is about that
// limit only.
func TestAdmitLimits(t *testing.T) {
	const limit = 3
	for _, tc := range []struct {
		name   string
		opts   fleet.Options
		reason string
		// attempt i: the registration and its address.
		attempt func(i int) (fleet.Registration, string)
		// hold keeps the admitted sessions online; otherwise each ends
		// right away.
		hold bool
		// other is a registration the limit does not apply to, admitted
		// after the refusal.
		other func() (fleet.Registration, string)
	}{
		{
			name: "live pending sessions per organisation", reason: fleet.ReasonPendingLimitOrg, hold: true,
			opts: fleet.Options{MaxPendingPerOrg: limit},
			attempt: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("org-%d", i), newDevKey(t)), fmt.Sprintf("10.1.0.%d:4000", i)
			},
		},
		{
			name: "live pending sessions per address", reason: fleet.ReasonPendingLimitAddress, hold: true,
			opts: fleet.Options{MaxPendingPerAddr: limit},
			attempt: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("addr-%d", i), newDevKey(t)), fmt.Sprintf("10.2.0.1:%d", 4000+i)
			},
			other: func() (fleet.Registration, string) { return registration("addr-other", newDevKey(t)), "10.2.0.2:4000" },
		},
		{
			name: "live pending sessions per IPv6 /64", reason: fleet.ReasonPendingLimitAddress, hold: true,
			opts: fleet.Options{MaxPendingPerAddr: limit},
			attempt: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("six-%d", i), newDevKey(t)), fmt.Sprintf("[2001:db8:0:1::%x]:4000", i+1)
			},
			other: func() (fleet.Registration, string) {
				return registration("six-other", newDevKey(t)), "[2001:db8:0:2::1]:4000"
			},
		},
		{
			name: "unreviewed devices per organisation", reason: fleet.ReasonPendingDevicesLimitOrg,
			opts: fleet.Options{MaxPendingDevices: limit},
			attempt: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("rows-%d", i), newDevKey(t)), fmt.Sprintf("10.3.0.%d:4000", i)
			},
		},
		{
			name: "new unreviewed devices per address and hour", reason: fleet.ReasonPendingDevicesLimitAddress,
			opts: fleet.Options{MaxNewPendingPerAddr: limit},
			attempt: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("hour-%d", i), newDevKey(t)), "10.4.0.1:4000"
			},
			other: func() (fleet.Registration, string) { return registration("hour-other", newDevKey(t)), "10.4.0.2:4000" },
		},
		{
			name: "pending keys per device", reason: fleet.ReasonPendingKeysLimit,
			opts: fleet.Options{MaxPendingKeys: limit},
			attempt: func(i int) (fleet.Registration, string) {
				return registration("keys-1", newDevKey(t)), "10.5.0.1:4000"
			},
			other: func() (fleet.Registration, string) { return registration("keys-2", newDevKey(t)), "10.5.0.1:4000" },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAdmitEnv(t, tc.opts)
			for i := range limit {
				r, remote := tc.attempt(i)
				adm, v := e.admit(t, r, remote)
				if adm.Refused || adm.Reason != fleet.ReasonPending {
					t.Fatalf("attempt %d of %d: %+v", i+1, limit, adm)
				}
				if !tc.hold {
					e.end(t, adm.OrgID, r.Params.DeviceID, v)
				}
			}
			keysBefore := e.count(t, `SELECT count(*) FROM device_keys`)
			r, remote := tc.attempt(limit)
			adm := e.refused(t, r, remote, tc.reason, fleet.CloseTryAgainLater)
			if adm.Status != "" || adm.KeySetID != 0 {
				t.Fatalf("refusal %+v answers a status or names a key set", adm)
			}
			if n := e.count(t, `SELECT count(*) FROM device_keys WHERE fingerprint = $1`, r.Fingerprint); n != 0 || e.count(t, `SELECT count(*) FROM device_keys`) != keysBefore {
				t.Fatalf("the refused key was stored")
			}
			if tc.other != nil {
				r, remote := tc.other()
				if adm, _ := e.admit(t, r, remote); adm.Refused {
					t.Fatalf("a registration the limit does not apply to was refused: %+v", adm)
				}
			}
		})
	}
}

// TestAdmitLiveSlotFreed: a live pending session that ends frees its slot;
// an accepted session never takes one.
func TestAdmitLiveSlotFreed(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{MaxPendingPerOrg: 2})
	a1, v1 := e.admit(t, registration("slot-1", newDevKey(t)), "10.6.0.1:1")
	k2 := newDevKey(t)
	e.admit(t, registration("slot-2", k2), "10.6.0.2:1")
	e.refused(t, registration("slot-3", newDevKey(t)), "10.6.0.3:1", fleet.ReasonPendingLimitOrg, fleet.CloseTryAgainLater)
	e.end(t, a1.OrgID, "slot-1", v1)
	if adm, _ := e.admit(t, registration("slot-3", newDevKey(t)), "10.6.0.3:1"); adm.Refused {
		t.Fatalf("after a pending session ended: %+v", adm)
	}
	// Accepting slot-2's key makes its live session an accepted one.
	e.acceptKey(t, "slot-2", k2.fp)
	if adm, _ := e.admit(t, registration("slot-4", newDevKey(t)), "10.6.0.4:1"); adm.Refused {
		t.Fatalf("after a pending session was accepted: %+v", adm)
	}
}

// TestAdmitFloodFromOneAddress: 200 registrations with distinct ids from
// one address, each held online, take 16 slots; a device on another
// address still registers, and the flood left 16 rows, not 200.
func TestAdmitFloodFromOneAddress(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{MaxPendingPerOrg: 100, MaxPendingPerAddr: 16})
	admitted, refused := 0, 0
	for i := range 200 {
		adm, _ := e.admit(t, registration(fmt.Sprintf("flood-%03d", i), newDevKey(t)), fmt.Sprintf("10.0.0.1:%d", 10000+i))
		switch {
		case !adm.Refused:
			admitted++
		case adm.Reason == fleet.ReasonPendingLimitAddress:
			refused++
		default:
			t.Fatalf("flood %d: %+v", i, adm)
		}
	}
	if admitted != 16 || refused != 184 {
		t.Fatalf("flood: %d admitted, %d refused; want 16 and 184", admitted, refused)
	}
	if n := e.count(t, `SELECT count(*) FROM devices`); n != 16 {
		t.Fatalf("the flood left %d device rows, want 16", n)
	}
	if n := e.count(t, `SELECT count(*) FROM device_keys`); n != 16 {
		t.Fatalf("the flood left %d key sets, want 16", n)
	}
	adm, _ := e.admit(t, registration("real-1", newDevKey(t)), "10.0.0.2:443")
	if adm.Refused || adm.Status != rpcproto.StatusPending {
		t.Fatalf("a device on another address during the flood: %+v", adm)
	}
}

// TestAdmitConcurrentAtLimit: 50 registrations at once against a limit
// admit exactly as many as it allows.
func TestAdmitConcurrentAtLimit(t *testing.T) {
	const limit, n = 10, 50
	for _, tc := range []struct {
		name     string
		opts     fleet.Options
		reason   string
		reg      func(i int) (fleet.Registration, string)
		rows     string // counts what the limit bounds
		startNot bool   // admissions are not followed by a session start
	}{
		{
			name: "live pending sessions per organisation", reason: fleet.ReasonPendingLimitOrg,
			opts: fleet.Options{MaxPendingPerOrg: limit, MaxPendingPerAddr: n},
			reg: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("cc-%d", i), newDevKey(t)), fmt.Sprintf("10.7.0.%d:1", i)
			},
			rows: `SELECT count(*) FROM devices`,
			// The reservation alone must hold the slot: no SessionStarted.
			startNot: true,
		},
		{
			name: "live pending sessions per address", reason: fleet.ReasonPendingLimitAddress,
			opts: fleet.Options{MaxPendingPerAddr: limit},
			reg: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("ca-%d", i), newDevKey(t)), fmt.Sprintf("10.8.0.1:%d", i)
			},
			rows: `SELECT count(*) FROM devices`,
		},
		{
			name: "unreviewed devices per organisation", reason: fleet.ReasonPendingDevicesLimitOrg,
			opts: fleet.Options{MaxPendingDevices: limit, MaxPendingPerOrg: n, MaxPendingPerAddr: n},
			reg: func(i int) (fleet.Registration, string) {
				return registration(fmt.Sprintf("cr-%d", i), newDevKey(t)), fmt.Sprintf("10.9.0.%d:1", i)
			},
			rows: `SELECT count(*) FROM devices`,
		},
		{
			name: "pending keys per device", reason: fleet.ReasonPendingKeysLimit,
			opts: fleet.Options{MaxPendingKeys: limit},
			reg: func(i int) (fleet.Registration, string) {
				return registration("ck-1", newDevKey(t)), "10.10.0.1:1"
			},
			rows:     `SELECT count(*) FROM device_keys`,
			startNot: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAdmitEnv(t, tc.opts)
			ctx := tctx(t)
			regs := make([]fleet.Registration, n)
			addrs := make([]string, n)
			for i := range n {
				regs[i], addrs[i] = tc.reg(i)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			admitted, refused := 0, 0
			errs := make(chan error, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					adm, err := e.svc.Admit(ctx, regs[i], addrs[i])
					if err == nil && !adm.Refused && !tc.startNot {
						_, err = e.svc.SessionStarted(ctx, adm.OrgID, regs[i].Params.DeviceID)
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					defer mu.Unlock()
					switch {
					case !adm.Refused:
						admitted++
					case adm.Reason == tc.reason:
						refused++
					default:
						errs <- fmt.Errorf("unexpected admission %+v", adm)
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if admitted != limit || refused != n-limit {
				t.Fatalf("%d admitted, %d refused; want %d and %d", admitted, refused, limit, n-limit)
			}
			if got := e.count(t, tc.rows); got != limit {
				t.Fatalf("%s = %d, want %d", tc.rows, got, limit)
			}
		})
	}
}

// TestAcceptNamesTheReviewedKey is the story of the outside test: tq-1
// rotates to K2, which the operator reviews; an attacker presents K3. K3 is
// refused and not stored while K1 is online, and stored as a second pending
// key while the device is offline; accept without a fingerprint then
// refuses and lists both, and accept with K2's fingerprint accepts K2,
// reports K2 and rejects K3.
func TestAcceptNamesTheReviewedKey(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{})
	ctx := tctx(t)
	const addr, attacker = "192.0.2.10:1000", "203.0.113.66:666"
	k1, k2, k3 := newDevKey(t), newDevKey(t), newDevKey(t)

	adm, v := e.admit(t, registration("tq-1", k1), addr)
	e.acceptKey(t, "tq-1", "")
	e.end(t, adm.OrgID, "tq-1", v)
	// The device rotates to K2 while offline; the operator reviews it.
	adm, v = e.admit(t, registration("tq-1", k2), addr)
	if adm.Reason != fleet.ReasonPending || !adm.KeyChanged {
		t.Fatalf("K2: %+v", adm)
	}
	e.end(t, adm.OrgID, "tq-1", v)
	ks, _ := e.svc.ListKeySets(ctx, e.op, "tq-1")
	if len(ks) != 2 || ks[0].Fingerprint != k2.fp || ks[0].Status != store.KeyPending {
		t.Fatalf("keys the operator reviews: %+v", ks)
	}
	// K1 back online: K3 is refused and not stored.
	_, v = e.admit(t, registration("tq-1", k1), addr)
	e.refused(t, registration("tq-1", k3), attacker, fleet.ReasonKeyChangeWhileOnline, fleet.CloseTryAgainLater)
	e.end(t, adm.OrgID, "tq-1", v)
	// Offline: K3 is stored as a second pending key.
	if adm, _ := e.admit(t, registration("tq-1", k3), attacker); adm.Reason != fleet.ReasonPending || !adm.KeyChanged {
		t.Fatalf("K3 while offline: %+v", adm)
	}
	// Accept without a fingerprint: refused, both listed, nothing changed.
	before := e.dbState(t)
	_, err := e.svc.AcceptKey(ctx, e.op, "tq-1", "")
	var amb *fleet.AmbiguousKeyError
	if !errors.Is(err, fleet.ErrAmbiguousKey) || !errors.Is(err, fleet.ErrConflict) || !errors.As(err, &amb) {
		t.Fatalf("accept without a fingerprint: %v", err)
	}
	if len(amb.Fingerprints) != 2 || amb.Fingerprints[0] != k3.fp || amb.Fingerprints[1] != k2.fp {
		t.Fatalf("candidates %v, want K3 then K2", amb.Fingerprints)
	}
	msg, ok := fleet.PublicMessage(err)
	if !ok || !strings.Contains(msg, k2.fp) || !strings.Contains(msg, k3.fp) || strings.Contains(msg, "store") {
		t.Fatalf("public message %q", msg)
	}
	if after := e.dbState(t); after != before {
		t.Fatalf("a refused accept changed the database")
	}
	// The deprecated form refuses the same way.
	if err := e.svc.Accept(ctx, e.op, "tq-1"); !errors.Is(err, fleet.ErrAmbiguousKey) {
		t.Fatalf("Accept: %v", err)
	}

	// Accept K2 by its fingerprint: K2 reported, K1 revoked, K3 rejected,
	// and the sessions of both told to close.
	sub, err := e.bus.Conn().SubscribeSync(fleet.SubjectKey(adm.OrgID, "tq-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	e.bus.Conn().Flush()
	got := e.acceptKey(t, "tq-1", k2.fp)
	if got.Fingerprint != k2.fp || got.Status != store.KeyAccepted {
		t.Fatalf("accepted %+v, want K2", got)
	}
	want := map[string]string{k1.fp: store.KeyRevoked, k2.fp: store.KeyAccepted, k3.fp: store.KeyRejected}
	if st := e.keyStatuses(t, "tq-1"); fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("key statuses %v, want %v", st, want)
	}
	d, _ := e.svc.GetDevice(ctx, e.op, "tq-1")
	if d.Status != store.DeviceAccepted || d.Fingerprint != k2.fp {
		t.Fatalf("device after accept: %+v", d)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var km fleet.KeyMsg
	json.Unmarshal(m.Data, &km)
	if km.Accepted != k2.fp || len(km.Closed) != 2 || km.Closed[0] != k1.fp || km.Closed[1] != k3.fp {
		t.Fatalf("key decision %+v", km)
	}
	rows, _ := e.svc.AuditLog(ctx, e.op, fleet.AuditFilter{Action: "device.accept", Target: "tq-1", Limit: 1})
	var detail struct {
		Fingerprint       string
		Revoked, Rejected []string
	}
	if len(rows) == 1 {
		json.Unmarshal(rows[0].Detail, &detail)
	}
	if detail.Fingerprint != k2.fp || fmt.Sprint(detail.Revoked) != fmt.Sprint([]string{k1.fp}) || fmt.Sprint(detail.Rejected) != fmt.Sprint([]string{k3.fp}) {
		t.Fatalf("audit %+v", rows)
	}

	// K3 is now rejected: refused until an operator accepts it by name.
	e.refused(t, registration("tq-1", k3), attacker, fleet.ReasonKeyRejected, rpcproto.CloseRejected)
	if adm, _ := e.admit(t, registration("tq-1", k2), addr); adm.Reason != fleet.ReasonAccepted {
		t.Fatalf("K2 after accept: %+v", adm)
	}

	// Naming a key that may not be accepted, or no key, or a malformed one.
	for _, tc := range []struct {
		name, fp, msg string
		want          error
		pendingOnly   bool
	}{
		{"rejected key, pending only", k3.fp, "key " + k3.fp + " of device tq-1 is rejected, not pending", fleet.ErrKeyNotPending, true},
		{"accepted key", k2.fp, "key " + k2.fp + " of device tq-1 is accepted already", fleet.ErrKeyNotPending, false},
		{"revoked key", k1.fp, "key " + k1.fp + " of device tq-1 is revoked, and a revoked key is never accepted again", fleet.ErrKeyNotPending, false},
		{"unknown key", newDevKey(t).fp, "device tq-1 has no key SHA256:", fleet.ErrKeyNotPending, false},
		{"malformed", "SHA256:nope", "fingerprint: want", fleet.ErrInvalid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.dbState(t)
			accept := e.svc.AcceptKey
			if tc.pendingOnly {
				accept = e.svc.AcceptPendingKey
			}
			_, err := accept(ctx, e.op, "tq-1", tc.fp)
			msg, _ := fleet.PublicMessage(err)
			if !errors.Is(err, tc.want) || !strings.HasPrefix(msg, tc.msg) {
				t.Fatalf("err = %v (public %q), want %v %q", err, msg, tc.want, tc.msg)
			}
			if e.dbState(t) != before {
				t.Fatal("a refused accept changed the database")
			}
		})
	}
	// Nothing pending at all: the rejected K3 does not replace the
	// accepted K2 unless named.
	_, err = e.svc.AcceptKey(ctx, e.op, "tq-1", "")
	if msg, _ := fleet.PublicMessage(err); !errors.Is(err, fleet.ErrNoPendingKey) || msg != "device tq-1 has no pending key to accept: its key "+k2.fp+" is accepted" {
		t.Fatalf("nothing pending: %v", err)
	}
}

// TestSweepPrunesStaleRegistrations: Sweep deletes an undecided device and
// a stale pending key of an accepted device once not seen for PendingTTL,
// and keeps the accepted device's row.
func TestSweepPrunesStaleRegistrations(t *testing.T) {
	e := newAdmitEnv(t, fleet.Options{PendingTTL: time.Hour})
	ctx := tctx(t)
	adm, v := e.admit(t, registration("stale-new", newDevKey(t)), "10.11.0.1:1")
	e.end(t, adm.OrgID, "stale-new", v)
	k1 := newDevKey(t)
	_, v = e.admit(t, registration("stale-acc", k1), "10.11.0.2:1")
	e.acceptKey(t, "stale-acc", k1.fp)
	e.end(t, adm.OrgID, "stale-acc", v)
	_, v = e.admit(t, registration("stale-acc", newDevKey(t)), "10.11.0.3:1")
	e.end(t, adm.OrgID, "stale-acc", v)
	_, v = e.admit(t, registration("fresh-new", newDevKey(t)), "10.11.0.4:1")
	e.end(t, adm.OrgID, "fresh-new", v)
	pool := e.st.Pool()
	for _, q := range []string{
		`UPDATE devices SET last_seen = now() - interval '2 hours', first_seen = now() - interval '2 hours' WHERE id LIKE 'stale-%'`,
		`UPDATE device_keys SET last_seen = now() - interval '2 hours' WHERE device_id LIKE 'stale-%'`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetDevice(ctx, e.op, "stale-new"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("stale undecided device: %v", err)
	}
	d, err := e.svc.GetDevice(ctx, e.op, "stale-acc")
	if err != nil || d.Status != store.DeviceAccepted || d.Fingerprint != k1.fp {
		t.Fatalf("accepted device after pruning: %+v, %v", d, err)
	}
	if st := e.keyStatuses(t, "stale-acc"); len(st) != 1 || st[k1.fp] != store.KeyAccepted {
		t.Fatalf("accepted device's keys after pruning: %v", st)
	}
	if _, err := e.svc.GetDevice(ctx, e.op, "fresh-new"); err != nil {
		t.Fatalf("fresh device: %v", err)
	}
}
