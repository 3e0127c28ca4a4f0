package ota

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func startServer(t *testing.T, body []byte) (*fileServer, string) {
	t.Helper()
	fs := &fileServer{body: body}
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	return fs, srv.URL + "/bundle.tar.gz"
}

func TestUpdateCommit(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 300<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	if bs := d.m.BootState(); bs != (rpcproto.OTABootState{ActiveSlot: "a", IsCommitted: true}) {
		t.Fatalf("initial boot state %+v", bs)
	}
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 60})
	if err != nil {
		t.Fatal(err)
	}
	if r.Slot != "b" || r.Status != "downloading" || r.ID == "" {
		t.Fatalf("result %+v", r)
	}
	d.waitStatus(r.ID, "awaiting_commit")
	bs := d.m.BootState()
	if bs.ActiveSlot != "b" || bs.IsCommitted || bs.RevertSlot != "a" || bs.CommitTimeout < 59 || bs.CommitTimeout > 60 {
		t.Fatalf("boot state after switch %+v", bs)
	}
	if got := readFileT(t, filepath.Join(d.dir, "current", "VERSION")); got != "2.0.0\n" {
		t.Fatalf("current/VERSION = %q", got)
	}
	if lines := d.hookLines(); len(lines) != 1 || lines[0] != "update b "+d.m.SlotDir("b")+" hello/2.0.0 prev=a" {
		t.Fatalf("hook log %q", lines)
	}
	// A second update while this one awaits its commit is refused.
	before := d.stateBytes()
	if _, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u}); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("update while uncommitted: %v", err)
	}
	if !bytes.Equal(before, d.stateBytes()) {
		t.Fatal("a refused update changed the state")
	}
	if _, err := d.m.Commit(); err != nil {
		t.Fatal(err)
	}
	if bs := d.m.BootState(); bs != (rpcproto.OTABootState{ActiveSlot: "b", IsCommitted: true, RevertSlot: "a"}) {
		t.Fatalf("after commit %+v", bs)
	}
	want := []string{"downloading:0", "downloading:10", "downloading:20", "downloading:30", "downloading:40", "downloading:50",
		"downloading:60", "downloading:70", "downloading:80", "downloading:90", "downloading:100", "installing", "awaiting_commit", "succeeded"}
	got := d.statuses(r.ID)
	// Progress reports depend on how the bytes arrive; every decile at
	// most once and in order, then the phases.
	var pcts []int
	for _, s := range got[:len(got)-3] {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "downloading:"))
		if err != nil {
			t.Fatalf("statuses %q", got)
		}
		pcts = append(pcts, n/10)
	}
	if !slices.IsSorted(pcts) || len(slices.Compact(slices.Clone(pcts))) != len(pcts) || got[0] != "downloading:0" ||
		!slices.Equal(got[len(got)-4:], want[len(want)-4:]) || len(got) > len(want) {
		t.Fatalf("statuses %q", got)
	}
	rs, _ := d.m.Reports()
	for i := 1; i < len(rs); i++ {
		if rs[i].Seq != rs[i-1].Seq+1 {
			t.Fatalf("seq not consecutive: %d then %d", rs[i-1].Seq, rs[i].Seq)
		}
	}
	// Committed: nothing reverts it later, also after a restart.
	d.m.Close()
	d.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	d.open()
	if bs := d.m.BootState(); bs.ActiveSlot != "b" || !bs.IsCommitted {
		t.Fatalf("after restart %+v", bs)
	}
}

func TestUncommittedReverts(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 1})
	if err != nil {
		t.Fatal(err)
	}
	d.waitStatus(r.ID, "awaiting_commit")
	got := d.waitStatus(r.ID, "rolled_back")
	if !strings.Contains(got.Reason, "commit_timeout passed") {
		t.Fatalf("reason %q", got.Reason)
	}
	if bs := d.m.BootState(); bs.ActiveSlot != "a" || !bs.IsCommitted {
		t.Fatalf("after revert %+v", bs)
	}
	if lines := d.hookLines(); len(lines) != 2 || !strings.HasPrefix(lines[1], "revert a ") {
		t.Fatalf("hook log %q", lines)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "current", "VERSION")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("current still points at the new slot: %v", err)
	}
}

// The deadline is on disk: a manager opened after it passed reverts at
// once, one opened before it waits for the rest of it.
func TestDeadlineSurvivesRestart(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	d.waitStatus(r.ID, "awaiting_commit")
	d.m.Close()
	d.cfg.Now = func() time.Time { return time.Now().Add(590 * time.Second) }
	d.open()
	if bs := d.m.BootState(); bs.ActiveSlot != "b" || bs.IsCommitted || bs.CommitTimeout > 10 {
		t.Fatalf("restarted before the deadline: %+v", bs)
	}
	d.m.Close()
	d.cfg.Now = func() time.Time { return time.Now().Add(601 * time.Second) }
	d.open()
	if bs := d.m.BootState(); bs.ActiveSlot != "a" || !bs.IsCommitted {
		t.Fatalf("restarted after the deadline: %+v", bs)
	}
	if got := d.last(r.ID); got.Status != "rolled_back" {
		t.Fatalf("last status %+v", got)
	}
}

func TestRevertAndHookFailure(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 1<<10)
	bad := makeBundle(t, entry{name: "FAIL_HOOK", body: "x"})
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2, "hello/3.0.0": bad})
	_, u := startServer(t, v2)

	before := d.stateBytes()
	if _, err := d.m.Revert(); !errors.Is(err, ErrNothingToRevert) {
		t.Fatalf("revert when committed: %v", err)
	}
	if !bytes.Equal(before, d.stateBytes()) {
		t.Fatal("a refused revert changed the state")
	}
	r, _ := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 60})
	d.waitStatus(r.ID, "awaiting_commit")
	if _, err := d.m.Revert(); err != nil {
		t.Fatal(err)
	}
	if st := d.last(r.ID); st.Status != "rolled_back" || st.Reason != "reverted by ota.revert" {
		t.Fatalf("status %+v", st)
	}
	if bs := d.m.BootState(); bs.ActiveSlot != "a" || !bs.IsCommitted {
		t.Fatalf("%+v", bs)
	}

	// A bundle whose program does not start (the hook fails) is reverted
	// at once.
	_, u3 := startServer(t, bad)
	r3, _ := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/3.0.0", URL: u3, CommitTimeout: 60})
	st := d.waitStatus(r3.ID, "rolled_back", "failed")
	if st.Status != "rolled_back" || !strings.Contains(st.Reason, "restart hook") || !strings.Contains(st.Reason, "app did not start") {
		t.Fatalf("status %+v", st)
	}
	if bs := d.m.BootState(); bs.ActiveSlot != "a" || !bs.IsCommitted {
		t.Fatalf("%+v", bs)
	}
}

func TestCommitTimeoutZeroCommitsAtOnce(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 1<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	r, _ := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 0})
	d.waitStatus(r.ID, "succeeded")
	if bs := d.m.BootState(); bs != (rpcproto.OTABootState{ActiveSlot: "b", IsCommitted: true, RevertSlot: "a"}) {
		t.Fatalf("%+v", bs)
	}
}

func TestUpdateParamsRefused(t *testing.T) {
	d := newDevice(t, mapVerifier{})
	tests := []struct {
		name string
		p    rpcproto.OTAUpdateParams
		want string
	}{
		{"no target", rpcproto.OTAUpdateParams{URL: "http://127.0.0.1/x"}, "target must be NAME/VERSION"},
		{"upper-case name", rpcproto.OTAUpdateParams{Target: "Hello/1.0.0", URL: "http://127.0.0.1/x"}, "target must be"},
		{"not semver", rpcproto.OTAUpdateParams{Target: "hello/v1.0", URL: "http://127.0.0.1/x"}, "target must be"},
		{"extra slash", rpcproto.OTAUpdateParams{Target: "hello/1.0.0/x", URL: "http://127.0.0.1/x"}, "target must be"},
		{"file url", rpcproto.OTAUpdateParams{Target: "hello/1.0.0", URL: "file:///etc/passwd"}, "url must be"},
		{"no url", rpcproto.OTAUpdateParams{Target: "hello/1.0.0"}, "url must be"},
		{"negative timeout", rpcproto.OTAUpdateParams{Target: "hello/1.0.0", URL: "http://127.0.0.1/x", CommitTimeout: -1}, "commit_timeout must be 0..86400"},
		{"timeout beyond the bound", rpcproto.OTAUpdateParams{Target: "hello/1.0.0", URL: "http://127.0.0.1/x", CommitTimeout: MaxCommitTimeout + 1}, "commit_timeout must be 0..86400"},
	}
	before := d.stateBytes()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.m.Update(tt.p)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if !bytes.Equal(before, d.stateBytes()) {
				t.Fatal("state changed")
			}
			if rs, _ := d.m.Reports(); len(rs) != 0 {
				t.Fatalf("reports %+v", rs)
			}
		})
	}
	// At the bound is accepted.
	v := appBundle(t, "1.0.0", 10)
	d2 := newDevice(t, mapVerifier{"hello/1.0.0": v})
	_, u := startServer(t, v)
	r, err := d2.m.Update(rpcproto.OTAUpdateParams{Target: "hello/1.0.0", URL: u, CommitTimeout: MaxCommitTimeout})
	if err != nil {
		t.Fatal(err)
	}
	d2.waitStatus(r.ID, "awaiting_commit")
	if bs := d2.m.BootState(); bs.CommitTimeout != MaxCommitTimeout {
		t.Fatalf("%+v", bs)
	}
}

// Every failure before the switch leaves the active slot as it was.
func TestUpdateFailuresLeaveActiveSlot(t *testing.T) {
	good := appBundle(t, "2.0.0", 4<<10)
	other := bytes.Clone(good)
	other[len(other)/2] ^= 0xff
	escape := makeBundle(t, entry{name: "ok", body: "x"}, entry{name: "../../evil", body: "x"})
	big := makeBundle(t, entry{name: "big", body: strings.Repeat("z", 5000)})
	tests := []struct {
		name   string
		target string
		served []byte
		signed []byte
		want   string
	}{
		{"not signed", "hello/7.0.0", good, nil, "is not signed"},
		{"wrong hash", "hello/2.0.0", other, good, "does not match the target"},
		{"escapes its slot", "hello/2.0.0", escape, escape, "has a .. component"},
		{"expands past its limit", "hello/2.0.0", big, big, "expands past 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mapVerifier{}
			if tt.signed != nil {
				v["hello/2.0.0"] = tt.signed
			}
			d := newDevice(t, v, func(c *Config) { c.MaxUnpackedBytes = 4096; c.HashRetries = -1 })
			_, u := startServer(t, tt.served)
			r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: tt.target, URL: u, CommitTimeout: 60})
			if err != nil {
				t.Fatal(err)
			}
			st := d.waitStatus(r.ID, "failed")
			if !strings.Contains(st.Reason, tt.want) {
				t.Fatalf("reason %q, want %q", st.Reason, tt.want)
			}
			if bs := d.m.BootState(); bs != (rpcproto.OTABootState{ActiveSlot: "a", IsCommitted: true}) {
				t.Fatalf("boot state %+v", bs)
			}
			eventually(t, "job cleared", func() bool { return !bytes.Contains(d.stateBytes(), []byte(`"job"`)) })
			if des, _ := os.ReadDir(d.m.SlotDir("b")); len(des) != 0 {
				t.Fatalf("slot b not empty: %v", des)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(d.dir)), "evil")); err == nil {
				t.Fatal("an entry escaped")
			}
			if len(d.hookLines()) != 0 {
				t.Fatalf("hook ran: %q", d.hookLines())
			}
		})
	}
}

func TestSnapshotAndSetBootState(t *testing.T) {
	d := newDevice(t, mapVerifier{})
	os.WriteFile(filepath.Join(d.m.SlotDir("a"), "app"), []byte("v1"), 0o644)
	before := d.stateBytes()
	for _, p := range []rpcproto.OTABootState{
		{ActiveSlot: "c", IsCommitted: true},
		{ActiveSlot: "b", IsCommitted: true}, // b holds nothing
		{ActiveSlot: "a", IsCommitted: true, CommitTimeout: 5},
		{ActiveSlot: "a", IsCommitted: false, RevertSlot: "b", CommitTimeout: 5}, // b holds nothing
		{ActiveSlot: "a", IsCommitted: false, RevertSlot: "a", CommitTimeout: 5},
	} {
		if _, err := d.m.SetBootState(t.Context(), p); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: %v", p, err)
		}
	}
	if _, err := d.m.CreateSnapshot(t.Context(), rpcproto.OTACreateSnapshotParams{CommitTimeout: 5}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("snapshot: %v", err)
	}
	if !bytes.Equal(before, d.stateBytes()) {
		t.Fatal("refused calls changed the state")
	}
	r, err := d.m.CreateSnapshot(t.Context(), rpcproto.OTACreateSnapshotParams{SetAsRevert: true, CommitTimeout: 1})
	if err != nil || r.Slot != "b" {
		t.Fatalf("%+v %v", r, err)
	}
	if got := readFileT(t, filepath.Join(d.m.SlotDir("b"), "app")); got != "v1" {
		t.Fatalf("snapshot content %q", got)
	}
	if bs := d.m.BootState(); bs.ActiveSlot != "a" || bs.IsCommitted || bs.RevertSlot != "b" {
		t.Fatalf("%+v", bs)
	}
	// Not committed within 1s: back to the snapshot.
	eventually(t, "revert to the snapshot", func() bool { return d.m.BootState().ActiveSlot == "b" })
	bs, err := d.m.SetBootState(t.Context(), rpcproto.OTABootState{ActiveSlot: "a", IsCommitted: true, RevertSlot: "b"})
	if err != nil || bs != (rpcproto.OTABootState{ActiveSlot: "a", IsCommitted: true, RevertSlot: "b"}) {
		t.Fatalf("%+v %v", bs, err)
	}
	if lines := d.hookLines(); len(lines) != 2 || !strings.HasPrefix(lines[0], "revert b") || !strings.HasPrefix(lines[1], "set_boot_state a") {
		t.Fatalf("hook log %q", lines)
	}
}

func TestStateFileRefusesBrokenInvariant(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := writeState(p, state{Active: "b", Committed: true, Slots: map[string]*slotInfo{"a": {}}}); err == nil {
		t.Fatal("wrote a state whose active slot is incomplete")
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused state was written")
	}
	os.WriteFile(p, []byte(`{"active_slot":"a","is_committed":false,"slots":{"a":{}}}`), 0o600)
	if _, err := New(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "no complete revert slot") {
		t.Fatalf("New on a broken state: %v", err)
	}
	_ = http.StatusOK
	_ = time.Second
}

// ota.set_boot_state while an update awaits its commit ends that update
// with a report, so the cloud does not wait for it forever.
func TestSetBootStateEndsAwaitingUpdate(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 1<<10)
	for _, keep := range []bool{true, false} {
		d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
		_, u := startServer(t, v2)
		r, _ := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 60})
		d.waitStatus(r.ID, "awaiting_commit")
		p := rpcproto.OTABootState{ActiveSlot: "b", IsCommitted: true, RevertSlot: "a"}
		want := "succeeded"
		if !keep {
			p = rpcproto.OTABootState{ActiveSlot: "a", IsCommitted: true, RevertSlot: "b"}
			want = "rolled_back"
		}
		if _, err := d.m.SetBootState(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if got := d.last(r.ID); got.Status != want {
			t.Fatalf("keep=%v: last status %+v", keep, got)
		}
	}
}

func TestMaxBundleBytes(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 2<<10)
	for _, tt := range []struct {
		name  string
		limit int64
		want  string
	}{
		{"at the limit", int64(len(v2)), "awaiting_commit"},
		{"beyond the limit", int64(len(v2)) - 1, "failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDevice(t, mapVerifier{"hello/2.0.0": v2}, func(c *Config) { c.MaxBundleBytes = tt.limit })
			fs, u := startServer(t, v2)
			r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 60})
			if err != nil {
				t.Fatal(err)
			}
			st := d.waitStatus(r.ID, "awaiting_commit", "failed")
			if st.Status != tt.want {
				t.Fatalf("%+v", st)
			}
			if tt.want == "failed" {
				if !strings.Contains(st.Reason, "the limit is") || fs.requests() != 0 || d.m.BootState().ActiveSlot != "a" {
					t.Fatalf("%+v, %d requests", st, fs.requests())
				}
			}
		})
	}
}

// TestRelativeURL: a url of a path alone (a cloud without a public URL)
// is fetched from Config.BaseURL; without one it is refused and nothing
// changes.
func TestRelativeURL(t *testing.T) {
	v := appBundle(t, "1.0.0", 10)
	fs, u := startServer(t, v)
	base, _ := url.Parse(strings.TrimSuffix(u, "/bundle.tar.gz"))
	d := newDevice(t, mapVerifier{"hello/1.0.0": v}, func(c *Config) { c.BaseURL = base })
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/1.0.0", URL: "/bundle.tar.gz"})
	if err != nil {
		t.Fatal(err)
	}
	d.waitStatus(r.ID, "succeeded")
	if fs.requests() == 0 {
		t.Fatal("the bundle was not fetched from the base URL")
	}
	bare := newDevice(t, mapVerifier{"hello/1.0.0": v})
	before := bare.stateBytes()
	for _, p := range []string{"/bundle.tar.gz", "//evil.example/x"} {
		if _, err := bare.m.Update(rpcproto.OTAUpdateParams{Target: "hello/1.0.0", URL: p}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s without a base URL: %v", p, err)
		}
	}
	if !bytes.Equal(before, bare.stateBytes()) {
		t.Fatal("a refused url changed the state")
	}
}

// A worker killed after the restart hook ran (hook_ran on disk), before
// its awaiting_commit report was spooled, spools that report on its next
// start with the seq state.json reserved for it: once, whether the report
// had been spooled and delivered (its file gone, the seq file beyond it) or
// never written.
func TestAwaitingCommitReportAfterKill(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	aw := d.waitStatus(r.ID, "awaiting_commit")
	d.m.Close()
	st, err := readState(filepath.Join(d.dir, "state.json"))
	if err != nil || st.Job == nil || !st.Job.HookRan || st.Job.ReportSeq != aw.Seq {
		t.Fatalf("state after awaiting_commit: %+v, %v; want the job with report_seq %d", st.Job, err, aw.Seq)
	}
	reports := filepath.Join(d.dir, "reports")
	awFile := filepath.Join(reports, fmt.Sprintf("%020d.json", aw.Seq))
	count := func() int {
		n := 0
		for _, s := range d.statuses(r.ID) {
			if s == "awaiting_commit" {
				n++
			}
		}
		return n
	}

	// Delivered: the file is gone, the seq file says it was written.
	if err := os.Remove(awFile); err != nil {
		t.Fatal(err)
	}
	d.open()
	if n := count(); n != 0 {
		t.Fatalf("a delivered awaiting_commit was spooled again: %d", n)
	}
	d.m.Close()

	// Never written: killed between state.json and the report.
	if err := os.WriteFile(filepath.Join(reports, "seq"), []byte(strconv.FormatUint(aw.Seq-1, 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.open()
	got := d.last(r.ID)
	if got.Status != "awaiting_commit" || got.Seq != aw.Seq || count() != 1 {
		t.Fatalf("after a kill before the report: %+v, %d awaiting_commit", got, count())
	}
	d.m.Close()
	d.open() // spooled now: not again
	if count() != 1 {
		t.Fatalf("awaiting_commit spooled %d times", count())
	}
	if bs := d.m.BootState(); bs.ActiveSlot != "b" || bs.IsCommitted {
		t.Fatalf("boot state %+v", bs)
	}
}

// A worker killed in the hook of a revert (state.json already back on the
// old slot, the job in phase reverted) runs the hook again on its next
// start and reports rolled_back once, with the seq state.json reserved; a
// start after the report was spooled only forgets the job.
func TestRolledBackReportAfterKill(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	aw := d.waitStatus(r.ID, "awaiting_commit")
	d.m.Close()
	// What revertLocked writes before it runs the hook.
	path := filepath.Join(d.dir, "state.json")
	st, err := readState(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Active, st.Revert, st.Committed, st.Deadline = "a", "b", true, time.Time{}
	st.Job.Phase, st.Job.Reason, st.Job.ReportSeq = phaseReverted, "reverted by ota.revert", aw.Seq+1
	if err := writeState(path, st); err != nil {
		t.Fatal(err)
	}
	hooks := len(d.hookLines())
	d.open()
	got := d.last(r.ID)
	if got.Status != "rolled_back" || got.Seq != aw.Seq+1 || got.Reason != "reverted by ota.revert" {
		t.Fatalf("after a kill in the revert's hook: %+v", got)
	}
	if hl := d.hookLines(); len(hl) != hooks+1 || !strings.HasPrefix(hl[len(hl)-1], "revert a ") {
		t.Fatalf("hook log %q", hl)
	}
	if st, _ := readState(path); st.Job != nil || st.Active != "a" || !st.Committed {
		t.Fatalf("state after the revert finished: %+v", st)
	}
	d.m.Close()
	d.open()
	if n := len(d.statuses(r.ID)); d.last(r.ID).Seq != aw.Seq+1 || len(d.hookLines()) != hooks+1 {
		t.Fatalf("a second start reported or ran the hook again: %d reports, hook log %q", n, d.hookLines())
	}
	d.m.Close()

	// Reported already: the job is forgotten, nothing runs.
	st.Job.ReportSeq = aw.Seq
	if err := writeState(path, st); err != nil {
		t.Fatal(err)
	}
	before := len(d.statuses(r.ID))
	d.open()
	if len(d.statuses(r.ID)) != before || len(d.hookLines()) != hooks+1 {
		t.Fatalf("a revert reported already was reported again or its hook ran: %q", d.hookLines())
	}
	if st, _ := readState(path); st.Job != nil {
		t.Fatalf("job left: %+v", st.Job)
	}
}

// A worker killed between ota.commit's write of state.json and its
// succeeded report makes the report on its next start, once.
func TestSucceededReportAfterKill(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 600})
	if err != nil {
		t.Fatal(err)
	}
	aw := d.waitStatus(r.ID, "awaiting_commit")
	d.m.Close()
	// What Commit writes before it reports.
	path := filepath.Join(d.dir, "state.json")
	st, err := readState(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Committed, st.Deadline = true, time.Time{}
	st.Job.Phase, st.Job.ReportSeq = phaseCommitted, aw.Seq+1
	if err := writeState(path, st); err != nil {
		t.Fatal(err)
	}
	d.open()
	if got := d.last(r.ID); got.Status != "succeeded" || got.Seq != aw.Seq+1 {
		t.Fatalf("after a kill before succeeded: %+v", got)
	}
	if st, _ := readState(path); st.Job != nil || st.Active != "b" || !st.Committed {
		t.Fatalf("state: %+v", st)
	}
	n := len(d.statuses(r.ID))
	d.m.Close()
	d.open()
	if len(d.statuses(r.ID)) != n {
		t.Fatalf("succeeded reported again: %q", d.statuses(r.ID))
	}
}

// TestFailedReportAfterKill: a worker killed after an update failed
// (Phase "failed" on disk) but before its failed report was spooled
// reports it on its next start, once, with the reserved seq, and empties
// the slot the update wrote into; one whose report was spooled already
// only forgets the job.
func TestFailedReportAfterKill(t *testing.T) {
	for _, spooled := range []bool{false, true} {
		t.Run(fmt.Sprintf("spooled=%v", spooled), func(t *testing.T) {
			v2 := appBundle(t, "2.0.0", 10<<10)
			d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
			_, u := startServer(t, v2)
			r, err := d.m.Update(rpcproto.OTAUpdateParams{Target: "hello/2.0.0", URL: u, CommitTimeout: 600})
			if err != nil {
				t.Fatal(err)
			}
			aw := d.waitStatus(r.ID, "awaiting_commit")
			d.m.Close()
			// What the failure path writes before it reports (here over a
			// job that had got further: only its fields matter).
			path := filepath.Join(d.dir, "state.json")
			st, err := readState(path)
			if err != nil {
				t.Fatal(err)
			}
			st.Active, st.Revert, st.Committed, st.Deadline = "a", "", true, time.Time{}
			st.Job.Phase, st.Job.Reason, st.Job.ReportSeq = phaseFailed, "the test says no", aw.Seq+1
			if spooled {
				st.Job.ReportSeq = aw.Seq // as if failed had been spooled with this seq
			}
			if err := writeState(path, st); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d.dir, "slots", st.Job.Slot, "half-written"), []byte("x"), 0o644)
			d.open()
			got := d.last(r.ID)
			if !spooled && (got.Status != "failed" || got.Seq != aw.Seq+1 || got.Reason != "the test says no") {
				t.Fatalf("after a kill before failed: %+v", got)
			}
			if spooled && got.Status != "awaiting_commit" {
				t.Fatalf("a spooled failure reported again: %+v", got)
			}
			if st, _ := readState(path); st.Job != nil || st.Active != "a" || !st.Committed {
				t.Fatalf("state: %+v", st)
			}
			if ents, _ := os.ReadDir(filepath.Join(d.dir, "slots", "b")); len(ents) != 0 {
				t.Fatalf("the failed update's slot keeps %d entries", len(ents))
			}
			n := len(d.statuses(r.ID))
			d.m.Close()
			d.open()
			if len(d.statuses(r.ID)) != n {
				t.Fatalf("failed reported again: %q", d.statuses(r.ID))
			}
		})
	}
}
