package perf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/bosunhq/bosun/e2e/perf"
	"github.com/jackc/pgx/v5"
)

// The soak's sizes. The defaults are the short form ./scripts/test.sh
// runs; scripts/soak.sh fleet-soak sets 1,000 devices, 200 calls/s, 30m.
const (
	envSoakDevices  = "BOSUN_SOAK_DEVICES"
	envSoakRate     = "BOSUN_SOAK_RATE"
	envSoakDuration = "BOSUN_SOAK_DURATION"
	envSoakSample   = "BOSUN_SOAK_SAMPLE" // the sampling interval; defaults to the run / 60, 1s to 30s
)

// soakTables are the tables the soak's figures read. calls and audit_log
// grow by one row per call; the others hold one row per device (or
// replica, or token) and are only updated.
var soakTables = []string{"calls", "audit_log", "devices", "device_keys", "replicas", "api_tokens"}

// The bounds of "flat". W is the sample at the end of the warm-up, P the
// peak of calls in flight during the run (the load generator opens at
// most one connection per call in flight, and keeps it idle for a minute,
// so P bounds what the cloud holds for the load beyond W). Each bound
// would be broken many times over by a leak of one thing per call (the
// long form makes 360,000 calls) and by anything that grows with time
// rather than with what is in flight; docs/benchmarks.md, "Soak", says
// why each is what it is.
const (
	// Goroutines: every sample ≤ W × 1.10 + 4·P + 50, and their linear
	// fit grows ≤ 4·P + 50 over the run. A call in flight holds the
	// server's connection goroutine, its background reader and the
	// waiter for the device's answer (4 allows one more); the 50 and the
	// 10 % are timers and the GC's, pgx's and NATS's helpers coming and
	// going.
	goroutineGrowth   = 0.10
	goroutinesPerCall = 4
	goroutineSlack    = 50
	// Open fds: every sample ≤ W + P + 32: a socket per connection, plus
	// the pgx pool growing to its 16 and NATS's and the logs' files.
	fdSlack = 32
	// HeapInuse right after a GC: at the end ≤ W × 1.5 + 16 KiB·P + 8 MiB,
	// and its linear fit grows ≤ W × 0.25 + 16 KiB·P + 4 MiB over the run.
	// 16 KiB per connection is the server's read buffer and connection
	// state (goroutine stacks are not heap); 8 MiB is pgx's and net/http's
	// pools, which fill as they please.
	heapGrowth    = 0.50
	heapFitGrowth = 0.25
	heapPerCall   = 16 << 10
	heapSlack     = 8 << 20
	// RSS at the end ≤ W × 1.5 + 64 KiB·P + 32 MiB: the runtime returns
	// freed memory to the kernel lazily, so RSS follows the heap's peak,
	// not its live size (the heap bounds are the sharp ones); 64 KiB per
	// connection adds its goroutines' stacks.
	rssGrowth  = 0.50
	rssPerCall = 64 << 10
	rssSlack   = 32 << 20
	// calls and audit_log get exactly one row per call (checked row by
	// row); their bytes ≤ W's bytes + added rows × W's bytes per row ×
	// 1.25 + 1 MiB: a row is inserted once and updated (sent, succeeded)
	// at once, so a row costs what it cost at the warm-up, unless dead
	// tuples pile up that vacuum does not reclaim.
	rowBytesGrowth = 1.25
	tableSlack     = 1 << 20 // a new index page, an FSM or VM fork
	// Tables of fixed rows (devices, device_keys, replicas, api_tokens)
	// keep their row count; their bytes ≤ W × 4 + 1 MiB, and at the end
	// ≤ 1.25 × their bytes two thirds into the run + 1 MiB (the last third
	// does not grow). The hub's watch writes a new version of every
	// devices row each 20 s (last_seen) and autovacuum reclaims them
	// every minute (its naptime): up to 60/20 + 1 = 4 versions of a row.
	// PostgreSQL keeps a file's size after vacuum (it reuses the space),
	// so a table's bytes are a high-water mark: a stall that holds vacuum
	// back grows it once, for good, and that is not a leak; growth that
	// goes on to the end is.
	fixedVersions = 4
	fixedSettled  = 1.25
)

// TestSoak is the soak test (issue 12): BOSUN_SOAK_DEVICES simulated
// devices (bosun-sim: the bridge's real session engine over real
// websockets) on one bosun-cloud process and PostgreSQL, called through
// the API at BOSUN_SOAK_RATE calls/s (an open loop, round robin) for
// BOSUN_SOAK_DURATION after a warm-up. It samples the cloud process
// (goroutines, HeapInuse after a GC, RSS, open fds) and the tables' rows
// and bytes at the end of the warm-up, every BOSUN_SOAK_SAMPLE and at the
// end, asserts that every figure stays flat, and that every call got
// exactly one result: one 200 answer with its own call id, from the device
// called, one calls row and one audit row per id, nothing more.
func TestSoak(t *testing.T) {
	devices := intEnv(envSoakDevices, 50)
	rate := intEnv(envSoakRate, 50)
	dur := durationEnv(envSoakDuration, 20*time.Second)
	warm := min(max(dur/10, 2*time.Second), time.Minute)
	every := durationEnv(envSoakSample, min(max(dur/60, time.Second), 30*time.Second))
	if devices > perf.FleetLimit() {
		t.Fatalf("%s=%d: this machine's open-file limit holds %d devices", envSoakDevices, devices, perf.FleetLimit())
	}
	t.Logf("soak: %d devices, %d calls/s, %v after a warm-up of %v, sampled every %v", devices, rate, dur, warm, every)
	ctx := context.Background()

	pprofAddr := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(t))
	c := perf.StartCloud(t, perf.CloudOptions{Env: []string{"BOSUN_PPROF_LISTEN=" + pprofAddr}})
	sim := perf.StartSim(t, c, devices, perf.SimOptions{Duration: warm + dur + 10*time.Minute, Rate: 600})
	t.Cleanup(sim.Proc.Stop)
	sim.WaitAccepted(t, 5*time.Minute)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = sim.ID(i)
	}
	db, err := pgx.Connect(ctx, c.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	pid := c.Pid()

	load := &soakLoad{url: c.URL, token: c.Token, ids: ids, rate: rate, maxInFlight: max(10*rate, 20)}
	loadCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		load.run(loadCtx)
	}()
	// On a t.Fatal too: the load is ours to stop and wait for.
	defer func() { stop(); <-done }()
	// The warm-up: not a wait for a condition, the load settling.
	select {
	case <-time.After(warm):
	case <-done:
		t.Fatal("the load stopped during the warm-up")
	}
	// W, the sample every bound is measured against, is not taken in a
	// stall (a run once took it with 2,000 calls in flight, which loosened
	// every bound): wait, at most another warm-up, until no more than a
	// second's calls are in flight.
	for settle := time.Now(); load.inFlight.Load() > int64(rate) && time.Since(settle) < warm; {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-done:
			t.Fatal("the load stopped during the warm-up")
		}
	}

	type sample struct {
		proc   perf.ProcStats
		tables map[string]perf.TableStat
		calls  int64 // answered so far
	}
	var samples []sample
	start := time.Now()
	take := func() {
		t.Helper()
		p, err := perf.ReadProcStats(ctx, pid, pprofAddr)
		if err != nil {
			t.Fatalf("sampling bosun-cloud: %v", err)
		}
		p.At = time.Since(start)
		tb, err := perf.ReadTables(ctx, db, soakTables)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, sample{p, tb, load.answered.Load()})
	}
	take()
	tick := time.NewTicker(every)
	for time.Since(start) < dur {
		<-tick.C
		if c.Process().Exited() {
			t.Fatalf("bosun-cloud exited:\n%s", c.Process().Output())
		}
		take()
	}
	tick.Stop()
	stop()
	<-done
	elapsed := time.Since(start)
	w, end := samples[0], samples[len(samples)-1]

	// The figures: every sample, then the summary table for the docs.
	var tab strings.Builder
	fmt.Fprintf(&tab, "%8s %10s %10s %10s %8s %6s %12s %12s %12s %12s %10s\n", "t", "calls", "goroutines", "heap MiB", "RSS MiB", "fds",
		"calls rows", "calls MiB", "audit rows", "audit MiB", "devices KiB")
	for _, s := range samples {
		fmt.Fprintf(&tab, "%8s %10d %10d %10.1f %8.1f %6d %12d %12.1f %12d %12.1f %10.0f\n", s.proc.At.Round(time.Second), s.calls,
			s.proc.Goroutines, mib(s.proc.HeapInuse), mib(s.proc.RSS), s.proc.FDs,
			s.tables["calls"].Rows, mib(s.tables["calls"].Bytes), s.tables["audit_log"].Rows, mib(s.tables["audit_log"].Bytes),
			float64(s.tables["devices"].Bytes)/1024)
	}
	t.Logf("soak samples (t from the end of the warm-up):\n%s", tab.String())

	x := make([]float64, len(samples))
	heapY := make([]float64, len(samples))
	for i, s := range samples {
		x[i] = s.proc.At.Seconds()
		heapY[i] = float64(s.proc.HeapInuse)
	}
	gorY := make([]float64, len(samples))
	for i, s := range samples {
		gorY[i] = float64(s.proc.Goroutines)
	}
	gorFit := perf.Slope(x, gorY) * elapsed.Seconds()
	heapSlope := perf.Slope(x, heapY) // bytes per second
	heapFit := heapSlope * elapsed.Seconds()
	peak := load.peak.Load()

	var fails []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			fails = append(fails, fmt.Sprintf(format, args...))
		}
	}
	gorMax := int(float64(w.proc.Goroutines)*(1+goroutineGrowth)) + goroutinesPerCall*int(peak) + goroutineSlack
	fdMax := w.proc.FDs + int(peak) + fdSlack
	for _, s := range samples {
		check(s.proc.Goroutines <= gorMax, "goroutines %d at %v > bound %d", s.proc.Goroutines, s.proc.At.Round(time.Second), gorMax)
		check(s.proc.FDs <= fdMax, "open fds %d at %v > bound %d", s.proc.FDs, s.proc.At.Round(time.Second), fdMax)
	}
	gorFitMax := float64(goroutinesPerCall*peak + goroutineSlack)
	check(gorFit <= gorFitMax, "goroutines' linear fit grows %.1f over the run > bound %.0f", gorFit, gorFitMax)
	heapMax := float64(w.proc.HeapInuse)*(1+heapGrowth) + float64(heapPerCall*peak) + heapSlack
	check(float64(end.proc.HeapInuse) <= heapMax, "HeapInuse %.1f MiB at the end > bound %.1f MiB", mib(end.proc.HeapInuse), heapMax/(1<<20))
	heapFitMax := float64(w.proc.HeapInuse)*heapFitGrowth + float64(heapPerCall*peak) + heapSlack/2
	check(heapFit <= heapFitMax, "HeapInuse's linear fit grows %.1f MiB over the run > bound %.1f MiB", heapFit/(1<<20), heapFitMax/(1<<20))
	rssMax := float64(w.proc.RSS)*(1+rssGrowth) + float64(rssPerCall*peak) + rssSlack
	check(float64(end.proc.RSS) <= rssMax, "RSS %.1f MiB at the end > bound %.1f MiB", mib(end.proc.RSS), rssMax/(1<<20))

	// Tables: the call tables grow by what the calls write, no more; the
	// fixed ones keep their rows and their size.
	final, err := perf.ReadTables(ctx, db, soakTables)
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[string]float64{}
	for _, name := range []string{"calls", "audit_log"} {
		a, b := w.tables[name], end.tables[name]
		perRow := float64(a.Bytes) / float64(max(a.Rows, 1))
		bound := float64(a.Bytes) + float64(b.Rows-a.Rows)*perRow*rowBytesGrowth + tableSlack
		bounds[name] = bound
		check(float64(b.Bytes) <= bound, "%s: %.1f MiB for %d rows at the end > bound %.1f MiB (%.0f B/row at the warm-up's %d rows)",
			name, mib(b.Bytes), b.Rows, bound/(1<<20), perRow, a.Rows)
	}
	for _, name := range []string{"devices", "device_keys", "replicas", "api_tokens"} {
		a, b := w.tables[name], final[name]
		var twoThirds int64
		for _, s := range samples {
			if s.proc.At <= elapsed*2/3 {
				twoThirds = s.tables[name].Bytes
			}
		}
		bound := min(float64(a.Bytes)*fixedVersions, float64(twoThirds)*fixedSettled) + tableSlack
		bounds[name] = bound
		check(b.Rows == a.Rows, "%s: %d rows at the end, %d after the warm-up", name, b.Rows, a.Rows)
		check(float64(b.Bytes) <= bound, "%s: %d KiB at the end > bound %.0f KiB (%d KiB after the warm-up, %d KiB two thirds into the run)",
			name, b.Bytes>>10, bound/1024, a.Bytes>>10, twoThirds>>10)
	}

	// Zero lost or duplicated results.
	lost := load.verify(t, ctx, db)
	fails = append(fails, lost...)

	// The table the docs quote.
	var doc strings.Builder
	row := func(what string, a, b, bound string) { fmt.Fprintf(&doc, "| %s | %s | %s | %s |\n", what, a, b, bound) }
	fmt.Fprintf(&doc, "Soak: %d simulated devices, %d calls/s (system.info, open loop) for %v after a %v warm-up: %d calls answered, %d failed, %d late starts, peak %d in flight; p50 %s, p99 %s, max %s; %d samples, every %v\n\n",
		devices, rate, elapsed.Round(time.Second), warm, load.answered.Load(), load.failed.Load(), load.late.Load(), peak,
		load.lat(0.50), load.lat(0.99), load.lat(1), len(samples), every)
	fmt.Fprintf(&doc, "| bosun-cloud / PostgreSQL | after warm-up | end | bound |\n|---|---|---|---|\n")
	row("goroutines", strconv.Itoa(w.proc.Goroutines), strconv.Itoa(end.proc.Goroutines), fmt.Sprintf("every sample ≤ %d", gorMax))
	row("goroutines, linear fit", "", fmt.Sprintf("%+.1f over the run", gorFit), fmt.Sprintf("≤ %+.0f", gorFitMax))
	row("HeapInuse after GC", fmtMiB(w.proc.HeapInuse), fmtMiB(end.proc.HeapInuse), fmt.Sprintf("≤ %.1f MiB", heapMax/(1<<20)))
	row("HeapInuse, linear fit", fmt.Sprintf("%+.1f KiB/min", heapSlope*60/1024), fmt.Sprintf("%+.2f MiB over the run", heapFit/(1<<20)),
		fmt.Sprintf("≤ %+.1f MiB", heapFitMax/(1<<20)))
	row("RSS", fmtMiB(w.proc.RSS), fmtMiB(end.proc.RSS), fmt.Sprintf("≤ %.1f MiB", rssMax/(1<<20)))
	row("open fds", strconv.Itoa(w.proc.FDs), strconv.Itoa(end.proc.FDs), fmt.Sprintf("every sample ≤ %d", fdMax))
	for _, name := range soakTables {
		a, b := w.tables[name], final[name]
		row(name+" (rows, size)", fmt.Sprintf("%d, %s", a.Rows, fmtMiB(a.Bytes)), fmt.Sprintf("%d, %s", b.Rows, fmtMiB(b.Bytes)),
			fmt.Sprintf("≤ %.2f MiB", bounds[name]/(1<<20)))
	}
	row("results", "", fmt.Sprintf("%d answers, %d distinct call ids", load.answered.Load(), load.distinct), "one per call: lost 0, duplicated 0")
	t.Logf("soak figures:\n%s", doc.String())
	if out := os.Getenv("BOSUN_SOAK_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(doc.String()+"\n```\n"+tab.String()+"```\n"), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, f := range fails {
		t.Error(f)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", mib(b)) }

// soakCall is one answered call: its id and the index of the device called.
type soakCall struct {
	id  string
	dev int32
}

// soakLoad calls system.info on its devices round robin at rate per second,
// an open loop: a start that finds maxInFlight calls under way counts as
// late (and fails the soak) rather than waiting.
type soakLoad struct {
	url, token  string
	ids         []string
	rate        int
	maxInFlight int

	started, answered, failed, late atomic.Int64
	inFlight, peak                  atomic.Int64

	mu       sync.Mutex // guards the following
	calls    []soakCall
	lats     []time.Duration
	errs     []string // the first few failures
	distinct int      // set by verify
}

func (l *soakLoad) run(ctx context.Context) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: l.maxInFlight, MaxIdleConnsPerHost: l.maxInFlight,
		IdleConnTimeout: time.Minute}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	body := []byte(`{"method":"system.info","timeout":"30s"}`)
	slots := make(chan struct{}, l.maxInFlight)
	interval := time.Second / time.Duration(l.rate)
	t := time.NewTicker(min(interval, time.Millisecond))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for due := int64(now.Sub(start) / interval); sent < due; sent++ {
				select {
				case slots <- struct{}{}:
				default:
					l.late.Add(1)
					continue
				}
				n := l.started.Add(1) - 1
				in := l.inFlight.Add(1)
				for p := l.peak.Load(); in > p && !l.peak.CompareAndSwap(p, in); p = l.peak.Load() {
				}
				wg.Add(1)
				go func(dev int32) {
					defer wg.Done()
					defer func() { l.inFlight.Add(-1); <-slots }()
					l.one(client, dev, body)
				}(int32(n % int64(len(l.ids))))
			}
		}
	}
}

// one makes one call and checks its answer: 200, succeeded, for the
// device called, with system.info's result (the worker's version).
func (l *soakLoad) one(client *http.Client, dev int32, body []byte) {
	id := l.ids[dev]
	t0 := time.Now()
	err := func() error {
		req, err := http.NewRequest(http.MethodPost, l.url+"/api/v1/devices/"+id+"/call", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+l.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d: %.200s", id, resp.StatusCode, b)
		}
		var c struct {
			ID       string `json:"id"`
			DeviceID string `json:"device_id"`
			Status   string `json:"status"`
			Result   struct {
				Versions map[string]string `json:"versions"`
			} `json:"result"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("%s: %v: %.200s", id, err, b)
		}
		if c.Status != "succeeded" || c.ID == "" || c.DeviceID != id || c.Result.Versions["worker"] == "" {
			return fmt.Errorf("%s: answer %.300s", id, b)
		}
		d := time.Since(t0)
		l.mu.Lock()
		l.calls = append(l.calls, soakCall{c.ID, dev})
		l.lats = append(l.lats, d)
		l.mu.Unlock()
		return nil
	}()
	if err != nil {
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 5 {
			l.errs = append(l.errs, err.Error())
		}
		l.mu.Unlock()
		return
	}
	l.answered.Add(1)
}

// lat is the q-quantile of the answered calls' latency (nearest rank).
func (l *soakLoad) lat(q float64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lats) == 0 {
		return "-"
	}
	s := append([]time.Duration(nil), l.lats...)
	slices.Sort(s)
	i := min(max(int(q*float64(len(s))+0.5)-1, 0), len(s)-1)
	return fmt.Sprintf("%.2f ms", float64(s[i])/1e6)
}

// verify checks, after the load stopped, that every call got exactly one
// result: every start ended in one answer, none failed or started late,
// the answers' call ids are distinct, and PostgreSQL holds exactly those
// calls — one succeeded calls row and one succeeded audit row per id, for
// the device called, and no row for any other call. It returns what is
// wrong.
func (l *soakLoad) verify(t *testing.T, ctx context.Context, db *pgx.Conn) []string {
	t.Helper()
	var bad []string
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.answered.Load() + l.failed.Load(); n != l.started.Load() {
		bad = append(bad, fmt.Sprintf("%d calls started, %d ended (answered or failed)", l.started.Load(), n))
	}
	if l.failed.Load() > 0 || l.late.Load() > 0 {
		bad = append(bad, fmt.Sprintf("%d calls failed, %d starts late; first failures: %v", l.failed.Load(), l.late.Load(), l.errs))
	}
	want := make(map[string]int32, len(l.calls))
	for _, c := range l.calls {
		if _, dup := want[c.id]; dup {
			bad = append(bad, "call id "+c.id+" answered twice")
			continue
		}
		want[c.id] = c.dev
	}
	l.distinct = len(want)
	if len(l.calls) == 0 {
		bad = append(bad, "no call answered")
	}
	scan := func(what, q string) {
		rows, err := db.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := make(map[string]bool, len(want))
		var rowsN, extra, wrong int
		var first []string
		for rows.Next() {
			var id, dev, status, worker string
			if err := rows.Scan(&id, &dev, &status, &worker); err != nil {
				t.Fatal(err)
			}
			rowsN++
			d, ok := want[id]
			off := false
			switch {
			case !ok || seen[id]: // a call nobody made, or a second row for one
				extra, off = extra+1, true
			case dev != l.ids[d] || status != "succeeded" || worker == "":
				wrong, off = wrong+1, true
			}
			if off && len(first) < 3 {
				first = append(first, fmt.Sprintf("%s %s %s %q", id, dev, status, worker))
			}
			if ok {
				seen[id] = true
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if missing := len(want) - len(seen); extra > 0 || wrong > 0 || missing != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d rows for %d answered calls: %d missing, %d extra or repeated, %d wrong; e.g. %v",
				what, rowsN, len(want), missing, extra, wrong, first))
		}
	}
	scan("calls", `SELECT id::text, device_id, status, coalesce(result->'versions'->>'worker', '') FROM calls`)
	scan("audit_log", `SELECT coalesce(detail->>'call_id', ''), target, outcome, detail->>'method' FROM audit_log WHERE action = 'call'`)
	return bad
}

func TestSlope(t *testing.T) {
	for _, tc := range []struct {
		name string
		x, y []float64
		want float64
	}{
		{"flat", []float64{0, 1, 2, 3}, []float64{5, 5, 5, 5}, 0},
		{"line", []float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}, 2},
		{"noise around a line", []float64{0, 1, 2, 3}, []float64{0, 2, 2, 4}, 1.2},
		{"falling", []float64{0, 10, 20}, []float64{30, 20, 10}, -1},
		{"one point", []float64{1}, []float64{1}, 0},
		{"one x", []float64{2, 2}, []float64{1, 5}, 0},
	} {
		if got := perf.Slope(tc.x, tc.y); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: Slope = %v, want %v", tc.name, got, tc.want)
		}
	}
}
