//go:build !race

package metrics_test

import (
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/cloud/internal/metrics"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// TestCallFinishedAllocs: counting a call or a handshake on the hot path
// allocates nothing, for a built-in method, a learned one and "other".
// (Without -race: the race detector allocates on its own.)
func TestCallFinishedAllocs(t *testing.T) {
	m := metrics.New(metrics.Options{MaxMethods: 1})
	now := time.Now()
	sent := now.Add(-time.Millisecond)
	for _, method := range []string{rpcproto.MethodSystemInfo, "app.learned", "app.beyond"} {
		c := fleet.Call{Method: method, Status: "succeeded", SentAt: &sent, FinishedAt: &now}
		m.CallFinished(c) // the first call of a method may make its series
		if n := testing.AllocsPerRun(1000, func() { m.CallFinished(c) }); n != 0 {
			t.Errorf("CallFinished(%s) allocates %v times per call", method, n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { m.Handshake(hub.HandshakeAccepted) }); n != 0 {
		t.Errorf("Handshake allocates %v times", n)
	}
}

func BenchmarkCallFinished(b *testing.B) {
	m := metrics.New(metrics.Options{})
	now := time.Now()
	sent := now.Add(-time.Millisecond)
	c := fleet.Call{Method: rpcproto.MethodSystemInfo, Status: "succeeded", SentAt: &sent, FinishedAt: &now}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.CallFinished(c)
		}
	})
}
