package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/bosunhq/bosun/cloud/internal/store"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// This file is the device → cloud method table: the one place a method a
// device may call the cloud with is added. The hub runs it for every
// verified request of a session.

// DeviceInfo names the device whose request a method serves.
type DeviceInfo struct {
	ID          string
	OrgID       int64
	Fingerprint string
	// Accepted reports, at the time of asking, whether the session's key
	// is accepted.
	Accepted func() bool
	// Reported, when not nil, is told the methods of each state.report
	// once it is stored (nil: the report lists none). The holder's Served
	// learns them through it.
	Reported func(methods []string)
}

type deviceKey struct{}

// WithDevice returns ctx carrying the calling device, for DeviceFromContext.
func WithDevice(ctx context.Context, d DeviceInfo) context.Context {
	return context.WithValue(ctx, deviceKey{}, d)
}

// DeviceFromContext returns the device calling a device → cloud method.
func DeviceFromContext(ctx context.Context) (DeviceInfo, bool) {
	d, ok := ctx.Value(deviceKey{}).(DeviceInfo)
	return d, ok
}

// notAccepted is the answer to every method but registration.register from
// a device whose key is not accepted: a pending device may only wait.
var notAccepted = jsonrpc.NewError(rpcproto.CodeNotAccepted, rpcproto.ErrorMessages[rpcproto.CodeNotAccepted], nil)

// unavailable is the answer to a device → cloud request the cloud could
// not store because the database is unavailable: the device tries again
// (the bridge's outbox retries every code but the malformed-request ones).
var unavailable = jsonrpc.NewError(rpcproto.CodeUnavailable, rpcproto.ErrorMessages[rpcproto.CodeUnavailable]+": "+UnavailableMessage, nil)

// guard refuses method to devices whose key is not accepted, unless it is
// one of rpcproto.PendingOnlyMethods, before the params are even decoded:
// a pending device changes nothing. A database outage during the method
// is answered -32005 (unavailable), not -32603 (internal error).
func guard(method string, h jsonrpc.HandlerFunc) jsonrpc.HandlerFunc {
	if rpcproto.PendingOnlyMethods[method] {
		return outage(h)
	}
	h = outage(h)
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		d, ok := DeviceFromContext(ctx)
		if !ok || d.Accepted == nil || !d.Accepted() {
			return nil, notAccepted
		}
		return h(ctx, params)
	}
}

// outage answers the errors of h that say the database is unavailable
// with unavailable; the cause goes to the log of the dispatcher's caller
// no more than any other error's.
func outage(h jsonrpc.HandlerFunc) jsonrpc.HandlerFunc {
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		res, err := h(ctx, params)
		if err != nil && Unavailable(err) {
			var je *jsonrpc.Error
			if !errors.As(err, &je) {
				return nil, unavailable
			}
		}
		return res, err
	}
}

// DeviceMethods returns the dispatcher of the device → cloud methods:
// registration.register (repeated inside a session it reports the status),
// state.report, and extra (for methods other packages serve, e.g. OTA),
// each guarded so that only accepted devices reach it.
func (s *Service) DeviceMethods(extra map[string]jsonrpc.HandlerFunc) *jsonrpc.Dispatcher {
	d := jsonrpc.NewDispatcher()
	d.SetLogger(s.log)
	d.Register(rpcproto.MethodRegister, func(ctx context.Context, _ json.RawMessage) (any, error) {
		dev, _ := DeviceFromContext(ctx)
		st := rpcproto.StatusPending
		if dev.Accepted != nil && dev.Accepted() {
			st = rpcproto.StatusAccepted
		}
		return rpcproto.RegisterResult{Status: st, Fingerprint: dev.Fingerprint}, nil
	})
	d.Register(rpcproto.MethodStateReport, guard(rpcproto.MethodStateReport, jsonrpc.Handler(
		func(ctx context.Context, p rpcproto.StateReportParams) (rpcproto.StateReportResult, error) {
			dev, _ := DeviceFromContext(ctx)
			if err := checkStateReport(p); err != nil {
				return rpcproto.StateReportResult{}, err
			}
			b, err := json.Marshal(p)
			if err != nil {
				return rpcproto.StateReportResult{}, err
			}
			if err := s.st.SetInventory(ctx, dev.ID, b); err != nil {
				return rpcproto.StateReportResult{}, err
			}
			s.reported(ctx, dev, p.Methods)
			return rpcproto.StateReportResult{Stored: true}, nil
		})))
	for m, fn := range s.otaMethods() { // ota.latest, ota.available (artifacts.go), ota.status (ota_status.go)
		d.Register(m, guard(m, fn))
	}
	for m, fn := range extra {
		d.Register(m, guard(m, fn))
	}
	return d
}

// checkStateReport refuses a report the cloud cannot store: the
// inventory is a jsonb column, and PostgreSQL refuses \u0000 in jsonb
// text (which would otherwise come back as -32603, an internal error).
func checkStateReport(p rpcproto.StateReportParams) error {
	type member struct{ name, v string }
	ms := []member{{"hostname", p.Hostname}, {"os", p.OS}, {"arch", p.Arch}}
	for k, v := range p.Versions {
		ms = append(ms, member{"versions", k}, member{"versions", v})
	}
	for _, w := range p.Workers {
		ms = append(ms, member{"workers", w})
	}
	for _, m := range p.Methods {
		ms = append(ms, member{"methods", m.Name}, member{"methods", m.Description}, member{"methods", m.Worker})
	}
	for k, v := range p.Attributes {
		ms = append(ms, member{"attributes", k}, member{"attributes", v})
	}
	for _, m := range ms {
		if strings.ContainsRune(m.v, 0) {
			return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params", map[string]string{"detail": m.name + " must be text without NUL"})
		}
	}
	return nil
}

// reported hands the methods of a stored state.report to the session's
// holder and marks the device's queued calls whose method the report does
// not list with why they wait (see Served).
func (s *Service) reported(ctx context.Context, dev DeviceInfo, listed []rpcproto.MethodInfo) {
	var methods []string
	for _, m := range listed {
		methods = append(methods, m.Name)
	}
	if len(methods) > 0 {
		if _, err := s.st.MarkUnlisted(ctx, dev.ID, methods, jsonrpc.CodeMethodNotFound, "Method not found", unlistedDetail); err != nil {
			s.log.Error("marking unlisted queued calls", "device_id", dev.ID, "err", err)
		}
	}
	if dev.Reported != nil {
		dev.Reported(methods)
	}
}

// Key set statuses, as KeyStatus returns them.
const (
	KeyPending       = store.KeyPending
	KeyAccepted      = store.KeyAccepted
	KeyRejected      = store.KeyRejected
	KeyPreauthorized = store.KeyPreauthorized
	KeyRevoked       = store.KeyRevoked
)
