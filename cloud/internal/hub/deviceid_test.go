package hub_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// TestHostNameIDsKeepTheirOwnSubjects: devices whose ids are host names
// register, are accepted (auth.accepted travels on the key subject), answer
// calls (the call subject), are evicted by their own reconnect (the evict
// subject) and closed by their own rejection, and never by another's:
// pi.kitchen, pi_kitchen and pi-kitchen would share subjects under any
// encoding that maps '.' to '_' or '-'.
func TestHostNameIDsKeepTheirOwnSubjects(t *testing.T) {
	s := cloudtest.NewServer(t)
	ids := []string{"pi.kitchen", "pi_kitchen", "pi-kitchen", "pi.kitchen.local"}
	devs := map[string]*cloudtest.Device{}
	for _, id := range ids {
		key := cloudtest.NewKey()
		d := accepted(t, s, id, cloudtest.DeviceOptions{Key: key})
		d.Handle("test.whoami", func(context.Context, json.RawMessage) (any, error) { return id, nil })
		devs[id] = d
	}
	answers := func(except string) {
		t.Helper()
		for _, id := range ids {
			if id == except {
				continue
			}
			c := call(t, s, id, "test.whoami")
			var who string
			json.Unmarshal(c.Result, &who)
			if c.Status != "succeeded" || who != id {
				t.Fatalf("call to %s answered by %q (%+v)", id, who, c)
			}
		}
	}
	answers("")

	// A new session of pi.kitchen evicts its old one, and no other.
	d2 := cloudtest.MustConnect(t, s, "pi.kitchen", cloudtest.DeviceOptions{Key: devs["pi.kitchen"].Key})
	d2.Handle("test.whoami", func(context.Context, json.RawMessage) (any, error) { return "pi.kitchen", nil })
	if code := devs["pi.kitchen"].WaitClosed(t, 5*time.Second); code != rpcproto.CloseEvicted {
		t.Fatalf("old pi.kitchen session closed with %d, want %d", code, rpcproto.CloseEvicted)
	}
	devs["pi.kitchen"] = d2
	answers("")

	// Rejecting pi.kitchen closes it alone.
	if err := s.Service().Reject(ctxT(t), s.Super, "pi.kitchen"); err != nil {
		t.Fatal(err)
	}
	if code := d2.WaitClosed(t, 5*time.Second); code != rpcproto.CloseRejected {
		t.Fatalf("pi.kitchen closed with %d, want %d", code, rpcproto.CloseRejected)
	}
	for _, id := range ids[1:] {
		if devs[id].Closed() {
			t.Fatalf("%s closed by the rejection of pi.kitchen", id)
		}
		d, err := s.Service().GetDevice(ctxT(t), s.Super, id)
		if err != nil || d.Status != "accepted" || !d.Online {
			t.Fatalf("%s after rejecting pi.kitchen: %+v, %v", id, d, err)
		}
	}
	answers("pi.kitchen")
}
