package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bosunhq/bosun/pkg/rpcproto"
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

// refSchema says, independently of typeFields, which members a Go type
// takes: the reference FuzzDecodeParams checks DecodeParams against.
type refSchema struct {
	kind   byte                  // 's' struct, 'm' map, 'i' map with integer keys, 'l' slice or array, 'a' any, 'x' not looked into
	fields map[string]*refSchema // of a struct: exact member name -> schema
	elem   *refSchema            // of a map or a slice
}

var (
	refScalar      = &refSchema{kind: 'x'}
	refAny         = &refSchema{kind: 'a'}
	refStringMap   = &refSchema{kind: 'm', elem: refScalar}
	refInner       = &refSchema{kind: 's', fields: map[string]*refSchema{"deep": refScalar}}
	refStateReport = &refSchema{kind: 's', fields: map[string]*refSchema{
		"hostname": refScalar, "os": refScalar, "arch": refScalar,
		"versions": refStringMap, "workers": {kind: 'l', elem: refScalar}, "attributes": refStringMap,
	}}
	refRegister = &refSchema{kind: 's', fields: map[string]*refSchema{
		"device_id": refScalar, "public_key": refScalar, "attributes": refStringMap, "enrollment_token": refScalar,
	}}
	refStrict = &refSchema{kind: 's', fields: map[string]*refSchema{
		"id": refScalar, "Note": refScalar, "hostname": refScalar, "-": refScalar, "Plain": refScalar, "count": refScalar,
		"inner": refInner, "list": {kind: 'l', elem: refInner}, "grid": {kind: 'l', elem: &refSchema{kind: 'l', elem: refInner}},
		"labels": refStringMap, "by_name": {kind: 'm', elem: refInner}, "raw": refScalar, "any": refAny, "when": refScalar,
	}}
	refShadow = &refSchema{kind: 's', fields: map[string]*refSchema{
		"id": refScalar, "Note": refScalar, "kept": refScalar, "tagged": refInner,
	}}
)

// refCheck reads one value from dec and reports whether it keeps the rules
// of s: exact member names for structs, no duplicates anywhere it looks.
// s nil means the value is not looked into.
func refCheck(dec *json.Decoder, s *refSchema) (bool, error) {
	tok, err := dec.Token()
	if err != nil {
		return false, err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return true, nil
	}
	strict := true
	switch delim {
	case '{':
		var look bool
		if s != nil {
			look = s.kind == 's' || s.kind == 'm' || s.kind == 'i' || s.kind == 'a'
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return false, err
			}
			key := k.(string)
			var child *refSchema
			if look {
				if s.kind == 'i' {
					if n, err := strconv.ParseInt(key, 10, 64); err == nil {
						key = strconv.FormatInt(n, 10)
					}
				}
				if seen[key] {
					strict = false
				}
				seen[key] = true
				switch s.kind {
				case 's':
					var known bool
					if child, known = s.fields[key]; !known {
						strict = false
					}
				case 'm', 'i':
					child = s.elem
				case 'a':
					child = refAny
				}
			}
			ok, err := refCheck(dec, child)
			if err != nil {
				return false, err
			}
			strict = strict && ok
		}
	case '[':
		var child *refSchema
		if s != nil && (s.kind == 'l' || s.kind == 'a') {
			child = s.elem
			if s.kind == 'a' {
				child = refAny
			}
		}
		for dec.More() {
			ok, err := refCheck(dec, child)
			if err != nil {
				return false, err
			}
			strict = strict && ok
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return false, err
	}
	return strict, nil
}

// fuzzTarget decodes params into a fresh value with DecodeParams and with
// encoding/json, and says whether the reference accepts them.
type fuzzTarget struct {
	name   string
	schema *refSchema
	decode func(params []byte) (strictVal any, strictErr error, jsonVal any, jsonErr error)
}

func newFuzzTarget[T any](name string, schema *refSchema) fuzzTarget {
	return fuzzTarget{name: name, schema: schema, decode: func(params []byte) (any, error, any, error) {
		var s, j T
		serr := DecodeParams(params, &s)
		jerr := json.Unmarshal(params, &j)
		return s, serr, j, jerr
	}}
}

// FuzzDecodeParams checks DecodeParams against encoding/json and a
// reference written with json.Decoder tokens: DecodeParams succeeds exactly
// when the params are valid UTF-8 JSON, keep the reference's rules and
// encoding/json decodes them, and then both give the same value. Every
// failure is an *Error with CodeInvalidParams.
func FuzzDecodeParams(f *testing.F) {
	seeds := []string{
		`{"hostname":"a","Hostname":"b"}`,
		`{"hostname":"h","os":"linux","arch":"arm64","versions":{"bridge":"1","Bridge":"2"},"workers":["system"],"attributes":{"k":"v"}}`,
		`{"hostname":"a","hostname":"b"}`,
		`{"\u0068ostname":"a"}`,
		`{"device_id":"d","public_key":"k","attributes":{"mac":"m"},"enrollment_token":"t"}`,
		`{"Device_ID":"d","PUBLIC_KEY":"k"}`,
		`{"versions":{"a":"1","a":"2"}}`,
		`{"id":"i","Note":"n","Plain":1,"count":"2","-":"d","Secret":"s"}`,
		`{"inner":{"deep":true},"list":[{"deep":false},{"Deep":true}],"grid":[[{"deep":true}],[]]}`,
		`{"by_name":{"x":{"deep":true}},"labels":{"A":"a"},"raw":{"A":1,"A":2},"any":{"a":[{"b":1,"b":2}]}}`,
		`{"when":"2025-06-01T12:00:00Z","kept":"k","tagged":{"deep":true},"name":"x","StrictBase":{}}`,
		`{"inner":null,"list":null,"any":null}`,
		`{"1":{"deep":true},"01":{}}`, `{"-0":{},"0":{},"+0":{}}`,
		`[1,2]`, `null`, ``, ` `, `{}`, `{"hostname":1}`, `{"hostname":"a"} {}`, "{\"hostname\":\"\xff\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	targets := []fuzzTarget{
		newFuzzTarget[rpcproto.StateReportParams]("StateReportParams", refStateReport),
		newFuzzTarget[rpcproto.RegisterParams]("RegisterParams", refRegister),
		newFuzzTarget[strictParams]("strictParams", refStrict),
		newFuzzTarget[shadowParams]("shadowParams", refShadow),
		newFuzzTarget[map[string]strictInner]("map", &refSchema{kind: 'm', elem: refInner}),
		newFuzzTarget[any]("any", refAny),
		newFuzzTarget[map[int]strictInner]("intmap", &refSchema{kind: 'i', elem: refInner}),
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		trimmed := trimSpace(params)
		omitted := len(trimmed) == 0 || string(trimmed) == "null"
		for _, tg := range targets {
			s, serr, j, jerr := tg.decode(params)
			if serr != nil {
				var e *Error
				if !errors.As(serr, &e) || e.Code != CodeInvalidParams {
					t.Fatalf("%s: DecodeParams(%q) = %v, not an invalid params *Error", tg.name, params, serr)
				}
				if len(e.Message) > 200 {
					t.Fatalf("%s: DecodeParams(%q): message of %d bytes", tg.name, params, len(e.Message))
				}
			}
			if omitted {
				if serr != nil {
					t.Fatalf("%s: DecodeParams(%q) = %v, want omitted params accepted", tg.name, params, serr)
				}
				continue
			}
			strict := false
			if json.Valid(params) && utf8.Valid(params) {
				ok, err := refCheck(json.NewDecoder(bytes.NewReader(params)), tg.schema)
				strict = ok && err == nil
			}
			if want := strict && jerr == nil; (serr == nil) != want {
				t.Fatalf("%s: DecodeParams(%q) = %v; reference strict %v, encoding/json %v", tg.name, params, serr, strict, jerr)
			}
			if serr == nil && !reflect.DeepEqual(s, j) {
				t.Fatalf("%s: DecodeParams(%q) = %#v, encoding/json %#v", tg.name, params, s, j)
			}
		}
	})
}

// FuzzSplitBatch checks SplitBatch, the transport's splitting of a batch,
// against encoding/json: it refuses exactly what is not valid UTF-8 JSON
// (CodeParseError), and exactly valid JSON that is not an array of 1 to
// MaxBatch values (CodeInvalidRequest); what it returns are that array's
// elements, in order, each trimmed, valid and inside msg; and answering
// them one by one (HandleOne, JoinReplies) gives valid JSON replies, one
// per request entry.
func FuzzSplitBatch(f *testing.F) {
	for _, s := range []string{
		`[{"jsonrpc":"2.0","method":"echo","params":[1],"id":1},{"jsonrpc":"2.0","method":"echo"}]`,
		` [ 1 , "a" , [ ] , { } , null ] `, `[]`, `[[]]`, `{}`, `1`, `[1,]`, "[\"\xff\"]", `[` + strings.Repeat(`0,`, 64) + `0]`,
		`[{"a":[{"b":[]}]},"\\u005d"]`, "[\n\t1\r]",
	} {
		f.Add([]byte(s))
	}
	d := NewDispatcher()
	d.Register("echo", func(ctx context.Context, p json.RawMessage) (any, error) { return p, nil })
	f.Fuzz(func(t *testing.T, msg []byte) {
		entries, rerr := SplitBatch(msg)
		valid := json.Valid(msg) && utf8.Valid(msg)
		if !valid {
			if rerr == nil || rerr.Code != CodeParseError {
				t.Fatalf("SplitBatch(%q) = %d entries, %v; want a parse error", msg, len(entries), rerr)
			}
			return
		}
		var arr []json.RawMessage
		isArr := json.Unmarshal(msg, &arr) == nil
		if !isArr || len(arr) == 0 || len(arr) > MaxBatch {
			if rerr == nil || rerr.Code != CodeInvalidRequest || entries != nil {
				t.Fatalf("SplitBatch(%q) = %d entries, %v; want an invalid request", msg, len(entries), rerr)
			}
			return
		}
		if rerr != nil || len(entries) != len(arr) {
			t.Fatalf("SplitBatch(%q) = %d entries, %v; want %d", msg, len(entries), rerr, len(arr))
		}
		replies := make([][]byte, len(entries))
		for i, e := range entries {
			if len(e) == 0 || isSpace(e[0]) || isSpace(e[len(e)-1]) || !json.Valid(e) {
				t.Fatalf("entry %d = %q", i, e)
			}
			if !bytes.Equal(trimSpace(arr[i]), e) && !jsonEqual(arr[i], e) {
				t.Fatalf("entry %d = %q, encoding/json has %q", i, e, arr[i])
			}
			if !bytes.Contains(msg, e) {
				t.Fatalf("entry %d = %q is not a part of msg", i, e)
			}
			replies[i] = d.HandleOne(context.Background(), e)
			if replies[i] != nil && !json.Valid(replies[i]) {
				t.Fatalf("HandleOne(%q) = %q", e, replies[i])
			}
		}
		if out := JoinReplies(replies); out != nil {
			var rs []json.RawMessage
			if err := json.Unmarshal(out, &rs); err != nil {
				t.Fatalf("JoinReplies = %q: %v", out, err)
			}
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
