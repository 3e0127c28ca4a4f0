package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api"
	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
)

// send makes one request to base (a real replica) with optional extra
// header pairs, which override the defaults.
func send(t *testing.T, base, method, path, token, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func errorOf(t *testing.T, resp *http.Response, b []byte) wire.ErrorDetail {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, b)
	}
	return decode[wire.ErrorBody](t, b).Error
}

// roleTokens are API tokens of an operator and a viewer of the default
// organisation and of an operator of another one.
type roleTokens struct {
	operator, viewer, other string
	opActor                 fleet.Actor
}

func newRoleTokens(t *testing.T, srv *cloudtest.Server) roleTokens {
	t.Helper()
	ctx := context.Background()
	svc := srv.Service()
	var rt roleTokens
	var err error
	rt.opActor = srv.Actor(t, "op@bosun.test", fleet.RoleOperator, "")
	if rt.operator, _, err = svc.CreateToken(ctx, rt.opActor, "operator"); err != nil {
		t.Fatal(err)
	}
	if rt.viewer, _, err = svc.CreateToken(ctx, srv.Actor(t, "viewer@bosun.test", fleet.RoleViewer, ""), "viewer"); err != nil {
		t.Fatal(err)
	}
	if rt.other, _, err = svc.CreateToken(ctx, srv.Actor(t, "op@elsewhere.test", fleet.RoleOperator, "elsewhere"), "other"); err != nil {
		t.Fatal(err)
	}
	return rt
}

// acceptedDevice connects id and accepts it.
func acceptedDevice(t *testing.T, srv *cloudtest.Server, id string) *cloudtest.Device {
	t.Helper()
	d := cloudtest.MustConnect(t, srv, id, cloudtest.DeviceOptions{})
	if err := srv.Service().Accept(context.Background(), srv.Super, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Accepted():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not told auth.accepted", id)
	}
	return d
}

// TestRejections sends every kind of bad request to one replica and checks
// the status, the error code and that nothing changed: dev-1 (accepted,
// online), its keys, the audit log, the calls and the tokens. Cases the
// same as TestRejectionsChangeNothing's are there only.
func TestRejections(t *testing.T) {
	srv := cloudtest.NewServer(t)
	rt := newRoleTokens(t, srv)
	acceptedDevice(t, srv, "dev-1")
	if err := srv.Service().SetTags(context.Background(), srv.Super, "dev-1", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	op, viewer, other := rt.operator, rt.viewer, rt.other

	big := `{"method":"x","params":{"pad":"` + strings.Repeat("a", 2<<20) + `"}}`
	tests := []struct {
		name, method, path, token, body string
		header                          []string
		wantStatus                      int
		wantCode                        string
		wantMsg                         string // substring
	}{
		{name: "no token", method: "GET", path: "/api/v1/devices", wantStatus: 401, wantCode: "unauthenticated", wantMsg: "missing API token"},
		{name: "basic auth", method: "GET", path: "/api/v1/devices", header: []string{"Authorization", "Basic Ym9zdW46eA=="}, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "unknown token", method: "POST", path: "/api/v1/devices/dev-1/accept", token: "bsn_nope", wantStatus: 401, wantCode: "unauthenticated", wantMsg: "invalid or revoked"},
		{name: "unknown route", method: "GET", path: "/api/v1/nope", token: op, wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", method: "DELETE", path: "/api/v1/devices", token: op, wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "malformed JSON", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "malformed JSON"},
		{name: "unknown field", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"system.info","timout":"1s"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `unknown field "timout"`},
		{name: "two JSON values", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"system.info"} {}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "single JSON value"},
		{name: "wrong type", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":7}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"method" must be a string`},
		{name: "not an object", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `[1]`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "empty body", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: "empty"},
		{name: "body too large", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: big, wantStatus: 413, wantCode: "payload_too_large"},
		{name: "not JSON content type", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"x"}`, header: []string{"Content-Type", "text/plain"}, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "missing method", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"params":{}}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"method" is required`},
		{name: "bad duration", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"x","timeout":"10 parsecs"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "not a duration"},
		{name: "timeout over 5m", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"x","timeout":"6m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "at most 5m0s"},
		{name: "negative ttl", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"x","ttl":"-1h"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "ttl"},
		{name: "scalar params", method: "POST", path: "/api/v1/devices/dev-1/call", token: op, body: `{"method":"x","params":5}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "object or array"},
		{name: "unknown device", method: "POST", path: "/api/v1/devices/dev-9/accept", token: op, wantStatus: 404, wantCode: "not_found", wantMsg: `device "dev-9" not found`},
		{name: "other org sees no device", method: "POST", path: "/api/v1/devices/dev-1/reject", token: other, wantStatus: 404, wantCode: "not_found"},
		{name: "accept with a body", method: "POST", path: "/api/v1/devices/dev-1/accept", token: op, body: `{"force":true}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `unknown field "force"`},
		{name: "tags missing", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: op, body: `{}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"tags" is required`},
		{name: "tags not a list", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: op, body: `{"tags":"a,b"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "must be an array"},
		{name: "empty tag", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: op, body: `{"tags":["a",""]}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "tag refused by fleet", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: op, body: `{"tags":["a","` + strings.Repeat("t", 65) + `"]}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "1 to 64 characters"},
		{name: "preauthorize garbage", method: "POST", path: "/api/v1/devices/dev-1/preauthorize", token: op, body: `{"public_key":"not a key!"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "public_key"},
		{name: "preauthorize base64 of junk", method: "POST", path: "/api/v1/devices/dev-1/preauthorize", token: op, body: `{"public_key":"AAAA"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "DER"},
		{name: "fan-out both targets", method: "POST", path: "/api/v1/calls", token: op, body: `{"devices":["dev-1"],"tag":"x","method":"m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "exactly one"},
		{name: "fan-out no target", method: "POST", path: "/api/v1/calls", token: op, body: `{"method":"m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "exactly one"},
		{name: "fan-out duplicate", method: "POST", path: "/api/v1/calls", token: op, body: `{"devices":["dev-1","dev-1"],"method":"m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "twice"},
		{name: "fan-out viewer", method: "POST", path: "/api/v1/calls", token: viewer, body: `{"tag":"x","method":"m"}`, wantStatus: 403, wantCode: "forbidden"},
		{name: "bad status filter", method: "GET", path: "/api/v1/devices?status=happy", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: "status"},
		{name: "bad limit", method: "GET", path: "/api/v1/devices?limit=9999", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: "limit"},
		{name: "bad online", method: "GET", path: "/api/v1/devices?online=maybe", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: "online"},
		{name: "ota reports, bad limit", method: "GET", path: "/api/v1/devices/dev-1/ota/reports?limit=501", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: "limit"},
		{name: "ota reports, unknown device", method: "GET", path: "/api/v1/devices/nope/ota/reports", token: op, wantStatus: 404, wantCode: "not_found", wantMsg: `"nope"`},
		{name: "unknown query parameter", method: "GET", path: "/api/v1/devices?stauts=pending", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"stauts"`},
		{name: "repeated query parameter", method: "GET", path: "/api/v1/calls?device=a&device=b", token: op, wantStatus: 400, wantCode: "invalid_request", wantMsg: "more than once"},
		{name: "unknown call", method: "GET", path: "/api/v1/calls/c-9", token: op, wantStatus: 404, wantCode: "not_found", wantMsg: `call "c-9" not found`},
		{name: "token id not a number", method: "DELETE", path: "/api/v1/tokens/abc", token: op, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown token id", method: "DELETE", path: "/api/v1/tokens/999999", token: op, wantStatus: 404, wantCode: "not_found"},
		{name: "token without name", method: "POST", path: "/api/v1/tokens", token: op, body: `{"name":" "}`, wantStatus: 400, wantCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, srv, "dev-1")
			if before.Device.Status != "accepted" || !before.Device.Online {
				t.Fatalf("dev-1 is %s (online %v), want accepted and online", before.Device.Status, before.Device.Online)
			}
			resp, b := send(t, srv.URL(), tt.method, tt.path, tt.token, tt.body, tt.header...)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tt.wantStatus, b)
			}
			e := errorOf(t, resp, b)
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("error %+v, want code %s and a message containing %q", e, tt.wantCode, tt.wantMsg)
			}
			if after := snapshot(t, srv, "dev-1"); !equalState(before, after) {
				t.Errorf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if tt.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.wantStatus == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

// TestSuccesses runs each route once on one replica, as an operator. Cases
// that change something act on a device or token of their own, so each
// starts from the state the setup made, whatever ran before.
func TestSuccesses(t *testing.T) {
	srv := cloudtest.NewServer(t)
	ctx := context.Background()
	svc := srv.Service()
	rt := newRoleTokens(t, srv)

	// dev-1: accepted, online, tagged lab, answers system.info.
	dev1 := acceptedDevice(t, srv, "dev-1")
	dev1.Handle("system.info", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return map[string]bool{"ok": true}, nil
	})
	if err := svc.SetTags(ctx, srv.Super, "dev-1", []string{"lab"}); err != nil {
		t.Fatal(err)
	}
	// dev-2: accepted, online, no tags. tag-me: accepted. new-a, new-b:
	// pending. off: accepted, offline.
	acceptedDevice(t, srv, "dev-2")
	acceptedDevice(t, srv, "tag-me")
	cloudtest.MustConnect(t, srv, "new-a", cloudtest.DeviceOptions{})
	cloudtest.MustConnect(t, srv, "new-b", cloudtest.DeviceOptions{})
	acceptedDevice(t, srv, "off").Close()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		d, err := svc.GetDevice(ctx, srv.Super, "off")
		return err == nil && !d.Online
	}, "off offline")
	done, err := svc.Call(ctx, srv.Super, fleet.CallRequest{DeviceID: "dev-1", Method: "system.info"})
	if err != nil || done.Status != "succeeded" {
		t.Fatalf("call %+v: %v", done, err)
	}
	spareSecret, spare, err := svc.CreateToken(ctx, rt.opActor, "spare")
	if err != nil {
		t.Fatal(err)
	}

	deviceIs := func(id, status string, tags ...string) func(t *testing.T) {
		return func(t *testing.T) {
			d, err := svc.GetDevice(ctx, srv.Super, id)
			if err != nil || d.Status != status || tags != nil && strings.Join(d.Tags, ",") != strings.Join(tags, ",") {
				t.Errorf("%s is %+v (%v), want %s with tags %v", id, d, err, status, tags)
			}
		}
	}
	tokenGone := func(t *testing.T) {
		if _, err := svc.AuthenticateToken(ctx, spareSecret); !errors.Is(err, fleet.ErrUnauthenticated) {
			t.Errorf("the revoked token still authenticates: %v", err)
		}
	}
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		want                     string // substring of the body
		check                    func(t *testing.T)
	}{
		{"list devices", "GET", "/api/v1/devices?status=accepted&online=true&tag=lab&q=dev-1&limit=10&offset=0", "", 200, `"total":1`, nil},
		{"get device", "GET", "/api/v1/devices/dev-2", "", 200, `"tags":[]`, nil},
		{"keys", "GET", "/api/v1/devices/dev-1/keys", "", 200, `"status":"accepted"`, nil},
		{"ota reports", "GET", "/api/v1/devices/dev-1/ota/reports?limit=5", "", 200, `{"items":[]}`, nil},
		{"accept, no body", "POST", "/api/v1/devices/new-a/accept", "", 200, `"status":"accepted"`, deviceIs("new-a", "accepted")},
		{"accept, empty object", "POST", "/api/v1/devices/new-b/accept", "{}", 200, `"id":"new-b"`, deviceIs("new-b", "accepted")},
		{"tags", "PUT", "/api/v1/devices/tag-me/tags", `{"tags":["lab","eu"]}`, 200, `"tags":["lab","eu"]`, deviceIs("tag-me", "accepted", "lab", "eu")},
		{"call", "POST", "/api/v1/devices/dev-1/call", `{"method":"system.info","params":{"a":1},"timeout":"10s"}`, 200, `"result":{"ok":true}`, nil},
		{"call null params", "POST", "/api/v1/devices/dev-1/call", `{"method":"system.info","params":null}`, 200, `"status":"succeeded"`, nil},
		{"call offline", "POST", "/api/v1/devices/off/call", `{"method":"system.info"}`, 200, `"error":{"code":-32000,"message":"device offline"}`, nil},
		{"call queued", "POST", "/api/v1/devices/off/call", `{"method":"system.info","ttl":"1h"}`, 202, `"status":"queued"`, nil},
		{"get call", "GET", "/api/v1/calls/" + done.ID, "", 200, `"id":"` + done.ID + `"`, nil},
		{"list calls", "GET", "/api/v1/calls?device=dev-1&status=failed&limit=5", "", 200, `{"items":[]}`, nil},
		{"audit", "GET", "/api/v1/audit?action=device.accept", "", 200, `"action":"device.accept"`, nil},
		{"create token", "POST", "/api/v1/tokens", `{"name":"ci"}`, 201, `"secret":"bsn_`, nil},
		{"list tokens", "GET", "/api/v1/tokens", "", 200, `"name":"operator"`, nil},
		{"revoke token", "DELETE", fmt.Sprintf("/api/v1/tokens/%d", spare.ID), "", 204, "", tokenGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := send(t, srv.URL(), tt.method, tt.path, rt.operator, tt.body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.want) {
				t.Fatalf("got %d %s, want %d with %s", resp.StatusCode, b, tt.wantStatus, tt.want)
			}
			if tt.check != nil {
				tt.check(t)
			}
		})
	}
}

// The fan-out stream as results arrive is TestFanOutByTagStreams's. An
// error line after the first result is not tested: the real service fails
// no call in flight with an error of its own (a shutdown finishes them as
// "session ended"), so only a fake could make one.

// TestEvents streams a real device's event and a heartbeat, and ends the
// handler when the client goes.
func TestEvents(t *testing.T) {
	srv := cloudtest.NewServer(t)
	rt := newRoleTokens(t, srv)
	ended := make(chan struct{})
	h := api.NewWithHeartbeat(srv.Service(), 20*time.Millisecond)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(ended) // one request only
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+rt.operator)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	readUntil := func(want string) {
		t.Helper()
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.HasPrefix(strings.TrimRight(line, "\n"), want) {
				return
			}
		}
	}
	readUntil(": subscribed")
	cloudtest.MustConnect(t, srv, "dev-1", cloudtest.DeviceOptions{})
	readUntil("event: device.pending")
	readUntil(`data: {"type":"device.pending","device_id":"dev-1","at":"`)
	readUntil(": heartbeat")
	cancel() // the client goes: the handler must end
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription outlived the client")
	}
}

// TestEventsEndWhenDropped: when the service closes the subscription, the
// stream ends cleanly.
func TestEventsEndWhenDropped(t *testing.T) {
	srv := cloudtest.NewServer(t)
	rt := newRoleTokens(t, srv)
	hs := httptest.NewServer(api.New(srv.Service(), nil))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+rt.operator)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	var got strings.Builder
	for !strings.HasSuffix(got.String(), ": subscribed\n\n") {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("before subscribed: %v (got %q)", err, got.String())
		}
		got.WriteString(line)
	}
	srv.Stop() // closes the service, and with it every subscription
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	if s := got.String() + string(rest); resp.StatusCode != 200 || s != "retry: 3000\n: subscribed\n\n" {
		t.Fatalf("got %d %q", resp.StatusCode, s)
	}
}
