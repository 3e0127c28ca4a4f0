package perf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/bosunhq/bosun/e2e/perf"
	"github.com/jackc/pgx/v5"
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
// against after a warm-up of 10 s).
func BenchmarkP8OneDeviceSustained(b *testing.B) {
	dur := durationEnv("BOSUN_P8_DURATION", 10*time.Minute)
	clients := intEnv("BOSUN_P8_CLIENTS", 16)
	s, token := devStack(b)
	pids := map[string]int{"cloud": s.Pid("cloud"), "bridge": s.Pid("bridge"), "worker": s.Pid("worker")}
	load := perf.CallLoad{URL: s.URL, Token: token, Devices: []string{s.Device}, Clients: clients}
	// Warm up, then the RSS baseline.
	load.Duration = min(dur/10, 10*time.Second)
	load.Run(context.Background())
	rss0 := perf.RSSOfAll(b, pids)
	cpu0 := perf.ReadCPU("bosun-cloud", "bosun-bridge", "bosun-worker", "postgres")
	wait := profile(b, s, "p8", min(dur, 30*time.Second))
	load.Duration = dur
	r := load.Run(context.Background())
	wait()
	cpu := perf.ReadCPU("bosun-cloud", "bosun-bridge", "bosun-worker", "postgres").Sub(cpu0)
	rss1 := perf.RSSOfAll(b, pids)
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

// simFleet starts a cloud and n simulated devices (bosun-sim) and waits
// for every session.
func simFleet(b testing.TB, n int, alg string) (*perf.Cloud, *perf.Sim, []string) {
	var opts perf.CloudOptions
	if os.Getenv(perf.EnvProfile) != "" {
		opts.Env = []string{"BOSUN_PPROF_LISTEN=127.0.0.1:0"}
	}
	c := perf.StartCloud(b, opts)
	s := perf.StartSim(b, c, n, perf.SimOptions{KeyAlg: alg, Prefix: alg + "-", Duration: 15 * time.Minute})
	s.WaitAccepted(b, 2*time.Minute)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.ID(i)
	}
	return c, s, ids
}

// BenchmarkP1SignedCalls is P1 (and P2, P6 and the RSA figure, which are
// measured against it in the same run): signed calls per second through
// the whole path — POST /api/v1/devices/{id}/call → bosun-cloud →
// websocket → a simulated device (bosun-sim: the bridge's own session
// engine and built-in system.info) → back — from 100 devices with one
// caller each, against the crypto ceiling measured in the same run.
func BenchmarkP1SignedCalls(b *testing.B) {
	devices, dur := 100, 12*time.Second // the whole of bench.sh must fit in 15 minutes, P8's ten of them
	if perf.Quick() {
		devices, dur = 20, 5*time.Second
	}
	dur = durationEnv("BOSUN_P1_DURATION", dur)
	ctx := context.Background()
	c, sim, ids := simFleet(b, devices, "ed25519")
	load := perf.CallLoad{URL: c.URL, Token: c.Token, Devices: ids, Clients: devices, Duration: min(dur/4, 5*time.Second)}
	load.Run(ctx) // warm up: connections, caches, the JIT of the database's plans
	ceiling := perf.CryptoCeiling(b)
	names := []string{"bosun-cloud", "bosun-sim", "postgres", "perf.test"}
	cpu0 := perf.ReadCPU(names...)
	wait := func() {}
	if dir := os.Getenv(perf.EnvProfile); dir != "" {
		ch := perf.ProfileFromLog(filepath.Join(c.Dir, "cloud.log"), dir, "p1-cloud", min(dur, 30*time.Second))
		wait = func() {
			if err := <-ch; err != nil {
				b.Logf("profile: %v", err)
			}
		}
	}
	load.Duration = dur
	r := load.Run(ctx)
	wait()
	cpu := perf.ReadCPU(names...).Sub(cpu0)
	after := perf.CryptoCeiling(b) // the machine may have changed under the run: the lower ceiling is the fairer one
	ceiling = min(ceiling, after)
	p1 := perf.Row{ID: "P1", What: fmt.Sprintf("signed calls/s through the whole path, %d devices (bosun-sim), one caller each", devices),
		Result: r.Rate(), Unit: "calls/s", Baseline: "crypto ceiling: cores / (2 Ed25519 signs + 2 verifies of 1 KiB)", Base: ceiling,
		Goal: "≥ 0.5 × the crypto ceiling", Command: "./scripts/bench.sh P1",
		Notes: r.String() + "; " + cpu.PerCall(int64(r.Ops)) + " (perf.test is the load generator)"}
	p1.Met = r.Failed == 0 && r.Rate() >= 0.5*ceiling
	perf.Record(b, p1)
	if r.Failed > 0 {
		b.Errorf("P1: %d calls failed; first: %v", r.Failed, r.FirstErr)
	}

	// P2: the same load against MQTT through mosquitto, now.
	perf.RecordP2(b, r.LoadResult, devices, dur, "./scripts/bench.sh P1")

	// P6: one caller (unloaded), then an open loop at 40 % of P1's rate.
	lat := durationEnv("BOSUN_P6_DURATION", dur/2)
	one := perf.CallLoad{URL: c.URL, Token: c.Token, Devices: ids, Clients: 1, Duration: lat}.Run(ctx)
	open := perf.CallLoad{URL: c.URL, Token: c.Token, Devices: ids, Clients: 4 * devices, Rate: 0.4 * r.Rate(), Duration: lat}.Run(ctx)
	perf.Record(b, perf.Row{ID: "P6", What: "p99 latency of one call through the whole path, unloaded (one caller)",
		Result: perf.Ms(one.P99), Unit: "ms", Goal: "p99 ≤ 1.5 ms", Met: one.Failed == 0 && one.P99 <= 1500*time.Microsecond,
		Command: "./scripts/bench.sh P1", Notes: one.String()})
	perf.Record(b, perf.Row{ID: "P6-load", What: fmt.Sprintf("p99 latency under open-loop load at 40 %% of P1 (%.0f calls/s offered)", 0.4*r.Rate()),
		Result: perf.Ms(open.P99), Unit: "ms", Goal: "p99 ≤ 10 ms", Met: open.Failed == 0 && open.Late == 0 && open.P99 <= 10*time.Millisecond,
		Command: "./scripts/bench.sh P1", Notes: open.String()})
	for _, x := range []perf.CallResult{one, open} {
		if x.Failed > 0 {
			b.Errorf("P6: %d calls failed; first: %v", x.Failed, x.FirstErr)
		}
	}
	sim.Proc.Stop()
	c.Stop()

	// RSA device keys. bosun-sim signs every answer with the device's
	// RSA-3072 key, here on the same cores as the cloud: a few
	// milliseconds a call, work a real fleet does on each device. So the
	// figure compared is the cloud's side: the calls/s these cores would
	// carry at the CPU the cloud and PostgreSQL spent per call, with RSA
	// devices against as many Ed25519 devices called at the same rate
	// (per-call CPU depends on the rate: group commit and wake-ups are
	// shared by the calls that arrive together).
	rsaDevices := max(devices/5, 4)
	fleetCPU := func(alg string, rate float64) (perf.CallResult, perf.CPU) {
		fc, fsim, fids := simFleet(b, rsaDevices, alg)
		defer func() { fsim.Proc.Stop(); fc.Stop() }()
		l := perf.CallLoad{URL: fc.URL, Token: fc.Token, Devices: fids, Clients: rsaDevices, Duration: min(dur/4, 5*time.Second)}
		l.Run(ctx)
		l.Duration = dur / 2
		if rate > 0 { // an open loop at the RSA fleet's rate
			l.Clients, l.Rate = 4*rsaDevices, rate
		}
		c0 := perf.ReadCPU(names...)
		res := l.Run(ctx)
		return res, perf.ReadCPU(names...).Sub(c0)
	}
	rr, rcpu := fleetCPU("rsa", 0)
	er, ecpu := fleetCPU("ed25519", rr.Rate())
	capacity := func(c perf.CPU, calls int) float64 {
		per := (c["bosun-cloud"] + c["postgres"]).Seconds() / float64(max(calls, 1))
		if per <= 0 {
			return 0
		}
		return float64(runtime.NumCPU()) / per
	}
	ed, rsa := capacity(ecpu, er.Ops), capacity(rcpu, rr.Ops)
	perf.Record(b, perf.Row{ID: "P1-rsa", What: fmt.Sprintf("P1's cloud side with RSA-3072 device keys (%d devices): calls/s the cores carry at the cloud's and PostgreSQL's CPU per call", rsaDevices),
		Result: rsa, Unit: "calls/s", Baseline: fmt.Sprintf("the same for %d Ed25519 devices called at the RSA fleet's rate, same run", rsaDevices), Base: ed,
		Goal: "≥ 0.9 × the Ed25519 figure", Met: rr.Failed == 0 && er.Failed == 0 && ed > 0 && rsa >= 0.9*ed,
		Command: "./scripts/bench.sh P1",
		Notes: "RSA fleet: " + rr.String() + "; " + rcpu.PerCall(int64(rr.Ops)) +
			" (bosun-sim signs every answer with RSA on the same two cores; on a fleet that is each device's own work). " +
			"Ed25519 fleet at that rate: " + er.String() + "; " + ecpu.PerCall(int64(er.Ops))})
	for _, x := range []perf.CallResult{rr, er} {
		if x.Failed > 0 {
			b.Errorf("P1 RSA: %d calls failed; first: %v", x.Failed, x.FirstErr)
		}
	}
}

// TestCallFiguresShort is the short form of P1, P6 and P8 for
// ./scripts/test.sh: the same loads, tiny and bounded, checking that every
// call succeeds and that the open loop keeps its rate, not how fast.
func TestCallFiguresShort(t *testing.T) {
	ctx := context.Background()
	c, sim, ids := simFleet(t, 5, "ed25519")
	r := perf.CallLoad{URL: c.URL, Token: c.Token, Devices: ids, Clients: 5, Duration: 2 * time.Second}.Run(ctx)
	if r.Failed > 0 || r.Ops == 0 {
		t.Fatalf("P1 short: %s", r)
	}
	open := perf.CallLoad{URL: c.URL, Token: c.Token, Devices: ids, Clients: 20, Rate: 50, Duration: 2 * time.Second}.Run(ctx)
	if open.Failed > 0 || open.Late > 0 || open.Ops < 80 || open.Ops > 101 {
		t.Fatalf("P6 short, 50 calls/s for 2 s: %s", open)
	}
	// Every call the API answered is in PostgreSQL, with its audit row.
	var calls, audits int
	pool, err := pgx.Connect(ctx, c.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM calls WHERE status = 'succeeded'),
		(SELECT count(*) FROM audit_log WHERE action = 'call' AND outcome = 'succeeded')`).Scan(&calls, &audits); err != nil {
		t.Fatal(err)
	}
	if calls < r.Ops+open.Ops || audits != calls {
		t.Fatalf("%d succeeded calls and %d audit rows in PostgreSQL after %d + %d answered calls", calls, audits, r.Ops, open.Ops)
	}
	sim.Proc.Stop()
}
