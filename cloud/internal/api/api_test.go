package api

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/api/wire"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/pkg/keys"
)

func serve(t *testing.T, h http.Handler, method, path, token, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) wire.ErrorDetail {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, rec.Body)
	}
	var eb wire.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	return eb.Error
}

func TestErrorTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range wire.ErrorCodes {
		if seen[c.Code] {
			t.Errorf("code %q listed twice", c.Code)
		}
		seen[c.Code] = true
		if wire.StatusOf(c.Code) != c.Status || c.Status < 400 || c.Meaning == "" {
			t.Errorf("code %q: status %d, meaning %q", c.Code, c.Status, c.Meaning)
		}
	}
	if wire.StatusOf("no_such_code") != 500 {
		t.Error("an unknown code must be a 500")
	}
}

func TestToHTTPError(t *testing.T) {
	secret := errors.New("pq: relation devices on 10.0.0.7 is locked")
	tests := []struct {
		name       string
		err        error
		wantCode   string
		wantStatus int
		wantMsg    string
	}{
		{"unauthenticated", fmt.Errorf("token: %w", fleet.ErrUnauthenticated), wire.CodeUnauthenticated, 401, "invalid or revoked API token"},
		{"forbidden", fmt.Errorf("accept: %w", fleet.ErrForbidden), wire.CodeForbidden, 403, "your role may not do this"},
		{"not found", fmt.Errorf("device x: %w", fleet.ErrNotFound), wire.CodeNotFound, 404, "not found"},
		{"invalid shows its message", fmt.Errorf("%w: tag too long", fleet.ErrInvalid), wire.CodeInvalidRequest, 400, "invalid input: tag too long"},
		{"conflict shows its message", fmt.Errorf("%w: no pending key", fleet.ErrConflict), wire.CodeConflict, 409, "conflict: no pending key"},
		{"too large", &http.MaxBytesError{Limit: 10}, wire.CodeTooLarge, 413, "request body larger than 10 bytes"},
		{"http error as is", &HTTPError{Code: wire.CodeInvalidRequest, Msg: "x"}, wire.CodeInvalidRequest, 400, "x"},
		{"anything else is internal and hides its text", fmt.Errorf("loading: %w", secret), wire.CodeInternal, 500, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			he := toHTTPError(tt.err)
			if tt.name == "invalid shows its message" || tt.name == "conflict shows its message" {
				// The exact text is fleet's; only require that it is shown.
				if !strings.Contains(he.Msg, strings.SplitN(tt.wantMsg, ": ", 2)[1]) {
					t.Errorf("Msg = %q, want it to contain the wrapped message", he.Msg)
				}
			} else if he.Msg != tt.wantMsg {
				t.Errorf("Msg = %q, want %q", he.Msg, tt.wantMsg)
			}
			if he.Code != tt.wantCode || he.Status() != tt.wantStatus {
				t.Errorf("got %s/%d, want %s/%d", he.Code, he.Status(), tt.wantCode, tt.wantStatus)
			}
			if !errors.Is(he, tt.err) && tt.name != "http error as is" {
				t.Errorf("the cause is lost: %v", he)
			}
		})
	}
}

// TestRejections sends every kind of bad request and checks the error code
// and that the service saw nothing it could act on (calls lists what the
// fake must have seen, in order; nil means nothing at all).
func TestRejections(t *testing.T) {
	big := `{"method":"x","params":{"pad":"` + strings.Repeat("a", 2<<20) + `"}}`
	tests := []struct {
		name, method, path, token, body string
		header                          []string
		wantStatus                      int
		wantCode                        string
		wantMsg                         string // substring
		calls                           []string
	}{
		{name: "no token", method: "GET", path: "/api/v1/devices", wantStatus: 401, wantCode: "unauthenticated", wantMsg: "missing API token"},
		{name: "basic auth", method: "GET", path: "/api/v1/devices", header: []string{"Authorization", "Basic Ym9zdW46eA=="}, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "unknown token", method: "POST", path: "/api/v1/devices/dev-1/accept", token: "bsn_nope", wantStatus: 401, wantCode: "unauthenticated", wantMsg: "invalid or revoked"},
		{name: "unknown route", method: "GET", path: "/api/v1/nope", token: "bsn_operator", wantStatus: 404, wantCode: "not_found"},
		{name: "wrong method", method: "DELETE", path: "/api/v1/devices", token: "bsn_operator", wantStatus: 405, wantCode: "method_not_allowed"},
		{name: "malformed JSON", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "malformed JSON"},
		{name: "unknown field", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"system.info","timout":"1s"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `unknown field "timout"`},
		{name: "two JSON values", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"system.info"} {}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "single JSON value"},
		{name: "wrong type", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":7}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"method" must be a string`},
		{name: "not an object", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `[1]`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "empty body", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request", wantMsg: "empty"},
		{name: "body too large", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: big, wantStatus: 413, wantCode: "payload_too_large"},
		{name: "not JSON content type", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"x"}`, header: []string{"Content-Type", "text/plain"}, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "missing method", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"params":{}}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"method" is required`},
		{name: "bad duration", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"x","timeout":"10 parsecs"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "not a duration"},
		{name: "timeout over 5m", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"x","timeout":"6m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "at most 5m0s"},
		{name: "negative ttl", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"x","ttl":"-1h"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "ttl"},
		{name: "scalar params", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_operator", body: `{"method":"x","params":5}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "object or array"},
		{name: "unknown device", method: "POST", path: "/api/v1/devices/dev-9/accept", token: "bsn_operator", wantStatus: 404, wantCode: "not_found", wantMsg: `device "dev-9" not found`, calls: []string{"Accept dev-9"}},
		{name: "viewer may not accept", method: "POST", path: "/api/v1/devices/dev-1/accept", token: "bsn_viewer", wantStatus: 403, wantCode: "forbidden", calls: []string{"Accept dev-1"}},
		{name: "viewer may not call", method: "POST", path: "/api/v1/devices/dev-1/call", token: "bsn_viewer", body: `{"method":"system.info"}`, wantStatus: 403, wantCode: "forbidden", calls: []string{"Call dev-1 system.info  timeout=0s ttl=0s"}},
		{name: "other org sees no device", method: "POST", path: "/api/v1/devices/dev-1/reject", token: "bsn_other", wantStatus: 404, wantCode: "not_found", calls: []string{"Reject dev-1"}},
		{name: "other org cannot read device", method: "GET", path: "/api/v1/devices/dev-1", token: "bsn_other", wantStatus: 404, wantCode: "not_found", calls: []string{"GetDevice dev-1"}},
		{name: "accept with a body", method: "POST", path: "/api/v1/devices/dev-1/accept", token: "bsn_operator", body: `{"force":true}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `unknown field "force"`},
		{name: "tags missing", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: "bsn_operator", body: `{}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: `"tags" is required`},
		{name: "tags not a list", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: "bsn_operator", body: `{"tags":"a,b"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "must be an array"},
		{name: "empty tag", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: "bsn_operator", body: `{"tags":["a",""]}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "tag refused by fleet", method: "PUT", path: "/api/v1/devices/dev-1/tags", token: "bsn_operator", body: `{"tags":["` + strings.Repeat("t", 21) + `"]}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "longer than 20 bytes", calls: []string{"SetTags dev-1 [" + strings.Repeat("t", 21) + "]"}},
		{name: "preauthorize garbage", method: "POST", path: "/api/v1/devices/dev-1/preauthorize", token: "bsn_operator", body: `{"public_key":"not a key!"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "public_key"},
		{name: "preauthorize base64 of junk", method: "POST", path: "/api/v1/devices/dev-1/preauthorize", token: "bsn_operator", body: `{"public_key":"AAAA"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "DER"},
		{name: "fan-out both targets", method: "POST", path: "/api/v1/calls", token: "bsn_operator", body: `{"devices":["a"],"tag":"x","method":"m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "exactly one"},
		{name: "fan-out no target", method: "POST", path: "/api/v1/calls", token: "bsn_operator", body: `{"method":"m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "exactly one"},
		{name: "fan-out duplicate", method: "POST", path: "/api/v1/calls", token: "bsn_operator", body: `{"devices":["a","a"],"method":"m"}`, wantStatus: 400, wantCode: "invalid_request", wantMsg: "twice"},
		{name: "fan-out viewer", method: "POST", path: "/api/v1/calls", token: "bsn_viewer", body: `{"tag":"x","method":"m"}`, wantStatus: 403, wantCode: "forbidden", calls: []string{`FanOut [] "x" m`}},
		{name: "bad status filter", method: "GET", path: "/api/v1/devices?status=happy", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request", wantMsg: "status"},
		{name: "bad limit", method: "GET", path: "/api/v1/devices?limit=9999", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request", wantMsg: "limit"},
		{name: "bad online", method: "GET", path: "/api/v1/devices?online=maybe", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request", wantMsg: "online"},
		{name: "unknown query parameter", method: "GET", path: "/api/v1/devices?stauts=pending", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request", wantMsg: `"stauts"`},
		{name: "repeated query parameter", method: "GET", path: "/api/v1/calls?device=a&device=b", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request", wantMsg: "more than once"},
		{name: "unknown call", method: "GET", path: "/api/v1/calls/c-9", token: "bsn_operator", wantStatus: 404, wantCode: "not_found", wantMsg: `call "c-9" not found`, calls: []string{"GetCall c-9"}},
		{name: "token id not a number", method: "DELETE", path: "/api/v1/tokens/abc", token: "bsn_operator", wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown token id", method: "DELETE", path: "/api/v1/tokens/5", token: "bsn_operator", wantStatus: 404, wantCode: "not_found", calls: []string{"RevokeToken 5"}},
		{name: "token without name", method: "POST", path: "/api/v1/tokens", token: "bsn_operator", body: `{"name":" "}`, wantStatus: 400, wantCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			h := newHandler(f, nil, nil)
			rec := serve(t, h, tt.method, tt.path, tt.token, tt.body, tt.header...)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			e := errorOf(t, rec)
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("error %+v, want code %s and a message containing %q", e, tt.wantCode, tt.wantMsg)
			}
			if got := f.calls(); !slices.Equal(got, tt.calls) {
				t.Errorf("service saw %q, want %q", got, tt.calls)
			}
			if tt.wantStatus == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.wantStatus == 405 && rec.Header().Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

func TestSuccesses(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		want                     string // substring of the body
		calls                    []string
	}{
		{"list devices", "GET", "/api/v1/devices?status=accepted&online=true&tag=lab&q=dev&limit=10&offset=0", "", 200, `"total":1`,
			[]string{"ListDevices {Status:accepted Online:0x? Tag:lab Text:dev Limit:10 Offset:0}"}},
		{"get device", "GET", "/api/v1/devices/dev-1", "", 200, `"tags":[]`, []string{"GetDevice dev-1"}},
		{"keys", "GET", "/api/v1/devices/dev-1/keys", "", 200, `"public_key":"AQID"`, []string{"ListKeySets dev-1"}},
		{"accept, no body", "POST", "/api/v1/devices/dev-1/accept", "", 200, `"status":"accepted"`, []string{"Accept dev-1", "GetDevice dev-1"}},
		{"accept, empty object", "POST", "/api/v1/devices/dev-1/accept", "{}", 200, `"id":"dev-1"`, []string{"Accept dev-1", "GetDevice dev-1"}},
		{"tags", "PUT", "/api/v1/devices/dev-1/tags", `{"tags":["lab","eu"]}`, 200, `"tags":["lab","eu"]`, []string{"SetTags dev-1 [lab eu]", "GetDevice dev-1"}},
		{"call", "POST", "/api/v1/devices/dev-1/call", `{"method":"system.info","params":{"a":1},"timeout":"10s"}`, 200, `"result":{"ok":true}`,
			[]string{`Call dev-1 system.info {"a":1} timeout=10s ttl=0s`}},
		{"call null params", "POST", "/api/v1/devices/dev-1/call", `{"method":"system.info","params":null}`, 200, `"status":"succeeded"`,
			[]string{`Call dev-1 system.info  timeout=0s ttl=0s`}},
		{"call offline", "POST", "/api/v1/devices/dev-1/call", `{"method":"offline"}`, 200, `"error":{"code":-32000,"message":"device offline"}`,
			[]string{`Call dev-1 offline  timeout=0s ttl=0s`}},
		{"call queued", "POST", "/api/v1/devices/dev-1/call", `{"method":"offline","ttl":"1h"}`, 202, `"status":"queued"`,
			[]string{`Call dev-1 offline  timeout=0s ttl=1h0m0s`}},
		{"get call", "GET", "/api/v1/calls/c-1", "", 200, `"id":"c-1"`, []string{"GetCall c-1"}},
		{"list calls", "GET", "/api/v1/calls?device=dev-1&status=failed&limit=5", "", 200, `{"items":[]}`, []string{"ListCalls {DeviceID:dev-1 Status:failed Limit:5}"}},
		{"audit", "GET", "/api/v1/audit?action=device.accept", "", 200, `"action":"device.accept"`, []string{"AuditLog {Actor: Action:device.accept Target: Limit:50}"}},
		{"create token", "POST", "/api/v1/tokens", `{"name":"ci"}`, 201, `"secret":"bsn_secret"`, []string{"CreateToken ci"}},
		{"list tokens", "GET", "/api/v1/tokens", "", 200, `"name":"cli"`, []string{"ListTokens"}},
		{"revoke token", "DELETE", "/api/v1/tokens/1", "", 204, "", []string{"RevokeToken 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			rec := serve(t, newHandler(f, nil, nil), tt.method, tt.path, "bsn_operator", tt.body)
			if rec.Code != tt.wantStatus || !strings.Contains(rec.Body.String(), tt.want) {
				t.Fatalf("got %d %s, want %d with %s", rec.Code, rec.Body, tt.wantStatus, tt.want)
			}
			got := f.calls()
			for i := range got { // pointers print as addresses
				if j := strings.Index(got[i], "Online:0x"); j >= 0 {
					got[i] = got[i][:j+9] + "?" + got[i][strings.Index(got[i][j:], " ")+j:]
				}
			}
			if !slices.Equal(got, tt.calls) {
				t.Errorf("service saw %q, want %q", got, tt.calls)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	ed, err := keys.Generate(keys.AlgEd25519, 0)
	if err != nil {
		t.Fatal(err)
	}
	der, err := keys.PublicDER(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	pem, err := keys.MarshalPublicPEM(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"pem", string(pem), true},
		{"pem with spaces", "\n  " + string(pem) + "  \n", true},
		{"base64 std", base64.StdEncoding.EncodeToString(der), true},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(der), true},
		{"empty", "", false},
		{"broken pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", false},
		{"not base64", "%%%", false},
		{"base64 of junk", base64.StdEncoding.EncodeToString([]byte("hello world")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePublicKey(tt.in)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && string(got) != string(der) {
				t.Error("DER differs from the key's")
			}
			var he *HTTPError
			if !tt.ok && (!errors.As(err, &he) || he.Code != wire.CodeInvalidRequest) {
				t.Errorf("err = %#v, want an invalid_request HTTPError", err)
			}
		})
	}
}

func TestFanOutStreamsAsResultsArrive(t *testing.T) {
	f := newFake()
	release := make(chan struct{})
	f.fanFn = func(ctx context.Context, each func(fleet.Call)) (fleet.FanOutSummary, error) {
		each(fleet.Call{ID: "c-1", DeviceID: "dev-1", Method: "m", Status: "succeeded", Result: json.RawMessage(`{"n":1}`)})
		select { // the first line must reach the client before the second exists
		case <-release:
		case <-ctx.Done():
			return fleet.FanOutSummary{}, ctx.Err()
		}
		each(fleet.Call{ID: "c-2", DeviceID: "dev-2", Method: "m", Status: "failed"})
		return fleet.FanOutSummary{Total: 2, Succeeded: 1, Failed: 1, Offline: 1}, nil
	}
	srv := httptest.NewServer(newHandler(f, nil, nil))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/calls", strings.NewReader(`{"tag":"lab","method":"m"}`))
	req.Header.Set("Authorization", "Bearer bsn_operator")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []wire.FanOutLine
	next := func() {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("stream ended early: %v", sc.Err())
		}
		var l wire.FanOutLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		lines = append(lines, l)
	}
	next()
	close(release)
	next()
	next()
	if sc.Scan() {
		t.Errorf("extra line %q", sc.Bytes())
	}
	if lines[0].Type != "result" || lines[0].Call.DeviceID != "dev-1" || lines[1].Call.DeviceID != "dev-2" {
		t.Errorf("results %+v %+v", lines[0], lines[1])
	}
	if lines[2].Type != "summary" || *lines[2].Summary != (wire.FanOutSummary{Total: 2, Succeeded: 1, Failed: 1, Offline: 1}) {
		t.Errorf("summary %+v", lines[2])
	}
}

func TestFanOutErrorAfterStart(t *testing.T) {
	f := newFake()
	f.fanFn = func(ctx context.Context, each func(fleet.Call)) (fleet.FanOutSummary, error) {
		each(fleet.Call{ID: "c-1", DeviceID: "dev-1", Status: "succeeded"})
		return fleet.FanOutSummary{}, errors.New("nats: connection closed (secret detail)")
	}
	rec := serve(t, newHandler(f, nil, nil), "POST", "/api/v1/calls", "bsn_operator", `{"devices":["dev-1","dev-2"],"method":"m"}`)
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if rec.Code != 200 || len(lines) != 2 {
		t.Fatalf("got %d %q", rec.Code, rec.Body)
	}
	if lines[1] != `{"type":"error","error":{"code":"internal","message":"internal error"}}` {
		t.Errorf("last line %s", lines[1])
	}
}

func TestEvents(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(newHandler(f, nil, &options{Heartbeat: 20 * time.Millisecond}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer bsn_operator")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	readUntil := func(want string) {
		t.Helper()
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.TrimRight(line, "\n") == want {
				return
			}
		}
	}
	readUntil(": subscribed")
	f.subs <- fleet.Event{Type: "device.connected", OrgID: 1, DeviceID: "dev-1", At: t0}
	readUntil("event: device.connected")
	readUntil(`data: {"type":"device.connected","device_id":"dev-1","at":"2025-01-02T03:04:05Z"}`)
	readUntil(": heartbeat")
	cancel() // the client goes: the handler must end
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription outlived the client")
	}
}

func TestEventsEndWhenDropped(t *testing.T) {
	f := newFake()
	close(f.subs) // the service dropped us
	rec := serve(t, newHandler(f, nil, nil), "GET", "/api/v1/events", "bsn_operator", "")
	if rec.Code != 200 || rec.Body.String() != "retry: 3000\n: subscribed\n\n" {
		t.Fatalf("got %d %q", rec.Code, rec.Body)
	}
}

func TestDecodeStrict(t *testing.T) {
	type body struct {
		A string `json:"a"`
		B []int  `json:"b"`
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", `{"a":"x","b":[1]}`, ""},
		{"unknown", `{"a":"x","c":1}`, `unknown field "c"`},
		{"trailing", `{"a":"x"} x`, "single JSON value"},
		{"truncated", `{"a":"x"`, "unexpected end"},
		{"syntax", `{"a" "x"}`, "malformed JSON at byte"},
		{"type", `{"b":"x"}`, `"b" must be an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v body
			err := decodeStrict([]byte(tt.in), &v)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
