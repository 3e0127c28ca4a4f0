package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
)

// These tests drive deployments through the real cloud (PostgreSQL, NATS,
// websockets) with test devices that serve ota.update and ota.abort the
// way bosun-ota does: they answer at once and report through ota.status.

// deployOpts makes the engine tick fast and retry at once, so tests wait
// on outcomes, not on the clock.
func deployOpts(o fleet.DeploymentOptions) cloudtest.Option {
	return cloudtest.WithConfig(func(c *server.Config) {
		if o.Tick == 0 {
			o.Tick = 50 * time.Millisecond
		}
		if o.RetryBackoff == 0 {
			o.RetryBackoff = time.Millisecond
		}
		c.Deployments = o
	})
}

// outcome is what an otaDevice does with an update: the statuses it
// reports, in order (nil: it reports nothing and waits for an abort).
type outcome func(attempt int) []string

func succeed(int) []string {
	return []string{rpcproto.OTADownloading, rpcproto.OTAInstalling, rpcproto.OTAAwaitingCommit, rpcproto.OTASucceeded}
}
func fail(int) []string     { return []string{rpcproto.OTADownloading, rpcproto.OTAFailed} }
func hang(int) []string     { return nil }
func rollBack(int) []string { return []string{rpcproto.OTAAwaitingCommit, rpcproto.OTARolledBack} }
func failFirst(n int) []string {
	if n == 1 {
		return fail(n)
	}
	return succeed(n)
}

// otaDevice is a test device with an OTA worker.
type otaDevice struct {
	t   *testing.T
	id  string
	dev *cloudtest.Device
	do  outcome

	mu      sync.Mutex // guards the following
	seq     uint64
	updates []rpcproto.OTAUpdateParams
	aborts  []string
	current string   // id of the latest update
	resent  int      // updates sent again with the current id
	drop    int      // the next drop updates close the session instead of answering
	dropped []string // ids of the updates whose answer was lost so

	done chan struct{}  // closed when the test ends: reporting stops
	wg   sync.WaitGroup // the reporting goroutines
}

func newOTADevice(t *testing.T, s *cloudtest.Server, id string, do outcome) *otaDevice {
	t.Helper()
	o := &otaDevice{t: t, id: id, do: do}
	o.start()
	o.connect(s, cloudtest.DeviceOptions{})
	if err := s.Service().Accept(ctxT(t), s.Super, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.dev.Accepted():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not accepted", id)
	}
	o.reportMethods()
	return o
}

// start makes the device's reporting stop, and waits for it, when the
// test ends.
func (o *otaDevice) start() {
	o.done = make(chan struct{})
	o.t.Cleanup(func() {
		close(o.done)
		o.wg.Wait()
	})
}

func (o *otaDevice) connect(s *cloudtest.Server, opts cloudtest.DeviceOptions) {
	dev := cloudtest.MustConnect(o.t, s, o.id, opts)
	o.mu.Lock()
	o.dev = dev
	o.mu.Unlock()
	dev.Handle(rpcproto.MethodOTAUpdate, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p rpcproto.OTAUpdateParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		o.mu.Lock()
		if o.drop > 0 {
			// The answer is lost: the session ends before it.
			o.drop--
			o.dropped = append(o.dropped, p.ID)
			o.mu.Unlock()
			dev.Peer.Close(websocket.StatusGoingAway, "dropped")
			select { // no answer: the session ends first
			case <-dev.Peer.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return nil, errors.New("dropped")
		}
		if o.current == p.ID {
			// Sent again (its answer was lost): the state of the
			// update in progress, as bosun-ota answers.
			o.resent++
			o.mu.Unlock()
			return rpcproto.OTAUpdateResult{ID: p.ID, Slot: "b", Status: "downloading"}, nil
		}
		o.updates = append(o.updates, p)
		o.current = p.ID
		o.mu.Unlock()
		_, attempt := splitID(p.ID)
		statuses := o.do(attempt)
		o.wg.Go(func() {
			for _, st := range statuses {
				o.report(p, st, "")
			}
		})
		return rpcproto.OTAUpdateResult{ID: p.ID, Slot: "b", Status: "downloading"}, nil
	})
	dev.Handle(rpcproto.MethodOTAAbort, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p rpcproto.OTAAbortParams
		json.Unmarshal(raw, &p)
		o.mu.Lock()
		o.aborts = append(o.aborts, p.ID)
		cur := o.current
		var last rpcproto.OTAUpdateParams
		if len(o.updates) > 0 {
			last = o.updates[len(o.updates)-1]
		}
		o.mu.Unlock()
		if cur != p.ID {
			return nil, jsonrpc.NewError(rpcproto.CodeNotFound, "nothing to abort", nil)
		}
		o.wg.Go(func() { o.report(last, rpcproto.OTAFailed, "aborted: the cloud asked") })
		return rpcproto.OTAAbortResult{ID: p.ID, Status: rpcproto.OTAFailed}, nil
	})
}

func (o *otaDevice) reportMethods() {
	o.t.Helper()
	if err := o.dev.ReportMethods(ctxT(o.t), rpcproto.MethodOTAUpdate, rpcproto.MethodOTAAbort); err != nil {
		o.t.Fatal(err)
	}
}

func splitID(id string) (string, int) {
	i := strings.LastIndexByte(id, '-')
	var n int
	fmt.Sscanf(id[i+1:], "%d", &n)
	return id[:i], n
}

func (o *otaDevice) report(p rpcproto.OTAUpdateParams, status, reason string) {
	o.mu.Lock()
	o.seq++
	r := rpcproto.OTAStatusParams{ID: p.ID, Seq: o.seq, Target: p.Target, Status: status, Slot: "b", At: time.Now()}
	o.mu.Unlock()
	if status == rpcproto.OTADownloading {
		pct := 50
		r.Percent = &pct
	}
	if status == rpcproto.OTAFailed || status == rpcproto.OTARolledBack {
		r.Reason = reason
		if r.Reason == "" {
			r.Reason = "the test device says no"
		}
	}
	// Like the bridge's outbox: sent again until the cloud stores it,
	// also over the next session, until the test ends (or 15s pass: the
	// test then fails waiting for what the report would have done).
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	giveUp := time.After(15 * time.Second)
	for {
		o.mu.Lock()
		dev := o.dev
		o.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var res fleet.OTAStatusResult
		err := dev.Peer.Call(ctx, rpcproto.MethodOTAStatus, r, &res)
		cancel()
		if err == nil && res.Stored {
			return
		}
		select {
		case <-o.done:
			return
		case <-giveUp:
			return
		case <-retry.C:
		}
	}
}

func (o *otaDevice) updateCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.updates)
}

func (o *otaDevice) abortIDs() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.aborts)
}

// upload uploads a bundle and signs it in the organisation's release
// (made here: each test uploads once per server), as deployments need.
func upload(t *testing.T, s *cloudtest.Server, name, version string) fleet.Artifact {
	t.Helper()
	return cloudtest.InitRelease(t, s, s.Super).UploadSigned(t, name, version, []byte("bundle "+name+" "+version))
}

func create(t *testing.T, s *cloudtest.Server, spec fleet.DeploymentSpec) fleet.Deployment {
	t.Helper()
	d, err := s.Service().CreateDeployment(ctxT(t), s.Super, spec)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func getDep(t *testing.T, s *cloudtest.Server, id int64) (fleet.Deployment, map[string]fleet.DeploymentDevice) {
	t.Helper()
	d, ms, err := s.Service().GetDeployment(context.Background(), s.Super, id)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]fleet.DeploymentDevice{}
	for _, m := range ms {
		byID[m.DeviceID] = m
	}
	return d, byID
}

func waitState(t *testing.T, s *cloudtest.Server, id int64, state string) fleet.Deployment {
	t.Helper()
	var d fleet.Deployment
	cloudtest.Eventually(t, 20*time.Second, func() bool {
		d, _ = getDep(t, s, id)
		return d.State == state
	}, "deployment %d %s; it is %s", id, state, func() string {
		d, ms := getDep(t, s, id)
		return fmt.Sprintf("%s (%q) %v; members %+v", d.State, d.Reason, d.Counts, ms)
	}())
	return d
}

func waitMember(t *testing.T, s *cloudtest.Server, id int64, dev, status string) fleet.DeploymentDevice {
	t.Helper()
	var m fleet.DeploymentDevice
	cloudtest.Eventually(t, 20*time.Second, func() bool {
		_, ms := getDep(t, s, id)
		m = ms[dev]
		return m.Status == status
	}, "member %s of deployment %d %s", dev, id, status)
	return m
}

// deploymentRows counts the rows that a refused create must not add.
func deploymentRows(t *testing.T, s *cloudtest.Server) (deps, members, calls int) {
	t.Helper()
	db := s.Service().Store()
	ds, err := db.ListDeployments(context.Background(), 0, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		n, err := db.CountMembers(context.Background(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		members += n
	}
	cs, err := db.ListCalls(context.Background(), store.CallFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return len(ds), members, len(cs)
}

// TestDeploymentSucceeds: three devices, one phase: each is sent
// ota.update with its id dep-<id>-1, a download URL that opens, and
// passes through every status to succeeded; the deployment completes,
// every step is an event, the version breakdown counts them.
func TestDeploymentSucceeds(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	ctx := ctxT(t)
	art := upload(t, s, "hello", "2.0.0")
	events, err := s.Service().Subscribe(ctx, s.Super)
	if err != nil {
		t.Fatal(err)
	}
	devs := []*otaDevice{newOTADevice(t, s, "dep-a", succeed), newOTADevice(t, s, "dep-b", succeed), newOTADevice(t, s, "dep-c", succeed)}
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"dep-a", "dep-b", "dep-c", "dep-a"}})
	if d.State != fleet.DeploymentRunning || d.Total != 3 || d.Counts[fleet.DevPending] != 3 || d.ArtifactID != art.ID ||
		d.Spec.MaxInFlight != 50 || d.Spec.FailureThreshold != 20 || d.Spec.MaxAttempts != 3 || d.Spec.CommitTimeout != 300 ||
		!slices.Equal(d.Spec.Phases, []int{100}) {
		t.Fatalf("created %+v", d)
	}
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	if d.Counts[fleet.DevSucceeded] != 3 || d.FinishedAt == nil {
		t.Fatalf("completed %+v", d)
	}
	for _, o := range devs {
		if o.updateCount() != 1 {
			t.Fatalf("%s was sent %d updates", o.id, o.updateCount())
		}
		p := o.updates[0]
		if p.ID != fleet.UpdateID(d.ID, 1) || p.Target != "hello/2.0.0" || p.CommitTimeout != 300 {
			t.Fatalf("%s was sent %+v", o.id, p)
		}
		tok := p.URL[strings.LastIndex(p.URL, "/")+1:]
		dl, err := s.Service().OpenDownload(ctx, tok)
		if err != nil || dl.DeviceID != o.id || dl.Artifact.ID != art.ID {
			t.Fatalf("download URL of %s: %+v, %v", o.id, dl, err)
		}
		dl.File.Close()
	}
	// Every member passed through every status, as events.
	seen := map[string][]string{}
	deadline := time.After(10 * time.Second)
	done := func(dev string) bool { return slices.Contains(seen[dev], "succeeded") }
	for !done("dep-a") || !done("dep-b") || !done("dep-c") {
		select {
		case ev := <-events:
			if ev.Type != fleet.EventDeployment || ev.DeviceID == "" {
				continue
			}
			var data struct {
				Deployment int64
				Status     string
			}
			json.Unmarshal(ev.Data, &data)
			if data.Deployment == d.ID && !slices.Contains(seen[ev.DeviceID], data.Status) {
				seen[ev.DeviceID] = append(seen[ev.DeviceID], data.Status)
			}
		case <-deadline:
			t.Fatalf("events per device: %v", seen)
		}
	}
	// A member the engine claimed before the create published its pending
	// events starts at "sent" (no "pending" after it).
	want := []string{"pending", "sent", "downloading", "installing", "awaiting_commit", "succeeded"}
	for dev, got := range seen {
		if !slices.Equal(got, want) && !slices.Equal(got, want[1:]) {
			t.Fatalf("%s went through %v, want %v", dev, got, want)
		}
	}
	vs, err := s.Service().OTAVersions(ctx, s.Super, "hello")
	if err != nil || len(vs) != 1 || vs[0] != (fleet.VersionCount{Version: "2.0.0", Devices: 3}) {
		t.Fatalf("versions = %+v, %v", vs, err)
	}
	// The audit has the create.
	rows, err := s.Service().AuditLog(ctx, s.Super, fleet.AuditFilter{Action: "deployment.create"})
	if err != nil || len(rows) != 1 || rows[0].Outcome != "ok" || rows[0].Target != fmt.Sprintf("deployment:%d", d.ID) {
		t.Fatalf("audit = %+v, %v", rows, err)
	}
}

// TestDeploymentRefused: every bad spec, role and organisation is a clear
// error and stores nothing: no deployment, member or call row.
func TestDeploymentRefused(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{MaxMembers: 2}))
	ctx := ctxT(t)
	upload(t, s, "hello", "2.0.0")
	newOTADevice(t, s, "ref-a", succeed)
	newOTADevice(t, s, "ref-b", succeed)
	newOTADevice(t, s, "ref-c", succeed)
	for _, id := range []string{"ref-a", "ref-b", "ref-c"} {
		if err := s.Service().SetTags(ctx, s.Super, id, []string{"many"}); err != nil {
			t.Fatal(err)
		}
	}
	viewer := s.Actor(t, "viewer@bosun.test", fleet.RoleViewer, "")
	if _, err := s.Service().Store().CreateOrg(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	other := s.Actor(t, "op@other.test", fleet.RoleOperator, "other")
	pending := cloudtest.MustConnect(t, s, "ref-pending", cloudtest.DeviceOptions{})
	_ = pending
	ok := fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"ref-a"}}
	with := func(f func(*fleet.DeploymentSpec)) fleet.DeploymentSpec {
		sp := ok
		f(&sp)
		return sp
	}
	cases := []struct {
		name  string
		actor fleet.Actor
		spec  fleet.DeploymentSpec
		kind  error
		msg   string
	}{
		{"phases not increasing", s.Super, with(func(p *fleet.DeploymentSpec) { p.Phases = []int{50, 50, 100} }), fleet.ErrInvalid, "strictly increasing"},
		{"last phase not 100", s.Super, with(func(p *fleet.DeploymentSpec) { p.Phases = []int{10, 90} }), fleet.ErrInvalid, "last phase must be 100"},
		{"phase 0", s.Super, with(func(p *fleet.DeploymentSpec) { p.Phases = []int{0, 100} }), fleet.ErrInvalid, "1 to 100"},
		{"too many phases", s.Super, with(func(p *fleet.DeploymentSpec) { p.Phases = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100} }), fleet.ErrInvalid, "at most 10 phases"},
		{"threshold over 100", s.Super, with(func(p *fleet.DeploymentSpec) { p.FailureThreshold = 101 }), fleet.ErrInvalid, "failure threshold"},
		{"threshold negative", s.Super, with(func(p *fleet.DeploymentSpec) { p.FailureThreshold = -2 }), fleet.ErrInvalid, "failure threshold"},
		{"max in flight over 10000", s.Super, with(func(p *fleet.DeploymentSpec) { p.MaxInFlight = 10001 }), fleet.ErrInvalid, "max in flight"},
		{"max attempts 11", s.Super, with(func(p *fleet.DeploymentSpec) { p.MaxAttempts = 11 }), fleet.ErrInvalid, "max attempts"},
		{"commit timeout beyond a day", s.Super, with(func(p *fleet.DeploymentSpec) { p.CommitTimeout = 86401 }), fleet.ErrInvalid, "commit timeout"},
		{"unknown artifact version", s.Super, with(func(p *fleet.DeploymentSpec) { p.Version = "9.9.9" }), fleet.ErrInvalid, "does not exist"},
		{"bad artifact name", s.Super, with(func(p *fleet.DeploymentSpec) { p.Name = "Hello!" }), fleet.ErrInvalid, "artifact name"},
		{"no devices and no tag", s.Super, with(func(p *fleet.DeploymentSpec) { p.DeviceIDs = nil }), fleet.ErrInvalid, "name the devices"},
		{"unknown device", s.Super, with(func(p *fleet.DeploymentSpec) { p.DeviceIDs = []string{"ref-a", "nope"} }), fleet.ErrInvalid, "no such device"},
		{"device not accepted", s.Super, with(func(p *fleet.DeploymentSpec) { p.DeviceIDs = []string{"ref-pending"} }), fleet.ErrInvalid, "no accepted key"},
		{"bad tag", s.Super, with(func(p *fleet.DeploymentSpec) { p.Tag = " x" }), fleet.ErrInvalid, "tag"},
		{"members beyond the cap (ids)", s.Super, with(func(p *fleet.DeploymentSpec) { p.DeviceIDs = []string{"ref-a", "ref-b", "ref-c"} }), fleet.ErrInvalid, "at most 2 devices"},
		{"members beyond the cap (tag)", s.Super, with(func(p *fleet.DeploymentSpec) { p.DeviceIDs = nil; p.Tag = "many" }), fleet.ErrInvalid, "at most 2 devices"},
		{"viewer", viewer, ok, fleet.ErrForbidden, ""},
		{"other organisation's devices", other, ok, fleet.ErrInvalid, "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			deps, members, calls := deploymentRows(t, s)
			_, err := s.Service().CreateDeployment(ctx, c.actor, c.spec)
			if !errors.Is(err, c.kind) || !strings.Contains(fleet.PublicText(err), c.msg) {
				t.Fatalf("error %v (public %q), want %v saying %q", err, fleet.PublicText(err), c.kind, c.msg)
			}
			if d2, m2, c2 := deploymentRows(t, s); d2 != deps || m2 != members || c2 != calls {
				t.Fatalf("rows changed: deployments %d→%d, members %d→%d, calls %d→%d", deps, d2, members, m2, calls, c2)
			}
		})
	}
	// At the cap: two devices are fine.
	d := create(t, s, with(func(p *fleet.DeploymentSpec) { p.DeviceIDs = []string{"ref-a", "ref-b"} }))
	if d.Total != 2 {
		t.Fatalf("at the cap: %d members", d.Total)
	}
	// Every other bound, at the bound.
	d = create(t, s, with(func(p *fleet.DeploymentSpec) {
		p.MaxInFlight, p.MaxAttempts, p.CommitTimeout, p.FailureThreshold = 10000, 10, 86400, 100
		p.Phases = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 100}
	}))
	if sp := d.Spec; sp.MaxInFlight != 10000 || sp.MaxAttempts != 10 || sp.CommitTimeout != 86400 || sp.FailureThreshold != 100 || len(sp.Phases) != 10 {
		t.Fatalf("at the bounds: %+v", sp)
	}
	// -1 asks for 0 where 0 means the default.
	d = create(t, s, with(func(p *fleet.DeploymentSpec) { p.CommitTimeout, p.FailureThreshold = -1, -1 }))
	if d.Spec.CommitTimeout != 0 || d.Spec.FailureThreshold != 0 {
		t.Fatalf("-1 for 0: %+v", d.Spec)
	}
	// Refusals are audited.
	rows, err := s.Service().AuditLog(ctx, s.Super, fleet.AuditFilter{Action: "deployment.create", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range rows {
		if r.Outcome == "error" {
			refused++
		}
	}
	if refused != len(cases)-1 { // the viewer is refused before anything (no audit row, like the other forbidden actions)
		t.Fatalf("%d refusals audited, want %d", refused, len(cases)-1)
	}
}

// TestDeploymentOperatorActions: pause, resume and abort change the state
// as documented; each refusal (wrong state, viewer, other organisation)
// changes nothing; every action is audited.
func TestDeploymentOperatorActions(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	ctx := ctxT(t)
	upload(t, s, "hello", "2.0.0")
	newOTADevice(t, s, "op-a", hang)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"op-a"},
		NotBefore: time.Now().Add(time.Hour)})
	if d.State != fleet.DeploymentScheduled {
		t.Fatalf("not before in an hour: %s", d.State)
	}
	viewer := s.Actor(t, "v@bosun.test", fleet.RoleViewer, "")
	if _, err := s.Service().Store().CreateOrg(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	other := s.Actor(t, "admin@other.test", fleet.RoleAdmin, "other")
	svc := s.Service()
	refuse := func(name string, err error, kind error, state string) {
		t.Helper()
		if !errors.Is(err, kind) {
			t.Fatalf("%s: %v, want %v", name, err, kind)
		}
		if got, _ := getDep(t, s, d.ID); got.State != state {
			t.Fatalf("%s changed the state to %s", name, got.State)
		}
	}
	_, err := svc.ResumeDeployment(ctx, s.Super, d.ID)
	refuse("resume scheduled", err, fleet.ErrConflict, fleet.DeploymentScheduled)
	_, err = svc.PauseDeployment(ctx, viewer, d.ID)
	refuse("viewer pause", err, fleet.ErrForbidden, fleet.DeploymentScheduled)
	_, err = svc.PauseDeployment(ctx, other, d.ID)
	refuse("other org pause", err, fleet.ErrNotFound, fleet.DeploymentScheduled)
	if _, _, err := svc.GetDeployment(ctx, other, d.ID); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("other org get: %v", err)
	}
	if list, err := svc.ListDeployments(ctx, other, fleet.DeploymentFilter{}); err != nil || len(list) != 0 {
		t.Fatalf("other org list: %v, %v", list, err)
	}
	if list, err := svc.ListDeployments(ctx, viewer, fleet.DeploymentFilter{State: "scheduled"}); err != nil || len(list) != 1 {
		t.Fatalf("viewer list: %v, %v", list, err)
	}
	if _, err := svc.ListDeployments(ctx, viewer, fleet.DeploymentFilter{State: "bogus"}); !errors.Is(err, fleet.ErrInvalid) {
		t.Fatalf("bad state filter: %v", err)
	}
	p, err := svc.PauseDeployment(ctx, s.Super, d.ID)
	if err != nil || p.State != fleet.DeploymentPaused || !strings.Contains(p.Reason, "paused by") {
		t.Fatalf("pause: %+v, %v", p, err)
	}
	_, err = svc.PauseDeployment(ctx, s.Super, d.ID)
	refuse("pause paused", err, fleet.ErrConflict, fleet.DeploymentPaused)
	r, err := svc.ResumeDeployment(ctx, s.Super, d.ID)
	if err != nil || r.State != fleet.DeploymentScheduled || r.Reason != "" {
		t.Fatalf("resume before not-before: %+v, %v", r, err)
	}
	a, err := svc.AbortDeployment(ctx, s.Super, d.ID)
	if err != nil || a.State != fleet.DeploymentAborted || a.Counts[fleet.DevAborted] != 1 || a.FinishedAt == nil {
		t.Fatalf("abort: %+v, %v", a, err)
	}
	_, err = svc.AbortDeployment(ctx, s.Super, d.ID)
	refuse("abort aborted", err, fleet.ErrConflict, fleet.DeploymentAborted)
	_, err = svc.ResumeDeployment(ctx, s.Super, d.ID)
	refuse("resume aborted", err, fleet.ErrConflict, fleet.DeploymentAborted)
	rows, err := svc.AuditLog(ctx, s.Super, fleet.AuditFilter{Target: fmt.Sprintf("deployment:%d", d.ID), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Action+":"+r.Outcome)
	}
	slices.Reverse(got)
	want := []string{"deployment.create:ok", "deployment.resume:error", "deployment.pause:ok", "deployment.pause:error",
		"deployment.resume:ok", "deployment.abort:ok", "deployment.abort:error", "deployment.resume:error"}
	if !slices.Equal(got, want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

// TestDeploymentPhasesGate: with phases 25,100 and four devices, the
// second phase is not sent anything until the first is done.
func TestDeploymentPhasesGate(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	first := newOTADevice(t, s, "ph-1", hang)
	rest := []*otaDevice{newOTADevice(t, s, "ph-2", succeed), newOTADevice(t, s, "ph-3", succeed), newOTADevice(t, s, "ph-4", succeed)}
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"ph-4", "ph-3", "ph-2", "ph-1"},
		Phases: []int{25, 100}})
	_, ms := getDep(t, s, d.ID)
	if ms["ph-1"].Phase != 0 || ms["ph-2"].Phase != 1 || ms["ph-4"].Phase != 1 {
		t.Fatalf("phases by device id: %+v", ms)
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool { return first.updateCount() == 1 }, "ph-1 is sent its update")
	// Several ticks pass with ph-1 in flight: the engine ticks every
	// 50ms; 20 of them.
	for range 20 {
		if err := s.Service().DeploymentTick(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range rest {
		if o.updateCount() != 0 {
			t.Fatalf("%s of phase 2 was sent an update while phase 1 was not done", o.id)
		}
	}
	if got, _ := getDep(t, s, d.ID); got.Phase != 0 || got.State != fleet.DeploymentRunning {
		t.Fatalf("deployment %+v", got)
	}
	first.mu.Lock()
	p := first.updates[0]
	first.mu.Unlock()
	first.report(p, rpcproto.OTASucceeded, "")
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	if d.Counts[fleet.DevSucceeded] != 4 || d.Phase != 1 {
		t.Fatalf("completed %+v", d)
	}
}

// TestDeploymentMaxInFlight: with max in flight 2 and five devices that
// never finish on their own, exactly two are sent the update; as each
// finishes, one more is sent.
func TestDeploymentMaxInFlight(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	var devs []*otaDevice
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("mif-%d", i)
		devs = append(devs, newOTADevice(t, s, id, hang))
		ids = append(ids, id)
	}
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: ids, MaxInFlight: 2})
	sent := func() (n int) {
		for _, o := range devs {
			n += o.updateCount()
		}
		return n
	}
	finished := map[string]bool{}
	for done := 0; done < 5; done++ {
		want := min(2+done, 5)
		cloudtest.Eventually(t, 10*time.Second, func() bool { return sent() == want }, "%d devices sent an update (%d are)", want, sent())
		for range 10 {
			if err := s.Service().DeploymentTick(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		}
		if got := sent(); got != want {
			t.Fatalf("%d devices sent an update with %d done and max in flight 2", got, done)
		}
		got, _ := getDep(t, s, d.ID)
		if f := got.Counts[fleet.DevSent] + got.Counts[fleet.DevDownloading]; f > 2 {
			t.Fatalf("%d in flight: %v", f, got.Counts)
		}
		// Finish the lowest device still in flight.
		for _, o := range devs {
			if o.updateCount() == 1 && !finished[o.id] {
				o.report(o.updates[0], rpcproto.OTASucceeded, "")
				finished[o.id] = true
				break
			}
		}
	}
	waitState(t, s, d.ID, fleet.DeploymentCompleted)
}

// TestDeploymentFailureThresholdPauses: phase 1 of three devices with a
// threshold of 20%: the first device set aside (one attempt each) is
// 33% > 20%: the deployment pauses itself, saying why; phase 2 is not
// sent; resume accepts that failure and goes on; phase 2 completes.
func TestDeploymentFailureThresholdPauses(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	newOTADevice(t, s, "thr-1", fail)
	newOTADevice(t, s, "thr-2", succeed)
	newOTADevice(t, s, "thr-3", succeed)
	later := newOTADevice(t, s, "thr-4", succeed)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"thr-1", "thr-2", "thr-3", "thr-4"},
		Phases: []int{75, 100}, MaxAttempts: 1})
	p := waitState(t, s, d.ID, fleet.DeploymentPaused)
	if p.Reason != "phase 1: 1 of 3 devices failed (threshold 20%)" {
		t.Fatalf("paused with reason %q", p.Reason)
	}
	m := waitMember(t, s, d.ID, "thr-1", fleet.DevFailed)
	if m.Attempts != 1 || m.Reason != "set aside after 1 attempt: the test device says no" {
		t.Fatalf("failed member %+v", m)
	}
	for range 10 {
		s.Service().DeploymentTick(ctxT(t))
	}
	if later.updateCount() != 0 {
		t.Fatal("phase 2 was sent an update while paused")
	}
	// The audit row follows the state change (it is written after it).
	var rows []fleet.AuditEntry
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		rows, _ = s.Service().AuditLog(ctxT(t), s.Super, fleet.AuditFilter{Action: "deployment.pause"})
		return len(rows) > 0
	}, "the pause by itself audited")
	if len(rows) != 1 || rows[0].Actor != "bosun-cloud" {
		t.Fatalf("the pause by itself is audited: %+v", rows)
	}
	if _, err := s.Service().ResumeDeployment(ctxT(t), s.Super, d.ID); err != nil {
		t.Fatal(err)
	}
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	if d.Counts[fleet.DevSucceeded] != 3 || d.Counts[fleet.DevFailed] != 1 || later.updateCount() != 1 {
		t.Fatalf("after resume: %+v", d)
	}
}

// TestDeploymentLastPhaseFailuresComplete: over the failure threshold in
// its last phase with nothing left to send, a deployment completes (saying
// the phase failed) instead of pausing with nothing to resume; with a
// device still pending in that phase, it pauses to protect it.
func TestDeploymentLastPhaseFailuresComplete(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	newOTADevice(t, s, "lp-1", fail)
	newOTADevice(t, s, "lp-2", succeed)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"lp-1", "lp-2"}, MaxAttempts: 1})
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	if d.Reason != "phase 1: 1 of 2 devices failed (threshold 20%)" || d.Counts[fleet.DevFailed] != 1 || d.Counts[fleet.DevSucceeded] != 1 {
		t.Fatalf("completed %+v", d)
	}
	// One in flight at a time: the failure comes while lp-4 still waits.
	newOTADevice(t, s, "lp-3", fail)
	later := newOTADevice(t, s, "lp-4", succeed)
	p := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"lp-3", "lp-4"}, MaxAttempts: 1, MaxInFlight: 1})
	p = waitState(t, s, p.ID, fleet.DeploymentPaused)
	if !strings.HasPrefix(p.Reason, "phase 1: 1 of 2 devices failed") {
		t.Fatalf("paused %+v", p)
	}
	if n := later.updateCount(); n != 0 || p.Counts[fleet.DevPending] != 1 {
		t.Fatalf("the device behind the failure: %d updates sent, counts %v; want none, still pending", n, p.Counts)
	}
}

// TestDeploymentRetriesBounded: a device that fails every time is tried
// max attempts (3) times, then set aside; one that fails once succeeds
// on its second attempt; a rolled-back attempt counts too.
func TestDeploymentRetriesBounded(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	bad := newOTADevice(t, s, "rt-bad", fail)
	flaky := newOTADevice(t, s, "rt-flaky", failFirst)
	rb := newOTADevice(t, s, "rt-rb", rollBack)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"rt-bad", "rt-flaky", "rt-rb"},
		FailureThreshold: 100})
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	_, ms := getDep(t, s, d.ID)
	if m := ms["rt-bad"]; m.Status != fleet.DevFailed || m.Attempts != 3 || m.Reason != "set aside after 3 attempts: the test device says no" {
		t.Fatalf("always failing: %+v", m)
	}
	if m := ms["rt-rb"]; m.Status != fleet.DevRolledBack || m.Attempts != 3 || m.Reason != "set aside after 3 attempts: the test device says no" {
		t.Fatalf("always rolling back: %+v", m)
	}
	if m := ms["rt-flaky"]; m.Status != fleet.DevSucceeded || m.Attempts != 2 {
		t.Fatalf("failing once: %+v", m)
	}
	if bad.updateCount() != 3 || flaky.updateCount() != 2 || rb.updateCount() != 3 {
		t.Fatalf("updates sent: %d, %d, %d", bad.updateCount(), flaky.updateCount(), rb.updateCount())
	}
	for i, p := range bad.updates {
		if p.ID != fleet.UpdateID(d.ID, i+1) {
			t.Fatalf("attempt %d id %s", i+1, p.ID)
		}
	}
}

// TestDeploymentDynamicTag: a device tagged while the deployment runs
// joins it (in the current phase) and is sent the update; a device that
// loses the tag keeps its row.
func TestDeploymentDynamicTag(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	ctx := ctxT(t)
	upload(t, s, "hello", "2.0.0")
	a := newOTADevice(t, s, "tag-a", hang)
	if err := s.Service().SetTags(ctx, s.Super, "tag-a", []string{"canary"}); err != nil {
		t.Fatal(err)
	}
	b := newOTADevice(t, s, "tag-b", succeed)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", Tag: "canary"})
	if d.Total != 1 {
		t.Fatalf("members at create: %d", d.Total)
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool { return a.updateCount() == 1 }, "tag-a sent the update")
	if err := s.Service().SetTags(ctx, s.Super, "tag-b", []string{"canary"}); err != nil {
		t.Fatal(err)
	}
	waitMember(t, s, d.ID, "tag-b", fleet.DevSucceeded)
	if b.updateCount() != 1 {
		t.Fatalf("tag-b sent %d updates", b.updateCount())
	}
	if err := s.Service().SetTags(ctx, s.Super, "tag-a", nil); err != nil {
		t.Fatal(err)
	}
	a.report(a.updates[0], rpcproto.OTASucceeded, "")
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	if d.Total != 2 || d.Counts[fleet.DevSucceeded] != 2 {
		t.Fatalf("completed %+v", d)
	}
}

// TestDeploymentOfflineDevice: a device offline when the deployment
// starts (for longer than a download token lives: here the token ttl is
// 1ns) gets the update queued; when it comes back it is delivered, and
// its URL downloads.
func TestDeploymentOfflineDevice(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}), cloudtest.WithConfig(func(c *server.Config) {
		c.DownloadTokenTTL = time.Nanosecond
		c.Deployments.Tick = 50 * time.Millisecond
		c.Deployments.RetryBackoff = time.Millisecond
	}))
	ctx := ctxT(t)
	upload(t, s, "hello", "2.0.0")
	o := newOTADevice(t, s, "off-1", succeed)
	key := o.dev.Key
	o.dev.Close()
	waitOffline(t, s, "off-1")
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"off-1"}})
	waitMember(t, s, d.ID, "off-1", fleet.DevSent)
	var calls []fleet.Call
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		calls, _ = s.Service().ListCalls(ctx, s.Super, fleet.CallFilter{DeviceID: "off-1"})
		return len(calls) > 0
	}, "the update is queued")
	if len(calls) != 1 || calls[0].Status != "queued" || calls[0].Method != "ota.update" {
		t.Fatalf("calls of the offline device: %+v", calls)
	}
	// An ordinary token of this cloud is dead at once.
	art, _ := s.Service().Store().ArtifactByVersion(ctx, d.OrgID, "hello", "2.0.0")
	tok, _, _ := s.Service().DownloadToken(ctx, "off-1", art)
	if _, err := s.Service().OpenDownload(ctx, tok); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("a 1ns token: %v", err)
	}
	o.connect(s, cloudtest.DeviceOptions{Key: key})
	o.reportMethods()
	waitMember(t, s, d.ID, "off-1", fleet.DevSucceeded)
	p := o.updates[0]
	dl, err := s.Service().OpenDownload(ctx, p.URL[strings.LastIndex(p.URL, "/")+1:])
	if err != nil {
		t.Fatalf("the deployment's URL after the token ttl: %v", err)
	}
	dl.File.Close()
	waitState(t, s, d.ID, fleet.DeploymentCompleted)
}

// TestDeploymentRestart: a cloud stopped in the middle of a deployment
// (one device done, one in flight, one not started: max in flight 1)
// and a new one over the same database continue it to the end.
func TestDeploymentRestart(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	a := newOTADevice(t, s, "rs-a", succeed)
	b := newOTADevice(t, s, "rs-b", hang)
	c := newOTADevice(t, s, "rs-c", succeed)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"rs-a", "rs-b", "rs-c"}, MaxInFlight: 1})
	waitMember(t, s, d.ID, "rs-a", fleet.DevSucceeded)
	cloudtest.Eventually(t, 10*time.Second, func() bool { return b.updateCount() == 1 }, "rs-b sent its update")
	keys := map[string]*otaDevice{"rs-a": a, "rs-b": b, "rs-c": c}
	s.Stop()
	s2 := cloudtest.NewServer(t, cloudtest.WithDatabase(s.DatabaseURL), cloudtest.WithKey(s.Key), deployOpts(fleet.DeploymentOptions{}))
	for _, o := range keys {
		key := o.dev.Key
		o.connect(s2, cloudtest.DeviceOptions{Key: key})
		o.reportMethods()
	}
	// rs-b's report reaches the new cloud (through its outbox).
	b.report(b.updates[0], rpcproto.OTASucceeded, "")
	d = waitState(t, s2, d.ID, fleet.DeploymentCompleted)
	if d.Counts[fleet.DevSucceeded] != 3 || a.updateCount() != 1 || c.updateCount() != 1 {
		t.Fatalf("after restart %+v (a %d, c %d updates)", d, a.updateCount(), c.updateCount())
	}
}

// TestDeploymentReportMapping: a report sent twice (same seq) is applied
// once; a report of an older attempt moves nothing; a report of another
// deployment's id or a foreign id is ignored.
func TestDeploymentReportMapping(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	o := newOTADevice(t, s, "map-1", hang)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"map-1"}, MaxAttempts: 3,
		FailureThreshold: 100})
	cloudtest.Eventually(t, 10*time.Second, func() bool { return o.updateCount() == 1 }, "map-1 sent attempt 1")
	first := o.updates[0]
	// Attempt 1 fails: reported twice with the same seq.
	o.mu.Lock()
	o.seq++
	r := rpcproto.OTAStatusParams{ID: first.ID, Seq: o.seq, Target: first.Target, Status: rpcproto.OTAFailed, Reason: "disk full", At: time.Now()}
	o.mu.Unlock()
	for range 2 {
		var res fleet.OTAStatusResult
		if err := o.dev.Peer.Call(ctxT(t), rpcproto.MethodOTAStatus, r, &res); err != nil {
			t.Fatal(err)
		}
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool { return o.updateCount() == 2 }, "map-1 sent attempt 2")
	_, ms := getDep(t, s, d.ID)
	if m := ms["map-1"]; m.Attempts != 2 || m.Status != fleet.DevSent {
		t.Fatalf("after a duplicated failure: %+v (want attempt 2, sent: counted once)", m)
	}
	// A late report of attempt 1 moves nothing.
	o.report(first, rpcproto.OTASucceeded, "")
	// A report of an id that is no deployment's, and of a deployment
	// that does not exist.
	o.report(rpcproto.OTAUpdateParams{ID: "manual-1", Target: first.Target}, rpcproto.OTASucceeded, "")
	o.report(rpcproto.OTAUpdateParams{ID: fleet.UpdateID(d.ID+100, 2), Target: first.Target}, rpcproto.OTASucceeded, "")
	for range 5 {
		if err := s.Service().DeploymentTick(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	_, ms = getDep(t, s, d.ID)
	if m := ms["map-1"]; m.Attempts != 2 || m.Status != fleet.DevSent {
		t.Fatalf("after an old attempt's report: %+v", m)
	}
	// Attempt 2's report counts.
	o.report(o.updates[1], rpcproto.OTADownloading, "")
	if m := waitMember(t, s, d.ID, "map-1", fleet.DevDownloading); m.Percent == nil || *m.Percent != 50 {
		t.Fatalf("downloading %+v", m)
	}
	o.report(o.updates[1], rpcproto.OTASucceeded, "")
	waitState(t, s, d.ID, fleet.DeploymentCompleted)
	// A report after the final status does not move it back.
	o.report(o.updates[1], rpcproto.OTADownloading, "")
	s.Service().DeploymentTick(ctxT(t))
	if _, ms := getDep(t, s, d.ID); ms["map-1"].Status != fleet.DevSucceeded {
		t.Fatalf("final status moved: %+v", ms["map-1"])
	}
}

// TestDeploymentAbort: pending members end aborted and are never sent;
// an update queued for an offline device is cancelled; a device in
// flight receives ota.abort {id} and ends aborted with its report;
// finished members keep their status.
func TestDeploymentAbort(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	ctx := ctxT(t)
	upload(t, s, "hello", "2.0.0")
	done := newOTADevice(t, s, "ab-1", succeed)
	flying := newOTADevice(t, s, "ab-2", hang)
	off := newOTADevice(t, s, "ab-3", succeed)
	offKey := off.dev.Key
	off.dev.Close()
	waitOffline(t, s, "ab-3")
	later := newOTADevice(t, s, "ab-4", succeed)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"ab-1", "ab-2", "ab-3", "ab-4"},
		Phases: []int{75, 100}})
	waitMember(t, s, d.ID, "ab-1", fleet.DevSucceeded)
	cloudtest.Eventually(t, 10*time.Second, func() bool { return flying.updateCount() == 1 }, "ab-2 sent its update")
	waitMember(t, s, d.ID, "ab-3", fleet.DevSent)
	a, err := s.Service().AbortDeployment(ctx, s.Super, d.ID)
	if err != nil || a.State != fleet.DeploymentAborted {
		t.Fatalf("abort: %+v, %v", a, err)
	}
	if m := waitMember(t, s, d.ID, "ab-4", fleet.DevAborted); !strings.Contains(m.Reason, "not started") {
		t.Fatalf("pending member %+v", m)
	}
	m := waitMember(t, s, d.ID, "ab-3", fleet.DevAborted)
	if !strings.Contains(m.Reason, "before the update reached") {
		t.Fatalf("offline member %+v", m)
	}
	calls, _ := s.Service().ListCalls(ctx, s.Super, fleet.CallFilter{DeviceID: "ab-3"})
	if len(calls) != 1 || calls[0].Status != "failed" || calls[0].Error == nil || !strings.Contains(calls[0].Error.Message, "cancelled") {
		t.Fatalf("offline device's call %+v", calls)
	}
	m = waitMember(t, s, d.ID, "ab-2", fleet.DevAborted)
	if ids := flying.abortIDs(); len(ids) != 1 || ids[0] != fleet.UpdateID(d.ID, 1) || !strings.Contains(m.Reason, "aborted: failed: aborted: the cloud asked") {
		t.Fatalf("in flight: aborts %v, member %+v", ids, m)
	}
	_, ms := getDep(t, s, d.ID)
	if ms["ab-1"].Status != fleet.DevSucceeded {
		t.Fatalf("finished member changed: %+v", ms["ab-1"])
	}
	// The offline device comes back: it gets nothing.
	off.connect(s, cloudtest.DeviceOptions{Key: offKey})
	off.reportMethods()
	for range 10 {
		s.Service().DeploymentTick(ctx)
	}
	if off.updateCount() != 0 || later.updateCount() != 0 || done.abortIDs() != nil {
		t.Fatalf("after abort: off %d, later %d updates, done aborts %v", off.updateCount(), later.updateCount(), done.abortIDs())
	}
	if live, _ := s.Service().Store().LiveDeployments(ctx); len(live) != 0 {
		t.Fatalf("an aborted deployment with nothing in flight is still live: %v", live)
	}
}

// TestDeploymentTwoReplicas: two replicas over one database run the
// engine side by side; each device is sent its update once.
func TestDeploymentTwoReplicas(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{Tick: 5 * time.Millisecond}))
	s2 := cloudtest.NewServer(t, cloudtest.WithDatabase(s.DatabaseURL), cloudtest.WithNATS(s.NATSURL()), cloudtest.WithKey(s.Key),
		cloudtest.WithReplica("r2"), deployOpts(fleet.DeploymentOptions{Tick: 5 * time.Millisecond}))
	upload(t, s, "hello", "2.0.0")
	var devs []*otaDevice
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("two-%d", i)
		srv := s
		if i%2 == 1 {
			srv = s2
		}
		o := &otaDevice{t: t, id: id, do: succeed}
		o.start()
		o.connect(srv, cloudtest.DeviceOptions{})
		if err := s.Service().Accept(ctxT(t), s.Super, id); err != nil {
			t.Fatal(err)
		}
		<-o.dev.Accepted()
		o.reportMethods()
		devs = append(devs, o)
		ids = append(ids, id)
	}
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: ids})
	waitState(t, s2, d.ID, fleet.DeploymentCompleted)
	for _, o := range devs {
		if o.updateCount() != 1 {
			t.Fatalf("%s was sent %d updates", o.id, o.updateCount())
		}
	}
}

// TestDeploymentSilentDeviceFails: a device that answers ota.update and
// then never reports fails its attempt after the call ttl (here 300ms)
// plus the commit timeout (0), and is set aside after its attempts: its
// phase does not stay open for ever.
func TestDeploymentSilentDeviceFails(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{CallTTL: 300 * time.Millisecond}))
	upload(t, s, "hello", "2.0.0")
	o := newOTADevice(t, s, "quiet-1", hang)
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"quiet-1"}, MaxAttempts: 2,
		CommitTimeout: -1, FailureThreshold: 100})
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	_, ms := getDep(t, s, d.ID)
	if m := ms["quiet-1"]; m.Status != fleet.DevFailed || m.Attempts != 2 || m.Reason != "set aside after 2 attempts: no report for 300ms after sent" {
		t.Fatalf("silent member %+v", m)
	}
	if o.updateCount() != 2 {
		t.Fatalf("%d updates sent", o.updateCount())
	}
}

// TestDeploymentLostAnswerSentAgain: the session ends after ota.update
// reached the device and before its answer: the engine sends the same
// attempt again, with the same id, when the device is back (not a failed
// attempt), and the deployment completes with one attempt.
func TestDeploymentLostAnswerSentAgain(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{}))
	upload(t, s, "hello", "2.0.0")
	o := newOTADevice(t, s, "lost-1", succeed)
	o.mu.Lock()
	o.drop = 1
	o.mu.Unlock()
	key := o.dev.Key
	d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", DeviceIDs: []string{"lost-1"}})
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.dropped) == 1
	}, "the first answer is lost")
	waitOffline(t, s, "lost-1")
	o.connect(s, cloudtest.DeviceOptions{Key: key})
	o.reportMethods()
	d = waitState(t, s, d.ID, fleet.DeploymentCompleted)
	_, ms := getDep(t, s, d.ID)
	id := fleet.UpdateID(d.ID, 1)
	if m := ms["lost-1"]; m.Attempts != 1 || m.Status != fleet.DevSucceeded {
		calls, _ := s.Service().ListCalls(ctxT(t), s.Super, fleet.CallFilter{DeviceID: "lost-1"})
		for _, c := range calls {
			t.Logf("call %s %s delivered %v err %+v", c.ID, c.Status, c.DeliveredAt, c.Error)
		}
		t.Fatalf("member %+v, want succeeded at its first attempt", m)
	}
	if o.dropped[0] != id || o.updateCount() != 1 || o.updates[0].ID != id {
		t.Fatalf("dropped %v, then updates %+v; want %s twice", o.dropped, o.updates, id)
	}
	calls, _ := s.Service().ListCalls(ctxT(t), s.Super, fleet.CallFilter{DeviceID: "lost-1"})
	if len(calls) != 2 || calls[1].Error == nil || calls[1].Error.Code != rpcproto.CodeSessionEvicted || calls[0].Status != "succeeded" {
		t.Fatalf("calls (newest first) %+v", calls)
	}
}

// TestDeploymentCreateEventsBound: a create publishes one pending event
// per member up to 200 members (at the bound: 200), and none beyond it
// (201: the deployment's own event carries the counts), so that a
// subscriber is not dropped for a burst.
func TestDeploymentCreateEventsBound(t *testing.T) {
	s := cloudtest.NewServer(t, deployOpts(fleet.DeploymentOptions{Tick: time.Hour}))
	ctx := ctxT(t)
	upload(t, s, "hello", "2.0.0")
	pool := s.Service().Store().Pool()
	if _, err := pool.Exec(ctx, `INSERT INTO devices (id, org_id, status, tags)
		SELECT format('bulk-%s', lpad(i::text, 3, '0')), $1, 'accepted',
			ARRAY[CASE WHEN i < 200 THEN 'two-hundred' ELSE 'extra' END, 'all'] FROM generate_series(0, 200) i`, s.Super.OrgID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO device_keys (device_id, public_key, fingerprint, alg, status)
		SELECT id, '\x00', 'SHA256:' || id, 'ed25519', 'accepted' FROM devices WHERE id LIKE 'bulk-%'`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tag     string
		members int
		events  int
	}{{"two-hundred", 200, 200}, {"all", 201, 0}} {
		events, err := s.Service().Subscribe(ctx, s.Super)
		if err != nil {
			t.Fatal(err)
		}
		d := create(t, s, fleet.DeploymentSpec{Name: "hello", Version: "2.0.0", Tag: c.tag})
		if d.Total != c.members {
			t.Fatalf("tag %s: %d members", c.tag, d.Total)
		}
		pending, sawDeployment := 0, false
		quiet := time.NewTimer(500 * time.Millisecond)
	read:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("the subscriber was dropped")
				}
				var data struct {
					Deployment int64
					Status     string
				}
				json.Unmarshal(ev.Data, &data)
				if ev.Type != fleet.EventDeployment || data.Deployment != d.ID {
					continue
				}
				if ev.DeviceID == "" {
					sawDeployment = true
				} else if data.Status == fleet.DevPending {
					pending++
				}
				quiet.Reset(500 * time.Millisecond)
			case <-quiet.C:
				break read
			}
		}
		if !sawDeployment || pending != c.events {
			t.Fatalf("%d members: deployment event %v, %d pending events; want %d", c.members, sawDeployment, pending, c.events)
		}
	}
}
