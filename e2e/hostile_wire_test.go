package e2e_test

import (
	"cmp"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/bosunhq/bosun/e2e/perf"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/jackc/pgx/v5"
)

// What the never-reading peer cases measured.
var neverReadsFigure, neverReadsCallsFigure string

// EnvHostileRuns is the number of random mutations TestHostileWire sends
// (default 20; scripts/soak.sh hostile runs 1000).
const EnvHostileRuns = "BOSUN_HOSTILE_RUNS"

// The registration limits the hostile cluster runs with: the documented
// limits (docs/protocol.md §6.4), set low so that a flood reaches each of
// them in a few dozen registrations.
const (
	limitPendingPerAddr    = 4  // BOSUN_MAX_PENDING_PER_ADDR: live pending sessions per address
	limitNewPendingPerAddr = 10 // BOSUN_MAX_NEW_PENDING_PER_ADDR: new undecided devices per address and hour
	limitPendingOrg        = 12 // BOSUN_MAX_PENDING: live pending sessions per organisation
	limitUndecidedOrg      = 30 // BOSUN_MAX_PENDING_DEVICES: undecided devices per organisation
	limitPendingKeys       = 4  // BOSUN_MAX_PENDING_KEYS (the default): pending keys per device
)

// Verdicts of a case.
const (
	verdictRefused = "refused"  // refused with the documented error; nothing changed
	verdictLimit   = "at limit" // accepted at (or up to) a documented limit, as documented
)

// wireSuite is TestHostileWire's harness: two cloud replicas, a real device
// (bosun-bridge and bosun-worker) that must keep working, and the hostile
// identities.
type wireSuite struct {
	t        *testing.T
	a, b     *perf.Cloud
	cloudKey crypto.PublicKey
	db       *pgx.Conn
	legit    string    // the real device's id
	hx, hy   *identity // accepted (preauthorised) Ed25519 devices
	hr       *identity // an accepted RSA-2048 device

	mu      sync.Mutex // guards the following
	cases   []caseResult
	forgery int // hostile messages that were served
	changed int // cases after which the database differed
}

type caseResult struct {
	name, verdict string
	err           error
}

// state is what a refused case must leave as it was: row counts and
// digests of what a message could change (device rows and their keys
// without the columns a session touches: online, replica,
// session_version, last_seen, addresses; and without the real device's
// inventory, which its bridge reports when it likes), the calls and their
// outcomes, the audit log and the OTA reports.
type state struct {
	Devices, Keys, Calls, Audit, Reports int64
	DevicesSum, KeysSum, CallsSum        string
}

func (h *wireSuite) snapshot() state {
	h.t.Helper()
	var s state
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := h.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM devices), (SELECT count(*) FROM device_keys), (SELECT count(*) FROM calls),
		(SELECT count(*) FROM audit_log), (SELECT count(*) FROM ota_reports),
		(SELECT md5(coalesce(string_agg(concat_ws('|', id, status, decommissioned, tags, attributes, CASE WHEN id <> $1 THEN inventory END), ',' ORDER BY id), '')) FROM devices),
		(SELECT md5(coalesce(string_agg(concat_ws('|', device_id, fingerprint, status, key_changed, attributes, rejected_at), ',' ORDER BY id), '')) FROM device_keys),
		(SELECT md5(coalesce(string_agg(concat_ws('|', id, status, result, error, delivered_at), ',' ORDER BY seq), '')) FROM calls)`, h.legit).
		Scan(&s.Devices, &s.Keys, &s.Calls, &s.Audit, &s.Reports, &s.DevicesSum, &s.KeysSum, &s.CallsSum)
	if err != nil {
		h.t.Fatalf("reading the state: %v", err)
	}
	return s
}

func (h *wireSuite) count(q string, args ...any) int64 {
	h.t.Helper()
	var n int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// livePending counts live sessions that hold a pending slot (the rows the
// per-address and per-organisation live limits count).
func (h *wireSuite) livePending() int64 {
	return h.count(`SELECT count(*) FROM devices WHERE (online OR pending_admitted_at IS NOT NULL) AND status = 'pending'`)
}

func (h *wireSuite) undecided() int64 {
	return h.count(`SELECT count(*) FROM devices d WHERE d.status = 'pending' AND NOT EXISTS (
		SELECT 1 FROM device_keys k WHERE k.device_id = d.id AND k.status <> 'pending')`)
}

// run runs one case. A refused case must leave the state as it was; every
// case must leave the real device and a hostile identity able to work on
// both replicas (nothing spent their replay windows, keys or sessions).
func (h *wireSuite) run(name, verdict string, fn func() error) {
	h.t.Helper()
	h.runGroup([]string{name}, verdict, []func() error{fn})
}

// runGroup runs cases of one verdict at the same time (the slow ones),
// between one pair of snapshots.
func (h *wireSuite) runGroup(names []string, verdict string, fns []func() error) {
	h.t.Helper()
	before := h.snapshot()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	if verdict == verdictRefused {
		// A session a case admitted ends asynchronously; its end touches
		// only the columns the snapshot leaves out.
		if after := h.snapshot(); after != before {
			h.mu.Lock()
			h.changed++
			h.mu.Unlock()
			err := fmt.Errorf("the state changed:\nbefore %+v\nafter  %+v", before, after)
			for i := range errs {
				errs[i] = cmp.Or(errs[i], err)
			}
		}
	}
	hErr := h.healthy()
	for i, name := range names {
		err := cmp.Or(errs[i], hErr)
		h.mu.Lock()
		h.cases = append(h.cases, caseResult{name: name, verdict: verdict, err: err})
		h.mu.Unlock()
		if err != nil {
			h.t.Errorf("%s: %v", name, err)
		}
	}
}

// healthy checks that the real device answers through both replicas and
// that the hostile identity hx still opens a session and is served.
func (h *wireSuite) healthy() error {
	for _, c := range []*perf.Cloud{h.a, h.b} {
		if err := h.legitCall(c); err != nil {
			return fmt.Errorf("afterwards, %s: %w", c.Listen, err)
		}
	}
	p, err := h.session(h.a, h.hx, dialOptions{})
	if err != nil {
		return fmt.Errorf("afterwards, %s's own session: %w", h.hx.ID, err)
	}
	defer p.Close()
	if _, err := p.call(rpcproto.MethodRegister, nil, 2, 5*time.Second); err != nil {
		return fmt.Errorf("afterwards, %s's call: %w", h.hx.ID, err)
	}
	return nil
}

func (h *wireSuite) legitCall(c *perf.Cloud) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got struct {
		Status string          `json:"status"`
		Error  json.RawMessage `json:"error"`
	}
	if err := c.API(ctx, "POST", "/devices/"+h.legit+"/call", map[string]string{"method": "system.info", "timeout": "5s"}, &got); err != nil {
		return err
	}
	if got.Status != "succeeded" {
		return fmt.Errorf("system.info to %s: %s %s", h.legit, got.Status, got.Error)
	}
	return nil
}

// dial opens a connection as who and reads the challenge.
func (h *wireSuite) dial(c *perf.Cloud, who *identity, o dialOptions) (*peer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return dialPeer(ctx, c.DeviceURL, who, h.cloudKey, o)
}

// session opens an accepted session as who.
func (h *wireSuite) session(c *perf.Cloud, who *identity, o dialOptions) (*peer, error) {
	p, err := h.dial(c, who, o)
	if err != nil {
		return nil, err
	}
	_, res, err := p.register(10 * time.Second)
	if err == nil && res.Status != rpcproto.StatusAccepted {
		err = fmt.Errorf("registration answered %+v", res)
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// refusedWith sends frame (nil: nothing) and expects the cloud to close
// with code and a reason starting with reason, having answered nothing.
func (h *wireSuite) refusedWith(p *peer, frame []byte, code int, reason string) error {
	defer p.Close()
	if frame != nil {
		if err := p.send(frame); err != nil {
			return fmt.Errorf("sending: %w", err)
		}
	}
	ce, got, err := p.waitClose(15 * time.Second)
	if len(got) > 0 {
		h.mu.Lock()
		h.forgery++
		h.mu.Unlock()
		return fmt.Errorf("the cloud answered a hostile message: %.300s", got[0])
	}
	if err != nil {
		return fmt.Errorf("want close %d %q: %w", code, reason, err)
	}
	if !isClose(ce, code, reason) {
		return fmt.Errorf("closed %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
	return nil
}

// inSession is a case on an accepted session of who on replica c: frame
// makes the hostile frame; the cloud must close 4002 "envelope rejected:
// reason".
func (h *wireSuite) inSession(name string, c *perf.Cloud, who *identity, reason string, frame func(p *peer) []byte) {
	h.run(name, verdictRefused, func() error {
		p, err := h.session(c, who, dialOptions{})
		if err != nil {
			return err
		}
		return h.refusedWith(p, frame(p), rpcproto.CloseProtocolViolation, "envelope rejected: "+reason)
	})
}

// inHandshake is a case where the hostile frame is the registration; the
// cloud must close 4002 "handshake failed: reason".
func (h *wireSuite) inHandshake(name string, c *perf.Cloud, who *identity, reason string, frame func(p *peer) []byte) {
	h.run(name, verdictRefused, func() error {
		p, err := h.dial(c, who, dialOptions{})
		if err != nil {
			return err
		}
		return h.refusedWith(p, frame(p), rpcproto.CloseProtocolViolation, "handshake failed: "+reason)
	})
}

// request is the payload of a harmless request: registration.register in
// a session only reports the session's status.
func request(id int) []byte {
	return []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"registration.register"}`)
}

func (h *wireSuite) preauthorize(who *identity) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.a.API(ctx, "POST", "/devices/"+who.ID+"/preauthorize", map[string]string{"public_key": who.PublicB64()}, nil); err != nil {
		h.t.Fatal(err)
	}
}

// nested is a request whose params nest depth objects deep in all.
func nested(depth int) []byte {
	inner := depth - 2 // the request object and params
	return []byte(`{"jsonrpc":"2.0","id":9,"method":"hostile.nested","params":` +
		strings.Repeat(`{"a":`, inner) + `{}` + strings.Repeat(`}`, inner) + `}`)
}

// TestHostileWire is the hostile-input suite of issue 12 against the
// running system: two bosun-cloud replicas on one PostgreSQL with their
// NATS servers clustered, a real device (bosun-bridge and bosun-worker),
// and hostile devices speaking raw websocket frames and envelopes signed
// from any meta. Every case asserts the documented error (close code and
// reason, JSON-RPC error) and that nothing changed: device rows, keys,
// calls and their outcomes, audit rows, OTA reports; and afterwards the
// real device answers through both replicas and a hostile identity still
// opens a session (no replay window, key or session was spent). Then
// BOSUN_HOSTILE_RUNS (default 20) random mutations of valid envelopes,
// all refused. It prints one summary line.
func TestHostileWire(t *testing.T) {
	start := time.Now()
	clouds := perf.StartCluster(t, 2, perf.CloudOptions{Env: []string{
		"BOSUN_MAX_PENDING_PER_ADDR=" + strconv.Itoa(limitPendingPerAddr),
		"BOSUN_MAX_NEW_PENDING_PER_ADDR=" + strconv.Itoa(limitNewPendingPerAddr),
		"BOSUN_MAX_PENDING=" + strconv.Itoa(limitPendingOrg),
		"BOSUN_MAX_PENDING_DEVICES=" + strconv.Itoa(limitUndecidedOrg),
		"BOSUN_MAX_PENDING_KEYS=" + strconv.Itoa(limitPendingKeys),
	}})
	h := &wireSuite{t: t, a: clouds[0], b: clouds[1], legit: "legit-1"}
	var err error
	if h.cloudKey, err = keys.LoadPublic(h.a.CloudPublic); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if h.db, err = pgx.Connect(ctx, h.a.DatabaseURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.db.Close(context.Background()) })

	// The real device: bosun-bridge listing both replicas, and bosun-worker.
	dir := filepath.Join(h.a.Dir, h.legit)
	bridgeEnv := append(os.Environ(), "BOSUN_DEVICE_ID="+h.legit, "BOSUN_DATA_DIR="+dir,
		"BOSUN_CLOUD_PUBLIC_KEY="+h.a.CloudPublic, "BOSUN_NATS_LISTEN=127.0.0.1:"+strconv.Itoa(e2e.FreePort(t)),
		"BOSUN_CLOUD_URL="+h.a.DeviceURL+","+h.b.DeviceURL)
	e2e.StartProcess(t, h.a.Dir, "bridge", bridgeEnv, perf.Bin(t, "bosun-bridge"))
	e2e.Eventually(t, 30*time.Second, "the bridge's NATS", func() error {
		_, err := os.Stat(filepath.Join(dir, "nats.url"))
		return err
	})
	e2e.StartProcess(t, h.a.Dir, "worker", append(os.Environ(), "BOSUN_DATA_DIR="+dir), perf.Bin(t, "bosun-worker"))
	e2e.Eventually(t, 30*time.Second, h.legit+" accepted", func() error {
		return h.a.API(ctx, "POST", "/devices/"+h.legit+"/accept", nil, nil)
	})
	e2e.Eventually(t, 30*time.Second, h.legit+" answers through both replicas", func() error {
		if err := h.legitCall(h.a); err != nil {
			return err
		}
		return h.legitCall(h.b)
	})

	h.hx = newIdentity(t, "hx-1", "ed25519", 0)
	h.hy = newIdentity(t, "hy-1", "ed25519", 0)
	h.hr = newIdentity(t, "hr-1", "rsa", 2048)
	for _, who := range []*identity{h.hx, h.hy, h.hr} {
		h.preauthorize(who)
		// The first session turns the preauthorised key into an accepted
		// one: done here, so that no case sees that change.
		p, err := h.session(h.a, who, dialOptions{})
		if err != nil {
			t.Fatalf("%s's first session: %v", who.ID, err)
		}
		p.Close()
	}
	if err := h.healthy(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster, device and identities ready in %v", time.Since(start).Round(time.Millisecond))

	// Slow handshakes, both at once: the cloud must cut them at the
	// handshake timeout (10 s, §13) with 4002 "handshake timeout".
	slowCase := func(stall func(p *peer) error) func() error {
		return func() error {
			p, err := h.dial(h.a, h.hx, dialOptions{})
			if err != nil {
				return err
			}
			begun := time.Now()
			if err := stall(p); err != nil {
				p.Close()
				return err
			}
			err = h.refusedWith(p, nil, rpcproto.CloseProtocolViolation, "handshake timeout")
			if el := time.Since(begun); err == nil && (el < 9*time.Second || el > 14*time.Second) {
				err = fmt.Errorf("cut after %v, want at the 10 s handshake timeout", el.Round(time.Millisecond))
			}
			return err
		}
	}
	h.runGroup([]string{"slow handshake: nothing after the challenge", "slow handshake: half a frame, then nothing"}, verdictRefused,
		[]func() error{slowCase(func(*peer) error { return nil }), slowCase(func(p *peer) error {
			frame := p.sealNext(registration(h.hx, 1))
			mask, err := p.writeHeader(opText, true, uint64(len(frame)))
			if err != nil {
				return err
			}
			return p.writeMasked(mask, 0, frame[:len(frame)/2])
		})})

	h.envelopeCases()
	h.frameCases()
	h.batchCases()
	h.sessionCases()
	h.neverReadsCalls()
	h.floodCases()

	// Random mutations of valid envelopes: the registration (handshake) or
	// a request in an accepted session, each with one mutation.
	runs := 20
	if v := os.Getenv(EnvHostileRuns); v != "" {
		if runs, err = strconv.Atoi(v); err != nil || runs < 1 {
			t.Fatalf("%s=%q: want a positive number", EnvHostileRuns, v)
		}
	}
	mutStart := time.Now()
	refusedMut, acceptedMut := h.mutations(runs)

	var refused, limit, failed int
	for _, c := range h.cases {
		switch {
		case c.err != nil:
			failed++
		case c.verdict == verdictRefused:
			refused++
		default:
			limit++
		}
	}
	t.Logf("setup and %d cases: %v, %d mutations: %v", len(h.cases), mutStart.Sub(start).Round(time.Millisecond), runs, time.Since(mutStart).Round(time.Millisecond))
	summary := fmt.Sprintf("hostile wire: %d cases, %d refused, %d passed at the limit, %d failed, %d accepted forgeries, %d state changes; %d random mutations, %d refused, %d accepted",
		len(h.cases), refused, limit, failed, h.forgery, h.changed, runs, refusedMut, acceptedMut)
	t.Log(summary)
	fmt.Println(summary)
}

// envelopeCases: every rule of the envelope (docs/protocol.md §1–4), after
// the handshake and in it.
func (h *wireSuite) envelopeCases() {
	a, b, hx := h.a, h.b, h.hx
	reg := func(p *peer) []byte { return registration(p.who, 1) }
	with := func(edit func(m *envelope.Meta)) func(p *peer) []byte {
		return func(p *peer) []byte {
			m := p.meta()
			edit(&m)
			return p.who.seal(m, request(5))
		}
	}
	withReg := func(edit func(m *envelope.Meta)) func(p *peer) []byte {
		return func(p *peer) []byte {
			m := p.meta()
			edit(&m)
			return p.who.seal(m, reg(p))
		}
	}

	// Replays: on the same connection, on another, on the other replica.
	h.inSession("replay: the registration again on its connection", a, hx, "replay", func(p *peer) []byte {
		return p.who.seal(envelope.Meta{V: 2, Signer: hx.ID, Audience: p.CloudID, Direction: envelope.DeviceToCloud,
			Session: p.Session, Seq: 1, TS: time.Now().UnixMilli(), Alg: hx.Alg}, reg(p))
	})
	var kept []byte // a served request of one connection, for the others
	var keptReg []byte
	h.run("replay: a served request again on its connection", verdictRefused, func() error {
		p, err := h.dial(a, hx, dialOptions{})
		if err != nil {
			return err
		}
		keptReg, _, err = p.register(5 * time.Second)
		if err != nil {
			return err
		}
		kept = p.sealNext(request(2))
		if err := p.send(kept); err != nil {
			return err
		}
		if _, err := p.answer(5 * time.Second); err != nil {
			return fmt.Errorf("the original: %w", err)
		}
		return h.refusedWith(p, kept, rpcproto.CloseProtocolViolation, "envelope rejected: replay")
	})
	replayed := func(f *[]byte) func(*peer) []byte { return func(*peer) []byte { return *f } }
	h.inHandshake("replay: a registration on another connection", a, hx, "wrong_session", replayed(&keptReg))
	h.inSession("replay: a request on another connection", a, hx, "wrong_session", replayed(&kept))
	h.inHandshake("replay: a registration on the other replica", b, hx, "wrong_session", replayed(&keptReg))
	h.inSession("replay: a request on the other replica", b, hx, "wrong_session", replayed(&kept))
	h.inSession("replay: the cloud's own challenge reflected", a, hx, "unknown_signer", func(p *peer) []byte { return p.Challenge })
	h.inSession("replay: a seq below the window", a, hx, "replay", func(p *peer) []byte {
		if _, err := p.call(rpcproto.MethodRegister, nil, 2, 5*time.Second); err != nil { // seq 2
			return nil
		}
		m := p.meta()
		m.Seq = 2000
		if p.send(p.who.seal(m, request(3))) != nil {
			return nil
		}
		if _, err := p.answer(5 * time.Second); err != nil {
			return nil
		}
		m.Seq, m.TS = 3, time.Now().UnixMilli() // 3 ≤ 2000 − 1024: below the window, never seen
		return p.who.seal(m, request(4))
	})
	h.run("replay window: seqs out of order inside the window are served", verdictLimit, func() error {
		p, err := h.session(a, hx, dialOptions{})
		if err != nil {
			return err
		}
		defer p.Close()
		for i, seq := range []uint64{1030, 8, 7, 1029} { // 8 = 1030 − 1022, inside the 1024 window
			m := p.meta()
			m.Seq = seq
			if err := p.send(p.who.seal(m, request(10+i))); err != nil {
				return err
			}
			if _, err := p.answer(5 * time.Second); err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
		}
		return nil
	})

	// Audience, direction, session.
	h.inSession("audience: the device itself", a, hx, "wrong_audience", with(func(m *envelope.Meta) { m.Audience = hx.ID }))
	h.inSession("audience: *", a, hx, "wrong_audience", with(func(m *envelope.Meta) { m.Audience = "*" }))
	h.inSession("audience: another cloud", a, hx, "wrong_audience", with(func(m *envelope.Meta) { m.Audience = "bosun-cloud-2" }))
	h.inHandshake("audience: * in the registration", a, hx, "wrong_audience", withReg(func(m *envelope.Meta) { m.Audience = "*" }))
	h.inSession("direction: cloud_to_device", a, hx, "wrong_direction", with(func(m *envelope.Meta) { m.Direction = envelope.CloudToDevice }))
	h.inHandshake("direction: cloud_to_device in the registration", a, hx, "wrong_direction", withReg(func(m *envelope.Meta) { m.Direction = envelope.CloudToDevice }))
	h.inSession("session: another session id", a, hx, "wrong_session", with(func(m *envelope.Meta) { m.Session = "AAAAAAAAAAAAAAAAAAAAAA" }))

	// Algorithms and keys.
	h.inSession("alg: rsa-pss-sha256 on an Ed25519 key", a, hx, "alg_mismatch", with(func(m *envelope.Meta) { m.Alg = keys.AlgRSAPSS }))
	h.inSession("alg: ed25519 on an RSA key", a, h.hr, "alg_mismatch", with(func(m *envelope.Meta) { m.Alg = keys.AlgEd25519 }))
	h.inSession("alg: none", a, hx, "alg_mismatch", with(func(m *envelope.Meta) { m.Alg = "none" }))
	h.inHandshake("alg: rsa-pss-sha256 in an Ed25519 registration", a, hx, "alg_mismatch", withReg(func(m *envelope.Meta) { m.Alg = keys.AlgRSAPSS }))
	weak := newIdentity(h.t, "weak-1", "rsa", 1024)
	h.inHandshake("weak RSA: a 1024-bit key registers", a, weak, "bad_public_key", func(p *peer) []byte { return p.sealNext(reg(p)) })

	// Timestamps: 3 minutes off is refused, 110 s off is served.
	h.inSession("ts: 3 minutes old", a, hx, "too_old", with(func(m *envelope.Meta) { m.TS -= 180_000 }))
	h.inSession("ts: 3 minutes ahead", a, hx, "from_future", with(func(m *envelope.Meta) { m.TS += 180_000 }))
	h.inHandshake("ts: a registration 3 minutes old", a, hx, "too_old", withReg(func(m *envelope.Meta) { m.TS -= 180_000 }))
	h.inHandshake("ts: a registration 3 minutes ahead", a, hx, "from_future", withReg(func(m *envelope.Meta) { m.TS += 180_000 }))
	h.run("ts: 110 s old and 110 s ahead are served (skew 2 min)", verdictLimit, func() error {
		p, err := h.session(a, hx, dialOptions{})
		if err != nil {
			return err
		}
		defer p.Close()
		for i, d := range []int64{-110_000, 110_000} {
			m := p.meta()
			m.TS += d
			if err := p.send(p.who.seal(m, request(20+i))); err != nil {
				return err
			}
			if _, err := p.answer(5 * time.Second); err != nil {
				return fmt.Errorf("ts %+d ms: %w", d, err)
			}
		}
		return nil
	})

	// Signers and signatures.
	h.inSession("signer: unknown", a, hx, "unknown_signer", with(func(m *envelope.Meta) { m.Signer = "nobody-1" }))
	h.inSession("signer: another device, its own valid signature", a, hx, "unknown_signer", func(p *peer) []byte {
		m := p.meta()
		m.Signer = h.hy.ID
		return h.hy.seal(m, request(5))
	})
	h.inHandshake("signer: not the registration's device_id", a, hx, "signer_mismatch", withReg(func(m *envelope.Meta) { m.Signer = "nobody-1" }))
	h.inHandshake("signer: another device's key presented, not held", a, hx, "bad_signature", func(p *peer) []byte {
		m := p.meta()
		m.Signer = h.hy.ID // hy's id and public key, signed by hx's key
		return hx.seal(m, registration(h.hy, 1))
	})
	h.inSession("signature: over another payload", a, hx, "bad_signature", func(p *peer) []byte {
		m := p.meta()
		m.Sig = base64.RawURLEncoding.EncodeToString(hx.sign(envelope.SignedBytes(m, request(6))))
		return wireOf(m, request(5))
	})
	h.inSession("signature: over another seq", a, hx, "bad_signature", func(p *peer) []byte {
		m := p.meta()
		o := m
		o.Seq++
		m.Sig = base64.RawURLEncoding.EncodeToString(hx.sign(envelope.SignedBytes(o, request(5))))
		return wireOf(m, request(5))
	})
	h.inSession("signature: one bit flipped", a, hx, "bad_signature", func(p *peer) []byte {
		m := p.meta()
		sig := hx.sign(envelope.SignedBytes(m, request(5)))
		sig[3] ^= 0x10
		m.Sig = base64.RawURLEncoding.EncodeToString(sig)
		return wireOf(m, request(5))
	})
	h.inSession("signature: another key's", a, hx, "bad_signature", func(p *peer) []byte {
		m := p.meta()
		m.Sig = base64.RawURLEncoding.EncodeToString(h.hy.sign(envelope.SignedBytes(m, request(5))))
		return wireOf(m, request(5))
	})
	h.inSession("signature: padded base64", a, hx, "malformed", func(p *peer) []byte {
		m := p.meta()
		m.Sig = base64.URLEncoding.EncodeToString(hx.sign(envelope.SignedBytes(m, request(5))))
		return wireOf(m, request(5))
	})

	// Shape: truncated, duplicated keys, nesting.
	h.inSession("truncated: half an envelope", a, hx, "malformed", func(p *peer) []byte { f := p.sealNext(request(5)); return f[:len(f)/2] })
	h.inSession("truncated: the last byte missing", a, hx, "malformed", func(p *peer) []byte { f := p.sealNext(request(5)); return f[:len(f)-1] })
	h.inHandshake("truncated: a registration without its last byte", a, hx, "malformed", func(p *peer) []byte { f := p.sealNext(reg(p)); return f[:len(f)-1] })
	h.inSession("duplicate key: seq twice in meta", a, hx, "malformed", func(p *peer) []byte {
		return []byte(strings.Replace(string(p.sealNext(request(5))), `"seq":`, `"seq":999,"seq":`, 1))
	})
	h.inSession("duplicate key: seq and \\u0073eq", a, hx, "malformed", func(p *peer) []byte {
		return []byte(strings.Replace(string(p.sealNext(request(5))), `"seq":`, `"\u0073eq":999,"seq":`, 1))
	})
	h.inSession("duplicate key: payload twice", a, hx, "malformed", func(p *peer) []byte {
		f := string(p.sealNext(request(5)))
		return []byte(strings.TrimSuffix(f, "}") + `,"payload":` + string(request(6)) + `}`)
	})
	h.inSession("duplicate key: method twice in a signed payload", a, hx, "bad_payload", func(p *peer) []byte {
		return p.sealNext([]byte(`{"jsonrpc":"2.0","id":5,"method":"registration.register","method":"state.report"}`))
	})
	h.inSession("duplicate key: method and \\u006dethod in a signed payload", a, hx, "bad_payload", func(p *peer) []byte {
		return p.sealNext([]byte(`{"jsonrpc":"2.0","id":5,"method":"registration.register","\u006dethod":"state.report"}`))
	})
	h.inSession("nesting: 10001 levels in a signed payload", a, hx, "bad_payload", func(p *peer) []byte { return p.sealNext(nested(10001)) })
	h.run("nesting: 10000 levels are served (answered)", verdictLimit, func() error {
		p, err := h.session(a, hx, dialOptions{})
		if err != nil {
			return err
		}
		defer p.Close()
		if err := p.send(p.sealNext(nested(10000))); err != nil {
			return err
		}
		ans, err := p.answer(5 * time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(string(ans), `"code":-32601`) {
			return fmt.Errorf("answer %.200s, want -32601", ans)
		}
		return nil
	})
	h.inSession("shape: v 3", a, hx, "malformed", with(func(m *envelope.Meta) { m.V = 3 }))
	h.inSession("shape: seq 0", a, hx, "malformed", with(func(m *envelope.Meta) { m.Seq = 0 }))
	h.inSession("shape: seq 2^53", a, hx, "malformed", with(func(m *envelope.Meta) { m.Seq = 1 << 53 }))
	h.inSession("shape: a tenth meta member", a, hx, "malformed", func(p *peer) []byte {
		return []byte(strings.Replace(string(p.sealNext(request(5))), `"v":2,`, `"v":2,"nonce":"x",`, 1))
	})
}

// frameCases: websocket framing and sizes (§6.1, §14).
func (h *wireSuite) frameCases() {
	a, hx := h.a, h.hx
	const limit = envelope.DefaultMaxSize
	frameRefused := func(name string, handshake bool, code int, reason string, send func(p *peer) error) {
		h.run(name, verdictRefused, func() error {
			var p *peer
			var err error
			if handshake {
				p, err = h.dial(a, hx, dialOptions{})
			} else {
				p, err = h.session(a, hx, dialOptions{})
			}
			if err != nil {
				return err
			}
			begun := time.Now()
			// The cloud may close before it has read all we send: a write
			// error is no failure, the close it sent is the answer.
			werr := send(p)
			err = h.refusedWith(p, nil, code, reason)
			if err != nil && werr != nil {
				err = fmt.Errorf("%w (sending: %v)", err, werr)
			}
			if el := time.Since(begun); err == nil && el > 3*time.Second {
				err = fmt.Errorf("closed after %v: the cloud waited for bytes", el)
			}
			return err
		})
	}
	terabytes := func(p *peer) error { _, err := p.writeHeader(opText, true, 1<<40); return err }
	frameRefused("frame: a header claiming 1 TiB, in the handshake", true, 1009, "", terabytes)
	frameRefused("frame: a header claiming 1 TiB, in a session", false, 1009, "", terabytes)
	frameRefused("frame: 1 MiB + 1 byte", false, 1009, "", func(p *peer) error {
		return p.send([]byte(strings.Repeat(" ", limit+1)))
	})
	frameRefused("frame: two fragments of 600 KiB", false, 1009, "", func(p *peer) error {
		part := []byte(strings.Repeat(" ", 600<<10))
		mask, err := p.writeHeader(opText, false, uint64(len(part)))
		if err == nil {
			err = p.writeMasked(mask, 0, part)
		}
		if err == nil {
			mask, err = p.writeHeader(0, true, uint64(len(part)))
		}
		if err == nil {
			err = p.writeMasked(mask, 0, part)
		}
		return err
	})
	frameRefused("frame: exactly 1 MiB of junk passes the read limit, refused as malformed", false,
		rpcproto.CloseProtocolViolation, "envelope rejected: malformed", func(p *peer) error {
			return p.send([]byte("{" + strings.Repeat(" ", limit-1)))
		})
	frameRefused("frame: binary in a session", false, 1003, "text frames only", func(p *peer) error {
		return p.writeFrame(opBinary, p.sealNext(request(5)))
	})
	frameRefused("frame: binary in the handshake", true, rpcproto.CloseProtocolViolation, "handshake failed: binary_frame", func(p *peer) error {
		return p.writeFrame(opBinary, p.sealNext(registration(hx, 1)))
	})
	h.run("frame: no bosun.v1 subprotocol", verdictRefused, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w, err := dialWS(ctx, a.DeviceURL, dialOptions{NoSubprotocol: true})
		if err != nil {
			return err
		}
		p := &peer{rawWS: w, who: hx}
		return h.refusedWith(p, nil, 1008, "subprotocol bosun.v1 required")
	})
}

// batchCases: JSON-RPC batches (§10).
func (h *wireSuite) batchCases() {
	a, hx := h.a, h.hx
	batch := func(n int, entry func(i int) string) []byte {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = entry(i)
		}
		return []byte("[" + strings.Join(parts, ",") + "]")
	}
	report := func(i int) string {
		return `{"jsonrpc":"2.0","id":` + strconv.Itoa(i+1) + `,"method":"state.report","params":{"hostname":"hostile-` + strconv.Itoa(i) + `"}}`
	}
	for _, n := range []int{65, 5000} {
		h.run(fmt.Sprintf("batch: %d state.report entries, none runs", n), verdictRefused, func() error {
			p, err := h.session(a, hx, dialOptions{})
			if err != nil {
				return err
			}
			defer p.Close()
			if err := p.send(p.sealNext(batch(n, report))); err != nil {
				return err
			}
			ans, err := p.answer(5 * time.Second)
			if err != nil {
				return err
			}
			want := fmt.Sprintf(`{"jsonrpc":"2.0","error":{"code":-32600,"message":"batch of %d entries exceeds the limit of 64"},"id":null}`, n)
			if string(ans) != want {
				return fmt.Errorf("answer %.300s, want %s", ans, want)
			}
			// The session stays open and serves.
			if _, err := p.call(rpcproto.MethodRegister, nil, 99999, 5*time.Second); err != nil {
				return fmt.Errorf("after the batch: %w", err)
			}
			return nil
		})
	}
	h.run("batch: 64 entries are served, in order", verdictLimit, func() error {
		p, err := h.session(a, hx, dialOptions{})
		if err != nil {
			return err
		}
		defer p.Close()
		if err := p.send(p.sealNext(batch(64, func(i int) string { return string(request(i + 1)) }))); err != nil {
			return err
		}
		ans, err := p.answer(5 * time.Second)
		if err != nil {
			return err
		}
		var got []struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(ans, &got); err != nil || len(got) != 64 {
			return fmt.Errorf("answer %.300s: %d entries, %v", ans, len(got), err)
		}
		for i, g := range got {
			if g.ID != i+1 || g.Result == nil {
				return fmt.Errorf("entry %d: %+v", i, g)
			}
		}
		return nil
	})
}

// sessionCases: sessions (§6.5, §7, §11, §16).
func (h *wireSuite) sessionCases() {
	a, b := h.a, h.b
	h.run("session: a second session of a device takes over, on the other replica (4009)", verdictLimit, func() error {
		who := h.hy
		first, err := h.session(a, who, dialOptions{})
		if err != nil {
			return err
		}
		defer first.Close()
		second, err := h.session(b, who, dialOptions{})
		if err != nil {
			return err
		}
		defer second.Close()
		ce, got, err := first.waitClose(5 * time.Second)
		if err != nil || len(got) > 0 || !isClose(ce, rpcproto.CloseEvicted, "a newer session took over") {
			return fmt.Errorf("the first session: %v %d messages %v, want 4009", ce, len(got), err)
		}
		_, err = second.call(rpcproto.MethodRegister, nil, 2, 5*time.Second)
		return err
	})
	h.run("session: the real device's id with another key while it is online (1013)", verdictRefused, func() error {
		p, err := h.dial(b, newIdentity(h.t, h.legit, "ed25519", 0), dialOptions{})
		if err != nil {
			return err
		}
		defer p.Close()
		_, _, err = p.register(5 * time.Second)
		if err == nil || !strings.Contains(err.Error(), "try again later") {
			return fmt.Errorf("registration answered %v, want -32011", err)
		}
		ce, _, err := p.waitClose(5 * time.Second)
		if err != nil || !isClose(ce, rpcproto.CloseTryAgainLater, "key_change_while_online") {
			return fmt.Errorf("closed %v %v, want 1013 key_change_while_online", ce, err)
		}
		return nil
	})

	// A rejected key reconnecting in a loop: answered rejected and closed
	// 4003 each time, and nothing is written.
	rej := newIdentity(h.t, "rejected-1", "ed25519", 0)
	p, err := h.dial(a, rej, dialOptions{Local: "127.0.0.5"})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, res, err := p.register(5 * time.Second); err != nil || res.Status != rpcproto.StatusPending {
		h.t.Fatalf("%s: %+v %v, want pending", rej.ID, res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.a.API(ctx, "POST", "/devices/"+rej.ID+"/reject", nil, nil); err != nil {
		h.t.Fatal(err)
	}
	if ce, _, err := p.waitClose(5 * time.Second); err != nil || !isClose(ce, rpcproto.CloseRejected, "key rejected") {
		h.t.Fatalf("the rejected key's live session: %v %v, want 4003", ce, err)
	}
	h.run("session: a rejected key reconnects 30 times in a row, on both replicas", verdictRefused, func() error {
		for i := range 30 {
			p, err := h.dial([]*perf.Cloud{a, b}[i%2], rej, dialOptions{Local: "127.0.0.5"})
			if err != nil {
				return err
			}
			_, res, err := p.register(5 * time.Second)
			if err != nil || res.Status != rpcproto.StatusRejected {
				p.Close()
				return fmt.Errorf("attempt %d: %+v %v, want rejected", i, res, err)
			}
			ce, _, err := p.waitClose(5 * time.Second)
			p.Close()
			if err != nil || !isClose(ce, rpcproto.CloseRejected, "key_rejected") {
				return fmt.Errorf("attempt %d: closed %v %v, want 4003 key_rejected", i, ce, err)
			}
		}
		return nil
	})

	// A peer that never reads while it sends requests: the answers fill
	// its socket and then the send queue; the cloud cuts it.
	h.run("session: a peer that never reads", verdictRefused, func() error {
		p, err := h.session(a, h.hy, dialOptions{RecvBuf: 4096})
		if err != nil {
			return err
		}
		defer p.Close()
		begun := time.Now()
		var sent int
		var werr error
		for sent = 0; sent < 50000; sent++ {
			if werr = p.send(p.sealNext(request(sent + 2))); werr != nil {
				break
			}
		}
		cutAt := time.Since(begun)
		if werr == nil {
			// Every request went out: wait for the cut by reading nothing
			// (a write of a ping would be the first to fail).
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if werr = p.send(p.sealNext(request(sent + 2))); werr != nil {
					break
				}
				sent++
				time.Sleep(50 * time.Millisecond)
			}
			cutAt = time.Since(begun)
		}
		if werr == nil {
			return fmt.Errorf("still connected %v after %d requests never read", cutAt, sent)
		}
		// The cloud's log says why (session.Session logs "dropping session"
		// with the reason).
		var why string
		e2e.Eventually(h.t, 5*time.Second, "the cut in the cloud's log", func() error {
			for _, l := range strings.Split(a.Process().Output(), "\n") {
				if strings.Contains(l, "session="+p.Session) && strings.Contains(l, `msg="dropping session"`) {
					why = l[strings.Index(l, "code="):]
					return nil
				}
			}
			return errors.New("no dropping session line")
		})
		neverReadsFigure = fmt.Sprintf("cut after %d requests never read, %v, the cloud: %s", sent, cutAt.Round(time.Millisecond), why)
		h.t.Logf("a peer that never reads: %s (the peer saw: %v)", neverReadsFigure, werr)
		if !strings.Contains(why, "code=4008") {
			return fmt.Errorf("cut with %s, want 4008 send queue full (docs/protocol.md §11)", why)
		}
		return nil
	})
}

// neverReadsCalls is a peer that never reads while the operator calls it:
// the calls fill its socket with fewer messages than the send queue
// holds, so the cloud's blocked write is what cuts it, at the 10 s write
// timeout (§13). Every call ends with an outcome; none succeeds.
func (h *wireSuite) neverReadsCalls() {
	a := h.a
	h.run("session: a peer that never reads while the operator calls it", verdictLimit, func() error {
		p, err := h.session(a, h.hy, dialOptions{RecvBuf: 4096})
		if err != nil {
			return err
		}
		defer p.Close()
		const calls = 40
		big := strings.Repeat("x", 256<<10) // 10 MiB in all: more than a socket buffers (4 MiB)
		type outcome struct {
			Status string `json:"status"`
			Error  *struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		out := make([]outcome, calls)
		errs := make([]error, calls)
		begun := time.Now()
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
				defer cancel()
				errs[i] = h.b.API(ctx, "POST", "/devices/"+h.hy.ID+"/call",
					map[string]any{"method": "hostile.fill", "params": map[string]string{"fill": big}, "timeout": "30s"}, &out[i])
			}()
		}
		wg.Wait()
		took := time.Since(begun)
		var why string
		for _, l := range strings.Split(a.Process().Output(), "\n") {
			if strings.Contains(l, "session="+p.Session) && strings.Contains(l, `msg="dropping session"`) {
				why = l[strings.Index(l, "code="):]
			}
		}
		codes := map[string]int{}
		for i, o := range out {
			if errs[i] != nil {
				return fmt.Errorf("call %d: %v", i, errs[i])
			}
			k := o.Status
			if o.Error != nil {
				k += " " + strconv.Itoa(o.Error.Code)
			}
			codes[k]++
		}
		neverReadsCallsFigure = fmt.Sprintf("%d calls of 256 KiB to a peer that never reads: cut after %v, the cloud: %s; calls: %v",
			calls, took.Round(time.Millisecond), why, codes)
		h.t.Log(neverReadsCallsFigure)
		if !strings.Contains(why, `reason="write failed"`) || took < 9*time.Second || took > 20*time.Second {
			return fmt.Errorf("%s; want a cut by the 10 s write timeout", neverReadsCallsFigure)
		}
		if codes["succeeded"] > 0 {
			return fmt.Errorf("calls %v: a call to a peer that never read succeeded", codes)
		}
		return nil
	})
}

// floodCases: registration floods from one address and from many, up to
// each documented limit and not one row past it (§6.4).
func (h *wireSuite) floodCases() {
	a, b := h.a, h.b
	seq := 0
	newDev := func(prefix string) *identity {
		seq++
		return newIdentity(h.t, fmt.Sprintf("%s-%d", prefix, seq), "ed25519", 0)
	}
	// register registers who from local and returns the status, or the
	// 1013 reason; it keeps the connection open when pending.
	register := func(c *perf.Cloud, who *identity, local string) (string, *peer, error) {
		p, err := h.dial(c, who, dialOptions{Local: local})
		if err != nil {
			return "", nil, err
		}
		_, res, err := p.register(5 * time.Second)
		if err == nil {
			return res.Status, p, nil
		}
		ce, _, cerr := p.waitClose(5 * time.Second)
		p.Close()
		if !strings.Contains(err.Error(), "try again later") || cerr != nil || ce.Code != rpcproto.CloseTryAgainLater {
			return "", nil, fmt.Errorf("registration: %v, closed %v %v", err, ce, cerr)
		}
		return "1013 " + ce.Reason, nil, nil
	}
	idle := func() error {
		deadline := time.Now().Add(10 * time.Second)
		for h.livePending() != 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d live pending sessions left", h.livePending())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	// flood registers each device in turn (from locals[i % len], on
	// alternating replicas), holding pending sessions open when hold, and
	// checks the outcomes: want[status] counts.
	flood := func(name string, devs []*identity, locals []string, hold bool, want map[string]int, rows func(devices, keys int64) error) {
		h.run(name, verdictLimit, func() error {
			if err := idle(); err != nil {
				return err
			}
			devices, keys := h.count(`SELECT count(*) FROM devices`), h.count(`SELECT count(*) FROM device_keys`)
			got := map[string]int{}
			var open []*peer
			defer func() {
				for _, p := range open {
					p.Close()
				}
			}()
			for i, who := range devs {
				st, p, err := register([]*perf.Cloud{a, b}[i%2], who, locals[i%len(locals)])
				if err != nil {
					return fmt.Errorf("%s: %w", who.ID, err)
				}
				got[st]++
				if p != nil {
					if hold {
						open = append(open, p)
					} else {
						p.Close()
						if err := idle(); err != nil {
							return err
						}
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("outcomes %v, want %v", got, want)
			}
			return rows(h.count(`SELECT count(*) FROM devices`)-devices, h.count(`SELECT count(*) FROM device_keys`)-keys)
		})
	}
	rowsGrew := func(wantDevices, wantKeys int64) func(devices, keys int64) error {
		return func(devices, keys int64) error {
			if devices != wantDevices || keys != wantKeys {
				return fmt.Errorf("%d device rows and %d key rows added, want %d and %d", devices, keys, wantDevices, wantKeys)
			}
			return nil
		}
	}

	// Many keys for one device id: 4 pending, then refused.
	const tries = limitPendingKeys + 3
	var keyset []*identity
	for range tries {
		keyset = append(keyset, newIdentity(h.t, "fk-1", "ed25519", 0))
	}
	flood(fmt.Sprintf("flood: %d keys for one device id", tries), keyset, []string{"127.0.0.4"}, false,
		map[string]int{"pending": limitPendingKeys, "1013 pending_keys_limit": tries - limitPendingKeys}, rowsGrew(1, limitPendingKeys))

	// One address, live sessions: 4 pending held, then refused.
	var devs []*identity
	for range limitPendingPerAddr + 3 {
		devs = append(devs, newDev("fa"))
	}
	flood(fmt.Sprintf("flood: %d live pending sessions from one address", len(devs)), devs, []string{"127.0.0.2"}, true,
		map[string]int{"pending": limitPendingPerAddr, "1013 pending_limit_address": 3}, rowsGrew(limitPendingPerAddr, limitPendingPerAddr))

	// One address (another one), new devices one after the other: 10 an
	// hour, then refused.
	devs = nil
	for range limitNewPendingPerAddr + 5 {
		devs = append(devs, newDev("fb"))
	}
	flood(fmt.Sprintf("flood: %d new devices from one address, one after the other", len(devs)), devs, []string{"127.0.0.3"}, false,
		map[string]int{"pending": limitNewPendingPerAddr, "1013 pending_devices_limit_address": 5}, rowsGrew(limitNewPendingPerAddr, limitNewPendingPerAddr))

	// Many addresses, live sessions: the organisation's 12, then refused.
	devs = nil
	var locals []string
	for i := range limitPendingOrg + 4 {
		devs = append(devs, newDev("fc"))
		locals = append(locals, "127.0.1."+strconv.Itoa(i+1))
	}
	flood(fmt.Sprintf("flood: %d live pending sessions from %d addresses", len(devs), len(locals)), devs, locals, true,
		map[string]int{"pending": limitPendingOrg, "1013 pending_limit_org": 4}, rowsGrew(limitPendingOrg, limitPendingOrg))

	// Many addresses, new devices: the organisation's undecided devices
	// stop at 30.
	left := int(limitUndecidedOrg - h.undecided())
	if left <= 0 || left > 10 {
		h.t.Fatalf("%d undecided devices before the last flood, want between 20 and 29", h.undecided())
	}
	devs, locals = nil, nil
	for i := range left + 6 {
		devs = append(devs, newDev("fd"))
		locals = append(locals, "127.0.2."+strconv.Itoa(i+1))
	}
	flood(fmt.Sprintf("flood: %d new devices from %d addresses", len(devs), len(locals)), devs, locals, false,
		map[string]int{"pending": left, "1013 pending_devices_limit_org": 6}, func(devices, keys int64) error {
			if err := rowsGrew(int64(left), int64(left))(devices, keys); err != nil {
				return err
			}
			if n := h.undecided(); n != limitUndecidedOrg {
				return fmt.Errorf("%d undecided devices, want the limit %d", n, limitUndecidedOrg)
			}
			return nil
		})
}

// mutations sends runs random mutations of valid envelopes, each on a
// fresh connection, half of them as the registration and half in an
// accepted session, and counts the refused and the accepted. The state
// must not change across all of them.
func (h *wireSuite) mutations(runs int) (refused, accepted int) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	before := h.snapshot()
	for i := range runs {
		inSession := i%2 == 1
		var p *peer
		var err error
		if inSession {
			p, err = h.session(h.a, h.hx, dialOptions{})
		} else {
			p, err = h.dial(h.b, h.hx, dialOptions{})
		}
		if err != nil {
			h.t.Fatalf("mutation %d: %v", i, err)
		}
		var valid []byte
		if inSession {
			valid = p.sealNext(request(7))
		} else {
			valid = p.sealNext(registration(h.hx, 1))
		}
		mut, how := mutate(rng, valid)
		want := "handshake failed: "
		if inSession {
			want = "envelope rejected: "
		}
		if err := h.refusedWith(p, mut, rpcproto.CloseProtocolViolation, want); err != nil {
			h.t.Errorf("mutation %d (%s) of %s: %v", i, how, valid, err)
			if strings.Contains(err.Error(), "answered") {
				accepted++
			}
			continue
		}
		refused++
	}
	if after := h.snapshot(); after != before {
		h.mu.Lock()
		h.changed++
		h.mu.Unlock()
		h.t.Errorf("the state changed across the mutations:\nbefore %+v\nafter  %+v", before, after)
	}
	if err := h.healthy(); err != nil {
		h.t.Errorf("after the mutations: %v", err)
	}
	return refused, accepted
}

// mutate changes valid once at random: a bit flipped, a byte replaced,
// deleted, inserted or duplicated, a cut, or two bytes swapped. It never
// inserts whitespace (a different spelling of the same envelope, which a
// receiver must accept) and always changes something.
func mutate(rng *rand.Rand, valid []byte) ([]byte, string) {
	for {
		b := append([]byte(nil), valid...)
		i := rng.IntN(len(b))
		var how string
		switch rng.IntN(7) {
		case 0:
			bit := byte(1) << rng.IntN(8)
			b[i] ^= bit
			how = fmt.Sprintf("bit %#x of byte %d flipped", bit, i)
		case 1:
			b[i] = byte(rng.IntN(256))
			how = fmt.Sprintf("byte %d replaced by %#x", i, b[i])
		case 2:
			b = append(b[:i], b[i+1:]...)
			how = fmt.Sprintf("byte %d deleted", i)
		case 3:
			c := byte(rng.IntN(256))
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				continue
			}
			b = append(b[:i], append([]byte{c}, b[i:]...)...)
			how = fmt.Sprintf("%#x inserted at %d", c, i)
		case 4:
			b = append(b[:i], append([]byte{b[i]}, b[i:]...)...)
			how = fmt.Sprintf("byte %d duplicated", i)
		case 5:
			b = b[:i]
			how = fmt.Sprintf("cut at %d", i)
		case 6:
			j := rng.IntN(len(b))
			b[i], b[j] = b[j], b[i]
			how = fmt.Sprintf("bytes %d and %d swapped", i, j)
		}
		if string(b) != string(valid) && !whitespaceOnly(b, valid) {
			return b, how
		}
	}
}

// whitespaceOnly reports whether b and valid differ only by JSON
// whitespace (a swap or flip can make one): the same envelope.
func whitespaceOnly(b, valid []byte) bool {
	strip := func(x []byte) string {
		return strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, string(x))
	}
	return strings.ContainsAny(string(b), " \t\r\n") && strip(b) == strip(valid)
}
