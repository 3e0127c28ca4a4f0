package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
)

// fakeService stands in for fleet.Service in tests that need no database.
// It knows tokens bsn_operator (org 1), bsn_viewer (org 1) and bsn_other
// (operator of org 2), and device dev-1 in org 1. It records every call
// except authentication, so a test can prove a rejected request reached
// nothing.
type fakeService struct {
	mu    sync.Mutex // guards the following
	log   []string
	tags  []string
	fanFn func(ctx context.Context, each func(fleet.Call)) (fleet.FanOutSummary, error)
	subs  chan fleet.Event // handed to Subscribe
	done  chan struct{}    // closed when the Subscribe context ends
}

func newFake() *fakeService {
	return &fakeService{subs: make(chan fleet.Event, 16), done: make(chan struct{})}
}

func (f *fakeService) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeService) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeService) AuthenticateToken(_ context.Context, tok string) (fleet.Actor, error) {
	switch tok {
	case "bsn_operator":
		return fleet.Actor{UserID: 1, Email: "op@example.com", OrgID: 1, Role: fleet.RoleOperator, TokenID: 1}, nil
	case "bsn_viewer":
		return fleet.Actor{UserID: 2, Email: "viewer@example.com", OrgID: 1, Role: fleet.RoleViewer, TokenID: 2}, nil
	case "bsn_other":
		return fleet.Actor{UserID: 3, Email: "other@example.com", OrgID: 2, Role: fleet.RoleOperator, TokenID: 3}, nil
	}
	return fleet.Actor{}, fmt.Errorf("token: %w", fleet.ErrUnauthenticated)
}

// visible is the fake's access rule: dev-1 exists in org 1 only.
func visible(a fleet.Actor, id string) error {
	if id != "dev-1" || a.OrgID != 1 {
		return fmt.Errorf("device %s: %w", id, fleet.ErrNotFound)
	}
	return nil
}

func mutate(a fleet.Actor, id string) error {
	if err := visible(a, id); err != nil {
		return err
	}
	if a.Role == fleet.RoleViewer {
		return fleet.ErrForbidden
	}
	return nil
}

func (f *fakeService) device() fleet.Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fleet.Device{OrgID: 1, ID: "dev-1", Status: "accepted", Fingerprint: "SHA256:abc", Alg: "ed25519",
		Online: true, FirstSeen: t0, LastSeen: t0, Tags: f.tags}
}

func (f *fakeService) ListDevices(_ context.Context, a fleet.Actor, fl fleet.DeviceFilter) ([]fleet.Device, int, error) {
	f.record("ListDevices %+v", fl)
	if a.OrgID != 1 {
		return nil, 0, nil
	}
	return []fleet.Device{f.device()}, 1, nil
}

func (f *fakeService) GetDevice(_ context.Context, a fleet.Actor, id string) (fleet.Device, error) {
	f.record("GetDevice %s", id)
	if err := visible(a, id); err != nil {
		return fleet.Device{}, err
	}
	return f.device(), nil
}

func (f *fakeService) ListKeySets(_ context.Context, a fleet.Actor, id string) ([]fleet.KeySet, error) {
	f.record("ListKeySets %s", id)
	if err := visible(a, id); err != nil {
		return nil, err
	}
	return []fleet.KeySet{{ID: 7, DeviceID: id, Fingerprint: "SHA256:abc", Alg: "ed25519", Status: "accepted", PublicKeyDER: []byte{1, 2, 3}}}, nil
}

func (f *fakeService) Accept(_ context.Context, a fleet.Actor, id string) error {
	f.record("Accept %s", id)
	return mutate(a, id)
}

func (f *fakeService) Reject(_ context.Context, a fleet.Actor, id string) error {
	f.record("Reject %s", id)
	return mutate(a, id)
}

func (f *fakeService) Decommission(_ context.Context, a fleet.Actor, id string) error {
	f.record("Decommission %s", id)
	return mutate(a, id)
}

func (f *fakeService) Preauthorize(_ context.Context, a fleet.Actor, id string, der []byte) error {
	f.record("Preauthorize %s %d", id, len(der))
	return mutate(a, id)
}

func (f *fakeService) SetTags(_ context.Context, a fleet.Actor, id string, tags []string) error {
	f.record("SetTags %s %v", id, tags)
	if err := mutate(a, id); err != nil {
		return err
	}
	for _, t := range tags {
		if len(t) > 20 {
			return fmt.Errorf("%w: tag %q is longer than 20 bytes", fleet.ErrInvalid, t)
		}
	}
	f.mu.Lock()
	f.tags = tags
	f.mu.Unlock()
	return nil
}

func (f *fakeService) Call(_ context.Context, a fleet.Actor, req fleet.CallRequest) (fleet.Call, error) {
	f.record("Call %s %s %s timeout=%s ttl=%s", req.DeviceID, req.Method, req.Params, req.Timeout, req.TTL)
	if err := mutate(a, req.DeviceID); err != nil {
		return fleet.Call{}, err
	}
	c := fleet.Call{ID: "c-1", OrgID: 1, DeviceID: req.DeviceID, Method: req.Method, Params: req.Params, Actor: a.Name(), CreatedAt: t0}
	switch {
	case req.Method == "offline" && req.TTL > 0:
		exp := t0.Add(req.TTL)
		c.Status, c.ExpiresAt = "queued", &exp
	case req.Method == "offline":
		c.Status, c.Error = "failed", &jsonrpc.Error{Code: -32000, Message: "device offline"}
	default:
		c.Status, c.Result, c.DurationMS = "succeeded", json.RawMessage(`{"ok":true}`), 3
	}
	return c, nil
}

func (f *fakeService) FanOut(ctx context.Context, a fleet.Actor, req fleet.FanOutRequest, each func(fleet.Call)) (fleet.FanOutSummary, error) {
	f.record("FanOut %v %q %s", req.DeviceIDs, req.Tag, req.Method)
	if a.Role == fleet.RoleViewer {
		return fleet.FanOutSummary{}, fleet.ErrForbidden
	}
	if f.fanFn != nil {
		return f.fanFn(ctx, each)
	}
	return fleet.FanOutSummary{}, nil
}

func (f *fakeService) GetCall(_ context.Context, a fleet.Actor, id string) (fleet.Call, error) {
	f.record("GetCall %s", id)
	if id != "c-1" || a.OrgID != 1 {
		return fleet.Call{}, fleet.ErrNotFound
	}
	return fleet.Call{ID: "c-1", DeviceID: "dev-1", Method: "system.info", Status: "succeeded", CreatedAt: t0}, nil
}

func (f *fakeService) ListCalls(_ context.Context, a fleet.Actor, fl fleet.CallFilter) ([]fleet.Call, error) {
	f.record("ListCalls %+v", fl)
	return nil, nil
}

func (f *fakeService) AuditLog(_ context.Context, a fleet.Actor, fl fleet.AuditFilter) ([]fleet.AuditEntry, error) {
	f.record("AuditLog %+v", fl)
	return []fleet.AuditEntry{{ID: 1, OrgID: 1, Actor: "op@example.com", Action: "device.accept", Target: "dev-1", Outcome: "ok", At: t0}}, nil
}

func (f *fakeService) Subscribe(ctx context.Context, a fleet.Actor) (<-chan fleet.Event, error) {
	f.record("Subscribe")
	go func() { // owned by the test: it ends with the request's context
		<-ctx.Done()
		close(f.done)
	}()
	return f.subs, nil
}

func (f *fakeService) CreateToken(_ context.Context, a fleet.Actor, name string) (string, fleet.Token, error) {
	f.record("CreateToken %s", name)
	return "bsn_secret", fleet.Token{ID: 9, Name: name, UserID: a.UserID, CreatedAt: t0}, nil
}

func (f *fakeService) ListTokens(_ context.Context, a fleet.Actor) ([]fleet.Token, error) {
	f.record("ListTokens")
	return []fleet.Token{{ID: 1, Name: "cli", UserID: a.UserID, CreatedAt: t0}}, nil
}

func (f *fakeService) RevokeToken(_ context.Context, a fleet.Actor, id int64) error {
	f.record("RevokeToken %d", id)
	if id != 1 {
		return fleet.ErrNotFound
	}
	return nil
}
