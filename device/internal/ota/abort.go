package ota

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// ota.abort and the update ids the cloud chooses. A deployment names each
// attempt (dep-<deployment>-<attempt>): the device uses the id for its
// reports, answers an ota.update sent again with the same id with that
// update's state (the cloud lost the first answer), and stops the update
// of an id on ota.abort.

// ErrNothingToAbort: ota.abort names no update in progress or awaiting
// its commit.
var ErrNothingToAbort = errors.New("nothing to abort")

// errAborted is the cause a job is stopped with, and its failure reason.
var errAborted = errors.New("aborted: stopped by ota.abort")

// idRe is an update id a caller may choose.
var idRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// sameUpdateLocked answers an ota.update naming the id of the update in
// progress, awaiting its commit, or the last one that ended: its state,
// and nothing starts.
func (m *Manager) sameUpdateLocked(id string) (rpcproto.OTAUpdateResult, bool) {
	if id == "" {
		return rpcproto.OTAUpdateResult{}, false
	}
	if j := m.st.Job; j != nil && j.ID == id {
		status := rpcproto.OTADownloading
		switch {
		case j.Phase == phaseSwitched && !m.st.Committed:
			status = rpcproto.OTAAwaitingCommit
		case j.Phase == phaseSwitched:
			status = rpcproto.OTAInstalling // the hook is running
		default:
			if s := m.jobStatus.Load(); s != nil && s.id == id {
				status = s.status
			}
		}
		return rpcproto.OTAUpdateResult{ID: id, Slot: j.Slot, Status: status}, true
	}
	if l := m.st.Last; l != nil && l.ID == id {
		return rpcproto.OTAUpdateResult{ID: id, Slot: m.st.Active, Status: l.Status}, true
	}
	return rpcproto.OTAUpdateResult{}, false
}

// Abort answers ota.abort: an update of id in progress stops, its slot and
// partial download are removed, and it reports failed ("aborted: ...");
// one awaiting its commit reverts (rolled_back). Any other id is
// ErrNothingToAbort, which changes nothing.
func (m *Manager) Abort(id string) (rpcproto.OTAAbortResult, error) {
	if !idRe.MatchString(id) {
		return rpcproto.OTAAbortResult{}, invalidf("id must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-', got %.80q", id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.st.Job
	if j == nil || j.ID != id {
		why := "no update is in progress or awaiting its commit"
		if j != nil {
			why = fmt.Sprintf("the update in progress is %s", j.ID)
		}
		if l := m.st.Last; l != nil && l.ID == id {
			why = fmt.Sprintf("update %s has ended: %s", id, l.Status)
		}
		return rpcproto.OTAAbortResult{}, fmt.Errorf("%w: %s", ErrNothingToAbort, why)
	}
	if j.Phase == "" {
		// The job leaves the state now, so a restart does not take it
		// up; its goroutine cleans the slot and reports.
		st := m.st.clone()
		st.Job = nil
		delete(st.Slots, j.Slot)
		if err := m.commitLocked(st); err != nil {
			return rpcproto.OTAAbortResult{}, err
		}
		m.log.Warn("aborting the update in progress", "id", id, "target", j.Target)
		if m.jobCancel != nil {
			m.jobCancel(errAborted)
		} else {
			m.report(*j, rpcproto.OTAFailed, errAborted.Error(), nil)
		}
		return rpcproto.OTAAbortResult{ID: id, Status: rpcproto.OTAFailed}, nil
	}
	if !m.st.Committed {
		if err := m.revertLocked(m.ctx, "aborted by ota.abort"); err != nil {
			return rpcproto.OTAAbortResult{}, err
		}
		return rpcproto.OTAAbortResult{ID: id, Status: rpcproto.OTARolledBack}, nil
	}
	return rpcproto.OTAAbortResult{}, fmt.Errorf("%w: update %s is committed", ErrNothingToAbort, id)
}
