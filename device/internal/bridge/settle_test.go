package bridge_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

// The first state.report of a session is the device saying which methods
// it serves: the cloud sends queued calls only after it, and only those it
// lists (issue 9, item 1). So the bridge asks its workers to announce and
// reports once they have settled.

// announcer is a worker on the device's NATS, spoken to by hand: on every
// bosun.workers.discover it announces method after delay, and with every
// > 0 it also announces on its own that often.
func announcer(t *testing.T, dir, method string, delay, every time.Duration) {
	t.Helper()
	nc, err := worker.Connect(worker.ConnectOptions{DataDir: dir, Name: "announcer"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	msg, _ := json.Marshal(rpcproto.WorkerAnnounce{Worker: "announcer",
		Methods: []rpcproto.MethodInfo{{Name: method, Description: "announced by hand"}}})
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	discover := make(chan struct{}, 8)
	if _, err := nc.Subscribe(rpcproto.SubjectDiscover, func(*nats.Msg) { discover <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		var tick <-chan time.Time
		if every > 0 {
			tk := time.NewTicker(every)
			defer tk.Stop()
			tick = tk.C
		}
		var later <-chan time.Time
		for {
			select {
			case <-stop:
				return
			case <-discover:
				later = time.After(delay) // a worker slow to answer
			case <-later:
				nc.Publish(rpcproto.SubjectAnnounce, msg)
			case <-tick:
				nc.Publish(rpcproto.SubjectAnnounce, msg)
			}
		}
	}()
}

func listed(r rpcproto.StateReportParams, method string) bool {
	return slices.ContainsFunc(r.Methods, func(m rpcproto.MethodInfo) bool { return m.Name == method })
}

// acceptAndReport lets the pending bridge in and returns its first report
// and how long after the acceptance it came.
func acceptAndReport(t *testing.T, cloud *testCloud, cc *cloudConn, b *testBridge) (rpcproto.StateReportParams, time.Duration) {
	t.Helper()
	select {
	case r := <-cloud.reports:
		t.Fatalf("state.report while pending: %+v", r)
	default:
	}
	at := time.Now()
	cc.notify(t, rpcproto.MethodAuthAccepted, rpcproto.AuthAcceptedParams{Fingerprint: b.Fingerprint()})
	r := cloud.nextReport(t)
	return r, time.Since(at)
}

// TestFirstReportWaitsForWorkers: a worker that answers the bridge's
// discover late (but within the quiet period) is in the first report.
func TestFirstReportWaitsForWorkers(t *testing.T) {
	const quiet = 600 * time.Millisecond
	cloud := newTestCloud(t)
	cloud.regStatus.Store(rpcproto.StatusPending)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir, func(o *bridge.Options) { o.SettleQuiet, o.SettleMax = quiet, 5*time.Second })
	cc := cloud.nextConn(t)
	announcer(t, dir, "late.hello", 300*time.Millisecond, 0)
	r, took := acceptAndReport(t, cloud, cc, b)
	if !listed(r, "late.hello") || !listed(r, rpcproto.MethodRPCList) || !slices.Contains(r.Workers, "announcer") {
		t.Fatalf("first report %+v lacks the late worker", r)
	}
	if took < 300*time.Millisecond+quiet || took > 5*time.Second {
		t.Fatalf("first report %v after acceptance, want the worker's 300ms plus the quiet %v, within the 5s bound", took, quiet)
	}
}

// TestFirstReportWithoutWorkers: with no worker, the first report comes
// after the quiet period, not before, and lists the bridge's own method.
func TestFirstReportWithoutWorkers(t *testing.T) {
	const quiet = 400 * time.Millisecond
	cloud := newTestCloud(t)
	cloud.regStatus.Store(rpcproto.StatusPending)
	b := startBridge(t, cloud, t.TempDir(), func(o *bridge.Options) { o.SettleQuiet, o.SettleMax = quiet, 5*time.Second })
	cc := cloud.nextConn(t)
	r, took := acceptAndReport(t, cloud, cc, b)
	if took < quiet || took > quiet+2*time.Second {
		t.Fatalf("first report %v after acceptance, want just after the quiet %v", took, quiet)
	}
	if len(r.Methods) != 1 || !listed(r, rpcproto.MethodRPCList) {
		t.Fatalf("first report lists %+v, want rpc.list alone", r.Methods)
	}
}

// TestFirstReportBounded: a worker that never stops announcing cannot hold
// the first report back longer than SettleMax.
func TestFirstReportBounded(t *testing.T) {
	const max = time.Second
	cloud := newTestCloud(t)
	cloud.regStatus.Store(rpcproto.StatusPending)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir, func(o *bridge.Options) { o.SettleQuiet, o.SettleMax = 300*time.Millisecond, max })
	cc := cloud.nextConn(t)
	announcer(t, dir, "chatty.hello", 0, 50*time.Millisecond)
	r, took := acceptAndReport(t, cloud, cc, b)
	if took < max || took > max+2*time.Second {
		t.Fatalf("first report %v after acceptance, want at the %v bound", took, max)
	}
	if !listed(r, "chatty.hello") {
		t.Fatalf("first report %+v lacks the chatty worker", r)
	}
}
