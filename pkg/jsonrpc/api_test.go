package jsonrpc

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		kind   Kind
		isResp bool
	}{
		{"request", `{"jsonrpc":"2.0","method":"m","id":1}`, KindRequest, false},
		{"request with null id", `{"jsonrpc":"2.0","method":"m","id":null}`, KindRequest, false},
		{"notification", `{"jsonrpc":"2.0","method":"m","params":[1]}`, KindNotification, false},
		{"invalid request still routed as a request", `{"jsonrpc":"1.0","method":1,"id":{}}`, KindRequest, false},
		{"result", `{"jsonrpc":"2.0","result":{"method":"x"},"id":1}`, KindResponse, true},
		{"error", `{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":null}`, KindResponse, true},
		{"method wins over result", `{"method":"m","result":1}`, KindNotification, false},
		{"escaped member name", `{"jsonrpc":"2.0","\u0072esult":1,"id":1}`, KindResponse, true},
		{"case matters", `{"jsonrpc":"2.0","Method":"m","id":1}`, KindInvalid, false},
		{"whitespace", " \n {\"method\" : \"m\"} \n", KindNotification, false},
		{"batch of requests", `[{"jsonrpc":"2.0","method":"m","id":1}]`, KindBatch, false},
		{"batch of responses", `[{"jsonrpc":"2.0","result":1,"id":1},{"jsonrpc":"2.0","error":{},"id":2}]`, KindBatch, true},
		{"mixed batch", `[{"jsonrpc":"2.0","result":1,"id":1},{"jsonrpc":"2.0","method":"m"}]`, KindBatch, false},
		{"empty batch", `[]`, KindBatch, false},
		{"batch of numbers", `[1,2]`, KindBatch, false},
		{"empty object", `{}`, KindInvalid, false},
		{"string", `"method"`, KindInvalid, false},
		{"invalid JSON", `{"method":`, KindInvalid, false},
		{"trailing data", `{"method":"m"} x`, KindInvalid, false},
		{"empty", ``, KindInvalid, false},
		{"spaces only", `   `, KindInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify([]byte(tt.msg)); got != tt.kind {
				t.Errorf("Classify = %v, want %v", got, tt.kind)
			}
			if got := IsResponse([]byte(tt.msg)); got != tt.isResp {
				t.Errorf("IsResponse = %v, want %v", got, tt.isResp)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		want string
	}{
		{"invalid", KindInvalid, "invalid"},
		{"request", KindRequest, "request"},
		{"notification", KindNotification, "notification"},
		{"response", KindResponse, "response"},
		{"batch", KindBatch, "batch"},
		{"out of range", Kind(42), "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewError(t *testing.T) {
	tests := []struct {
		name string
		data any
		want string
	}{
		{"no data", nil, `{"code":-32000,"message":"m"}`},
		{"string", "detail", `{"code":-32000,"message":"m","data":"detail"}`},
		{"object", map[string]int{"n": 1}, `{"code":-32000,"message":"m","data":{"n":1}}`},
		{"raw", json.RawMessage(`[1, 2]`), `{"code":-32000,"message":"m","data":[1,2]}`},
		{"nil pointer", (*int)(nil), `{"code":-32000,"message":"m"}`},
		{"unmarshallable", make(chan int), `{"code":-32000,"message":"m"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewError(-32000, "m", tt.data)
			b, err := json.Marshal(e)
			if err != nil || string(b) != tt.want {
				t.Fatalf("marshalled = %s, %v; want %s", b, err, tt.want)
			}
		})
	}
	e := NewError(CodeMethodNotFound, "Method not found", nil)
	if got, want := e.Error(), "jsonrpc: error -32601: Method not found"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var target *Error
	if !errors.As(error(e), &target) || target != e {
		t.Error("errors.As does not find the *Error")
	}
}

func TestResponseMarshal(t *testing.T) {
	tests := []struct {
		name string
		resp Response
		want string
	}{
		{"result", Response{JSONRPC: Version, ID: json.RawMessage(`1`), Result: json.RawMessage(`19`)}, `{"jsonrpc":"2.0","result":19,"id":1}`},
		{"error", Response{JSONRPC: Version, ID: json.RawMessage(`"1"`), Error: NewError(CodeMethodNotFound, "Method not found", nil)}, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"1"}`},
		{"error wins over result", Response{Result: json.RawMessage(`1`), Error: &Error{Code: 1, Message: "m"}}, `{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":null}`},
		{"zero value", Response{}, `{"jsonrpc":"2.0","result":null,"id":null}`},
		{"raw bytes compacted", Response{ID: json.RawMessage(`1.50`), Result: json.RawMessage(`[ 1 ]`)}, `{"jsonrpc":"2.0","result":[1],"id":1.50}`},
		{"other version kept", Response{JSONRPC: "1.0", ID: json.RawMessage(`1`)}, `{"jsonrpc":"1.0","result":null,"id":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.resp)
			if err != nil || string(b) != tt.want {
				t.Fatalf("Marshal = %s, %v; want %s", b, err, tt.want)
			}
			// And through a pointer, as part of a larger value.
			b, err = json.Marshal([]*Response{&tt.resp})
			if err != nil || string(b) != "["+tt.want+"]" {
				t.Fatalf("Marshal([]*Response) = %s, %v", b, err)
			}
		})
	}
	if _, err := json.Marshal(Response{Result: json.RawMessage(`{bad`)}); err == nil {
		t.Error("Marshal with an invalid result: no error")
	}
	var r Response
	if err := json.Unmarshal([]byte(`{"jsonrpc":"2.0","error":{"code":1,"message":"m","data":[1]},"id":"x"}`), &r); err != nil ||
		r.Error == nil || r.Error.Code != 1 || string(r.Error.Data) != "[1]" || string(r.ID) != `"x"` {
		t.Errorf("Unmarshal = %+v, %v", r, err)
	}
}

func TestRequest(t *testing.T) {
	r := Request{JSONRPC: Version, Method: "subtract", Params: json.RawMessage(`[42,23]`), ID: json.RawMessage(`1`)}
	b, err := json.Marshal(r)
	if want := `{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}`; err != nil || string(b) != want {
		t.Fatalf("Marshal = %s, %v; want %s", b, err, want)
	}
	n := Request{JSONRPC: Version, Method: "update"}
	b, _ = json.Marshal(n)
	if want := `{"jsonrpc":"2.0","method":"update"}`; string(b) != want {
		t.Fatalf("Marshal notification = %s; want %s", b, want)
	}

	tests := []struct {
		name         string
		msg          string
		code         int // 0: valid
		method       string
		id           string
		params       string
		notification bool
	}{
		{"request", `{"jsonrpc":"2.0","method":"a.b","params":{"x":1},"id":"7"}`, 0, "a.b", `"7"`, `{"x":1}`, false},
		{"null id", `{"jsonrpc":"2.0","method":"a","id":null}`, 0, "a", `null`, ``, false},
		{"notification", `{"jsonrpc":"2.0","method":"a","params":[]}`, 0, "a", ``, `[]`, true},
		{"escaped method", `{"jsonrpc":"2.0","method":"\u0061","id":1}`, 0, "a", `1`, ``, false},
		{"invalid, id kept", `{"jsonrpc":"2.0","method":5,"id":12345678901234567890123}`, CodeInvalidRequest, "", `12345678901234567890123`, ``, false},
		{"invalid id", `{"jsonrpc":"2.0","method":"a","id":[]}`, CodeInvalidRequest, "", ``, ``, true},
		{"batch", `[{"jsonrpc":"2.0","method":"a","id":1}]`, CodeInvalidRequest, "", ``, ``, true},
		{"parse error", `{`, CodeParseError, "", ``, ``, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := []byte(tt.msg)
			req, err := ParseRequest(msg)
			for i := range msg {
				msg[i] = 0 // the Request must not share msg
			}
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("ParseRequest: %v", err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || e.Code != tt.code {
					t.Fatalf("ParseRequest error = %v, want code %d", err, tt.code)
				}
			}
			if req.Method != tt.method || string(req.ID) != tt.id || string(req.Params) != tt.params ||
				req.IsNotification() != tt.notification {
				t.Fatalf("ParseRequest = %+v (notification %v)", req, req.IsNotification())
			}
		})
	}
}
