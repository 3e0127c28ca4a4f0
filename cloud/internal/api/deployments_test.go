package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// deployServer is a replica whose deployments engine ticks fast.
func deployServer(t *testing.T) *cloudtest.Server {
	t.Helper()
	return cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) {
		c.Deployments = fleet.DeploymentOptions{Tick: 50 * time.Millisecond, RetryBackoff: time.Millisecond}
	}))
}

// otaWorker makes d answer ota.update like bosun-ota and report the
// update through to succeeded.
func otaWorker(t *testing.T, d *cloudtest.Device) {
	t.Helper()
	var seq uint64
	d.Handle(rpcproto.MethodOTAUpdate, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p rpcproto.OTAUpdateParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		go func() {
			for _, st := range []string{rpcproto.OTADownloading, rpcproto.OTAInstalling, rpcproto.OTAAwaitingCommit, rpcproto.OTASucceeded} {
				seq++
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var res fleet.OTAStatusResult
				d.Peer.Call(ctx, rpcproto.MethodOTAStatus, rpcproto.OTAStatusParams{ID: p.ID, Seq: seq, Target: p.Target,
					Status: st, At: time.Now()}, &res)
				cancel()
			}
		}()
		return rpcproto.OTAUpdateResult{ID: p.ID, Slot: "b", Status: "downloading"}, nil
	})
	if err := d.ReportMethods(context.Background(), rpcproto.MethodOTAUpdate); err != nil {
		t.Fatal(err)
	}
}

// deploymentState counts what a refusal must not change.
func deploymentState(t *testing.T, srv *cloudtest.Server) string {
	t.Helper()
	var deps, members, calls int
	pool := srv.Service().Store().Pool()
	ctx := context.Background()
	for q, n := range map[string]*int{"SELECT count(*) FROM deployments": &deps, "SELECT count(*) FROM deployment_devices": &members,
		"SELECT count(*) FROM calls": &calls} {
		if err := pool.QueryRow(ctx, q).Scan(n); err != nil {
			t.Fatal(err)
		}
	}
	var states string
	if err := pool.QueryRow(ctx, `SELECT coalesce(string_agg(id || ':' || state, ',' ORDER BY id), '') FROM deployments`).Scan(&states); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("deployments %d members %d calls %d states %s", deps, members, calls, states)
}

// TestDeploymentsAPI: create, list, show, pause, resume and the version
// breakdown through the API, to a device that updates; then abort.
func TestDeploymentsAPI(t *testing.T) {
	srv := deployServer(t)
	base, tok := srv.URL(), srv.Token(t)
	rt := newRoleTokens(t, srv)
	d := acceptedDevice(t, srv, "api-dep-1")
	otaWorker(t, d)
	if st, b := upload(t, base, tok, "hello", "2.0.0", []byte("bundle"), false); st != http.StatusCreated {
		t.Fatalf("upload: %d %s", st, b)
	}
	cloudtest.InitRelease(t, srv, srv.Super).Sign(t, "hello", "2.0.0", []byte("bundle"))
	resp, b := send(t, base, "POST", "/api/v1/deployments", rt.operator,
		`{"name":"hello","version":"2.0.0","devices":["api-dep-1"],"phases":[100],"failure_threshold":0,"commit_timeout":60}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	dep := decode[wire.Deployment](t, b)
	if dep.State != "running" || dep.FailureThreshold != 0 || dep.CommitTimeout != 60 || dep.MaxAttempts != 3 ||
		dep.Total != 1 || resp.Header.Get("Location") != fmt.Sprintf("/api/v1/deployments/%d", dep.ID) {
		t.Fatalf("created %s (Location %s)", b, resp.Header.Get("Location"))
	}
	path := fmt.Sprintf("/api/v1/deployments/%d", dep.ID)
	cloudtest.Eventually(t, 20*time.Second, func() bool {
		_, b := send(t, base, "GET", path, rt.viewer, "")
		return decode[wire.DeploymentDetail](t, b).State == "completed"
	}, "deployment completed")
	_, b = send(t, base, "GET", path, rt.viewer, "")
	det := decode[wire.DeploymentDetail](t, b)
	if len(det.Members) != 1 || det.Members[0].DeviceID != "api-dep-1" || det.Members[0].Status != "succeeded" ||
		det.Members[0].Attempts != 1 || det.Counts["succeeded"] != 1 || det.FinishedAt == nil {
		t.Fatalf("detail %s", b)
	}
	resp, b = send(t, base, "GET", "/api/v1/deployments?state=completed", rt.viewer, "")
	if l := decode[wire.DeploymentList](t, b); resp.StatusCode != 200 || len(l.Items) != 1 || l.Items[0].ID != dep.ID {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	resp, b = send(t, base, "GET", "/api/v1/deployments?state=running", rt.viewer, "")
	if l := decode[wire.DeploymentList](t, b); resp.StatusCode != 200 || len(l.Items) != 0 {
		t.Fatalf("list running: %d %s", resp.StatusCode, b)
	}
	resp, b = send(t, base, "GET", "/api/v1/ota/versions?name=hello", rt.viewer, "")
	if v := decode[wire.VersionList](t, b); resp.StatusCode != 200 || len(v.Items) != 1 || v.Items[0] != (wire.VersionCount{Version: "2.0.0", Devices: 1}) {
		t.Fatalf("versions: %d %s", resp.StatusCode, b)
	}
	// A scheduled one: pause, resume, abort.
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	_, b = send(t, base, "POST", "/api/v1/deployments", rt.operator,
		`{"name":"hello","version":"2.0.0","devices":["api-dep-1"],"not_before":"`+later+`"}`)
	dep2 := decode[wire.Deployment](t, b)
	if dep2.State != "scheduled" {
		t.Fatalf("not before later: %s", b)
	}
	p2 := fmt.Sprintf("/api/v1/deployments/%d", dep2.ID)
	for _, step := range []struct{ action, state string }{{"pause", "paused"}, {"resume", "scheduled"}, {"abort", "aborted"}} {
		resp, b := send(t, base, "POST", p2+"/"+step.action, rt.operator, "")
		if resp.StatusCode != 200 || decode[wire.Deployment](t, b).State != step.state {
			t.Fatalf("%s: %d %s", step.action, resp.StatusCode, b)
		}
	}
}

// TestDeploymentsAPIRejections: every bad request is a clear error of
// the right status and changes nothing (rows and states counted).
func TestDeploymentsAPIRejections(t *testing.T) {
	srv := deployServer(t)
	base, tok := srv.URL(), srv.Token(t)
	rt := newRoleTokens(t, srv)
	acceptedDevice(t, srv, "rej-1")
	if st, b := upload(t, base, tok, "hello", "2.0.0", []byte("bundle"), false); st != http.StatusCreated {
		t.Fatalf("upload: %d %s", st, b)
	}
	cloudtest.InitRelease(t, srv, srv.Super).Sign(t, "hello", "2.0.0", []byte("bundle"))
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	_, b := send(t, base, "POST", "/api/v1/deployments", rt.operator,
		`{"name":"hello","version":"2.0.0","devices":["rej-1"],"not_before":"`+later+`"}`)
	dep := decode[wire.Deployment](t, b)
	p := fmt.Sprintf("/api/v1/deployments/%d", dep.ID)
	ok := `{"name":"hello","version":"2.0.0","devices":["rej-1"]}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code, msg                       string
	}{
		{"malformed JSON", "POST", "/api/v1/deployments", rt.operator, `{"name":`, 400, "invalid_request", "malformed JSON"},
		{"unknown field", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"phase":[1]}`, 400, "invalid_request", "unknown field"},
		{"empty body", "POST", "/api/v1/deployments", rt.operator, ``, 400, "invalid_request", "empty"},
		{"phases not increasing", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"phases":[60,40,100]}`, 400, "invalid_request", "strictly increasing"},
		{"last phase not 100", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"phases":[50]}`, 400, "invalid_request", "last phase must be 100"},
		{"threshold 101", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"failure_threshold":101}`, 400, "invalid_request", "failure_threshold"},
		{"negative commit timeout", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"commit_timeout":-1}`, 400, "invalid_request", "commit_timeout"},
		{"max attempts 0 < x", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"max_attempts":-3}`, 400, "invalid_request", "max_attempts"},
		{"unknown artifact", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"3.0.0","devices":["rej-1"]}`, 400, "invalid_request", "does not exist"},
		{"no devices, no tag", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0"}`, 400, "invalid_request", "name the devices"},
		{"string for a number", "POST", "/api/v1/deployments", rt.operator, `{"name":"hello","version":"2.0.0","devices":["rej-1"],"max_in_flight":"5"}`, 400, "invalid_request", "max_in_flight"},
		{"viewer creates", "POST", "/api/v1/deployments", rt.viewer, ok, 403, "forbidden", ""},
		{"other org creates", "POST", "/api/v1/deployments", rt.other, ok, 400, "invalid_request", "does not exist"},
		{"no token", "POST", "/api/v1/deployments", "", ok, 401, "unauthenticated", ""},
		{"viewer pauses", "POST", p + "/pause", rt.viewer, "", 403, "forbidden", ""},
		{"other org pauses", "POST", p + "/pause", rt.other, "", 404, "not_found", "not found"},
		{"other org reads", "GET", p, rt.other, "", 404, "not_found", "not found"},
		{"resume scheduled", "POST", p + "/resume", rt.operator, "", 409, "conflict", "only a paused deployment"},
		{"bad id", "GET", "/api/v1/deployments/x", rt.viewer, "", 400, "invalid_request", "positive integer"},
		{"no such deployment", "POST", "/api/v1/deployments/999/abort", rt.operator, "", 404, "not_found", "deployment 999 not found"},
		{"unknown action", "POST", p + "/restart", rt.operator, "", 404, "not_found", ""},
		{"bad state filter", "GET", "/api/v1/deployments?state=done", rt.viewer, "", 400, "invalid_request", "state"},
		{"unknown query parameter", "GET", "/api/v1/deployments?tag=x", rt.viewer, "", 400, "invalid_request", "tag"},
		{"versions without name", "GET", "/api/v1/ota/versions", rt.viewer, "", 400, "invalid_request", "name is required"},
		{"versions bad name", "GET", "/api/v1/ota/versions?name=Bad!", rt.viewer, "", 400, "invalid_request", "artifact name"},
		{"action with a body", "POST", p + "/pause", rt.operator, `{"x":1}`, 400, "invalid_request", "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := deploymentState(t, srv)
			resp, b := send(t, base, c.method, c.path, c.token, c.body)
			e := errorOf(t, resp, b)
			if resp.StatusCode != c.status || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
				t.Fatalf("%d %s, want %d %s saying %q", resp.StatusCode, b, c.status, c.code, c.msg)
			}
			if after := deploymentState(t, srv); after != before {
				t.Fatalf("changed: %s → %s", before, after)
			}
		})
	}
}
