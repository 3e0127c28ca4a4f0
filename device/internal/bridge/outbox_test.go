package bridge

import (
	"encoding/json"
	"testing"
	"time"
)

// TestOutboxSameReportAgain: a report sent again with the same bytes after
// its answer was lost (the bridge died after writing it, or the worker
// before it removed its copy) is the newest entry again, also after a
// restart of the bridge; nothing is written. Another report, or the same
// one after a different one, is a new entry.
func TestOutboxSameReportAgain(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	r1 := json.RawMessage(`{"id":"u1","seq":1,"status":"downloading"}`)
	r2 := json.RawMessage(`{"id":"u1","seq":2,"status":"installing"}`)
	o, err := openOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(o *outbox, p json.RawMessage, wantName string, wantAgain bool) {
		t.Helper()
		name, again, err := o.enqueue("ota.status", p, now)
		if err != nil || name != wantName || again != wantAgain {
			t.Fatalf("enqueue %s: %q, again %v, %v; want %q, again %v", p, name, again, err, wantName, wantAgain)
		}
	}
	const e1, e2, e3 = "00000000000000000001.json", "00000000000000000002.json", "00000000000000000003.json"
	enqueue(o, r1, e1, false)
	enqueue(o, r1, e1, true)
	if n := o.len(); n != 1 {
		t.Fatalf("outbox holds %d, want 1", n)
	}

	o, err = openOutbox(dir) // the bridge restarted
	if err != nil {
		t.Fatal(err)
	}
	enqueue(o, r1, e1, true)
	enqueue(o, r2, e2, false)
	enqueue(o, r1, e3, false) // not the newest: a new entry
	if n := o.len(); n != 3 {
		t.Fatalf("outbox holds %d, want 3", n)
	}

	// Delivered and removed: the same bytes are still the entry they were
	// (the cloud has them); after a restart with an empty outbox they are
	// new.
	for _, n := range []string{e1, e2, e3} {
		if err := o.remove(n); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(o, r1, e3, true)
	if o, err = openOutbox(dir); err != nil {
		t.Fatal(err)
	}
	enqueue(o, r1, e1, false)
}
