package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bosunhq/bosun/e2e"
)

// SimOptions tune StartSim. The zero value is Ed25519 keys, ids "sim-1"
// ... "sim-N", the bridge's default backoff, every device started at once.
type SimOptions struct {
	// Prefix of the device ids. Empty means "sim-".
	Prefix string
	// KeyAlg is "ed25519" (the default) or "rsa".
	KeyAlg string
	// Duration bounds the simulator. Defaults to 15m.
	Duration time.Duration
	// BackoffBase and BackoffCap are the bridges' reconnect backoff. Zero
	// means the bridge's defaults (1s, 60s).
	BackoffBase, BackoffCap time.Duration
	// Rate is devices started per second. 0 means all at once.
	Rate int
	// NoPreauth leaves the devices' keys unknown to the cloud (pending).
	NoPreauth bool
	// Args are more bosun-sim flags.
	Args []string
}

// Sim is one bosun-sim process.
type Sim struct {
	N       int
	Prefix  string
	DataDir string
	Status  string // http://ADDR/status
	Proc    *e2e.Process
}

// SimStatus is what bosun-sim's /status answers.
type SimStatus struct {
	Devices  int            `json:"devices"`
	Started  int            `json:"started"`
	Accepted int            `json:"accepted"`
	ByStatus map[string]int `json:"by_status"`
	Rejected map[string]int `json:"rejected"`
}

// StartSim preauthorises n simulated devices' keys on c (bosun-sim keys |
// bosun preauth --file) and starts bosun-sim run for them. It returns
// once the process runs; WaitAccepted waits for the sessions.
func StartSim(tb testing.TB, c *Cloud, n int, opts SimOptions) *Sim {
	tb.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "sim-"
	}
	if opts.KeyAlg == "" {
		opts.KeyAlg = "ed25519"
	}
	if opts.Duration <= 0 {
		opts.Duration = 15 * time.Minute
	}
	dir := tb.TempDir()
	s := &Sim{N: n, Prefix: opts.Prefix, DataDir: filepath.Join(dir, "devices")}
	common := []string{"--devices", strconv.Itoa(n), "--prefix", opts.Prefix, "--data-dir", s.DataDir, "--key-alg", opts.KeyAlg}
	bin := Bin(tb, "bosun-sim")
	list := c.cmd(tb, bin, append([]string{"keys"}, common...)...)
	if !opts.NoPreauth {
		file := filepath.Join(dir, "preauth.json")
		if err := os.WriteFile(file, []byte(list), 0o600); err != nil {
			tb.Fatal(err)
		}
		c.CLI(tb, "preauth", "--file", file)
	}
	listen := "127.0.0.1:" + strconv.Itoa(e2e.FreePort(tb))
	s.Status = "http://" + listen + "/status"
	args := append([]string{"run"}, common...)
	args = append(args, "--cloud-url", c.DeviceURL, "--cloud-public-key", c.CloudPublic,
		"--duration", opts.Duration.String(), "--status-listen", listen, "--rate", strconv.Itoa(opts.Rate))
	if opts.BackoffBase > 0 {
		args = append(args, "--backoff-base", opts.BackoffBase.String())
	}
	if opts.BackoffCap > 0 {
		args = append(args, "--backoff-cap", opts.BackoffCap.String())
	}
	args = append(args, opts.Args...)
	s.Proc = e2e.StartProcess(tb, dir, "bosun-sim", os.Environ(), bin, args...)
	e2e.Eventually(tb, 2*time.Minute, "bosun-sim status", func() error {
		if s.Proc.Exited() {
			tb.Fatalf("bosun-sim exited:\n%s", s.Proc.Output())
		}
		_, err := s.Get(context.Background())
		return err
	})
	return s
}

// ID returns the id of the i-th device (0-based).
func (s *Sim) ID(i int) string { return s.Prefix + strconv.Itoa(i+1) }

// Get fetches the simulator's status.
func (s *Sim) Get(ctx context.Context) (SimStatus, error) {
	var st SimStatus
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", s.Status, nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("bosun-sim status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// WaitAccepted waits until every device of the simulator has an accepted
// session, polling every 50ms, and returns how long that took.
func (s *Sim) WaitAccepted(tb testing.TB, timeout time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last SimStatus
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := s.Get(context.Background())
		if err == nil {
			last = st
			if st.Accepted == s.N {
				return time.Since(start)
			}
		}
		if s.Proc.Exited() {
			tb.Fatalf("bosun-sim exited: %+v\n%s", last, s.Proc.Output())
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d simulated devices accepted after %v: %+v", last.Accepted, s.N, timeout, last)
		}
		<-tick.C
	}
}
