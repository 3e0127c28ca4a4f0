package perf_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/bosunhq/bosun/e2e/perf"
)

// devStack starts ./run-dev.sh's stack (cloud, dev-1's bridge and
// bosun-worker) and waits until system.info answers.
func devStack(tb testing.TB) (*e2e.Stack, string) {
	tb.Helper()
	if os.Getenv(perf.EnvProfile) != "" {
		tb.Setenv("BOSUN_PPROF_LISTEN", "127.0.0.1:0")
	}
	s := e2e.StartStack(tb, e2e.Options{})
	ctx := context.Background()
	_, _, token := s.Credentials(tb)
	e2e.Eventually(tb, 30*time.Second, "dev-1 accepted", func() error {
		_, err := s.CLI(ctx, "accept", s.Device)
		return err
	})
	e2e.Eventually(tb, 30*time.Second, "system.info answers", func() error {
		_, err := s.CLI(ctx, "call", s.Device, "system.info")
		return err
	})
	return s, token
}

// profile starts CPU profiles of the stack's cloud and bridge for d when
// BOSUN_PERF_PROFILE is set; wait() collects them.
func profile(tb testing.TB, s *e2e.Stack, name string, d time.Duration) (wait func()) {
	dir := os.Getenv(perf.EnvProfile)
	if dir == "" {
		return func() {}
	}
	c := perf.ProfileFromLog(filepath.Join(s.Dir, "logs", "cloud.log"), dir, name+"-cloud", d)
	b := perf.ProfileFromLog(filepath.Join(s.Dir, "logs", "bridge.log"), dir, name+"-bridge", d)
	return func() {
		for _, ch := range []<-chan error{c, b} {
			if err := <-ch; err != nil {
				tb.Logf("profile: %v", err)
			}
		}
	}
}

// durationEnv reads a duration from env, or def.
func durationEnv(env string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(env)); err == nil && d > 0 {
		return d
	}
	return def
}

func intEnv(env string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkP8OneDeviceSustained is P8: one device (dev-1: bosun-bridge and
// the bosun-worker process serving system.info), called through the whole
// path for BOSUN_P8_DURATION (10 minutes by default) by
// BOSUN_P8_CLIENTS concurrent callers: the rate, zero failures, and
// memory flat (RSS of the cloud, the bridge and the worker at the end
// against a minute in).
func BenchmarkP8OneDeviceSustained(b *testing.B) {
	dur := durationEnv("BOSUN_P8_DURATION", 10*time.Minute)
	clients := intEnv("BOSUN_P8_CLIENTS", 16)
	s, token := devStack(b)
	pids := map[string]int{"cloud": s.Pid("cloud"), "bridge": s.Pid("bridge"), "worker": s.Pid("worker")}
	load := perf.CallLoad{URL: s.URL, Token: token, Devices: []string{s.Device}, Clients: clients}
	// Warm up, then the RSS baseline.
	load.Duration = min(dur/10, time.Minute)
	load.Run(context.Background())
	rss0 := perf.RSSOfAll(pids)
	cpu0 := perf.ReadCPU("bosun-cloud", "bosun-bridge", "bosun-worker", "postgres")
	wait := profile(b, s, "p8", min(dur, 30*time.Second))
	load.Duration = dur
	r := load.Run(context.Background())
	wait()
	cpu := perf.ReadCPU("bosun-cloud", "bosun-bridge", "bosun-worker", "postgres").Sub(cpu0)
	rss1 := perf.RSSOfAll(pids)
	growth := perf.RSSGrowth(rss0, rss1)
	met := r.Failed == 0 && r.Rate() >= 2000 && growth < 0.2
	perf.Record(b, perf.Row{ID: "P8", What: "one device, sustained calls through the whole path (bridge + bosun-worker system.info)",
		Result: r.Rate(), Unit: "calls/s", Goal: "≥ 2,000 calls/s for 10 minutes, zero failures, memory flat", Met: met,
		Command: "BENCH=P8 ./scripts/bench.sh",
		Notes:   r.String() + "; " + cpu.PerCall(int64(r.Ops)) + "; RSS " + rss0.String() + " → " + rss1.String()})
	if r.Failed > 0 {
		b.Errorf("P8: %d calls failed; first: %v", r.Failed, r.FirstErr)
	}
}
