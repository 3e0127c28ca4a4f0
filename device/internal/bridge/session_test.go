package bridge_test

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/bosunhq/bosun/pkg/session"
	"github.com/coder/websocket"
)

// batchReply is one entry of a batch reply.
type batchReply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
}

// waitRawListed is waitListed for a raw-mode connection.
func waitRawListed(tb testing.TB, cc *cloudConn, method string) {
	tb.Helper()
	eventually(tb, method+" is listed", func() bool {
		return contains(string(cc.rawCall(tb, `{"jsonrpc":"2.0","id":"list","method":"rpc.list"}`)), `"`+method+`"`)
	})
}

// TestBatch: a batch is served entry by entry; the reply holds one entry
// per request, in order, and none for the notification.
func TestBatch(t *testing.T) {
	cloud := newTestCloud(t)
	cloud.raw.Store(true)
	dir := t.TempDir()
	startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitRawListed(t, cc, "test.count")
	batch := `[{"jsonrpc":"2.0","id":"a","method":"test.echo2","params":{"say":"one"}},` +
		`{"jsonrpc":"2.0","method":"test.count"},` +
		`{"jsonrpc":"2.0","id":7,"method":"nobody.serves.this"},` +
		`{"jsonrpc":"2.0","id":8,"method":"rpc.list"}]`
	raw := cc.rawCall(t, batch)
	var got []batchReply
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("batch reply %s: %v", raw, err)
	}
	if len(got) != 3 {
		t.Fatalf("batch reply has %d entries, want 3 (the notification gets none): %s", len(got), raw)
	}
	if string(got[0].ID) != `"a"` || string(got[0].Result) != `{"say":"one"}` {
		t.Errorf("entry 0: id %s result %s", got[0].ID, got[0].Result)
	}
	if string(got[1].ID) != "7" || got[1].Error == nil || got[1].Error.Code != jsonrpc.CodeMethodNotFound {
		t.Errorf("entry 1: id %s error %v", got[1].ID, got[1].Error)
	}
	if string(got[2].ID) != "8" || !contains(string(got[2].Result), "test.echo2") {
		t.Errorf("entry 2: id %s result %s", got[2].ID, got[2].Result)
	}
	eventually(t, "the notification reaches the worker", func() bool { return tw.count.Load() == 1 })
}

// countBatch is a batch of n test.count requests with ids 0 to n−1.
func countBatch(n int) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"jsonrpc":"2.0","id":%d,"method":"test.count"}`, i)
	}
	sb.WriteByte(']')
	return sb.String()
}

// TestBatchLimit: a batch of jsonrpc.MaxBatch (64) entries is served; one
// more is refused as a whole with a single -32600 and no entry reaches a
// worker; the session goes on.
func TestBatchLimit(t *testing.T) {
	cloud := newTestCloud(t)
	cloud.raw.Store(true)
	dir := t.TempDir()
	startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitRawListed(t, cc, "test.count")

	raw := cc.rawCall(t, countBatch(jsonrpc.MaxBatch+1))
	var refused batchReply
	if err := json.Unmarshal(raw, &refused); err != nil {
		t.Fatalf("reply to a batch of %d: %.300s, want one error object: %v", jsonrpc.MaxBatch+1, raw, err)
	}
	if refused.Error == nil || refused.Error.Code != jsonrpc.CodeInvalidRequest || string(refused.ID) != "null" {
		t.Fatalf("reply to a batch of %d: %.300s, want one error %d with id null", jsonrpc.MaxBatch+1, raw, jsonrpc.CodeInvalidRequest)
	}
	if n := tw.count.Load(); n != 0 {
		t.Fatalf("worker counted %d calls from a refused batch", n)
	}

	raw = cc.rawCall(t, countBatch(jsonrpc.MaxBatch))
	var got []batchReply
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("batch reply %.200s: %v", raw, err)
	}
	if len(got) != jsonrpc.MaxBatch {
		t.Fatalf("batch reply has %d entries, want %d", len(got), jsonrpc.MaxBatch)
	}
	seen := map[int64]bool{}
	for i, r := range got {
		if string(r.ID) != fmt.Sprint(i) || r.Error != nil {
			t.Fatalf("entry %d: id %s error %v", i, r.ID, r.Error)
		}
		seen[countOf(t, r.Result)] = true
	}
	for i := int64(1); i <= jsonrpc.MaxBatch; i++ {
		if !seen[i] {
			t.Errorf("no entry saw count %d: the worker did not serve each entry once", i)
		}
	}
	// 64, not 129: nothing of the refused batch ran, then or later.
	if n := tw.count.Load(); n != jsonrpc.MaxBatch {
		t.Errorf("worker counted %d calls, want %d", n, jsonrpc.MaxBatch)
	}
	if n := cloud.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: a refused batch is no protocol violation", n)
	}
}

// TestForgedMessagesCloseTheSession: a cloud message that fails
// verification never reaches a worker; the bridge counts and logs it by
// reason and closes the session (4002, or 1003 for a binary frame), then
// reconnects, and the new session works.
func TestForgedMessagesCloseTheSession(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitListed(t, cc, "test.count")
	other, err := keys.Generate(keys.AlgEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	const count = `{"jsonrpc":"2.0","id":"forged","method":"test.count"}`
	send := func(t *testing.T, cc *cloudConn, wire []byte) {
		t.Helper()
		if err := cc.sendWire(context.Background(), wire); err != nil {
			t.Fatal(err)
		}
	}
	// forged sends count under h, with a seq the session has not used, as
	// signer with key at time at.
	forged := func(signer string, key crypto.Signer, edit func(*envelope.Header), at time.Time) func(*testing.T, *cloudConn) int {
		return func(t *testing.T, cc *cloudConn) int {
			_, seq := cc.sealNext(t, `{}`)
			h := cc.header(seq)
			if edit != nil {
				edit(&h)
			}
			send(t, cc, cc.forge(t, signer, key, h, at, count))
			return 0
		}
	}
	tests := []struct {
		name string
		// send writes the frames on cc and returns how many test.count
		// among them the worker must see (valid ones sent first).
		send   func(t *testing.T, cc *cloudConn) int
		reason string // counted by Bridge.Rejected
		code   websocket.StatusCode
		text   string // the close reason
		log    string // more text the bridge logs, if any
	}{
		{
			name: "replay inside the window",
			send: func(t *testing.T, cc *cloudConn) int {
				wire, _ := cc.sealNext(t, count)
				before := tw.count.Load()
				send(t, cc, wire)
				eventually(t, "the first copy is served", func() bool { return tw.count.Load() == before+1 })
				send(t, cc, wire)
				return 1
			},
			reason: "replay", log: "already accepted",
		},
		{
			name: "seq below the window",
			send: func(t *testing.T, cc *cloudConn) int {
				// A genuine message held back while the session sends a
				// window's worth more (notifications the bridge answers
				// itself), so it arrives too late to tell from a replay.
				// The session's own stream stays valid throughout.
				late, _ := cc.sealNext(t, count)
				for sent := 0; sent <= envelope.DefaultWindow; {
					// At most 50 in flight at once: inside the send queue,
					// and with the call below, inside the session's 64
					// concurrent handlers (100 made the call "busy" whenever
					// the machine was slow to serve the notifications).
					for i := 0; i < 50; i, sent = i+1, sent+1 {
						cc.notify(t, rpcproto.MethodRPCList, nil)
					}
					// The answer comes after the device has read them all.
					if _, err := cc.call(t, rpcproto.MethodRPCList, nil); err != nil {
						t.Fatal(err)
					}
				}
				send(t, cc, late)
				return 0
			},
			reason: "replay", log: "below the window",
		},
		{name: "signed by another key", send: forged(testCloudID, other, nil, time.Time{}), reason: "bad_signature"},
		{name: "unknown signer", send: forged("cloud-evil", other, nil, time.Time{}), reason: "unknown_signer"},
		{name: "addressed to another device", send: forged(testCloudID, nil, func(h *envelope.Header) { h.Audience = "dev-someone-else" }, time.Time{}), reason: "wrong_audience"},
		{name: "wrong direction", send: forged(testCloudID, nil, func(h *envelope.Header) { h.Direction = envelope.DeviceToCloud }, time.Time{}), reason: "wrong_direction"},
		{name: "sealed for another session", send: forged(testCloudID, nil, func(h *envelope.Header) { h.Session = session.NewID() }, time.Time{}), reason: "wrong_session"},
		{name: "stale timestamp", send: forged(testCloudID, nil, nil, time.Now().Add(-2*envelope.DefaultSkew)), reason: "too_old"},
		{name: "timestamp from the future", send: forged(testCloudID, nil, nil, time.Now().Add(2*envelope.DefaultSkew)), reason: "from_future"},
		{
			name:   "not an envelope",
			send:   func(t *testing.T, cc *cloudConn) int { send(t, cc, []byte(count)); return 0 },
			reason: "malformed",
		},
		{
			name: "binary frame",
			send: func(t *testing.T, cc *cloudConn) int {
				wire, _ := cc.sealNext(t, count)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := cc.ws.Write(ctx, websocket.MessageBinary, wire); err != nil {
					t.Fatal(err)
				}
				return 0
			},
			reason: "binary_frame", code: websocket.StatusUnsupportedData, text: "text frames only",
		},
	}
	for _, tt := range tests {
		if tt.code == 0 {
			tt.code, tt.text = rpcproto.CloseProtocolViolation, "envelope rejected: "+tt.reason
		}
		ok := t.Run(tt.name, func(t *testing.T) {
			rejected := b.Rejected()
			base := tw.count.Load()
			mark := len(b.logs.String())
			counted := tt.send(t, cc)

			ce := cc.closedBy(t)
			if ce.Code != tt.code || ce.Reason != tt.text {
				t.Errorf("device closed with %d %q, want %d %q", ce.Code, ce.Reason, tt.code, tt.text)
			}
			// OnReject runs before the close: the count is there already.
			after := b.Rejected()
			if after[tt.reason] != rejected[tt.reason]+1 {
				t.Errorf("Rejected()[%s] = %d, want %d", tt.reason, after[tt.reason], rejected[tt.reason]+1)
			}
			if total(after) != total(rejected)+1 {
				t.Errorf("rejections %v after %v: want exactly one more", after, rejected)
			}
			if n := tw.count.Load(); n != base+int64(counted) {
				t.Errorf("worker counted %d calls, want %d", n, base+int64(counted))
			}
			logs := b.logs.String()[mark:]
			if !contains(logs, "reason="+tt.reason) || !contains(logs, tt.log) {
				t.Errorf("no log line with reason=%s and %q", tt.reason, tt.log)
			}

			next := cloud.nextConn(t)
			if next.session == cc.session {
				t.Fatal("the new connection reuses the session")
			}
			cc = next
			res, err := cc.call(t, "test.count", nil)
			if err != nil {
				t.Fatalf("call on the new session: %v", err)
			}
			// One more than before: the refused message did not reach the
			// worker late either.
			if got := countOf(t, res); got != base+int64(counted)+1 {
				t.Errorf("count %d on the new session, want %d", got, base+int64(counted)+1)
			}
			eventually(t, "the bridge is accepted again", func() bool { return b.Status() == bridge.StatusAccepted })
		})
		if !ok {
			break // the next case needs the connection this one hands on
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestMessageFromEarlierSession: an envelope captured in one session is
// worthless in the next: the device closes that session.
func TestMessageFromEarlierSession(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc1 := cloud.nextConn(t)
	waitListed(t, cc1, "test.count")
	captured, _ := cc1.sealNext(t, `{"jsonrpc":"2.0","id":"captured","method":"test.count"}`)
	if err := cc1.sendWire(context.Background(), captured); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the call is counted", func() bool { return tw.count.Load() == 1 })
	cc1.drop()

	cc2 := cloud.nextConn(t)
	if err := cc2.sendWire(context.Background(), captured); err != nil {
		t.Fatal(err)
	}
	if ce := cc2.closedBy(t); ce.Code != rpcproto.CloseProtocolViolation || ce.Reason != "envelope rejected: wrong_session" {
		t.Errorf("device closed with %d %q, want 4002 \"envelope rejected: wrong_session\"", ce.Code, ce.Reason)
	}
	if n := b.Rejected()["wrong_session"]; n != 1 {
		t.Errorf("Rejected()[wrong_session] = %d, want 1", n)
	}
	if n := tw.count.Load(); n != 1 {
		t.Errorf("worker counted %d calls, want 1", n)
	}
	if !contains(b.logs.String(), "reason=wrong_session") {
		t.Error("no log line with reason=wrong_session")
	}
	cc3 := cloud.nextConn(t)
	res, err := cc3.call(t, "test.count", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := countOf(t, res); got != 2 {
		t.Errorf("count %d after the reconnect, want 2", got)
	}
}

// TestReplayedChallengeRefused: an auth.challenge replayed on a second
// connection (same session, same signature) is refused with 4002
// "replayed_challenge" before the device registers; a fresh one is then
// accepted.
func TestReplayedChallengeRefused(t *testing.T) {
	cloud := newTestCloud(t)
	b := startBridge(t, cloud, t.TempDir())
	cc1 := cloud.nextConn(t)
	cloud.replayChallenge.Store(1)
	cc1.drop()

	r := cloud.nextRefusal(t)
	if r.session != cc1.session {
		t.Fatalf("refused connection had session %s, want the replayed %s", r.session, cc1.session)
	}
	var ce websocket.CloseError
	if !errors.As(r.err, &ce) || ce.Code != rpcproto.CloseProtocolViolation || ce.Reason != "handshake failed: replayed_challenge" {
		t.Fatalf("device ended the handshake with %v, want close 4002 \"handshake failed: replayed_challenge\"", r.err)
	}
	if n := b.Rejected()["replayed_challenge"]; n != 1 {
		t.Errorf("Rejected()[replayed_challenge] = %d, want 1", n)
	}
	if !contains(b.logs.String(), "reason=replayed_challenge") {
		t.Error("no log line with reason=replayed_challenge")
	}

	cc2 := cloud.nextConn(t)
	if cc2.session == cc1.session {
		t.Fatal("registered in the replayed session")
	}
	if _, err := cc2.call(t, rpcproto.MethodRPCList, nil); err != nil {
		t.Fatalf("rpc.list on the new session: %v", err)
	}
	eventually(t, "the bridge is accepted again", func() bool { return b.Status() == bridge.StatusAccepted })
	if n := cloud.dials.Load(); n != 3 {
		t.Errorf("%d dials, want 3", n)
	}
}

// TestBusy: with MaxConcurrent requests in flight, more are answered at
// once with CodeBusy and reach no worker; once the slots free up the same
// session serves again.
func TestBusy(t *testing.T) {
	const limit, extra = 2, 8
	cloud := newTestCloud(t)
	dir := t.TempDir()
	startBridge(t, cloud, dir, func(o *bridge.Options) {
		o.MaxConcurrent = limit
		o.WorkerTimeout = 10 * time.Second
	})
	tw := startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitListed(t, cc, "test.slow")

	// Fill the slots one at a time. The slot of the last rpc.list may not
	// be free yet, so a call refused as busy is tried again.
	var slow []chan error
	for attempt := 0; len(slow) < limit; attempt++ {
		if attempt == 100 {
			t.Fatalf("only %d of %d slow calls started", len(slow), limit)
		}
		res := make(chan error, 1)
		go func() {
			_, err := cc.sess.CallRaw(context.Background(), "test.slow", nil)
			res <- err
		}()
		timer := time.NewTimer(15 * time.Second)
		select {
		case <-tw.slowStarted:
			slow = append(slow, res)
		case err := <-res:
			if rpcCode(err) != rpcproto.CodeBusy {
				t.Fatalf("slow call: %v", err)
			}
		case <-timer.C:
			t.Fatal("slow call neither started nor was refused")
		}
		timer.Stop()
	}

	var wg sync.WaitGroup
	errs := make([]error, extra)
	for i := range extra {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, errs[i] = cc.sess.CallRaw(ctx, "test.count", nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		var re *jsonrpc.Error
		if !errors.As(err, &re) || re.Code != rpcproto.CodeBusy {
			t.Errorf("excess call %d: %v, want code %d", i, err, rpcproto.CodeBusy)
			continue
		}
		if string(re.Data) != fmt.Sprintf(`{"max_concurrent":%d}`, limit) {
			t.Errorf("excess call %d: data %s", i, re.Data)
		}
	}
	if n := tw.count.Load(); n != 0 {
		t.Errorf("worker counted %d calls refused as busy", n)
	}

	tw.release()
	for _, res := range slow {
		if err := <-res; err != nil { // bounded: WorkerTimeout
			t.Errorf("slow call: %v", err)
		}
	}
	var got int64
	eventually(t, "a call is served again", func() bool {
		res, err := cc.call(t, "test.count", nil)
		if rpcCode(err) == rpcproto.CodeBusy {
			return false // a slot is freed just after its reply is queued
		}
		if err != nil {
			t.Fatalf("call after the slow ones: %v", err)
		}
		got = countOf(t, res)
		return true
	})
	if got != 1 {
		t.Errorf("count %d, want 1", got)
	}
	select {
	case <-cc.done:
		t.Errorf("the session ended: %v", cc.err)
	default:
	}
	if n := cloud.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1", n)
	}
}

// TestManyCallsInARow: one session carries far more cloud → device calls
// than v1's replay cache held (16,384 nonces in 4 minutes), at full speed,
// through the bridge to a real worker, without one failure: the replay
// window costs a fixed few hundred bytes, whatever the rate. BOSUN_SOAK=1
// makes it 100,000 calls.
func TestManyCallsInARow(t *testing.T) {
	// 20,000 passes v1's cap of 16,384; under the race detector, which
	// makes each signature several times slower, 3,000 keep test.sh
	// short (pkg/session and e2e run past the cap there too).
	n := 20_000
	if raceEnabled {
		n = 3_000
	}
	if os.Getenv("BOSUN_SOAK") == "1" {
		n = 100_000
	}
	// In flight at once: below the bridge's MaxConcurrent (64 by default),
	// so no call is refused as busy.
	const inFlight = 32
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitListed(t, cc, "test.count")
	b.level.Set(slog.LevelInfo) // a debug line per call costs more than the call

	seen := make([]atomic.Bool, n+1) // seen[c]: a call got count c
	var (
		next     atomic.Int64
		failures atomic.Int64
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		if failures.Add(1) == 1 {
			errMu.Lock()
			firstErr = err
			errMu.Unlock()
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := cc.sess.CallRaw(ctx, "test.count", nil)
				cancel()
				if err != nil {
					fail(err)
					continue
				}
				var v struct {
					Count int64 `json:"count"`
				}
				if err := json.Unmarshal(res, &v); err != nil || v.Count < 1 || v.Count > int64(n) || seen[v.Count].Swap(true) {
					fail(fmt.Errorf("result %s: not a new count in 1..%d (%v)", res, n, err))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d calls in %v: %.0f calls/s (%d in flight, race detector %v)",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), inFlight, raceEnabled)
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d of %d calls failed; first: %v", f, n, firstErr)
	}
	if c := tw.count.Load(); c != int64(n) {
		t.Errorf("worker counted %d calls, want %d", c, n)
	}
	if r := b.Rejected(); len(r) != 0 {
		t.Errorf("bridge rejected %v", r)
	}
	if d := cloud.dials.Load(); d != 1 {
		t.Errorf("%d dials, want 1: every call on one session", d)
	}
}
