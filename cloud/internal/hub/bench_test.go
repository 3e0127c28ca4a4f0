package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// BenchmarkCallRoundTrip measures calls through the whole cloud path:
// Service.Call → Postgres row → NATS request → holder → signed envelope
// over a real websocket → test device (verifies, answers, signs) → holder
// verifies → Postgres (delivered, finished, audit) → NATS reply. With N
// devices, N callers run at once, one per device.
func BenchmarkCallRoundTrip(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			s := cloudtest.NewServer(b)
			ctx := context.Background()
			ids := make([]string, n)
			for i := range n {
				ids[i] = fmt.Sprintf("bench-%d", i)
				d := cloudtest.MustConnect(b, s, ids[i], cloudtest.DeviceOptions{})
				d.Handle("bench.echo", func(ctx context.Context, p json.RawMessage) (any, error) { return p, nil })
				if err := s.Service().Accept(ctx, s.Super, ids[i]); err != nil {
					b.Fatal(err)
				}
				select {
				case <-d.Accepted():
				case <-time.After(10 * time.Second):
					b.Fatal("no auth.accepted")
				}
			}
			params := json.RawMessage(`{"hello":"world"}`)
			var next, failed atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						c, err := s.Service().Call(ctx, s.Super, fleet.CallRequest{DeviceID: ids[w], Method: "bench.echo", Params: params})
						if err != nil || c.Status != "succeeded" {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d calls failed", f)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
		})
	}
}

// BenchmarkEd25519SignVerify is the floor under every envelope: one
// signature and one verification, measured in the same run for comparison.
func BenchmarkEd25519SignVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		sig := ed25519.Sign(priv, msg)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify failed")
		}
	}
}
