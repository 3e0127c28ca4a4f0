package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// demoMethods are what demoDevice serves and announces.
var demoMethods = []rpcproto.MethodInfo{
	{Name: "containers.list", Description: "List containers", Worker: "system"},
	{Name: "containers.logs", Description: "Container logs", Worker: "system"},
	{Name: "rpc.list", Description: "List the methods this device serves", Worker: "bridge"},
	{Name: "system.info", Description: "Host facts", Worker: "system"},
}

// demoDevice connects a pending test device that serves the worker methods
// the dashboard calls (but not ota.*, like a device without the OTA worker).
// Once accepted, announce makes it report them, as the bridge does.
func demoDevice(t testing.TB, s *cloudtest.Server, id string) *cloudtest.Device {
	t.Helper()
	disp := jsonrpc.NewDispatcher()
	disp.Register(rpcproto.MethodRPCList, func(ctx context.Context, p json.RawMessage) (any, error) {
		return rpcproto.RPCListResult{Methods: demoMethods}, nil
	})
	disp.Register(rpcproto.MethodSystemInfo, func(ctx context.Context, p json.RawMessage) (any, error) {
		return rpcproto.SystemInfoResult{Hostname: "demo-host", OS: "linux", Arch: "amd64"}, nil
	})
	disp.Register(rpcproto.MethodContainersList, func(ctx context.Context, p json.RawMessage) (any, error) {
		return rpcproto.ContainersListResult{Containers: []rpcproto.Container{
			{ID: "abc123", Name: "bosun-demo", Image: "docker.io/library/alpine:3", State: "running", Status: "Up 5 minutes"}}}, nil
	})
	disp.Register(rpcproto.MethodContainersLogs, func(ctx context.Context, p json.RawMessage) (any, error) {
		var lp rpcproto.ContainersLogsParams
		json.Unmarshal(p, &lp)
		return rpcproto.ContainersLogsResult{Lines: []rpcproto.LogLine{
			{Stream: "stdout", Line: "hello from " + lp.Container}, {Stream: "stderr", Line: "a warning"}}}, nil
	})
	return cloudtest.MustConnect(t, s, id, cloudtest.DeviceOptions{Dispatcher: disp,
		Attributes: map[string]string{"serial": "SN-1", "model": "pi5"}})
}

func TestDeviceFlow(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	d := demoDevice(t, s, "dev-1")

	r := b.get("/pending")
	wantStatus(t, r, http.StatusOK)
	fp := fingerprint(d)
	// The row's accept button posts the fingerprint the row shows.
	action := "/pending?" + url.Values{"fingerprint": {fp}}.Encode()
	mustContain(t, r, "dev-1", fp, "serial", "SN-1", `value="accept:dev-1" formaction="`+action+`"`, `value="dev-1:`+fp+`"`)

	// Accept with a plain form post (no JavaScript), as that button does.
	r = b.post(action, url.Values{"act": {"accept:dev-1"}})
	wantStatus(t, r, http.StatusSeeOther)
	announce(t, d)
	r = b.get("/pending")
	mustContain(t, r, "Accepted dev-1 ("+fp+").", "No device is waiting.")

	r = b.get("/devices")
	mustContain(t, r, `data-device="dev-1"`, "accepted")
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(b.get("/devices/dev-1").Body, `<span class="dot on"`)
	}, "device page shows online")

	// The console, as a plain form post and as htmx.
	r = b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}, "params": {"{}"}, "timeout": {"10"}})
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "demo-host", "succeeded", "<!doctype html>")
	r = b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}, "params": {"{}"}}, "HX-Request", "true", "X-CSRF-Token", b.csrf)
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "demo-host")
	if strings.Contains(r.Body, "<!doctype") {
		t.Fatal("htmx answer is a whole page")
	}
	r = b.post("/devices/dev-1/call", url.Values{"method": {"system.info"}, "params": {"{nope"}})
	wantStatus(t, r, http.StatusUnprocessableEntity)
	mustContain(t, r, "not valid JSON")
	r = b.post("/devices/dev-1/call", url.Values{"method": {"no.such"}, "params": {""}})
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "-32601")

	// The method picker lists what the device announced, without a call.
	mustContain(t, b.get("/devices/dev-1"), `<select name="method"`, `<option value="containers.logs"`, "Container logs")

	r = b.post("/devices/dev-1/containers", nil)
	mustContain(t, r, "bosun-demo", "alpine", "Logs")
	r = b.post("/devices/dev-1/logs", url.Values{"container": {"bosun-demo"}, "tail": {"50"}})
	wantStatus(t, r, http.StatusOK)
	mustContain(t, r, "hello from bosun-demo", `logline stderr`)
	r = b.post("/devices/dev-1/boot-state", nil)
	mustContain(t, r, "Not available: this device runs no OTA worker.")

	r = b.post("/devices/dev-1/tags", url.Values{"tags": {"lab, north"}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/devices?tag=north"), `data-device="dev-1"`)
	mustContain(t, b.get("/devices/dev-1"), "system.info", "ms") // history
	mustContain(t, b.get("/audit?action=device.accept"), "op@example.com", "dev-1")
	mustContain(t, b.get("/"), "Recent activity", "device.accept")
}

// announce waits until the device was told it is accepted, then sends the
// state.report that announces its methods (what the bridge does then).
func announce(t testing.TB, d *cloudtest.Device) {
	t.Helper()
	select {
	case <-d.Accepted():
	case <-time.After(10 * time.Second):
		t.Fatal("the device was not told it is accepted")
	}
	report(t, d, demoMethods)
}

// report sends a state.report announcing methods.
func report(t testing.TB, d *cloudtest.Device, methods []rpcproto.MethodInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := d.Report(ctx, rpcproto.StateReportParams{Hostname: "demo-host", Workers: []string{"system"}, Methods: methods}); err != nil || !r.Stored {
		t.Fatalf("state.report: %v, %+v", err, r)
	}
}

// fingerprint is the fingerprint of a test device's key.
func fingerprint(d *cloudtest.Device) string {
	der, _ := keys.PublicDER(d.Key.Public())
	return keys.FingerprintDER(der)
}

// twoPendingKeys makes tq-1 accepted with K1, then offline with two pending
// keys, K2 (older) and K3; it returns the three devices' fingerprints.
func twoPendingKeys(t *testing.T, s *cloudtest.Server) (k1, k2, k3 string) {
	t.Helper()
	ctx := context.Background()
	offline := func() {
		t.Helper()
		cloudtest.Eventually(t, 10*time.Second, func() bool {
			d, err := s.Service().GetDevice(ctx, s.Super, "tq-1")
			return err == nil && !d.Online
		}, "tq-1 offline")
	}
	fps := make([]string, 3)
	for i := range fps {
		d := cloudtest.MustConnect(t, s, "tq-1", cloudtest.DeviceOptions{})
		fps[i] = fingerprint(d)
		if i == 0 {
			if _, err := s.Service().AcceptKey(ctx, s.Super, "tq-1", fps[0]); err != nil {
				t.Fatal(err)
			}
		}
		d.Close()
		offline()
	}
	return fps[0], fps[1], fps[2]
}

// keyStatus is the status of each key set of a device.
func keyStatus(t *testing.T, s *cloudtest.Server, id string) map[string]string {
	t.Helper()
	ks, err := s.Service().ListKeySets(context.Background(), s.Super, id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, k := range ks {
		m[k.Fingerprint] = k.Status
	}
	return m
}

// TestPendingAcceptsTheKeyShown: with two pending keys each has its own
// row and accept button, which posts its fingerprint; a post that names no
// key (a stale page, a hand-made form) accepts nothing and says why.
func TestPendingAcceptsTheKeyShown(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	k1, k2, k3 := twoPendingKeys(t, s)

	r := b.get("/pending")
	wantStatus(t, r, http.StatusOK)
	act2 := "/pending?" + url.Values{"fingerprint": {k2}}.Encode()
	act3 := "/pending?" + url.Values{"fingerprint": {k3}}.Encode()
	mustContain(t, r, `formaction="`+act2+`"`, `formaction="`+act3+`"`, "One of 2 pending keys of this device", "Reject all")

	// No fingerprint: refused with the candidates, nothing changed.
	before := keyStatus(t, s, "tq-1")
	r = b.post("/pending", url.Values{"act": {"accept:tq-1"}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Not accepted: device tq-1 has 2 pending keys ("+k3+", "+k2+")")
	if after := keyStatus(t, s, "tq-1"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("keys changed: %v, then %v", before, after)
	}

	// K2's button: K2 accepted, K3 rejected, K1 revoked.
	r = b.post(act2, url.Values{"act": {"accept:tq-1"}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Accepted tq-1 ("+k2+").", "No device is waiting.")
	want := map[string]string{k1: "revoked", k2: "accepted", k3: "rejected"}
	if got := keyStatus(t, s, "tq-1"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
}

// TestPendingBatchAcceptsTheKeysTicked: the batch form names a key per
// ticked box; a key no longer pending is reported, not replaced.
func TestPendingBatchAcceptsTheKeysTicked(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	_, k2, k3 := twoPendingKeys(t, s)
	d := cloudtest.MustConnect(t, s, "solo", cloudtest.DeviceOptions{})
	solo := fingerprint(d)
	mustContain(t, b.get("/pending"), `value="tq-1:`+k3+`"`, `value="tq-1:`+k2+`"`, `value="solo:`+solo+`"`)

	r := b.post("/pending", url.Values{"act": {"accept"}, "id": {"tq-1:" + k2, "solo:" + solo}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Accepted tq-1 ("+k2+"), solo ("+solo+").")
	if st := keyStatus(t, s, "tq-1"); st[k2] != "accepted" || st[k3] != "rejected" {
		t.Fatalf("tq-1 keys %v", st)
	}
	// The page that showed K3 is stale now: its K3 box accepts nothing.
	r = b.post("/pending", url.Values{"act": {"accept"}, "id": {"tq-1:" + k3}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Not accepted: key "+k3+" of device tq-1 is rejected, not pending.")
}

// TestDevicePageAcceptsTheKeyShown: the device page has an accept form per
// pending key, each posting its fingerprint.
func TestDevicePageAcceptsTheKeyShown(t *testing.T) {
	s := cloudtest.NewServer(t)
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	_, k2, k3 := twoPendingKeys(t, s)
	mustContain(t, b.get("/devices/tq-1"), `name="fingerprint" value="`+k3+`"`, `name="fingerprint" value="`+k2+`"`, `id="accept-0"`, `id="accept-1"`)

	r := b.post("/devices/tq-1/accept", url.Values{})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/devices/tq-1"), "Not accepted: device tq-1 has 2 pending keys")
	r = b.post("/devices/tq-1/accept", url.Values{"fingerprint": {k3}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, b.get("/devices/tq-1"), "Accepted tq-1 ("+k3+").")
	if st := keyStatus(t, s, "tq-1"); st[k3] != "accepted" || st[k2] != "rejected" {
		t.Fatalf("keys %v", st)
	}
}

// TestPendingListsRejectedKeys: a rejected key is listed under "Rejected
// keys" with who rejected it and when; its Accept button accepts exactly
// that key again, audited, and the device's next connection is accepted.
// A viewer sees the list without the button; a button naming another key
// accepts nothing.
func TestPendingListsRejectedKeys(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := context.Background()
	b := loggedIn(t, s, "op@example.com", fleet.RoleOperator, "")
	viewer := loggedIn(t, s, "viewer@example.com", fleet.RoleViewer, "")
	op := s.Actor(t, "op2@example.com", fleet.RoleOperator, "")
	d := cloudtest.MustConnect(t, s, "dev-2", cloudtest.DeviceOptions{})
	fp := fingerprint(d)
	if _, err := s.Service().AcceptKey(ctx, op, "dev-2", fp); err != nil {
		t.Fatal(err)
	}
	mustContain(t, b.get("/pending"), `id="no-rejected"`)
	if err := s.Service().Reject(ctx, op, "dev-2"); err != nil {
		t.Fatal(err)
	}
	if code := d.WaitClosed(t, 5*time.Second); code != 4003 {
		t.Fatalf("closed with %d, want 4003", code)
	}
	action := "/pending?" + url.Values{"fingerprint": {fp}, "from": {"rejected"}}.Encode()
	r := b.get("/pending")
	mustContain(t, r, "Rejected keys", `data-rejected="dev-2"`, `data-rejected-fingerprint="`+fp+`"`, "op2@example.com", "just now",
		`formaction="`+html.EscapeString(action)+`"`)
	if v := viewer.get("/pending"); !strings.Contains(v.Body, `data-rejected="dev-2"`) || strings.Contains(v.Body, "data-accept-rejected") {
		t.Fatalf("viewer's page: the rejected key must be listed without a button:\n%s", v.Body)
	}

	// A button naming another key: nothing changes, the page says why.
	other := "SHA256:" + strings.Repeat("A", 43)
	before := keyStatus(t, s, "dev-2")
	wantStatus(t, b.post("/pending?"+url.Values{"fingerprint": {other}, "from": {"rejected"}}.Encode(), url.Values{"act": {"accept:dev-2"}}), http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Not accepted: device dev-2 has no key "+other+".")
	if after := keyStatus(t, s, "dev-2"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("keys changed: %v, then %v", before, after)
	}
	// The same key through a pending row's form (a stale page): refused.
	wantStatus(t, b.post("/pending?"+url.Values{"fingerprint": {fp}}.Encode(), url.Values{"act": {"accept:dev-2"}}), http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Not accepted: key "+fp+" of device dev-2 is rejected, not pending.")

	// Its own button accepts it.
	wantStatus(t, b.post(action, url.Values{"act": {"accept:dev-2"}}), http.StatusSeeOther)
	mustContain(t, b.get("/pending"), "Accepted dev-2 ("+fp+").", `id="no-rejected"`)
	if st := keyStatus(t, s, "dev-2"); st[fp] != "accepted" {
		t.Fatalf("keys %v", st)
	}
	rows, _ := s.Service().AuditLog(ctx, s.Super, fleet.AuditFilter{Action: "device.accept", Target: "dev-2", Limit: 1})
	var detail struct{ Fingerprint, Was string }
	if len(rows) == 1 {
		json.Unmarshal(rows[0].Detail, &detail)
	}
	if len(rows) != 1 || rows[0].Actor != "op@example.com" || detail.Was != "rejected" || detail.Fingerprint != fp {
		t.Fatalf("audit %+v (%+v)", rows, detail)
	}
	back := cloudtest.MustConnect(t, s, "dev-2", cloudtest.DeviceOptions{Key: d.Key})
	if back.Registration.Status != "accepted" {
		t.Fatalf("the device came back %+v", back.Registration)
	}
}
