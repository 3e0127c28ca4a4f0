package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoDispatcher serves "echo" (returns its params), "rpc.list" and a few
// methods that misbehave on purpose.
func echoDispatcher(tb testing.TB) *Dispatcher {
	tb.Helper()
	d := NewDispatcher()
	d.Register("echo", func(ctx context.Context, params json.RawMessage) (any, error) {
		return params, nil
	})
	d.Register("rpc.list", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return d.Methods(), nil
	})
	d.Register("nil", func(ctx context.Context, _ json.RawMessage) (any, error) { return nil, nil })
	d.Register("panic", func(ctx context.Context, _ json.RawMessage) (any, error) { panic("boom") })
	d.Register("fail", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return nil, errors.New("secret database password is hunter2")
	})
	d.Register("app_error", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return "ignored", fmt.Errorf("looking up: %w", NewError(-32006, "not found", map[string]string{"id": "x"}))
	})
	d.Register("nil_error", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return nil, (*Error)(nil)
	})
	d.Register("unmarshallable", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return func() {}, nil
	})
	d.Register("bad_data", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return nil, &Error{Code: 1, Message: "m", Data: json.RawMessage(`{bad`)}
	})
	return d
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		reply string // "" means no reply (nil)
	}{
		// ids of every allowed type, echoed byte for byte
		{"id string", `{"jsonrpc":"2.0","method":"nil","id":"a-1"}`, `{"jsonrpc":"2.0","result":null,"id":"a-1"}`},
		{"id string with escapes", `{"jsonrpc":"2.0","method":"nil","id":"\u00e9\"x"}`, `{"jsonrpc":"2.0","result":null,"id":"\u00e9\"x"}`},
		{"id empty string", `{"jsonrpc":"2.0","method":"nil","id":""}`, `{"jsonrpc":"2.0","result":null,"id":""}`},
		{"id zero", `{"jsonrpc":"2.0","method":"nil","id":0}`, `{"jsonrpc":"2.0","result":null,"id":0}`},
		{"id negative", `{"jsonrpc":"2.0","method":"nil","id":-7}`, `{"jsonrpc":"2.0","result":null,"id":-7}`},
		{"id fractional", `{"jsonrpc":"2.0","method":"nil","id":1.50}`, `{"jsonrpc":"2.0","result":null,"id":1.50}`},
		{"id exponent", `{"jsonrpc":"2.0","method":"nil","id":1E+2}`, `{"jsonrpc":"2.0","result":null,"id":1E+2}`},
		{"id beyond uint64", `{"jsonrpc":"2.0","method":"nil","id":123456789012345678901234567890}`, `{"jsonrpc":"2.0","result":null,"id":123456789012345678901234567890}`},
		{"id beyond float64", `{"jsonrpc":"2.0","method":"nil","id":1e400}`, `{"jsonrpc":"2.0","result":null,"id":1e400}`},
		{"id null is a request", `{"jsonrpc":"2.0","method":"nil","id":null}`, `{"jsonrpc":"2.0","result":null,"id":null}`},
		{"id null, missing method", `{"jsonrpc":"2.0","method":"nope","id":null}`, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":null}`},
		{"id object", `{"jsonrpc":"2.0","method":"nil","id":{"a":1}}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"id array", `{"jsonrpc":"2.0","method":"nil","id":[1]}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"id boolean", `{"jsonrpc":"2.0","method":"nil","id":true}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"id duplicated", `{"jsonrpc":"2.0","method":"nil","id":1,"id":2}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},

		// params
		{"params array", `{"jsonrpc":"2.0","method":"echo","params":[1, "two"],"id":1}`, `{"jsonrpc":"2.0","result":[1,"two"],"id":1}`},
		{"params object", `{"jsonrpc":"2.0","method":"echo","params":{"a" : 1},"id":1}`, `{"jsonrpc":"2.0","result":{"a":1},"id":1}`},
		{"params empty array", `{"jsonrpc":"2.0","method":"echo","params":[],"id":1}`, `{"jsonrpc":"2.0","result":[],"id":1}`},
		{"params omitted", `{"jsonrpc":"2.0","method":"echo","id":1}`, `{"jsonrpc":"2.0","result":null,"id":1}`},
		{"params string", `{"jsonrpc":"2.0","method":"echo","params":"x","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"params number", `{"jsonrpc":"2.0","method":"echo","params":3,"id":"k"}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":"k"}`},
		{"params boolean", `{"jsonrpc":"2.0","method":"echo","params":false,"id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"params null", `{"jsonrpc":"2.0","method":"echo","params":null,"id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"params invalid in a notification", `{"jsonrpc":"2.0","method":"echo","params":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},

		// the "jsonrpc" member
		{"jsonrpc missing", `{"method":"nil","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","method":"nil","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"jsonrpc a number", `{"jsonrpc":2.0,"method":"nil","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"jsonrpc with a space", `{"jsonrpc":"2.0 ","method":"nil","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"jsonrpc escaped", `{"jsonrpc":"2\u002e0","method":"nil","id":1}`, `{"jsonrpc":"2.0","result":null,"id":1}`},
		{"jsonrpc duplicated", `{"jsonrpc":"2.0","jsonrpc":"1.0","method":"nil","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"member names are case-sensitive", `{"JSONRPC":"2.0","method":"nil","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},

		// the "method" member
		{"method missing", `{"jsonrpc":"2.0","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"method null", `{"jsonrpc":"2.0","method":null,"id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"method duplicated", `{"jsonrpc":"2.0","method":"nil","method":"panic","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"method escaped", `{"jsonrpc":"2.0","method":"ni\u006c","id":1}`, `{"jsonrpc":"2.0","result":null,"id":1}`},
		{"method empty", `{"jsonrpc":"2.0","method":"","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}`},
		{"method rpc. prefix is served", `{"jsonrpc":"2.0","method":"rpc.list","id":1}`, `{"jsonrpc":"2.0","result":["app_error","bad_data","echo","fail","nil","nil_error","panic","rpc.list","unmarshallable"],"id":1}`},

		// shape
		{"unknown members ignored", `{"jsonrpc":"2.0","method":"nil","id":1,"extra":{"x":[1]},"result":5}`, `{"jsonrpc":"2.0","result":null,"id":1}`},
		{"whitespace everywhere", " \n\t{ \"jsonrpc\" : \"2.0\" , \"method\" : \"nil\" , \"id\" : 1 } \r\n", `{"jsonrpc":"2.0","result":null,"id":1}`},
		{"not an object", `"hello"`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"null", `null`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"empty object", `{}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"a response is not a request", `{"jsonrpc":"2.0","result":1,"id":1}`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":1}`},
		{"empty payload", ``, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},
		{"trailing data", `{"jsonrpc":"2.0","method":"nil","id":1} {}`, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"method\":\"nil\",\"id\":\"\xff\"}", `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},

		// what handlers return
		{"handler panics", `{"jsonrpc":"2.0","method":"panic","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`},
		{"handler panics in a notification", `{"jsonrpc":"2.0","method":"panic"}`, ``},
		{"plain error is not leaked", `{"jsonrpc":"2.0","method":"fail","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`},
		{"wrapped *Error sent as is", `{"jsonrpc":"2.0","method":"app_error","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32006,"message":"not found","data":{"id":"x"}},"id":1}`},
		{"typed nil *Error", `{"jsonrpc":"2.0","method":"nil_error","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`},
		{"result that cannot be marshalled", `{"jsonrpc":"2.0","method":"unmarshallable","id":1}`, `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`},
		{"error data that is not JSON is dropped", `{"jsonrpc":"2.0","method":"bad_data","id":1}`, `{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":1}`},
		{"error in a notification is not sent", `{"jsonrpc":"2.0","method":"fail"}`, ``},

		// batches
		{"batch of one", `[{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}]`, `[{"jsonrpc":"2.0","result":[1],"id":1}]`},
		{"batch with whitespace", " [ {\"jsonrpc\":\"2.0\",\"method\":\"nil\",\"id\":1} , \n {\"jsonrpc\":\"2.0\",\"method\":\"nil\",\"id\":2} ] ", `[{"jsonrpc":"2.0","result":null,"id":1},{"jsonrpc":"2.0","result":null,"id":2}]`},
		{"empty batch with whitespace", `[ ]`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"nested batch", `[[]]`, `[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]`},
		{"batch of null", `[null, "x", {}]`, `[{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}]`},
		{"batch with a panic", `[{"jsonrpc":"2.0","method":"panic","id":1},{"jsonrpc":"2.0","method":"nil","id":2}]`, `[{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1},{"jsonrpc":"2.0","result":null,"id":2}]`},
		{"batch of notifications with errors", `[{"jsonrpc":"2.0","method":"panic"},{"jsonrpc":"2.0","method":"nope"},{"jsonrpc":"2.0","method":"fail"}]`, ``},
	}
	d := echoDispatcher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.Handle(context.Background(), []byte(tt.in))
			if tt.reply == "" {
				if got != nil {
					t.Fatalf("reply = %s, want nil", got)
				}
				return
			}
			if string(got) != tt.reply {
				t.Fatalf("reply\n got %s\nwant %s", got, tt.reply)
			}
		})
	}
}

// TestHandleKeepsNothing checks that handlers get their own copy of params
// and that Handle does not keep msg.
func TestHandleKeepsNothing(t *testing.T) {
	d := NewDispatcher()
	kept := make(chan json.RawMessage, 1)
	d.Register("keep", func(ctx context.Context, p json.RawMessage) (any, error) {
		kept <- p
		return nil, nil
	})
	msg := []byte(`{"jsonrpc":"2.0","method":"keep","params":[1,2,3]}`)
	if got := d.Handle(context.Background(), msg); got != nil {
		t.Fatalf("reply = %s, want nil", got)
	}
	for i := range msg {
		msg[i] = 'x'
	}
	if p := <-kept; string(p) != "[1,2,3]" {
		t.Fatalf("kept params = %s after the caller reused its buffer", p)
	}
}

func TestHandleLogsWhatItDoesNotSend(t *testing.T) {
	var buf bytes.Buffer
	d := echoDispatcher(t)
	d.SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	for _, m := range []string{"fail", "panic"} {
		d.Handle(context.Background(), []byte(`{"jsonrpc":"2.0","method":"`+m+`","id":1}`))
	}
	logs := buf.String()
	for _, want := range []string{"hunter2", "method=fail", "method=panic", "panic=boom", "dispatcher_test.go"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

type searchParams struct {
	Query string `json:"query"`
	Limit int    `json:"limit"`
	Opts  struct {
		Deep bool `json:"deep"`
	} `json:"opts"`
}

func TestHandlerTyped(t *testing.T) {
	d := NewDispatcher()
	d.Register("search", Handler(func(ctx context.Context, p searchParams) (searchParams, error) {
		return p, nil
	}))
	d.Register("search_ptr", Handler(func(ctx context.Context, p *searchParams) (bool, error) {
		return p == nil, nil
	}))
	d.Register("sum", Handler(func(ctx context.Context, p []int) (int, error) {
		s := 0
		for _, v := range p {
			s += v
		}
		return s, nil
	}))
	d.Register("pair", Handler(func(ctx context.Context, p [2]string) (string, error) { return p[0] + p[1], nil }))
	d.Register("any", Handler(func(ctx context.Context, p any) (any, error) { return p, nil }))
	d.Register("map", Handler(func(ctx context.Context, p map[string]int) (int, error) { return len(p), nil }))
	d.Register("raw", Handler(func(ctx context.Context, p json.RawMessage) (json.RawMessage, error) { return p, nil }))

	tests := []struct {
		name   string
		method string
		params string // "" omits them
		reply  string // the reply without its envelope: result or error
	}{
		{"object", "search", `{"query":"q","limit":2,"opts":{"deep":true}}`, `"result":{"query":"q","limit":2,"opts":{"deep":true}}`},
		{"omitted params give the zero value", "search", ``, `"result":{"query":"","limit":0,"opts":{"deep":false}}`},
		{"omitted params give a nil pointer", "search_ptr", ``, `"result":true`},
		{"pointer params decoded", "search_ptr", `{"query":"q"}`, `"result":false`},
		{"unknown field", "search", `{"query":"q","lmit":2}`, `"error":{"code":-32602,"message":"Invalid params: unknown field \"lmit\""}`},
		{"unknown nested field", "search", `{"opts":{"deeper":true}}`, `"error":{"code":-32602,"message":"Invalid params: unknown field \"deeper\""}`},
		{"wrong type", "search", `{"limit":"2"}`, `"error":{"code":-32602,"message":"Invalid params: field \"limit\": expected integer, got string"}`},
		{"wrong nested type", "search", `{"opts":{"deep":1}}`, `"error":{"code":-32602,"message":"Invalid params: field \"opts.deep\": expected boolean, got number"}`},
		{"positional to a struct", "search", `["q",2]`, `"error":{"code":-32602,"message":"Invalid params: positional params are not supported, use an object"}`},
		{"positional to a pointer to a struct", "search_ptr", `["q"]`, `"error":{"code":-32602,"message":"Invalid params: positional params are not supported, use an object"}`},
		{"positional to a slice", "sum", `[1,2,3]`, `"result":6`},
		{"positional to an array", "pair", `["a","b"]`, `"result":"ab"`},
		{"named to a slice", "sum", `{"a":1}`, `"error":{"code":-32602,"message":"Invalid params: expected array, got object"}`},
		{"wrong element type", "sum", `[1,"2"]`, `"error":{"code":-32602,"message":"Invalid params: expected integer, got string"}`},
		{"positional to any", "any", `[1,"2"]`, `"result":[1,"2"]`},
		{"named to any", "any", `{"a":[true]}`, `"result":{"a":[true]}`},
		{"map", "map", `{"a":1,"b":2}`, `"result":2`},
		{"raw message takes anything", "raw", `[ 1 ]`, `"result":[1]`},
		{"custom unmarshaler's *Error is sent as is", "subtract", `[1]`, `"error":{"code":-32602,"message":"Invalid params","data":"want 2 numbers"}`},
		{"custom unmarshaler's error text", "subtract", `{"minuend":1}`, `"error":{"code":-32602,"message":"Invalid params: minuend and subtrahend are required"}`},
	}
	spec, _ := specDispatcher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dd := d
			if tt.method == "subtract" {
				dd = spec
			}
			req := `{"jsonrpc":"2.0","method":"` + tt.method + `","id":1}`
			if tt.params != "" {
				req = `{"jsonrpc":"2.0","method":"` + tt.method + `","params":` + tt.params + `,"id":1}`
			}
			got := string(dd.Handle(context.Background(), []byte(req)))
			want := `{"jsonrpc":"2.0",` + tt.reply + `,"id":1}`
			if got != want {
				t.Fatalf("reply\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestHandleContext(t *testing.T) {
	type key struct{}
	d := NewDispatcher()
	d.Register("value", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return ctx.Value(key{}), nil
	})
	d.Register("wait", func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ran := atomic.Int32{}
	d.Register("count", func(ctx context.Context, _ json.RawMessage) (any, error) {
		ran.Add(1)
		return nil, nil
	})

	t.Run("handlers get the context", func(t *testing.T) {
		ctx := context.WithValue(context.Background(), key{}, "v")
		got := string(d.Handle(ctx, []byte(`{"jsonrpc":"2.0","method":"value","id":1}`)))
		if want := `{"jsonrpc":"2.0","result":"v","id":1}`; got != want {
			t.Fatalf("reply = %s, want %s", got, want)
		}
	})
	t.Run("deadline ends a waiting handler", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		got := string(d.Handle(ctx, []byte(`{"jsonrpc":"2.0","method":"wait","id":1}`)))
		if want := `{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1}`; got != want {
			t.Fatalf("reply = %s, want %s", got, want)
		}
	})
	t.Run("done context runs nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got := string(d.Handle(ctx, []byte(`[{"jsonrpc":"2.0","method":"count","id":1},{"jsonrpc":"2.0","method":"count"},{"jsonrpc":"2.0","method":"nope","id":2}]`)))
		want := `[{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":1},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":2}]`
		if got != want {
			t.Fatalf("reply\n got %s\nwant %s", got, want)
		}
		if n := ran.Load(); n != 0 {
			t.Fatalf("%d handlers ran with a done context", n)
		}
	})
}

// TestBatchConcurrentInOrder shows that batch entries run at the same time
// (each handler waits for all the others to start) and that the replies
// keep the order of the requests.
func TestBatchConcurrentInOrder(t *testing.T) {
	const n = 8 // no more than batchConcurrency, or the barrier would never open
	d := NewDispatcher()
	started := make(chan struct{}, n)
	all := make(chan struct{})
	var count atomic.Int32
	d.Register("barrier", Handler(func(ctx context.Context, p []int) (int, error) {
		started <- struct{}{}
		if count.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		// Finish in reverse order so that completion order differs from
		// request order.
		time.Sleep(time.Duration(n-p[0]) * time.Millisecond)
		return p[0], nil
	}))
	var req, want strings.Builder
	req.WriteString("[")
	want.WriteString("[")
	for i := range n {
		if i > 0 {
			req.WriteString(",")
			want.WriteString(",")
		}
		fmt.Fprintf(&req, `{"jsonrpc":"2.0","method":"barrier","params":[%d],"id":"r%d"}`, i, i)
		fmt.Fprintf(&want, `{"jsonrpc":"2.0","result":%d,"id":"r%d"}`, i, i)
	}
	req.WriteString("]")
	want.WriteString("]")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := string(d.Handle(ctx, []byte(req.String())))
	if got != want.String() {
		t.Fatalf("reply\n got %s\nwant %s", got, want.String())
	}
}

// TestBatchBounded checks that the largest batch runs no more than
// batchConcurrency handlers at once and leaves no goroutine behind.
func TestBatchBounded(t *testing.T) {
	before := runtime.NumGoroutine()
	d := NewDispatcher()
	var running, peak atomic.Int32
	d.Register("work", func(ctx context.Context, _ json.RawMessage) (any, error) {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		runtime.Gosched()
		running.Add(-1)
		return nil, nil
	})
	var b strings.Builder
	b.WriteString("[")
	for i := range MaxBatch {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"work","id":%d}`, i)
	}
	b.WriteString("]")
	var replies []json.RawMessage
	if err := json.Unmarshal(d.Handle(context.Background(), []byte(b.String())), &replies); err != nil {
		t.Fatal(err)
	}
	if len(replies) != MaxBatch {
		t.Fatalf("%d replies, want %d", len(replies), MaxBatch)
	}
	if p := peak.Load(); p > batchConcurrency {
		t.Fatalf("%d handlers ran at once, want at most %d", p, batchConcurrency)
	}
	eventually(t, func() bool { return runtime.NumGoroutine() <= before })
}

func TestRegister(t *testing.T) {
	d := NewDispatcher()
	if m := d.Methods(); len(m) != 0 {
		t.Fatalf("Methods() = %q, want none", m)
	}
	one := func(ctx context.Context, _ json.RawMessage) (any, error) { return 1, nil }
	two := func(ctx context.Context, _ json.RawMessage) (any, error) { return 2, nil }
	d.Register("b.x", one)
	d.Register("rpc.list", one)
	d.Register("a", one)
	d.Register("a", two) // replaces
	if got, want := fmt.Sprint(d.Methods()), "[a b.x rpc.list]"; got != want {
		t.Fatalf("Methods() = %s, want %s", got, want)
	}
	if got := string(d.Handle(context.Background(), []byte(`{"jsonrpc":"2.0","method":"a","id":1}`))); got != `{"jsonrpc":"2.0","result":2,"id":1}` {
		t.Fatalf("reply after re-Register = %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Register with a nil handler did not panic")
		}
	}()
	d.Register("nil", nil)
}

// TestRegisterWhileHandling runs Register, Methods and Handle together (for
// the race detector) and checks every answer: m3 is either not there yet
// (-32601) or answers null, echo always answers its params, and once
// registered a method stays served.
func TestRegisterWhileHandling(t *testing.T) {
	d := echoDispatcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	base := len(d.Methods())
	var registered atomic.Bool
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
			d.Register(fmt.Sprintf("m%d", i%10), func(ctx context.Context, _ json.RawMessage) (any, error) { return nil, nil })
			if i%10 == 3 {
				registered.Store(true)
			}
			if n := len(d.Methods()); n < base || n > base+10 {
				t.Errorf("Methods() has %d entries", n)
				return
			}
		}
	}()
	const notFound = `[{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1},{"jsonrpc":"2.0","result":[1],"id":2}]`
	const found = `[{"jsonrpc":"2.0","result":null,"id":1},{"jsonrpc":"2.0","result":[1],"id":2}]`
	sawFound := false
	for i := range 200 {
		was := registered.Load()
		got := string(d.Handle(ctx, []byte(`[{"jsonrpc":"2.0","method":"m3","id":1},{"jsonrpc":"2.0","method":"echo","params":[1],"id":2}]`)))
		switch {
		case got == found:
			sawFound = true
		case got == notFound && !was:
		default:
			t.Fatalf("batch %d (m3 registered before: %v) answered %s", i, was, got)
		}
	}
	cancel()
	<-done
	if got := string(d.Handle(context.Background(), []byte(`[{"jsonrpc":"2.0","method":"m3","id":1},{"jsonrpc":"2.0","method":"echo","params":[1],"id":2}]`))); got != found {
		t.Fatalf("after registering: %s", got)
	}
	if !sawFound && registered.Load() {
		t.Log("no batch ran after m3 was registered (the registering goroutine was slow)")
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
		time.Sleep(time.Millisecond)
	}
}
