package perf

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// EnvProfile names a directory: when set, the call figures take CPU
// profiles of bosun-cloud and bosun-bridge during their load (the
// processes run with BOSUN_PPROF_LISTEN=127.0.0.1:0, so each says in its
// log where its profiler listens).
const EnvProfile = "BOSUN_PERF_PROFILE"

var profilerAddr = regexp.MustCompile(`profiler listening.*addr=(127\.0\.0\.1:[0-9]+)`)

// ProfileFromLog takes a CPU profile of the process whose log is logPath
// for d, in the background, and writes it to dir/name.pprof. It returns
// at once; wait on the channel for the outcome.
func ProfileFromLog(logPath, dir, name string, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			addr, err := liveProfiler(logPath)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
			defer cancel()
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
			}
			f, err := os.Create(filepath.Join(dir, name+".pprof"))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(f, resp.Body)
			return err
		}()
	}()
	return done
}

// liveProfiler finds the newest profiler address in the log that accepts
// a connection (a restarted process appends to its log; its address may
// take a moment to appear), trying for up to five seconds.
func liveProfiler(logPath string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, err := os.ReadFile(logPath)
		if err != nil {
			return "", err
		}
		all := profilerAddr.FindAllSubmatch(log, -1)
		if len(all) > 0 {
			addr := string(all[len(all)-1][1])
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return addr, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no live profiler address (is BOSUN_PPROF_LISTEN set?)", logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
