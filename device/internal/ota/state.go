package ota

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bosunhq/bosun/pkg/keys"
)

// Slot names. There are always exactly two.
const (
	SlotA = "a"
	SlotB = "b"
)

func otherSlot(s string) string {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

func validSlot(s string) bool { return s == SlotA || s == SlotB }

// slotInfo describes a slot whose content is complete. A slot without an
// entry in state.Slots is not bootable: it may be empty or half written.
type slotInfo struct {
	Target      string    `json:"target,omitempty"` // NAME/VERSION; empty for the factory slot
	SHA256      string    `json:"sha256,omitempty"` // of the bundle it was unpacked from
	Length      int64     `json:"length,omitempty"`
	InstalledAt time.Time `json:"installed_at"`
}

// job is an update that has been accepted by ota.update and not finished.
// Phase "" means the slot has not been switched to yet: after a restart the
// whole pipeline runs again (the download resumes, everything else is
// redone from scratch). Phase "switched" means the new slot is active and
// awaits its commit.
type job struct {
	ID            string    `json:"id"`
	Target        string    `json:"target"`
	URL           string    `json:"url"`
	CommitTimeout int       `json:"commit_timeout"`
	Slot          string    `json:"slot"`
	From          string    `json:"from"`
	Phase         string    `json:"phase,omitempty"`
	HookRan       bool      `json:"hook_ran,omitempty"`
	StartedAt     time.Time `json:"started_at"`

	// ReportSeq is the seq reserved for the report that follows a state
	// change: awaiting_commit, written with HookRan; rolled_back, written
	// with Phase "reverted"; succeeded, with Phase "committed"; failed,
	// with Phase "failed". A worker killed before that report was
	// spooled (the spool's next seq is not beyond it) makes it on its next
	// start, so that it is neither lost nor sent twice.
	ReportSeq uint64 `json:"report_seq,omitempty"`
	// Reason is why the update was reverted (Phase "reverted") or
	// failed (Phase "failed").
	Reason string `json:"reason,omitempty"`
}

const (
	phaseSwitched = "switched"
	// phaseReverted: the device went back to the revert slot, committed;
	// the job stays until the hook ran and rolled_back is spooled.
	phaseReverted = "reverted"
	// phaseCommitted: the new slot is committed; the job stays until
	// succeeded is spooled.
	phaseCommitted = "committed"
	// phaseFailed: the update failed before its switch (Reason says
	// why); the job stays until failed is spooled and its slot is
	// emptied.
	phaseFailed = "failed"
)

// state is the content of <dir>/state.json, the single source of truth of
// which slot is active. It is replaced atomically (temporary file, fsync,
// rename, fsync of the directory), so after any crash it is either the old
// or the new state, never a mix.
//
// Invariant: Slots[Active] exists (the active slot is complete), and when
// Committed is false, Slots[Revert] exists and Deadline is set.
type state struct {
	Active    string               `json:"active_slot"`
	Committed bool                 `json:"is_committed"`
	Revert    string               `json:"revert_slot,omitempty"`
	Deadline  time.Time            `json:"commit_deadline,omitzero"`
	Slots     map[string]*slotInfo `json:"slots"`
	Job       *job                 `json:"job,omitempty"`
	// Last is the outcome of the latest update that ended, so that an
	// ota.update sent again with its id (the cloud lost the answer) is
	// answered with it instead of starting the update again.
	Last *lastUpdate `json:"last_update,omitempty"`
}

// lastUpdate is how an update ended.
type lastUpdate struct {
	ID     string `json:"id"`
	Target string `json:"target"`
	Status string `json:"status"` // succeeded, failed or rolled_back
}

func (s *state) clone() state {
	c := *s
	c.Slots = make(map[string]*slotInfo, len(s.Slots))
	for k, v := range s.Slots {
		vv := *v
		c.Slots[k] = &vv
	}
	if s.Job != nil {
		j := *s.Job
		c.Job = &j
	}
	if s.Last != nil {
		l := *s.Last
		c.Last = &l
	}
	return c
}

func (s *state) check() error {
	if !validSlot(s.Active) {
		return fmt.Errorf("active slot %q is not a or b", s.Active)
	}
	if s.Slots[s.Active] == nil {
		return fmt.Errorf("active slot %s is not complete", s.Active)
	}
	if !s.Committed {
		if s.Revert == s.Active || s.Slots[s.Revert] == nil {
			return fmt.Errorf("uncommitted slot %s has no complete revert slot", s.Active)
		}
		if s.Deadline.IsZero() {
			return fmt.Errorf("uncommitted slot %s has no commit deadline", s.Active)
		}
	}
	return nil
}

func readState(path string) (state, error) {
	var s state
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decoding %s: %w", path, err)
	}
	if err := s.check(); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func writeState(path string, s state) error {
	if err := s.check(); err != nil {
		return fmt.Errorf("refusing to write state: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return keys.WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// initialState is the state of a device that never ran an update: slot a
// (empty, or whatever the installer put there) is active and committed.
func initialState(now time.Time) state {
	return state{Active: SlotA, Committed: true, Slots: map[string]*slotInfo{SlotA: {InstalledAt: now.UTC()}}}
}

// loadOrInit reads the state, or writes the initial one when there is none.
func loadOrInit(path string, now time.Time) (state, error) {
	s, err := readState(path)
	if errors.Is(err, os.ErrNotExist) {
		s = initialState(now)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return s, err
		}
		return s, writeState(path, s)
	}
	return s, err
}
