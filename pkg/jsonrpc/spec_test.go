package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
)

// subtractParams takes the minuend and subtrahend by position or by name,
// as the specification's "subtract" does.
type subtractParams struct{ Minuend, Subtrahend float64 }

func (p *subtractParams) UnmarshalJSON(b []byte) error {
	var pos []float64
	if err := json.Unmarshal(b, &pos); err == nil {
		if len(pos) != 2 {
			return NewError(CodeInvalidParams, "Invalid params", "want 2 numbers")
		}
		p.Minuend, p.Subtrahend = pos[0], pos[1]
		return nil
	}
	var named struct {
		Minuend    *float64 `json:"minuend"`
		Subtrahend *float64 `json:"subtrahend"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&named); err != nil {
		return err
	}
	if named.Minuend == nil || named.Subtrahend == nil {
		return errors.New("minuend and subtrahend are required")
	}
	p.Minuend, p.Subtrahend = *named.Minuend, *named.Subtrahend
	return nil
}

// notes records the notifications the spec dispatcher received.
type notes struct {
	mu  sync.Mutex
	got []string
}

func (n *notes) add(method string) HandlerFunc {
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		n.mu.Lock()
		n.got = append(n.got, method+" "+string(params))
		n.mu.Unlock()
		return nil, nil
	}
}

// specDispatcher serves the methods the specification's examples call, except
// "foobar" and "foo.get", which the examples expect to be missing.
func specDispatcher(tb testing.TB) (*Dispatcher, *notes) {
	tb.Helper()
	d := NewDispatcher()
	n := &notes{}
	d.Register("subtract", Handler(func(ctx context.Context, p subtractParams) (float64, error) {
		return p.Minuend - p.Subtrahend, nil
	}))
	d.Register("sum", Handler(func(ctx context.Context, p []float64) (float64, error) {
		s := 0.0
		for _, v := range p {
			s += v
		}
		return s, nil
	}))
	d.Register("get_data", Handler(func(ctx context.Context, _ struct{}) ([]any, error) {
		return []any{"hello", 5}, nil
	}))
	for _, m := range []string{"update", "notify_hello", "notify_sum"} {
		d.Register(m, n.add(m))
	}
	return d, n
}

// compact removes the whitespace of the specification's pretty-printed
// replies; everything else must match byte for byte.
func compact(tb testing.TB, s string) []byte {
	tb.Helper()
	if s == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		tb.Fatalf("compacting %s: %v", s, err)
	}
	return buf.Bytes()
}

// TestSpecExamples replays every example of section 7 of the JSON-RPC 2.0
// specification, text as printed there.
func TestSpecExamples(t *testing.T) {
	tests := []struct {
		name     string
		request  string
		reply    string   // "" means nothing is sent back
		notified []string // notifications the handlers must have received
	}{
		{
			name:    "positional parameters",
			request: `{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}`,
			reply:   `{"jsonrpc": "2.0", "result": 19, "id": 1}`,
		},
		{
			name:    "positional parameters, reversed",
			request: `{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}`,
			reply:   `{"jsonrpc": "2.0", "result": -19, "id": 2}`,
		},
		{
			name:    "named parameters",
			request: `{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}`,
			reply:   `{"jsonrpc": "2.0", "result": 19, "id": 3}`,
		},
		{
			name:    "named parameters, reordered",
			request: `{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}`,
			reply:   `{"jsonrpc": "2.0", "result": 19, "id": 4}`,
		},
		{
			name:     "notification",
			request:  `{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}`,
			notified: []string{"update [1,2,3,4,5]"},
		},
		{
			name:    "notification of a missing method",
			request: `{"jsonrpc": "2.0", "method": "foobar"}`,
		},
		{
			name:    "non-existent method",
			request: `{"jsonrpc": "2.0", "method": "foobar", "id": "1"}`,
			reply:   `{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}`,
		},
		{
			name:    "invalid JSON",
			request: `{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]`,
			reply:   `{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}`,
		},
		{
			name:    "invalid Request object",
			request: `{"jsonrpc": "2.0", "method": 1, "params": "bar"}`,
			reply:   `{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}`,
		},
		{
			name: "batch, invalid JSON",
			request: `[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]`,
			reply: `{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}`,
		},
		{
			name:    "empty Array",
			request: `[]`,
			reply:   `{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}`,
		},
		{
			name:    "invalid Batch (but not empty)",
			request: `[1]`,
			reply: `[
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
]`,
		},
		{
			name:    "invalid Batch",
			request: `[1,2,3]`,
			reply: `[
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
  {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null}
]`,
		},
		{
			name: "Batch",
			request: `[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"} 
    ]`,
			reply: `[
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    ]`,
			notified: []string{"notify_hello [7]"},
		},
		{
			name: "Batch (all notifications)",
			request: `[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]`,
			notified: []string{"notify_hello [7]", "notify_sum [1,2,4]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, n := specDispatcher(t)
			got := d.Handle(context.Background(), []byte(tt.request))
			want := compact(t, tt.reply)
			if want == nil && got != nil {
				t.Fatalf("reply = %s, want none (nil)", got)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("reply\n got %s\nwant %s", got, want)
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			gotNotes := map[string]bool{}
			for _, g := range n.got {
				gotNotes[g] = true
			}
			if len(n.got) != len(tt.notified) {
				t.Fatalf("notifications received = %q, want %q", n.got, tt.notified)
			}
			for _, w := range tt.notified {
				if !gotNotes[w] {
					t.Fatalf("notifications received = %q, want %q", n.got, tt.notified)
				}
			}
		})
	}
}
