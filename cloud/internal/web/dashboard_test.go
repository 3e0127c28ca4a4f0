package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
)

// acceptedDemo connects demoDevice id, accepts it and lets it announce its
// methods.
func acceptedDemo(t testing.TB, s *cloudtest.Server, id string) *cloudtest.Device {
	t.Helper()
	d := demoDevice(t, s, id)
	if err := s.Service().Accept(context.Background(), s.Super, id); err != nil {
		t.Fatal(err)
	}
	announce(t, d)
	return d
}

// offline closes a device's session and waits until the cloud says so.
func offline(t testing.TB, s *cloudtest.Server, d *cloudtest.Device) {
	t.Helper()
	d.Close()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		dev, err := s.Service().GetDevice(context.Background(), s.Super, d.ID)
		return err == nil && !dev.Online
	}, "%s offline", d.ID)
}

// preauthorize makes devices with a preauthorized key in org ("" the
// default).
func preauthorize(t testing.TB, s *cloudtest.Server, a fleet.Actor, ids ...string) {
	t.Helper()
	for _, id := range ids {
		der, _ := keys.PublicDER(cloudtest.NewKey().Public())
		if err := s.Service().Preauthorize(context.Background(), a, id, der); err != nil {
			t.Fatalf("preauthorize %s: %v", id, err)
		}
	}
}

func htmx(b *browser) []string { return []string{"HX-Request", "true", "X-CSRF-Token", b.csrf} }

var loadTriggerRE = regexp.MustCompile(`hx-trigger="[^"]*\bload\b`)

// TestDevicePageViewCallsNothing: looking at a device page, and the parts
// it refreshes live, makes no call and writes no audit row; the method
// picker lists what the device announced in its state.report, and
// nothing on the page asks the device for anything on load.
func TestDevicePageViewCallsNothing(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	acceptedDemo(t, s, "dev-1")
	calls, audit := count(t, s, `SELECT count(*) FROM calls`), count(t, s, `SELECT count(*) FROM audit_log`)
	for range 5 {
		r := b.get("/devices/dev-1")
		wantStatus(t, r, http.StatusOK)
		mustContain(t, r, `<select name="method" id="method">`, `<option value="system.info"`, `title="Host facts"`,
			"The 4 methods the device announced", "Container logs")
		if m := loadTriggerRE.FindString(r.Body); m != "" {
			t.Fatalf("the device page fetches something on load: %s", m)
		}
		wantStatus(t, b.get("/devices/dev-1?part=head", htmx(b)...), http.StatusOK)
		wantStatus(t, b.get("/devices/dev-1?part=calls", htmx(b)...), http.StatusOK)
	}
	if n := count(t, s, `SELECT count(*) FROM calls`); n != calls {
		t.Errorf("viewing the page made %d calls", n-calls)
	}
	if n := count(t, s, `SELECT count(*) FROM audit_log`); n != audit {
		t.Errorf("viewing the page wrote %d audit rows", n-audit)
	}
	// A device that announced nothing gets a text field, still no call.
	d2 := demoDevice(t, s, "dev-2")
	s.Service().Accept(context.Background(), s.Super, "dev-2")
	<-d2.Accepted()
	r := b.get("/devices/dev-2")
	mustContain(t, r, `<input type="text" name="method" id="method"`, "The device has announced no methods")
	// Containers are listed when asked: one call.
	r = b.post("/devices/dev-1/containers", nil, htmx(b)...)
	mustContain(t, r, "bosun-demo")
	if n := count(t, s, `SELECT count(*) FROM calls WHERE method = 'containers.list'`); n != 1 {
		t.Errorf("%d containers.list calls, want 1", n)
	}
}

// TestConsoleQueuesForAnOfflineDevice: with "Queue for", a call to an
// offline device waits queued until then; a bad duration is refused and
// calls nothing.
func TestConsoleQueuesForAnOfflineDevice(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	d := acceptedDemo(t, s, "dev-1")
	offline(t, s, d)
	mustContain(t, b.get("/devices/dev-1"), `id="offline-note"`)

	r := b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}, "ttl": {"1h"}}, htmx(b)...)
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "queued", "Queued: it is delivered when the device is back online", "in 59m")
	var status string
	var expires time.Time
	if err := s.Service().Store().Pool().QueryRow(context.Background(),
		`SELECT status, expires_at FROM calls WHERE device_id = 'dev-1' ORDER BY created_at DESC LIMIT 1`).Scan(&status, &expires); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(expires); status != "queued" || left < 58*time.Minute || left > time.Hour {
		t.Fatalf("the call is %s, expiring in %s", status, left)
	}
	// At the bound (30 days) it queues; beyond, and nonsense, are refused.
	wantStatus(t, b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}, "ttl": {"720h"}}, htmx(b)...), http.StatusOK)
	n := count(t, s, `SELECT count(*) FROM calls`)
	for _, ttl := range []string{"721h", "forever", "-1m", "0s"} {
		r := b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}, "ttl": {ttl}}, htmx(b)...)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		mustContain(t, r, "Queue for is a duration such as 30m, 1h or 24h, at most 720h.")
	}
	if m := count(t, s, `SELECT count(*) FROM calls`); m != n {
		t.Fatalf("refused forms made %d calls", m-n)
	}
	// Without a queue time an offline device fails at once.
	r = b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}}, htmx(b)...)
	mustContain(t, r, "failed", "error -32000")
}

// TestCallsShowTheWholeError: the console, the history, the call's page
// and the logs viewer show a device's error with its JSON-RPC data, as the
// CLI does; the params of every call in the history too.
func TestCallsShowTheWholeError(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	d := acceptedDemo(t, s, "dev-1")
	strict := func(ctx context.Context, p json.RawMessage) (any, error) {
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "Invalid params", map[string]string{"detail": "member nme is unknown (did you mean name?)"})
	}
	d.Handle("test.strict", strict)
	d.Handle("containers.logs", strict)

	r := b.post("/devices/dev-1/call", url.Values{"method_other": {"test.strict"}, "params": {`{"nme": "Ada"}`}}, htmx(b)...)
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "error -32602: Invalid params", "member nme is unknown (did you mean name?)", "&#34;nme&#34;: &#34;Ada&#34;")

	page := b.get("/devices/dev-1")
	mustContain(t, page, `<details class="call" data-call=`, "test.strict", "-32602 Invalid params",
		"member nme is unknown (did you mean name?)", "&#34;nme&#34;: &#34;Ada&#34;")
	var id string
	if err := s.Service().Store().Pool().QueryRow(context.Background(), `SELECT id::text FROM calls WHERE method = 'test.strict'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	r = b.get("/calls/" + id)
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "error -32602: Invalid params", "member nme is unknown", "&#34;nme&#34;: &#34;Ada&#34;", "dev-1")

	r = b.post("/devices/dev-1/logs", url.Values{"container": {"c1"}, "tail": {"10"}})
	mustContain(t, r, "error -32602: Invalid params", "member nme is unknown (did you mean name?)")

	// Another organisation cannot read the call.
	other := loggedIn(t, s, "op@b.example", fleet.RoleOperator, "org-b")
	wantStatus(t, other.get("/calls/"+id), http.StatusNotFound)
	wantStatus(t, b.get("/calls/not-a-call"), http.StatusNotFound)
}

// TestOverviewNamesTheMethod: recent activity says which method a call
// called, and the audit log shows the detail as pairs.
func TestOverviewNamesTheMethod(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	acceptedDemo(t, s, "dev-1")
	wantStatus(t, b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}}, htmx(b)...), http.StatusOK)
	mustContain(t, b.get("/"), `<code>call</code> <code class="method">system.info</code> <span class="target">dev-1</span>`)
	mustContain(t, b.get("/audit?action=call"), `<span class="k">method</span> <span class="v">system.info</span>`)
}

// TestTagsResavedUnchanged: the tag field shows a device's tags by the one
// rule, so saving it unchanged changes nothing ("has space" stays one
// tag); a tag against the rule is refused and changes nothing.
func TestTagsResavedUnchanged(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	preauthorize(t, s, s.Super, "dev-1")
	tagsOf := func() []string {
		d, err := s.Service().GetDevice(context.Background(), s.Super, "dev-1")
		if err != nil {
			t.Fatal(err)
		}
		return d.Tags
	}
	wantStatus(t, b.post("/devices/dev-1/tags", url.Values{"tags": {" has space, lab ,, "}}), http.StatusSeeOther)
	want := []string{"has space", "lab"}
	if got := tagsOf(); !slices.Equal(got, want) {
		t.Fatalf("tags %q, want %q", got, want)
	}
	field := regexp.MustCompile(`name="tags" value="([^"]*)"`)
	for i := range 3 {
		m := field.FindStringSubmatch(b.get("/devices/dev-1").Body)
		if m == nil {
			t.Fatal("no tag field")
		}
		wantStatus(t, b.post("/devices/dev-1/tags", url.Values{"tags": {html.UnescapeString(m[1])}}), http.StatusSeeOther)
		if got := tagsOf(); !slices.Equal(got, want) {
			t.Fatalf("after re-save %d: tags %q, want %q", i+1, got, want)
		}
	}
	r := b.post("/devices/dev-1/tags", url.Values{"tags": {"lab, " + strings.Repeat("t", 65)}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	mustContain(t, r, "a tag has 1 to 64 characters")
	if got := tagsOf(); !slices.Equal(got, want) {
		t.Fatalf("a refused save changed the tags to %q", got)
	}
}

var deviceItemRE = regexp.MustCompile(`<li data-device="([^"]+)">`)

// TestFanOutStreams: calling every device with a tag shows each device's
// result as it arrives (the page streams), then a summary; devices without
// the tag are not called; a tag no device has, or a bad form, calls
// nothing and says why.
func TestFanOutStreams(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := context.Background()
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	acceptedDemo(t, s, "f1")
	slow := acceptedDemo(t, s, "f2")
	release := make(chan struct{})
	slow.Handle("system.info", func(ctx context.Context, p json.RawMessage) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return map[string]string{"hostname": "slow-host"}, nil
	})
	offline(t, s, acceptedDemo(t, s, "f3"))
	acceptedDemo(t, s, "f4")
	for _, id := range []string{"f1", "f2", "f3"} {
		if err := s.Service().SetTags(ctx, s.Super, id, []string{"lab"}); err != nil {
			t.Fatal(err)
		}
	}
	mustContain(t, b.get("/fanout?tag=lab"), `name="tag" id="fanout-tag" value="lab"`, `<option value="lab">`)

	form := url.Values{"tag": {"lab"}, "method": {"system.info"}, "timeout": {"20"}, "csrf": {b.csrf}}
	req, _ := http.NewRequest(http.MethodPost, b.base+"/fanout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	// f1 and f3 (offline) answer before f2 is let go: they must arrive
	// while the page is still open.
	rd := bufio.NewReader(res.Body)
	var seen []string
	var page strings.Builder
	for !slices.Contains(seen, "f1") || !slices.Contains(seen, "f3") {
		line, err := rd.ReadString('>')
		page.WriteString(line)
		if err != nil {
			t.Fatalf("the page ended before f1 and f3 were shown (%v):\n%s", err, page.String())
		}
		if m := deviceItemRE.FindStringSubmatch(page.String()); m != nil && !slices.Contains(seen, m[1]) {
			seen = append(seen, m[1])
			page.Reset()
		}
	}
	if slices.Contains(seen, "f2") {
		t.Fatal("f2 shown before it answered")
	}
	close(release)
	rest, _ := io.ReadAll(rd)
	body := string(rest)
	if !strings.Contains(body, `<li data-device="f2">`) || !strings.Contains(body, "slow-host") {
		t.Fatalf("f2 missing from the rest of the page:\n%s", body)
	}
	if !strings.Contains(body, `<b>3 devices: 2 succeeded, 1 offline.</b>`) {
		t.Fatalf("no summary:\n%s", body)
	}
	if n := count(t, s, `SELECT count(*) FROM calls WHERE device_id = 'f4'`); n != 0 {
		t.Fatalf("f4 (not tagged) got %d calls", n)
	}
	if n := count(t, s, `SELECT count(*) FROM audit_log WHERE action = 'call' AND detail->>'fan_out' = 'true'`); n != 3 {
		t.Fatalf("%d fan-out audit rows, want 3", n)
	}

	calls := count(t, s, `SELECT count(*) FROM calls`)
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no device has the tag", url.Values{"tag": {"nosuchtag"}, "method": {"system.info"}}, `No device has the tag &#34;nosuchtag&#34;: nothing was called.`},
		{"not a tag", url.Values{"tag": {"a,b"}, "method": {"system.info"}}, "is not a tag"},
		{"bad method", url.Values{"tag": {"lab"}, "method": {"bad method!"}}, "A method is dot-separated words"},
		{"bad params", url.Values{"tag": {"lab"}, "method": {"system.info"}, "params": {"{nope"}}, "not valid JSON"},
		{"timeout past the bound", url.Values{"tag": {"lab"}, "method": {"system.info"}, "timeout": {"301"}}, "from 1 to 300"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.post("/fanout", tc.form)
			wantStatus(t, r, http.StatusUnprocessableEntity)
			mustContain(t, r, `id="fanout-error"`, tc.want)
			if n := count(t, s, `SELECT count(*) FROM calls`); n != calls {
				t.Fatalf("%d calls made", n-calls)
			}
		})
	}
}

// bulkState is every device's status and tags and the audit log's size.
func bulkState(t testing.TB, s *cloudtest.Server) string {
	t.Helper()
	var devs string
	err := s.Service().Store().Pool().QueryRow(context.Background(), `SELECT
		coalesce(string_agg(id || ':' || status || ':' || array_to_string(tags, '|'), ' ' ORDER BY id), '') FROM devices`).Scan(&devs)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s audit=%d", devs, count(t, s, `SELECT count(*) FROM audit_log`))
}

// TestBulkActions: ticking devices on the list tags, untags and (admins,
// after a confirmation) decommissions all of them; a selection with one
// device that may not be changed changes nothing and says which and why,
// keeping the selection.
func TestBulkActions(t *testing.T) {
	s := cloudtest.NewServer(t)
	op := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	admin := loggedIn(t, s, "admin@example.com", fleet.RoleAdmin, "")
	preauthorize(t, s, s.Super, "a1", "a2", "a3")
	preauthorize(t, s, s.Actor(t, "admin@b.example", fleet.RoleAdmin, "org-b"), "b1")

	r := op.get("/devices")
	mustContain(t, r, `<input type="checkbox" name="id" value="a1"`, `id="bulk-tag-add"`, `id="call-by-tag"`)
	if strings.Contains(r.Body, `id="bulk-decommission"`) {
		t.Error("an operator is offered decommission")
	}
	mustContain(t, admin.get("/devices"), `id="bulk-decommission"`)
	if r := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "").get("/devices"); strings.Contains(r.Body, `name="id"`) {
		t.Error("a viewer gets checkboxes")
	}

	r = op.post("/devices?status=preauthorized", url.Values{"act": {"tag-add"}, "bulk_tag": {"has space"}, "id": {"a1", "a2"}})
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "/devices?status=preauthorized" {
		t.Errorf("back to %q, not the list as filtered", loc)
	}
	mustContain(t, op.get("/devices"), `Added the tag &#34;has space&#34; to 2 devices (a1, a2).`)
	if st := bulkState(t, s); !strings.Contains(st, "a1:preauthorized:has space a2:preauthorized:has space a3:preauthorized: ") {
		t.Fatalf("state %s", st)
	}
	wantStatus(t, op.post("/devices", url.Values{"act": {"tag-remove"}, "bulk_tag": {"has space"}, "id": {"a2"}}), http.StatusSeeOther)
	if st := bulkState(t, s); !strings.Contains(st, "a1:preauthorized:has space a2:preauthorized: ") {
		t.Fatalf("state %s", st)
	}

	for _, tc := range []struct {
		name   string
		b      *browser
		form   url.Values
		status int
		want   string
	}{
		{"an unknown device", op, url.Values{"act": {"tag-add"}, "bulk_tag": {"x"}, "id": {"a1", "zz", "a2"}}, 404,
			"Nothing was changed: there is no device &#34;zz&#34; in your organisation."},
		{"another organisation's device", op, url.Values{"act": {"tag-add"}, "bulk_tag": {"x"}, "id": {"a1", "b1"}}, 404,
			"Nothing was changed: there is no device &#34;b1&#34; in your organisation."},
		{"a tag against the rule", op, url.Values{"act": {"tag-add"}, "bulk_tag": {"a,b"}, "id": {"a1"}}, 422, "is not a tag"},
		{"no tag", op, url.Values{"act": {"tag-add"}, "id": {"a1"}}, 422, "name a tag to add or to remove"},
		{"nothing ticked", op, url.Values{"act": {"tag-add"}, "bulk_tag": {"x"}}, 422, "no device was chosen"},
		{"an operator decommissions", op, url.Values{"act": {"decommission-confirmed"}, "id": {"a1"}}, 403,
			"Nothing was changed: your role (operator) may not decommission device a1; that needs admin."},
		{"an admin decommissions another organisation's device", admin, url.Values{"act": {"decommission-confirmed"}, "id": {"a1", "b1"}}, 404,
			"there is no device &#34;b1&#34;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := bulkState(t, s)
			r := tc.b.post("/devices", tc.form)
			wantStatus(t, r, tc.status)
			mustContain(t, r, `class="flash error" role="alert"`, tc.want)
			for _, id := range tc.form["id"] {
				if strings.Contains(r.Body, `name="id" value="`+id+`"`) && !strings.Contains(r.Body, `name="id" value="`+id+`" checked`) {
					t.Errorf("%s is no longer ticked", id)
				}
			}
			if after := bulkState(t, s); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		})
	}

	// Decommission asks first, changing nothing, then does it.
	before := bulkState(t, s)
	r = admin.post("/devices", url.Values{"act": {"decommission"}, "id": {"a1", "a2"}})
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "Decommission 2 devices?", `<input type="hidden" name="id" value="a1">`, `<input type="hidden" name="id" value="a2">`, `value="decommission-confirmed"`)
	if after := bulkState(t, s); after != before {
		t.Fatalf("the confirmation changed state:\n%s\n%s", before, after)
	}
	wantStatus(t, admin.post("/devices", url.Values{"act": {"decommission-confirmed"}, "id": {"a1", "a2"}}), http.StatusSeeOther)
	mustContain(t, admin.get("/devices"), "Decommissioned 2 devices (a1, a2)")
	for id, want := range map[string]string{"a1": "decommissioned", "a2": "decommissioned", "a3": "preauthorized", "b1": "preauthorized"} {
		if st := deviceStatus(t, s, id); st != want {
			t.Errorf("%s is %s, want %s", id, st, want)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM audit_log WHERE action = 'device.decommission' AND actor = 'admin@example.com'`); n != 2 {
		t.Errorf("%d decommission audit rows, want 2", n)
	}
}

var auditRowRE = regexp.MustCompile(`<tr data-audit="(\d+)">`)
var olderRE = regexp.MustCompile(`href="(/audit\?[^"]*before=\d+)"`)
var newerRE = regexp.MustCompile(`href="(/audit\?[^"]*after=\d+)"`)

// TestAuditPages: the audit log pages by keyset, 100 rows a page: Older
// walks every row once, newest first, even while rows are added; Newer
// walks back; a bad cursor is refused.
func TestAuditPages(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := context.Background()
	b := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	for i := range 230 {
		if err := s.Service().Store().InsertAudit(ctx, store.AuditEntry{OrgID: 1, Actor: "seed", Action: "test.row", Target: fmt.Sprint(i), Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(r resp) []string {
		var out []string
		for _, m := range auditRowRE.FindAllStringSubmatch(r.Body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	var want []string
	rows, _ := s.Service().Store().Pool().Query(ctx, `SELECT id::text FROM audit_log a WHERE org_id = 1 ORDER BY a.id DESC`)
	for rows.Next() {
		var id string
		rows.Scan(&id)
		want = append(want, id)
	}
	rows.Close()

	var got []string
	var pages []string
	path := "/audit?actor="
	for len(pages) < 10 {
		r := b.get(path)
		wantStatus(t, r, http.StatusOK)
		page := ids(r)
		if len(page) > 100 {
			t.Fatalf("%d rows on one page", len(page))
		}
		got = append(got, page...)
		pages = append(pages, path)
		// Rows written while paging do not shift the next pages.
		s.Service().Store().InsertAudit(ctx, store.AuditEntry{OrgID: 1, Actor: "late", Action: "test.late", Outcome: "ok"})
		m := olderRE.FindStringSubmatch(r.Body)
		if m == nil {
			break
		}
		path = html.UnescapeString(m[1])
	}
	if len(pages) != (len(want)+99)/100 || !slices.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%d pages showed %d rows; want each of %d once, newest first (they differ from row %d: %v / %v)", len(pages), len(got), len(want), i, got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
	}
	// Newer from the second page is the first page again (the rows
	// written since are newer still).
	second := b.get(pages[1])
	m := newerRE.FindStringSubmatch(second.Body)
	if m == nil {
		t.Fatal("no Newer link on the second page")
	}
	if back := ids(b.get(html.UnescapeString(m[1]))); !slices.Equal(back, want[:100]) {
		t.Fatalf("Newer from page 2 shows %v..., want the first page", back[:3])
	}
	mustContain(t, second, `id="newest"`)
	for _, bad := range []string{"before=x", "before=0", "after=-3", "before=5&after=9"} {
		wantStatus(t, b.get("/audit?"+bad), http.StatusBadRequest)
	}
}
