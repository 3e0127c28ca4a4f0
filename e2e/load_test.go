package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCallsInARow sends system.info calls through the whole path — HTTP API
// → cloud → NATS → websocket → bridge → NATS → bosun-worker process → back —
// from 32 concurrent clients, and expects every one to succeed. Envelope v1
// refused everything after 16,384 messages in four minutes; this run goes
// past that in the default form (20,000 calls) and sends 100,000 with
// BOSUN_SOAK=1 (scripts/soak.sh). BOSUN_LOAD_CALLS overrides the count.
func TestCallsInARow(t *testing.T) {
	n := 20_000
	if os.Getenv("BOSUN_SOAK") == "1" {
		n = 100_000
	}
	if v, err := strconv.Atoi(os.Getenv("BOSUN_LOAD_CALLS")); err == nil && v > 0 {
		n = v
	}
	s := StartStack(t, Options{})
	ctx := context.Background()
	_, _, token := s.Credentials(t)
	Eventually(t, 30*time.Second, "dev-1 pending", func() error {
		_, err := s.CLI(ctx, "devices", "--pending")
		return err
	})
	Eventually(t, 30*time.Second, "dev-1 accepted", func() error {
		_, err := s.CLI(ctx, "accept", s.Device)
		return err
	})
	Eventually(t, 30*time.Second, "system.info answers", func() error {
		_, err := s.CLI(ctx, "call", s.Device, "system.info")
		return err
	})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}
	url := s.URL + "/api/v1/devices/" + s.Device + "/call"
	body := []byte(`{"method":"system.info"}`)
	call := func() (time.Duration, error) {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out struct {
			Status string `json:"status"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Status != "succeeded" {
			return 0, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
		}
		return time.Since(start), nil
	}

	const clients = 32
	var next, failed atomic.Int64
	lat := make([][]time.Duration, clients)
	var firstErr atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				d, err := call()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[c] = append(lat[c], d)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(float64(len(all)-1)*p)].Round(100 * time.Microsecond)
	}
	t.Logf("%d system.info calls, %d clients, in %v: %.0f calls/s, p50 %v, p99 %v, %d failed",
		n, clients, el.Round(time.Millisecond), float64(n)/el.Seconds(), pct(0.5), pct(0.99), failed.Load())
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d calls failed; first: %v", f, n, firstErr.Load())
	}
	if len(all) != n {
		t.Fatalf("%d calls succeeded, want %d", len(all), n)
	}
	// The device is still there, and still answers.
	if _, err := call(); err != nil {
		t.Fatalf("a call after the run: %v", err)
	}
}
