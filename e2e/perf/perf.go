// Package perf holds the figures of docs/benchmarks.md (issue 11): each is a
// Go benchmark that starts real processes (bosun-cloud, bosun-sim,
// bosun-bridge, PostgreSQL, mosquitto), drives a bounded load, and records
// its result next to the baseline measured in the same run.
//
// Run them with scripts/bench.sh, which runs
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 20m ./e2e/perf
//
// and turns the rows recorded in $BOSUN_BENCH_ROWS into docs/benchmarks.md.
// Each benchmark ignores b.N beyond its first iteration: a figure is one
// bounded run, not a loop the testing package sizes.
//
// The short, bounded form of every figure runs in ./scripts/test.sh as
// TestFiguresShort: the same code with tiny sizes, checking that every
// figure works (no failed call, every device online), not how fast.
package perf

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvRows names the file (JSON lines) rows are appended to.
const EnvRows = "BOSUN_BENCH_ROWS"

// Row is one figure of docs/benchmarks.md: a result and, where the issue
// sets a goal relative to something, the baseline measured in the same run.
type Row struct {
	ID       string  `json:"id"`       // "P1" … "P8", or "B-crypto" etc. for baselines alone
	What     string  `json:"what"`     // one line: what was measured
	Result   float64 `json:"result"`   // the figure
	Unit     string  `json:"unit"`     // "calls/s", "ms", "KiB/device", "s", "MiB/s"
	Baseline string  `json:"baseline"` // what it is compared with; empty if absolute
	Base     float64 `json:"base"`     // the baseline's figure, same unit
	Ratio    float64 `json:"ratio"`    // Result / Base (0 when no baseline)
	Goal     string  `json:"goal"`     // the goal, as text: "≥ 0.5 × crypto ceiling"
	Met      bool    `json:"met"`      // whether the goal was met
	Command  string  `json:"command"`  // the command that reproduces just this figure
	Notes    string  `json:"notes"`    // what the run saw (failures, p50/p99, sizes)
	Short    bool    `json:"short"`    // recorded by the short form (never in the doc)
}

var rowsMu sync.Mutex

// Record logs r on tb, reports its figures as benchmark metrics when tb is
// a *testing.B, and appends it to $BOSUN_BENCH_ROWS when that is set.
func Record(tb testing.TB, r Row) {
	tb.Helper()
	if r.Base != 0 && r.Ratio == 0 {
		r.Ratio = r.Result / r.Base
	}
	tb.Logf("%s %s: %.4g %s (baseline %s %.4g, ratio %.3f; goal %s, met %v) %s",
		r.ID, r.What, r.Result, r.Unit, r.Baseline, r.Base, r.Ratio, r.Goal, r.Met, r.Notes)
	if b, ok := tb.(*testing.B); ok {
		unit := strings.ReplaceAll(r.Unit, " ", "-") // a metric's unit has no spaces
		b.ReportMetric(r.Result, unit)
		if r.Base != 0 {
			b.ReportMetric(r.Base, "baseline-"+unit)
			b.ReportMetric(r.Ratio, "ratio")
		}
	}
	path := os.Getenv(EnvRows)
	if path == "" {
		return
	}
	line, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	rowsMu.Lock()
	defer rowsMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\n", line); err != nil {
		tb.Fatal(err)
	}
}
