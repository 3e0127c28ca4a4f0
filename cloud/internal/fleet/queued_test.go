package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// These tests are item 1 of issue 9: calls queued with a ttl while dev-1
// was offline were sent 2 ms after its new session was accepted, before its
// worker announced itself, and ended -32601 for good. A queued call now
// waits for the device's state.report to list its method.

// reportWait sets the hub's wait for a first state.report.
func reportWait(d time.Duration) cloudtest.Option {
	return cloudtest.WithHub(func(o *hub.Options) { o.ReportWait = d })
}

// offlineDevice registers and accepts a device, then takes it offline; it
// returns its key, to come back with.
func offlineDevice(t *testing.T, s *cloudtest.Server, id string) cloudtest.DeviceOptions {
	t.Helper()
	d := acceptDevice(t, s, id)
	d.Close()
	waitOffline(t, s, id)
	return cloudtest.DeviceOptions{Key: d.Key}
}

func queueCall(t *testing.T, s *cloudtest.Server, id, method, params string, ttl time.Duration) fleet.Call {
	t.Helper()
	var p json.RawMessage
	if params != "" {
		p = json.RawMessage(params)
	}
	c, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: id, Method: method, Params: p, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getCall(t *testing.T, s *cloudtest.Server, id string) fleet.Call {
	t.Helper()
	c, err := s.Service().GetCall(context.Background(), s.Super, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitStatus(t *testing.T, s *cloudtest.Server, c fleet.Call, status string, within time.Duration) fleet.Call {
	t.Helper()
	cloudtest.Eventually(t, within, func() bool { return getCall(t, s, c.ID).Status == status },
		"call %s (%s) %s; it is %s", c.ID, c.Method, status, getCall(t, s, c.ID).Status)
	return getCall(t, s, c.ID)
}

// errData decodes the data of a JSON-RPC error.
func errData(t *testing.T, e *jsonrpc.Error) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if e == nil || json.Unmarshal(e.Data, &m) != nil {
		t.Fatalf("error %+v has no data object", e)
	}
	return m
}

// TestQueuedCallsWaitForTheReport: calls queued while the device was away
// are not sent when it comes back, but once it reports (a second later)
// that it serves their method; then all of them, in order.
func TestQueuedCallsWaitForTheReport(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	back := offlineDevice(t, s, "dev-w")
	calls := queue(t, s, "dev-w", 3, time.Hour)
	var rec recorder
	back.Dispatcher, back.Sequential = rec.dispatcher(), true
	d := cloudtest.MustConnect(t, s, "dev-w", back)
	// The device's workers take a second to come up (the scenario, not a
	// synchronisation): nothing may be sent to it meanwhile.
	time.Sleep(time.Second)
	for _, c := range calls {
		if got := getCall(t, s, c.ID); got.Status != "queued" || got.SentAt != nil {
			t.Fatalf("call sent before the device reported: %+v", got)
		}
	}
	if got := rec.list(); len(got) != 0 {
		t.Fatalf("the device was sent %v before it reported", got)
	}
	if err := d.ReportMethods(ctxT(t), "rpc.list", "test.record"); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, s, calls, &rec)
}

// TestQueuedCallsOnlyForListedMethods: only calls of listed methods are
// sent, in queued order, and a call of a method not listed yet does not
// hold them up; it waits, saying why, until a later report lists it.
func TestQueuedCallsOnlyForListedMethods(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	back := offlineDevice(t, s, "dev-l")
	later := queueCall(t, s, "dev-l", "test.later", `{"x":1}`, time.Hour)
	calls := queue(t, s, "dev-l", 2, time.Hour)
	var rec recorder
	back.Dispatcher, back.Sequential = rec.dispatcher(), true
	d := cloudtest.MustConnect(t, s, "dev-l", back)
	if err := d.ReportMethods(ctxT(t), "test.record"); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, s, calls, &rec)
	got := getCall(t, s, later.ID)
	if got.Status != "queued" || got.SentAt != nil || got.Error == nil || got.Error.Code != jsonrpc.CodeMethodNotFound {
		t.Fatalf("call of an unlisted method = %+v (error %+v), want queued with -32601 as its last error", got, got.Error)
	}
	if data := errData(t, got.Error); string(data["method"]) != `"test.later"` || !strings.Contains(string(data["detail"]), "does not list") {
		t.Fatalf("last error of a waiting call says %s", got.Error.Data)
	}
	// A report that lists it: sent now.
	d.Handle("test.later", func(ctx context.Context, p json.RawMessage) (any, error) { return "late", nil })
	if err := d.ReportMethods(ctxT(t), "test.record", "test.later"); err != nil {
		t.Fatal(err)
	}
	got = waitStatus(t, s, later, "succeeded", 10*time.Second)
	if string(got.Result) != `"late"` || got.Error != nil {
		t.Fatalf("call after its method was listed = %+v", got)
	}
}

// TestQueuedCallNeverServedExpires: a call whose method the device never
// lists ends expired at its ttl, saying that the device never served it.
func TestQueuedCallNeverServedExpires(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	back := offlineDevice(t, s, "dev-n")
	c := queueCall(t, s, "dev-n", "test.never", "", 2*time.Second)
	d := cloudtest.MustConnect(t, s, "dev-n", back)
	if err := d.ReportMethods(ctxT(t), "test.other"); err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, s, c, "expired", 10*time.Second)
	if got.Error == nil || got.Error.Code != rpcproto.CodeExpired || got.SentAt != nil ||
		got.Error.Message != "expired: the device never served test.never before the ttl passed" {
		t.Fatalf("expired call = %+v, error %+v", got, got.Error)
	}
	data := errData(t, got.Error)
	var last jsonrpc.Error
	if json.Unmarshal(data["last_error"], &last) != nil || last.Code != jsonrpc.CodeMethodNotFound || string(data["method"]) != `"test.never"` {
		t.Fatalf("expired call's data = %s", got.Error.Data)
	}
	// A call that never met its device expires plainly, as before.
	offlineDevice(t, s, "dev-gone")
	plain := queueCall(t, s, "dev-gone", "test.x", "", 500*time.Millisecond)
	if got := waitStatus(t, s, plain, "expired", 10*time.Second); got.Error == nil || got.Error.Message != "expired" || got.Error.Data != nil {
		t.Fatalf("a call that never reached its device expired with %+v", got.Error)
	}
}

// notFoundUntil serves method with -32601 (as a device whose worker is not
// up yet answers) until ready is set, then with "ok"; it counts the calls.
func notFoundUntil(d *cloudtest.Device, method string, ready *atomic.Bool, n *atomic.Int64) {
	d.Handle(method, func(ctx context.Context, _ json.RawMessage) (any, error) {
		n.Add(1)
		if !ready.Load() {
			return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "Method not found", map[string]string{"method": method})
		}
		return "ok", nil
	})
}

// TestQueuedCallNotFoundIsRetried: a persistent call the device answers
// -32601 within its ttl is not final: it goes back to the queue, is not
// sent again until the device reports again, and then succeeds.
func TestQueuedCallNotFoundIsRetried(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	ctx := ctxT(t)
	back := offlineDevice(t, s, "dev-r")
	c := queueCall(t, s, "dev-r", "test.slowstart", "", time.Hour)
	d := cloudtest.MustConnect(t, s, "dev-r", back)
	var ready atomic.Bool
	var n atomic.Int64
	notFoundUntil(d, "test.slowstart", &ready, &n)
	// The device lists the method before its worker can serve it.
	if err := d.ReportMethods(ctx, "test.slowstart"); err != nil {
		t.Fatal(err)
	}
	// (30s: a bound for a loaded CI machine, not a timing; the state says
	// where it stood if it is not met.)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		seen := getCall(t, s, c.ID)
		if n.Load() == 1 && seen.Status == "queued" && seen.Error != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: call answered -32601 and queued again; %d calls, status %s, error %+v", n.Load(), seen.Status, seen.Error)
		}
	}
	got := getCall(t, s, c.ID)
	if got.Error.Code != jsonrpc.CodeMethodNotFound || got.SentAt != nil || got.DeliveredAt != nil || got.FinishedAt != nil {
		t.Fatalf("requeued call = %+v, error %+v", got, got.Error)
	}
	// Not sent again by itself: the device has not said anything new. A
	// synchronous call in between is answered, so the session works.
	if c2, err := s.Service().Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-r", Method: "test.slowstart"}); err != nil ||
		c2.Status != "failed" || c2.Error == nil || c2.Error.Code != jsonrpc.CodeMethodNotFound {
		t.Fatalf("synchronous -32601 = %+v, %v; want failed for good", c2, err)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("the method was called %d times, want 2 (the queued call once, the synchronous one once)", got)
	}
	ready.Store(true)
	if err := d.ReportMethods(ctx, "test.slowstart"); err != nil {
		t.Fatal(err)
	}
	got = waitStatus(t, s, c, "succeeded", 10*time.Second)
	if string(got.Result) != `"ok"` || got.Error != nil || n.Load() != 3 {
		t.Fatalf("retried call = %+v after %d calls", got, n.Load())
	}
}

// TestQueuedCallNotFoundAfterTTL: a -32601 that arrives after the ttl ends
// the call expired, with that answer as the last error.
func TestQueuedCallNotFoundAfterTTL(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	back := offlineDevice(t, s, "dev-t")
	c := queueCall(t, s, "dev-t", "test.hold", "", 1500*time.Millisecond)
	d := cloudtest.MustConnect(t, s, "dev-t", back)
	ttlPassed := make(chan struct{})
	d.Handle("test.hold", func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ttlPassed
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "Method not found", nil)
	})
	if err := d.ReportMethods(ctxT(t), "test.hold"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, c, "delivered", 10*time.Second)
	<-time.After(time.Until(c.ExpiresAt.Add(100 * time.Millisecond))) // the scenario: answer after the ttl
	close(ttlPassed)
	got := waitStatus(t, s, c, "expired", 10*time.Second)
	if got.Error == nil || got.Error.Code != rpcproto.CodeExpired || !strings.Contains(got.Error.Message, "never served test.hold") {
		t.Fatalf("call answered -32601 after its ttl = %+v, error %+v", got, got.Error)
	}
	if data := errData(t, got.Error); !strings.Contains(string(data["last_error"]), "-32601") {
		t.Fatalf("expired call's data = %s", got.Error.Data)
	}
}

// TestQueuedCallToOnlineDeviceWithoutTheMethod: a call with a ttl to an
// online device that does not list the method is queued at once, saying
// why, rather than waiting for an answer that cannot come.
func TestQueuedCallToOnlineDeviceWithoutTheMethod(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	d := acceptDevice(t, s, "dev-o")
	if err := d.ReportMethods(ctxT(t), "test.record"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c := queueCall(t, s, "dev-o", "test.missing", "", time.Hour)
	if el := time.Since(start); c.Status != "queued" || c.Error == nil || c.Error.Code != jsonrpc.CodeMethodNotFound || el > 5*time.Second {
		t.Fatalf("call = %+v (error %+v) after %v; want queued at once with -32601 as its last error", c, c.Error, el)
	}
	d.Handle("test.missing", func(ctx context.Context, _ json.RawMessage) (any, error) { return 1, nil })
	if err := d.ReportMethods(ctxT(t), "test.record", "test.missing"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, c, "succeeded", 10*time.Second)
}

// TestQueuedCallsWithoutAReport: a device that never sends state.report
// gets its queued calls after ReportWait, not before, whatever their
// method.
func TestQueuedCallsWithoutAReport(t *testing.T) {
	const wait = 1500 * time.Millisecond
	s := cloudtest.NewServer(t, reportWait(wait))
	back := offlineDevice(t, s, "dev-nr")
	calls := queue(t, s, "dev-nr", 2, time.Hour)
	var rec recorder
	back.Dispatcher, back.Sequential = rec.dispatcher(), true
	connected := time.Now()
	cloudtest.MustConnect(t, s, "dev-nr", back)
	checkDelivered(t, s, calls, &rec)
	for _, c := range calls {
		got := getCall(t, s, c.ID)
		if early := got.SentAt.Sub(connected); early < wait {
			t.Fatalf("call sent %v after the device connected, before the %v wait for a report ended", early, wait)
		}
	}
}

// TestSynchronousCallsAreNotHeld: without a ttl nothing changes: a call is
// sent at once, report or not.
func TestSynchronousCallsAreNotHeld(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(time.Minute))
	var rec recorder
	d := cloudtest.MustConnect(t, s, "dev-s", cloudtest.DeviceOptions{Dispatcher: rec.dispatcher()})
	s.Service().Accept(ctxT(t), s.Super, "dev-s")
	<-d.Accepted()
	c, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: "dev-s", Method: "test.record", Params: json.RawMessage(`{"n":"s"}`)})
	if err != nil || c.Status != "succeeded" || string(c.Result) != `"s"` {
		t.Fatalf("synchronous call before any report = %+v, %v", c, err)
	}
}

// TestQueuedCallWaitingSurvivesRestart: a call waiting for its method is
// still queued after a cloud restart, and delivered once a session of the
// restarted cloud hears the method listed.
func TestQueuedCallWaitingSurvivesRestart(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	back := offlineDevice(t, s, "dev-rr")
	c := queueCall(t, s, "dev-rr", "test.record", `{"n":"r"}`, time.Hour)
	d := cloudtest.MustConnect(t, s, "dev-rr", back)
	if err := d.ReportMethods(ctxT(t), "rpc.list"); err != nil {
		t.Fatal(err)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool { return getCall(t, s, c.ID).Error != nil }, "call waiting for its method")
	d.Close()
	s.Stop()
	s2 := cloudtest.NewServer(t, cloudtest.WithDatabase(s.DatabaseURL), cloudtest.WithKey(s.Key), reportWait(10*time.Second))
	if got := getCall(t, s2, c.ID); got.Status != "queued" {
		t.Fatalf("after the restart the call is %+v", got)
	}
	var rec recorder
	back.Dispatcher = rec.dispatcher()
	d2 := cloudtest.MustConnect(t, s2, "dev-rr", back)
	if err := d2.ReportMethods(ctxT(t), "rpc.list", "test.record"); err != nil {
		t.Fatal(err)
	}
	if got := waitStatus(t, s2, c, "succeeded", 10*time.Second); string(got.Result) != `"r"` {
		t.Fatalf("call after the restart = %+v", got)
	}
	if fmt.Sprint(rec.list()) != "[r]" {
		t.Fatalf("delivered %v, want [r] once", rec.list())
	}
}

// TestQueuedCallToPreauthorizedDevice: a preauthorized device is accepted
// before it first connects, so a call with a ttl waits for it in the queue
// (it used to fail at once with -32002 not accepted) and reaches it when it
// connects and reports; a call without a ttl fails offline, as for any
// accepted device that is away.
func TestQueuedCallToPreauthorizedDevice(t *testing.T) {
	s := cloudtest.NewServer(t, reportWait(10*time.Second))
	key := cloudtest.NewKey()
	der, err := keys.PublicDER(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Service().Preauthorize(ctxT(t), s.Super, "dev-pre", der); err != nil {
		t.Fatal(err)
	}
	sync, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: "dev-pre", Method: "test.record"})
	if err != nil {
		t.Fatal(err)
	}
	if sync.Status != "failed" || sync.Error == nil || sync.Error.Code != rpcproto.CodeDeviceOffline {
		t.Fatalf("call without ttl to a preauthorized device never seen: %+v %+v, want failed -32000", sync, sync.Error)
	}
	calls := queue(t, s, "dev-pre", 2, time.Hour)
	for _, c := range calls {
		if c.Status != "queued" {
			t.Fatalf("call with ttl to a preauthorized device: %+v %+v, want queued", c, c.Error)
		}
	}
	var rec recorder
	d := cloudtest.MustConnect(t, s, "dev-pre", cloudtest.DeviceOptions{Key: key, Dispatcher: rec.dispatcher(), Sequential: true})
	if err := d.ReportMethods(ctxT(t), "test.record"); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, s, calls, &rec)
}
