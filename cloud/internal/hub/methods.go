package hub

import (
	"context"
	"encoding/json"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

type sessionKey struct{}

// DeviceInfo names the device whose message a handler serves.
type DeviceInfo struct {
	ID          string
	OrgID       int64
	Fingerprint string
}

// DeviceFromContext returns the device calling an Options.Methods handler.
func DeviceFromContext(ctx context.Context) (DeviceInfo, bool) {
	s, ok := ctx.Value(sessionKey{}).(*session)
	if !ok {
		return DeviceInfo{}, false
	}
	return DeviceInfo{ID: s.deviceID, OrgID: s.orgID, Fingerprint: s.fingerprint}, true
}

// guarded refuses method to sessions whose key is not accepted, unless it
// is one of rpcproto.PendingOnlyMethods.
func guarded(method string, h jsonrpc.HandlerFunc) jsonrpc.HandlerFunc {
	if rpcproto.PendingOnlyMethods[method] {
		return h
	}
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		s, ok := ctx.Value(sessionKey{}).(*session)
		if !ok || !s.accepted.Load() {
			return nil, jsonrpc.NewError(rpcproto.CodeNotAccepted, rpcproto.ErrorMessages[rpcproto.CodeNotAccepted], nil)
		}
		return h(ctx, params)
	}
}

// dispatcher serves the device → cloud methods.
func (h *Hub) dispatcher() *jsonrpc.Dispatcher {
	d := jsonrpc.NewDispatcher()
	d.SetLogger(h.log)
	// A registration repeated inside a session just reports the status.
	d.Register(rpcproto.MethodRegister, func(ctx context.Context, _ json.RawMessage) (any, error) {
		s := ctx.Value(sessionKey{}).(*session)
		st := rpcproto.StatusPending
		if s.accepted.Load() {
			st = rpcproto.StatusAccepted
		}
		return rpcproto.RegisterResult{Status: st, Fingerprint: s.fingerprint}, nil
	})
	d.Register(rpcproto.MethodStateReport, jsonrpc.Handler(func(ctx context.Context, p rpcproto.StateReportParams) (rpcproto.StateReportResult, error) {
		s := ctx.Value(sessionKey{}).(*session)
		b, err := json.Marshal(p)
		if err != nil {
			return rpcproto.StateReportResult{}, err
		}
		if err := h.svc.StateReported(ctx, s.deviceID, b); err != nil {
			return rpcproto.StateReportResult{}, err
		}
		return rpcproto.StateReportResult{Stored: true}, nil
	}))
	for m, fn := range h.opts.Methods {
		d.Register(m, guarded(m, fn))
	}
	return d
}
