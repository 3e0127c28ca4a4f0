package ota

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// stallingServer serves half the body, then holds the connection until
// the client goes (the test ends it by aborting).
func stallingServer(t *testing.T, body []byte) (*fileServer, string, chan struct{}) {
	t.Helper()
	stalled := make(chan struct{}, 16)
	fs, u := startServer(t, body)
	fs.fault = func(n int, w http.ResponseWriter, r *http.Request, body []byte) bool {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		stalled <- struct{}{}
		<-r.Context().Done()
		return true
	}
	return fs, u, stalled
}

// rpcCode is the JSON-RPC error code of a method handler's error (0:
// none).
func rpcCode(err error) int {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// rpcText is a JSON-RPC error's message and data.
func rpcText(err error) string {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e.Message + " " + string(e.Data)
	}
	return ""
}

// TestUpdateID: ota.update with an id uses it for the update and its
// reports; an invalid id is -32602 and changes nothing.
func TestUpdateID(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	before := d.stateBytes()
	for _, id := range []string{"bad id", "a/b", strings.Repeat("x", 65), "dep-1-1\n"} {
		p := updateParams("hello/2.0.0", u, 0)
		p.ID = id
		_, err := d.m.handleUpdate(context.Background(), p)
		if rpcCode(err) != jsonrpc.CodeInvalidParams || !strings.Contains(rpcText(err), "id must be") {
			t.Fatalf("id %q: %v", id, err)
		}
		if !bytes.Equal(before, d.stateBytes()) {
			t.Fatalf("id %q changed the state", id)
		}
	}
	p := updateParams("hello/2.0.0", u, 0)
	p.ID = "dep-7-1"
	r, err := d.m.Update(p)
	if err != nil || r.ID != "dep-7-1" {
		t.Fatalf("update with an id: %+v, %v", r, err)
	}
	d.waitStatus("dep-7-1", "succeeded")
	if len(d.statuses("dep-7-1")) < 3 { // downloading..., installing, succeeded
		t.Fatalf("reports of dep-7-1: %v", d.statuses("dep-7-1"))
	}
}

// TestUpdateSameIDAnswersItsState: ota.update sent again with the id of
// the update in progress, awaiting its commit, or just ended answers its
// state and starts nothing (no second download, no second hook run).
func TestUpdateSameIDAnswersItsState(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 64<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	fs, u, stalled := stallingServer(t, v2)
	p := updateParams("hello/2.0.0", u, 60)
	p.ID = "dep-1-1"
	if _, err := d.m.Update(p); err != nil {
		t.Fatal(err)
	}
	<-stalled
	r, err := d.m.Update(p)
	if err != nil || r.ID != "dep-1-1" || r.Status != rpcproto.OTADownloading || r.Slot != "b" {
		t.Fatalf("sent again while downloading: %+v, %v", r, err)
	}
	if n := fs.requests(); n != 1 {
		t.Fatalf("%d downloads, want 1", n)
	}
	// Another id is still refused: one update at a time.
	other := p
	other.ID = "dep-2-1"
	if _, err := d.m.Update(other); !errors.Is(err, ErrBusy) {
		t.Fatalf("another update while one runs: %v", err)
	}
	// Stop it, and let the next download through.
	fs.mu.Lock()
	fs.fault = nil
	fs.mu.Unlock()
	if _, err := d.m.Abort("dep-1-1"); err != nil {
		t.Fatal(err)
	}
	d.waitStatus("dep-1-1", "failed")
	p.ID = "dep-1-2"
	if _, err := d.m.Update(p); err != nil {
		t.Fatal(err)
	}
	d.waitStatus("dep-1-2", "awaiting_commit")
	hooks := len(d.hookLines())
	r, err = d.m.Update(p)
	if err != nil || r.Status != rpcproto.OTAAwaitingCommit {
		t.Fatalf("sent again while awaiting commit: %+v, %v", r, err)
	}
	if _, err := d.m.Commit(); err != nil {
		t.Fatal(err)
	}
	reports := len(d.statuses("dep-1-2"))
	r, err = d.m.Update(p)
	if err != nil || r.Status != rpcproto.OTASucceeded {
		t.Fatalf("sent again after it succeeded: %+v, %v", r, err)
	}
	if len(d.hookLines()) != hooks || len(d.statuses("dep-1-2")) != reports {
		t.Fatalf("sending again ran something: hooks %d→%d, reports %d→%d", hooks, len(d.hookLines()), reports, len(d.statuses("dep-1-2")))
	}
	// The outcome survives a restart.
	d.m.Close()
	d.open()
	if r, err := d.m.Update(p); err != nil || r.Status != rpcproto.OTASucceeded {
		t.Fatalf("sent again after a restart: %+v, %v", r, err)
	}
}

// TestAbortInProgress: ota.abort of the update downloading stops it: it
// reports failed "aborted: ...", the active slot is untouched, the
// inactive slot and the partial download are gone, a restart does not
// take it up, and the next update runs.
func TestAbortInProgress(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 64<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	fs, u, stalled := stallingServer(t, v2)
	p := updateParams("hello/2.0.0", u, 60)
	p.ID = "dep-3-1"
	if _, err := d.m.Update(p); err != nil {
		t.Fatal(err)
	}
	<-stalled
	r, err := d.m.handleAbort(context.Background(), rpcproto.OTAAbortParams{ID: "dep-3-1"})
	if err != nil || r != (rpcproto.OTAAbortResult{ID: "dep-3-1", Status: rpcproto.OTAFailed}) {
		t.Fatalf("abort: %+v, %v", r, err)
	}
	rep := d.waitStatus("dep-3-1", "failed")
	if !strings.HasPrefix(rep.Reason, "aborted: ") {
		t.Fatalf("failed with reason %q", rep.Reason)
	}
	if bs := d.m.BootState(); bs != (rpcproto.OTABootState{ActiveSlot: "a", IsCommitted: true}) {
		t.Fatalf("boot state after abort %+v", bs)
	}
	ents, _ := os.ReadDir(d.m.SlotDir("b"))
	partial, _ := filepath.Glob(filepath.Join(d.dir, "download", "*"))
	if len(ents) != 0 || len(partial) != 0 {
		t.Fatalf("left behind: slot b %v, downloads %v", ents, partial)
	}
	d.m.Close()
	d.open()
	if n := fs.requests(); n != 1 {
		t.Fatalf("the aborted update was taken up again after a restart: %d downloads", n)
	}
	fs.mu.Lock()
	fs.fault = nil
	fs.mu.Unlock()
	p.ID = "dep-3-2"
	if _, err := d.m.Update(p); err != nil {
		t.Fatal(err)
	}
	d.waitStatus("dep-3-2", "awaiting_commit")
}

// TestAbortAwaitingCommit: ota.abort of the update awaiting its commit
// reverts to the previous slot and reports rolled_back.
func TestAbortAwaitingCommit(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	p := updateParams("hello/2.0.0", u, 600)
	p.ID = "dep-4-1"
	if _, err := d.m.Update(p); err != nil {
		t.Fatal(err)
	}
	d.waitStatus("dep-4-1", "awaiting_commit")
	r, err := d.m.Abort("dep-4-1")
	if err != nil || r.Status != rpcproto.OTARolledBack {
		t.Fatalf("abort: %+v, %v", r, err)
	}
	rep := d.waitStatus("dep-4-1", "rolled_back")
	if !strings.Contains(rep.Reason, "aborted") {
		t.Fatalf("rolled back with reason %q", rep.Reason)
	}
	if bs := d.m.BootState(); bs.ActiveSlot != "a" || !bs.IsCommitted {
		t.Fatalf("boot state after abort %+v", bs)
	}
	if lines := d.hookLines(); !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "revert a ") }) {
		t.Fatalf("the hook did not run for the revert: %q", lines)
	}
}

// TestAbortNothing: ota.abort of an id that is not in progress is -32006
// "nothing to abort" and changes nothing; a bad id is -32602.
func TestAbortNothing(t *testing.T) {
	v2 := appBundle(t, "2.0.0", 10<<10)
	d := newDevice(t, mapVerifier{"hello/2.0.0": v2})
	_, u := startServer(t, v2)
	before := d.stateBytes()
	_, err := d.m.handleAbort(context.Background(), rpcproto.OTAAbortParams{ID: "dep-5-1"})
	if rpcCode(err) != rpcproto.CodeNotFound || !strings.Contains(err.Error(), "nothing to abort: no update is in progress") {
		t.Fatalf("abort with nothing running: %v", err)
	}
	if _, err := d.m.handleAbort(context.Background(), rpcproto.OTAAbortParams{ID: ""}); rpcCode(err) != jsonrpc.CodeInvalidParams {
		t.Fatalf("abort without id: %v", err)
	}
	if !bytes.Equal(before, d.stateBytes()) {
		t.Fatal("a refused abort changed the state")
	}
	p := updateParams("hello/2.0.0", u, 0)
	p.ID = "dep-5-1"
	if _, err := d.m.Update(p); err != nil {
		t.Fatal(err)
	}
	d.waitStatus("dep-5-1", "succeeded")
	before = d.stateBytes()
	_, err = d.m.handleAbort(context.Background(), rpcproto.OTAAbortParams{ID: "dep-5-1"})
	if rpcCode(err) != rpcproto.CodeNotFound || !strings.Contains(err.Error(), "update dep-5-1 has ended: succeeded") {
		t.Fatalf("abort of a finished update: %v", err)
	}
	if !bytes.Equal(before, d.stateBytes()) {
		t.Fatal("a refused abort changed the state")
	}
}
