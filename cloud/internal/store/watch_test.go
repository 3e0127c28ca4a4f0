package store_test

import (
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// TestTouchManyAndKeyStatuses: the hub's batched watch touches exactly the
// sessions that are current (a stale version changes nothing) and reads
// every key set's status in one query; unknown ids are left out.
func TestTouchManyAndKeyStatuses(t *testing.T) {
	st, ctx := migrated(t)
	a := register(t, st, ctx, "w-a", newTestKey(t))
	b := register(t, st, ctx, "w-b", newTestKey(t))
	va, err := st.StartSession(ctx, "w-a", "r1")
	if err != nil {
		t.Fatal(err)
	}
	vb, err := st.StartSession(ctx, "w-b", "r1")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if _, err := st.Pool().Exec(ctx, `UPDATE devices SET last_seen = $1`, old); err != nil {
		t.Fatal(err)
	}
	if err := st.TouchMany(ctx, nil); err != nil {
		t.Fatalf("touching no session: %v", err)
	}
	if err := st.TouchMany(ctx, []store.SessionRef{{DeviceID: "w-a", Version: va}, {DeviceID: "w-b", Version: vb - 1}, {DeviceID: "nope", Version: 1}}); err != nil {
		t.Fatal(err)
	}
	seen := func(id string) time.Time {
		d, err := st.GetDevice(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.LastSeen
	}
	if got := seen("w-a"); time.Since(got) > time.Minute {
		t.Errorf("w-a last seen %v, want now", got)
	}
	if got := seen("w-b"); time.Since(got) < 59*time.Minute {
		t.Errorf("w-b (a stale session version) last seen %v, want unchanged", got)
	}
	sts, err := st.KeyStatuses(ctx, []int64{a.KeySetID, b.KeySetID, 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || sts[a.KeySetID] != a.KeyStatus || sts[b.KeySetID] != b.KeyStatus {
		t.Fatalf("statuses %v, want %s and %s for %d and %d only", sts, a.KeyStatus, b.KeyStatus, a.KeySetID, b.KeySetID)
	}
}
