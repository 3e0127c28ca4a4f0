package perf

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ProcStats is one reading of a running Go server process: what the soak
// test samples to show that nothing grows with the calls it serves.
type ProcStats struct {
	At         time.Duration // since the start of the measured run
	Goroutines int           // runtime.NumGoroutine, from the goroutine profile
	HeapInuse  int64         // runtime.MemStats.HeapInuse right after a forced GC
	RSS        int64         // VmRSS of /proc/PID/status
	FDs        int           // entries of /proc/PID/fd
}

// ReadProcStats reads pid's figures; pprofAddr is where the process serves
// net/http/pprof (bosun-cloud's BOSUN_PPROF_LISTEN). The heap figure asks
// /debug/pprof/heap?gc=1&debug=1, which runs a GC first and then prints
// the MemStats (# HeapInuse = N): live heap, not garbage awaiting a cycle.
func ReadProcStats(ctx context.Context, pid int, pprofAddr string) (ProcStats, error) {
	var s ProcStats
	heap, err := pprofText(ctx, "http://"+pprofAddr+"/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return s, err
	}
	if s.HeapInuse, err = field(heap, "# HeapInuse = "); err != nil {
		return s, fmt.Errorf("heap profile: %w", err)
	}
	gor, err := pprofText(ctx, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	n, err := field(gor, "goroutine profile: total ")
	if err != nil {
		return s, fmt.Errorf("goroutine profile: %w", err)
	}
	s.Goroutines = int(n)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	kb, err := field(string(status), "VmRSS:")
	if err != nil {
		return s, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	s.RSS = kb << 10
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	return s, nil
}

// pprofText GETs a text profile, at most 16 MiB of it.
func pprofText(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return string(b), nil
}

// field finds the line starting with prefix and parses the integer after
// it (the first word: "12345 kB" gives 12345).
func field(text, prefix string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no line %q", prefix)
}

// TableStat is one table's size: exact rows (count(*)) and bytes on disk
// with its indexes and TOAST (pg_total_relation_size).
type TableStat struct {
	Rows  int64
	Bytes int64
}

// ReadTables reads the size of each table.
func ReadTables(ctx context.Context, conn *pgx.Conn, tables []string) (map[string]TableStat, error) {
	out := make(map[string]TableStat, len(tables))
	for _, t := range tables {
		var s TableStat
		// The names are the test's own constants, never input.
		q := fmt.Sprintf(`SELECT count(*), pg_total_relation_size('%s') FROM %s`, t, t)
		if err := conn.QueryRow(ctx, q).Scan(&s.Rows, &s.Bytes); err != nil {
			return nil, fmt.Errorf("size of %s: %w", t, err)
		}
		out[t] = s
	}
	return out, nil
}

// Slope is the least-squares slope of y over x (units of y per unit of
// x); 0 with fewer than two distinct x.
func Slope(x, y []float64) float64 {
	n := float64(len(x))
	if len(x) < 2 || len(x) != len(y) {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
