// Command callload drives POST /api/v1/devices/DEV/call {system.info}
// against a running stack (./run-dev.sh's, of any commit) with -c
// concurrent clients for -d after a warm-up, and prints calls/s, p50, p99
// and the CPU bosun-cloud, bosun-bridge, bosun-worker and postgres spent
// per call (from /proc, so run it on the stack's machine). It is how
// docs/benchmarks.md compares the call path before and after issue 11:
// the same client against two commits' stacks, one after the other.
//
//	go run ./perf/cmd/callload -url http://127.0.0.1:8080 -token "$TOKEN" -c 16 -d 20s
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/bosunhq/bosun/e2e/perf"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "cloud URL")
	token := flag.String("token", os.Getenv("BOSUN_TOKEN"), "API token (default $BOSUN_TOKEN)")
	dev := flag.String("device", "dev-1", "device")
	c := flag.Int("c", 16, "concurrent clients")
	d := flag.Duration("d", 20*time.Second, "duration")
	warm := flag.Duration("warm", 5*time.Second, "warm-up")
	flag.Parse()
	if *token == "" || *c < 1 || *d <= 0 {
		fmt.Fprintln(os.Stderr, "callload: want -token (or BOSUN_TOKEN), -c ≥ 1 and -d > 0")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *c}
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	body := []byte(`{"method":"system.info"}`)
	run := func(dur time.Duration) (n, failed int, lat []time.Duration) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		end := time.Now().Add(dur)
		for range *c {
			wg.Go(func() {
				for time.Now().Before(end) {
					t0 := time.Now()
					req, _ := http.NewRequest("POST", *url+"/api/v1/devices/"+*dev+"/call", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+*token)
					req.Header.Set("Content-Type", "application/json")
					resp, err := cl.Do(req)
					ok := false
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						ok = resp.StatusCode == 200 && bytes.Contains(b, []byte(`"succeeded"`))
					}
					el := time.Since(t0)
					mu.Lock()
					n++
					if !ok {
						failed++
					}
					lat = append(lat, el)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return
	}
	run(*warm)
	procs := []string{"bosun-cloud", "bosun-bridge", "bosun-worker", "postgres"}
	c0 := perf.ReadCPU(procs...)
	t0 := time.Now()
	n, failed, lat := run(*d)
	el := time.Since(t0)
	cpu := perf.ReadCPU(procs...).Sub(c0)
	if n == 0 {
		fmt.Fprintln(os.Stderr, "callload: no call finished")
		os.Exit(1)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("%d calls in %.1fs: %.0f calls/s, %d failed, p50 %.2f ms, p99 %.2f ms; %s\n", n, el.Seconds(),
		float64(n)/el.Seconds(), failed, float64(q(0.5).Microseconds())/1000, float64(q(0.99).Microseconds())/1000,
		cpu.PerCall(int64(n)))
	if failed > 0 {
		os.Exit(1)
	}
}
