package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recorder is a device handler that records the order of "test.record" calls.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) dispatcher() *jsonrpc.Dispatcher {
	d := jsonrpc.NewDispatcher()
	d.Register("test.record", func(ctx context.Context, p json.RawMessage) (any, error) {
		var v struct{ N string }
		json.Unmarshal(p, &v)
		r.mu.Lock()
		r.got = append(r.got, v.N)
		r.mu.Unlock()
		return v.N, nil
	})
	return d
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// acceptDevice registers and accepts a device, then disconnects it.
func acceptDevice(t *testing.T, s *cloudtest.Server, id string) *cloudtest.Device {
	t.Helper()
	d := cloudtest.MustConnect(t, s, id, cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctxT(t), s.Super, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Accepted():
	case <-time.After(10 * time.Second):
		t.Fatalf("device %s: no auth.accepted within 10s of the accept", id)
	}
	return d
}

func waitOffline(t *testing.T, s *cloudtest.Server, id string) {
	t.Helper()
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		d, _ := s.Service().GetDevice(context.Background(), s.Super, id)
		return !d.Online
	}, "%s offline", id)
}

func queue(t *testing.T, s *cloudtest.Server, id string, n int, ttl time.Duration) []fleet.Call {
	t.Helper()
	var out []fleet.Call
	for i := range n {
		c, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: id, Method: "test.record",
			Params: json.RawMessage(fmt.Sprintf(`{"n":"%d"}`, i)), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != "queued" || c.ExpiresAt == nil {
			t.Fatalf("call %d = %+v, want queued", i, c)
		}
		out = append(out, c)
	}
	return out
}

func TestPersistentCallsDeliveredInOrder(t *testing.T) {
	s := cloudtest.NewServer(t)
	d := acceptDevice(t, s, "dev-q")
	key := d.Key
	d.Close()
	waitOffline(t, s, "dev-q")
	calls := queue(t, s, "dev-q", 5, time.Minute)

	// Nothing is delivered while offline.
	for _, c := range calls {
		got, _ := s.Service().GetCall(ctxT(t), s.Super, c.ID)
		if got.Status != "queued" {
			t.Fatalf("offline call status = %s", got.Status)
		}
	}
	var rec recorder
	d = cloudtest.MustConnect(t, s, "dev-q", cloudtest.DeviceOptions{Key: key, Dispatcher: rec.dispatcher(), Sequential: true})
	if err := d.ReportMethods(ctxT(t), "test.record"); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, s, calls, &rec)
}

// TestPersistentCallsSurviveRestart queues calls while the device is
// offline, restarts the cloud (a new replica process on the same database),
// and checks they are delivered in order when the device reconnects.
func TestPersistentCallsSurviveRestart(t *testing.T) {
	s := cloudtest.NewServer(t)
	d := acceptDevice(t, s, "dev-rs")
	key := d.Key
	d.Close()
	waitOffline(t, s, "dev-rs")
	calls := queue(t, s, "dev-rs", 3, time.Minute)
	s.Stop()

	s2 := cloudtest.NewServer(t, cloudtest.WithDatabase(s.DatabaseURL), cloudtest.WithKey(s.Key))
	var rec recorder
	d = cloudtest.MustConnect(t, s2, "dev-rs", cloudtest.DeviceOptions{Key: key, Dispatcher: rec.dispatcher(), Sequential: true})
	if err := d.ReportMethods(ctxT(t), "test.record"); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, s2, calls, &rec)
}

func TestQueuedCallExpires(t *testing.T) {
	s := cloudtest.NewServer(t)
	d := acceptDevice(t, s, "dev-x")
	d.Close()
	waitOffline(t, s, "dev-x")
	calls := queue(t, s, "dev-x", 1, 300*time.Millisecond)
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		c, _ := s.Service().GetCall(context.Background(), s.Super, calls[0].ID)
		return c.Status == "expired"
	}, "call expired")
	c, _ := s.Service().GetCall(ctxT(t), s.Super, calls[0].ID)
	if c.Error == nil || c.Error.Code != rpcproto.CodeExpired || c.SentAt != nil {
		t.Fatalf("expired call = %+v", c)
	}
}

// TestPersistentCallToOnlineDeviceWaits: with the device online, a call
// with a TTL is delivered at once and Call returns its result.
func TestPersistentCallToOnlineDeviceWaits(t *testing.T) {
	s := cloudtest.NewServer(t)
	var rec recorder
	d := cloudtest.MustConnect(t, s, "dev-on", cloudtest.DeviceOptions{Dispatcher: rec.dispatcher()})
	s.Service().Accept(ctxT(t), s.Super, "dev-on")
	<-d.Accepted()
	if err := d.ReportMethods(ctxT(t), "test.record"); err != nil {
		t.Fatal(err)
	}
	c, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: "dev-on", Method: "test.record",
		Params: json.RawMessage(`{"n":"7"}`), TTL: time.Minute})
	if err != nil || c.Status != "succeeded" || string(c.Result) != `"7"` {
		t.Fatalf("call = %+v, %v", c, err)
	}
}

func TestCallTimeout(t *testing.T) {
	s := cloudtest.NewServer(t)
	d := acceptDevice(t, s, "dev-t")
	release := make(chan struct{})
	defer close(release)
	d.Handle("test.hang", func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-release
		return nil, nil
	})
	c, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: "dev-t", Method: "test.hang", Timeout: 200 * time.Millisecond})
	if err != nil || c.Status != "timeout" || c.Error == nil || c.Error.Code != rpcproto.CodeTimeout {
		t.Fatalf("call = %+v, %v", c, err)
	}
}

func TestFanOut(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	for _, id := range []string{"f1", "f2", "f3"} {
		d := acceptDevice(t, s, id)
		d.Handle("test.echo", func(ctx context.Context, p json.RawMessage) (any, error) { return p, nil })
		if err := s.Service().SetTags(ctx, s.Super, id, []string{"lab"}); err != nil {
			t.Fatal(err)
		}
	}
	off := acceptDevice(t, s, "f4")
	s.Service().SetTags(ctx, s.Super, "f4", []string{"lab"})
	off.Close()
	waitOffline(t, s, "f4")
	var mu sync.Mutex
	got := map[string]string{}
	sum, err := s.Service().FanOut(ctx, s.Super, fleet.FanOutRequest{Tag: "lab", Method: "test.echo", Params: json.RawMessage(`[1]`)},
		func(c fleet.Call) {
			mu.Lock()
			got[c.DeviceID] = c.Status
			mu.Unlock()
		})
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.FanOutSummary{Total: 4, Succeeded: 3, Offline: 1}
	if sum != want || len(got) != 4 {
		t.Fatalf("summary = %+v, want %+v; each saw %v", sum, want, got)
	}
	if _, err := s.Service().FanOut(ctx, s.Super, fleet.FanOutRequest{Method: "x"}, nil); !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("fan-out without targets: %v", err)
	}
	// Every device is checked before any is called: one unknown id (or
	// one the actor may not operate) refuses the whole fan-out, and no
	// device was called.
	var calls0 int
	s.Service().Store().Pool().QueryRow(ctx, `SELECT count(*) FROM calls`).Scan(&calls0)
	if _, err := s.Service().FanOut(ctx, s.Super, fleet.FanOutRequest{DeviceIDs: []string{"f1", "nobody", "f2"}, Method: "test.echo"}, nil); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("fan-out naming an unknown device: %v", err)
	}
	viewer := s.Actor(t, "viewer@example.com", fleet.RoleViewer, "default")
	if _, err := s.Service().FanOut(ctx, viewer, fleet.FanOutRequest{DeviceIDs: []string{"f1", "f2"}, Method: "test.echo"}, nil); !errors.Is(err, fleet.ErrForbidden) {
		t.Fatalf("fan-out by a viewer: %v", err)
	}
	var calls1 int
	s.Service().Store().Pool().QueryRow(ctx, `SELECT count(*) FROM calls`).Scan(&calls1)
	if calls1 != calls0 {
		t.Fatalf("refused fan-outs made %d calls", calls1-calls0)
	}
}

func TestCallValidation(t *testing.T) {
	s := cloudtest.NewServer(t)
	acceptDevice(t, s, "dev-v")
	for _, tt := range []struct {
		name string
		req  fleet.CallRequest
		want error
	}{
		{"empty method", fleet.CallRequest{DeviceID: "dev-v"}, fleet.ErrInvalid},
		{"scalar params", fleet.CallRequest{DeviceID: "dev-v", Method: "m", Params: json.RawMessage(`1`)}, fleet.ErrInvalid},
		{"timeout too long", fleet.CallRequest{DeviceID: "dev-v", Method: "m", Timeout: 6 * time.Minute}, fleet.ErrInvalid},
		{"reserved method", fleet.CallRequest{DeviceID: "dev-v", Method: "auth.accepted"}, fleet.ErrInvalid},
		{"invalid method name", fleet.CallRequest{DeviceID: "dev-v", Method: "bad method!"}, fleet.ErrInvalid},
		{"empty word in method", fleet.CallRequest{DeviceID: "dev-v", Method: "system..info"}, fleet.ErrInvalid},
		{"wildcard method", fleet.CallRequest{DeviceID: "dev-v", Method: "system.>"}, fleet.ErrInvalid},
		{"unknown device", fleet.CallRequest{DeviceID: "nope", Method: "m"}, fleet.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls, audit int64
			count := func() (int64, int64) {
				var c, a int64
				s.Service().Store().Pool().QueryRow(context.Background(),
					`SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM audit_log)`).Scan(&c, &a)
				return c, a
			}
			calls, audit = count()
			_, err := s.Service().Call(ctxT(t), s.Super, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.name == "invalid method name" && !strings.Contains(err.Error(), "dot-separated words") {
				t.Fatalf("the error does not state the rule: %v", err)
			}
			if c, a := count(); c != calls || a != audit {
				t.Fatalf("a refused call changed rows: calls %d→%d, audit %d→%d", calls, c, audit, a)
			}
		})
	}
}

// checkDelivered reconnects a device with a recorder and checks the calls
// succeed in order.
func checkDelivered(t *testing.T, s *cloudtest.Server, calls []fleet.Call, rec *recorder) {
	t.Helper()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		for _, c := range calls {
			got, _ := s.Service().GetCall(context.Background(), s.Super, c.ID)
			if !got.Finished() {
				return false
			}
		}
		return true
	}, "queued calls finished")
	var prev time.Time
	for i, c := range calls {
		got, _ := s.Service().GetCall(ctxT(t), s.Super, c.ID)
		if got.Status != "succeeded" || string(got.Result) != fmt.Sprintf(`"%d"`, i) || got.DeliveredAt == nil {
			t.Fatalf("call %d = %+v (error %v)", i, got, got.Error)
		}
		if got.DeliveredAt.Before(prev) {
			t.Fatalf("call %d delivered at %v, before call %d", i, got.DeliveredAt, i-1)
		}
		prev = *got.DeliveredAt
	}
	want := fmt.Sprint([]string{"0", "1", "2", "3", "4"}[:len(calls)])
	if got := fmt.Sprint(rec.list()); got != want {
		t.Fatalf("delivery order %s, want %s", got, want)
	}
}

// TestSubscribeWithoutDeadline: an HTTP request's context has no deadline.
func TestSubscribeWithoutDeadline(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Service().Subscribe(ctx, s.Super)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range ch {
	}
}

// TestCallerLeavesAuditsTheCall: a caller that stops waiting (the dashboard's
// Abandon) leaves a call that goes on; the audit row names that call and says
// the caller left, not "error: context canceled", and the call's outcome is
// recorded when the device answers.
func TestCallerLeavesAuditsTheCall(t *testing.T) {
	s := cloudtest.NewServer(t)
	release := make(chan struct{})
	disp := jsonrpc.NewDispatcher()
	disp.Register("test.slow", func(ctx context.Context, _ json.RawMessage) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	})
	d := cloudtest.MustConnect(t, s, "dev-slow", cloudtest.DeviceOptions{Dispatcher: disp})
	if err := s.Service().Accept(ctxT(t), s.Super, "dev-slow"); err != nil {
		t.Fatal(err)
	}
	<-d.Accepted()
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	c, err := s.Service().Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-slow", Method: "test.slow", Timeout: 20 * time.Second})
	if err == nil || c.ID == "" {
		t.Fatalf("call whose caller left: %+v, %v; want the stored call and the context's error", c, err)
	}
	close(release)
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		got, _ := s.Service().GetCall(context.Background(), s.Super, c.ID)
		return got.Status == "succeeded"
	}, "call %s succeeded after its caller left", c.ID)
	rows, err := s.Service().AuditLog(ctxT(t), s.Super, fleet.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r.Action != "call" || r.Target != "dev-slow" {
			continue
		}
		found = true
		detail := string(r.Detail)
		if r.Outcome == "error" || strings.Contains(detail, "context") || !strings.Contains(detail, c.ID) || !strings.Contains(detail, "left") {
			t.Fatalf("audit of a call whose caller left: outcome %q detail %s", r.Outcome, detail)
		}
	}
	if !found {
		t.Fatal("no audit row for the call")
	}
}
