package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser tests of the dashboard's day-to-day work: each drives a real
// Chromium and takes its screenshots at 1280 px and at 390 px (a phone)
// into the artefacts directory (BOSUN_TEST_ARTIFACTS); docs/screenshots
// holds a selection of them.

// logIn logs the browser in.
func logIn(t *testing.T, ctx context.Context, base, email, password string) {
	t.Helper()
	run(t, ctx, "log in as "+email,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.CSS("header.top")),
	)
}

const (
	desktop = 1280
	phone   = 390
)

// shots takes the screenshot name at the desktop width and name-phone at
// 390 px, and leaves the browser at the desktop width. wait runs after the
// switch to the phone width (e.g. to scroll to what the picture shows).
func shots(t *testing.T, ctx context.Context, dir, name string, wait ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	pageShot(t, ctx, dir, name)
	run(t, ctx, "phone width for "+name, append([]chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(phone, 844)}, wait...)...)
	pageShot(t, ctx, dir, name+"-phone")
	run(t, ctx, "desktop width after "+name, chromedp.EmulateViewport(desktop, 900))
}

// maxShotPixels is the largest page pageShot takes whole; of a larger one
// it takes the part in view, so that pictures stay small enough to commit.
const maxShotPixels = 4 << 20

func pageShot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	px := value(t, ctx, "page size", chromedp.Evaluate[int](`document.documentElement.scrollHeight * document.documentElement.scrollWidth`))
	if px <= maxShotPixels {
		shot(t, ctx, dir, name)
		return
	}
	png := value(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// requestLog records the requests a page sends, for asserting what merely
// looking at a page does.
type requestLog struct {
	mu      sync.Mutex    // guards reqs
	reqs    []string      // "METHOD URL"
	markers chan struct{} // a marker request (settle) was sent
}

func listenRequests(t *testing.T, ctx context.Context) *requestLog {
	t.Helper()
	l := &requestLog{markers: make(chan struct{}, 16)}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			l.mu.Lock()
			l.reqs = append(l.reqs, e.Request.Method+" "+e.Request.URL)
			l.mu.Unlock()
			if strings.Contains(e.Request.URL, "?settle=") {
				select {
				case l.markers <- struct{}{}:
				default:
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// settle sends a marker request from the page once htmx has processed it
// and waits until the marker was sent: every request the page makes by
// itself on load was sent before it (the browser reports them in order).
// It returns the requests sent before the marker, and forgets them.
func (l *requestLog) settle(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	marker := fmt.Sprintf("/static/app.js?settle=%d", n)
	run(t, ctx, "page settled",
		chromedp.Poll[chromedp.Void](`window.htmx !== undefined && document.readyState === "complete"`),
		chromedp.Evaluate[chromedp.Void](`fetch("`+marker+`"); undefined`),
	)
	select {
	case <-l.markers:
	case <-time.After(10 * time.Second):
		t.Fatalf("the marker request %s was never sent", marker)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range l.reqs {
		if strings.HasSuffix(r, marker) {
			out := append([]string(nil), l.reqs[:i]...)
			l.reqs = l.reqs[i+1:]
			return out
		}
	}
	t.Fatalf("marker %s not in the log", marker)
	return nil
}

// TestBrowserViewingCallsNothing (issue 9, item 3): opening a device page
// sends no request but the page's own (no htmx request on load), and adds
// no call and no audit row, however often; the methods come from the
// device's announcement; containers load when asked.
func TestBrowserViewingCallsNothing(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "op@example.com", fleet.RoleOperator, "")
	acceptedDemo(t, s, "dev-1")
	logIn(t, ctx, s.URL(), "op@example.com", pw)
	log := listenRequests(t, ctx)
	calls, audit := count(t, s, `SELECT count(*) FROM calls`), count(t, s, `SELECT count(*) FROM audit_log`)
	for i := range 3 {
		run(t, ctx, "open the device page",
			chromedp.Navigate(s.URL()+"/devices/dev-1"),
			chromedp.WaitReady(chromedp.CSS(`select#method option[value="system.info"]`)),
		)
		for _, r := range log.settle(t, ctx, i) {
			if !strings.HasPrefix(r, "GET ") || strings.Contains(r, "/devices/dev-1/") {
				t.Errorf("viewing the page sent %s", r)
			}
		}
	}
	if n := count(t, s, `SELECT count(*) FROM calls`); n != calls {
		t.Errorf("viewing the page 3 times made %d calls", n-calls)
	}
	if n := count(t, s, `SELECT count(*) FROM audit_log`); n != audit {
		t.Errorf("viewing the page 3 times wrote %d audit rows", n-audit)
	}
	run(t, ctx, "list containers on request",
		chromedp.Click(chromedp.ID("list-containers")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-container="bosun-demo"]`)),
	)
	if n := count(t, s, `SELECT count(*) FROM calls`); n != calls+1 {
		t.Errorf("listing containers made %d calls, want 1", n-calls)
	}
}

// slowDevice is an accepted demo device that also serves test.slow, which
// answers when release is closed, and test.strict, which refuses its
// params with a JSON-RPC error carrying data.
func slowDevice(t *testing.T, s *cloudtest.Server, id string) (release func()) {
	t.Helper()
	d := acceptedDemo(t, s, id)
	ch := make(chan struct{})
	d.Handle("test.slow", func(ctx context.Context, p json.RawMessage) (any, error) {
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return map[string]string{"took": "long"}, nil
	})
	d.Handle("test.strict", func(ctx context.Context, p json.RawMessage) (any, error) {
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params",
			map[string]string{"detail": `member "nme" is unknown; the method takes {"name": string}`})
	})
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// TestBrowserConsole (items 10, 11 and 15): a long call shows its elapsed
// time with the Call button disabled and can be abandoned (its outcome
// still reaches the history); a new call clears the previous error; a
// call's whole error, its data too, shows in the console and in the
// history, whose lines open; a call to an offline device can be queued.
func TestBrowserConsole(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "op@example.com", fleet.RoleOperator, "")
	release := slowDevice(t, s, "dev-1")
	t.Cleanup(release)
	offline(t, s, acceptedDemo(t, s, "dev-off"))
	dir := artifacts(t)
	logIn(t, ctx, s.URL(), "op@example.com", pw)

	run(t, ctx, "a bad form shows an error",
		chromedp.Navigate(s.URL()+"/devices/dev-1"),
		chromedp.WaitVisible(chromedp.ID("console")),
		chromedp.WaitVisible(chromedp.CSS("#live.on")),
		chromedp.SetValue(chromedp.ID("params"), "{nope"),
		chromedp.Click(chromedp.ID("call")),
		chromedp.WaitVisible(chromedp.ID("call-error")),
	)
	run(t, ctx, "a long call runs: the error is gone, Call is disabled, the time runs",
		chromedp.SetValue(chromedp.ID("params"), `{"wait": true}`),
		chromedp.SendKeys(chromedp.ID("method-other"), "test.slow"),
		chromedp.Poll[chromedp.Void](`document.getElementById("method").disabled`), // typed in, it replaces the picker
		chromedp.Click(chromedp.ID("call")),
		chromedp.WaitVisible(chromedp.ID("running")),
		chromedp.Poll[chromedp.Void](`document.getElementById("call-error") === null && document.getElementById("call").disabled`),
		chromedp.Poll[chromedp.Void](`parseInt(document.getElementById("elapsed").textContent) >= 2`),
	)
	shots(t, ctx, dir, "console-running", chromedp.WaitVisible(chromedp.ID("elapsed")))
	run(t, ctx, "abandon it",
		chromedp.Click(chromedp.ID("abandon")),
		chromedp.WaitVisible(chromedp.ID("call-abandoned")),
		chromedp.WaitNotVisible(chromedp.ID("running")),
		chromedp.Poll[chromedp.Void](`!document.getElementById("call").disabled`),
	)
	if got := value(t, ctx, "abandoned", chromedp.Text(chromedp.ID("call-abandoned"))); !strings.Contains(got, "The call goes on") {
		t.Fatalf("abandoned: %q", got)
	}
	release()
	run(t, ctx, "its outcome reaches the history live",
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll("#calls li")].some(li => li.textContent.includes("test.slow") && li.querySelector(".badge.succeeded"))`),
	)

	run(t, ctx, "a device's error shows whole, its data too",
		chromedp.SetValue(chromedp.ID("params"), `{"nme": "Ada"}`),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("method-other").value = ""`),
		chromedp.SendKeys(chromedp.ID("method-other"), "test.strict"),
		chromedp.Click(chromedp.ID("call")),
		chromedp.WaitVisible(chromedp.CSS("#call-result .rpc-error")),
	)
	if got := value(t, ctx, "console error", chromedp.Text(chromedp.CSS("#call-result .rpc-error"))); !strings.Contains(got, "error -32602: Invalid params") || !strings.Contains(got, `member \"nme\" is unknown`) {
		t.Fatalf("console error: %q", got)
	}
	line := `#calls details.call:has(code.method)`
	run(t, ctx, "the history line of the call opens to its params and error",
		chromedp.Poll[chromedp.Void](`[...document.querySelectorAll("#calls code.method")].some(c => c.textContent === "test.strict")`),
		chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("#calls details.call")].find(d => d.querySelector("code.method").textContent === "test.strict").querySelector("summary").click()`),
		chromedp.WaitVisible(chromedp.CSS(line+`[open] .rpc-error`)),
	)
	body := value(t, ctx, "history", chromedp.Text(chromedp.CSS(`#calls details.call[open]`)))
	for _, want := range []string{`"nme": "Ada"`, "error -32602: Invalid params", `member \"nme\" is unknown`} {
		if !strings.Contains(body, want) {
			t.Fatalf("the open history line lacks %q:\n%s", want, body)
		}
	}
	run(t, ctx, "scroll to the history", chromedp.ScrollIntoView(chromedp.ID("calls")))
	shots(t, ctx, dir, "call-history", chromedp.WaitVisible(chromedp.CSS(`#calls details.call[open]`)))

	run(t, ctx, "queue a call for an offline device",
		chromedp.Navigate(s.URL()+"/devices/dev-off"),
		chromedp.WaitVisible(chromedp.ID("offline-note")),
		chromedp.SetValue(chromedp.CSS(`select#method`), "system.info"),
		chromedp.SetValue(chromedp.ID("ttl"), "1h"),
		chromedp.Click(chromedp.ID("call")),
		chromedp.WaitVisible(chromedp.CSS(`#call-result .badge.queued`)),
	)
	if got := value(t, ctx, "queued", chromedp.Text(chromedp.ID("call-result"))); !strings.Contains(got, "delivered when the device is back online") {
		t.Fatalf("queued call: %q", got)
	}
	shots(t, ctx, dir, "console-queued", chromedp.WaitVisible(chromedp.ID("call-result")))
}

// TestBrowserTags (item 13): "has space" is one tag, and saving the field
// unchanged keeps the tags.
func TestBrowserTags(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "op@example.com", fleet.RoleOperator, "")
	acceptedDemo(t, s, "dev-1")
	dir := artifacts(t)
	logIn(t, ctx, s.URL(), "op@example.com", pw)
	tagsOf := func() string {
		d, err := s.Service().GetDevice(context.Background(), s.Super, "dev-1")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%q", d.Tags)
	}
	run(t, ctx, "save two tags",
		chromedp.Navigate(s.URL()+"/devices/dev-1"),
		chromedp.WaitVisible(chromedp.ID("tags")),
		chromedp.SetValue(chromedp.ID("tags"), "has space, lab"),
		chromedp.Submit(chromedp.ID("tags")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	const want = `["has space" "lab"]`
	if got := tagsOf(); got != want {
		t.Fatalf("tags %s, want %s", got, want)
	}
	for i := range 2 {
		run(t, ctx, "save again, unchanged",
			chromedp.Submit(chromedp.ID("tags")),
			chromedp.WaitVisible(chromedp.CSS(".flash")),
		)
		if got := tagsOf(); got != want {
			t.Fatalf("after re-save %d the tags are %s, want %s", i+1, got, want)
		}
	}
	if got := value(t, ctx, "tag field", chromedp.Value(chromedp.ID("tags"))); got != "has space, lab" {
		t.Fatalf("the field shows %q", got)
	}
	if got := value(t, ctx, "tag chips", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#tag-chips .tag")].map(e => e.textContent)`)); fmt.Sprintf("%q", got) != want {
		t.Fatalf("the page shows the tags %q, want %s", got, want)
	}
	shots(t, ctx, dir, "tags", chromedp.WaitVisible(chromedp.ID("tags")))
	run(t, ctx, "the list shows two tags",
		chromedp.Navigate(s.URL()+"/devices"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="dev-1"]`)),
	)
	if n := value(t, ctx, "tag chips", chromedp.Evaluate[int](`document.querySelectorAll('tr[data-device="dev-1"] .tag').length`)); n != 2 {
		t.Fatalf("%d tag chips, want 2", n)
	}
}

// TestBrowserBulkAndFanOut (item 10): tick devices and tag them; a
// selection with a device that is gone changes nothing and says why;
// decommission asks, then does it; call every device with a tag and see
// the results stream in with a summary.
func TestBrowserBulkAndFanOut(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "admin@example.com", fleet.RoleAdmin, "")
	acceptedDemo(t, s, "kitchen-pi")
	acceptedDemo(t, s, "garage-pi")
	offline(t, s, acceptedDemo(t, s, "attic-pi"))
	preauthorize(t, s, s.Super, "spare-1", "spare-2", "gone-1")
	dir := artifacts(t)
	logIn(t, ctx, s.URL(), "admin@example.com", pw)
	tick := func(ids ...string) chromedp.Action[chromedp.Void] {
		var as []chromedp.Action[chromedp.Void]
		for _, id := range ids {
			as = append(as, chromedp.Click(chromedp.CSS(`input[name=id][value="`+id+`"]`)))
		}
		return chromedp.Steps(as...)
	}

	run(t, ctx, "tick three devices and add a tag",
		chromedp.Navigate(s.URL()+"/devices"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-device="spare-2"]`)),
		tick("kitchen-pi", "garage-pi", "attic-pi"),
		chromedp.SetValue(chromedp.ID("bulk-tag"), "lab"),
	)
	shots(t, ctx, dir, "devices-bulk", chromedp.WaitVisible(chromedp.ID("bulk")))
	run(t, ctx, "added",
		chromedp.Click(chromedp.ID("bulk-tag-add")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	for _, id := range []string{"kitchen-pi", "garage-pi", "attic-pi"} {
		if got := fmt.Sprint(tagsIn(t, s, id)); got != "[lab]" {
			t.Errorf("%s tags %s", id, got)
		}
	}

	before := bulkState(t, s)
	run(t, ctx, "tick a device that is then deleted",
		tick("spare-1", "gone-1"),
		chromedp.SetValue(chromedp.ID("bulk-tag"), "spare"),
	)
	if _, err := s.Service().Store().Pool().Exec(context.Background(), `DELETE FROM device_keys WHERE device_id = 'gone-1'; DELETE FROM devices WHERE id = 'gone-1'`); err != nil {
		t.Fatal(err)
	}
	before = strings.Replace(before, "gone-1:preauthorized: ", "", 1)
	run(t, ctx, "the whole selection is refused, and why",
		chromedp.Click(chromedp.ID("bulk-tag-add")),
		chromedp.WaitVisible(chromedp.CSS(".flash.error")),
	)
	msg := value(t, ctx, "refusal", chromedp.Text(chromedp.CSS(".flash.error")))
	if msg != `Nothing was changed: there is no device "gone-1" in your organisation.` {
		t.Fatalf("refusal: %q", msg)
	}
	if after := bulkState(t, s); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
	if ticked := value(t, ctx, "kept", chromedp.Evaluate[bool](`document.querySelector('input[name=id][value="spare-1"]').checked`)); !ticked {
		t.Fatal("the selection was lost")
	}
	shots(t, ctx, dir, "devices-bulk-refused", chromedp.WaitVisible(chromedp.CSS(".flash.error")))

	run(t, ctx, "decommission asks first",
		tick("spare-2"), // spare-1 is still ticked
		chromedp.Click(chromedp.ID("bulk-decommission")),
		chromedp.WaitVisible(chromedp.ID("confirm-decommission")),
	)
	if after := bulkState(t, s); after != before {
		t.Fatalf("asking changed the state:\n%s\n%s", before, after)
	}
	shots(t, ctx, dir, "decommission-confirm", chromedp.WaitVisible(chromedp.ID("confirm-decommission")))
	run(t, ctx, "then does it",
		chromedp.Click(chromedp.ID("confirm-decommission")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	for _, id := range []string{"spare-1", "spare-2"} {
		if st := deviceStatus(t, s, id); st != "decommissioned" {
			t.Fatalf("%s is %s", id, st)
		}
	}

	run(t, ctx, "call every device tagged lab",
		chromedp.Click(chromedp.ID("call-by-tag")),
		chromedp.WaitVisible(chromedp.ID("fanout-form")),
		chromedp.SetValue(chromedp.ID("fanout-tag"), "lab"),
		chromedp.SetValue(chromedp.ID("fanout-method"), "system.info"),
		chromedp.Click(chromedp.ID("fanout-call")),
		chromedp.WaitVisible(chromedp.ID("fanout-summary")),
	)
	if got := value(t, ctx, "summary", chromedp.Text(chromedp.ID("fanout-summary"))); got != "3 devices: 2 succeeded, 1 offline." {
		t.Fatalf("summary %q", got)
	}
	if n := value(t, ctx, "results", chromedp.Evaluate[int](`document.querySelectorAll("#fanout-results > li").length`)); n != 3 {
		t.Fatalf("%d results, want 3", n)
	}
	run(t, ctx, "open one result", chromedp.Click(chromedp.CSS(`#fanout-results li[data-device="kitchen-pi"] summary .when`)))
	shots(t, ctx, dir, "fanout", chromedp.WaitVisible(chromedp.ID("fanout-summary")))
	run(t, ctx, "the overview", chromedp.Navigate(s.URL()+"/"), chromedp.WaitVisible(chromedp.ID("activity")))
	shots(t, ctx, dir, "overview", chromedp.WaitVisible(chromedp.ID("activity")))
}

func tagsIn(t *testing.T, s *cloudtest.Server, id string) []string {
	t.Helper()
	d, err := s.Service().GetDevice(context.Background(), s.Super, id)
	if err != nil {
		t.Fatal(err)
	}
	return d.Tags
}

// seedAudit writes n audit rows of calls and tag changes, some with long
// details.
func seedAudit(t *testing.T, s *cloudtest.Server, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		e := store.AuditEntry{OrgID: 1, Actor: "ops@example.com", Action: "call", Target: fmt.Sprintf("pi-%03d", i%40), Outcome: "succeeded",
			Detail: json.RawMessage(fmt.Sprintf(`{"method":"system.info","call_id":"%08x-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}`, i))}
		if i%7 == 0 {
			e.Action, e.Outcome = "device.tags", "ok"
			e.Detail = json.RawMessage(`{"tags":["lab","north wing","kitchen","a-rather-long-tag-name-for-the-test"],"bulk":12}`)
		}
		if err := s.Service().Store().InsertAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowserAuditPages (item 12): the audit log pages to older rows, its
// detail column fits the page, and the overview names the method called.
func TestBrowserAuditPages(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "viewer@example.com", fleet.RoleViewer, "")
	seedAudit(t, s, 250)
	dir := artifacts(t)
	logIn(t, ctx, s.URL(), "viewer@example.com", pw)

	run(t, ctx, "the newest page",
		chromedp.Navigate(s.URL()+"/audit"),
		chromedp.WaitVisible(chromedp.ID("older")),
	)
	first := value(t, ctx, "first row", chromedp.AttributeValue(chromedp.CSS(`#audit tbody tr`), "data-audit")).Value
	rows := value(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#audit tbody tr").length`))
	if rows != 100 {
		t.Fatalf("%d rows on the first page, want 100", rows)
	}
	// The table fits its panel: no part of it is scrolled out of view (its
	// wrapper would scroll sideways) and no detail cell overflows.
	fits := `(() => {
		const t = document.querySelector("#audit"), w = t.closest(".table") || t.parentElement;
		if (t.getBoundingClientRect().right > document.querySelector("main").getBoundingClientRect().right + 1) return "wider than the page";
		if (w.scrollWidth > w.clientWidth + 1) return "scrolls sideways in its panel: " + w.scrollWidth + " > " + w.clientWidth;
		for (const td of t.querySelectorAll("td")) if (td.scrollWidth > td.clientWidth + 1) return "a cell overflows: " + td.textContent.slice(0, 80);
		return "";
	})()`
	if why := value(t, ctx, "the table fits", chromedp.Evaluate[string](fits)); why != "" {
		t.Fatal("the audit table does not fit: " + why)
	}
	shots(t, ctx, dir, "audit", chromedp.WaitVisible(chromedp.ID("audit")))
	run(t, ctx, "older",
		chromedp.Click(chromedp.ID("older")),
		chromedp.WaitVisible(chromedp.ID("newer")),
		chromedp.ScrollIntoView(chromedp.ID("newer")),
	)
	shots(t, ctx, dir, "audit-older", chromedp.ScrollIntoView(chromedp.ID("newer")))
	if got := value(t, ctx, "first row of page 2", chromedp.AttributeValue(chromedp.CSS(`#audit tbody tr`), "data-audit")); got.Value == first {
		t.Fatal("Older shows the same page")
	}
	run(t, ctx, "newer goes back",
		chromedp.Click(chromedp.ID("newer")),
		chromedp.WaitVisible(chromedp.ID("older")),
	)
	if got := value(t, ctx, "first row again", chromedp.AttributeValue(chromedp.CSS(`#audit tbody tr`), "data-audit")); got.Value != first {
		t.Fatalf("Newer shows row %s first, want %s", got.Value, first)
	}
	run(t, ctx, "the overview names the method",
		chromedp.Navigate(s.URL()+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#activity .what code.method`)),
	)
	if got := value(t, ctx, "activity", chromedp.Evaluate[string](`[...document.querySelectorAll("#activity .what")].find(w => w.querySelector("code.method")).textContent.replace(/\s+/g, " ").trim()`)); got != "call system.info pi-009" {
		t.Fatalf("recent activity reads %q", got)
	}

}

// TestBrowserPhoneWidth (item 14): at 390 px no page scrolls sideways
// (document.documentElement.scrollWidth <= 390), with real content on
// each, and the header collapses to one line with a Menu button that
// opens the navigation.
func TestBrowserPhoneWidth(t *testing.T) {
	ctx := newChrome(t)
	s := cloudtest.NewServer(t)
	pw := user(t, s, "admin@example.com", fleet.RoleAdmin, "")
	release := slowDevice(t, s, "kitchen-pi-with-a-rather-long-host-name-0042")
	release()
	long := "kitchen-pi-with-a-rather-long-host-name-0042"
	if err := s.Service().SetTags(context.Background(), s.Super, long, []string{"lab", "north wing"}); err != nil {
		t.Fatal(err)
	}
	demoDevice(t, s, "pending-1") // a pending key
	seedAudit(t, s, 120)
	c, _ := s.Service().Call(context.Background(), s.Super, fleet.CallRequest{DeviceID: long, Method: "test.strict", Params: json.RawMessage(`{"nme":"Ada Lovelace, Countess of Lovelace"}`)})
	s.Service().Call(context.Background(), s.Super, fleet.CallRequest{DeviceID: long, Method: "system.info"})
	if _, _, err := s.Service().CreateTokenForUser(context.Background(), "admin@example.com", "ci-deploy-token-with-a-long-name"); err != nil {
		t.Fatal(err)
	}
	dir := artifacts(t)
	run(t, ctx, "phone", chromedp.EmulateViewport(phone, 844))

	widthOK := func(page string) {
		t.Helper()
		w := value(t, ctx, "scroll width of "+page, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if w > phone {
			wide := value(t, ctx, "widest", chromedp.Evaluate[string](`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 391 && !e.closest(".table")).slice(-3).map(e => e.tagName + "." + e.className + "#" + e.id + " " + Math.round(e.getBoundingClientRect().right)).join(", ")`))
			t.Errorf("%s is %d px wide at %d px (too wide: %s)", page, w, phone, wide)
		}
	}
	run(t, ctx, "the login page", chromedp.Navigate(s.URL()+"/login"), chromedp.WaitVisible(chromedp.ID("email")))
	widthOK("/login")
	logIn(t, ctx, s.URL(), "admin@example.com", pw)

	dev := "/devices/" + url.PathEscape(long)
	for _, p := range []struct {
		path string
		wait chromedp.Action[chromedp.Void]
		do   chromedp.Action[chromedp.Void]
	}{
		{"/", chromedp.WaitVisible(chromedp.ID("summary")), nil},
		{"/devices", chromedp.WaitVisible(chromedp.ID("devices-form")), nil},
		{"/pending", chromedp.WaitVisible(chromedp.CSS(`tr[data-device="pending-1"]`)), nil},
		{dev, chromedp.WaitVisible(chromedp.ID("console")), chromedp.Steps(
			chromedp.Click(chromedp.ID("list-containers")),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-container="bosun-demo"]`)),
			chromedp.Click(chromedp.CSS(`#methods summary`)),
			chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("#calls details.call").forEach(d => d.open = true)`),
			chromedp.SetValue(chromedp.CSS(`select#method`), "system.info"),
			chromedp.Click(chromedp.ID("call")),
			chromedp.WaitVisible(chromedp.ID("call-result")),
		)},
		{dev + "/logs?container=bosun-demo", chromedp.WaitVisible(chromedp.ID("logs-form")), chromedp.Steps(
			chromedp.Click(chromedp.ID("refresh-logs")),
			chromedp.WaitVisible(chromedp.ID("log-lines")),
		)},
		{"/calls/" + c.ID, chromedp.WaitVisible(chromedp.CSS(`#call .rpc-error`)), nil},
		{"/fanout?tag=lab", chromedp.WaitVisible(chromedp.ID("fanout-form")), chromedp.Steps(
			chromedp.SetValue(chromedp.ID("fanout-method"), "system.info"),
			chromedp.Click(chromedp.ID("fanout-call")),
			chromedp.WaitVisible(chromedp.ID("fanout-summary")),
			chromedp.Click(chromedp.CSS(`#fanout-results summary .when`)),
		)},
		{"/audit", chromedp.WaitVisible(chromedp.ID("audit")), nil},
		{"/users", chromedp.WaitVisible(chromedp.CSS("main table")), nil},
		{"/tokens", chromedp.WaitVisible(chromedp.CSS("main")), nil},
		{"/account", chromedp.WaitVisible(chromedp.CSS("main form")), nil},
	} {
		run(t, ctx, "open "+p.path, chromedp.Navigate(s.URL()+p.path), p.wait)
		widthOK(p.path)
		if p.do != nil {
			run(t, ctx, "use "+p.path, p.do)
			widthOK(p.path + " (used)")
		}
		name := strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(strings.Trim(p.path, "/"))
		if strings.HasPrefix(p.path, dev) {
			name = strings.Replace(name, url.PathEscape(long), "device", 1)
		}
		if strings.HasPrefix(p.path, "/calls/") {
			name = "call"
		}
		if name == "" {
			name = "overview"
		}
		pageShot(t, ctx, dir, name+"-phone")
	}
	run(t, ctx, "decommission confirmation",
		chromedp.Navigate(s.URL()+"/devices"),
		chromedp.WaitVisible(chromedp.ID("devices-form")),
		chromedp.Click(chromedp.CSS(`input[name=id][value="pending-1"]`)),
		chromedp.Click(chromedp.ID("bulk-decommission")),
		chromedp.WaitVisible(chromedp.ID("confirm-decommission")),
	)
	widthOK("decommission confirmation")

	// The header: one line, the navigation behind Menu.
	run(t, ctx, "the header is collapsed",
		chromedp.Navigate(s.URL()+"/devices"),
		chromedp.WaitVisible(chromedp.ID("menu")),
		chromedp.WaitNotVisible(chromedp.ID("nav")),
		chromedp.WaitNotVisible(chromedp.ID("logout")),
	)
	if h := value(t, ctx, "header height", chromedp.Evaluate[float64](`document.querySelector("header.top").getBoundingClientRect().height`)); h > 56 {
		t.Errorf("the collapsed header is %.0f px high", h)
	}
	run(t, ctx, "Menu opens it",
		chromedp.Click(chromedp.ID("menu")),
		chromedp.WaitVisible(chromedp.ID("nav")),
		chromedp.WaitVisible(chromedp.ID("logout")),
	)
	widthOK("/devices with the menu open")
	shot(t, ctx, dir, "menu-phone")
	run(t, ctx, "and closes it",
		chromedp.Click(chromedp.ID("menu")),
		chromedp.WaitNotVisible(chromedp.ID("nav")),
	)
	run(t, ctx, "desktop", chromedp.EmulateViewport(desktop, 900), chromedp.WaitVisible(chromedp.ID("nav")))
	if vis := value(t, ctx, "menu at desktop width", chromedp.Evaluate[bool](`getComputedStyle(document.getElementById("menu")).display !== "none"`)); vis {
		t.Error("the Menu button shows at 1280 px")
	}
}
