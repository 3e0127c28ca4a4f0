package perf

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
	"github.com/coder/websocket"
)

// StartPerfbase builds e2e/perf/cmd/perfbase and starts it with args (the
// subcommand first), returning the address it listens on. It stops when
// the test ends.
func StartPerfbase(tb testing.TB, args ...string) string {
	tb.Helper()
	bin := e2e.Build(tb, "./e2e/perf/cmd/perfbase")
	p := e2e.StartProcess(tb, tb.TempDir(), "perfbase-"+args[0], nil, filepath.Join(bin, "perfbase"), args...)
	var addr string
	e2e.Eventually(tb, 20*time.Second, "perfbase "+args[0]+" listening", func() error {
		out := p.Output()
		i := strings.Index(out, "listening ")
		if i < 0 || !strings.Contains(out[i:], "\n") {
			return fmt.Errorf("not yet: %q", out)
		}
		addr = strings.TrimSpace(out[i+len("listening ") : i+strings.Index(out[i:], "\n")])
		return nil
	})
	return addr
}

// WSEcho drives the raw JSON-RPC echo of perfbase wsecho at addr: clients
// websocket connections over loopback, each sending one unsigned JSON-RPC
// request of about EnvelopeSize bytes and waiting for its echo, one after
// another, for d. Every reply is checked: its id and result must be the
// request's.
func WSEcho(tb testing.TB, addr string, clients int, d time.Duration) LoadResult {
	tb.Helper()
	conns := make([]*websocket.Conn, clients)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range conns {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
		if err != nil {
			tb.Fatalf("perf: dialing the echo server (client %d): %v", i, err)
		}
		c.SetReadLimit(1 << 20)
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.Close(websocket.StatusNormalClosure, "")
		}
	}()
	params := filler(EnvelopeSize - 80)
	seq := make([]int, clients)
	return ClosedLoop(clients, d, 10*time.Second, func(ctx context.Context, w int) error {
		seq[w]++
		req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": seq[w], "method": "echo", "params": map[string]string{"data": params}})
		if err := conns[w].Write(ctx, websocket.MessageText, req); err != nil {
			return err
		}
		_, msg, err := conns[w].Read(ctx)
		if err != nil {
			return err
		}
		var rep struct {
			ID     int               `json:"id"`
			Result map[string]string `json:"result"`
		}
		if err := json.Unmarshal(msg, &rep); err != nil {
			return fmt.Errorf("echo reply: %w", err)
		}
		if rep.ID != seq[w] || rep.Result["data"] != params {
			return fmt.Errorf("echo reply id %d for request %d, or a different result", rep.ID, seq[w])
		}
		return nil
	})
}

// filler is n printable random characters.
func filler(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for i := range b {
		b[i] = abc[int(b[i])%len(abc)]
	}
	return string(b)
}

// WriteArtifact writes size random bytes to a new file in dir and returns
// its path and bytes.
func WriteArtifact(tb testing.TB, dir, name string, size int) (string, []byte) {
	tb.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path, data
}

// Download is what a concurrent download saw.
type Download struct {
	Clients  int
	Bytes    int64 // bytes received in all, by downloads that succeeded
	Failed   int   // downloads that failed or got other bytes
	Elapsed  time.Duration
	Slowest  time.Duration   // the longest single download
	Rounds   []time.Duration // when summed over rounds: each round's time
	FirstErr error
}

// MiBps is the aggregate throughput in MiB/s.
func (d Download) MiBps() float64 {
	if d.Elapsed <= 0 {
		return 0
	}
	return float64(d.Bytes) / (1 << 20) / d.Elapsed.Seconds()
}

// DownloadAll starts len(urls) downloads at once, each with its own TCP
// connection, and waits for all of them. Each body must be want exactly
// (compared as it streams, so no client holds a whole copy); one that is
// not, or that fails, counts as failed.
func DownloadAll(tb testing.TB, urls []string, want []byte) Download {
	tb.Helper()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res = Download{Clients: len(urls)}
	)
	start := time.Now()
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			n, err := fetchCompare(u, want)
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			res.Slowest = max(res.Slowest, took)
			if err != nil {
				res.Failed++
				if res.FirstErr == nil {
					res.FirstErr = err
				}
				return
			}
			res.Bytes += n
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// compareWriter checks that what is written to it is want, in order.
type compareWriter struct {
	want []byte
	off  int
	bad  bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if c.off+len(p) > len(c.want) || !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		c.bad = true
		return 0, fmt.Errorf("perf: the body differs from the artifact at or after byte %d", c.off)
	}
	c.off += len(p)
	return len(p), nil
}

// downloadClient is shared by every download: each concurrent request
// gets a connection of its own; none is compressed.
var downloadClient = &http.Client{
	Timeout:   5 * time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true},
}

// fetchCompare GETs u and compares the body with want as it streams.
func fetchCompare(u string, want []byte) (int64, error) {
	resp, err := downloadClient.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	cw := &compareWriter{want: want}
	n, err := io.Copy(cw, resp.Body)
	if err != nil {
		return 0, err
	}
	if n != int64(len(want)) {
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", u, n, len(want))
	}
	return n, nil
}

// downloadNotes says what a concurrent download saw, for a row's notes.
func downloadNotes(r Download) string {
	s := fmt.Sprintf("%d downloads, %.0f MiB in %.2f s, %d failed; slowest download %.2f s", r.Clients, float64(r.Bytes)/(1<<20), r.Elapsed.Seconds(), r.Failed, r.Slowest.Seconds())
	if len(r.Rounds) > 1 {
		s += "; rounds"
		for _, d := range r.Rounds {
			s += fmt.Sprintf(" %.2f s", d.Seconds())
		}
	}
	return s
}
