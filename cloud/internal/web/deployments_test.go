package web_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

var (
	releasesMu sync.Mutex // guards releases
	releases   = map[*cloudtest.Server]*cloudtest.ReleaseRepo{}
)

// releaseOf is the default organisation's release repository of s, made
// (as bosun release init does) on first use.
func releaseOf(t testing.TB, s *cloudtest.Server) *cloudtest.ReleaseRepo {
	t.Helper()
	releasesMu.Lock()
	defer releasesMu.Unlock()
	if r, ok := releases[s]; ok {
		return r
	}
	r := cloudtest.InitRelease(t, s, s.Actor(t, "release-admin@example.com", fleet.RoleAdmin, ""))
	releases[s] = r
	t.Cleanup(func() {
		releasesMu.Lock()
		delete(releases, s)
		releasesMu.Unlock()
	})
	return r
}

// anArtifact uploads name@version in the default organisation and signs
// it in the organisation's release (devices install only what is signed).
func anArtifact(t testing.TB, s *cloudtest.Server, name, version string, data []byte) fleet.Artifact {
	t.Helper()
	return releaseOf(t, s).UploadSigned(t, name, version, data)
}

func deploymentList(t testing.TB, s *cloudtest.Server) []fleet.Deployment {
	t.Helper()
	list, err := s.Service().ListDeployments(context.Background(), s.Super, fleet.DeploymentFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func deployment(t testing.TB, s *cloudtest.Server, id int64) (fleet.Deployment, []fleet.DeploymentDevice) {
	t.Helper()
	d, devs, err := s.Service().GetDeployment(context.Background(), s.Super, id)
	if err != nil {
		t.Fatal(err)
	}
	return d, devs
}

// idFromLocation reads the deployment id of a /deployments/{id} redirect.
func idFromLocation(t testing.TB, r resp) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscanf(r.Header.Get("Location"), "/deployments/%d", &id); err != nil {
		t.Fatalf("redirected to %q, want /deployments/{id}: status %d\n%.2000s", r.Header.Get("Location"), r.Status, r.Body)
	}
	return id
}

// TestDeploymentFromTheForm: the form preselects the artifact of its link,
// creates the deployment, and the page shows it: state, phases, the
// devices; the list shows its progress; its live fragment is the page's
// live part only; statuses reported by the devices show with the
// download's percent.
func TestDeploymentFromTheForm(t *testing.T) {
	s := cloudtest.NewServer(t)
	anArtifact(t, s, "app", "1.0.0", []byte("old"))
	anArtifact(t, s, "app", "2.0.0", []byte("new bundle"))
	d1 := newOTADevice(t, s, "pi-1", "lab")
	d2 := newOTADevice(t, s, "pi-2", "lab")
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")

	form := b.get("/deployments/new?name=app&version=2.0.0")
	wantStatus(t, form, http.StatusOK)
	mustContain(t, form, `<option value="app@2.0.0" selected>`, `<option value="app@1.0.0">`, `id="deployment-form"`)
	r := b.post("/deployments", url.Values{"artifact": {"app@2.0.0"}, "tag": {"lab"}, "phases": {"50,100"},
		"max_in_flight": {"5"}, "failure_threshold": {"50"}, "max_attempts": {"2"}, "commit_timeout": {"2m"}})
	wantStatus(t, r, http.StatusSeeOther)
	id := idFromLocation(t, r)
	d, _ := deployment(t, s, id)
	if d.Spec.Tag != "lab" || fmt.Sprint(d.Spec.Phases) != "[50 100]" || d.Spec.MaxInFlight != 5 || d.Spec.FailureThreshold != 50 ||
		d.Spec.MaxAttempts != 2 || d.Spec.CommitTimeout != 120 || d.Version != "2.0.0" {
		t.Fatalf("created %+v", d.Spec)
	}
	page := b.get(fmt.Sprintf("/deployments/%d", id))
	wantStatus(t, page, http.StatusOK)
	mustContain(t, page, fmt.Sprintf("Deployment %d of app 2.0.0 created.", id), `id="deployment-state"`, "phase 1 of 2", `id="pause"`, `id="abort"`,
		fmt.Sprintf(`hx-trigger="bosun:deployment:%d from:body, bosun:ota from:body"`, id))

	// The first phase is one of the two devices.
	var first *otaDevice
	var u otaUpdate
	select {
	case u = <-d1.updates:
		first = d1
	case u = <-d2.updates:
		first = d2
	case <-time.After(20 * time.Second):
		t.Fatal("no device got ota.update")
	}
	if !strings.HasSuffix(u.Target, "app/2.0.0") && u.Target != "app/2.0.0" {
		t.Errorf("ota.update target %q", u.Target)
	}
	first.status(t, u, rpcproto.OTADownloading, 42, "")
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		f := b.get(fmt.Sprintf("/deployments/%d", id), htmx(b)...)
		return strings.Contains(f.Body, `data-member="`+first.ID+`" data-status="downloading"`) && strings.Contains(f.Body, `value="42"`)
	}, "the page shows %s downloading at 42%%", first.ID)
	frag := b.get(fmt.Sprintf("/deployments/%d", id), htmx(b)...)
	if strings.Contains(frag.Body, "<html") || !strings.Contains(frag.Body, `id="deployment-head"`) {
		t.Fatalf("the live fragment is not the live part:\n%.1000s", frag.Body)
	}
	list := b.get("/deployments")
	mustContain(t, list, fmt.Sprintf(`data-deployment="%d"`, id), "0 of 2 succeeded", "1 downloading")
}

// TestDeploymentFormRefused: a form the server refuses shows again with
// the values typed and the reason, and creates nothing.
func TestDeploymentFormRefused(t *testing.T) {
	s := cloudtest.NewServer(t)
	anArtifact(t, s, "app", "1.0.0", []byte("bundle"))
	newOTADevice(t, s, "pi-1", "lab")
	op := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	viewer := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	good := url.Values{"artifact": {"app@1.0.0"}, "devices": {"pi-1"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	before := len(deploymentList(t, s))
	for _, c := range []struct {
		name   string
		form   url.Values
		status int
		want   []string
	}{
		{"no artifact", with("artifact", ""), 422, []string{"Choose the artifact version to deploy.", `value="pi-1"`}},
		{"no devices and no tag", with("devices", ""), 422, []string{"Name the devices"}},
		{"phases not numbers", with("phases", "10,x"), 422, []string{"Phases are cumulative percents", `value="10,x"`}},
		{"phases not increasing", with("phases", "50,40"), 422, []string{`value="50,40"`}},
		{"last phase not 100", with("phases", "10,50"), 422, []string{`value="10,50"`}},
		{"max in flight not a number", with("max_in_flight", "many"), 422, []string{"Max in flight must be a whole number"}},
		{"max in flight 0", with("max_in_flight", "0"), 422, []string{"Max in flight must be at least 1"}},
		{"threshold beyond 100", with("failure_threshold", "150"), 422, []string{`value="150"`}},
		{"threshold negative", with("failure_threshold", "-5"), 422, []string{"Failure threshold is a percent from 0 to 100."}},
		{"too many attempts", with("max_attempts", "11"), 422, []string{`value="11"`}},
		{"commit timeout not a duration", with("commit_timeout", "soon"), 422, []string{"Commit timeout is seconds or a duration"}},
		{"commit timeout too long", with("commit_timeout", "100000"), 422, []string{`value="100000"`}},
		{"not before not a time", with("not_before", "tomorrow"), 422, []string{"Not before is a UTC time"}},
		{"unknown artifact", with("artifact", "nosuch@1.0.0"), 422, []string{`class="flash error"`}},
		{"unknown version", with("artifact", "app@9.9.9"), 422, []string{`class="flash error"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			op.get("/deployments/new")
			r := op.post("/deployments", c.form)
			wantStatus(t, r, c.status)
			mustContain(t, r, append([]string{`class="flash error"`, `id="deployment-form"`}, c.want...)...)
			if n := len(deploymentList(t, s)); n != before {
				t.Fatalf("%d deployments after the refusal, want %d", n, before)
			}
		})
	}
	t.Run("viewer", func(t *testing.T) {
		viewer.get("/deployments")
		wantStatus(t, viewer.post("/deployments", with("tag", "")), http.StatusForbidden)
		wantStatus(t, viewer.get("/deployments/new"), http.StatusForbidden)
	})
	t.Run("no CSRF token", func(t *testing.T) {
		f := with("csrf", "")
		wantStatus(t, op.post("/deployments", f), http.StatusForbidden)
		wantStatus(t, op.post("/deployments", with("csrf", otherToken(op.csrf))), http.StatusForbidden)
	})
	if n := len(deploymentList(t, s)); n != before {
		t.Fatalf("%d deployments after the refusals, want %d", n, before)
	}
	op.get("/deployments/new")
	wantStatus(t, op.post("/deployments", with("tag", "")), http.StatusSeeOther)
	if n := len(deploymentList(t, s)); n != before+1 {
		t.Fatalf("%d deployments after a good form, want %d", n, before+1)
	}
}

// TestDeploymentActions: pause, resume and abort from the page; abort asks
// first; a viewer sees no button and may not; another organisation gets
// 404; a missing CSRF token is refused; a refused action (resume while
// running) says why. Nothing changes on any refusal.
func TestDeploymentActions(t *testing.T) {
	s := cloudtest.NewServer(t)
	anArtifact(t, s, "app", "1.0.0", []byte("bundle"))
	newOTADevice(t, s, "pi-1")
	d, err := s.Service().CreateDeployment(context.Background(), s.Super, fleet.DeploymentSpec{Name: "app", Version: "1.0.0",
		DeviceIDs: []string{"pi-1"}})
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf("/deployments/%d", d.ID)
	op := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	viewer := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	other := loggedIn(t, s, "op@b.example", fleet.RoleOperator, "org-b")
	state := func() string {
		dd, _ := deployment(t, s, d.ID)
		return dd.State
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool { return state() == fleet.DeploymentRunning }, "running")
	// Refusals the service sees are audited as errors; only the three
	// actions done are audited ok.
	audits := func() int {
		return count(t, s, `SELECT count(*) FROM audit_log WHERE action LIKE 'deployment.%' AND outcome = 'ok'`)
	}
	a0 := audits()

	v := viewer.get(page)
	wantStatus(t, v, http.StatusOK)
	for _, no := range []string{`id="pause"`, `id="resume"`, `id="abort"`} {
		if strings.Contains(v.Body, no) {
			t.Errorf("the viewer's page has %s", no)
		}
	}
	if strings.Contains(viewer.get("/deployments").Body, `id="new-deployment"`) {
		t.Error("the viewer's list offers New deployment")
	}
	for _, act := range []string{"pause", "resume", "abort"} {
		wantStatus(t, viewer.post(page+"/"+act, url.Values{"confirm": {"yes"}}), http.StatusForbidden)
		other.get("/deployments")
		wantStatus(t, other.post(page+"/"+act, url.Values{"confirm": {"yes"}}), http.StatusNotFound)
		op.get(page)
		wantStatus(t, op.post(page+"/"+act, url.Values{"confirm": {"yes"}, "csrf": {""}}), http.StatusForbidden)
	}
	wantStatus(t, other.get(page), http.StatusNotFound)
	if strings.Contains(other.get("/deployments").Body, fmt.Sprintf(`data-deployment="%d"`, d.ID)) {
		t.Error("another organisation lists the deployment")
	}
	op.get(page)
	r := op.post(page+"/abort", nil)
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "Abort deployment", `id="confirm-abort"`)
	r = op.post(page+"/resume", nil)
	wantStatus(t, r, http.StatusConflict)
	mustContain(t, r, "Nothing was changed: ")
	if st := state(); st != fleet.DeploymentRunning {
		t.Fatalf("after the refusals the deployment is %s", st)
	}
	if n := audits(); n != a0 {
		t.Fatalf("%d deployment audit rows written by refusals", n-a0)
	}

	wantStatus(t, op.post(page+"/pause", nil), http.StatusSeeOther)
	if st := state(); st != fleet.DeploymentPaused {
		t.Fatalf("after pause: %s", st)
	}
	mustContain(t, op.get(page), "Paused:", `id="resume"`)
	wantStatus(t, op.post(page+"/resume", nil), http.StatusSeeOther)
	if st := state(); st != fleet.DeploymentRunning {
		t.Fatalf("after resume: %s", st)
	}
	wantStatus(t, op.post(page+"/abort", url.Values{"confirm": {"yes"}}), http.StatusSeeOther)
	if st := state(); st != fleet.DeploymentAborted {
		t.Fatalf("after abort: %s", st)
	}
	done := op.get(page)
	mustContain(t, done, "Aborted:", `data-state="aborted"`)
	if strings.Contains(done.Body, `id="pause"`) || strings.Contains(done.Body, `id="abort"`) {
		t.Error("an aborted deployment offers pause or abort")
	}
	if n := audits(); n != a0+3 {
		t.Errorf("%d deployment audit rows for pause, resume, abort; want 3", n-a0)
	}
	wantStatus(t, op.get("/deployments/999999"), http.StatusNotFound)
	wantStatus(t, op.get(page+"?status=nope"), http.StatusBadRequest)
}

// TestDeploymentEventsStream: the dashboard's event stream names the
// deployment of each deployment event (the page listens for its own:
// bosun:deployment:<id>).
func TestDeploymentEventsStream(t *testing.T) {
	s := cloudtest.NewServer(t)
	anArtifact(t, s, "app", "1.0.0", []byte("bundle"))
	newOTADevice(t, s, "pi-1")
	b := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/events", nil)
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("stream starts with %q, %v", line, err)
	}
	d, err := s.Service().CreateDeployment(context.Background(), s.Super, fleet.DeploymentSpec{Name: "app", Version: "1.0.0", DeviceIDs: []string{"pi-1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`"deployment":%d`, d.ID)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("no deployment event naming %d in the stream: %v", d.ID, err)
		}
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"type":"deployment"`) {
			if !strings.Contains(line, want) {
				t.Fatalf("deployment event %s lacks %s", line, want)
			}
			return
		}
	}
}

// TestDeploymentPausedByThreshold: a phase whose final failures pass the
// threshold pauses the deployment by itself; the page says why, shows the
// device's reason and offers Resume.
func TestDeploymentPausedByThreshold(t *testing.T) {
	s := cloudtest.NewServer(t)
	anArtifact(t, s, "app", "1.0.0", []byte("bundle"))
	d1 := newOTADevice(t, s, "pi-1")
	newOTADevice(t, s, "pi-2") // still pending behind pi-1: what the pause protects
	d, err := s.Service().CreateDeployment(context.Background(), s.Super, fleet.DeploymentSpec{Name: "app", Version: "1.0.0",
		DeviceIDs: []string{"pi-1", "pi-2"}, MaxAttempts: 1, FailureThreshold: -1, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	u := d1.nextUpdate(t)
	d1.status(t, u, rpcproto.OTAFailed, 0, "unpacking: an entry escapes the slot")
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	page := fmt.Sprintf("/deployments/%d", d.ID)
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(b.get(page).Body, `data-state="paused"`)
	}, "the deployment pauses itself")
	r := b.get(page)
	mustContain(t, r, `id="reason"`, "threshold", "over the threshold", "unpacking: an entry escapes the slot", `id="resume"`,
		"phase 1: 1 of 2 failed (threshold 0%)")
}
