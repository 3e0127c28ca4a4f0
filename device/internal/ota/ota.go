// Package ota is the device side of over-the-air updates: two slots under
// the data directory, one active, and the methods that change which one is
// (ota.update, ota.commit, ota.revert, ota.create_snapshot,
// ota.get_boot_state, ota.set_boot_state, after Mongoose OS's OTA RPC
// service). bosun-ota (device/cmd/bosun-ota) serves them as a worker.
//
// Layout under Config.Dir (normally <data dir>/ota):
//
//	state.json        which slot is active, committed or not, the commit deadline, the update in progress
//	slots/a, slots/b  the slots' content (an unpacked bundle)
//	current           symlink to the active slot (slots/a or slots/b)
//	download/         the bundle being downloaded (<slot>.partial and .meta)
//	reports/          ota.status reports not yet handed to the bridge
//
// An update downloads into the inactive slot's partial file (resuming with
// HTTP Range), checks length and sha256 against what the Verifier says,
// unpacks into a fresh directory that replaces the inactive slot, and only
// then switches: one atomic replacement of state.json. A crash at any point
// before the switch leaves the active slot as it was (and the update is
// taken up again on the next start); after the switch the new slot is
// complete. When the new slot is not committed by its deadline, which
// state.json holds, the manager switches back, also when it was restarted
// in between.
package ota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// TargetInfo is what a Verifier knows about a target. Its fields are those
// of pkg/release.TargetInfo (area A of issue 10), which replaces it once it
// lands.
type TargetInfo struct {
	Path    string
	Length  int64
	Hashes  map[string][]byte
	Name    string
	Version string
}

// Verifier says which bytes a target must have; pkg/release's TUF verifier
// is the production one. An error means the target may not be installed.
type Verifier interface {
	Target(ctx context.Context, name, version string) (TargetInfo, error)
}

// Errors of the manager's methods. The worker methods translate them into
// JSON-RPC errors (methods.go).
var (
	// ErrBusy: an update is in progress.
	ErrBusy = errors.New("an update is in progress")
	// ErrNotCommitted: the active slot awaits its commit; commit or revert first.
	ErrNotCommitted = errors.New("the active slot is not committed: ota.commit or ota.revert first")
	// ErrNothingToRevert: the active slot is committed.
	ErrNothingToRevert = errors.New("nothing to revert: the active slot is committed")
	// ErrInvalid: the params cannot be used (the message says why).
	ErrInvalid = errors.New("invalid")
)

// Limits and defaults.
const (
	// MaxCommitTimeout is the largest commit_timeout, in seconds (one day).
	MaxCommitTimeout = 86400
	// DefaultMaxBundleBytes bounds the download. 1 GiB.
	DefaultMaxBundleBytes = 1 << 30
	// DefaultMaxUnpackedBytes bounds what a bundle expands to. 2 GiB.
	DefaultMaxUnpackedBytes = 2 << 30
	// DefaultMaxEntries bounds the number of tar entries.
	DefaultMaxEntries = 10000
)

// Config configures a Manager.
type Config struct {
	// Dir holds state.json and the slots. Required; created (0700) when
	// missing.
	Dir string
	// Verifier resolves ota.update's target into length and hashes.
	// Required for ota.update (nil: every update fails).
	Verifier Verifier
	// Hook is the restart hook, an executable run with the new active
	// slot's directory as its argument after every switch. Empty means
	// none.
	Hook string
	// HookTimeout bounds one run of the hook. Defaults to 60s.
	HookTimeout time.Duration
	// Send hands ota.status reports to the bridge. nil means reports stay
	// in reports/ (tests read them there).
	Send SendFunc
	// BaseURL resolves an ota.update url that is a path alone (what a
	// cloud without a public URL sends): scheme and host of the cloud.
	// nil means such a url is refused.
	BaseURL *url.URL
	// HTTPClient downloads bundles. nil means a client with a 30s
	// response-header timeout (no overall timeout: bundles are big).
	HTTPClient *http.Client
	// DownloadAttempts is how many consecutive attempts without new bytes
	// a download makes before it fails. Defaults to 8.
	DownloadAttempts int
	// RetryBase is the first backoff window of downloads and report
	// deliveries (it doubles up to 30s). Defaults to 500ms.
	RetryBase time.Duration
	// HashRetries is how many times a bundle whose hash is wrong is
	// downloaded again from zero. Defaults to 1.
	HashRetries int
	// MaxBundleBytes, MaxUnpackedBytes and MaxEntries bound an update;
	// zero means DefaultMaxBundleBytes etc.
	MaxBundleBytes   int64
	MaxUnpackedBytes int64
	MaxEntries       int
	// OnStep, when set, is called as an update enters each step
	// ("download", "verify", "unpack", "switch", "hook", "awaiting_commit"),
	// "revert" as a revert runs the hook and "commit" once ota.commit is on
	// disk; the kill -9 tests use it to know where they are.
	OnStep func(step string)
	// Logger receives the manager's logs. nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock. nil means time.Now.
	Now func() time.Time
}

// Manager owns the slots. Its methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	path  string // state.json
	spool *spool

	ctx    context.Context // cancelled by Close; parent of jobs and the spool
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // guards the following; held while the state changes (hooks included)
	st        state
	running   bool                    // a job goroutine is running
	jobCancel context.CancelCauseFunc // stops the running job (ota.abort)
	timer     *time.Timer
	closed    bool
	// transferred sums the bytes downloaded (tests, logs).
	transferred int64

	jobStatus atomic.Pointer[jobStatus] // the latest status reported of the running job
}

// jobStatus is the latest status reported of a job in progress.
type jobStatus struct{ id, status string }

// New opens (or initialises) the slots in cfg.Dir and recovers: an
// uncommitted slot past its deadline is reverted now, one before its
// deadline gets a timer, and an update that a restart interrupted before
// its switch is taken up again in the background. Close stops it.
func New(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("ota: no directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HookTimeout <= 0 {
		cfg.HookTimeout = 60 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 30 * time.Second,
		}}
	}
	if cfg.DownloadAttempts <= 0 {
		cfg.DownloadAttempts = 8
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if cfg.HashRetries < 0 {
		cfg.HashRetries = 0
	} else if cfg.HashRetries == 0 {
		cfg.HashRetries = 1
	}
	if cfg.MaxBundleBytes <= 0 {
		cfg.MaxBundleBytes = DefaultMaxBundleBytes
	}
	if cfg.MaxUnpackedBytes <= 0 {
		cfg.MaxUnpackedBytes = DefaultMaxUnpackedBytes
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "slots"), filepath.Join(cfg.Dir, "download")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("ota: %w", err)
		}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "ota"), path: filepath.Join(cfg.Dir, "state.json")}
	st, err := loadOrInit(m.path, cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("ota: %w", err)
	}
	m.st = st
	sp, err := openSpool(filepath.Join(cfg.Dir, "reports"), cfg.Send, m.log, cfg.RetryBase)
	if err != nil {
		return nil, fmt.Errorf("ota: %w", err)
	}
	m.spool = sp
	m.ctx, m.cancel = context.WithCancel(context.Background())

	// Leftovers of an interrupted unpack or snapshot.
	tmps, _ := filepath.Glob(filepath.Join(cfg.Dir, "slots", ".*"))
	for _, t := range tmps {
		os.RemoveAll(t)
	}
	for _, s := range []string{SlotA, SlotB} {
		if err := os.MkdirAll(m.slotDir(s), 0o755); err != nil {
			return nil, fmt.Errorf("ota: %w", err)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.pointCurrent(); err != nil {
		return nil, fmt.Errorf("ota: %w", err)
	}
	overdue := !m.st.Committed && !m.cfg.Now().Before(m.st.Deadline)
	if j := m.st.Job; j != nil && j.Phase == phaseSwitched && !j.HookRan && !overdue {
		// Killed between the switch and the hook: run it now.
		m.afterSwitchLocked(m.ctx)
	}
	if j := m.st.Job; j != nil && j.Phase == phaseCommitted {
		if m.spool.nextSeq() <= j.ReportSeq {
			// Killed between the commit and its report.
			m.report(*j, rpcproto.OTASucceeded, "", nil)
		}
		m.forgetJobLocked()
	}
	if j := m.st.Job; j != nil && j.Phase == phaseFailed {
		if m.spool.nextSeq() <= j.ReportSeq {
			// Killed between the failure and its report.
			m.finishFailedLocked(*j, j.Reason)
		} else {
			os.RemoveAll(m.slotDir(j.Slot))
			os.MkdirAll(m.slotDir(j.Slot), 0o755)
			m.forgetJobLocked()
		}
	}
	if j := m.st.Job; j != nil && j.Phase == phaseReverted {
		if m.spool.nextSeq() <= j.ReportSeq {
			// Killed in the revert's hook, before its report: both now.
			m.finishRevertLocked(m.ctx, j.Reason)
		} else {
			m.forgetJobLocked()
		}
	}
	if j := m.st.Job; j != nil && j.Phase == phaseSwitched && j.HookRan && j.ReportSeq != 0 && m.spool.nextSeq() <= j.ReportSeq {
		// Killed after the hook ran, before its awaiting_commit report
		// was spooled: the report comes now, before anything that follows.
		m.report(*j, rpcproto.OTAAwaitingCommit, "", nil)
	}
	if overdue {
		m.revertLocked(m.ctx, fmt.Sprintf("commit_timeout passed without ota.commit (deadline %s)", m.st.Deadline.UTC().Format(time.RFC3339)))
	}
	m.armLocked()
	if j := m.st.Job; j != nil && j.Phase == "" {
		m.log.Info("taking up an interrupted update", "id", j.ID, "target", j.Target)
		m.startJobLocked(*j)
	}
	m.wg.Go(func() { m.spool.run(m.ctx) })
	return m, nil
}

// Close stops the background work (an update in progress stops where it
// is and is taken up by the next New) and waits for it. Safe to call twice.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	if m.timer != nil {
		m.timer.Stop()
	}
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	m.cfg.HTTPClient.CloseIdleConnections()
}

func (m *Manager) slotDir(s string) string { return filepath.Join(m.cfg.Dir, "slots", s) }

// SlotDir returns the directory of slot "a" or "b".
func (m *Manager) SlotDir(s string) string { return m.slotDir(s) }

// pointCurrent makes <dir>/current a symlink to the active slot,
// atomically (a new link renamed over the old one).
func (m *Manager) pointCurrent() error {
	cur := filepath.Join(m.cfg.Dir, "current")
	want := filepath.Join("slots", m.st.Active)
	if t, err := os.Readlink(cur); err == nil && t == want {
		return nil
	}
	tmp := cur + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(want, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, cur); err != nil {
		return err
	}
	return keys.SyncDir(m.cfg.Dir)
}

// commitLocked writes st as the new state and points current at its
// active slot. Nothing changes in memory when the write fails.
func (m *Manager) commitLocked(st state) error {
	if err := writeState(m.path, st); err != nil {
		return err
	}
	m.st = st
	return m.pointCurrent()
}

// report spools an ota.status report. A report that cannot be spooled is
// logged: the state change it describes has happened already. A final
// report (succeeded, failed, rolled_back) is always made with m.mu held
// (the state change it reports has just been written) and records the
// outcome as state.Last; the others are recorded as the running job's
// status (ota.update sent again answers it).
func (m *Manager) report(j job, status, reason string, percent *int) {
	switch status {
	case rpcproto.OTASucceeded, rpcproto.OTAFailed, rpcproto.OTARolledBack:
		st := m.st.clone()
		st.Last = &lastUpdate{ID: j.ID, Target: j.Target, Status: status}
		if err := m.commitLocked(st); err != nil {
			m.log.Error("recording the outcome of an update", "id", j.ID, "err", err)
		}
	default:
		m.jobStatus.Store(&jobStatus{id: j.ID, status: status})
	}
	p := rpcproto.OTAStatusParams{ID: j.ID, Target: j.Target, Status: status, Reason: reason, Percent: percent, Slot: j.Slot, At: m.cfg.Now().UTC()}
	seq, err := m.spool.add(p)
	if err != nil {
		m.log.Error("ota.status", "err", err, "status", status)
		return
	}
	m.log.Info("ota.status", "id", j.ID, "target", j.Target, "status", status, "percent", percent, "reason", reason, "seq", seq)
}

// Reports returns the ota.status reports not yet handed to the bridge.
func (m *Manager) Reports() ([]rpcproto.OTAStatusParams, error) { return m.spool.pending() }

// BootState answers ota.get_boot_state.
func (m *Manager) BootState() rpcproto.OTABootState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bootStateLocked()
}

func (m *Manager) bootStateLocked() rpcproto.OTABootState {
	bs := rpcproto.OTABootState{ActiveSlot: m.st.Active, IsCommitted: m.st.Committed, RevertSlot: m.st.Revert}
	if !m.st.Committed {
		left := m.st.Deadline.Sub(m.cfg.Now())
		bs.CommitTimeout = max(0, int((left+time.Second-1)/time.Second))
	}
	return bs
}

// armLocked sets the revert timer for the current deadline.
func (m *Manager) armLocked() {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	if m.st.Committed || m.closed {
		return
	}
	deadline := m.st.Deadline
	m.timer = time.AfterFunc(max(0, deadline.Sub(m.cfg.Now())), func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed || m.st.Committed || !m.st.Deadline.Equal(deadline) {
			return
		}
		m.revertLocked(m.ctx, fmt.Sprintf("commit_timeout passed without ota.commit (deadline %s)", deadline.UTC().Format(time.RFC3339)))
	})
}

// Commit answers ota.commit: the active slot stays. Committing a committed
// slot is a no-op.
func (m *Manager) Commit() (rpcproto.OTABootState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Committed {
		return m.bootStateLocked(), nil
	}
	st := m.st.clone()
	st.Committed = true
	st.Deadline = time.Time{}
	if st.Job != nil {
		// The job stays until its succeeded report is spooled (see New).
		st.Job.Phase = phaseCommitted
		st.Job.ReportSeq = m.spool.nextSeq()
	}
	if err := m.commitLocked(st); err != nil {
		return rpcproto.OTABootState{}, err
	}
	m.armLocked()
	m.step("commit")
	if j := m.st.Job; j != nil {
		m.report(*j, rpcproto.OTASucceeded, "", nil)
		m.forgetJobLocked()
	}
	return m.bootStateLocked(), nil
}

// Revert answers ota.revert: back to the revert slot.
func (m *Manager) Revert() (rpcproto.OTABootState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Committed {
		return rpcproto.OTABootState{}, ErrNothingToRevert
	}
	if err := m.revertLocked(m.ctx, "reverted by ota.revert"); err != nil {
		return rpcproto.OTABootState{}, err
	}
	return m.bootStateLocked(), nil
}

// revertLocked switches to the revert slot, committed, runs the hook and
// reports rolled_back. The update's job stays in state.json (phase
// reverted) until the report is spooled: a worker killed in between runs
// the hook again and reports on its next start.
func (m *Manager) revertLocked(ctx context.Context, reason string) error {
	from := m.st.Active
	st := m.st.clone()
	st.Active = st.Revert
	st.Revert = from
	st.Committed = true
	st.Deadline = time.Time{}
	if st.Job != nil {
		st.Job.Phase = phaseReverted
		st.Job.Reason = reason
		st.Job.ReportSeq = m.spool.nextSeq()
	}
	if err := m.commitLocked(st); err != nil {
		m.log.Error("reverting", "err", err)
		return err
	}
	m.armLocked()
	m.log.Warn("reverted", "from", from, "to", st.Active, "reason", reason)
	m.step("revert")
	m.finishRevertLocked(ctx, reason)
	return nil
}

// finishRevertLocked runs the hook for the slot a revert went back to and
// reports rolled_back for the update it ended, if any, then forgets it.
func (m *Manager) finishRevertLocked(ctx context.Context, reason string) {
	if err := m.runHook(ctx, hookEvent{reason: "revert", slot: m.st.Active, slotDir: m.slotDir(m.st.Active), previous: m.st.Revert, target: m.st.Slots[m.st.Active].Target}); err != nil {
		m.log.Error("restart hook after revert", "err", err)
		reason += "; " + err.Error()
	}
	if j := m.st.Job; j != nil && j.Phase == phaseReverted {
		m.report(*j, rpcproto.OTARolledBack, reason, nil)
		m.forgetJobLocked()
	}
}

// forgetJobLocked removes the finished job from the state.
func (m *Manager) forgetJobLocked() {
	st := m.st.clone()
	st.Job = nil
	if err := m.commitLocked(st); err != nil {
		m.log.Error("forgetting the finished update", "err", err)
	}
}

var targetRe = regexp.MustCompile(`^([a-z0-9][a-z0-9._-]{0,63})/([0-9A-Za-z.+-]{1,128})$`)

// semverRe is semantic version 2.0.0 without a leading v.
var semverRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Update answers ota.update: it checks the params, records the update and
// runs it in the background. Progress and outcome come as ota.status.
func (m *Manager) Update(p rpcproto.OTAUpdateParams) (rpcproto.OTAUpdateResult, error) {
	mt := targetRe.FindStringSubmatch(p.Target)
	if mt == nil || !semverRe.MatchString(mt[2]) {
		return rpcproto.OTAUpdateResult{}, invalidf("target must be NAME/VERSION (NAME: lowercase letters, digits, '.', '_', '-'; VERSION: a semantic version), got %q", p.Target)
	}
	if strings.HasPrefix(p.URL, "/") && !strings.HasPrefix(p.URL, "//") && m.cfg.BaseURL != nil {
		// A path alone: the cloud has no public URL, the device knows
		// where its cloud is.
		p.URL = m.cfg.BaseURL.JoinPath(p.URL).String()
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return rpcproto.OTAUpdateResult{}, invalidf("url must be an http or https URL, got %q", p.URL)
	}
	if p.CommitTimeout < 0 || p.CommitTimeout > MaxCommitTimeout {
		return rpcproto.OTAUpdateResult{}, invalidf("commit_timeout must be 0..%d seconds, got %d", MaxCommitTimeout, p.CommitTimeout)
	}
	if p.ID != "" && !idRe.MatchString(p.ID) {
		return rpcproto.OTAUpdateResult{}, invalidf("id must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-', got %.80q", p.ID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.sameUpdateLocked(p.ID); ok {
		return r, nil
	}
	// An uncommitted slot first: its update may still be winding down
	// (m.running) after its awaiting_commit report, and what the caller
	// must do is commit or revert.
	if !m.st.Committed {
		return rpcproto.OTAUpdateResult{}, ErrNotCommitted
	}
	if (m.st.Job != nil && m.st.Job.Phase == "") || m.running {
		return rpcproto.OTAUpdateResult{}, ErrBusy
	}
	id := p.ID
	if id == "" {
		var idb [8]byte
		rand.Read(idb[:])
		id = hex.EncodeToString(idb[:])
	}
	j := job{ID: id, Target: p.Target, URL: p.URL, CommitTimeout: p.CommitTimeout,
		Slot: otherSlot(m.st.Active), From: m.st.Active, StartedAt: m.cfg.Now().UTC()}
	st := m.st.clone()
	st.Job = &j
	// The inactive slot is about to be overwritten: it is no longer a
	// revert target.
	delete(st.Slots, j.Slot)
	if st.Revert == j.Slot {
		st.Revert = ""
	}
	if err := m.commitLocked(st); err != nil {
		return rpcproto.OTAUpdateResult{}, err
	}
	m.startJobLocked(j)
	return rpcproto.OTAUpdateResult{ID: j.ID, Slot: j.Slot, Status: rpcproto.OTADownloading}, nil
}

func (m *Manager) startJobLocked(j job) {
	if m.running || m.closed {
		return
	}
	m.running = true
	jctx, cancel := context.WithCancelCause(m.ctx)
	m.jobCancel = cancel
	m.wg.Go(func() {
		err := m.runJob(jctx, j)
		m.mu.Lock()
		defer m.mu.Unlock()
		m.running = false
		m.jobCancel = nil
		cancel(nil)
		if err == nil || m.ctx.Err() != nil {
			return // done, or stopped by Close: the next New takes it up
		}
		if errors.Is(context.Cause(jctx), errAborted) {
			// ota.abort: the slot and the partial download go.
			err = errAborted
			os.Remove(filepath.Join(m.cfg.Dir, "download", j.Slot+".partial"))
			os.Remove(filepath.Join(m.cfg.Dir, "download", j.Slot+".partial.meta"))
		}
		m.log.Error("update failed", "id", j.ID, "target", j.Target, "err", err)
		// The job stays, failed, with the seq of its report, until the
		// report is spooled: a kill in between reports it on the next
		// start (New), once.
		st := m.st.clone()
		if st.Job != nil && st.Job.ID == j.ID {
			st.Job.Phase = phaseFailed
			st.Job.Reason = err.Error()
			st.Job.ReportSeq = m.spool.nextSeq()
			if werr := m.commitLocked(st); werr != nil {
				m.log.Error("recording the failed update", "err", werr)
			}
		}
		m.finishFailedLocked(j, err.Error())
	})
}

// finishFailedLocked empties the failed update's slot, reports failed
// and forgets the job.
func (m *Manager) finishFailedLocked(j job, reason string) {
	os.RemoveAll(m.slotDir(j.Slot))
	os.MkdirAll(m.slotDir(j.Slot), 0o755)
	m.report(j, rpcproto.OTAFailed, reason, nil)
	if cur := m.st.Job; cur != nil && cur.ID == j.ID {
		m.forgetJobLocked()
	}
}

func (m *Manager) step(s string) {
	if m.cfg.OnStep != nil {
		m.cfg.OnStep(s)
	}
}

// Transferred returns the bytes downloaded so far by this Manager.
func (m *Manager) Transferred() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.transferred
}

// runJob runs an update up to its switch (or its failure).
func (m *Manager) runJob(ctx context.Context, j job) error {
	name, version, _ := strings.Cut(j.Target, "/")
	if m.cfg.Verifier == nil {
		return errors.New("no verifier configured: cannot check the target")
	}
	info, err := m.cfg.Verifier.Target(ctx, name, version)
	if err != nil {
		return fmt.Errorf("verifying target %s: %w", j.Target, err)
	}
	sum := info.Hashes["sha256"]
	if len(sum) != 32 {
		return fmt.Errorf("target %s has no sha256", j.Target)
	}
	if info.Length <= 0 || info.Length > m.cfg.MaxBundleBytes {
		return fmt.Errorf("target %s is %d bytes; the limit is %d", j.Target, info.Length, m.cfg.MaxBundleBytes)
	}
	want := hex.EncodeToString(sum)
	partial := filepath.Join(m.cfg.Dir, "download", j.Slot+".partial")

	lastPct := -1
	d := &downloader{client: m.cfg.HTTPClient, attempts: m.cfg.DownloadAttempts, base: m.cfg.RetryBase, cap: 30 * time.Second,
		progress: func(done, total int64) {
			pct := int(done * 100 / total)
			if pct/10 != lastPct/10 || (pct == 100 && lastPct != 100) {
				lastPct = pct
				m.report(j, rpcproto.OTADownloading, "", &pct)
			}
		}}
	defer func() {
		m.mu.Lock()
		m.transferred += d.transferred
		m.mu.Unlock()
	}()
	var f *os.File
	for try := 0; ; try++ {
		m.step("download")
		if have, _ := fileSize(partial); have == 0 {
			zero := 0
			lastPct = 0
			m.report(j, rpcproto.OTADownloading, "", &zero)
		}
		if err := d.fetch(ctx, j.URL, partial, info.Length, want); err != nil {
			return fmt.Errorf("downloading %s: %w", j.URL, err)
		}
		m.step("verify")
		f, err = os.Open(partial)
		if err != nil {
			return err
		}
		n, got, err := hashFile(f)
		if err != nil {
			f.Close()
			return err
		}
		if n == info.Length && got == want {
			break
		}
		f.Close()
		os.Remove(partial)
		if try >= m.cfg.HashRetries {
			return fmt.Errorf("the downloaded bundle does not match the target: %d bytes with sha256 %s, want %d bytes with sha256 %s", n, got, info.Length, want)
		}
		m.log.Warn("downloaded bundle has the wrong hash; downloading again", "id", j.ID, "got", got, "want", want)
	}
	defer f.Close()

	m.step("unpack")
	m.report(j, rpcproto.OTAInstalling, "", nil)
	tmp := filepath.Join(m.cfg.Dir, "slots", "."+j.Slot+".new")
	os.RemoveAll(tmp)
	if _, err := f.Seek(0, 0); err != nil {
		return err
	}
	// The bytes unpacked are hashed again: they must be the ones verified.
	h := newHashingReader(f)
	if err := unpack(h, tmp, unpackLimits{maxBytes: m.cfg.MaxUnpackedBytes, maxEntries: m.cfg.MaxEntries}); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("unpacking %s: %w", j.Target, err)
	}
	if err := h.drain(); err != nil || h.sum() != want {
		os.RemoveAll(tmp)
		return fmt.Errorf("the bundle changed while it was unpacked")
	}
	if ctx.Err() != nil {
		os.RemoveAll(tmp)
		return ctx.Err()
	}

	m.step("switch")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return context.Canceled
	}
	if ctx.Err() != nil {
		// Aborted while unpacking: checked under the lock, so an
		// ota.abort that answered "failed" never sees the switch.
		os.RemoveAll(tmp)
		return context.Cause(ctx)
	}
	slot := m.slotDir(j.Slot)
	old := filepath.Join(m.cfg.Dir, "slots", "."+j.Slot+".old")
	os.RemoveAll(old)
	if err := os.Rename(slot, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, slot); err != nil {
		return err
	}
	if err := keys.SyncDir(filepath.Join(m.cfg.Dir, "slots")); err != nil {
		return err
	}
	os.RemoveAll(old)
	st := m.st.clone()
	st.Slots[j.Slot] = &slotInfo{Target: j.Target, SHA256: want, Length: info.Length, InstalledAt: m.cfg.Now().UTC()}
	st.Active = j.Slot
	st.Revert = j.From
	jj := j
	jj.Phase = phaseSwitched
	if j.CommitTimeout == 0 {
		st.Committed = true
		st.Deadline = time.Time{}
	} else {
		st.Committed = false
		st.Deadline = m.cfg.Now().Add(time.Duration(j.CommitTimeout) * time.Second).UTC()
	}
	st.Job = &jj
	if err := m.commitLocked(st); err != nil {
		return err
	}
	os.Remove(partial)
	os.Remove(partial + ".meta")
	m.afterSwitchLocked(ctx)
	return nil
}

// afterSwitchLocked runs the restart hook for a switched update and
// reports its state: awaiting_commit (with the revert timer armed),
// succeeded (commit_timeout 0), or failed when the hook failed, after
// reverting.
func (m *Manager) afterSwitchLocked(ctx context.Context) {
	j := *m.st.Job
	m.step("hook")
	err := m.runHook(ctx, hookEvent{reason: "update", slot: j.Slot, slotDir: m.slotDir(j.Slot), previous: j.From, target: j.Target, deadline: m.st.Deadline})
	if err != nil {
		if m.st.Committed {
			// commit_timeout 0: committed already, nothing to go back to
			// automatically.
			st := m.st.clone()
			st.Job = nil
			m.commitLocked(st)
			m.report(j, rpcproto.OTAFailed, err.Error()+" (the slot stays active: commit_timeout was 0)", nil)
			return
		}
		m.revertLocked(ctx, err.Error())
		return
	}
	st := m.st.clone()
	st.Job.HookRan = true
	st.Job.ReportSeq = m.spool.nextSeq()
	if st.Committed {
		st.Job.Phase = phaseCommitted // commit_timeout 0
	}
	if werr := m.commitLocked(st); werr != nil {
		m.log.Error("recording the hook run", "err", werr)
	}
	if m.st.Committed {
		m.report(j, rpcproto.OTASucceeded, "", nil)
		m.forgetJobLocked()
		return
	}
	m.step("awaiting_commit")
	m.report(j, rpcproto.OTAAwaitingCommit, "", nil)
	m.armLocked()
}
