package perf

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// EnvQuick, when "1", asks every figure for its quick form: the same code
// with smaller sizes and shorter runs (scripts/bench.sh --quick).
const EnvQuick = "BOSUN_BENCH_QUICK"

// Quick reports whether $BOSUN_BENCH_QUICK asks for the quick form.
func Quick() bool { return os.Getenv(EnvQuick) == "1" }

// LoadResult is what a bounded closed-loop load saw: how many operations
// succeeded and failed in how long, and the latency of the successful ones.
type LoadResult struct {
	Ops      int           // successful operations
	Failed   int           // operations that returned an error
	Elapsed  time.Duration // wall time of the whole load
	P50      time.Duration
	P99      time.Duration
	FirstErr error // the first failure, nil when none
}

// Rate is successful operations per second.
func (r LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Ms is d in milliseconds, for notes and rows.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentiles sorts lat and returns its 50th and 99th percentiles (nearest
// rank); zero for no samples.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(lat))+0.5) - 1
		return lat[min(max(i, 0), len(lat)-1)]
	}
	return rank(0.50), rank(0.99)
}

// ClosedLoop runs workers goroutines, each calling op with its index one
// call after another until d has passed (the call under way is finished,
// not cut off), and returns what they saw. Each call gets a context that
// ends after opTimeout; a call that fails counts as failed, and its worker
// goes on. Every goroutine has returned when ClosedLoop returns.
func ClosedLoop(workers int, d, opTimeout time.Duration, op func(ctx context.Context, worker int) error) LoadResult {
	type part struct {
		lat    []time.Duration
		failed int
		err    error
	}
	parts := make([]part, workers)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &parts[w]
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				t0 := time.Now()
				err := op(ctx, w)
				cancel()
				if err != nil {
					p.failed++
					if p.err == nil {
						p.err = err
					}
					continue
				}
				p.lat = append(p.lat, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	r := LoadResult{Elapsed: time.Since(start)}
	var all []time.Duration
	for _, p := range parts {
		all = append(all, p.lat...)
		r.Failed += p.failed
		if r.FirstErr == nil {
			r.FirstErr = p.err
		}
	}
	r.Ops = len(all)
	r.P50, r.P99 = percentiles(all)
	return r
}

// loadNotes says what a load saw, for a row's notes.
func loadNotes(r LoadResult, what string) string {
	return fmt.Sprintf("%d %s in %.1f s, %d failed; p50 %.2f ms, p99 %.2f ms", r.Ops, what, r.Elapsed.Seconds(), r.Failed, Ms(r.P50), Ms(r.P99))
}
