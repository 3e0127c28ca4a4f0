package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/store"
)

// deploymentFixture makes n accepted devices d-00..d-(n-1) tagged t in the
// default organisation, and one artifact.
func deploymentFixture(t *testing.T, n int) (*store.Store, int64, int64) {
	t.Helper()
	st := open(t)
	ctx := context.Background()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	org, err := st.OrgByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("d-%02d", i)
		if _, err := st.Pool().Exec(ctx, `INSERT INTO devices (id, org_id, status, tags) VALUES ($1, $2, 'accepted', '{t}')`, id, org.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool().Exec(ctx, `INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status)
			VALUES ($1, '\x00', $2, 'ed25519', 'accepted')`, id, "SHA256:"+id); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte("x"))
	art, err := st.InsertArtifact(ctx, store.Artifact{OrgID: org.ID, Name: "hello", Version: "1.0.0", SHA256: sum[:], Length: 1, UploadedBy: "t"},
		func() error { return nil }, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return st, org.ID, art.ID
}

func newDeployment(t *testing.T, st *store.Store, org, art int64, phases []int, members []string) store.Deployment {
	t.Helper()
	d, err := st.InsertDeployment(context.Background(), store.Deployment{OrgID: org, ArtifactID: &art, Name: "hello", Version: "1.0.0",
		Tag: "t", Phases: phases, MaxInFlight: 5, FailureThreshold: 20, MaxAttempts: 3, CommitTimeout: 300,
		NotBefore: time.Now(), State: "running", CreatedBy: "t"}, members)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSplitPhases: phase k holds the members (by device id) up to
// ceil(p_k% of N), at and around the rounding bounds.
func TestSplitPhases(t *testing.T) {
	st, org, art := deploymentFixture(t, 10)
	ids := func(n int) []string {
		var out []string
		for i := n - 1; i >= 0; i-- { // any order: the split is by id
			out = append(out, fmt.Sprintf("d-%02d", i))
		}
		return out
	}
	for _, c := range []struct {
		n      int
		phases []int
		want   []int // members per phase
	}{
		{10, []int{10, 100}, []int{1, 9}},
		{10, []int{11, 100}, []int{2, 8}}, // ceil(1.1) = 2
		{10, []int{1, 100}, []int{1, 9}},  // ceil(0.1) = 1
		{3, []int{10, 50, 100}, []int{1, 1, 1}},
		{1, []int{50, 100}, []int{1, 0}},
		{10, []int{100}, []int{10}},
		{4, []int{25, 50, 75, 100}, []int{1, 1, 1, 1}},
	} {
		d := newDeployment(t, st, org, art, c.phases, ids(c.n))
		counts, err := st.MemberCounts(context.Background(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int, len(c.phases))
		for _, pc := range counts {
			got[pc.Phase] += pc.N
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%d members, phases %v: %v per phase, want %v", c.n, c.phases, got, c.want)
		}
		ms, _ := st.ListMembers(context.Background(), d.ID)
		for i := 1; i < len(ms); i++ {
			if ms[i].Phase == ms[i-1].Phase && ms[i].DeviceID < ms[i-1].DeviceID || ms[i].Phase < ms[i-1].Phase {
				t.Errorf("members out of order: %+v", ms)
			}
		}
		if c.n > 1 && ms[0].DeviceID != "d-00" {
			t.Errorf("the first phase does not start with the lowest id: %+v", ms[0])
		}
	}
}

// TestAddTagMembersCap: tagged devices join up to the cap, none beyond
// it, and a second round adds nothing twice.
func TestAddTagMembersCap(t *testing.T) {
	st, org, art := deploymentFixture(t, 5)
	ctx := context.Background()
	d := newDeployment(t, st, org, art, []int{100}, []string{"d-00"})
	added, err := st.AddTagMembers(ctx, d.ID, org, "t", 0, 3)
	if err != nil || fmt.Sprint(added) != "[d-01 d-02]" {
		t.Fatalf("up to the cap of 3: %v, %v", added, err)
	}
	if added, err := st.AddTagMembers(ctx, d.ID, org, "t", 0, 3); err != nil || len(added) != 0 {
		t.Fatalf("at the cap: %v, %v", added, err)
	}
	if n, _ := st.CountMembers(ctx, d.ID); n != 3 {
		t.Fatalf("%d members at a cap of 3", n)
	}
	if added, err := st.AddTagMembers(ctx, d.ID, org, "t", 0, 100); err != nil || fmt.Sprint(added) != "[d-03 d-04]" {
		t.Fatalf("the rest: %v, %v", added, err)
	}
	// Decommissioned or unaccepted devices never join.
	st.Pool().Exec(ctx, `INSERT INTO devices (id, org_id, status, tags, decommissioned) VALUES ('d-dead', $1, 'decommissioned', '{t}', true)`, org)
	st.Pool().Exec(ctx, `INSERT INTO devices (id, org_id, status, tags) VALUES ('d-new', $1, 'pending', '{t}')`, org)
	if added, err := st.AddTagMembers(ctx, d.ID, org, "t", 0, 100); err != nil || len(added) != 0 {
		t.Fatalf("ineligible devices joined: %v, %v", added, err)
	}
}

// TestUpdateMemberConditional: an update of a member that changed since
// it was read writes nothing; ClaimPending respects n and the retry time;
// CancelQueued cancels only a queued call.
func TestUpdateMemberConditional(t *testing.T) {
	st, org, art := deploymentFixture(t, 3)
	ctx := context.Background()
	d := newDeployment(t, st, org, art, []int{100}, []string{"d-00", "d-01", "d-02"})
	claimed, err := st.ClaimPending(ctx, d.ID, 0, 2)
	if err != nil || len(claimed) != 2 || claimed[0].DeviceID != "d-00" || claimed[0].Attempts != 1 || claimed[0].CallID == nil {
		t.Fatalf("claim 2: %+v, %v", claimed, err)
	}
	m := claimed[0]
	u := store.MemberUpdate{DeploymentID: d.ID, DeviceID: m.DeviceID, Attempts: m.Attempts, ReportSeq: m.ReportSeq, Status: m.Status,
		NewStatus: "downloading", NewReportSeq: 5}
	if _, ok, err := st.UpdateMember(ctx, u); !ok || err != nil {
		t.Fatalf("update: %v %v", ok, err)
	}
	// The same update again: the row has moved on (report_seq 5).
	if _, ok, err := st.UpdateMember(ctx, u); ok || err != nil {
		t.Fatalf("stale update applied: %v %v", ok, err)
	}
	later := time.Now().Add(time.Hour)
	u2 := store.MemberUpdate{DeploymentID: d.ID, DeviceID: "d-01", Attempts: 1, Status: "sent", NewStatus: "pending", RetryAt: &later}
	if _, ok, err := st.UpdateMember(ctx, u2); !ok || err != nil {
		t.Fatalf("back to pending: %v %v", ok, err)
	}
	claimed, err = st.ClaimPending(ctx, d.ID, 0, 10)
	if err != nil || len(claimed) != 1 || claimed[0].DeviceID != "d-02" {
		t.Fatalf("claim with d-01 waiting an hour: %+v, %v", claimed, err)
	}
	// A queued call is cancelled once; a sent one is not.
	exp := time.Now().Add(time.Hour)
	c, err := st.InsertCall(ctx, store.NewCall{ID: *claimed[0].CallID, OrgID: org, DeviceID: "d-02", Method: "ota.update",
		Status: store.CallQueued, Actor: "t", Timeout: time.Second, ExpiresAt: &exp})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.CancelQueued(ctx, c.ID, nil); !ok || err != nil {
		t.Fatalf("cancel queued: %v %v", ok, err)
	}
	if _, ok, err := st.CancelQueued(ctx, c.ID, nil); ok || err != nil {
		t.Fatalf("cancel twice: %v %v", ok, err)
	}
}
