package perf

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name     string
		lat      []time.Duration
		p50, p99 time.Duration
	}{
		{"none", nil, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond},
		{"unsorted 1..100", func() []time.Duration {
			var l []time.Duration
			for i := 100; i >= 1; i-- {
				l = append(l, time.Duration(i)*time.Millisecond)
			}
			return l
		}(), 50 * time.Millisecond, 99 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p50, p99 := percentiles(tt.lat)
			if p50 != tt.p50 || p99 != tt.p99 {
				t.Fatalf("p50 %v p99 %v, want %v %v", p50, p99, tt.p50, tt.p99)
			}
		})
	}
}

// TestClosedLoop: every worker runs until the duration has passed, a
// failing call counts as failed and its worker goes on, and each call's
// context ends after the timeout.
func TestClosedLoop(t *testing.T) {
	var calls atomic.Int64
	boom := errors.New("boom")
	r := ClosedLoop(3, 50*time.Millisecond, 5*time.Millisecond, func(ctx context.Context, w int) error {
		n := calls.Add(1)
		if w == 2 {
			<-ctx.Done() // the timeout ends it
			return ctx.Err()
		}
		if n%5 == 0 {
			return boom
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	if r.Ops == 0 || r.Failed == 0 || r.FirstErr == nil || int64(r.Ops+r.Failed) != calls.Load() {
		t.Fatalf("%+v after %d calls", r, calls.Load())
	}
	if r.Elapsed < 50*time.Millisecond || r.Elapsed > 5*time.Second {
		t.Fatalf("elapsed %v, want about 50ms", r.Elapsed)
	}
	if r.Rate() <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Fatalf("rate %v p50 %v p99 %v", r.Rate(), r.P50, r.P99)
	}
}
