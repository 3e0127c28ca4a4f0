package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

func TestHandshakeAccepted(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir, func(o *bridge.Options) {
		o.Attributes = map[string]string{"serial": "S-1"}
	})
	cc := cloud.nextConn(t)
	if cc.deviceID != testDeviceID {
		t.Errorf("registered device %q, want %q", cc.deviceID, testDeviceID)
	}
	rep := cloud.nextReport(t)
	if rep.Arch == "" || rep.Hostname == "" || rep.Versions["bridge"] == "" {
		t.Errorf("state.report lacks inventory: %+v", rep)
	}
	eventually(t, "the bridge is accepted", func() bool { return b.Status() == bridge.StatusAccepted })

	// Files the bridge keeps in the data dir.
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{
		{datadir.KeyFile, 0o600},
		{datadir.NATSTokenFile, 0o600},
		{datadir.NATSURLFile, 0},
		{datadir.PublicKeyFile, 0},
	} {
		st, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Errorf("data dir: %v", err)
			continue
		}
		if f.mode != 0 && st.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %v, want %v", f.name, st.Mode().Perm(), f.mode)
		}
	}
	eventually(t, "state.json is written", func() bool {
		s, err := datadir.ReadState(dir)
		return err == nil && s.DeviceID == testDeviceID && s.Report.Attributes["serial"] == "S-1"
	})
	// The key registered is the one in the data dir.
	k, err := keys.LoadPrivate(filepath.Join(dir, datadir.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fp, _ := keys.Fingerprint(k.Public()); fp != b.Fingerprint() {
		t.Errorf("fingerprint %s, key in data dir %s", b.Fingerprint(), fp)
	}
	if fp, _ := keys.Fingerprint(cc.devKey); fp != b.Fingerprint() {
		t.Errorf("cloud got key %s, want %s", fp, b.Fingerprint())
	}
}

func TestHandshakePendingThenAccepted(t *testing.T) {
	cloud := newTestCloud(t)
	cloud.regStatus.Store(rpcproto.StatusPending)
	b := startBridge(t, cloud, t.TempDir())
	cc := cloud.nextConn(t)
	eventually(t, "the bridge is pending", func() bool { return b.Status() == bridge.StatusPending })
	select {
	case r := <-cloud.reports:
		t.Fatalf("state.report while pending: %+v", r)
	default:
	}
	cc.notify(t, rpcproto.MethodAuthAccepted, rpcproto.AuthAcceptedParams{Fingerprint: b.Fingerprint()})
	cloud.nextReport(t)
	eventually(t, "the bridge is accepted", func() bool { return b.Status() == bridge.StatusAccepted })
	if n := cloud.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1 (pending stays connected)", n)
	}
}

func TestHandshakeRejected(t *testing.T) {
	tests := []struct {
		name   string
		status string
	}{
		{"result rejected", rpcproto.StatusRejected},
		{"close code 4003", "close4003"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cloud := newTestCloud(t)
			cloud.regStatus.Store(tt.status)
			b := startBridge(t, cloud, t.TempDir(), func(o *bridge.Options) {
				o.RejectedRetry = time.Hour
			})
			eventually(t, "the bridge is rejected", func() bool { return b.Status() == bridge.StatusRejected })
			if n := cloud.dials.Load(); n != 1 {
				t.Errorf("%d dials, want 1 (RejectedRetry after a rejection)", n)
			}
		})
	}
}

// TestRejectedRetriesAtAFixedInterval: while the cloud rejects the key
// the bridge reconnects every RejectedRetry, each wait in [R/2, R]: never
// faster, and never growing (it used to back off to an hour); once the
// cloud accepts the key again the bridge is accepted within R (and one
// handshake).
func TestRejectedRetriesAtAFixedInterval(t *testing.T) {
	const retry = 300 * time.Millisecond
	const slack = 250 * time.Millisecond // a handshake under the race detector
	for _, status := range []string{rpcproto.StatusRejected, "close4003"} {
		t.Run(status, func(t *testing.T) {
			cloud := newTestCloud(t)
			cloud.regStatus.Store(status)
			b := startBridge(t, cloud, t.TempDir(), func(o *bridge.Options) { o.RejectedRetry = retry })
			eventually(t, "the bridge is rejected", func() bool { return b.Status() == bridge.StatusRejected })
			eventually(t, "six rejected dials", func() bool { return cloud.dials.Load() >= 6 })
			at := cloud.dialTimes()
			for i := 1; i < 6; i++ {
				if gap := at[i].Sub(at[i-1]); gap < retry/2 || gap > retry+slack {
					t.Errorf("dial %d came %v after the one before, want %v to %v", i+1, gap, retry/2, retry+slack)
				}
			}
			cloud.regStatus.Store(rpcproto.StatusAccepted)
			accepted := time.Now()
			eventually(t, "the bridge is accepted", func() bool { return b.Status() == bridge.StatusAccepted })
			if d := time.Since(accepted); d > retry+slack {
				t.Errorf("accepted %v after the cloud accepted the key, want at most %v", d, retry+slack)
			}
		})
	}
}

// TestChallengeNotFromPinnedKey: a challenge signed by any key but the
// pinned one ends the connection before the device registers.
func TestChallengeNotFromPinnedKey(t *testing.T) {
	cloud := newTestCloud(t)
	other, _ := keys.Generate(keys.AlgEd25519, 0)
	s, _ := envelope.NewSealer(testCloudID, other)
	cloud.challenger.Store(s)
	b := startBridge(t, cloud, t.TempDir())
	// The device closes each such connection with 4002 and its reason.
	for range 2 {
		r := cloud.nextRefusal(t)
		var ce websocket.CloseError
		if !errors.As(r.err, &ce) || ce.Code != rpcproto.CloseProtocolViolation || ce.Reason != "handshake failed: bad_signature" {
			t.Fatalf("device ended the handshake with %v, want close 4002 \"handshake failed: bad_signature\"", r.err)
		}
	}
	eventually(t, "the challenge is rejected twice", func() bool { return b.Rejected()["bad_signature"] >= 2 })
	select {
	case cc := <-cloud.conns:
		t.Fatalf("device registered after a forged challenge: %v", cc)
	default:
	}
	if !contains(b.logs.String(), "reason=bad_signature") {
		t.Errorf("rejection not logged with its reason")
	}
}

func TestCallThroughBridgeToWorker(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc := cloud.nextConn(t)
	eventually(t, "the worker is listed", func() bool {
		res, err := cc.call(t, rpcproto.MethodRPCList, nil)
		return err == nil && contains(string(res), "test.count")
	})

	tests := []struct {
		name     string
		method   string
		params   any
		want     string
		wantCode int
	}{
		{"typed result", "test.echo2", map[string]string{"say": "hi"}, `{"say":"hi"}`, 0},
		{"worker error passes through", "test.fail", nil, "", -32042},
		{"strict params", "test.echo2", map[string]string{"nope": "x"}, "", jsonrpc.CodeInvalidParams},
		{"no responder", "nobody.serves.this", nil, "", jsonrpc.CodeMethodNotFound},
		{"invalid method name", "bad method", nil, "", jsonrpc.CodeMethodNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := cc.call(t, tt.method, tt.params)
			if got := rpcCode(err); got != tt.wantCode {
				t.Fatalf("error %v (code %d), want code %d", err, got, tt.wantCode)
			}
			if tt.want != "" && string(res) != tt.want {
				t.Errorf("result %s, want %s", res, tt.want)
			}
		})
	}
	if _, err := cc.call(t, "test.count", nil); err != nil {
		t.Fatal(err)
	}
	if n := tw.count.Load(); n != 1 {
		t.Errorf("worker counted %d calls, want 1", n)
	}
}

func TestWorkerTimeout(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	startBridge(t, cloud, dir, func(o *bridge.Options) { o.WorkerTimeout = 200 * time.Millisecond })
	startWorker(t, dir)
	cc := cloud.nextConn(t)
	eventually(t, "the worker is listed", func() bool {
		res, err := cc.call(t, rpcproto.MethodRPCList, nil)
		return err == nil && contains(string(res), "test.slow")
	})
	_, err := cc.call(t, "test.slow", nil)
	if rpcCode(err) != rpcproto.CodeWorkerTimeout {
		t.Fatalf("got %v, want code %d", err, rpcproto.CodeWorkerTimeout)
	}
	if !contains(err.Error(), "test.slow") {
		t.Errorf("timeout message %q does not name the method", err)
	}
}

func TestRPCList(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	startBridge(t, cloud, dir)
	startWorker(t, dir)
	cc := cloud.nextConn(t)
	var list rpcproto.RPCListResult
	eventually(t, "the worker is listed", func() bool {
		res, err := cc.call(t, rpcproto.MethodRPCList, nil)
		list = rpcproto.RPCListResult{}
		return err == nil && json.Unmarshal(res, &list) == nil && len(list.Methods) == 5
	})
	want := []rpcproto.MethodInfo{
		{Name: "rpc.list", Description: "List the methods this device serves", Worker: "bridge"},
		{Name: "test.count", Description: "Count calls", Worker: "tester"},
		{Name: "test.echo2", Description: "Echo say", Worker: "tester"},
		{Name: "test.fail", Description: "Fail with a code", Worker: "tester"},
		{Name: "test.slow", Description: "Never answer in time", Worker: "tester"},
	}
	if !slices.Equal(list.Methods, want) {
		t.Errorf("rpc.list = %+v\nwant %+v", list.Methods, want)
	}
	// The state report lists the worker too (sent again once it announced).
	eventually(t, "state.report lists the worker", func() bool {
		select {
		case r := <-cloud.reports:
			return slices.Contains(r.Workers, "tester")
		default:
			return false
		}
	})
}

func TestRPCListAfterBridgeRestart(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	// A fixed port, so the worker's connection comes back to the new bridge.
	port := freePort(t)
	listen := func(o *bridge.Options) { o.NATSListen = fmt.Sprintf("127.0.0.1:%d", port) }
	b1 := startBridge(t, cloud, dir, listen)
	startWorker(t, dir)
	cc := cloud.nextConn(t)
	eventually(t, "the worker is listed", func() bool {
		res, err := cc.call(t, rpcproto.MethodRPCList, nil)
		return err == nil && contains(string(res), "test.count")
	})
	b1.stop()
	startBridge(t, cloud, dir, listen)
	cc = cloud.nextConn(t)
	eventually(t, "the worker is listed by the new bridge", func() bool {
		res, err := cc.call(t, rpcproto.MethodRPCList, nil)
		return err == nil && contains(string(res), "test.count")
	})
}

func TestDeviceToCloudCall(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cloud.nextConn(t)
	eventually(t, "the bridge is accepted", func() bool { return b.Status() == bridge.StatusAccepted })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got map[string]int
	if err := tw.w.Call(ctx, "test.echo", map[string]int{"x": 1}, &got); err != nil {
		t.Fatal(err)
	}
	if got["x"] != 1 {
		t.Errorf("echo = %v", got)
	}
	err := tw.w.Call(ctx, "cloud.nobody", nil, nil)
	if rpcCode(err) != jsonrpc.CodeMethodNotFound {
		t.Errorf("unknown cloud method: %v", err)
	}
}

func TestDeviceToCloudOffline(t *testing.T) {
	cloud := newTestCloud(t)
	cloud.refuse.Store(true)
	dir := t.TempDir()
	startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := tw.w.Call(ctx, "test.echo", map[string]int{"x": 1}, nil)
	if rpcCode(err) != rpcproto.CodeDeviceOffline {
		t.Fatalf("got %v, want code %d", err, rpcproto.CodeDeviceOffline)
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir)
	tw := startWorker(t, dir)
	cc1 := cloud.nextConn(t)
	cloud.nextReport(t)
	cc1.drop()
	cc2 := cloud.nextConn(t)
	if cc2.session == cc1.session {
		t.Fatal("new connection reuses the session")
	}
	cloud.nextReport(t) // state.report again on every connect
	eventually(t, "the bridge is accepted again", func() bool { return b.Status() == bridge.StatusAccepted })
	eventually(t, "calls work again", func() bool {
		_, err := cc2.call(t, "test.count", nil)
		return err == nil
	})
	if tw.count.Load() == 0 {
		t.Error("worker saw no call")
	}
}

// TestOutboxSurvivesReconnectAndRestart: ota.status reports queued while the
// cloud is unreachable, across a bridge restart and a connection lost before
// the cloud's answer, all arrive, in order, and leave the outbox.
func TestOutboxSurvivesReconnectAndRestart(t *testing.T) {
	cloud := newTestCloud(t)
	cloud.refuse.Store(true)
	dir := t.TempDir()
	enqueue := func(b *testBridge, n int) {
		t.Helper()
		nc, err := worker.Connect(worker.ConnectOptions{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var res struct {
			Queued bool `json:"queued"`
		}
		if err := worker.Call(ctx, nc, rpcproto.MethodOTAStatus, map[string]int{"seq": n}, &res); err != nil {
			t.Fatal(err)
		}
		if !res.Queued {
			t.Fatalf("report %d not queued", n)
		}
	}
	b1 := startBridge(t, cloud, dir)
	enqueue(b1, 1)
	enqueue(b1, 2)
	if n := b1.OutboxLen(); n != 2 {
		t.Fatalf("outbox holds %d, want 2", n)
	}
	b1.stop() // restart the bridge with the reports still queued

	b2 := startBridge(t, cloud, dir)
	if n := b2.OutboxLen(); n != 2 {
		t.Fatalf("outbox after restart holds %d, want 2", n)
	}
	enqueue(b2, 3)
	// The first delivery reaches the cloud but the connection drops before
	// the answer: the report must be sent again after the reconnect.
	cloud.dropOnOTA.Store(1)
	cloud.refuse.Store(false)
	cloud.nextConn(t)
	cloud.nextConn(t) // the reconnect after the drop
	eventually(t, "the outbox is empty", func() bool { return b2.OutboxLen() == 0 })

	var seqs []int
	for _, p := range cloud.ota() {
		var v struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, v.Seq)
	}
	// Report 1 arrives twice (at least once delivery), then 2 and 3.
	if want := []int{1, 1, 2, 3}; !slices.Equal(seqs, want) {
		t.Errorf("cloud received reports %v, want %v", seqs, want)
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := netListen()
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
