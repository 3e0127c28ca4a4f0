package ota

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
	"go.uber.org/goleak"
)

// The kill -9 tests run the manager in a child process (this test binary,
// re-executed with BOSUN_OTA_CRASH_HELPER set), kill it with SIGKILL at a
// step of an update, check what is on disk, start it again and check again:
// the active slot is always complete and committed, or complete and
// awaiting its commit with a complete revert slot; never half written.

func TestMain(m *testing.M) {
	if os.Getenv("BOSUN_OTA_CRASH_HELPER") != "" {
		os.Exit(crashHelper())
	}
	// Every goroutine the manager starts has an owner that waits for it.
	goleak.VerifyTestMain(m)
}

// crashHelper runs the manager the way bosun-ota does, minus NATS: mode
// "run" starts the update when none is there and waits to be killed;
// mode "recover" opens the manager (which takes up what was interrupted)
// and exits once the update has settled.
func crashHelper() int {
	env := os.Getenv
	length, _ := strconv.ParseInt(env("CRASH_LENGTH"), 10, 64)
	sum, _ := hex.DecodeString(env("CRASH_SHA256"))
	ct, _ := strconv.Atoi(env("CRASH_COMMIT_TIMEOUT"))
	v := staticVerifier{TargetInfo{Length: length, Hashes: map[string][]byte{"sha256": sum}}}
	var outMu sync.Mutex // the job goroutine and this one both write
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	m, err := New(Config{Dir: env("CRASH_DIR"), Verifier: v, RetryBase: 5 * time.Millisecond, Hook: env("CRASH_HOOK"),
		OnStep: func(s string) { say("STEP %s", s) },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		say("ERROR %v", err)
		return 1
	}
	if env("CRASH_MODE") == "run" {
		if _, err := m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: env("CRASH_URL"), CommitTimeout: ct}); err != nil {
			say("ERROR %v", err)
			return 1
		}
		say("STARTED")
		select {} // until killed
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		settled := !m.running && (m.st.Job == nil || m.st.Job.HookRan)
		m.mu.Unlock()
		if settled {
			bs, _ := json.Marshal(m.BootState())
			say("SETTLED %s", bs)
			m.Close()
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	say("ERROR did not settle")
	return 1
}

type staticVerifier struct{ t TargetInfo }

func (s staticVerifier) Target(context.Context, string, string) (TargetInfo, error) { return s.t, nil }

// crashBundle is a bundle big enough that each step takes a moment: many
// files and some incompressible bytes.
func crashBundle(tb testing.TB) []byte {
	es := []entry{{name: "VERSION", body: "2.0.0\n"}}
	for i := range 200 {
		es = append(es, entry{name: fmt.Sprintf("lib/f%03d", i), body: strings.Repeat(fmt.Sprintf("%03d", i), 1000)})
	}
	pad := appBundle(tb, "pad", 600<<10) // incompressible
	es = append(es, entry{name: "data/blob", body: string(pad)})
	return makeBundle(tb, es...)
}

// tree describes a directory: path → "f:<sha256>", "l:<target>" or "d".
func tree(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.IsDir():
			out[rel] = "d"
		case d.Type()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			out[rel] = "l:" + t
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			out[rel] = "f:" + hex.EncodeToString(s[:8])
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func sameTree(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkDisk asserts the invariant on what a killed process left.
func checkDisk(t *testing.T, dir string, v1, v2 map[string]string) state {
	t.Helper()
	st, err := readState(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatalf("state after kill: %v", err)
	}
	want := map[string]map[string]string{"": v1, "hello/2.0.0": v2}
	check := func(slot string) {
		w, ok := want[st.Slots[slot].Target]
		if !ok {
			t.Fatalf("slot %s holds unknown target %q", slot, st.Slots[slot].Target)
		}
		if got := tree(t, filepath.Join(dir, "slots", slot)); !sameTree(got, w) {
			t.Fatalf("slot %s (%q) is not complete: %d entries, want %d", slot, st.Slots[slot].Target, len(got), len(w))
		}
	}
	check(st.Active)
	if !st.Committed {
		check(st.Revert)
	}
	return st
}

func TestKill9AtEachStep(t *testing.T) {
	runs := 2
	if os.Getenv("BOSUN_SOAK") == "1" {
		runs = 20
	}
	if n, err := strconv.Atoi(os.Getenv("BOSUN_OTA_KILL_RUNS")); err == nil && n > 0 {
		runs = n
	}
	body := crashBundle(t)
	sum := sha256.Sum256(body)
	// A throttled server, so that the download takes a while.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveRange(&slowWriter{ResponseWriter: w}, r, body, nil)
	}))
	defer srv.Close()
	v2dir := filepath.Join(t.TempDir(), "v2")
	if err := unpack(bytes.NewReader(body), v2dir, unpackLimits{maxBytes: 1 << 30, maxEntries: 10000}); err != nil {
		t.Fatal(err)
	}
	v2 := tree(t, v2dir)

	for _, step := range []string{"download", "verify", "unpack", "switch", "hook", "awaiting_commit"} {
		t.Run(step, func(t *testing.T) {
			outcomes := map[string]int{}
			for run := range runs {
				dir := filepath.Join(t.TempDir(), "ota")
				os.MkdirAll(filepath.Join(dir, "slots", "a", "bin"), 0o755)
				os.WriteFile(filepath.Join(dir, "slots", "a", "VERSION"), []byte("1.0.0\n"), 0o644)
				os.WriteFile(filepath.Join(dir, "slots", "a", "bin", "run"), []byte("#!/bin/sh\necho 1\n"), 0o755)
				v1 := tree(t, filepath.Join(dir, "slots", "a"))
				// The hook takes a moment, as restarting a program does.
				hook := filepath.Join(filepath.Dir(dir), "hook.sh")
				os.WriteFile(hook, []byte("#!/bin/sh\necho \"$BOSUN_OTA_REASON $1\" >> "+filepath.Join(filepath.Dir(dir), "hook.log")+"\nsleep 0.02\n"), 0o755)
				ct := 600
				if step == "awaiting_commit" {
					ct = 1
				}
				env := []string{"BOSUN_OTA_CRASH_HELPER=1", "CRASH_DIR=" + dir, "CRASH_URL=" + srv.URL + "/b",
					"CRASH_LENGTH=" + strconv.Itoa(len(body)), "CRASH_SHA256=" + hex.EncodeToString(sum[:]), "CRASH_COMMIT_TIMEOUT=" + strconv.Itoa(ct), "CRASH_HOOK=" + hook}

				// 1. Run until the step, then kill -9 at a random moment in it.
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), append(env, "CRASH_MODE=run")...)
				stdout, _ := cmd.StdoutPipe()
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				killed := make(chan struct{})
				var seen []string
				go func() {
					defer close(killed)
					sc := bufio.NewScanner(stdout)
					for sc.Scan() {
						seen = append(seen, sc.Text())
						if sc.Text() == "STEP "+step {
							time.Sleep(time.Duration(rand.IntN(10000)) * time.Microsecond) // jitter, not synchronisation
							cmd.Process.Signal(syscall.SIGKILL)
							break
						}
					}
					io.Copy(io.Discard, stdout)
				}()
				select {
				case <-killed:
				case <-time.After(20 * time.Second):
					cmd.Process.Signal(syscall.SIGQUIT) // its goroutines to stderr
					<-killed
					t.Fatalf("run %d: step %s never came; seen %q", run, step, seen)
				}
				cmd.Wait()
				if st := cmd.ProcessState; st == nil || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("run %d: the helper was not killed: %v", run, cmd.ProcessState)
				}
				st := checkDisk(t, dir, v1, v2)

				// 2. The commit deadline is on disk: wait until it passed.
				if !st.Committed {
					if d := time.Until(st.Deadline); d > 0 && d < 5*time.Second {
						<-time.After(d)
					}
				}

				// 3. Start again: it settles on a complete slot.
				rec := exec.Command(os.Args[0], "-test.run=^$")
				rec.Env = append(os.Environ(), append(env, "CRASH_MODE=recover")...)
				rec.Stderr = os.Stderr
				ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
				rec = exec.CommandContext(ctx, rec.Path, rec.Args[1:]...)
				rec.Env = append(os.Environ(), append(env, "CRASH_MODE=recover")...)
				out, err := rec.Output()
				cancel()
				if err != nil {
					t.Fatalf("run %d: recovery: %v\n%s", run, err, out)
				}
				line := string(out[bytes.LastIndex(out[:len(out)-1], []byte("\n"))+1:])
				after := checkDisk(t, dir, v1, v2)
				cur, _ := os.Readlink(filepath.Join(dir, "current"))
				if cur != filepath.Join("slots", after.Active) {
					t.Fatalf("run %d: current -> %q, active %s", run, cur, after.Active)
				}
				var bs rpcproto.OTABootState
				json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "SETTLED ")), &bs)
				if step == "hook" {
					// Killed in or before the hook: it ran (again) for slot b.
					hl := strings.TrimSpace(readFileT(t, filepath.Join(filepath.Dir(dir), "hook.log")))
					if !strings.HasSuffix(hl, "update "+filepath.Join(dir, "slots", "b")) {
						t.Fatalf("run %d: hook log %q", run, hl)
					}
				}
				switch {
				case step == "awaiting_commit":
					// Past its deadline: reverted to the committed slot a.
					if bs.ActiveSlot != "a" || !bs.IsCommitted {
						t.Fatalf("run %d: after the deadline %+v (%q)", run, bs, line)
					}
				default:
					// The update was taken up and awaits its commit on a
					// complete slot b.
					if bs.ActiveSlot != "b" || bs.IsCommitted || bs.RevertSlot != "a" {
						t.Fatalf("run %d: after recovery %+v (%q)", run, bs, line)
					}
				}
				outcomes[fmt.Sprintf("killed on %s/%v, came back on %s/%v", st.Active, st.Committed, bs.ActiveSlot, bs.IsCommitted)]++
			}
			t.Logf("kill -9 at %s, %d runs: %v", step, runs, outcomes)
		})
	}
}

// slowWriter spreads a response over time (64 KiB per millisecond), so that
// a kill lands inside the download.
type slowWriter struct{ http.ResponseWriter }

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 64<<10)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		s.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(time.Millisecond)
		p = p[k:]
	}
	return n, nil
}
