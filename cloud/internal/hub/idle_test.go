package hub_test

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// goroutinesWith counts the goroutines whose stack has a frame containing
// any of the given strings.
func goroutinesWith(t *testing.T, frames ...string) int {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		for _, f := range frames {
			if strings.Contains(g, f) {
				n++
				break
			}
		}
	}
	return n
}

// TestIdleSessionGoroutines: an idle, accepted session costs the cloud one
// goroutine with a hub frame (the session's reader, in deviceSession.run):
// no drainer waiting for kicks, no goroutine per NATS subscription (the
// subscriptions feed the hub's shared inbox), no pinger between pings.
// Each such goroutine is a stack of its own, and thousands of devices
// multiply it (P3 in docs/benchmarks.md). A call through NATS still
// reaches every session.
func TestIdleSessionGoroutines(t *testing.T) {
	const n = 40
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	hubFrames := []string{"cloud/internal/hub.(*deviceSession)"}
	subFrames := []string{"nats-io/nats%2ego.(*Conn).waitForMsgs"} // the dot is escaped in symbol names
	hub0, subs0 := goroutinesWith(t, hubFrames...), goroutinesWith(t, subFrames...)
	devs := make([]*cloudtest.Device, n)
	for i := range devs {
		key := cloudtest.NewKey()
		der, _ := keys.PublicDER(key.Public())
		id := fmt.Sprintf("idle-%d", i)
		if err := s.Service().Preauthorize(ctx, s.Super, id, der); err != nil {
			t.Fatal(err)
		}
		devs[i] = cloudtest.MustConnect(t, s, id, cloudtest.DeviceOptions{Key: key})
		if devs[i].Registration.Status != rpcproto.StatusAccepted {
			t.Fatalf("%s: %+v", id, devs[i].Registration)
		}
		echo(devs[i])
	}
	// The drainers of the new sessions find nothing queued and end.
	var hubN, subN int
	deadline := time.Now().Add(10 * time.Second)
	for {
		hubN, subN = goroutinesWith(t, hubFrames...)-hub0, goroutinesWith(t, subFrames...)-subs0
		if hubN <= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hubN != n || subN != 0 {
		t.Fatalf("%d idle sessions: %d goroutines with a hub frame (want %d) and %d more NATS subscription goroutines (want 0)",
			n, hubN, n, subN)
	}
	// Calls still reach every session, over NATS from another replica.
	other := cloudtest.NewServer(t, cloudtest.WithReplica("other"), cloudtest.WithDatabase(s.DatabaseURL),
		cloudtest.WithNATS(s.NATSURL()), cloudtest.WithKey(s.Key))
	for _, d := range devs {
		if c := call(t, other, d.ID, "test.echo"); c.Status != "succeeded" {
			t.Fatalf("call to %s from another replica = %+v", d.ID, c)
		}
	}
}
