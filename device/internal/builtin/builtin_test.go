package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/device/internal/testpodman"
	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

func rpcCode(err error) int {
	var e *jsonrpc.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestSystemInfo(t *testing.T) {
	m := New(Config{DataDir: t.TempDir()})
	r, err := m.SystemInfo(context.Background(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Hostname == "" || r.OS == "" || r.Arch == "" || r.Versions["worker"] == "" {
		t.Errorf("incomplete: %+v", r)
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil {
		if r.MemTotalBytes == 0 || r.UptimeSeconds <= 0 || r.DiskTotal == 0 || r.Kernel == "" {
			t.Errorf("missing /proc figures: %+v", r)
		}
	}
}

// TestSystemInfoMaxAge: within SystemInfoMaxAge system.info answers the
// figures it read (the same uptime), after it reads them again.
func TestSystemInfoMaxAge(t *testing.T) {
	now := time.Now()
	m := New(Config{DataDir: t.TempDir(), Now: func() time.Time { return now }})
	a, err := m.SystemInfo(context.Background(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // /proc/uptime moves on
	now = now.Add(SystemInfoMaxAge - time.Millisecond)
	b, _ := m.SystemInfo(context.Background(), struct{}{})
	if a.UptimeSeconds != b.UptimeSeconds {
		t.Fatalf("within the max age: uptime %v then %v, want the same reading", a.UptimeSeconds, b.UptimeSeconds)
	}
	now = now.Add(time.Millisecond)
	c, _ := m.SystemInfo(context.Background(), struct{}{})
	if _, err := os.Stat("/proc/uptime"); err == nil && c.UptimeSeconds <= a.UptimeSeconds {
		t.Fatalf("at the max age: uptime %v after %v, want a new reading", c.UptimeSeconds, a.UptimeSeconds)
	}
}

func TestLogsTail(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	logs := filepath.Join(dir, datadir.LogsDir)
	os.MkdirAll(logs, 0o755)
	bridge := strings.Join([]string{
		"time=2025-06-01T10:00:00Z level=INFO msg=old",
		"time=2025-06-01T11:55:00Z level=INFO msg=recent-1",
		"  continuation of recent-1",
		"time=2025-06-01T11:59:00Z level=WARN msg=recent-2",
	}, "\n") + "\n"
	os.WriteFile(filepath.Join(logs, "bridge.log"), []byte(bridge), 0o644)
	os.WriteFile(filepath.Join(logs, "worker.log"), []byte(`{"time":"2025-06-01T11:58:00Z","msg":"w"}`+"\n"), 0o644)
	m := New(Config{DataDir: dir, Now: func() time.Time { return now }})

	tests := []struct {
		name     string
		p        rpcproto.LogsTailParams
		want     []string // file:line-suffix
		wantCode int
	}{
		{"all files", rpcproto.LogsTailParams{}, []string{"bridge:msg=old", "bridge:msg=recent-1", "bridge:recent-1", "bridge:msg=recent-2", "worker:\"w\"}"}, 0},
		{"one file, last line", rpcproto.LogsTailParams{File: "bridge", Lines: 1}, []string{"bridge:msg=recent-2"}, 0},
		{"since a duration", rpcproto.LogsTailParams{File: "bridge", Since: "10m"}, []string{"bridge:msg=recent-1", "bridge:recent-1", "bridge:msg=recent-2"}, 0},
		{"since a time", rpcproto.LogsTailParams{Since: "2025-06-01T11:58:00Z"}, []string{"bridge:msg=recent-2", "worker:\"w\"}"}, 0},
		{"no such log", rpcproto.LogsTailParams{File: "nope"}, nil, rpcproto.CodeNotFound},
		{"path traversal", rpcproto.LogsTailParams{File: "../state"}, nil, jsonrpc.CodeInvalidParams},
		{"bad since", rpcproto.LogsTailParams{Since: "yesterday"}, nil, jsonrpc.CodeInvalidParams},
		{"negative lines", rpcproto.LogsTailParams{Lines: -1}, nil, jsonrpc.CodeInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := m.LogsTail(context.Background(), tt.p)
			if rpcCode(err) != tt.wantCode {
				t.Fatalf("err = %v, want code %d", err, tt.wantCode)
			}
			if tt.wantCode != 0 {
				return
			}
			if len(r.Lines) != len(tt.want) {
				t.Fatalf("got %d lines %+v, want %d", len(r.Lines), r.Lines, len(tt.want))
			}
			for i, w := range tt.want {
				file, suffix, _ := strings.Cut(w, ":")
				if r.Lines[i].File != file || !strings.HasSuffix(r.Lines[i].Line, suffix) {
					t.Errorf("line %d = %+v, want %s", i, r.Lines[i], w)
				}
			}
		})
	}
}

func TestStateGet(t *testing.T) {
	dir := t.TempDir()
	m := New(Config{DataDir: dir})
	if _, err := m.StateGet(context.Background(), struct{}{}); rpcCode(err) != rpcproto.CodeNotFound {
		t.Fatalf("no state.json: err = %v, want not found", err)
	}
	want := datadir.State{DeviceID: "dev-1", ReportedAt: time.Unix(100, 0).UTC(),
		Report: rpcproto.StateReportParams{Hostname: "h", Workers: []string{"system"}}}
	if err := datadir.WriteState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := m.StateGet(context.Background(), struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if got.DeviceID != want.DeviceID || !got.ReportedAt.Equal(want.ReportedAt) || !slices.Equal(got.Report.Workers, want.Report.Workers) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestContainersNoEngine(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	m := New(Config{DataDir: t.TempDir(), DockerHost: host})
	defer m.Close()
	tests := []struct {
		name string
		call func() error
	}{
		{"containers.list", func() error {
			_, err := m.ContainersList(context.Background(), rpcproto.ContainersListParams{})
			return err
		}},
		{"containers.logs", func() error {
			_, err := m.ContainersLogs(context.Background(), rpcproto.ContainersLogsParams{Container: "x"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if rpcCode(err) != rpcproto.CodeUnavailable {
				t.Fatalf("err = %v, want code %d", err, rpcproto.CodeUnavailable)
			}
			if !strings.Contains(err.Error(), host) {
				t.Errorf("error %q does not name the socket %s", err, host)
			}
		})
	}
}

func TestContainersRealEngine(t *testing.T) {
	sock := testpodman.Socket(t)
	name := testpodman.DemoContainer()
	m := New(Config{DataDir: t.TempDir(), DockerHost: "unix://" + sock})
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := m.ContainersList(ctx, rpcproto.ContainersListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list.Containers, func(c rpcproto.Container) bool { return c.Name == name }) {
		t.Fatalf("demo container %q not listed: %+v", name, list.Containers)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		logs, err := m.ContainersLogs(ctx, rpcproto.ContainersLogsParams{Container: name, Tail: 3, Since: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(logs.Lines, func(l rpcproto.LogLine) bool {
			return l.Stream == "stdout" && strings.Contains(l.Line, "hello")
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hello line: %+v", logs.Lines)
		}
		tm := time.NewTimer(200 * time.Millisecond)
		<-tm.C
	}
	_, err = m.ContainersLogs(ctx, rpcproto.ContainersLogsParams{Container: "no-such-container-here"})
	if rpcCode(err) != rpcproto.CodeNotFound {
		t.Errorf("unknown container: err = %v, want code %d", err, rpcproto.CodeNotFound)
	}
}

// handlers keeps what Register registers, to call it as the worker would.
type handlers map[string]worker.HandlerFunc

func (h handlers) Handle(method, _ string, fn worker.HandlerFunc) { h[method] = fn }

// TestParamsStrict sends every method params with a case variant, an
// unknown member or a duplicate: each is refused with -32602 naming the
// member and the method does not run. That it did not run shows in the
// clock (containers.logs and logs.tail read it first) or in the reply: run,
// system.info and state.get would succeed and containers.list would report
// no engine.
func TestParamsStrict(t *testing.T) {
	dir := t.TempDir()
	if err := datadir.WriteState(dir, datadir.State{DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int32
	m := New(Config{
		DataDir:    dir,
		DockerHost: "unix://" + filepath.Join(t.TempDir(), "docker.sock"),
		Now:        func() time.Time { clock.Add(1); return time.Now() },
	})
	defer m.Close()
	h := handlers{}
	m.Register(h)

	tests := []struct {
		name    string
		method  string
		params  string
		wantErr string // the message; "" means the method runs
	}{
		{"containers.logs case variant", rpcproto.MethodContainersLogs, `{"Container":"x"}`, `Invalid params: unknown field "Container"`},
		{"containers.logs case variant after the key", rpcproto.MethodContainersLogs, `{"container":"x","tail":1,"TAIL":2}`, `Invalid params: unknown field "TAIL"`},
		{"containers.logs duplicate", rpcproto.MethodContainersLogs, `{"container":"x","tail":1,"tail":2}`, `Invalid params: duplicate field "tail"`},
		{"containers.logs unknown", rpcproto.MethodContainersLogs, `{"container":"x","follow":true}`, `Invalid params: unknown field "follow"`},
		{"logs.tail case variant", rpcproto.MethodLogsTail, `{"Lines":5}`, `Invalid params: unknown field "Lines"`},
		{"logs.tail unknown", rpcproto.MethodLogsTail, `{"lines":5,"tail":5}`, `Invalid params: unknown field "tail"`},
		{"logs.tail exact runs", rpcproto.MethodLogsTail, `{"lines":5}`, ``},
		{"containers.list case variant", rpcproto.MethodContainersList, `{"All":true}`, `Invalid params: unknown field "All"`},
		{"containers.list unknown", rpcproto.MethodContainersList, `{"all":true,"limit":1}`, `Invalid params: unknown field "limit"`},
		{"system.info unknown", rpcproto.MethodSystemInfo, `{"verbose":true}`, `Invalid params: unknown field "verbose"`},
		{"system.info without params runs", rpcproto.MethodSystemInfo, `{}`, ``},
		{"state.get unknown", rpcproto.MethodStateGet, `{"Device_ID":"dev-1"}`, `Invalid params: unknown field "Device_ID"`},
		{"state.get without params runs", rpcproto.MethodStateGet, `{}`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := h[tt.method]
			if fn == nil {
				t.Fatalf("%s is not registered", tt.method)
			}
			clock.Store(0)
			_, err := fn(context.Background(), json.RawMessage(tt.params))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want the method to run", err)
				}
				if tt.method == rpcproto.MethodLogsTail && clock.Load() == 0 {
					t.Fatal("logs.tail ran without reading the clock: the test cannot tell a run")
				}
				return
			}
			var e *jsonrpc.Error
			if !errors.As(err, &e) || e.Code != jsonrpc.CodeInvalidParams || e.Message != tt.wantErr {
				t.Fatalf("err = %#v\nwant code %d, message %s", err, jsonrpc.CodeInvalidParams, tt.wantErr)
			}
			if n := clock.Load(); n != 0 {
				t.Fatalf("the method ran: it read the clock %d times", n)
			}
		})
	}
}
