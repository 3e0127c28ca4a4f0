package ota

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// hookEvent is what the restart hook is told.
type hookEvent struct {
	reason   string // "update", "revert", "set_boot_state"
	slot     string
	slotDir  string
	previous string
	target   string
	deadline time.Time
}

// runHook runs the restart hook: path SLOT_DIR with BOSUN_OTA_* in its
// environment (docs/ota-device.md). Its output goes to the log; a non-zero
// exit or a timeout is an error.
func (m *Manager) runHook(ctx context.Context, ev hookEvent) error {
	if m.cfg.Hook == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.cfg.Hook, ev.slotDir)
	cmd.Env = append(os.Environ(),
		"BOSUN_OTA_REASON="+ev.reason,
		"BOSUN_OTA_SLOT="+ev.slot,
		"BOSUN_OTA_SLOT_DIR="+ev.slotDir,
		"BOSUN_OTA_PREVIOUS_SLOT="+ev.previous,
		"BOSUN_OTA_PREVIOUS_SLOT_DIR="+m.slotDir(ev.previous),
		"BOSUN_OTA_TARGET="+ev.target,
		"BOSUN_OTA_DATA_DIR="+m.cfg.Dir,
	)
	if !ev.deadline.IsZero() {
		cmd.Env = append(cmd.Env, "BOSUN_OTA_COMMIT_DEADLINE="+ev.deadline.UTC().Format(time.RFC3339))
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	m.log.Info("restart hook ran", "reason", ev.reason, "slot", ev.slot, "err", err, "output", strings.TrimSpace(truncate(out.String(), 2000)))
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("restart hook timed out after %s", m.cfg.HookTimeout)
	}
	if err != nil {
		return fmt.Errorf("restart hook: %w: %s", err, strings.TrimSpace(truncate(out.String(), 200)))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
