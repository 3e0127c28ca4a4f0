package web_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// otaUpdate is an ota.update a test device received.
type otaUpdate struct {
	ID            string `json:"id"`
	Target        string `json:"target"`
	URL           string `json:"url"`
	CommitTimeout int    `json:"commit_timeout"`
}

// otaDevice is an accepted test device (a real session) that serves
// ota.update and ota.abort like the OTA worker does, except that it moves
// an update on only when the test says so (status), so that a test sees
// every step of a rollout.
type otaDevice struct {
	*cloudtest.Device
	updates chan otaUpdate // every ota.update, in order

	mu     sync.Mutex // guards seq and aborts
	seq    uint64
	aborts []string
}

// newOTADevice connects, accepts and announces a device with the demo
// methods and ota.update/ota.abort, tagged with tags.
func newOTADevice(t testing.TB, s *cloudtest.Server, id string, tags ...string) *otaDevice {
	t.Helper()
	o := &otaDevice{Device: demoDevice(t, s, id), updates: make(chan otaUpdate, 16)}
	o.Handle(rpcproto.MethodOTAUpdate, func(ctx context.Context, p json.RawMessage) (any, error) {
		var u otaUpdate
		json.Unmarshal(p, &u)
		select {
		case o.updates <- u:
		default:
		}
		return rpcproto.OTAUpdateResult{ID: u.ID, Slot: "b", Status: rpcproto.OTADownloading}, nil
	})
	o.Handle("ota.abort", func(ctx context.Context, p json.RawMessage) (any, error) {
		var a struct{ ID string }
		json.Unmarshal(p, &a)
		o.mu.Lock()
		o.aborts = append(o.aborts, a.ID)
		o.mu.Unlock()
		return map[string]string{"id": a.ID, "status": "aborting"}, nil
	})
	ctx := context.Background()
	if err := s.Service().Accept(ctx, s.Super, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.Accepted():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was not told it is accepted", id)
	}
	report(t, o.Device, append(append([]rpcproto.MethodInfo(nil), demoMethods...),
		rpcproto.MethodInfo{Name: rpcproto.MethodOTAUpdate, Description: "Install an update", Worker: "ota"},
		rpcproto.MethodInfo{Name: "ota.abort", Description: "Stop an update", Worker: "ota"}))
	if len(tags) > 0 {
		if err := s.Service().SetTags(ctx, s.Super, id, tags); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// nextUpdate waits for the next ota.update.
func (o *otaDevice) nextUpdate(t testing.TB) otaUpdate {
	t.Helper()
	select {
	case u := <-o.updates:
		return u
	case <-time.After(20 * time.Second):
		t.Fatalf("%s got no ota.update", o.ID)
	}
	return otaUpdate{}
}

// status reports the update u's status, as the worker does through the
// bridge's outbox (each report a new seq).
func (o *otaDevice) status(t testing.TB, u otaUpdate, status string, percent int, reason string) {
	t.Helper()
	o.mu.Lock()
	o.seq++
	p := rpcproto.OTAStatusParams{ID: u.ID, Seq: o.seq, Target: u.Target, Status: status, Reason: reason, Slot: "b",
		At: time.Now().UTC()}
	o.mu.Unlock()
	if status == rpcproto.OTADownloading {
		p.Percent = &percent
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r json.RawMessage
	if err := o.Peer.Call(ctx, rpcproto.MethodOTAStatus, p, &r); err != nil {
		t.Fatalf("%s: ota.status %s: %v", o.ID, status, err)
	}
}

// succeed reports an update through every step to succeeded.
func (o *otaDevice) succeed(t testing.TB, u otaUpdate) {
	t.Helper()
	for _, st := range []string{rpcproto.OTADownloading, rpcproto.OTAInstalling, rpcproto.OTAAwaitingCommit, rpcproto.OTASucceeded} {
		o.status(t, u, st, 100, "")
	}
}
