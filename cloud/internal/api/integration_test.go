package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/client"
	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/keys"
)

// transcript, when BOSUN_API_TRANSCRIPT names a file, records each request
// and answer of the flow tests as Markdown: docs/api.md's examples come
// from it.
type transcript struct {
	mu sync.Mutex
	w  io.Writer
}

var tr = func() *transcript {
	p := os.Getenv("BOSUN_API_TRANSCRIPT")
	if p == "" {
		return &transcript{w: io.Discard}
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	return &transcript{w: f}
}()

func (t *transcript) record(method, path, body string, status int, answer []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "```sh\ncurl -sS -X %s -H \"Authorization: Bearer $BOSUN_TOKEN\"", method)
	if body != "" {
		fmt.Fprintf(&sb, " -H 'Content-Type: application/json' \\\n  -d '%s'", body)
	}
	fmt.Fprintf(&sb, " \\\n  \"$BOSUN_URL/api/v1%s\"\n```\n", path)
	fmt.Fprintf(&sb, "```\nHTTP %d %s\n%s\n```\n\n", status, http.StatusText(status), indent(answer))
	io.WriteString(t.w, sb.String())
}

func indent(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return strings.TrimSpace(string(b))
	}
	return out.String()
}

// call sends one API request and returns the status and body.
func call(t *testing.T, base, token, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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
	return resp.StatusCode, b
}

// doc is call, recorded in the transcript.
func doc(t *testing.T, base, token, method, path, body string) (int, []byte) {
	t.Helper()
	status, b := call(t, base, token, method, path, body)
	tr.record(method, path, body, status, b)
	return status, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %T from %s: %v", v, b, err)
	}
	return v
}

func want(t *testing.T, status int, b []byte, wantStatus int) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %s", status, wantStatus, b)
	}
}

// sysInfo makes a device answer system.info.
func sysInfo(d *cloudtest.Device) {
	d.Handle("system.info", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return map[string]any{"hostname": d.ID, "os": "linux", "arch": "arm64"}, nil
	})
}

func TestFlowRegisterAcceptCall(t *testing.T) {
	srv := cloudtest.NewServer(t)
	tok := srv.Token(t)
	base := srv.URL()

	dev := cloudtest.MustConnect(t, srv, "dev-1", cloudtest.DeviceOptions{Attributes: map[string]string{"mac": "02:42:ac:11:00:02", "model": "rpi4"}})
	sysInfo(dev)
	if dev.Registration.Status != "pending" {
		t.Fatalf("registration %+v, want pending", dev.Registration)
	}

	status, b := doc(t, base, tok, "GET", "/devices?status=pending", "")
	want(t, status, b, 200)
	list := decode[wire.DeviceList](t, b)
	if list.Total != 1 || len(list.Items) != 1 || list.Items[0].ID != "dev-1" || list.Items[0].Attributes["model"] != "rpi4" {
		t.Fatalf("pending list %+v", list)
	}

	status, b = doc(t, base, tok, "GET", "/devices/dev-1/keys", "")
	want(t, status, b, 200)
	ks := decode[wire.KeySetList](t, b)
	der, _ := keys.PublicDER(dev.Key.Public())
	if len(ks.Items) != 1 || ks.Items[0].Status != "pending" || ks.Items[0].Fingerprint != keys.FingerprintDER(der) {
		t.Fatalf("keys %+v", ks)
	}

	status, b = doc(t, base, tok, "POST", "/devices/dev-1/accept", "")
	want(t, status, b, 200)
	if d := decode[wire.Device](t, b); d.Status != "accepted" {
		t.Fatalf("after accept: %+v", d)
	}
	select {
	case <-dev.Accepted():
	case <-time.After(5 * time.Second):
		t.Fatal("the live session was not told auth.accepted")
	}

	status, b = doc(t, base, tok, "POST", "/devices/dev-1/call", `{"method":"system.info","timeout":"10s"}`)
	want(t, status, b, 200)
	c := decode[wire.Call](t, b)
	if c.Status != "succeeded" || !strings.Contains(string(c.Result), `"hostname":"dev-1"`) {
		t.Fatalf("call %+v result %s", c, c.Result)
	}

	status, b = doc(t, base, tok, "POST", "/devices/dev-1/call", `{"method":"no.such.method"}`)
	want(t, status, b, 200)
	if c := decode[wire.Call](t, b); c.Error == nil || c.Error.Code != -32601 {
		t.Fatalf("unknown method: %+v", c)
	}

	status, b = doc(t, base, tok, "GET", "/calls/"+c.ID, "")
	want(t, status, b, 200)
	status, b = doc(t, base, tok, "GET", "/calls?device=dev-1&limit=10", "")
	want(t, status, b, 200)
	if cl := decode[wire.CallList](t, b); len(cl.Items) != 2 {
		t.Fatalf("calls %+v", cl)
	}

	status, b = doc(t, base, tok, "PUT", "/devices/dev-1/tags", `{"tags":["lab","eu-west"]}`)
	want(t, status, b, 200)
	status, b = doc(t, base, tok, "GET", "/devices?tag=lab&online=true", "")
	want(t, status, b, 200)
	if l := decode[wire.DeviceList](t, b); l.Total != 1 || !slices.Equal(l.Items[0].Tags, []string{"eu-west", "lab"}) && !slices.Equal(l.Items[0].Tags, []string{"lab", "eu-west"}) {
		t.Fatalf("by tag %+v", l)
	}

	// Offline: a plain call fails with -32000; with a ttl it is queued and
	// delivered when the device returns.
	dev.Close()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		_, b := call(t, base, tok, "GET", "/devices/dev-1", "")
		return !decode[wire.Device](t, b).Online
	}, "dev-1 offline")
	status, b = doc(t, base, tok, "POST", "/devices/dev-1/call", `{"method":"system.info"}`)
	want(t, status, b, 200)
	if c := decode[wire.Call](t, b); c.Status != "failed" || c.Error == nil || c.Error.Code != -32000 {
		t.Fatalf("offline call %+v", c)
	}
	status, b = doc(t, base, tok, "POST", "/devices/dev-1/call", `{"method":"system.info","ttl":"1h"}`)
	want(t, status, b, 202)
	queued := decode[wire.Call](t, b)
	if queued.Status != "queued" || queued.ExpiresAt == nil {
		t.Fatalf("queued call %+v", queued)
	}
	dev2 := cloudtest.MustConnect(t, srv, "dev-1", cloudtest.DeviceOptions{Key: dev.Key})
	sysInfo(dev2)
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		_, b := call(t, base, tok, "GET", "/calls/"+queued.ID, "")
		return decode[wire.Call](t, b).Status == "succeeded"
	}, "queued call delivered after reconnect")
	status, b = doc(t, base, tok, "GET", "/calls/"+queued.ID, "")
	want(t, status, b, 200)

	status, b = doc(t, base, tok, "GET", "/audit?target=dev-1&limit=5", "")
	want(t, status, b, 200)
	actions := map[string]bool{}
	for _, e := range decode[wire.AuditList](t, b).Items {
		actions[e.Action] = true
	}
	_, b = call(t, base, tok, "GET", "/audit?target=dev-1&action=device.accept", "")
	if l := decode[wire.AuditList](t, b); len(l.Items) != 1 || l.Items[0].Actor != cloudtest.SuperEmail {
		t.Fatalf("accept audit %+v", l)
	}

	// Preauthorize a device that has not connected yet, then decommission.
	key := cloudtest.NewKey()
	pemKey, _ := keys.MarshalPublicPEM(key.Public())
	body, _ := json.Marshal(wire.PreauthorizeRequest{PublicKey: string(pemKey)})
	status, b = doc(t, base, tok, "POST", "/devices/dev-2/preauthorize", string(body))
	want(t, status, b, 200)
	if d := decode[wire.Device](t, b); d.Status != "preauthorized" {
		t.Fatalf("preauthorized %+v", d)
	}
	d2 := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{Key: key})
	if d2.Registration.Status != "accepted" {
		t.Fatalf("preauthorized device registered as %+v", d2.Registration)
	}
	status, b = doc(t, base, tok, "POST", "/devices/dev-2/decommission", "")
	want(t, status, b, 200)
	if d := decode[wire.Device](t, b); d.Status != "decommissioned" {
		t.Fatalf("decommissioned %+v", d)
	}
	d2.WaitClosed(t, 5*time.Second)

	// Tokens: create, list, use, revoke.
	status, b = doc(t, base, tok, "POST", "/tokens", `{"name":"ci"}`)
	want(t, status, b, 201)
	created := decode[wire.CreateTokenResponse](t, b)
	if !strings.HasPrefix(created.Secret, "bsn_") {
		t.Fatalf("token %+v", created)
	}
	status, b = doc(t, base, tok, "GET", "/tokens", "")
	want(t, status, b, 200)
	if status, b := call(t, base, created.Secret, "GET", "/devices", ""); status != 200 {
		t.Fatalf("new token: %d %s", status, b)
	}
	status, b = doc(t, base, tok, "DELETE", fmt.Sprintf("/tokens/%d", created.Token.ID), "")
	want(t, status, b, 204)
	status, b = doc(t, base, created.Secret, "GET", "/devices", "")
	want(t, status, b, 401)
}

func TestFanOutByTagStreams(t *testing.T) {
	srv := cloudtest.NewServer(t)
	tok := srv.Token(t)
	ctx := context.Background()
	svc := srv.Service()

	// fast answers at once; slow answers only once the client has seen a
	// first result line, which it can only if lines are flushed as they
	// come. gone is tagged but offline.
	release := make(chan struct{})
	var releaseOnce sync.Once
	for _, id := range []string{"fast", "slow", "gone", "other"} {
		d := cloudtest.MustConnect(t, srv, id, cloudtest.DeviceOptions{})
		if err := svc.Accept(ctx, srv.Super, id); err != nil {
			t.Fatal(err)
		}
		if id != "other" {
			if err := svc.SetTags(ctx, srv.Super, id, []string{"lab"}); err != nil {
				t.Fatal(err)
			}
		}
		switch id {
		case "fast", "other":
			d.Handle("ping", func(ctx context.Context, _ json.RawMessage) (any, error) { return map[string]string{"pong": d.ID}, nil })
		case "slow":
			d.Handle("ping", func(ctx context.Context, _ json.RawMessage) (any, error) {
				select {
				case <-release:
					return map[string]string{"pong": "slow"}, nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			})
		case "gone":
			d.Close()
		}
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		d, err := svc.GetDevice(ctx, srv.Super, "gone")
		return err == nil && !d.Online
	}, "gone offline")

	cl, err := client.New(srv.URL(), tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	sum, err := cl.FanOut(ctx, wire.FanOutRequest{Tag: "lab", Method: "ping", Timeout: "5s"}, func(l wire.FanOutLine) {
		if l.Type == wire.LineResult {
			order = append(order, l.Call.DeviceID+":"+l.Call.Status)
			releaseOnce.Do(func() { close(release) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 3 || sum.Succeeded != 2 || sum.Offline != 1 || sum.TimedOut != 0 {
		t.Fatalf("summary %+v (results %v): slow must not time out, it is released by the first streamed line", sum, order)
	}
	if len(order) != 3 || order[0] == "slow:succeeded" {
		t.Errorf("results in order %v, want slow after a first result", order)
	}

	// The raw stream, for the docs.
	status, b := doc(t, srv.URL(), tok, "POST", "/calls", `{"devices":["fast","gone"],"method":"ping","timeout":"5s"}`)
	want(t, status, b, 200)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"type":"summary"`) {
		t.Fatalf("stream %s", b)
	}
}

func TestEventsFromTwoReplicas(t *testing.T) {
	r1 := cloudtest.NewServer(t)
	r2 := cloudtest.NewServer(t, cloudtest.WithDatabase(r1.DatabaseURL), cloudtest.WithNATS(r1.NATSURL()),
		cloudtest.WithKey(r1.Key), cloudtest.WithReplica("r2"))
	tok := r1.Token(t)

	cl, err := client.New(r1.URL(), tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []wire.Event
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- cl.Events(ctx, func() { close(ready) }, func(ev wire.Event) {
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("events: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription")
	}
	has := func(typ, dev string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range seen {
			if ev.Type == typ && ev.DeviceID == dev {
				return true
			}
		}
		return false
	}

	// A raw stream on r2 as well: it shows the wire format (and goes into
	// the docs' transcript).
	raw := &syncBuffer{}
	rawDone := make(chan struct{})
	go func() {
		defer close(rawDone)
		req, _ := http.NewRequestWithContext(ctx, "GET", r2.URL()+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		io.Copy(raw, resp.Body)
	}()
	cloudtest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(raw.String(), ": subscribed") }, "raw stream on r2")

	da := cloudtest.MustConnect(t, r1, "dev-a", cloudtest.DeviceOptions{})
	db := cloudtest.MustConnect(t, r2, "dev-b", cloudtest.DeviceOptions{})
	cloudtest.Eventually(t, 10*time.Second, func() bool { return has("device.pending", "dev-a") && has("device.pending", "dev-b") },
		"pending events of both replicas")
	// Accepting through r2's API reaches the stream held by r1.
	if status, b := call(t, r2.URL(), tok, "POST", "/devices/dev-b/accept", ""); status != 200 {
		t.Fatalf("accept via r2: %d %s", status, b)
	}
	db.Handle("ping", func(ctx context.Context, _ json.RawMessage) (any, error) { return "pong", nil })
	if status, b := call(t, r1.URL(), tok, "POST", "/devices/dev-b/call", `{"method":"ping"}`); status != 200 {
		t.Fatalf("call via r1 to a device on r2: %d %s", status, b)
	}
	da.Close()
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		return has("device.accepted", "dev-b") && has("call.finished", "dev-b") && has("device.disconnected", "dev-a")
	}, "accepted, call.finished and disconnected events")

	cloudtest.Eventually(t, 10*time.Second, func() bool {
		s := raw.String()
		return strings.Contains(s, "event: device.pending\ndata: {\"type\":\"device.pending\",\"device_id\":\"dev-a\"") &&
			strings.Contains(s, "event: device.disconnected\ndata: {\"type\":\"device.disconnected\",\"device_id\":\"dev-a\"")
	}, "r2's stream sees r1's events; got %q", raw.String())

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("events ended with %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream outlived its context")
	}
	<-rawDone
	tr.mu.Lock()
	fmt.Fprintf(tr.w, "```sh\ncurl -sS -N -H \"Authorization: Bearer $BOSUN_TOKEN\" \"$BOSUN_URL/api/v1/events\"\n```\n```\n%s```\n\n", raw.String())
	tr.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// state is what a rejected request must leave alone.
type state struct {
	Device fleet.Device
	Keys   []fleet.KeySet
	Audit  int
	Calls  int
	Tokens int
}

func snapshot(t *testing.T, srv *cloudtest.Server, id string) state {
	t.Helper()
	ctx := context.Background()
	svc := srv.Service()
	var s state
	var err error
	if s.Device, err = svc.GetDevice(ctx, srv.Super, id); err != nil {
		t.Fatal(err)
	}
	s.Device.LastSeen = time.Time{} // moves with the live session, not with requests
	if s.Keys, err = svc.ListKeySets(ctx, srv.Super, id); err != nil {
		t.Fatal(err)
	}
	for i := range s.Keys {
		s.Keys[i].LastSeen = time.Time{}
	}
	audit, err := svc.AuditLog(ctx, srv.Super, fleet.AuditFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	calls, err := svc.ListCalls(ctx, srv.Super, fleet.CallFilter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := svc.ListTokens(ctx, srv.Super)
	if err != nil {
		t.Fatal(err)
	}
	s.Audit, s.Calls, s.Tokens = len(audit), len(calls), len(toks)
	return s
}

func TestRejectionsChangeNothing(t *testing.T) {
	srv := cloudtest.NewServer(t)
	ctx := context.Background()
	svc := srv.Service()
	super := srv.Token(t)
	viewer, _, err := svc.CreateToken(ctx, srv.Actor(t, "viewer@bosun.test", fleet.RoleViewer, ""), "viewer")
	if err != nil {
		t.Fatal(err)
	}
	stranger, _, err := svc.CreateToken(ctx, srv.Actor(t, "op@elsewhere.test", fleet.RoleOperator, "elsewhere"), "stranger")
	if err != nil {
		t.Fatal(err)
	}
	revoked, rtok, err := svc.CreateToken(ctx, srv.Actor(t, "gone@bosun.test", fleet.RoleOperator, ""), "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeToken(ctx, srv.Super, rtok.ID); err != nil {
		t.Fatal(err)
	}
	// dev-1 is pending and online: an accept, reject or call that slipped
	// through would show in its status, the audit log or the calls.
	cloudtest.MustConnect(t, srv, "dev-1", cloudtest.DeviceOptions{})

	tests := []struct {
		name, token, method, path, body string
		wantStatus                      int
		wantCode                        string
	}{
		{"no token", "", "POST", "/devices/dev-1/accept", "", 401, "unauthenticated"},
		{"bad token", "bsn_not-a-real-token", "POST", "/devices/dev-1/accept", "", 401, "unauthenticated"},
		{"revoked token", revoked, "POST", "/devices/dev-1/reject", "", 401, "unauthenticated"},
		{"malformed JSON", super, "POST", "/devices/dev-1/call", `{"method":"system.info"`, 400, "invalid_request"},
		{"unknown field", super, "POST", "/devices/dev-1/call", `{"method":"system.info","ttl":"1h","retries":3}`, 400, "invalid_request"},
		{"two JSON values", super, "PUT", "/devices/dev-1/tags", `{"tags":["a"]}{"tags":["b"]}`, 400, "invalid_request"},
		{"bad duration", super, "POST", "/devices/dev-1/call", `{"method":"system.info","ttl":"forever"}`, 400, "invalid_request"},
		{"timeout too long", super, "POST", "/devices/dev-1/call", `{"method":"system.info","timeout":"1h"}`, 400, "invalid_request"},
		{"reserved method", super, "POST", "/devices/dev-1/call", `{"method":"auth.accepted"}`, 400, "invalid_request"},
		{"unknown device", super, "POST", "/devices/dev-9/accept", "", 404, "not_found"},
		{"unknown device call", super, "POST", "/devices/dev-9/call", `{"method":"system.info","ttl":"1h"}`, 404, "not_found"},
		{"viewer accepts", viewer, "POST", "/devices/dev-1/accept", "", 403, "forbidden"},
		{"viewer rejects", viewer, "POST", "/devices/dev-1/reject", "", 403, "forbidden"},
		{"viewer calls", viewer, "POST", "/devices/dev-1/call", `{"method":"system.info"}`, 403, "forbidden"},
		{"viewer tags", viewer, "PUT", "/devices/dev-1/tags", `{"tags":["x"]}`, 403, "forbidden"},
		{"viewer fans out", viewer, "POST", "/calls", `{"devices":["dev-1"],"method":"system.info"}`, 403, "forbidden"},
		{"other org accepts", stranger, "POST", "/devices/dev-1/accept", "", 404, "not_found"},
		{"other org reads", stranger, "GET", "/devices/dev-1", "", 404, "not_found"},
		{"other org calls", stranger, "POST", "/devices/dev-1/call", `{"method":"system.info","ttl":"1h"}`, 404, "not_found"},
		{"other org fans out", stranger, "POST", "/calls", `{"devices":["dev-1"],"method":"system.info"}`, 404, "not_found"},
		{"other org decommissions", stranger, "POST", "/devices/dev-1/decommission", "", 404, "not_found"},
		{"bad key", super, "POST", "/devices/dev-1/preauthorize", `{"public_key":"bm90IGEga2V5"}`, 400, "invalid_request"},
		{"revoke unknown token", super, "DELETE", "/tokens/999999", "", 404, "not_found"},
	}
	before := snapshot(t, srv, "dev-1")
	if before.Device.Status != "pending" {
		t.Fatalf("dev-1 is %s, want pending", before.Device.Status)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, b := call(t, srv.URL(), tt.token, tt.method, tt.path, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, b)
			}
			if e := decode[wire.ErrorBody](t, b).Error; e.Code != tt.wantCode || e.Message == "" {
				t.Fatalf("error %+v, want code %s", e, tt.wantCode)
			}
			if after := snapshot(t, srv, "dev-1"); !equalState(before, after) {
				t.Fatalf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	// Record a few of them for the docs.
	for _, tt := range tests[:1] {
		doc(t, srv.URL(), tt.token, tt.method, tt.path, tt.body)
	}
	doc(t, srv.URL(), super, "POST", "/devices/dev-1/call", `{"method":"system.info","retries":3}`)
	doc(t, srv.URL(), super, "POST", "/devices/dev-1/call", `{"method":"system.info","ttl":"forever"}`)
	doc(t, srv.URL(), viewer, "POST", "/devices/dev-1/accept", "")
	doc(t, srv.URL(), stranger, "GET", "/devices/dev-1", "")
}

func equalState(a, b state) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestAcceptNamesTheReviewedKey is the outside test's story over the API:
// tq-1 rotates to K2, the operator reviews K2, an attacker presents K3.
// While K1 is online K3 is refused and stored nowhere; while tq-1 is offline
// K3 becomes a second pending key. Accept without a fingerprint is then
// refused with both candidates and changes nothing; accept with K2's
// fingerprint accepts K2 and says so, rejects K3 and closes its session.
func TestAcceptNamesTheReviewedKey(t *testing.T) {
	srv := cloudtest.NewServer(t)
	tok, base := srv.Token(t), srv.URL()
	ctx := context.Background()
	fp := func(d *cloudtest.Device) string {
		der, _ := keys.PublicDER(d.Key.Public())
		return keys.FingerprintDER(der)
	}
	offline := func() {
		t.Helper()
		cloudtest.Eventually(t, 10*time.Second, func() bool {
			d, err := srv.Service().GetDevice(ctx, srv.Super, "tq-1")
			return err == nil && !d.Online
		}, "tq-1 offline")
	}

	d1 := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{})
	k1 := fp(d1)
	status, b := call(t, base, tok, "POST", "/devices/tq-1/accept", "")
	want(t, status, b, 200)
	if a := decode[wire.AcceptResponse](t, b); a.AcceptedFingerprint != k1 || a.Status != "accepted" {
		t.Fatalf("first accept: %+v", a)
	}
	<-d1.Accepted()
	d1.Close()
	offline()

	// The device rotates to K2 while offline; the operator reviews K2.
	d2 := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{})
	k2 := fp(d2)
	if d2.Registration.Status != "pending" || !d2.Registration.KeyChanged {
		t.Fatalf("K2 registration %+v", d2.Registration)
	}
	d2.Close()
	offline()
	status, b = doc(t, base, tok, "GET", "/devices/tq-1/keys", "")
	want(t, status, b, 200)
	if ks := decode[wire.KeySetList](t, b).Items; len(ks) != 2 || ks[0].Fingerprint != k2 || ks[0].Status != "pending" {
		t.Fatalf("keys %+v", ks)
	}

	// K1 online: K3 is refused and stored nowhere.
	d1b := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{Key: d1.Key})
	if d1b.Registration.Status != "accepted" {
		t.Fatalf("K1 again: %+v", d1b.Registration)
	}
	before := snapshot(t, srv, "tq-1")
	k3Key := cloudtest.NewKey()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if d, err := cloudtest.Connect(cctx, t, srv.DeviceURL(), srv.CloudPublic(), "tq-1", cloudtest.DeviceOptions{Key: k3Key}); err == nil {
		if code := d.WaitClosed(t, 5*time.Second); code != fleet.CloseTryAgainLater {
			t.Fatalf("K3 while K1 is online: close %d, want %d", code, fleet.CloseTryAgainLater)
		}
	}
	cancel()
	if after := snapshot(t, srv, "tq-1"); !equalState(before, after) {
		t.Fatalf("K3 while K1 is online changed the device:\nbefore %+v\nafter  %+v", before, after)
	}
	d1b.Close()
	offline()

	// Offline: K3 is stored as a second pending key (and stays connected).
	d3 := cloudtest.MustConnect(t, srv, "tq-1", cloudtest.DeviceOptions{Key: k3Key})
	k3 := fp(d3)
	if d3.Registration.Status != "pending" {
		t.Fatalf("K3 while offline: %+v", d3.Registration)
	}

	// No fingerprint: refused, both listed, nothing changed.
	before = snapshot(t, srv, "tq-1")
	status, b = doc(t, base, tok, "POST", "/devices/tq-1/accept", "")
	want(t, status, b, 409)
	e := decode[wire.ErrorBody](t, b).Error
	if e.Code != wire.CodeAmbiguousKey || len(e.Fingerprints) != 2 || e.Fingerprints[0] != k3 || e.Fingerprints[1] != k2 ||
		!strings.Contains(e.Message, k2) || !strings.Contains(e.Message, k3) || strings.Contains(e.Message, "store") {
		t.Fatalf("accept without a fingerprint: %+v", e)
	}
	if after := snapshot(t, srv, "tq-1"); !equalState(before, after) {
		t.Fatalf("a refused accept changed the device")
	}

	// K2 by its fingerprint: accepted and reported; K3 rejected, its live
	// session closed.
	status, b = doc(t, base, tok, "POST", "/devices/tq-1/accept", `{"fingerprint":"`+k2+`"}`)
	want(t, status, b, 200)
	a := decode[wire.AcceptResponse](t, b)
	if a.AcceptedFingerprint != k2 || a.Status != "accepted" || a.Fingerprint != k2 {
		t.Fatalf("accept K2: %+v", a)
	}
	if code := d3.WaitClosed(t, 5*time.Second); code != 4003 {
		t.Fatalf("K3's session closed with %d, want 4003", code)
	}
	offline() // the server's side of that close, before the snapshots below
	status, b = call(t, base, tok, "GET", "/devices/tq-1/keys", "")
	got := map[string]string{}
	for _, k := range decode[wire.KeySetList](t, b).Items {
		got[k.Fingerprint] = k.Status
	}
	if got[k1] != "revoked" || got[k2] != "accepted" || got[k3] != "rejected" {
		t.Fatalf("key statuses after accepting K2: %v", got)
	}

	// What accept refuses now, each changing nothing.
	for _, tc := range []struct {
		name, body, code, msg string
		status                int
	}{
		{"revoked key", `{"fingerprint":"` + k1 + `"}`, wire.CodeConflict, "key " + k1 + " of device tq-1 is revoked, and a revoked key is never accepted again", 409},
		{"nothing pending", `{}`, wire.CodeConflict, "device tq-1 has no pending key to accept: its key " + k2 + " is accepted", 409},
		{"malformed fingerprint", `{"fingerprint":"` + k2[:20] + `"}`, wire.CodeInvalidRequest, "fingerprint: want", 400},
		{"unknown field", `{"fingerprint":"` + k2 + `","force":true}`, wire.CodeInvalidRequest, `unknown field "force"`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, srv, "tq-1")
			status, b := doc(t, base, tok, "POST", "/devices/tq-1/accept", tc.body)
			want(t, status, b, tc.status)
			if e := decode[wire.ErrorBody](t, b).Error; e.Code != tc.code || !strings.HasPrefix(e.Message, tc.msg) {
				t.Fatalf("error %+v, want %s %q", e, tc.code, tc.msg)
			}
			if after := snapshot(t, srv, "tq-1"); !equalState(before, after) {
				t.Fatal("state changed")
			}
		})
	}
}

// TestRejectedDeviceAcceptedBack: a device rejected over the API is cut
// off (4003) and refused when it comes back; accepting its key by
// fingerprint brings it back, and its next connection is accepted. A wrong
// fingerprint is refused with a public message and changes nothing.
func TestRejectedDeviceAcceptedBack(t *testing.T) {
	srv := cloudtest.NewServer(t)
	tok, base := srv.Token(t), srv.URL()
	ctx := context.Background()
	d := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{})
	der, _ := keys.PublicDER(d.Key.Public())
	fp := keys.FingerprintDER(der)
	status, b := call(t, base, tok, "POST", "/devices/dev-2/accept", "")
	want(t, status, b, 200)
	<-d.Accepted()

	status, b = doc(t, base, tok, "POST", "/devices/dev-2/reject", "")
	want(t, status, b, 200)
	if dv := decode[wire.Device](t, b); dv.Status != "rejected" {
		t.Fatalf("after reject: %+v", dv)
	}
	if code := d.WaitClosed(t, 5*time.Second); code != 4003 {
		t.Fatalf("the rejected session closed with %d, want 4003", code)
	}
	cloudtest.Eventually(t, 10*time.Second, func() bool {
		dv, err := srv.Service().GetDevice(ctx, srv.Super, "dev-2")
		return err == nil && !dv.Online
	}, "dev-2 offline")
	// Coming back with the rejected key: refused, 4003.
	again := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{Key: d.Key})
	if again.Registration.Status != "rejected" {
		t.Fatalf("a rejected key registered as %+v", again.Registration)
	}
	if code := again.WaitClosed(t, 5*time.Second); code != 4003 {
		t.Fatalf("closed with %d, want 4003", code)
	}

	// The key set lists as rejected; a wrong fingerprint changes nothing.
	status, b = call(t, base, tok, "GET", "/devices/dev-2/keys", "")
	want(t, status, b, 200)
	if ks := decode[wire.KeySetList](t, b).Items; len(ks) != 1 || ks[0].Status != "rejected" {
		t.Fatalf("keys %+v", ks)
	}
	other := keys.FingerprintDER(func() []byte { d, _ := keys.PublicDER(cloudtest.NewKey().Public()); return d }())
	before := snapshot(t, srv, "dev-2")
	status, b = doc(t, base, tok, "POST", "/devices/dev-2/accept", `{"fingerprint":"`+other+`"}`)
	want(t, status, b, 409)
	if e := decode[wire.ErrorBody](t, b).Error; e.Code != wire.CodeConflict || e.Message != "device dev-2 has no key "+other {
		t.Fatalf("wrong fingerprint: %+v", e)
	}
	if after := snapshot(t, srv, "dev-2"); !equalState(before, after) {
		t.Fatal("a refused accept changed the device")
	}

	// Accept it back by its fingerprint.
	status, b = doc(t, base, tok, "POST", "/devices/dev-2/accept", `{"fingerprint":"`+fp+`"}`)
	want(t, status, b, 200)
	if a := decode[wire.AcceptResponse](t, b); a.AcceptedFingerprint != fp || a.Status != "accepted" {
		t.Fatalf("accept back: %+v", a)
	}
	back := cloudtest.MustConnect(t, srv, "dev-2", cloudtest.DeviceOptions{Key: d.Key})
	if back.Registration.Status != "accepted" {
		t.Fatalf("after the accept the device registered as %+v", back.Registration)
	}
	rows, err := srv.Service().AuditLog(ctx, srv.Super, fleet.AuditFilter{Action: "device.accept", Target: "dev-2", Limit: 1})
	var detail struct{ Fingerprint, Was string }
	if len(rows) == 1 {
		json.Unmarshal(rows[0].Detail, &detail)
	}
	if err != nil || len(rows) != 1 || detail.Was != "rejected" || detail.Fingerprint != fp {
		t.Fatalf("audit %+v (%+v), %v", rows, detail, err)
	}
}
