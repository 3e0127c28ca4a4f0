package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats.go"
)

// The kill -9 tests of issue 10 with real processes: the bosun-bridge and
// bosun-ota binaries, built once per test run, on a data directory of
// their own; a real release repository (TUF) the worker reads with
// --release-metadata; a throttled HTTP server for the bundle; the test
// drives ota.update over the device's NATS and kills one of the two
// processes with SIGKILL as the worker enters a step of the update (its
// "ota step" debug log line), at a random moment inside it.
//
//   - worker: bosun-ota is killed and started again. Right after the kill
//     the boot state on disk names a committed slot with complete content,
//     or an uncommitted one with a complete revert slot; after the restart
//     the update finishes, is committed (or times out and reverts), and the
//     active slot holds exactly the bundle's files or the old ones.
//   - bridge: bosun-bridge is killed while bosun-ota goes on (its reports
//     spool in <data>/ota/reports) and started again. In the end the
//     bridge's outbox holds every report of the update, seq 1, 2, 3, …
//     without a gap, statuses in order, ending in succeeded or rolled_back.
//
// The cloud is not needed: the bridge's cloud URL is a closed port, so
// everything the worker reports stays in its outbox, where the test reads
// it. Runs per step: 2, 20 with BOSUN_SOAK=1 (scripts/soak.sh ota), or
// BOSUN_FAULT_RUNS (scripts/soak.sh fault), or BOSUN_OTA_KILL_RUNS.

// killSteps are the steps of an update a kill comes in; "commit" is
// ota.commit (once it is on disk), "revert" the revert after the commit
// timeout (while its hook runs).
var killSteps = []string{"download", "verify", "unpack", "switch", "hook", "awaiting_commit", "commit", "revert"}

func TestKill9ThroughBridge(t *testing.T) {
	runs := 2
	if os.Getenv("BOSUN_SOAK") == "1" {
		runs = 20
	}
	for _, env := range []string{"BOSUN_FAULT_RUNS", "BOSUN_OTA_KILL_RUNS"} { // the latter wins
		if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
			runs = n
		}
	}
	fx := newKillFixture(t)
	// Runs of the bridge kills go on side by side: most of their time is
	// the worker waiting out the 10 s delivery timeout of a report that
	// was in flight when the bridge died.
	for _, victim := range []struct {
		name     string
		parallel int
	}{{"worker", 1}, {"bridge", 6}} {
		t.Run(victim.name, func(t *testing.T) {
			var mu sync.Mutex
			results := map[string]*killSummary{}
			for _, step := range killSteps {
				results[step] = &killSummary{step: step}
			}
			sem := make(chan struct{}, victim.parallel)
			var wg sync.WaitGroup
			for _, step := range killSteps {
				for run := range runs {
					wg.Go(func() {
						sem <- struct{}{}
						defer func() { <-sem }()
						// t.Run may be called from several goroutines at once.
						t.Run(fmt.Sprintf("%s/run%02d", step, run), func(t *testing.T) {
							r := fx.run(t, victim.name, step, run)
							mu.Lock()
							results[step].add(r)
							mu.Unlock()
						})
					})
				}
			}
			wg.Wait()
			var rows []killSummary
			for _, step := range killSteps {
				if results[step].runs > 0 { // not filtered out with -run
					rows = append(rows, *results[step])
				}
			}
			t.Logf("kill -9 of the %s, %d runs per step:\n%s", victim.name, runs, summaryTable(rows))
		})
	}
}

// killFixture is what every run shares: the binaries, the bundles, the
// release repository and the bundle server.
type killFixture struct {
	bridgeBin, otaBin string
	cloudKey          string // the cloud's public key (PEM) the bridge pins
	rootFile, metaDir string
	url               string            // of the v2 bundle
	v1, v2            map[string]string // slot trees (see tree)
}

func newKillFixture(t *testing.T) *killFixture {
	t.Helper()
	bin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/",
		"github.com/bosunhq/bosun/device/cmd/bosun-bridge", "github.com/bosunhq/bosun/device/cmd/bosun-ota")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fx := &killFixture{bridgeBin: filepath.Join(bin, "bosun-bridge"), otaBin: filepath.Join(bin, "bosun-ota")}

	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	fx.cloudKey = filepath.Join(dir, "cloud_public.pem")
	if err := keys.SavePublic(fx.cloudKey, pub); err != nil {
		t.Fatal(err)
	}

	v2, files := killBundle(t)
	fx.v2 = treeOf(files)
	fx.v1 = treeOf(v1Files)
	root, meta := releaseRepo(t, map[string][]byte{"2.0.0": v2})
	fx.rootFile, fx.metaDir = filepath.Join(dir, "root.json"), meta
	if err := os.WriteFile(fx.rootFile, root, 0o600); err != nil {
		t.Fatal(err)
	}
	// Throttled (32 KiB every 2 ms, about 16 MB/s), so that the download
	// lasts long enough to be hit; Range requests served by ServeContent.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(&throttled{w}, r, "hello-2.0.0.tar.gz", time.Time{}, bytes.NewReader(v2))
	}))
	t.Cleanup(srv.Close)
	fx.url = srv.URL + "/hello-2.0.0.tar.gz"
	return fx
}

// throttled spreads a response over time. A write error (the worker was
// killed) ends the handler at once.
type throttled struct{ http.ResponseWriter }

func (s *throttled) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 32<<10)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		s.ResponseWriter.(http.Flusher).Flush()
		time.Sleep(2 * time.Millisecond) // throttling, not synchronisation
		p = p[k:]
	}
	return n, nil
}

// v1Files is the factory content of slot a.
var v1Files = map[string]string{"VERSION": "1.0.0\n", "bin/run": "#!/bin/sh\necho 1.0.0\n"}

// killBundle is the v2 bundle (tar.gz) and its files: many small files and
// an incompressible megabyte and a half, so that each step takes a moment.
func killBundle(tb testing.TB) ([]byte, map[string]string) {
	files := map[string]string{"VERSION": "2.0.0\n", "bin/run": "#!/bin/sh\necho 2.0.0\n"}
	for i := range 40 {
		files[fmt.Sprintf("lib/f%02d", i)] = strings.Repeat(fmt.Sprintf("%02d", i), 1500)
	}
	blob := make([]byte, 1536<<10)
	rand.Read(blob)
	files["data/blob"] = string(blob)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			tb.Fatal(err)
		}
		io.WriteString(tw, files[n])
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	zw.Close()
	return buf.Bytes(), files
}

// treeOf is the tree (see tree) that a slot holding files has.
func treeOf(files map[string]string) map[string]string {
	out := map[string]string{".": "d"}
	for n, body := range files {
		s := sha256.Sum256([]byte(body))
		out[n] = "f:" + hex.EncodeToString(s[:])
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			out[d] = "d"
		}
	}
	return out
}

// tree describes a directory: relative path → "d", "f:<sha256>" or
// "l:<link target>".
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
			out[filepath.ToSlash(rel)] = "d"
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "l:" + l
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			out[filepath.ToSlash(rel)] = "f:" + hex.EncodeToString(s[:])
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("reading slot %s: %v", dir, err)
	}
	return out
}

func treeDiff(got, want map[string]string) string {
	var d []string
	for k, v := range want {
		if got[k] != v {
			d = append(d, "missing or different: "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			d = append(d, "extra: "+k)
		}
	}
	slices.Sort(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("… %d more", len(d)-5))
	}
	return strings.Join(d, "; ")
}

// diskState is what the test reads of <data>/ota/state.json (its format is
// device/internal/ota's state).
type diskState struct {
	Active    string    `json:"active_slot"`
	Committed bool      `json:"is_committed"`
	Revert    string    `json:"revert_slot"`
	Deadline  time.Time `json:"commit_deadline"`
	Slots     map[string]*struct {
		Target string `json:"target"`
	} `json:"slots"`
	Job *struct {
		ID      string `json:"id"`
		Phase   string `json:"phase"`
		HookRan bool   `json:"hook_ran"`
	} `json:"job"`
}

// checkSlots asserts the invariant on a data directory: the active slot is
// complete (exactly the files of the target state.json says it holds), and
// when it is not committed, so is the revert slot and there is a deadline.
func (fx *killFixture) checkSlots(t *testing.T, data string) diskState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "ota", "state.json"))
	if err != nil {
		t.Fatalf("boot state: %v", err)
	}
	var st diskState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("boot state %s: %v", b, err)
	}
	check := func(role, slot string) {
		if slot != "a" && slot != "b" || st.Slots[slot] == nil {
			t.Fatalf("%s slot %q is not a complete slot: %s", role, slot, b)
		}
		want := map[string]map[string]string{"": fx.v1, "hello/2.0.0": fx.v2}[st.Slots[slot].Target]
		if want == nil {
			t.Fatalf("%s slot %s holds the unknown target %q", role, slot, st.Slots[slot].Target)
		}
		if d := treeDiff(tree(t, filepath.Join(data, "ota", "slots", slot)), want); d != "" {
			t.Fatalf("%s slot %s (%q) is half written: %s", role, slot, st.Slots[slot].Target, d)
		}
	}
	check("active", st.Active)
	if !st.Committed {
		check("revert", st.Revert)
		if st.Revert == st.Active || st.Deadline.IsZero() {
			t.Fatalf("uncommitted slot %s without a revert slot or deadline: %s", st.Active, b)
		}
	}
	return st
}

// killResult is one run's outcome.
type killResult struct {
	outcome string // "committed new", "reverted", "committed old"
	lost    int    // seqs missing from the outbox
	dup     int    // outbox entries whose seq came before
	spooled int    // reports in <data>/ota/reports when the bridge came back
	// landed is the step the worker was in when it died: the last "ota
	// step" line it logged (worker kills only).
	landed string
}

type killSummary struct {
	step                       string
	runs, newer, reverted, old int
	lost, dup, spooled         int
	inStep                     int            // worker kills that landed in the step itself
	later                      map[string]int // the others: the step they landed in
}

func (s *killSummary) add(r killResult) {
	s.runs++
	switch r.outcome {
	case "committed new":
		s.newer++
	case "reverted":
		s.reverted++
	default:
		s.old++
	}
	s.lost += r.lost
	s.dup += r.dup
	s.spooled += r.spooled
	switch r.landed {
	case "":
	case s.step:
		s.inStep++
	default:
		if s.later == nil {
			s.later = map[string]int{}
		}
		s.later[r.landed]++
	}
}

func (s killSummary) String() string {
	landed := ""
	if s.inStep > 0 || len(s.later) > 0 {
		landed = fmt.Sprintf("; the kill landed in %s %d times, later %v", s.step, s.inStep, s.later)
	}
	return fmt.Sprintf("%d runs: %d committed new, %d reverted, %d committed old; reports lost %d, duplicated %d; %d reports spooled while the bridge was down%s",
		s.runs, s.newer, s.reverted, s.old, s.lost, s.dup, s.spooled, landed)
}

func summaryTable(rows []killSummary) string {
	var b strings.Builder
	// in step: worker kills that came while the worker was still in the
	// step (its last "ota step" line); spooled: reports the worker held
	// while the bridge was down.
	fmt.Fprintf(&b, "%-16s %5s %14s %9s %14s %13s %11s %8s %8s\n", "step", "runs", "committed new", "reverted", "committed old", "reports lost", "duplicated", "spooled", "in step")
	for _, r := range rows {
		in := "-"
		if r.inStep > 0 || len(r.later) > 0 {
			in = strconv.Itoa(r.inStep)
		}
		fmt.Fprintf(&b, "%-16s %5d %14d %9d %14d %13d %11d %8d %8s\n", r.step, r.runs, r.newer, r.reverted, r.old, r.lost, r.dup, r.spooled, in)
	}
	for _, r := range rows {
		if len(r.later) > 0 {
			fmt.Fprintf(&b, "killed at %s, the worker was already in: %v\n", r.step, r.later)
		}
	}
	return b.String()
}

// run is one update with one kill -9: of the victim ("worker" or
// "bridge") as the worker enters step.
func (fx *killFixture) run(t *testing.T, victim, step string, run int) killResult {
	t.Helper()
	data := t.TempDir()
	for n, body := range v1Files {
		p := filepath.Join(data, "ota", "slots", "a", n)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hookLog := filepath.Join(data, "hook.log")
	hook := filepath.Join(data, "hook.sh")
	// The hook takes a moment, as restarting a program does.
	os.WriteFile(hook, []byte("#!/bin/sh\necho \"$BOSUN_OTA_REASON $BOSUN_OTA_SLOT $1\" >> "+hookLog+"\nsleep 0.05\n"), 0o755)

	// Most runs commit the new slot once it awaits its commit; at
	// awaiting_commit every other run lets the 1 s commit timeout pass
	// instead (while the worker is down, or the bridge), and at revert
	// every run does.
	timeout := step == "revert" || step == "awaiting_commit" && run%2 == 1
	ct := 60
	if timeout {
		ct = 1
	}

	addr := listenAddr(t)
	bridge := fx.startBridge(t, data, addr)
	worker := fx.startWorker(t, data, hook)
	nc := deviceNATS(t, data, addr)
	waitWorker(t, nc)

	// Armed before the update starts: the kill comes from the goroutine
	// that reads the worker's log, a random moment after the step began.
	target := worker
	if victim == "bridge" {
		target = bridge
	}
	killed := worker.onStep(step, func() {
		time.Sleep(killJitter(step)) // jitter, not synchronisation
		target.kill()
	})
	res, e := rpc(t, nc, "ota.update", `{"target":"hello/2.0.0","url":"`+fx.url+`","commit_timeout":`+strconv.Itoa(ct)+`}`)
	if e != nil {
		t.Fatalf("run %d: ota.update: %v", run, e)
	}
	var ur rpcproto.OTAUpdateResult
	json.Unmarshal(res, &ur)
	committed := false
	if step == "commit" {
		waitFor(t, 30*time.Second, "awaiting_commit in the outbox", func() bool {
			return lastStatus(outboxReports(t, data)) == rpcproto.OTAAwaitingCommit
		})
		// No answer comes: the worker or the bridge dies on the way.
		committed = true
		if err := nc.PublishRequest(rpcproto.SubjectRPCPrefix+rpcproto.MethodOTACommit, nc.NewRespInbox(), []byte(`{"jsonrpc":"2.0","id":1,"method":"ota.commit"}`)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatalf("run %d: step %s never came; the worker's log:\n%s", run, step, worker.tail())
	}
	target.waitKilled(t)

	var spooled int
	var landed string
	switch victim {
	case "worker":
		landed = worker.lastStep()
		st := fx.checkSlots(t, data)
		if timeout && step == "awaiting_commit" {
			// The deadline is on disk: it passes while the worker is down.
			if st.Committed {
				t.Fatalf("run %d: killed at awaiting_commit on a committed slot %s", run, st.Active)
			}
			waitFor(t, 10*time.Second, "the commit deadline", func() bool { return time.Now().After(st.Deadline) })
		}
		worker = fx.startWorker(t, data, hook)
		waitWorker(t, nc)
	case "bridge":
		if timeout {
			// The worker reverts while the bridge is down and spools its
			// report.
			waitFor(t, 15*time.Second, "rolled_back spooled by the worker", func() bool {
				return slices.ContainsFunc(spoolReports(t, data), func(p rpcproto.OTAStatusParams) bool { return p.Status == rpcproto.OTARolledBack })
			})
		} else {
			time.Sleep(time.Duration(mrand.IntN(200)) * time.Millisecond) // the bridge stays down a while
		}
		spooled = len(spoolReports(t, data))
		bridge = fx.startBridge(t, data, addr)
		waitWorker(t, nc) // the worker reconnected to the new bridge's NATS
	}

	// The update ends: committed once it awaits its commit, or rolled back
	// by the timeout.
	var final string
	waitForOr(t, 30*time.Second, "the update to settle (succeeded or rolled_back in the outbox)", func() bool {
		rs := outboxReports(t, data)
		if len(rs) == 0 {
			return false
		}
		last := rs[len(rs)-1]
		if last.ID != ur.ID {
			t.Fatalf("run %d: a report of update %s, want %s", run, last.ID, ur.ID)
		}
		switch last.Status {
		case rpcproto.OTAAwaitingCommit:
			if !timeout && !committed {
				committed = true
				if _, e := rpc(t, nc, "ota.commit", ""); e != nil {
					t.Fatalf("run %d: ota.commit: %v", run, e)
				}
			}
		case rpcproto.OTASucceeded, rpcproto.OTARolledBack:
			final = last.Status
			return true
		case rpcproto.OTAFailed:
			t.Fatalf("run %d: the update failed: %s\n%s", run, last.Reason, worker.tail())
		}
		return false
	}, func() string {
		var b strings.Builder
		for _, r := range outboxReports(t, data) {
			fmt.Fprintf(&b, "\n  outbox: seq %d %s %s", r.Seq, r.Status, r.Reason)
		}
		return b.String() + "\nthe worker's log:\n" + worker.tail()
	})
	if want := map[bool]string{false: rpcproto.OTASucceeded, true: rpcproto.OTARolledBack}[timeout]; final != want {
		t.Fatalf("run %d: update ended %s, want %s", run, final, want)
	}
	waitFor(t, 15*time.Second, "the worker's spool to drain", func() bool { return len(spoolReports(t, data)) == 0 })

	// The device is on a committed, complete slot, and says so.
	res, e = rpc(t, nc, "ota.get_boot_state", "")
	if e != nil {
		t.Fatal(e)
	}
	var bs rpcproto.OTABootState
	json.Unmarshal(res, &bs)
	st := fx.checkSlots(t, data)
	if !bs.IsCommitted || !st.Committed || bs.ActiveSlot != st.Active || st.Job != nil {
		disk, _ := json.Marshal(st)
		t.Fatalf("run %d: boot state %+v, on disk %s", run, bs, disk)
	}
	if cur, _ := os.Readlink(filepath.Join(data, "ota", "current")); cur != filepath.Join("slots", st.Active) {
		t.Fatalf("run %d: current -> %q, active slot %s", run, cur, st.Active)
	}
	wantSlot, wantHook := "b", "update b"
	if timeout {
		wantSlot, wantHook = "a", "revert a"
	}
	if st.Active != wantSlot {
		t.Fatalf("run %d: active slot %s after %s, want %s", run, st.Active, final, wantSlot)
	}
	hl := strings.Fields(lastLine(readFile(t, hookLog)))
	if len(hl) < 2 || hl[0]+" "+hl[1] != wantHook {
		t.Fatalf("run %d: the hook last ran as %q, want %q", run, hl, wantHook)
	}

	lost, dup := checkReports(t, outboxReports(t, data), victim == "worker")
	r := killResult{outcome: "committed new", lost: lost, dup: dup, spooled: spooled, landed: landed}
	switch {
	case st.Slots[st.Active].Target == "" && final == rpcproto.OTARolledBack:
		r.outcome = "reverted"
	case st.Slots[st.Active].Target == "":
		r.outcome = "committed old"
	}
	nc.Close()
	worker.kill()
	bridge.kill()
	return r
}

// killJitter is how long after the start of step the kill comes, at most:
// anywhere in the throttled download (about 100 ms) and the hook (50 ms, in
// hook and revert),
// right away in the short steps.
func killJitter(step string) time.Duration {
	switch step {
	case "download":
		return time.Duration(mrand.IntN(80_000)) * time.Microsecond
	case "hook", "revert":
		return time.Duration(mrand.IntN(40_000)) * time.Microsecond
	}
	return time.Duration(mrand.IntN(2_000)) * time.Microsecond
}

// checkReports checks the outbox (every report of the one update of the
// run, in outbox order): seq 1, 2, 3, … without a gap (lost counts the
// missing seqs), no seq twice (dup counts them; the cloud would store one
// per seq, but the outbox must not hold two), and the statuses in order: downloading (percent never
// going back), installing, awaiting_commit once, then succeeded or
// rolled_back, last. A worker killed before its switch takes the update up
// again, so after a worker kill downloading and installing may come again.
func checkReports(t *testing.T, rs []rpcproto.OTAStatusParams, workerKilled bool) (lost, dup int) {
	t.Helper()
	dump := func() string {
		var b strings.Builder
		for _, r := range rs {
			pct := ""
			if r.Percent != nil {
				pct = fmt.Sprintf(" %d%%", *r.Percent)
			}
			fmt.Fprintf(&b, "\n  seq %d %s%s %s", r.Seq, r.Status, pct, r.Reason)
		}
		return b.String()
	}
	rank := map[string]int{rpcproto.OTADownloading: 0, rpcproto.OTAInstalling: 1, rpcproto.OTAAwaitingCommit: 2, rpcproto.OTASucceeded: 3, rpcproto.OTARolledBack: 3}
	seen := map[uint64]rpcproto.OTAStatusParams{}
	var uniq []rpcproto.OTAStatusParams
	var last uint64
	for _, r := range rs {
		if prev, ok := seen[r.Seq]; ok {
			a, _ := json.Marshal(prev)
			b, _ := json.Marshal(r)
			if !bytes.Equal(a, b) {
				t.Fatalf("seq %d twice with different content: %s and %s", r.Seq, a, b)
			}
			// The bridge takes a report sent again after a lost answer
			// as the entry it is (device/internal/bridge outbox.go).
			t.Errorf("seq %d twice in the outbox:%s", r.Seq, dump())
			dup++
			continue
		}
		if r.Seq < last {
			t.Fatalf("seq %d after %d:%s", r.Seq, last, dump())
		}
		lost += int(r.Seq - last - 1)
		last = r.Seq
		seen[r.Seq] = r
		uniq = append(uniq, r)
	}
	pct, awaiting := -1, 0
	for i, r := range uniq {
		k, ok := rank[r.Status]
		if !ok {
			t.Fatalf("status %q in the outbox:%s", r.Status, dump())
		}
		if i > 0 {
			p := rank[uniq[i-1].Status]
			again := workerKilled && p == 1 && k == 0 // the update taken up again
			if k < p && !again || p == 3 {
				t.Fatalf("%s after %s:%s", r.Status, uniq[i-1].Status, dump())
			}
		}
		if r.Status == rpcproto.OTADownloading {
			if r.Percent == nil || *r.Percent < pct && !workerKilled {
				t.Fatalf("download percent went back:%s", dump())
			}
			pct = *r.Percent
		}
		if r.Status == rpcproto.OTAAwaitingCommit {
			awaiting++
		}
	}
	if awaiting != 1 || len(uniq) == 0 || rank[uniq[len(uniq)-1].Status] != 3 {
		t.Fatalf("want awaiting_commit once and succeeded or rolled_back last:%s", dump())
	}
	return lost, dup
}

// outboxReports reads the bridge's outbox (the cloud is never reached, so
// it holds every report) in order.
func outboxReports(t *testing.T, data string) []rpcproto.OTAStatusParams {
	t.Helper()
	return outboxStatuses(t, data)
}

// spoolReports reads the reports the worker has not handed to the bridge.
func spoolReports(t *testing.T, data string) []rpcproto.OTAStatusParams {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(data, "ota", "reports", "*.json"))
	slices.Sort(names)
	var out []rpcproto.OTAStatusParams
	for _, n := range names {
		b, err := os.ReadFile(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // delivered meanwhile
		}
		var p rpcproto.OTAStatusParams
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("spool entry %s: %v", n, err)
		}
		out = append(out, p)
	}
	return out
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	waitForOr(t, d, what, cond, func() string { return "" })
}

// waitForOr is waitFor; on a timeout the message ends with describe().
func waitForOr(t *testing.T, d time.Duration, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s%s", d, what, describe())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listenAddr is a free 127.0.0.1 address for the bridge's NATS, below the
// ephemeral port range: while the bridge is down no outgoing connection
// of another run can take its port.
// Runs side by side never share one: a port stays taken until its run
// ends.
func listenAddr(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		port := 20000 + mrand.IntN(12000)
		if portsTaken[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsTaken[port] = true
		t.Cleanup(func() {
			portsMu.Lock()
			delete(portsTaken, port)
			portsMu.Unlock()
		})
		return ln.Addr().String()
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{} // guarded by portsMu
)

// deviceNATS connects the test to the device's NATS the way a worker does,
// reconnecting quickly to a restarted bridge.
func deviceNATS(t *testing.T, data, addr string) *nats.Conn {
	t.Helper()
	tok := strings.TrimSpace(readFile(t, filepath.Join(data, "nats.token")))
	nc, err := nats.Connect("nats://"+addr, nats.Token(tok), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitWorker waits until a bosun-ota answers on the device's NATS.
func waitWorker(t *testing.T, nc *nats.Conn) {
	t.Helper()
	waitFor(t, 20*time.Second, "bosun-ota to answer", func() bool {
		_, err := nc.Request(rpcproto.SubjectRPCPrefix+rpcproto.MethodOTAGetBootState, []byte(`{"jsonrpc":"2.0","id":1,"method":"ota.get_boot_state"}`), time.Second)
		return err == nil
	})
}

func (fx *killFixture) startBridge(t *testing.T, data, addr string) *proc {
	t.Helper()
	p := startProc(t, "bridge", fx.bridgeBin, []string{
		"BOSUN_DEVICE_ID=dev-1", "BOSUN_DATA_DIR=" + data, "BOSUN_CLOUD_URL=ws://127.0.0.1:1/v1/device",
		"BOSUN_CLOUD_PUBLIC_KEY=" + fx.cloudKey, "BOSUN_NATS_LISTEN=" + addr, "BOSUN_LOG_LEVEL=info"})
	ready := p.onLine(func(l string) bool { return strings.Contains(l, `msg="bridge ready"`) })
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("bosun-bridge exited: %v\n%s", p.cmd.ProcessState, p.tail())
	case <-time.After(20 * time.Second):
		t.Fatalf("bosun-bridge not ready:\n%s", p.tail())
	}
	return p
}

func (fx *killFixture) startWorker(t *testing.T, data, hook string) *proc {
	t.Helper()
	return startProc(t, "worker", fx.otaBin, []string{"BOSUN_DATA_DIR=" + data}, "--hook", hook, "--hook-timeout", "10s",
		"--release-root", fx.rootFile, "--release-metadata", fx.metaDir, "--log-level", "debug")
}

// proc is a child process whose stderr (its log) the test reads line by
// line, keeping the last lines for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited and its stderr is read

	mu      sync.Mutex // guards the following
	lines   []string   // the last 200
	watches []*watch
}

type watch struct {
	match func(string) bool
	fire  func()
	ch    chan struct{}
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.line(sc.Text())
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		p.kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, cmd.Process.Pid)
		}
	})
	return p
}

func (p *proc) line(l string) {
	p.mu.Lock()
	p.lines = append(p.lines, l)
	if len(p.lines) > 200 {
		p.lines = p.lines[len(p.lines)-200:]
	}
	var fire []*watch
	p.watches = slices.DeleteFunc(p.watches, func(w *watch) bool {
		if w.match(l) {
			fire = append(fire, w)
			return true
		}
		return false
	})
	p.mu.Unlock()
	for _, w := range fire {
		if w.fire != nil {
			w.fire()
		}
		close(w.ch)
	}
}

// onLine returns a channel closed once the process logs a line that
// matches.
func (p *proc) onLine(match func(string) bool) <-chan struct{} {
	return p.watch(match, nil)
}

// onStep runs fire (in the goroutine reading the log, so that nothing else
// is logged before it) when the worker enters step, and then closes the
// returned channel.
func (p *proc) onStep(step string, fire func()) <-chan struct{} {
	needle := `msg="ota step" step=` + step
	return p.watch(func(l string) bool { return strings.HasSuffix(l, needle) || strings.Contains(l, needle+" ") }, fire)
}

func (p *proc) watch(match func(string) bool, fire func()) <-chan struct{} {
	w := &watch{match: match, fire: fire, ch: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if match(l) && fire == nil {
			close(w.ch)
			return w.ch
		}
	}
	p.watches = append(p.watches, w)
	return w.ch
}

// lastStep is the step of the last "ota step" line the worker logged.
func (p *proc) lastStep() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.lines) - 1; i >= 0; i-- {
		if _, s, ok := strings.Cut(p.lines[i], `msg="ota step" step=`); ok {
			return strings.Fields(s)[0]
		}
	}
	return ""
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// kill sends SIGKILL; safe when the process has exited.
func (p *proc) kill() { p.cmd.Process.Signal(syscall.SIGKILL) }

// waitKilled waits for the process to exit and asserts that SIGKILL ended
// it (not a crash of its own before).
func (p *proc) waitKilled(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit after SIGKILL", p.name)
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s ended with %v, not by SIGKILL:\n%s", p.name, p.cmd.ProcessState, p.tail())
	}
}
