package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bosunhq/bosun/device/worker"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

func startNATS(tb testing.TB, token string) *server.Server {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true, Authorization: token})
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		tb.Fatal("nats not ready")
	}
	tb.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func TestValidMethod(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"system.info", true},
		{"camera.snapshot-2_b", true},
		{"", false},
		{"a..b", false},
		{".a", false},
		{"a.*", false},
		{"a.>", false},
		{"a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := worker.ValidMethod(tt.name); got != tt.ok {
				t.Errorf("ValidMethod(%q) = %v", tt.name, got)
			}
		})
	}
}

func TestConnectFromDataDir(t *testing.T) {
	srv := startNATS(t, "s3cret")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "nats.url"), []byte(srv.ClientURL()+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "nats.token"), []byte("s3cret\n"), 0o600)
	nc, err := worker.Connect(worker.ConnectOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatalf("not connected with the token from the data dir: %v", err)
	}
	if _, err := worker.Connect(worker.ConnectOptions{DataDir: t.TempDir()}); err == nil {
		t.Error("connect without nats.url succeeded")
	}
}

// TestRunDrainsAndWithdraws: a request in flight when ctx ends still gets
// its answer, and the worker withdraws its announcement.
func TestRunDrainsAndWithdraws(t *testing.T) {
	srv := startNATS(t, "")
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	started := make(chan struct{})
	release := make(chan struct{})
	w := worker.New(nc, "slowpoke", worker.Options{Logger: slog.New(slog.DiscardHandler)})
	w.Handle("slow.op", "Slow", func(ctx context.Context, _ json.RawMessage) (any, error) {
		close(started)
		<-release
		return "done", nil
	})
	announces := make(chan rpcproto.WorkerAnnounce, 8)
	obs, _ := nats.Connect(srv.ClientURL())
	defer obs.Close()
	obs.Subscribe(rpcproto.SubjectAnnounce, func(m *nats.Msg) {
		var a rpcproto.WorkerAnnounce
		json.Unmarshal(m.Data, &a)
		announces <- a
	})
	obs.Flush()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if a := <-announces; len(a.Methods) != 1 {
		t.Fatalf("announce = %+v", a)
	}
	// The bridge asks again: the worker answers.
	obs.Publish(rpcproto.SubjectDiscover, nil)
	if a := <-announces; a.Worker != "slowpoke" || len(a.Methods) != 1 {
		t.Fatalf("re-announce = %+v", a)
	}
	replyc := make(chan *nats.Msg, 1)
	go func() {
		m, err := obs.Request("bosun.rpc.slow.op", []byte(`{"jsonrpc":"2.0","id":1,"method":"slow.op"}`), 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		replyc <- m
	}()
	<-started
	cancel()
	if a := <-announces; len(a.Methods) != 0 {
		t.Fatalf("withdrawal = %+v", a)
	}
	close(release)
	if m := <-replyc; m == nil || string(m.Data) != `{"jsonrpc":"2.0","result":"done","id":1}` {
		t.Fatalf("reply = %v", m)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Once stopped, nobody serves the method.
	if _, err := obs.Request("bosun.rpc.slow.op", []byte(`{}`), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("after stop: %v, want no responders", err)
	}
}

func TestCallWithoutBridge(t *testing.T) {
	srv := startNATS(t, "")
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	w := worker.New(nc, "caller")
	err := w.Call(context.Background(), "state.report", map[string]string{}, nil)
	var e *jsonrpc.Error
	if !errors.As(err, &e) || e.Code != rpcproto.CodeDeviceOffline {
		t.Fatalf("err = %v, want code %d", err, rpcproto.CodeDeviceOffline)
	}
}

func TestCallRelaysErrorsAndResults(t *testing.T) {
	srv := startNATS(t, "")
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	// A stand-in bridge.
	nc.Subscribe("bosun.cloud.>", func(m *nats.Msg) {
		if m.Subject == "bosun.cloud.ota.latest" {
			m.Respond([]byte(`{"jsonrpc":"2.0","result":{"version":"1.2"},"id":null}`))
			return
		}
		m.Respond([]byte(`{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":null}`))
	})
	nc.Flush()
	var res struct {
		Version string `json:"version"`
	}
	if err := worker.Call(context.Background(), nc, "ota.latest", nil, &res); err != nil || res.Version != "1.2" {
		t.Fatalf("result %+v, err %v", res, err)
	}
	err := worker.Call(context.Background(), nc, "no.such", nil, nil)
	var e *jsonrpc.Error
	if !errors.As(err, &e) || e.Code != jsonrpc.CodeMethodNotFound {
		t.Fatalf("err = %v", err)
	}
}

func TestHandleRejectsBadNames(t *testing.T) {
	w := worker.New(nil, "x")
	defer func() {
		if recover() == nil {
			t.Error("Handle accepted an invalid method name")
		}
	}()
	w.Handle("bad name", "", nil)
}

// TestStrictParams: params that do not name a field exactly (case
// included), unknown members and duplicated ones are refused with -32602
// naming the member, and the handler does not run; through Func and
// through DecodeParams in a raw handler alike.
func TestStrictParams(t *testing.T) {
	type greetParams struct {
		Name  string `json:"name"`
		Times int    `json:"times,omitempty"`
	}
	srv := startNATS(t, "")
	nc, _ := nats.Connect(srv.ClientURL())
	defer nc.Close()
	var calls atomic.Int32
	w := worker.New(nc, "strict", worker.Options{Logger: slog.New(slog.DiscardHandler)})
	w.Handle("greet.typed", "Typed", worker.Func(func(ctx context.Context, p greetParams) (string, error) {
		calls.Add(1)
		return "hello, " + p.Name, nil
	}))
	w.Handle("greet.raw", "Raw", func(ctx context.Context, params json.RawMessage) (any, error) {
		var p greetParams
		if err := worker.DecodeParams(params, &p); err != nil {
			return nil, err
		}
		calls.Add(1)
		return "hello, " + p.Name, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	tests := []struct {
		name   string
		params string
		reply  string // the reply without its envelope: result or error
	}{
		{"exact", `{"name":"Ada"}`, `"result":"hello, Ada"`},
		{"case variant", `{"Name":"Ada"}`, `"error":{"code":-32602,"message":"Invalid params: unknown field \"Name\""}`},
		{"case variant after the exact key", `{"name":"Ada","NAME":"Eve"}`, `"error":{"code":-32602,"message":"Invalid params: unknown field \"NAME\""}`},
		{"unknown", `{"name":"Ada","tmes":2}`, `"error":{"code":-32602,"message":"Invalid params: unknown field \"tmes\""}`},
		{"duplicate", `{"name":"Ada","name":"Eve"}`, `"error":{"code":-32602,"message":"Invalid params: duplicate field \"name\""}`},
	}
	for _, method := range []string{"greet.typed", "greet.raw"} {
		for _, tt := range tests {
			t.Run(method+"/"+tt.name, func(t *testing.T) {
				calls.Store(0)
				req := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + tt.params + `}`
				var m *nats.Msg
				// The first request may beat the subscription to the server.
				eventually(t, func() bool {
					var err error
					m, err = nc.Request(rpcproto.SubjectRPCPrefix+method, []byte(req), 5*time.Second)
					return err == nil
				})
				if want := `{"jsonrpc":"2.0",` + tt.reply + `,"id":1}`; string(m.Data) != want {
					t.Fatalf("reply\n got %s\nwant %s", m.Data, want)
				}
				wantCalls := int32(0)
				if strings.HasPrefix(tt.reply, `"result"`) {
					wantCalls = 1
				}
				if n := calls.Load(); n != wantCalls {
					t.Fatalf("the handler ran %d times, want %d", n, wantCalls)
				}
			})
		}
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met before the deadline")
		}
		tm := time.NewTimer(10 * time.Millisecond)
		<-tm.C
	}
}
