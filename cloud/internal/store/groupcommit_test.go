package store_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
)

func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func countCalls(t *testing.T, st *store.Store, ctx context.Context) (calls, audits int) {
	t.Helper()
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM audit_log WHERE action = 'call')`).
		Scan(&calls, &audits); err != nil {
		t.Fatal(err)
	}
	return calls, audits
}

// TestGroupCommitIsolatesFailures: 600 concurrent writes (beyond the 256
// of one group, so several full groups) of which every 100th names an
// organisation that does not exist. Those fail with their own error; every
// other write is committed, once, with its audit row; a group that failed
// as a whole never made a good write fail or written twice.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	st, ctx := migrated(t)
	org, err := st.OrgByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := org.ID
			if i%100 == 0 {
				o = 999999 // no such organisation: a foreign key violation
			}
			now := time.Now()
			_, errs[i] = st.InsertFinishedCall(ctx, store.FinishedCall{NewCall: store.NewCall{ID: uuid(), OrgID: o,
				DeviceID: fmt.Sprintf("d-%d", i), Method: "m", Actor: "t", Timeout: time.Second, Status: store.CallSucceeded},
				Result: json.RawMessage(`{"i":1}`), SentAt: now, DeliveredAt: &now, Audit: true})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (i%100 == 0) != (err != nil) {
			t.Fatalf("write %d: %v (bad writes: every 100th)", i, err)
		}
	}
	calls, audits := countCalls(t, st, ctx)
	if calls != n-n/100 || audits != n-n/100 {
		t.Fatalf("%d calls and %d call audit rows, want %d of each", calls, audits, n-n/100)
	}
}

// TestInsertFinishedCall: the row holds the outcome, the times and, only
// when asked, its audit row; a bad write (an id taken) is refused and
// changes nothing.
func TestInsertFinishedCall(t *testing.T) {
	st, ctx := migrated(t)
	org, _ := st.OrgByName(ctx, "default")
	sent := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	id := uuid()
	c, err := st.InsertFinishedCall(ctx, store.FinishedCall{NewCall: store.NewCall{ID: id, OrgID: org.ID, DeviceID: "d-1",
		Method: "system.info", Actor: "op@x", Timeout: 5 * time.Second, Status: store.CallSucceeded},
		Result: json.RawMessage(`{"ok":true}`), SentAt: sent, DeliveredAt: &sent, Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || c.Status != "succeeded" || string(c.Result) != `{"ok":true}` || c.SentAt == nil || !c.SentAt.Equal(sent) ||
		c.FinishedAt == nil || c.FinishedAt.Before(sent) || c.DeliveredAt == nil || c.Deadline != nil || c.DurationMS < 1000 {
		t.Fatalf("stored %+v", c)
	}
	if _, err := st.InsertFinishedCall(ctx, store.FinishedCall{NewCall: store.NewCall{ID: uuid(), OrgID: org.ID, DeviceID: "d-1",
		Method: "x", Actor: "op@x", Timeout: time.Second, Status: store.CallFailed}, SentAt: sent}); err != nil {
		t.Fatal(err)
	}
	calls, audits := countCalls(t, st, ctx)
	if calls != 2 || audits != 1 {
		t.Fatalf("%d calls, %d audit rows; want 2 and 1 (the second asked for none)", calls, audits)
	}
	_, err = st.InsertFinishedCall(ctx, store.FinishedCall{NewCall: store.NewCall{ID: id, OrgID: org.ID, DeviceID: "d-2",
		Method: "again", Actor: "op@x", Timeout: time.Second, Status: store.CallSucceeded}, SentAt: sent, Audit: true})
	if err == nil {
		t.Fatal("a second call with the same id was written")
	}
	if calls2, audits2 := countCalls(t, st, ctx); calls2 != calls || audits2 != audits {
		t.Fatalf("a refused write changed the tables: %d/%d -> %d/%d", calls, audits, calls2, audits2)
	}
	got, err := st.GetCall(ctx, id)
	if err != nil || got.Method != "system.info" || got.DeviceID != "d-1" || !got.FinishedAt.Equal(*c.FinishedAt) ||
		!got.SentAt.Equal(*c.SentAt) || !got.DeliveredAt.Equal(*c.DeliveredAt) || got.Status != c.Status || got.Actor != c.Actor {
		t.Fatalf("the first call after the refused one: %+v, %v", got, err)
	}
}

// TestGroupWriterClose: writes queued when the store closes are written;
// after Close a write fails at once and writes nothing.
func TestGroupWriterClose(t *testing.T) {
	st, ctx := migrated(t)
	org, _ := st.OrgByName(ctx, "default")
	const n = 300
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.InsertCall(ctx, store.NewCall{ID: uuid(), OrgID: org.ID, DeviceID: "d", Method: "m", Actor: "t",
				Timeout: time.Second, Status: store.CallSent})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	url := st.Pool().Config().ConnString()
	st.Close()
	if _, err := st.InsertCall(ctx, store.NewCall{ID: uuid(), OrgID: org.ID, DeviceID: "d", Method: "m", Actor: "t",
		Timeout: time.Second, Status: store.CallSent}); err == nil {
		t.Fatal("a write after Close succeeded")
	}
	st2, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if calls, _ := countCalls(t, st2, ctx); calls != n {
		t.Fatalf("%d calls after Close, want %d", calls, n)
	}
}

// TestGroupCommitMultiRow: finished calls written together (one multi-row
// statement per group) are stored exactly as each was given: params,
// result and error present or absent, delivered or not, audited or not.
func TestGroupCommitMultiRow(t *testing.T) {
	st, ctx := migrated(t)
	org, _ := st.OrgByName(ctx, "default")
	const n = 400
	type want struct {
		id               string
		params, result   string
		err              bool
		delivered, audit bool
	}
	wants := make([]want, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		w := want{id: uuid(), delivered: i%2 == 0, audit: i%3 != 0, err: i%5 == 0}
		if i%4 != 0 {
			w.params = fmt.Sprintf(`{"i": %d}`, i)
		}
		if !w.err {
			w.result = fmt.Sprintf(`{"r": %d}`, i)
		}
		wants[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			now := time.Now()
			f := store.FinishedCall{NewCall: store.NewCall{ID: w.id, OrgID: org.ID, DeviceID: "d", Method: "m", Actor: "a",
				Timeout: time.Second, Status: store.CallSucceeded}, SentAt: now, Audit: w.audit}
			if w.params != "" {
				f.Params = json.RawMessage(w.params)
			}
			if w.result != "" {
				f.Result = json.RawMessage(w.result)
			}
			if w.err {
				f.Status, f.Error = store.CallFailed, &jsonrpc.Error{Code: -32000, Message: "device offline"}
			}
			if w.delivered {
				f.DeliveredAt = &now
			}
			_, errs[i] = st.InsertFinishedCall(ctx, f)
		}()
	}
	wg.Wait()
	audited := 0
	for i, w := range wants {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		c, err := st.GetCall(ctx, w.id)
		if err != nil {
			t.Fatal(err)
		}
		if string(c.Params) != w.params || string(c.Result) != w.result || (c.Error != nil) != w.err ||
			(c.DeliveredAt != nil) != w.delivered || (w.err && c.Error.Code != -32000) {
			t.Fatalf("call %d stored %+v, want %+v", i, c, w)
		}
		if w.audit {
			audited++
		}
	}
	if _, audits := countCalls(t, st, ctx); audits != audited {
		t.Fatalf("%d audit rows, want %d", audits, audited)
	}
	gs := st.GroupStats()
	if gs.MultiRowCalls == 0 {
		t.Fatalf("no finished call was written by a multi-row statement: %+v", gs)
	}
	t.Logf("group writers: %+v", gs)
}
