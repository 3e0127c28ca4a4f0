package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CallLoad drives POST /api/v1/devices/{id}/call.
type CallLoad struct {
	URL     string   // the cloud's base URL
	Token   string   // an operator's API token
	Devices []string // called round robin
	Method  string   // e.g. "system.info"
	Params  json.RawMessage

	// Closed loop: Clients callers, each calling again as soon as its call
	// returns. Open loop (Rate > 0): calls start at Rate per second
	// whatever the answers do, at most Clients in flight (a start that
	// finds them all busy counts as late, not as a call).
	Clients  int
	Rate     float64
	Duration time.Duration
}

// CallResult is what a CallLoad saw: the load's result, and for an open
// loop how many starts found every client busy.
type CallResult struct {
	LoadResult
	Max  time.Duration
	Late int64
}

func (r CallResult) String() string {
	s := fmt.Sprintf("%d calls in %.1fs (%.0f/s), %d failed, p50 %s, p99 %s, max %s", r.Ops, r.Elapsed.Seconds(),
		r.Rate(), r.Failed, ms(r.P50), ms(r.P99), ms(r.Max))
	if r.Late > 0 {
		s += fmt.Sprintf(", %d starts late", r.Late)
	}
	if r.FirstErr != nil {
		s += ", first error: " + r.FirstErr.Error()
	}
	return s
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// Run drives the load until Duration passed (or ctx ended).
func (l CallLoad) Run(ctx context.Context) CallResult {
	if l.Clients <= 0 {
		l.Clients = 1
	}
	if l.Method == "" {
		l.Method = "system.info"
	}
	body, _ := json.Marshal(map[string]any{"method": l.Method, "params": l.Params})
	if len(l.Params) == 0 {
		body, _ = json.Marshal(map[string]any{"method": l.Method})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: l.Clients * 2, MaxIdleConnsPerHost: l.Clients * 2,
		IdleConnTimeout: time.Minute}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	urls := make([]string, len(l.Devices))
	for i, d := range l.Devices {
		urls[i] = l.URL + "/api/v1/devices/" + d + "/call"
	}
	var (
		next, failed, late atomic.Int64
		firstErr           atomic.Value
		mu                 sync.Mutex
		lats               []time.Duration
	)
	one := func(i int64) {
		start := time.Now()
		err := call(ctx, client, urls[int(i)%len(urls)], l.Token, body)
		d := time.Since(start)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		mu.Lock()
		lats = append(lats, d)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	if l.Rate <= 0 {
		for range l.Clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					one(next.Add(1))
				}
			}()
		}
	} else {
		slots := make(chan struct{}, l.Clients)
		interval := time.Duration(float64(time.Second) / l.Rate)
		t := time.NewTicker(min(interval, time.Millisecond))
		defer t.Stop()
		sent := int64(0)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case now := <-t.C:
				due := int64(now.Sub(start) / interval)
				for ; sent < due; sent++ {
					select {
					case slots <- struct{}{}:
						wg.Add(1)
						go func(i int64) {
							defer wg.Done()
							one(i)
							<-slots
						}(next.Add(1))
					default:
						late.Add(1)
					}
				}
			}
		}
	}
	wg.Wait()
	r := CallResult{LoadResult: LoadResult{Failed: int(failed.Load()), Elapsed: time.Since(start)}, Late: late.Load()}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstErr = errors.New(v)
	}
	r.Ops = len(lats)
	if len(lats) > 0 {
		r.P50, r.P99 = percentiles(lats)
		r.Max = lats[len(lats)-1]
	}
	return r
}

func call(ctx context.Context, client *http.Client, url, token string, body []byte) error {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	// The status is the first field the API writes; a full decode would
	// cost the load generator more than the check is worth.
	if !bytes.Contains(b, []byte(`"status":"succeeded"`)) {
		return fmt.Errorf("call not succeeded: %.300s", b)
	}
	return nil
}

// CPU is the CPU time (user + system) processes used, read from
// /proc/PID/stat.
type CPU map[string]time.Duration

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

// ReadCPU sums, per name, the CPU time of the processes whose command name
// (/proc/PID/comm) starts with name: e.g. "postgres" sums every backend.
func ReadCPU(names ...string) CPU {
	out := CPU{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		c := strings.TrimSpace(string(comm))
		for _, n := range names {
			if strings.HasPrefix(c, n) {
				out[n] += procCPU(pid)
			}
		}
	}
	return out
}

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces, in parens).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick
}

// Sub is c - before, per name.
func (c CPU) Sub(before CPU) CPU {
	out := CPU{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

// PerCall formats the CPU per call of each name.
func (c CPU) PerCall(calls int64) string {
	if calls <= 0 {
		return ""
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f µs", k, float64(c[k].Microseconds())/float64(calls)))
	}
	return "CPU per call: " + strings.Join(parts, ", ")
}

// RSSSet is the resident set size, in KiB, of named processes.
type RSSSet map[string]int64

// RSSOfAll reads the RSS, in KiB, of each pid.
func RSSOfAll(tb testing.TB, pids map[string]int) RSSSet {
	tb.Helper()
	out := RSSSet{}
	for name, pid := range pids {
		out[name] = RSS(tb, pid) >> 10
	}
	return out
}

func (r RSSSet) String() string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", k, float64(r[k])/1024))
	}
	return strings.Join(parts, ", ")
}

// RSSGrowth is the largest relative growth of any process from before to
// after (0.1: 10 % more).
func RSSGrowth(before, after RSSSet) float64 {
	g := 0.0
	for k, b := range before {
		if b > 0 {
			g = max(g, float64(after[k]-b)/float64(b))
		}
	}
	return g
}
