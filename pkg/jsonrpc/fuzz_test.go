package jsonrpc

import (
	"context"
	"encoding/json"
	"testing"
)

// FuzzHandle feeds arbitrary payloads to a Dispatcher and a Client: neither
// may panic, every reply must be valid JSON, and a reply must be a response
// (or a batch of them) that a Client recognises.
func FuzzHandle(f *testing.F) {
	seeds := []string{
		`{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}`,
		`{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}`,
		`{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}`,
		`{"jsonrpc": "2.0", "method": "foobar", "id": "1"}`,
		`{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]`,
		`{"jsonrpc": "2.0", "method": 1, "params": "bar"}`,
		`[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},{"jsonrpc": "2.0", "method"]`,
		`[]`, `[1]`, `[1,2,3]`, `[[]]`, `null`, ``, ` `,
		`[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method":"notify_hello","params":[7]},{"foo":"boo"},{"jsonrpc":"2.0","method":"get_data","id":"9"}]`,
		`{"jsonrpc":"2.0","method":"panic","id":1e400}`,
		`{"jsonrpc":"2.0","method":"echo","params":{"a":"\u00e9\ud83d\ude00"},"id":-0.5}`,
		`{"jsonrpc":"2\u002e0","m\u0065thod":"echo","id":"\\"}`,
		`{"jsonrpc":"2.0","result":1,"id":1}`,
		`{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":[1]},"id":2}`,
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":\"\xff\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	d, _ := specDispatcher(f)
	d.Register("echo", func(ctx context.Context, p json.RawMessage) (any, error) { return p, nil })
	d.Register("panic", func(ctx context.Context, p json.RawMessage) (any, error) { panic(string(p)) })
	c := NewClient(func(ctx context.Context, msg []byte) error { return nil })

	f.Fuzz(func(t *testing.T, msg []byte) {
		Classify(msg)
		IsResponse(msg)
		ParseRequest(msg)
		c.Deliver(msg)
		reply := d.Handle(context.Background(), msg)
		if reply == nil {
			return
		}
		if !json.Valid(reply) {
			t.Fatalf("Handle(%q) = %q: not valid JSON", msg, reply)
		}
		if !IsResponse(reply) {
			t.Fatalf("Handle(%q) = %q: not a response", msg, reply)
		}
	})
}
