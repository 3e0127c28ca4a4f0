package jsonrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
)

type strictInner struct {
	Deep bool `json:"deep"`
}

// StrictBase is embedded in strictParams: its fields are promoted.
type StrictBase struct {
	ID   string `json:"id"`
	Note string // no tag: the member is "Note"
}

type strictParams struct {
	StrictBase
	Hostname string                 `json:"hostname,omitempty"`
	Secret   string                 `json:"-"`  // takes no member
	Dash     string                 `json:"-,"` // the member is "-"
	Plain    int                    // the member is "Plain"
	Count    int                    `json:"count,string"`
	Inner    *strictInner           `json:"inner"`
	List     []strictInner          `json:"list"`
	Grid     [2][]strictInner       `json:"grid"`
	Labels   map[string]string      `json:"labels"`
	ByName   map[string]strictInner `json:"by_name"`
	Raw      json.RawMessage        `json:"raw"`
	Any      any                    `json:"any"`
	When     time.Time              `json:"when"`
	hidden   int
}

type shadowA struct {
	Name string `json:"name"`
	Kept string `json:"kept"`
}

type shadowB struct {
	Name string `json:"name"`
}

// shadowParams has one field of each outcome of encoding/json's rules for
// embedded structs: "id" at depth 0 hides StrictBase's, "name" is at depth
// 1 twice and so hidden, "kept" is promoted, "Tagged" is an embedded struct
// with a name of its own.
type shadowParams struct {
	StrictBase
	shadowA
	*shadowB
	ID     int         `json:"id"`
	Tagged strictInner `json:"tagged"`
}

// strictRecorder counts the calls of the handlers strictDispatcher
// registers and keeps the params of the last.
type strictRecorder struct {
	calls int
	last  any
}

func recordParams[P any](d *Dispatcher, method string, rec *strictRecorder) {
	d.Register(method, Handler(func(ctx context.Context, p P) (bool, error) {
		rec.calls++
		rec.last = p
		return true, nil
	}))
}

func strictDispatcher(tb testing.TB) (*Dispatcher, *strictRecorder) {
	tb.Helper()
	d := NewDispatcher()
	rec := &strictRecorder{}
	recordParams[strictParams](d, "strict", rec)
	recordParams[shadowParams](d, "shadow", rec)
	recordParams[[]strictInner](d, "list", rec)
	recordParams[map[string]strictInner](d, "map", rec)
	recordParams[any](d, "any", rec)
	recordParams[map[int]string](d, "intmap", rec)
	recordParams[map[netip.Addr]int](d, "addrmap", rec)
	recordParams[json.RawMessage](d, "raw", rec)
	recordParams[struct{}](d, "none", rec)
	recordParams[rpcproto.StateReportParams](d, rpcproto.MethodStateReport, rec)
	recordParams[rpcproto.RegisterParams](d, rpcproto.MethodRegister, rec)
	return d, rec
}

// TestHandlerStrict sends params to typed handlers: every refusal is
// -32602 with a message naming the member, and the handler does not run.
func TestHandlerStrict(t *testing.T) {
	when := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("k", 100)
	tests := []struct {
		name    string
		method  string
		params  string // "" omits them
		wantErr string // the error message; "" means the handler runs
		want    any    // the params the handler gets
	}{
		// The problems seen in the field.
		{"state.report case variant after the exact key", "state.report", `{"hostname":"a","Hostname":"b"}`, `Invalid params: unknown field "Hostname"`, nil},
		{"state.report case variant alone", "state.report", `{"HOSTNAME":"a"}`, `Invalid params: unknown field "HOSTNAME"`, nil},
		{"register Device_ID", "registration.register", `{"Device_ID":"d","public_key":"k"}`, `Invalid params: unknown field "Device_ID"`, nil},
		{"register PUBLIC_KEY", "registration.register", `{"device_id":"d","PUBLIC_KEY":"k"}`, `Invalid params: unknown field "PUBLIC_KEY"`, nil},
		{"register exact", "registration.register", `{"device_id":"d","public_key":"k","attributes":{"MAC":"m"}}`, "",
			rpcproto.RegisterParams{DeviceID: "d", PublicKey: "k", Attributes: map[string]string{"MAC": "m"}}},
		{"state.report exact", "state.report", `{"hostname":"h","versions":{"Go":"1"},"workers":["system"]}`, "",
			rpcproto.StateReportParams{Hostname: "h", Versions: map[string]string{"Go": "1"}, Workers: []string{"system"}}},

		// Case, escapes and unknown members.
		{"escaped exact key", "strict", `{"\u0068ostname":"h"}`, "", strictParams{Hostname: "h"}},
		{"untagged field by its Go name", "strict", `{"Plain":3}`, "", strictParams{Plain: 3}},
		{"untagged field in lower case", "strict", `{"plain":3}`, `Invalid params: unknown field "plain"`, nil},
		{"unknown field", "strict", `{"hostname":"h","hostnme":"x"}`, `Invalid params: unknown field "hostnme"`, nil},
		{"json:\"-\" takes no member", "strict", `{"Secret":"s"}`, `Invalid params: unknown field "Secret"`, nil},
		{"json:\"-,\" is the member \"-\"", "strict", `{"-":"d"}`, "", strictParams{Dash: "d"}},
		{"unexported field takes no member", "strict", `{"hidden":1}`, `Invalid params: unknown field "hidden"`, nil},
		{"empty struct takes no member", "none", `{"x":1}`, `Invalid params: unknown field "x"`, nil},
		{"empty struct, empty object", "none", `{}`, "", struct{}{}},
		{"long key quoted in part", "strict", `{"` + long + `":1}`, `Invalid params: unknown field "` + long[:40] + `"...`, nil},
		{"key with a quote", "strict", `{"a\"b":1}`, `Invalid params: unknown field "a\"b"`, nil},

		// Duplicates.
		{"duplicate", "strict", `{"hostname":"a","hostname":"b"}`, `Invalid params: duplicate field "hostname"`, nil},
		{"duplicate through an escape", "state.report", `{"hostname":"a","\u0068ostname":"b"}`, `Invalid params: duplicate field "hostname"`, nil},
		{"duplicate in a map", "state.report", `{"versions":{"a":"1","a":"2"}}`, `Invalid params: duplicate field "a"`, nil},
		{"many map keys", "strict", `{"labels":` + manyKeys(40, "") + `}`, "", strictParams{Labels: manyKeysMap(40)}},
		{"duplicate among many map keys", "strict", `{"labels":` + manyKeys(40, "k3") + `}`, `Invalid params: duplicate field "k3"`, nil},
		{"duplicate among few map keys", "strict", `{"labels":` + manyKeys(10, "k9") + `}`, `Invalid params: duplicate field "k9"`, nil},
		{"map keys of any case", "strict", `{"labels":{"A":"1","a":"2"}}`, "", strictParams{Labels: map[string]string{"A": "1", "a": "2"}}},
		{"duplicate in an interface", "strict", `{"any":{"x":[{"y":1,"y":2}]}}`, `Invalid params: duplicate field "y"`, nil},
		{"duplicate at the top of an interface", "any", `{"a":1,"a":1}`, `Invalid params: duplicate field "a"`, nil},

		// Nested values.
		{"nested pointer", "strict", `{"inner":{"deep":true}}`, "", strictParams{Inner: &strictInner{Deep: true}}},
		{"nested case variant", "strict", `{"inner":{"Deep":true}}`, `Invalid params: unknown field "Deep"`, nil},
		{"nested duplicate", "strict", `{"inner":{"deep":true,"deep":false}}`, `Invalid params: duplicate field "deep"`, nil},
		{"nested null", "strict", `{"inner":null}`, "", strictParams{}},
		{"in a slice", "strict", `{"list":[{"deep":true},{"DEEP":true}]}`, `Invalid params: unknown field "DEEP"`, nil},
		{"in an array of slices", "strict", `{"grid":[[],[{"deep":true},{"dep":1}]]}`, `Invalid params: unknown field "dep"`, nil},
		{"in a map value", "strict", `{"by_name":{"Any Key":{"deep":true},"b":{"Deep":false}}}`, `Invalid params: unknown field "Deep"`, nil},
		{"nested ok", "strict", `{"list":[{"deep":true}],"grid":[null,[{}]],"by_name":{"K":{}}}`, "",
			strictParams{List: []strictInner{{Deep: true}}, Grid: [2][]strictInner{nil, {{}}}, ByName: map[string]strictInner{"K": {}}}},

		// Embedded structs.
		{"promoted fields", "strict", `{"id":"i","Note":"n"}`, "", strictParams{StrictBase: StrictBase{ID: "i", Note: "n"}}},
		{"promoted field in lower case", "strict", `{"note":"n"}`, `Invalid params: unknown field "note"`, nil},
		{"embedded struct is not a member", "strict", `{"StrictBase":{"id":"i"}}`, `Invalid params: unknown field "StrictBase"`, nil},
		{"shallower field wins", "shadow", `{"id":7,"Note":"n"}`, "", shadowParams{ID: 7, StrictBase: StrictBase{Note: "n"}}},
		{"ambiguous field is hidden", "shadow", `{"name":"x"}`, `Invalid params: unknown field "name"`, nil},
		{"promoted from an unexported struct", "shadow", `{"kept":"k"}`, "", shadowParams{shadowA: shadowA{Kept: "k"}}},
		{"tagged embedded struct is a member", "shadow", `{"tagged":{"deep":true}}`, "", shadowParams{Tagged: strictInner{Deep: true}}},
		{"tagged embedded struct checked", "shadow", `{"tagged":{"Deep":true}}`, `Invalid params: unknown field "Deep"`, nil},

		// Types that decode themselves are not looked into.
		{"raw message passes through", "strict", `{"raw":{"A":1,"A":2, "a":[3]}}`, "", strictParams{Raw: json.RawMessage(`{"A":1,"A":2, "a":[3]}`)}},
		{"raw params pass through", "raw", `{"A":1,"A":2}`, "", json.RawMessage(`{"A":1,"A":2}`)},
		{"UnmarshalJSON type", "strict", `{"when":"2025-06-01T12:00:00Z"}`, "", strictParams{When: when}},
		{",string option", "strict", `{"count":"5"}`, "", strictParams{Count: 5}},

		// Values of the wrong type are still reported by encoding/json.
		{"wrong type", "strict", `{"Plain":"x"}`, `Invalid params: field "Plain": expected integer, got string`, nil},
		{"wrong nested type", "strict", `{"inner":{"deep":1}}`, `Invalid params: field "inner.deep": expected boolean, got number`, nil},

		// Omitted params and arrays.
		{"omitted params", "strict", ``, "", strictParams{}},
		{"empty object", "strict", `{}`, "", strictParams{}},
		{"positional to a struct", "strict", `[{"deep":true}]`, `Invalid params: positional params are not supported, use an object`, nil},
		{"positional to a slice", "list", `[{"deep":true},{}]`, "", []strictInner{{Deep: true}, {}}},
		{"positional case variant", "list", `[{"deep":true},{"Deep":true}]`, `Invalid params: unknown field "Deep"`, nil},
		{"named to a map", "map", `{"A":{"deep":true}}`, "", map[string]strictInner{"A": {Deep: true}}},
		{"named to a map, duplicate", "map", `{"A":{},"A":{}}`, `Invalid params: duplicate field "A"`, nil},
		{"integer keys", "intmap", `{"1":"a","-2":"b"}`, "", map[int]string{1: "a", -2: "b"}},
		{"integer keys, duplicate once converted", "intmap", `{"1":"a","01":"b"}`, `Invalid params: duplicate field "01"`, nil},
		{"integer keys, not a number", "intmap", `{"x":"a"}`, `Invalid params: expected integer, got number x`, nil},
		{"text keys, duplicate once converted", "addrmap", `{"::1":1,"0:0::1":2}`, `Invalid params: duplicate field "0:0::1"`, nil},
		{"text keys", "addrmap", `{"::1":1,"10.0.0.1":2}`, "", map[netip.Addr]int{netip.MustParseAddr("::1"): 1, netip.MustParseAddr("10.0.0.1"): 2}},
		{"named to any", "any", `{"A":[{"a":1}]}`, "", map[string]any{"A": []any{map[string]any{"a": 1.0}}}},
	}
	d, rec := strictDispatcher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			*rec = strictRecorder{}
			req := `{"jsonrpc":"2.0","method":"` + tt.method + `","id":1}`
			if tt.params != "" {
				req = `{"jsonrpc":"2.0","method":"` + tt.method + `","params":` + tt.params + `,"id":1}`
			}
			got := string(d.Handle(context.Background(), []byte(req)))
			if tt.wantErr != "" {
				msg, _ := json.Marshal(tt.wantErr)
				want := `{"jsonrpc":"2.0","error":{"code":-32602,"message":` + string(msg) + `},"id":1}`
				if got != want {
					t.Fatalf("reply\n got %s\nwant %s", got, want)
				}
				if rec.calls != 0 {
					t.Fatalf("the handler ran %d times, with %+v", rec.calls, rec.last)
				}
				return
			}
			if want := `{"jsonrpc":"2.0","result":true,"id":1}`; got != want {
				t.Fatalf("reply\n got %s\nwant %s", got, want)
			}
			if rec.calls != 1 {
				t.Fatalf("the handler ran %d times, want once", rec.calls)
			}
			if !reflect.DeepEqual(rec.last, tt.want) {
				t.Fatalf("params\n got %#v\nwant %#v", rec.last, tt.want)
			}
		})
	}
}

// TestDecodeParams covers what a Dispatcher never passes on (invalid JSON,
// trailing data, null) and shows that a refusal leaves v untouched.
func TestDecodeParams(t *testing.T) {
	tests := []struct {
		name    string
		params  string
		wantErr string // "" means success
		want    strictParams
	}{
		{"object", `{"hostname":"h","Plain":1}`, "", strictParams{Secret: "before", Hostname: "h", Plain: 1}},
		{"surrounding whitespace", " \n{\"hostname\":\"h\"}\t", "", strictParams{Secret: "before", Hostname: "h"}},
		{"empty leaves v alone", ``, "", strictParams{Secret: "before"}},
		{"whitespace only leaves v alone", "  \n", "", strictParams{Secret: "before"}},
		{"null leaves v alone", `null`, "", strictParams{Secret: "before"}},
		{"trailing value", `{"hostname":"h"} {}`, `Invalid params: trailing data after the JSON value`, strictParams{Secret: "before"}},
		{"trailing garbage", `{"hostname":"h"}x`, `Invalid params: trailing data after the JSON value`, strictParams{Secret: "before"}},
		{"truncated", `{"hostname":`, `Invalid params: invalid JSON: unexpected end of JSON input`, strictParams{Secret: "before"}},
		{"invalid", `{"hostname":x}`, `Invalid params: invalid JSON: invalid character 'x' looking for beginning of value`, strictParams{Secret: "before"}},
		{"invalid UTF-8", "{\"hostname\":\"\xff\"}", `Invalid params: not valid UTF-8`, strictParams{Secret: "before"}},
		{"case variant leaves v alone", `{"hostname":"h","Hostname":"x"}`, `Invalid params: unknown field "Hostname"`, strictParams{Secret: "before"}},
		{"duplicate leaves v alone", `{"Plain":1,"Plain":2}`, `Invalid params: duplicate field "Plain"`, strictParams{Secret: "before"}},
		{"positional", `[1]`, `Invalid params: positional params are not supported, use an object`, strictParams{Secret: "before"}},
		{"long number quoted in part", `{"Plain":` + strings.Repeat("9", 100) + `}`, `Invalid params: field "Plain": expected integer, got number ` + strings.Repeat("9", 33) + `...`, strictParams{Secret: "before"}},
		{"long custom error cut", `{"when":"` + strings.Repeat("x", 300) + `"}`, `Invalid params: parsing time "` + strings.Repeat("x", 106) + `...`, strictParams{Secret: "before"}},
		{"long multibyte key cut at a character", `{"` + strings.Repeat("é", 30) + `":1}`, `Invalid params: unknown field "` + strings.Repeat("é", 20) + `"...`, strictParams{Secret: "before"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := strictParams{Secret: "before"}
			err := DecodeParams(json.RawMessage(tt.params), &v)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodeParams: %v", err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeInvalidParams || e.Message != tt.wantErr {
					t.Fatalf("err = %#v\nwant code %d, message %s", err, CodeInvalidParams, tt.wantErr)
				}
			}
			if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("v = %#v\nwant %#v", v, tt.want)
			}
		})
	}

	t.Run("not a pointer", func(t *testing.T) {
		var v strictParams
		err := DecodeParams(json.RawMessage(`{}`), v)
		var ie *json.InvalidUnmarshalError
		if !errors.As(err, &ie) {
			t.Fatalf("err = %v, want a *json.InvalidUnmarshalError", err)
		}
		if err := DecodeParams(json.RawMessage(`{}`), (*strictParams)(nil)); !errors.As(err, &ie) {
			t.Fatalf("nil pointer: err = %v, want a *json.InvalidUnmarshalError", err)
		}
	})
	t.Run("an *Error from UnmarshalJSON is returned as is", func(t *testing.T) {
		var p subtractParams
		err := DecodeParams(json.RawMessage(`[1]`), &p)
		var e *Error
		if !errors.As(err, &e) || e.Message != "Invalid params" || string(e.Data) != `"want 2 numbers"` {
			t.Fatalf("err = %#v", err)
		}
	})
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr string
	}{
		{"object", `{"deep":true}`, ""},
		{"case variant", `{"Deep":true}`, `Invalid params: unknown field "Deep"`},
		{"unknown", `{"deep":true,"x":1}`, `Invalid params: unknown field "x"`},
		{"duplicate", `{"deep":true,"deep":true}`, `Invalid params: duplicate field "deep"`},
		{"empty is an error", ``, `Invalid params: no JSON value`},
		{"trailing data", `{} {}`, `Invalid params: trailing data after the JSON value`},
		{"an array is a type error, not positional", `[]`, `Invalid params: expected object, got array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v strictInner
			err := DecodeStrict([]byte(tt.data), &v)
			if tt.wantErr == "" {
				if err != nil || !v.Deep {
					t.Fatalf("DecodeStrict = %+v, %v", v, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidParams || e.Message != tt.wantErr {
				t.Fatalf("err = %#v\nwant %s", err, tt.wantErr)
			}
		})
	}
	var rs []strictInner
	if err := DecodeStrict([]byte(`[{"deep":true},{"deep":false,"Deep":true}]`), &rs); err == nil ||
		err.Error() != `jsonrpc: error -32602: Invalid params: unknown field "Deep"` {
		t.Fatalf("slice: err = %v", err)
	}
	if err := DecodeStrict([]byte(`{}`), strictInner{}); err == nil {
		t.Fatal("DecodeStrict into a non-pointer: no error")
	}
}

// TestTypeFieldsMatchEncodingJSON checks the field names typeFields finds
// against what encoding/json marshals for a value with every field set.
func TestTypeFieldsMatchEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"strictParams", strictParams{StrictBase: StrictBase{ID: "i", Note: "n"}, Hostname: "h", Secret: "s", Dash: "d", Plain: 1, Count: 1,
			Inner: &strictInner{}, List: []strictInner{}, Labels: map[string]string{}, ByName: map[string]strictInner{}, Raw: json.RawMessage(`1`), Any: 1}},
		{"shadowParams", shadowParams{StrictBase: StrictBase{ID: "i", Note: "n"}, shadowA: shadowA{Name: "a", Kept: "k"}, shadowB: &shadowB{Name: "b"}, ID: 1}},
		{"StateReportParams", rpcproto.StateReportParams{Hostname: "h", OS: "o", Arch: "a", Versions: map[string]string{"a": "b"}, Workers: []string{"w"}, Methods: []rpcproto.MethodInfo{{Name: "m"}}, Attributes: map[string]string{"a": "b"}}},
		{"RegisterParams", rpcproto.RegisterParams{DeviceID: "d", PublicKey: "k", Attributes: map[string]string{"a": "b"}, EnrollmentToken: "t"}},
		{"ContainersLogsParams", rpcproto.ContainersLogsParams{Container: "c", Tail: 1, Since: "s", Timestamps: true}},
		{"LogsTailParams", rpcproto.LogsTailParams{File: "f", Lines: 1, Since: "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			fs := fieldsOf(reflect.TypeOf(tt.v))
			if len(fs.byName) != len(m) {
				t.Errorf("typeFields found %d fields, encoding/json marshals %d: %s", len(fs.byName), len(m), b)
			}
			for name := range m {
				if _, ok := fs.byName[name]; !ok {
					t.Errorf("encoding/json marshals %q, typeFields does not know it", name)
				}
			}
		})
	}
}

// manyKeys returns an object with n members "k0".."k<n-1>" and, unless dup
// is empty, a second member dup at the end.
func manyKeys(n int, dup string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":"v"`, i)
	}
	if dup != "" {
		fmt.Fprintf(&b, `,%q:"again"`, dup)
	}
	b.WriteString("}")
	return b.String()
}

func manyKeysMap(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}
