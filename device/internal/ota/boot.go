package ota

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// CreateSnapshot answers ota.create_snapshot: the active slot is copied
// into the other one. With set_as_revert the copy becomes the revert slot,
// and with a commit_timeout too the active slot becomes uncommitted: it
// must be committed within commit_timeout or the device goes back to the
// copy (a safety net around a risky change made in place).
func (m *Manager) CreateSnapshot(ctx context.Context, p rpcproto.OTACreateSnapshotParams) (rpcproto.OTACreateSnapshotResult, error) {
	if p.CommitTimeout < 0 || p.CommitTimeout > MaxCommitTimeout {
		return rpcproto.OTACreateSnapshotResult{}, invalidf("commit_timeout must be 0..%d seconds, got %d", MaxCommitTimeout, p.CommitTimeout)
	}
	if p.CommitTimeout > 0 && !p.SetAsRevert {
		return rpcproto.OTACreateSnapshotResult{}, invalidf("commit_timeout needs set_as_revert")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Job != nil && m.st.Job.Phase == "" {
		return rpcproto.OTACreateSnapshotResult{}, ErrBusy
	}
	if !m.st.Committed {
		return rpcproto.OTACreateSnapshotResult{}, ErrNotCommitted
	}
	dst := otherSlot(m.st.Active)
	// The copy replaces the other slot: forget it first, so that a crash
	// in the middle leaves no half copy marked complete.
	st := m.st.clone()
	delete(st.Slots, dst)
	if st.Revert == dst {
		st.Revert = ""
	}
	if err := m.commitLocked(st); err != nil {
		return rpcproto.OTACreateSnapshotResult{}, err
	}
	tmp := filepath.Join(m.cfg.Dir, "slots", "."+dst+".new")
	os.RemoveAll(tmp)
	if err := copyTree(m.slotDir(m.st.Active), tmp); err != nil {
		os.RemoveAll(tmp)
		return rpcproto.OTACreateSnapshotResult{}, fmt.Errorf("copying slot %s: %w", m.st.Active, err)
	}
	if err := syncTree(tmp); err != nil {
		os.RemoveAll(tmp)
		return rpcproto.OTACreateSnapshotResult{}, err
	}
	os.RemoveAll(m.slotDir(dst))
	if err := os.Rename(tmp, m.slotDir(dst)); err != nil {
		return rpcproto.OTACreateSnapshotResult{}, err
	}
	if err := keys.SyncDir(filepath.Join(m.cfg.Dir, "slots")); err != nil {
		return rpcproto.OTACreateSnapshotResult{}, err
	}
	st = m.st.clone()
	cp := *st.Slots[st.Active]
	cp.InstalledAt = m.cfg.Now().UTC()
	st.Slots[dst] = &cp
	if p.SetAsRevert {
		st.Revert = dst
		if p.CommitTimeout > 0 {
			st.Committed = false
			st.Deadline = m.cfg.Now().Add(time.Duration(p.CommitTimeout) * time.Second).UTC()
		}
	}
	if err := m.commitLocked(st); err != nil {
		return rpcproto.OTACreateSnapshotResult{}, err
	}
	m.armLocked()
	return rpcproto.OTACreateSnapshotResult{Slot: dst}, nil
}

// SetBootState answers ota.set_boot_state: it makes active_slot active
// (running the restart hook when that changes the active slot), committed
// or, with is_committed false, to be committed within commit_timeout or
// reverted to revert_slot. Both slots must hold a complete install.
func (m *Manager) SetBootState(ctx context.Context, p rpcproto.OTABootState) (rpcproto.OTABootState, error) {
	if !validSlot(p.ActiveSlot) {
		return rpcproto.OTABootState{}, invalidf("active_slot must be \"a\" or \"b\", got %q", p.ActiveSlot)
	}
	if p.RevertSlot != "" && !validSlot(p.RevertSlot) {
		return rpcproto.OTABootState{}, invalidf("revert_slot must be \"a\", \"b\" or empty, got %q", p.RevertSlot)
	}
	if p.IsCommitted && p.CommitTimeout != 0 {
		return rpcproto.OTABootState{}, invalidf("commit_timeout must be 0 when is_committed is true")
	}
	if !p.IsCommitted {
		if p.CommitTimeout < 1 || p.CommitTimeout > MaxCommitTimeout {
			return rpcproto.OTABootState{}, invalidf("commit_timeout must be 1..%d seconds when is_committed is false, got %d", MaxCommitTimeout, p.CommitTimeout)
		}
		if p.RevertSlot == "" || p.RevertSlot == p.ActiveSlot {
			return rpcproto.OTABootState{}, invalidf("an uncommitted active_slot needs the other slot as revert_slot")
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Job != nil && m.st.Job.Phase == "" {
		return rpcproto.OTABootState{}, ErrBusy
	}
	if m.st.Slots[p.ActiveSlot] == nil {
		return rpcproto.OTABootState{}, invalidf("slot %s holds no complete install", p.ActiveSlot)
	}
	if p.RevertSlot != "" && m.st.Slots[p.RevertSlot] == nil {
		return rpcproto.OTABootState{}, invalidf("slot %s holds no complete install", p.RevertSlot)
	}
	prev := m.st.Active
	st := m.st.clone()
	st.Active = p.ActiveSlot
	st.Revert = p.RevertSlot
	st.Committed = p.IsCommitted
	st.Deadline = time.Time{}
	if !p.IsCommitted {
		st.Deadline = m.cfg.Now().Add(time.Duration(p.CommitTimeout) * time.Second).UTC()
	}
	j := st.Job
	st.Job = nil // a switched update no longer describes this state
	if err := m.commitLocked(st); err != nil {
		return rpcproto.OTABootState{}, err
	}
	m.armLocked()
	if j != nil && j.Phase == phaseSwitched {
		// The update awaiting its commit ends here: kept, or left.
		if st.Active == j.Slot && st.Committed {
			m.report(*j, rpcproto.OTASucceeded, "", nil)
		} else {
			m.report(*j, rpcproto.OTARolledBack, "replaced by ota.set_boot_state", nil)
		}
	}
	if prev != st.Active {
		if err := m.runHook(ctx, hookEvent{reason: "set_boot_state", slot: st.Active, slotDir: m.slotDir(st.Active), previous: prev, target: st.Slots[st.Active].Target, deadline: st.Deadline}); err != nil {
			m.log.Error("restart hook after set_boot_state", "err", err)
		}
	}
	return m.bootStateLocked(), nil
}
