package ota

import (
	"context"
	"errors"

	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// Registrar is what Register adds the methods to: a *worker.Worker.
type Registrar interface {
	Handle(method, description string, h worker.HandlerFunc)
}

// Register adds the ota.* methods to w. Params are decoded strictly
// (worker.Func): an unknown, misspelt or duplicated member is -32602 and
// nothing runs.
func (m *Manager) Register(w Registrar) {
	w.Handle(rpcproto.MethodOTAUpdate, "Download, verify and switch to a bundle (target, url, commit_timeout)", worker.Func(m.handleUpdate))
	w.Handle(rpcproto.MethodOTACommit, "Keep the active slot", worker.Func(m.handleCommit))
	w.Handle(rpcproto.MethodOTARevert, "Go back to the revert slot", worker.Func(m.handleRevert))
	w.Handle(rpcproto.MethodOTACreateSnap, "Copy the active slot into the other one (set_as_revert, commit_timeout)", worker.Func(m.handleSnapshot))
	w.Handle(rpcproto.MethodOTAGetBootState, "Active slot, committed or not, revert slot, seconds left to commit", worker.Func(m.handleGetBootState))
	w.Handle(rpcproto.MethodOTAAbort, "Stop the update of an id: in progress it fails, awaiting its commit it reverts (id)", worker.Func(m.handleAbort))
	w.Handle(rpcproto.MethodOTASetBootState, "Choose the active and revert slot (active_slot, is_committed, revert_slot, commit_timeout)", worker.Func(m.handleSetBootState))
}

// rpcError translates the manager's errors; anything else is -32603.
func rpcError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrInvalid):
		return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params", map[string]string{"detail": err.Error()[len(ErrInvalid.Error())+2:]})
	case errors.Is(err, ErrBusy):
		return &jsonrpc.Error{Code: rpcproto.CodeBusy, Message: "busy: " + err.Error()}
	case errors.Is(err, ErrNotCommitted), errors.Is(err, ErrNothingToRevert):
		return &jsonrpc.Error{Code: rpcproto.CodeConflict, Message: "conflict: " + err.Error()}
	case errors.Is(err, ErrNothingToAbort):
		return &jsonrpc.Error{Code: rpcproto.CodeNotFound, Message: err.Error()}
	}
	return err
}

func (m *Manager) handleUpdate(_ context.Context, p rpcproto.OTAUpdateParams) (rpcproto.OTAUpdateResult, error) {
	r, err := m.Update(p)
	return r, rpcError(err)
}

func (m *Manager) handleAbort(_ context.Context, p rpcproto.OTAAbortParams) (rpcproto.OTAAbortResult, error) {
	r, err := m.Abort(p.ID)
	return r, rpcError(err)
}

func (m *Manager) handleCommit(_ context.Context, _ struct{}) (rpcproto.OTABootState, error) {
	r, err := m.Commit()
	return r, rpcError(err)
}

func (m *Manager) handleRevert(_ context.Context, _ struct{}) (rpcproto.OTABootState, error) {
	r, err := m.Revert()
	return r, rpcError(err)
}

func (m *Manager) handleSnapshot(ctx context.Context, p rpcproto.OTACreateSnapshotParams) (rpcproto.OTACreateSnapshotResult, error) {
	r, err := m.CreateSnapshot(ctx, p)
	return r, rpcError(err)
}

func (m *Manager) handleGetBootState(_ context.Context, _ struct{}) (rpcproto.OTABootState, error) {
	return m.BootState(), nil
}

func (m *Manager) handleSetBootState(ctx context.Context, p rpcproto.OTABootState) (rpcproto.OTABootState, error) {
	r, err := m.SetBootState(ctx, p)
	return r, rpcError(err)
}
