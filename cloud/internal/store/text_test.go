package store_test

import (
	"errors"
	"testing"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// TestFiltersWithBytesNoTextHolds: a filter or id with a NUL byte or
// invalid UTF-8 matches nothing, instead of a database error (PostgreSQL's
// text cannot hold them: "invalid byte sequence for encoding UTF8"), which
// the API and the dashboard answered as 500. The same lists without the
// filter do find the rows, so each check can fail.
func TestFiltersWithBytesNoTextHolds(t *testing.T) {
	st, ctx := migrated(t)
	org, err := st.OrgByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	k := newTestKey(t)
	if _, err := st.Preauthorize(ctx, org.ID, "nul-dev", k.der, k.fp, "ed25519"); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertAudit(ctx, store.AuditEntry{OrgID: org.ID, Actor: "a", Action: "act", Target: "t", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if ds, n, err := st.ListDevices(ctx, store.DeviceFilter{OrgID: org.ID, Limit: 10}); err != nil || n != 1 || len(ds) != 1 {
		t.Fatalf("control: %d devices (%d), %v", len(ds), n, err)
	}
	if es, err := st.ListAudit(ctx, store.AuditFilter{OrgID: org.ID, Limit: 10}); err != nil || len(es) == 0 {
		t.Fatalf("control: %d audit rows, %v", len(es), err)
	}
	for _, v := range []string{"\x00", "nul\x00dev", "nul-dev\x00", "\xff\xfe", "nul-d\xc3"} {
		ds, n, err := st.ListDevices(ctx, store.DeviceFilter{OrgID: org.ID, Text: v, Limit: 10})
		if err != nil || n != 0 || len(ds) != 0 {
			t.Errorf("devices text %q: %d (%d), %v; want none, no error", v, len(ds), n, err)
		}
		if ds, n, err = st.ListDevices(ctx, store.DeviceFilter{Tag: v, Status: "accepted", Limit: 10}); err != nil || n != 0 {
			t.Errorf("devices tag %q: %d, %v", v, n, err)
		}
		if ds, n, err = st.ListDevices(ctx, store.DeviceFilter{Status: v, Limit: 10}); err != nil || n != 0 {
			t.Errorf("devices status %q: %d, %v", v, n, err)
		}
		for _, f := range []store.AuditFilter{{Actor: v}, {Action: v}, {Target: v}} {
			f.Limit = 10
			if es, err := st.ListAudit(ctx, f); err != nil || len(es) != 0 {
				t.Errorf("audit %+v: %d, %v", f, len(es), err)
			}
		}
		if cs, err := st.ListCalls(ctx, store.CallFilter{DeviceID: v, Limit: 10}); err != nil || len(cs) != 0 {
			t.Errorf("calls device %q: %d, %v", v, len(cs), err)
		}
		if cs, err := st.ListCalls(ctx, store.CallFilter{Status: v, Limit: 10}); err != nil || len(cs) != 0 {
			t.Errorf("calls status %q: %d, %v", v, len(cs), err)
		}
		if as, err := st.ListArtifacts(ctx, org.ID, v); err != nil || len(as) != 0 {
			t.Errorf("artifacts name %q: %d, %v", v, len(as), err)
		}
		if ds, err := st.ListDeployments(ctx, org.ID, v, 10); err != nil || len(ds) != 0 {
			t.Errorf("deployments state %q: %d, %v", v, len(ds), err)
		}
		if vs, err := st.OTAVersions(ctx, org.ID, v); err != nil || len(vs) != 0 {
			t.Errorf("ota versions name %q: %d, %v", v, len(vs), err)
		}
		if _, err := st.GetDevice(ctx, v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("device %q: %v, want ErrNotFound", v, err)
		}
	}
}
