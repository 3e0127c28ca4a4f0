package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// demoDevice connects a pending test device that serves the worker methods
// the dashboard calls (but not ota.*, like a device without the OTA worker).
func demoDevice(t testing.TB, s *cloudtest.Server, id string) *cloudtest.Device {
	t.Helper()
	disp := jsonrpc.NewDispatcher()
	disp.Register(rpcproto.MethodRPCList, func(ctx context.Context, p json.RawMessage) (any, error) {
		return rpcproto.RPCListResult{Methods: []rpcproto.MethodInfo{
			{Name: "system.info", Description: "Host facts"},
			{Name: "containers.list", Description: "List containers"},
			{Name: "containers.logs", Description: "Container logs"},
		}}, nil
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
	mustContain(t, r, "dev-1", "SHA256:", "serial", "SN-1")

	// Accept with a plain form post (no JavaScript).
	r = b.post("/pending", url.Values{"act": {"accept:dev-1"}})
	wantStatus(t, r, http.StatusSeeOther)
	select {
	case <-d.Accepted():
	case <-time.After(5 * time.Second):
		t.Fatal("the device was not told auth.accepted")
	}
	r = b.get("/pending")
	mustContain(t, r, "Accepted dev-1.", "No device is waiting.")

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

	r = b.post("/devices/dev-1/methods", nil, "HX-Request", "true", "X-CSRF-Token", b.csrf)
	mustContain(t, r, `<select name="method"`, "containers.logs")

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
