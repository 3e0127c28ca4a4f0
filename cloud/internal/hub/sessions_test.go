package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func call(t *testing.T, s *cloudtest.Server, dev, method string) fleet.Call {
	t.Helper()
	c, err := s.Service().Call(ctxT(t), s.Super, fleet.CallRequest{DeviceID: dev, Method: method, Params: json.RawMessage(`{"x":"y"}`)})
	if err != nil {
		t.Fatalf("call %s on %s: %v", method, dev, err)
	}
	return c
}

func accepted(t *testing.T, s *cloudtest.Server, id string, opts cloudtest.DeviceOptions) *cloudtest.Device {
	t.Helper()
	d := cloudtest.MustConnect(t, s, id, opts)
	echo(d)
	if d.Registration.Status == rpcproto.StatusPending {
		if err := s.Service().Accept(ctxT(t), s.Super, id); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.Accepted():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no auth.accepted", id)
		}
	}
	return d
}

func TestRejectClosesAndStaysRejected(t *testing.T) {
	s := cloudtest.NewServer(t)
	key := cloudtest.NewKey()
	d := cloudtest.MustConnect(t, s, "dev-rej", cloudtest.DeviceOptions{Key: key})
	if err := s.Service().Reject(ctxT(t), s.Super, "dev-rej"); err != nil {
		t.Fatal(err)
	}
	if code := d.WaitClosed(t, time.Second); code != rpcproto.CloseRejected {
		t.Fatalf("close code = %d, want %d", code, rpcproto.CloseRejected)
	}
	d2 := cloudtest.MustConnect(t, s, "dev-rej", cloudtest.DeviceOptions{Key: key})
	if d2.Registration.Status != rpcproto.StatusRejected {
		t.Fatalf("status = %q, want rejected", d2.Registration.Status)
	}
	if code := d2.WaitClosed(t, 5*time.Second); code != rpcproto.CloseRejected {
		t.Fatalf("close code = %d, want %d", code, rpcproto.CloseRejected)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		dev, _ := s.Service().GetDevice(ctxT(t), s.Super, "dev-rej")
		return dev.Status == "rejected" && !dev.Online
	}, "device rejected and offline")
}

func TestRevokeAndDecommissionCloseWithinASecond(t *testing.T) {
	for _, tt := range []struct {
		name string
		do   func(svc *fleet.Service, a fleet.Actor, id string) error
	}{
		{"reject accepted key", func(svc *fleet.Service, a fleet.Actor, id string) error {
			return svc.Reject(context.Background(), a, id)
		}},
		{"decommission", func(svc *fleet.Service, a fleet.Actor, id string) error {
			return svc.Decommission(context.Background(), a, id)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := cloudtest.NewServer(t)
			d := accepted(t, s, "dev-rv", cloudtest.DeviceOptions{})
			start := time.Now()
			if err := tt.do(s.Service(), s.Super, "dev-rv"); err != nil {
				t.Fatal(err)
			}
			if code := d.WaitClosed(t, time.Second); code != rpcproto.CloseRejected {
				t.Fatalf("close code = %d, want %d", code, rpcproto.CloseRejected)
			}
			t.Logf("%s: the session closed with 4003 %v after the call", tt.name, time.Since(start).Round(time.Millisecond))
		})
		// The operator acts on replica A; the device's session is on B.
		t.Run(tt.name+" on another replica", func(t *testing.T) {
			a := cloudtest.NewServer(t, cloudtest.WithReplica("ra"))
			b := cloudtest.NewServer(t, cloudtest.WithReplica("rb"), cloudtest.WithDatabase(a.DatabaseURL),
				cloudtest.WithNATS(a.NATSURL()), cloudtest.WithKey(a.Key))
			d := accepted(t, b, "dev-rv2", cloudtest.DeviceOptions{})
			start := time.Now()
			if err := tt.do(a.Service(), a.Super, "dev-rv2"); err != nil {
				t.Fatal(err)
			}
			if code := d.WaitClosed(t, time.Second); code != rpcproto.CloseRejected {
				t.Fatalf("close code = %d, want %d", code, rpcproto.CloseRejected)
			}
			t.Logf("%s on replica A: the session on B closed with 4003 %v after the call", tt.name, time.Since(start).Round(time.Millisecond))
			cloudtest.Eventually(t, time.Second, func() bool { return b.Hub().Sessions() == 0 }, "B's session torn down")
			// The key stays refused on either replica.
			d2, err := cloudtest.Connect(context.Background(), t, a.DeviceURL(), a.CloudPublic(), "dev-rv2", cloudtest.DeviceOptions{Key: d.Key})
			if err == nil {
				if d2.Registration.Status == rpcproto.StatusAccepted {
					t.Fatal("the revoked key was accepted again")
				}
				if code := d2.WaitClosed(t, time.Second); code != rpcproto.CloseRejected {
					t.Fatalf("revoked key reconnecting: close code = %d, want %d", code, rpcproto.CloseRejected)
				}
			}
		})
	}
}

func TestKeyChangedIsNewPendingKeySet(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	d := accepted(t, s, "dev-kc", cloudtest.DeviceOptions{})
	// Same id, new key, while the device is online with its accepted key.
	// It is refused (try again later) and not stored: knowing a device id
	// is not enough to knock the device offline or to plant a key.
	key2 := cloudtest.NewKey()
	_, err := cloudtest.Connect(ctx, t, s.DeviceURL(), s.CloudPublic(), "dev-kc", cloudtest.DeviceOptions{Key: key2})
	var re *jsonrpc.Error
	if !errors.As(err, &re) || re.Code != rpcproto.CodeTryLater {
		t.Fatalf("new key while online: %v, want %d", err, rpcproto.CodeTryLater)
	}
	// The old session is unaffected: still live and callable.
	if c := call(t, s, "dev-kc", "test.echo"); c.Status != "succeeded" {
		t.Fatalf("old session call = %+v", c)
	}
	if ks, err := s.Service().ListKeySets(ctx, s.Super, "dev-kc"); err != nil || len(ks) != 1 {
		t.Fatalf("key sets after a refused new key = %+v, %v", ks, err)
	}
	// Offline, the same new key is a new pending key set, flagged.
	d.Close()
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-kc")
		return !dev.Online
	}, "device offline")
	d2 := cloudtest.MustConnect(t, s, "dev-kc", cloudtest.DeviceOptions{Key: key2})
	if d2.Registration.Status != rpcproto.StatusPending || !d2.Registration.KeyChanged {
		t.Fatalf("registration = %+v, want pending and key_changed", d2.Registration)
	}
	ks, err := s.Service().ListKeySets(ctx, s.Super, "dev-kc")
	if err != nil || len(ks) != 2 || ks[0].Status != "pending" || !ks[0].KeyChanged || ks[1].Status != "accepted" {
		t.Fatalf("key sets = %+v, %v", ks, err)
	}
	d = cloudtest.MustConnect(t, s, "dev-kc", cloudtest.DeviceOptions{Key: d.Key})
	echo(d)
	dev, _ := s.Service().GetDevice(ctx, s.Super, "dev-kc")
	if dev.Status != "pending" || !dev.KeyChanged || !dev.Online || dev.Fingerprint != d2.Registration.Fingerprint {
		t.Fatalf("device = %+v", dev)
	}
	// Accepting the new key revokes the old one: its session closes.
	if err := s.Service().Accept(ctx, s.Super, "dev-kc"); err != nil {
		t.Fatal(err)
	}
	if code := d.WaitClosed(t, time.Second); code != rpcproto.CloseRejected {
		t.Fatalf("old key session close = %d, want %d", code, rpcproto.CloseRejected)
	}
	d3 := cloudtest.MustConnect(t, s, "dev-kc", cloudtest.DeviceOptions{Key: d2.Key})
	if d3.Registration.Status != rpcproto.StatusAccepted {
		t.Fatalf("new key after accept: %+v", d3.Registration)
	}
}

func TestPreauthorizedAcceptedOnFirstContact(t *testing.T) {
	s := cloudtest.NewServer(t)
	key := cloudtest.NewKey()
	der, _ := keys.PublicDER(key.Public())
	if err := s.Service().Preauthorize(ctxT(t), s.Super, "dev-pre", der); err != nil {
		t.Fatal(err)
	}
	// Another key for the same id is not accepted.
	other := cloudtest.MustConnect(t, s, "dev-pre", cloudtest.DeviceOptions{})
	if other.Registration.Status != rpcproto.StatusPending {
		t.Fatalf("other key: %+v", other.Registration)
	}
	other.Close()
	d := cloudtest.MustConnect(t, s, "dev-pre", cloudtest.DeviceOptions{Key: key})
	echo(d)
	if d.Registration.Status != rpcproto.StatusAccepted {
		t.Fatalf("registration = %+v, want accepted", d.Registration)
	}
	if c := call(t, s, "dev-pre", "test.echo"); c.Status != "succeeded" {
		t.Fatalf("call = %+v", c)
	}
}

func TestPendingBoundedPerOrg(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) { c.MaxPendingPerOrg = 1 }))
	d1 := cloudtest.MustConnect(t, s, "dev-p1", cloudtest.DeviceOptions{})
	before := dbState(t, s)
	_, err := cloudtest.Connect(ctxT(t), t, s.DeviceURL(), s.CloudPublic(), "dev-p2", cloudtest.DeviceOptions{})
	var re *jsonrpc.Error
	if !errors.As(err, &re) || re.Code != rpcproto.CodeTryLater {
		t.Fatalf("second device: %v, want %d", err, rpcproto.CodeTryLater)
	}
	if d1.Closed() {
		t.Fatal("first pending device was disconnected")
	}
	// A refused attempt leaves no row.
	if after := dbState(t, s); after != before {
		t.Fatalf("database changed: %s -> %s", before, after)
	}
}

func TestSendQueueFullDisconnects(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithHub(func(o *hub.Options) { o.SendQueue = 2 }))
	d := accepted(t, s, "dev-slow", cloudtest.DeviceOptions{})
	d.PauseReading()
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 256<<10) + `"}`)
	start := time.Now()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Service().Call(context.Background(), s.Super, fleet.CallRequest{DeviceID: "dev-slow", Method: "test.echo",
				Params: big, Timeout: 10 * time.Second})
		}()
	}
	cloudtest.Eventually(t, 20*time.Second, func() bool {
		dev, _ := s.Service().GetDevice(context.Background(), s.Super, "dev-slow")
		return !dev.Online
	}, "slow device disconnected")
	t.Logf("slow device offline %v after the calls started", time.Since(start).Round(time.Millisecond))
	wg.Wait()
	d.ResumeReading()
	// Dropped without a close handshake: a close frame would wait behind
	// the very backlog the device cannot read.
	d.WaitClosed(t, 5*time.Second)
	if got := s.Hub().Sessions(); got != 0 {
		t.Fatalf("%d sessions left", got)
	}
	// Another device was never blocked.
	accepted(t, s, "dev-fast", cloudtest.DeviceOptions{})
	if c := call(t, s, "dev-fast", "test.echo"); c.Status != "succeeded" {
		t.Fatalf("call = %+v", c)
	}
}

// TestTwoReplicas runs two replicas on one database and one NATS: calls
// entering A reach a device held by B, events of both reach one
// subscriber, and a reconnect to A evicts the session on B without B's
// late disconnect marking the device offline.
func TestTwoReplicas(t *testing.T) {
	a := cloudtest.NewServer(t, cloudtest.WithReplica("ra"))
	b := cloudtest.NewServer(t, cloudtest.WithReplica("rb"), cloudtest.WithDatabase(a.DatabaseURL),
		cloudtest.WithNATS(a.NATSURL()), cloudtest.WithKey(a.Key))
	ctx := ctxT(t)
	events, err := a.Service().Subscribe(ctx, a.Super)
	if err != nil {
		t.Fatal(err)
	}
	key := cloudtest.NewKey()
	onB := cloudtest.MustConnect(t, b, "dev-2r", cloudtest.DeviceOptions{Key: key})
	echo(onB)
	// Accepting through A reaches the session on B at once.
	if err := a.Service().Accept(ctx, a.Super, "dev-2r"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-onB.Accepted():
	case <-ctx.Done():
		t.Fatal("no auth.accepted through replica A")
	}
	if c := call(t, a, "dev-2r", "test.echo"); c.Status != "succeeded" {
		t.Fatalf("call via A to device on B = %+v", c)
	}
	dev, _ := a.Service().GetDevice(ctx, a.Super, "dev-2r")
	if dev.Replica != "rb" || !dev.Online {
		t.Fatalf("device = %+v", dev)
	}
	// Reconnect to A: the session on B is evicted.
	onA := cloudtest.MustConnect(t, a, "dev-2r", cloudtest.DeviceOptions{Key: key})
	echo(onA)
	if code := onB.WaitClosed(t, 5*time.Second); code != rpcproto.CloseEvicted {
		t.Fatalf("old session close = %d, want %d", code, rpcproto.CloseEvicted)
	}
	cloudtest.Eventually(t, 5*time.Second, func() bool { return b.Hub().Sessions() == 0 }, "B's session torn down")
	dev, _ = a.Service().GetDevice(ctx, a.Super, "dev-2r")
	if !dev.Online || dev.Replica != "ra" {
		t.Fatalf("after eviction device = %+v, want online on ra", dev)
	}
	if c := call(t, b, "dev-2r", "test.echo"); c.Status != "succeeded" {
		t.Fatalf("call via B to device on A = %+v", c)
	}
	// Events from both replicas reached A's subscriber.
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for !(seen["rb"] && seen["ra"]) {
		select {
		case e := <-events:
			if e.Type == fleet.EventDeviceConnected {
				var d struct{ Replica string }
				json.Unmarshal(e.Data, &d)
				seen[d.Replica] = true
			}
		case <-deadline:
			t.Fatalf("device.connected seen from %v, want ra and rb", seen)
		}
	}
}
