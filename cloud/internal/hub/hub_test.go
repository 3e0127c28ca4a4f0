package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo serves "test.echo" by returning its params.
func echo(d *cloudtest.Device) {
	d.Handle("test.echo", func(ctx context.Context, p json.RawMessage) (any, error) { return p, nil })
}

func TestRegisterAcceptCall(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	d := cloudtest.MustConnect(t, s, "dev-1", cloudtest.DeviceOptions{Attributes: map[string]string{"serial": "42"}})
	echo(d)
	if d.Registration.Status != rpcproto.StatusPending {
		t.Fatalf("status = %q, want pending", d.Registration.Status)
	}
	dev, err := svc.GetDevice(ctx, s.Super, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Status != "pending" || !dev.Online || dev.Attributes["serial"] != "42" {
		t.Fatalf("device = %+v", dev)
	}
	// A pending device may only wait: state.report is refused and
	// stores nothing, and it cannot be called.
	_, err = d.Report(ctx, rpcproto.StateReportParams{Hostname: "h1"})
	var re *jsonrpc.Error
	if !errors.As(err, &re) || re.Code != rpcproto.CodeNotAccepted {
		t.Fatalf("state.report while pending: %v, want %d", err, rpcproto.CodeNotAccepted)
	}
	if dev, _ := svc.GetDevice(ctx, s.Super, "dev-1"); dev.Inventory != nil {
		t.Fatalf("pending device's report stored: %s", dev.Inventory)
	}
	c, err := svc.Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-1", Method: "test.echo", Params: json.RawMessage(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "failed" || c.Error == nil || c.Error.Code != rpcproto.CodeNotAccepted {
		t.Fatalf("call to pending device = %+v", c)
	}

	if err := svc.Accept(ctx, s.Super, "dev-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-d.Accepted():
		if p.Fingerprint != d.Registration.Fingerprint {
			t.Fatalf("auth.accepted fingerprint %q, want %q", p.Fingerprint, d.Registration.Fingerprint)
		}
	case <-ctx.Done():
		t.Fatal("no auth.accepted")
	}
	if _, err := d.Report(ctx, rpcproto.StateReportParams{Hostname: "h1"}); err != nil {
		t.Fatalf("state.report once accepted: %v", err)
	}
	c, err = svc.Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-1", Method: "test.echo", Params: json.RawMessage(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "succeeded" || compact(c.Result) != `{"a":1}` {
		t.Fatalf("call = %+v (error %v)", c, c.Error)
	}
	got, err := svc.GetCall(ctx, s.Super, c.ID)
	if err != nil || got.Status != "succeeded" || got.SentAt == nil || got.FinishedAt == nil {
		t.Fatalf("stored call = %+v, %v", got, err)
	}
	// Unknown method: the device's JSON-RPC error is the call's error.
	c, _ = svc.Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-1", Method: "nope"})
	if c.Status != "failed" || c.Error == nil || c.Error.Code != jsonrpc.CodeMethodNotFound {
		t.Fatalf("unknown method call = %+v", c)
	}
	dev, _ = svc.GetDevice(ctx, s.Super, "dev-1")
	if dev.Inventory == nil {
		t.Fatalf("inventory not stored: %+v", dev)
	}
	d.Close()
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		dev, _ := svc.GetDevice(ctx, s.Super, "dev-1")
		return !dev.Online
	}, "device offline after disconnect")
	c, _ = svc.Call(ctx, s.Super, fleet.CallRequest{DeviceID: "dev-1", Method: "test.echo"})
	if c.Status != "failed" || c.Error == nil || c.Error.Code != rpcproto.CodeDeviceOffline {
		t.Fatalf("call to offline device = %+v", c)
	}
}

// compact is raw without insignificant white space: a result comes back as
// PostgreSQL's jsonb prints it.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
