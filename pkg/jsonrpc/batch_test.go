package jsonrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// batchOf returns a batch of n requests (ids 0..n-1) to method.
func batchOf(n int, method string) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":%q,"id":%d}`, method, i)
	}
	b.WriteString("]")
	return b.String()
}

// TestMaxBatch: a batch of MaxBatch entries is served, a larger one is
// refused as a whole with one error and no handler runs.
func TestMaxBatch(t *testing.T) {
	if MaxBatch != 64 {
		t.Fatalf("MaxBatch = %d: it is part of the protocol, 64", MaxBatch)
	}
	tests := []struct {
		name  string
		n     int
		reply string // "" means n results
	}{
		{"one", 1, ""},
		{"at the limit", MaxBatch, ""},
		{"one beyond the limit", MaxBatch + 1, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"batch of 65 entries exceeds the limit of 64"},"id":null}`},
		{"far beyond the limit", 10000, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"batch of 10000 entries exceeds the limit of 64"},"id":null}`},
	}
	d := NewDispatcher()
	var ran atomic.Int64
	d.Register("count", func(ctx context.Context, _ json.RawMessage) (any, error) {
		ran.Add(1)
		return "ok", nil
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran.Store(0)
			got := d.Handle(context.Background(), []byte(batchOf(tt.n, "count")))
			if tt.reply != "" {
				if string(got) != tt.reply {
					t.Fatalf("reply\n got %.300s\nwant %s", got, tt.reply)
				}
				if n := ran.Load(); n != 0 {
					t.Fatalf("%d handlers ran for a refused batch", n)
				}
				return
			}
			var replies []Response
			if err := json.Unmarshal(got, &replies); err != nil {
				t.Fatalf("reply %.300s: %v", got, err)
			}
			if len(replies) != tt.n || ran.Load() != int64(tt.n) {
				t.Fatalf("%d replies, %d handlers ran; want %d of each", len(replies), ran.Load(), tt.n)
			}
			for i, r := range replies {
				if string(r.ID) != fmt.Sprint(i) || string(r.Result) != `"ok"` {
					t.Fatalf("reply %d = %+v", i, r)
				}
			}
		})
	}
	t.Run("notifications count too", func(t *testing.T) {
		ran.Store(0)
		batch := "[" + strings.TrimSuffix(strings.Repeat(`{"jsonrpc":"2.0","method":"count"},`, MaxBatch+1), ",") + "]"
		got := string(d.Handle(context.Background(), []byte(batch)))
		if want := `{"jsonrpc":"2.0","error":{"code":-32600,"message":"batch of 65 entries exceeds the limit of 64"},"id":null}`; got != want {
			t.Fatalf("reply\n got %s\nwant %s", got, want)
		}
		if n := ran.Load(); n != 0 {
			t.Fatalf("%d handlers ran for a refused batch", n)
		}
	})
}

func TestSplitBatch(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		entries []string
		code    int    // 0: no error
		message string // the error's message
	}{
		{"requests", `[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b"}]`, []string{`{"jsonrpc":"2.0","method":"a","id":1}`, `{"jsonrpc":"2.0","method":"b"}`}, 0, ""},
		{"whitespace trimmed", " [ {\"a\" : [1, 2]} ,\n\t1 , \"x\" ] ", []string{`{"a" : [1, 2]}`, `1`, `"x"`}, 0, ""},
		{"entries not checked", `[[],null,{}]`, []string{`[]`, `null`, `{}`}, 0, ""},
		{"at the limit", batchOf(MaxBatch, "m"), nil, 0, ""},
		{"empty batch", `[]`, nil, CodeInvalidRequest, "Invalid Request"},
		{"empty batch with whitespace", ` [ ] `, nil, CodeInvalidRequest, "Invalid Request"},
		{"beyond the limit", batchOf(MaxBatch+1, "m"), nil, CodeInvalidRequest, "batch of 65 entries exceeds the limit of 64"},
		{"not a batch", `{"jsonrpc":"2.0","method":"a","id":1}`, nil, CodeInvalidRequest, "Invalid Request"},
		{"invalid JSON", `[{"jsonrpc":"2.0"`, nil, CodeParseError, "Parse error"},
		{"trailing data", `[1] [2]`, nil, CodeParseError, "Parse error"},
		{"invalid UTF-8", "[\"\xff\"]", nil, CodeParseError, "Parse error"},
		{"empty", ``, nil, CodeParseError, "Parse error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := SplitBatch([]byte(tt.msg))
			if tt.code != 0 {
				if err == nil || err.Code != tt.code || err.Message != tt.message || entries != nil {
					t.Fatalf("SplitBatch = %q, %v; want code %d %q", entries, err, tt.code, tt.message)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitBatch: %v", err)
			}
			if tt.entries == nil {
				if len(entries) != MaxBatch {
					t.Fatalf("%d entries, want %d", len(entries), MaxBatch)
				}
				return
			}
			if fmt.Sprintf("%q", entries) != fmt.Sprintf("%q", tt.entries) {
				t.Fatalf("entries = %q, want %q", entries, tt.entries)
			}
		})
	}
}

func TestJoinReplies(t *testing.T) {
	tests := []struct {
		name    string
		replies []string // "-" stands for nil
		want    string   // "-" stands for nil
	}{
		{"none", nil, "-"},
		{"only notifications", []string{"-", "-"}, "-"},
		{"empty replies count as none", []string{"", "-"}, "-"},
		{"one", []string{`{"a":1}`}, `[{"a":1}]`},
		{"nils skipped, order kept", []string{"-", `{"a":1}`, "-", `{"b":2}`, "-"}, `[{"a":1},{"b":2}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var replies [][]byte
			for _, r := range tt.replies {
				if r == "-" {
					replies = append(replies, nil)
				} else {
					replies = append(replies, []byte(r))
				}
			}
			got := JoinReplies(replies)
			if tt.want == "-" {
				if got != nil {
					t.Fatalf("JoinReplies = %q, want nil", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Fatalf("JoinReplies = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestHandleOne serves single entries, and shows that SplitBatch,
// HandleOne and JoinReplies together answer a batch as Handle does.
func TestHandleOne(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		reply string // "" means nil
	}{
		{"request", `{"jsonrpc":"2.0","method":"echo","params":[1],"id":"a"}`, `{"jsonrpc":"2.0","result":[1],"id":"a"}`},
		{"whitespace", " {\"jsonrpc\":\"2.0\",\"method\":\"nil\",\"id\":1}\n", `{"jsonrpc":"2.0","result":null,"id":1}`},
		{"notification", `{"jsonrpc":"2.0","method":"echo","params":[1]}`, ``},
		{"unknown method", `{"jsonrpc":"2.0","method":"nope","id":2}`, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":2}`},
		{"a batch is not served", `[{"jsonrpc":"2.0","method":"nil","id":1}]`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"not an object", `1`, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`},
		{"invalid JSON", `{"jsonrpc"`, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},
		{"empty", ``, `{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}`},
	}
	d := echoDispatcher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.HandleOne(context.Background(), []byte(tt.msg))
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

	batch := []byte(`[{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":1},{"jsonrpc":"2.0","method":"echo"},1,{"jsonrpc":"2.0","method":"panic","id":2}]`)
	entries, err := SplitBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	replies := make([][]byte, len(entries))
	for i, e := range entries {
		replies[i] = d.HandleOne(context.Background(), e)
	}
	got, want := string(JoinReplies(replies)), string(d.Handle(context.Background(), batch))
	if got != want {
		t.Fatalf("split, served and joined\n got %s\nwant %s", got, want)
	}
}
