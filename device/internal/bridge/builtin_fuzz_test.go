package bridge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bosunhq/bosun/device/internal/builtin"
	"github.com/bosunhq/bosun/device/internal/datadir"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// builtinMethods are the built-in methods (docs/protocol.md §9.5), in the
// order FuzzBuiltinParams picks them by its first argument; the last is
// one no one serves.
var builtinMethods = []string{rpcproto.MethodRPCList, rpcproto.MethodSystemInfo, rpcproto.MethodContainersList,
	rpcproto.MethodContainersLogs, rpcproto.MethodLogsTail, rpcproto.MethodStateGet}

// maxBuiltinRefusal bounds a refusal's message plus data: the strict
// decoder quotes at most 40 bytes of the input, the methods' details
// name the rule.
const maxBuiltinRefusal = 400

// localRegistrar registers builtin's methods on a dispatcher, as
// bosun-sim's local worker does.
type localRegistrar struct {
	d       *jsonrpc.Dispatcher
	methods []rpcproto.MethodInfo
}

func (r *localRegistrar) Handle(method, description string, h jsonrpc.HandlerFunc) {
	r.d.Register(method, h)
	r.methods = append(r.methods, rpcproto.MethodInfo{Name: method, Description: description, Worker: "system"})
}

// FuzzBuiltinParams sends arbitrary params to each built-in method of a
// device: a real bridge (rpc.list is its own) whose local worker is
// bosun-worker's methods (package builtin) with a data directory holding
// logs and a state.json, and a container engine address where no engine
// listens. The request goes in as the cloud's bytes would, through
// forwardRequest. Whatever the params:
//   - a refusal is -32602 with a bounded message, or for params the
//     method can use the error it documents: -32005 (no engine), -32006
//     (no such log); never -32603;
//   - the methods without params ("none": rpc.list, system.info,
//     state.get) answer {} and absent alike and refuse any member;
//   - params a method uses re-encode to JSON that decodes to the same
//     value, within the method's rules (a container named, counts not
//     negative);
//   - nothing in the data directory changes.
func FuzzBuiltinParams(f *testing.F) {
	for _, s := range []struct {
		m byte
		p string
	}{
		{0, ``}, {0, `{}`}, {0, `null`}, {0, `7`}, {0, `{"x":1}`}, {0, `[]`}, {0, `{"All":true}`},
		{1, ``}, {1, `{}`}, {1, `{"verbose":true}`},
		{2, `{"all":false}`}, {2, `{"all":true}`}, {2, `{"All":true}`}, {2, `{"all":"yes"}`}, {2, `{"all":true,"all":false}`},
		{3, `{"container":"demo","tail":100,"since":"10m","timestamps":false}`}, {3, `{"container":"4f2a","since":"2026-12-01T00:00:00Z"}`},
		{3, `{}`}, {3, `{"container":""}`}, {3, `{"container":"demo","tail":-1}`}, {3, `{"container":"demo","since":"-5m"}`},
		{3, `{"container":"demo","since":"yesterday"}`}, {3, `{"container":"demo","tail":1e99}`}, {3, `{"Container":"demo"}`},
		{4, `{"file":"bridge","lines":100,"since":"10m"}`}, {4, `{}`}, {4, `{"file":"worker.log","lines":1}`}, {4, `{"file":"nope"}`},
		{4, `{"file":"../state"}`}, {4, `{"lines":-1}`}, {4, `{"since":"2026-12-01T00:00:00.5+02:00"}`}, {4, `{"lines":5001}`},
		{5, ``}, {5, `{}`}, {5, `{"device_id":"x"}`},
	} {
		f.Add(s.m, []byte(s.p))
	}

	dir := f.TempDir()
	logs := filepath.Join(dir, datadir.LogsDir)
	if err := os.MkdirAll(logs, 0o700); err != nil {
		f.Fatal(err)
	}
	for name, body := range map[string]string{
		"bridge.log": "time=2026-12-01T10:00:00Z level=INFO msg=started\ntime=2026-12-01T10:05:00Z level=INFO msg=accepted\n",
		"worker.log": `{"time":"2026-12-01T10:00:01Z","level":"INFO","msg":"serving"}` + "\n",
	} {
		if err := os.WriteFile(filepath.Join(logs, name), []byte(body), 0o600); err != nil {
			f.Fatal(err)
		}
	}
	if err := datadir.WriteState(dir, datadir.State{DeviceID: "dev-fuzz", ReportedAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Report: rpcproto.StateReportParams{Hostname: "rpi"}}); err != nil {
		f.Fatal(err)
	}
	m := builtin.New(builtin.Config{DataDir: dir, DockerHost: "unix://" + filepath.Join(dir, "no-engine.sock"),
		Now: func() time.Time { return time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC) }})
	f.Cleanup(m.Close)
	d := jsonrpc.NewDispatcher()
	d.SetLogger(slog.New(slog.DiscardHandler))
	reg := &localRegistrar{d: d}
	m.Register(reg)
	cloudPub, _, _ := ed25519.GenerateKey(nil)
	b, err := New(context.Background(), Options{DeviceID: "dev-fuzz", DataDir: f.TempDir(), CloudURL: "ws://127.0.0.1:1/v1/device",
		CloudKey: cloudPub, Logger: slog.New(slog.DiscardHandler), Local: &LocalWorker{Name: "system", Dispatcher: d, Methods: reg.methods}})
	if err != nil {
		f.Fatal(err)
	}
	before := dirState(f, dir)

	f.Fuzz(func(t *testing.T, which byte, params []byte) {
		if len(params) > 0 && (!json.Valid(params) || !utf8.Valid(params)) {
			return // not params: the request would be a parse error (FuzzHandle), the envelope refuses it first
		}
		method := builtinMethods[int(which)%len(builtinMethods)]
		req := map[string]any{"jsonrpc": "2.0", "id": 1, "method": method}
		if len(params) > 0 {
			req["params"] = json.RawMessage(params)
		}
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out := b.forwardRequest(ctx, raw)
		var resp struct {
			Result json.RawMessage `json:"result"`
			Error  *jsonrpc.Error  `json:"error"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("%s(%q): answer %q: %v", method, params, out, err)
		}
		if after := dirState(t, dir); !reflect.DeepEqual(after, before) {
			t.Fatalf("%s(%q) changed the data directory: %v -> %v", method, params, before, after)
		}
		none := method == rpcproto.MethodRPCList || method == rpcproto.MethodSystemInfo || method == rpcproto.MethodStateGet
		empty := noParams(params)
		if e := resp.Error; e != nil {
			if n := len(e.Message) + len(e.Data); n > maxBuiltinRefusal || e.Message == "" {
				t.Fatalf("%s(%q): refusal of %d bytes: %v", method, params, n, e)
			}
			if p := bytes.TrimSpace(params); e.Code == jsonrpc.CodeInvalidRequest && p[0] != '{' && p[0] != '[' {
				return // params that are not structured (null too) make the request invalid (pkg/jsonrpc)
			}
			if e.Code == jsonrpc.CodeInvalidParams {
				if none && empty {
					t.Fatalf("%s(%q): %v; want the method's answer for no params", method, params, e)
				}
				return
			}
			if !usable(t, method, params) {
				t.Fatalf("%s(%q): %v, want -32602 for params it cannot use", method, params, e)
			}
			switch {
			case (method == rpcproto.MethodContainersList || method == rpcproto.MethodContainersLogs) && e.Code == rpcproto.CodeUnavailable:
			case method == rpcproto.MethodLogsTail && e.Code == rpcproto.CodeNotFound:
			default:
				t.Fatalf("%s(%q): %v, not an error the method documents", method, params, e)
			}
			return
		}
		if none && !empty {
			t.Fatalf("%s(%q): answered %s; want -32602 for a member", method, params, resp.Result)
		}
		if !usable(t, method, params) {
			t.Fatalf("%s(%q): answered %s for params it cannot use", method, params, resp.Result)
		}
	})
}

// noParams reports whether params mean "none": absent, null or {}.
func noParams(params []byte) bool {
	p := bytes.TrimSpace(params)
	if len(p) == 0 || string(p) == "null" {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(p, &m) == nil && len(m) == 0 && p[0] == '{'
}

// usable decodes params as method's strict decoding does and reports
// whether the method can use them; params it can use must survive a
// round trip (re-encode, decode: the same value).
func usable(tb testing.TB, method string, params []byte) bool {
	tb.Helper()
	switch method {
	case rpcproto.MethodContainersList:
		_, ok := roundTripParams[rpcproto.ContainersListParams](tb, params)
		return ok
	case rpcproto.MethodContainersLogs:
		p, ok := roundTripParams[rpcproto.ContainersLogsParams](tb, params)
		return ok && p.Container != "" && p.Tail >= 0 && sinceOK(p.Since)
	case rpcproto.MethodLogsTail:
		p, ok := roundTripParams[rpcproto.LogsTailParams](tb, params)
		return ok && p.Lines >= 0 && sinceOK(p.Since)
	}
	return noParams(params)
}

// sinceOK is the rule of since: empty, an RFC 3339 time or a duration
// that is not negative.
func sinceOK(s string) bool {
	if s == "" {
		return true
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return true
	}
	d, err := time.ParseDuration(s)
	return err == nil && d >= 0
}

func roundTripParams[P any](tb testing.TB, params []byte) (P, bool) {
	tb.Helper()
	var p, again P
	if jsonrpc.DecodeParams(params, &p) != nil {
		return p, false
	}
	b, err := json.Marshal(p)
	if err != nil {
		tb.Fatalf("params %q: %+v does not re-encode: %v", params, p, err)
	}
	if err := jsonrpc.DecodeParams(b, &again); err != nil || !reflect.DeepEqual(p, again) {
		tb.Fatalf("params %q: %+v re-encodes to %s, which decodes to %+v (%v)", params, p, b, again, err)
	}
	return p, true
}

// dirState is every file below dir with its contents.
func dirState(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[strings.TrimPrefix(p, dir)] = string(b)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
