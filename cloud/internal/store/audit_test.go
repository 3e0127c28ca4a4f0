package store_test

import (
	"fmt"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// TestAuditKeysetPages: Before and After walk the log from a row id, newest
// first, and rows written meanwhile neither shift nor repeat a page.
func TestAuditKeysetPages(t *testing.T) {
	st, ctx := migrated(t)
	for i := 1; i <= 25; i++ {
		org := int64(1)
		if i%5 == 0 {
			org = 2 // every fifth row is another organisation's
		}
		if err := st.InsertAudit(ctx, store.AuditEntry{OrgID: org, Actor: "a", Action: fmt.Sprintf("act.%d", i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(es []store.AuditEntry) string {
		s := ""
		for _, e := range es {
			s += e.Action[4:] + " "
		}
		return s
	}
	list := func(f store.AuditFilter) []store.AuditEntry {
		t.Helper()
		f.OrgID = 1
		es, err := st.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	p1 := list(store.AuditFilter{Limit: 8})
	if got := names(p1); got != "24 23 22 21 19 18 17 16 " {
		t.Fatalf("first page %s", got)
	}
	// New rows arrive: the next page is still the one after p1's last row.
	st.InsertAudit(ctx, store.AuditEntry{OrgID: 1, Actor: "a", Action: "act.26", Outcome: "ok"})
	p2 := list(store.AuditFilter{Limit: 8, Before: p1[len(p1)-1].ID})
	if got := names(p2); got != "14 13 12 11 9 8 7 6 " {
		t.Fatalf("second page %s", got)
	}
	p3 := list(store.AuditFilter{Limit: 8, Before: p2[len(p2)-1].ID})
	if got := names(p3); got != "4 3 2 1 " {
		t.Fatalf("last page %s", got)
	}
	// Back: the rows just newer than p3's first, newest first.
	back := list(store.AuditFilter{Limit: 8, After: p3[0].ID})
	if got := names(back); got != names(p2) {
		t.Fatalf("newer than the last page: %s, want %s", got, names(p2))
	}
	if got := names(list(store.AuditFilter{Limit: 8, After: p1[0].ID})); got != "26 " {
		t.Fatalf("newer than the first page: %s", got)
	}
	if got := names(list(store.AuditFilter{Limit: 8, Before: p3[len(p3)-1].ID})); got != "" {
		t.Fatalf("older than the last row: %q", got)
	}
}
