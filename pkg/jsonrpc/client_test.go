package jsonrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopback returns a Client whose requests d serves in the sending
// goroutine; replies are delivered before send returns.
func loopback(tb testing.TB, d *Dispatcher) *Client {
	tb.Helper()
	var c *Client
	c = NewClient(func(ctx context.Context, msg []byte) error {
		if reply := d.Handle(ctx, msg); reply != nil {
			if !c.Deliver(reply) {
				tb.Errorf("Deliver(%s) = false", reply)
			}
		}
		return nil
	})
	tb.Cleanup(func() { c.Close(nil) })
	return c
}

// pipe returns a Client whose requests d serves on other goroutines, one
// per request, so replies come back in any order. The goroutines are waited
// for at cleanup.
func pipe(tb testing.TB, d *Dispatcher) *Client {
	tb.Helper()
	var wg sync.WaitGroup
	var c *Client
	c = NewClient(func(ctx context.Context, msg []byte) error {
		msg = append([]byte(nil), msg...)
		wg.Go(func() {
			if reply := d.Handle(context.Background(), msg); reply != nil {
				c.Deliver(reply)
			}
		})
		return nil
	})
	tb.Cleanup(func() {
		wg.Wait()
		c.Close(nil)
	})
	return c
}

// held is a transport that records requests and never answers; tests answer
// with Deliver.
type held struct {
	sent chan []byte
}

func holdClient(tb testing.TB) (*Client, *held) {
	tb.Helper()
	h := &held{sent: make(chan []byte, 1000)}
	c := NewClient(func(ctx context.Context, msg []byte) error {
		h.sent <- append([]byte(nil), msg...)
		return nil
	})
	tb.Cleanup(func() { c.Close(nil) })
	return c, h
}

// next returns the id of the next request sent.
func (h *held) next(tb testing.TB) uint64 {
	tb.Helper()
	select {
	case msg := <-h.sent:
		var r struct {
			ID json.Number `json:"id"`
		}
		if err := json.Unmarshal(msg, &r); err != nil {
			tb.Fatalf("sent %s: %v", msg, err)
		}
		id, err := strconv.ParseUint(r.ID.String(), 10, 64)
		if err != nil {
			tb.Fatalf("sent %s: id: %v", msg, err)
		}
		return id
	case <-time.After(5 * time.Second):
		tb.Fatal("nothing sent")
	}
	return 0
}

// goCall starts a Call and returns the channel its error will arrive on.
func goCall(c *Client, ctx context.Context, result any) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Call(ctx, "m", nil, result) }()
	return done
}

func wait(tb testing.TB, done <-chan error) error {
	tb.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		tb.Fatal("call did not return")
	}
	return nil
}

func TestClientConcurrent(t *testing.T) {
	d := NewDispatcher()
	d.Register("double", Handler(func(ctx context.Context, p struct{ N int }) (int, error) {
		return 2 * p.N, nil
	}))
	d.Register("fail", func(ctx context.Context, _ json.RawMessage) (any, error) {
		return nil, NewError(-32000, "nope", nil)
	})
	for _, tr := range []struct {
		name   string
		client func(testing.TB, *Dispatcher) *Client
	}{
		{"loopback", loopback},
		{"out of order", pipe},
	} {
		t.Run(tr.name, func(t *testing.T) {
			c := tr.client(t, d)
			var wg sync.WaitGroup
			for g := range 100 {
				wg.Go(func() {
					for i := range 20 {
						n := g*1000 + i
						var got int
						if err := c.Call(context.Background(), "double", struct{ N int }{n}, &got); err != nil {
							t.Errorf("double(%d): %v", n, err)
							return
						}
						if got != 2*n {
							t.Errorf("double(%d) = %d", n, got)
						}
						var rpcErr *Error
						if err := c.Call(context.Background(), "fail", nil, nil); !errors.As(err, &rpcErr) || rpcErr.Code != -32000 {
							t.Errorf("fail: %v, want *Error -32000", err)
						}
					}
				})
			}
			wg.Wait()
			if n := c.Pending(); n != 0 {
				t.Fatalf("Pending() = %d after all calls returned", n)
			}
		})
	}
}

func TestClientCancelFreesSlotAndIgnoresLateReply(t *testing.T) {
	c, h := holdClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := goCall(c, ctx, nil)
	old := h.next(t)
	if n := c.Pending(); n != 1 {
		t.Fatalf("Pending() = %d, want 1", n)
	}
	cancel()
	if err := wait(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("Pending() = %d right after the cancelled call returned, want 0", n)
	}

	// A new call is pending when the late reply to the old one arrives: the
	// late reply must not complete it.
	var result string
	done = goCall(c, context.Background(), &result)
	id := h.next(t)
	if id == old {
		t.Fatalf("new call reused id %d", id)
	}
	late := fmt.Sprintf(`{"jsonrpc":"2.0","result":"late","id":%d}`, old)
	if !c.Deliver([]byte(late)) {
		t.Fatal("Deliver(late reply) = false, want true: it is a response")
	}
	if n := c.Pending(); n != 1 {
		t.Fatalf("Pending() = %d after the late reply, want 1", n)
	}
	c.Deliver(fmt.Appendf(nil, `{"jsonrpc":"2.0","result":"fresh","id":%d}`, id))
	if err := wait(t, done); err != nil || result != "fresh" {
		t.Fatalf("new call = %q, %v; want \"fresh\"", result, err)
	}
}

func TestClientDeadline(t *testing.T) {
	c, h := holdClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := c.Call(ctx, "m", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call: %v, want DeadlineExceeded", err)
	}
	h.next(t)
	if n := c.Pending(); n != 0 {
		t.Fatalf("Pending() = %d, want 0", n)
	}

	// A context done before the call sends nothing.
	if err := c.Call(ctx, "m", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call with a done context: %v", err)
	}
	select {
	case msg := <-h.sent:
		t.Fatalf("sent %s with a done context", msg)
	default:
	}
}

func TestClientClose(t *testing.T) {
	c, h := holdClient(t)
	var dones []<-chan error
	for range 10 {
		dones = append(dones, goCall(c, context.Background(), nil))
		h.next(t)
	}
	c.Close(io.EOF)
	for _, done := range dones {
		err := wait(t, done)
		if !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
			t.Fatalf("pending call after Close: %v, want ErrClosed and io.EOF", err)
		}
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("Pending() = %d after Close", n)
	}

	c.Close(errors.New("second")) // no effect, no panic
	err := c.Call(context.Background(), "m", nil, nil)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
		t.Fatalf("call after Close: %v, want ErrClosed and io.EOF", err)
	}
	if _, err := c.CallRaw(context.Background(), "m", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("CallRaw after Close: %v", err)
	}
	if err := c.Notify(context.Background(), "m", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Notify after Close: %v", err)
	}
	select {
	case msg := <-h.sent:
		t.Fatalf("sent %s after Close", msg)
	default:
	}
	if c.Deliver([]byte(`{"jsonrpc":"2.0","result":1,"id":1}`)) != true {
		t.Fatal("Deliver after Close must still recognise a response")
	}
}

func TestClientCloseErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, "jsonrpc: connection closed"},
		{"cause", io.ErrUnexpectedEOF, "jsonrpc: connection closed: unexpected EOF"},
		{"already ErrClosed", fmt.Errorf("bridge: %w", ErrClosed), "bridge: jsonrpc: connection closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := holdClient(t)
			c.Close(tt.err)
			err := c.Call(context.Background(), "m", nil, nil)
			if !errors.Is(err, ErrClosed) || err.Error() != tt.want {
				t.Fatalf("Call after Close(%v) = %q, want %q wrapping ErrClosed", tt.err, err, tt.want)
			}
		})
	}
}

// TestClientIDsUniqueWhilePending holds many calls at once and checks no id
// is handed out twice while its call is pending, including when the
// counter wraps around onto ids still in use.
func TestClientIDsUniqueWhilePending(t *testing.T) {
	c, h := holdClient(t)
	pending := map[uint64]<-chan error{}
	start := func() uint64 {
		t.Helper()
		done := goCall(c, context.Background(), nil)
		id := h.next(t)
		if _, dup := pending[id]; dup {
			t.Fatalf("id %d handed out while its call is pending", id)
		}
		pending[id] = done
		return id
	}
	answer := func(id uint64) {
		t.Helper()
		c.Deliver(fmt.Appendf(nil, `{"jsonrpc":"2.0","result":null,"id":%d}`, id))
		if err := wait(t, pending[id]); err != nil {
			t.Fatalf("call %d: %v", id, err)
		}
		delete(pending, id)
	}

	for range 100 {
		start()
	}
	for id := range pending { // answer about half, in map order
		if id%2 == 0 {
			answer(id)
		}
	}
	for range 100 {
		start()
	}
	if got := c.Pending(); got != len(pending) {
		t.Fatalf("Pending() = %d, want %d", got, len(pending))
	}

	// Force the counter to the end of its range, then back onto pending ids.
	c.mu.Lock()
	c.nextID = math.MaxUint64
	c.mu.Unlock()
	if id := start(); id != math.MaxUint64 {
		t.Fatalf("id = %d, want MaxUint64", id)
	}
	if id := start(); id != 0 {
		t.Fatalf("id after wrap-around = %d, want 0", id)
	}
	c.mu.Lock()
	c.nextID = 0 // every id from 0 up to some point is pending now
	c.mu.Unlock()
	for range 10 {
		start() // fails on a duplicate
	}
	for id := range pending {
		answer(id)
	}
	if n := c.Pending(); n != 0 {
		t.Fatalf("Pending() = %d, want 0", n)
	}
}

func TestClientDeliver(t *testing.T) {
	tests := []struct {
		name     string
		msg      string // %[1]d is the pending call's id, %[2]d another pending call's
		isResp   bool
		want     string // "pending": untouched; "result:<json>"; "error:<*Error JSON>"; "invalid"
		wantBoth bool   // the second call gets the same outcome
	}{
		{"result", `{"jsonrpc":"2.0","result":{"a":[1]},"id":%[1]d}`, true, `result:{"a":[1]}`, false},
		{"result null", `{"jsonrpc":"2.0","result":null,"id":%[1]d}`, true, `result:null`, false},
		{"members in any order", `{"id":%[1]d,"result":1,"jsonrpc":"2.0"}`, true, `result:1`, false},
		{"unknown members ignored", `{"jsonrpc":"2.0","result":1,"x":{},"id":%[1]d}`, true, `result:1`, false},
		{"error with data", `{"jsonrpc":"2.0","error":{"code":-32000,"message":"offline","data":{"d":1}},"id":%[1]d}`, true, `error:{"code":-32000,"message":"offline","data":{"d":1}}`, false},
		{"error without data", `{"jsonrpc":"2.0","error":{"message":"Method not found","code":-32601},"id":%[1]d}`, true, `error:{"code":-32601,"message":"Method not found"}`, false},
		{"batch", `[{"jsonrpc":"2.0","result":1,"id":%[1]d},{"jsonrpc":"2.0","result":1,"id":%[2]d}]`, true, `result:1`, true},
		{"batch with whitespace", " [ {\"jsonrpc\":\"2.0\",\"result\":1,\"id\":%[1]d} ,\n{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":%[2]d} ] ", true, `result:1`, true},
		{"unknown id", `{"jsonrpc":"2.0","result":1,"id":999999}`, true, "pending", false},
		{"string id", `{"jsonrpc":"2.0","result":1,"id":"%[1]d"}`, true, "pending", false},
		{"fractional id", `{"jsonrpc":"2.0","result":1,"id":%[1]d.5}`, true, "pending", false},
		{"negative id", `{"jsonrpc":"2.0","result":1,"id":-%[1]d}`, true, "pending", false},
		{"null id (parse error)", `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`, true, "pending", false},
		{"no id", `{"jsonrpc":"2.0","result":1}`, true, "pending", false},
		{"wrong version", `{"jsonrpc":"1.0","result":1,"id":%[1]d}`, true, "invalid", false},
		{"no version", `{"result":1,"id":%[1]d}`, true, "invalid", false},
		{"result and error", `{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"},"id":%[1]d}`, true, "invalid", false},
		{"duplicate result", `{"jsonrpc":"2.0","result":1,"result":2,"id":%[1]d}`, true, "invalid", false},
		{"error not an object", `{"jsonrpc":"2.0","error":"bad","id":%[1]d}`, true, "invalid", false},
		{"error code fractional", `{"jsonrpc":"2.0","error":{"code":1.5,"message":"m"},"id":%[1]d}`, true, "invalid", false},
		{"error code a string", `{"jsonrpc":"2.0","error":{"code":"1","message":"m"},"id":%[1]d}`, true, "invalid", false},
		{"error without message", `{"jsonrpc":"2.0","error":{"code":1},"id":%[1]d}`, true, "invalid", false},
		{"error message not a string", `{"jsonrpc":"2.0","error":{"code":1,"message":2},"id":%[1]d}`, true, "invalid", false},
		{"neither result nor error", `{"jsonrpc":"2.0","id":%[1]d}`, false, "pending", false},
		{"a request", `{"jsonrpc":"2.0","method":"m","id":%[1]d}`, false, "pending", false},
		{"a notification", `{"jsonrpc":"2.0","method":"m"}`, false, "pending", false},
		{"invalid JSON", `{"jsonrpc":"2.0","result":1,"id":%[1]d`, false, "pending", false},
		{"empty batch", `[]`, false, "pending", false},
		{"batch with a request", `[{"jsonrpc":"2.0","result":1,"id":%[1]d},{"jsonrpc":"2.0","method":"m","id":1}]`, false, "pending", false},
		{"batch with a number", `[{"jsonrpc":"2.0","result":1,"id":%[1]d},1]`, false, "pending", false},
		{"empty", ``, false, "pending", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, h := holdClient(t)
			var res1, res2 json.RawMessage
			done1 := goCall(c, context.Background(), &res1)
			id1 := h.next(t)
			done2 := goCall(c, context.Background(), &res2)
			id2 := h.next(t)

			msg := strings.ReplaceAll(tt.msg, "%[1]d", strconv.FormatUint(id1, 10))
			msg = strings.ReplaceAll(msg, "%[2]d", strconv.FormatUint(id2, 10))
			if got := c.Deliver([]byte(msg)); got != tt.isResp {
				t.Fatalf("Deliver = %v, want %v", got, tt.isResp)
			}
			if got := IsResponse([]byte(msg)); got != tt.isResp {
				t.Fatalf("IsResponse = %v, want %v", got, tt.isResp)
			}
			check := func(done <-chan error, res *json.RawMessage) {
				t.Helper()
				if tt.want == "pending" {
					select {
					case err := <-done:
						t.Fatalf("call returned (%v), want it still pending", err)
					default:
					}
					return
				}
				err := wait(t, done)
				switch kind, want, _ := strings.Cut(tt.want, ":"); kind {
				case "result":
					if err != nil || string(*res) != want {
						t.Fatalf("call = %s, %v; want %s", *res, err, want)
					}
				case "error":
					var e *Error
					if !errors.As(err, &e) {
						t.Fatalf("call error = %v, want *Error", err)
					}
					if b, _ := json.Marshal(e); string(b) != want {
						t.Fatalf("call error = %s, want %s", b, want)
					}
				case "invalid":
					if !errors.Is(err, ErrInvalidResponse) {
						t.Fatalf("call error = %v, want ErrInvalidResponse", err)
					}
				}
			}
			check(done1, &res1)
			if tt.wantBoth {
				check(done2, &res2)
				return
			}
			select {
			case err := <-done2:
				t.Fatalf("other call returned (%v), want it still pending", err)
			default:
			}
		})
	}
}

func TestClientWire(t *testing.T) {
	c, h := holdClient(t)
	ctx := context.Background()
	sent := func() string {
		t.Helper()
		select {
		case m := <-h.sent:
			return string(m)
		case <-time.After(5 * time.Second):
			t.Fatal("nothing sent")
		}
		return ""
	}
	tests := []struct {
		name string
		do   func() error // must not block: the ones that send a call run in the background
		want string       // the message sent, %d the id
	}{
		{"call, positional", func() error { go c.Call(ctx, "subtract", []int{42, 23}, nil); return nil }, `{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":%d}`},
		{"call, named", func() error { go c.Call(ctx, "s", map[string]int{"a": 1}, nil); return nil }, `{"jsonrpc":"2.0","method":"s","params":{"a":1},"id":%d}`},
		{"call, no params", func() error { go c.Call(ctx, "rpc.list", nil, nil); return nil }, `{"jsonrpc":"2.0","method":"rpc.list","id":%d}`},
		{"call, nil slice params omitted", func() error { go c.Call(ctx, "m", []int(nil), nil); return nil }, `{"jsonrpc":"2.0","method":"m","id":%d}`},
		{"call raw", func() error { go c.CallRaw(ctx, "m", json.RawMessage(` [1, 2] `)); return nil }, `{"jsonrpc":"2.0","method":"m","params":[1, 2],"id":%d}`},
		{"method escaped", func() error { go c.Call(ctx, "a\"b", nil, nil); return nil }, `{"jsonrpc":"2.0","method":"a\"b","id":%d}`},
		{"notify", func() error { return c.Notify(ctx, "update", []int{1, 2}) }, `{"jsonrpc":"2.0","method":"update","params":[1,2]}`},
		{"notify, no params", func() error { return c.Notify(ctx, "foobar", nil) }, `{"jsonrpc":"2.0","method":"foobar"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err != nil {
				t.Fatal(err)
			}
			got := sent()
			var id struct{ ID *uint64 }
			if err := json.Unmarshal([]byte(got), &id); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if id.ID != nil {
				want = fmt.Sprintf(tt.want, *id.ID)
			}
			if got != want {
				t.Fatalf("sent\n got %s\nwant %s", got, want)
			}
		})
	}
	c.Close(nil) // releases the background calls
}

func TestClientCallErrors(t *testing.T) {
	d := echoDispatcher(t)
	c := loopback(t, d)
	ctx := context.Background()

	t.Run("params that are not an array or object", func(t *testing.T) {
		for _, p := range []any{"x", 1, true, []byte("raw")} {
			if err := c.Call(ctx, "echo", p, nil); err == nil {
				t.Errorf("Call with params %#v: no error", p)
			}
		}
		if _, err := c.CallRaw(ctx, "echo", json.RawMessage(`"x"`)); err == nil {
			t.Error("CallRaw with string params: no error")
		}
		if _, err := c.CallRaw(ctx, "echo", json.RawMessage(`[1`)); err == nil {
			t.Error("CallRaw with invalid JSON: no error")
		}
		if err := c.Notify(ctx, "echo", 1); err == nil {
			t.Error("Notify with number params: no error")
		}
		if err := c.Call(ctx, "echo", func() {}, nil); err == nil {
			t.Error("Call with unmarshallable params: no error")
		}
	})
	t.Run("RPC error is an *Error", func(t *testing.T) {
		err := c.Call(ctx, "app_error", nil, nil)
		var e *Error
		if !errors.As(err, &e) || e.Code != -32006 || string(e.Data) != `{"id":"x"}` {
			t.Fatalf("Call: %v, want *Error -32006 with data", err)
		}
		err = c.Call(ctx, "nope", nil, nil)
		if !errors.As(err, &e) || e.Code != CodeMethodNotFound {
			t.Fatalf("Call: %v, want Method not found", err)
		}
	})
	t.Run("result decoding", func(t *testing.T) {
		var got []string
		if err := c.Call(ctx, "echo", []string{"a", "b"}, &got); err != nil || len(got) != 2 || got[1] != "b" {
			t.Fatalf("Call = %q, %v", got, err)
		}
		var wrong int
		if err := c.Call(ctx, "echo", []string{"a"}, &wrong); err == nil {
			t.Fatal("decoding an array into an int: no error")
		}
		raw, err := c.CallRaw(ctx, "echo", json.RawMessage(`{"k":"v"}`))
		if err != nil || string(raw) != `{"k":"v"}` {
			t.Fatalf("CallRaw = %s, %v", raw, err)
		}
	})
	t.Run("send error frees the slot", func(t *testing.T) {
		boom := errors.New("write: broken pipe")
		c := NewClient(func(ctx context.Context, msg []byte) error { return boom })
		if err := c.Call(ctx, "m", nil, nil); !errors.Is(err, boom) {
			t.Fatalf("Call: %v, want %v", err, boom)
		}
		if err := c.Notify(ctx, "m", nil); !errors.Is(err, boom) {
			t.Fatalf("Notify: %v, want %v", err, boom)
		}
		if n := c.Pending(); n != 0 {
			t.Fatalf("Pending() = %d", n)
		}
	})
	t.Run("NewClient with nil send panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		NewClient(nil)
	})
}
