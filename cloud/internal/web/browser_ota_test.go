package web_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/release"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/chromedp/chromedp"
)

// updatesOf waits until n of devs received an ota.update, and returns
// them by device.
func updatesOf(t *testing.T, n int, devs ...*otaDevice) map[*otaDevice]otaUpdate {
	t.Helper()
	got := map[*otaDevice]otaUpdate{}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(got) < n {
		for _, d := range devs {
			select {
			case u := <-d.updates:
				got[d] = u
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d devices got ota.update in 30s", len(got), n)
		}
		<-tick.C
	}
	return got
}

// download fetches an update's URL as the device's worker would, and
// checks it serves the artifact. The test cloud has no public URL, so the
// URL is a path on it.
func download(t *testing.T, s *cloudtest.Server, u otaUpdate, want []byte) {
	t.Helper()
	if strings.HasPrefix(u.URL, "/") {
		u.URL = s.URL() + u.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("downloading %s: %v", u.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || string(b) != string(want) {
		t.Fatalf("download of %s: status %d, %d bytes; want 200 with the artifact", u.URL, res.StatusCode, len(b))
	}
}

// TestBrowserDeployment (issue 10, item 7): upload a bundle from the
// artifacts page with the targets.json that signs it, deploy it from the
// form to the devices tagged lab in two phases, watch the devices'
// statuses and download progress change on the deployment page without a
// reload, pause, resume, and see it complete;
// the artifacts page then shows the fleet on the new version. One device
// fails its first attempt: its reason shows, and it is tried again (after
// a retry backoff of 8s here). Screenshots at 1280 px and 390 px
// (deployment: mid-rollout; artifacts: the fleet breakdown).
func TestBrowserDeployment(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) { c.Deployments.RetryBackoff = 8 * time.Second }))
	pw := user(t, s, "ops@example.com", fleet.RoleOperator, "")
	anArtifact(t, s, "hello-worker", "1.0.0", []byte("hello-worker 1.0.0"))
	var devs []*otaDevice
	for _, id := range []string{"attic-pi", "barn-pi", "garage-pi", "kitchen-pi", "porch-pi", "shed-pi"} {
		devs = append(devs, newOTADevice(t, s, id, "lab"))
	}
	newOTADevice(t, s, "spare-pi") // not tagged: it stays on no version of hello-worker
	dir := artifacts(t)
	bundle := []byte(strings.Repeat("hello-worker 2.0.0 bundle\n", 4000))
	file := filepath.Join(t.TempDir(), "hello-worker-2.0.0.tar.gz")
	if err := os.WriteFile(file, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	// Signed on the operator's machine (bosun release sign), uploaded with it.
	signed, err := release.SignTarget(releaseOf(t, s).Dir, "hello-worker", "2.0.0", file, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	targets := filepath.Join(t.TempDir(), "targets.json")
	if err := os.WriteFile(targets, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	logIn(t, ctx, s.URL(), "ops@example.com", pw)

	run(t, ctx, "upload 2.0.0 from the artifacts page",
		chromedp.Navigate(s.URL()+"/artifacts"),
		chromedp.WaitVisible(chromedp.ID("upload-form")),
		chromedp.SendKeys(chromedp.ID("upload-name"), "hello-worker"),
		chromedp.SendKeys(chromedp.ID("upload-version"), "2.0.0"),
		chromedp.SetUploadFiles(chromedp.ID("upload-targets"), []string{targets}),
		chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{file}),
		chromedp.Click(chromedp.ID("upload-submit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-version="2.0.0"] .badge.succeeded`)),
	)
	if got := value(t, ctx, "flash", chromedp.Text(chromedp.CSS(".flash"))); !strings.Contains(got, "Uploaded hello-worker 2.0.0") || !strings.Contains(got, "published its signature") {
		t.Fatalf("flash %q", got)
	}
	run(t, ctx, "a version that exists is refused, the form keeps its values",
		chromedp.SendKeys(chromedp.ID("upload-name"), "hello-worker"),
		chromedp.SendKeys(chromedp.ID("upload-version"), "2.0.0"),
		chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{file}),
		chromedp.Click(chromedp.ID("upload-submit")),
		chromedp.WaitVisible(chromedp.CSS(".flash.error")),
	)
	if got := value(t, ctx, "refusal", chromedp.Text(chromedp.CSS(".flash.error"))); !strings.Contains(got, "exists already") {
		t.Fatalf("refusal %q", got)
	}
	if got := value(t, ctx, "kept", chromedp.Value(chromedp.ID("upload-version"))); got != "2.0.0" {
		t.Fatalf("the version field shows %q", got)
	}

	run(t, ctx, "Deploy… opens the form with the artifact chosen",
		chromedp.Click(chromedp.CSS(`tr[data-version="2.0.0"] a.button`)),
		chromedp.WaitVisible(chromedp.ID("deployment-form")),
	)
	if got := value(t, ctx, "artifact", chromedp.Value(chromedp.ID("artifact"))); got != "hello-worker@2.0.0" {
		t.Fatalf("the form chose %q", got)
	}
	run(t, ctx, "a bad phase list is refused with the values kept",
		chromedp.SendKeys(chromedp.ID("tag"), "lab"),
		chromedp.SendKeys(chromedp.ID("phases"), "50,x"),
		chromedp.Click(chromedp.ID("create-deployment")),
		chromedp.WaitVisible(chromedp.CSS(".flash.error")),
	)
	if got := value(t, ctx, "tag kept", chromedp.Value(chromedp.ID("tag"))); got != "lab" {
		t.Fatalf("the tag field shows %q", got)
	}
	if n := len(deploymentList(t, s)); n != 0 {
		t.Fatalf("a refused form created %d deployments", n)
	}
	run(t, ctx, "create: two phases, three at a time",
		chromedp.SetValue(chromedp.ID("phases"), "50,100"),
		chromedp.SetValue(chromedp.ID("max-in-flight"), "3"),
		chromedp.Click(chromedp.ID("create-deployment")),
		chromedp.WaitVisible(chromedp.ID("deployment-head")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")),
		chromedp.Evaluate[chromedp.Void](`window.bosunNoReload = true`),
	)
	noReload := func(step string) {
		t.Helper()
		if !value(t, ctx, "no reload", chromedp.Evaluate[bool](`window.bosunNoReload === true`)) {
			t.Fatalf("%s: the page reloaded", step)
		}
	}
	member := func(id, status string) chromedp.Action[chromedp.Void] {
		return chromedp.WaitVisible(chromedp.CSS(`tr[data-member="` + id + `"][data-status="` + status + `"]`))
	}

	first := updatesOf(t, 3, devs...)
	var ab []*otaDevice // phase 1, by id
	for _, d := range devs {
		if _, ok := first[d]; ok {
			ab = append(ab, d)
		}
	}
	a, b, c := ab[0], ab[1], ab[2]
	download(t, s, first[a], bundle)
	a.status(t, first[a], rpcproto.OTADownloading, 30, "")
	run(t, ctx, a.ID+" downloading 30% shows live",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="`+a.ID+`"][data-status="downloading"] progress[value="30"]`)))
	b.status(t, first[b], rpcproto.OTADownloading, 70, "")
	run(t, ctx, b.ID+" downloading 70% shows live",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="`+b.ID+`"][data-status="downloading"] progress[value="70"]`)))
	const why = "verifying: the bundle's sha256 is not the one the release signed"
	c.status(t, first[c], rpcproto.OTAFailed, 0, why)
	run(t, ctx, c.ID+"'s failed attempt shows its reason, and it waits to be tried again",
		chromedp.WaitVisible(chromedp.CSS(`tr[data-member="`+c.ID+`"][data-status="pending"] td.reason`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('tr[data-member="`+c.ID+`"] td.reason').textContent.includes("attempt 1 failed")`))
	a.succeed(t, first[a])
	run(t, ctx, a.ID+" succeeded, the bar moves", member(a.ID, "succeeded"),
		chromedp.Poll[chromedp.Void](`document.getElementById("progress-label").textContent === "1 of 6 succeeded"`))
	noReload("progress")
	shots(t, ctx, dir, "deployment", chromedp.WaitVisible(chromedp.ID("deployment-head")))
	phoneFits(t, ctx, "the deployment page")

	run(t, ctx, "pause", chromedp.Click(chromedp.ID("pause")), chromedp.WaitVisible(chromedp.ID("resume")))
	if got := value(t, ctx, "state", chromedp.AttributeValue(chromedp.ID("deployment-state"), "data-state")); got.Value != fleet.DeploymentPaused {
		t.Fatalf("state %q after pause", got.Value)
	}
	run(t, ctx, "watch again", chromedp.WaitVisible(chromedp.CSS("#live.on")), chromedp.Evaluate[chromedp.Void](`window.bosunNoReload = true`))
	b.succeed(t, first[b])
	run(t, ctx, b.ID+" finishes while paused", member(b.ID, "succeeded"))
	for _, d := range devs {
		if _, sent := first[d]; sent {
			continue
		}
		select {
		case u := <-d.updates:
			t.Fatalf("%s got %s while the deployment is paused", d.ID, u.ID)
		default:
		}
	}
	run(t, ctx, "resume", chromedp.Click(chromedp.ID("resume")), chromedp.WaitVisible(chromedp.ID("pause")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")), chromedp.Evaluate[chromedp.Void](`window.bosunNoReload = true`))
	// c is tried again (after its backoff) and succeeds: phase 1 is done.
	var retry otaUpdate
	select {
	case retry = <-c.updates:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s was not tried again", c.ID)
	}
	if retry.ID == first[c].ID {
		t.Fatalf("the second attempt has the first's id %s", retry.ID)
	}
	c.succeed(t, retry)
	run(t, ctx, c.ID+" succeeded on its second attempt", member(c.ID, "succeeded"))
	var rest []*otaDevice
	for _, d := range devs {
		if _, sent := first[d]; !sent {
			rest = append(rest, d)
		}
	}
	second := updatesOf(t, 3, rest...)
	for d, u := range second {
		d.succeed(t, u)
	}
	run(t, ctx, "it completes, live",
		chromedp.WaitVisible(chromedp.CSS(`#deployment-state[data-state="completed"]`)),
		chromedp.Poll[chromedp.Void](`document.getElementById("progress-label").textContent === "6 of 6 succeeded"`))
	noReload("completion")
	if d := deploymentList(t, s)[0]; d.State != fleet.DeploymentCompleted || d.Counts[fleet.DevSucceeded] != 6 {
		t.Fatalf("deployment %+v", d)
	}
	shots(t, ctx, dir, "deployment-completed", chromedp.WaitVisible(chromedp.ID("deployment-head")))

	run(t, ctx, "the list", chromedp.Click(chromedp.CSS(`a[href="/deployments"]`)), chromedp.WaitVisible(chromedp.ID("deployments")))
	phoneFits(t, ctx, "the deployments list")
	shots(t, ctx, dir, "deployments", chromedp.WaitVisible(chromedp.ID("deployments")))
	run(t, ctx, "the artifacts page shows the fleet on 2.0.0",
		chromedp.Navigate(s.URL()+"/artifacts"),
		chromedp.WaitVisible(chromedp.CSS(`[data-breakdown="hello-worker"]`)),
	)
	got := value(t, ctx, "breakdown", chromedp.Text(chromedp.CSS(`[data-breakdown="hello-worker"]`)))
	if !strings.Contains(got, "2.0.0") || !strings.Contains(got, "6 devices") {
		t.Fatalf("breakdown %q", got)
	}
	phoneFits(t, ctx, "the artifacts page")
	shots(t, ctx, dir, "artifacts", chromedp.WaitVisible(chromedp.ID("upload")))
	t.Logf("screenshots in %s", dir)
}

// phoneFits checks that the page does not scroll sideways at 390 px.
func phoneFits(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	run(t, ctx, "phone width for "+page, chromedp.EmulateViewport(phone, 844))
	w := value(t, ctx, "scroll width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if w > phone {
		wide := value(t, ctx, "widest", chromedp.Evaluate[string](`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 391).slice(-3).map(e => e.tagName + "." + e.className + "#" + e.id + " " + Math.round(e.getBoundingClientRect().right)).join(", ")`))
		t.Errorf("%s is %d px wide at %d px (too wide: %s)", page, w, phone, wide)
	}
	run(t, ctx, "desktop width after "+page, chromedp.EmulateViewport(desktop, 900))
}
