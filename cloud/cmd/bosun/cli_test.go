package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain shows times in UTC, as the expected outputs are. It is set once,
// before any test starts: a test setting time.Local races with the servers
// an earlier test (or an earlier -count round) is still shutting down.
func TestMain(m *testing.M) {
	displayLoc = time.UTC
	os.Exit(m.Run())
}

// now is the fixed clock of the unit tests; the canned answers are 2m old.
var now = time.Date(2025, 1, 2, 3, 6, 5, 0, time.UTC)

const devJSON = `{"id":"dev-1","org_id":1,"status":"pending","fingerprint":"SHA256:abc","alg":"ed25519","key_changed":false,"online":true,` +
	`"first_seen":"2025-01-02T03:04:05Z","last_seen":"2025-01-02T03:04:05Z","tags":["lab"],"attributes":{"mac":"aa:bb"}}`

// acceptedJSON is the answer to accepting fp of device id.
func acceptedJSON(id, fp string) string {
	d := strings.NewReplacer(`"id":"dev-1"`, `"id":"`+id+`"`, `"status":"pending"`, `"status":"accepted"`, `"SHA256:abc"`, `"`+fp+`"`).Replace(devJSON)
	return strings.TrimSuffix(d, "}") + `,"accepted_fingerprint":"` + fp + `"}`
}

// canned is a fake API: it answers from a table and records what it got.
type canned struct {
	mu   sync.Mutex // guards reqs
	reqs []string   // "METHOD /path?query body"
}

func (c *canned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
	c.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer bsn_good" {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"code":"unauthenticated","message":"invalid or revoked API token"}}`)
		return
	}
	answer := func(status int, s string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, s)
	}
	notFound := func(what string) {
		answer(404, `{"error":{"code":"not_found","message":"`+what+` not found"}}`)
	}
	switch p := r.Method + " " + r.URL.Path; {
	case p == "GET /api/v1/devices":
		answer(200, `{"items":[`+devJSON+`],"total":3,"limit":1,"offset":0}`)
	case p == "POST /api/v1/devices/dev-1/accept":
		answer(200, acceptedJSON("dev-1", "SHA256:abc"))
	case p == "POST /api/v1/devices/dev-2/accept" && strings.Contains(string(body), `"fingerprint":"SHA256:k2"`):
		answer(200, acceptedJSON("dev-2", "SHA256:k2"))
	case p == "POST /api/v1/devices/dev-2/accept":
		answer(409, `{"error":{"code":"ambiguous_key","message":"device dev-2 has 2 pending keys (SHA256:k3, SHA256:k2): name the fingerprint of the one to accept","fingerprints":["SHA256:k3","SHA256:k2"]}}`)
	case p == "GET /api/v1/devices/dev-1", p == "POST /api/v1/devices/dev-1/preauthorize":
		answer(200, devJSON)
	case p == "PUT /api/v1/devices/dev-1/tags":
		answer(200, strings.Replace(devJSON, `"tags":["lab"]`, `"tags":["lab","eu"]`, 1))
	case p == "GET /api/v1/devices/dev-1/keys":
		answer(200, `{"items":[{"id":7,"device_id":"dev-1","fingerprint":"SHA256:abc","alg":"ed25519","status":"pending","key_changed":false,"public_key":"AQID","first_seen":"2025-01-02T03:04:05Z","last_seen":"2025-01-02T03:04:05Z"}]}`)
	case strings.HasPrefix(p, "POST /api/v1/devices/dev-9/"):
		notFound(`device \"dev-9\"`)
	case p == "POST /api/v1/devices/dev-1/call":
		switch {
		case strings.Contains(string(body), `"unlisted"`):
			answer(202, `{"id":"c-6","device_id":"dev-1","method":"unlisted","status":"queued","error":{"code":-32601,"message":"Method not found","data":{"method":"unlisted"}},"actor":"op","created_at":"2025-01-02T03:04:05Z","expires_at":"2025-01-02T04:04:05Z","duration_ms":0}`)
		case strings.Contains(string(body), `"ttl"`):
			answer(202, `{"id":"c-2","device_id":"dev-1","method":"m","status":"queued","actor":"op","created_at":"2025-01-02T03:04:05Z","expires_at":"2025-01-02T04:04:05Z","duration_ms":0}`)
		case strings.Contains(string(body), `"offline"`):
			answer(200, `{"id":"c-3","device_id":"dev-1","method":"offline","status":"failed","error":{"code":-32000,"message":"device offline"},"actor":"op","created_at":"2025-01-02T03:04:05Z","duration_ms":0}`)
		default:
			answer(200, `{"id":"c-1","device_id":"dev-1","method":"system.info","status":"succeeded","result":{"hostname":"dev-1","load":[0.1,0.2,0.3]},"actor":"op","created_at":"2025-01-02T03:04:05Z","duration_ms":12}`)
		}
	case p == "POST /api/v1/calls" && strings.Contains(string(body), `"tag":"nosuchtag"`):
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"summary","summary":{"total":0,"succeeded":0,"failed":0,"offline":0,"timed_out":0}}`+"\n")
	case p == "POST /api/v1/calls":
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"result","call":{"id":"c-4","device_id":"dev-1","method":"m","status":"succeeded","result":{"ok":true},"actor":"op","created_at":"2025-01-02T03:04:05Z","duration_ms":4}}`+"\n")
		io.WriteString(w, `{"type":"result","call":{"id":"c-5","device_id":"dev-2","method":"m","status":"failed","error":{"code":-32000,"message":"device offline"},"actor":"op","created_at":"2025-01-02T03:04:05Z","duration_ms":0}}`+"\n")
		io.WriteString(w, `{"type":"summary","summary":{"total":2,"succeeded":1,"failed":1,"offline":1,"timed_out":0}}`+"\n")
	case p == "GET /api/v1/calls":
		answer(200, `{"items":[{"id":"c-3","device_id":"dev-1","method":"offline","status":"failed","error":{"code":-32000,"message":"device offline"},"actor":"op@example.com","created_at":"2025-01-02T03:04:05Z","duration_ms":0},`+
			`{"id":"c-1","device_id":"dev-1","method":"system.info","status":"succeeded","actor":"op@example.com","created_at":"2025-01-02T03:04:05Z","duration_ms":12}]}`)
	case p == "GET /api/v1/calls/c-2":
		answer(200, `{"id":"c-2","device_id":"dev-1","method":"m","status":"queued","actor":"op","created_at":"2025-01-02T03:04:05Z","expires_at":"2025-01-02T04:04:05Z","duration_ms":0}`)
	case p == "GET /api/v1/tokens":
		answer(200, `{"items":[{"id":4,"name":"ci","user_id":1,"created_at":"2025-01-02T03:04:05Z","revoked":false}]}`)
	case p == "GET /api/v1/audit":
		answer(200, `{"items":[{"id":1,"actor":"op@example.com","action":"device.accept","target":"dev-1","outcome":"ok","at":"2025-01-02T03:04:05Z"}]}`)
	case p == "GET /api/v1/events":
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "retry: 3000\n: subscribed\n\nevent: device.connected\ndata: {\"type\":\"device.connected\",\"device_id\":\"dev-1\",\"at\":\"2025-01-02T03:04:05Z\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		notFound("route")
	}
}

func (c *canned) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.reqs...)
}

// syncBuffer is a bytes.Buffer safe for a running command and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(ctx context.Context, env map[string]string, args ...string) result {
	var out, errb syncBuffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, now: func() time.Time { return now }}
	code := a.run(ctx, args)
	return result{code, out.String(), errb.String()}
}

func TestCommands(t *testing.T) {
	t.Setenv("TZ", "UTC")
	dir := t.TempDir()
	pub, _, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemFile, derFile := filepath.Join(dir, "dev.pub"), filepath.Join(dir, "dev.der")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	os.WriteFile(derFile, der, 0o644)

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string // exact when wantExact, else substring
		wantExact  bool
		wantErr    string // substring of stderr
		wantReqs   []string
		noRequests bool
	}{
		{name: "no command", args: nil, wantCode: 2, wantErr: "usage: bosun", noRequests: true},
		{name: "help", args: []string{"help"}, wantCode: 0, wantOut: "commands:", noRequests: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: `unknown command "frobnicate"`, noRequests: true},
		{name: "unknown flag", args: []string{"devices", "--colour"}, wantCode: 2, noRequests: true,
			wantErr: "bosun devices: flag provided but not defined: -colour\nusage: bosun devices [--pending]"},
		{name: "help of a command", args: []string{"help", "call"}, wantOut: "usage: bosun call ID METHOD [JSON]", noRequests: true},
		{name: "help of an unknown command", args: []string{"help", "frobnicate"}, wantCode: 2, wantErr: `bosun help: unknown command "frobnicate"`, noRequests: true},
		{name: "pending contradicts status", args: []string{"devices", "--pending", "--status", "accepted"}, wantCode: 2, wantErr: "contradict", noRequests: true},
		{name: "devices pending", args: []string{"devices", "--pending", "--tag", "lab"}, wantExact: true,
			wantOut: "ID     STATUS   ONLINE  TAGS  LAST SEEN  FINGERPRINT\n" +
				"dev-1  pending  yes     lab   2m ago     SHA256:abc\n" +
				"1 of 3 devices (use --limit and --offset for more)\n",
			wantReqs: []string{"GET /api/v1/devices?status=pending&tag=lab"}},
		{name: "devices online json", args: []string{"devices", "--online", "--json"}, wantOut: `"total": 3`, wantReqs: []string{"GET /api/v1/devices?online=true"}},
		{name: "device", args: []string{"device", "dev-1"}, wantOut: "Attributes   mac=aa:bb\n\nKEY  STATUS   ALG      FINGERPRINT  FIRST SEEN  LAST SEEN\n7    pending  ed25519  SHA256:abc   2m ago      2m ago\n",
			wantReqs: []string{"GET /api/v1/devices/dev-1", "GET /api/v1/devices/dev-1/keys"}},
		{name: "device needs an id", args: []string{"device"}, wantCode: 2, wantErr: "want one device ID", noRequests: true},
		{name: "accept one good one missing", args: []string{"accept", "dev-1", "dev-9"}, wantCode: 1,
			wantOut: "accepted dev-1 (SHA256:abc)\n", wantExact: true, wantErr: `bosun accept: dev-9: device "dev-9" not found`,
			wantReqs: []string{"POST /api/v1/devices/dev-1/accept", "POST /api/v1/devices/dev-9/accept"}},
		{name: "accept names the reviewed key", args: []string{"accept", "dev-2", "--fingerprint", "SHA256:k2"}, wantExact: true,
			wantOut: "accepted dev-2 (SHA256:k2)\n", wantReqs: []string{`POST /api/v1/devices/dev-2/accept {"fingerprint":"SHA256:k2"}`}},
		{name: "accept with several pending keys", args: []string{"accept", "dev-2"}, wantCode: 1, wantExact: true, wantOut: "",
			wantErr: "bosun accept: dev-2: device dev-2 has 2 pending keys (SHA256:k3, SHA256:k2): name the fingerprint of the one to accept\n" +
				"compare them with the device's own (bosun-bridge fingerprint on the device), then accept one:\n" +
				"  bosun accept dev-2 --fingerprint SHA256:k3\n" +
				"  bosun accept dev-2 --fingerprint SHA256:k2\n",
			wantReqs: []string{`POST /api/v1/devices/dev-2/accept {}`}},
		{name: "accept json", args: []string{"accept", "dev-1", "--json"}, wantOut: `"accepted_fingerprint": "SHA256:abc"`},
		{name: "fingerprint for two devices", args: []string{"accept", "dev-1", "dev-2", "--fingerprint", "SHA256:k2"}, wantCode: 2,
			wantErr: "--fingerprint names a key of one device", noRequests: true},
		{name: "fingerprint malformed", args: []string{"accept", "dev-1", "--fingerprint", "abc"}, wantCode: 2, wantErr: `--fingerprint "abc": want SHA256:`, noRequests: true},
		{name: "reject needs ids", args: []string{"reject"}, wantCode: 2, wantErr: "want at least one device ID", noRequests: true},
		{name: "tag", args: []string{"tag", "dev-1", "lab, eu"}, wantOut: "dev-1 tags: lab, eu\n", wantExact: true,
			wantReqs: []string{`PUT /api/v1/devices/dev-1/tags {"tags":["lab","eu"]}`}},
		{name: "tag clear", args: []string{"tag", "dev-1", ""}, wantReqs: []string{`PUT /api/v1/devices/dev-1/tags {"tags":[]}`}, wantOut: "dev-1 tags:"},
		{name: "preauth pem", args: []string{"preauth", "dev-1", pemFile}, wantOut: "preauthorized dev-1 (SHA256:abc)\n", wantExact: true,
			wantReqs: []string{`POST /api/v1/devices/dev-1/preauthorize {"public_key":"-----BEGIN PUBLIC KEY-----\n`}},
		{name: "preauth der", args: []string{"preauth", "dev-1", derFile},
			wantReqs: []string{`POST /api/v1/devices/dev-1/preauthorize {"public_key":"` + base64.StdEncoding.EncodeToString(der) + `"}`}},
		{name: "preauth missing file", args: []string{"preauth", "dev-1", filepath.Join(dir, "nope")}, wantCode: 1, wantErr: "no such file", noRequests: true},
		{name: "call", args: []string{"call", "dev-1", "system.info"}, wantExact: true,
			wantOut:  "{\n  \"hostname\": \"dev-1\",\n  \"load\": [\n    0.1,\n    0.2,\n    0.3\n  ]\n}\n",
			wantReqs: []string{`POST /api/v1/devices/dev-1/call {"method":"system.info"}`}},
		{name: "call with params and flags after", args: []string{"call", "dev-1", "containers.list", `{"all":true}`, "--timeout", "5s"},
			wantReqs: []string{`POST /api/v1/devices/dev-1/call {"method":"containers.list","params":{"all":true},"timeout":"5s"}`}},
		{name: "call offline", args: []string{"call", "dev-1", "offline"}, wantCode: 1, wantErr: "error -32000: device offline\n"},
		{name: "call queued", args: []string{"call", "dev-1", "m", "--ttl", "1h"}, wantOut: "device offline: call c-2 queued, expires 2025-01-02 04:04:05 (in 58m)\n", wantExact: true,
			wantReqs: []string{`POST /api/v1/devices/dev-1/call {"method":"m","ttl":"1h"}`}},
		{name: "call queued for a method not served yet", args: []string{"call", "dev-1", "unlisted", "--ttl", "1h"}, wantExact: true,
			wantOut:  "device does not serve unlisted yet (-32601 Method not found): call c-6 queued, expires 2025-01-02 04:04:05 (in 58m)\n",
			wantReqs: []string{`POST /api/v1/devices/dev-1/call {"method":"unlisted","ttl":"1h"}`}},
		{name: "call params not JSON", args: []string{"call", "dev-1", "m", "{all}"}, wantCode: 2, wantErr: "want a JSON object or array", noRequests: true},
		{name: "call params scalar", args: []string{"call", "dev-1", "m", "5"}, wantCode: 2, wantErr: "want a JSON object or array", noRequests: true},
		{name: "call bad timeout", args: []string{"call", "dev-1", "m", "--timeout", "5"}, wantCode: 2, wantErr: `--timeout "5"`, noRequests: true},
		{name: "call too few args", args: []string{"call", "dev-1"}, wantCode: 2, wantErr: "want ID METHOD [JSON]", noRequests: true},
		{name: "fan-out", args: []string{"call", "--tag", "lab", "m"}, wantCode: 1, wantExact: true,
			wantOut:  "dev-1: (4ms)\n{\n  \"ok\": true\n}\ndev-2: error -32000: device offline\n2 devices: 1 succeeded, 1 failed, 1 offline, 0 timed out\n",
			wantReqs: []string{`POST /api/v1/calls {"tag":"lab","method":"m"}`}},
		{name: "fan-out json", args: []string{"call", "--tag", "lab", "m", "--json"}, wantCode: 1, wantOut: `{"type":"summary","summary":{"total":2,"succeeded":1,"failed":1,"offline":1,"timed_out":0}}` + "\n"},
		{name: "fan-out ttl", args: []string{"call", "--tag", "lab", "m", "--ttl", "1h"}, wantCode: 2, wantErr: "--ttl works only for one device", noRequests: true},
		{name: "fan-out to a tag no device has", args: []string{"call", "--tag", "nosuchtag", "m"}, wantCode: 1, wantExact: true, wantOut: "",
			wantErr:  "bosun call: no device has tag \"nosuchtag\" (`bosun devices --tag nosuchtag` lists them)\n",
			wantReqs: []string{`POST /api/v1/calls {"tag":"nosuchtag","method":"m"}`}},
		{name: "fan-out to a tag no device has, json", args: []string{"call", "--tag", "nosuchtag", "m", "--json"}, wantCode: 1, wantExact: true,
			wantOut: `{"type":"summary","summary":{"total":0,"succeeded":0,"failed":0,"offline":0,"timed_out":0}}` + "\n", wantErr: `no device has tag "nosuchtag"`},
		{name: "queued call expires in the future", args: []string{"calls", "c-2"}, wantOut: "Expires   2025-01-02 04:04:05 (in 58m)\n",
			wantReqs: []string{"GET /api/v1/calls/c-2"}},
		{name: "tokens", args: []string{"tokens"}, wantExact: true, wantOut: "ID  NAME  CREATED  LAST USED  REVOKED\n4   ci    2m ago   never      no\n",
			wantReqs: []string{"GET /api/v1/tokens"}},
		{name: "tokens list", args: []string{"tokens", "list"}, wantExact: true, wantOut: "ID  NAME  CREATED  LAST USED  REVOKED\n4   ci    2m ago   never      no\n",
			wantReqs: []string{"GET /api/v1/tokens"}},
		{name: "tokens list takes no argument", args: []string{"tokens", "list", "x"}, wantCode: 2, wantErr: "want list (or nothing), create NAME, or revoke ID", noRequests: true},
		{name: "tokens unknown", args: []string{"tokens", "frob"}, wantCode: 2, wantErr: "usage: bosun tokens [list | create NAME | revoke ID]", noRequests: true},
		{name: "tokens revoke needs a number", args: []string{"tokens", "revoke", "ci"}, wantCode: 2, wantErr: `token ID "ci": want a number`, noRequests: true},
		{name: "calls", args: []string{"calls", "--device", "dev-1"}, wantExact: true,
			wantOut: "ID   DEVICE  METHOD       STATUS           DURATION  CREATED  ACTOR\n" +
				"c-3  dev-1   offline      failed (-32000)  -         2m ago   op@example.com\n" +
				"c-1  dev-1   system.info  succeeded        12ms      2m ago   op@example.com\n",
			wantReqs: []string{"GET /api/v1/calls?device=dev-1"}},
		{name: "audit", args: []string{"audit", "--action", "device.accept"}, wantExact: true,
			wantOut:  "AT                   ACTOR           ACTION         TARGET  OUTCOME\n2025-01-02 03:04:05  op@example.com  device.accept  dev-1   ok\n",
			wantReqs: []string{"GET /api/v1/audit?action=device.accept"}},
		{name: "bad token", args: []string{"devices", "--token", "bsn_bad"}, wantCode: 1, wantErr: "bosun devices: invalid or revoked API token (check --token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &canned{}
			srv := httptest.NewServer(c)
			defer srv.Close()
			env := map[string]string{"BOSUN_URL": srv.URL, "BOSUN_TOKEN": "bsn_good", "HOME": dir}
			r := runCLI(context.Background(), env, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if tt.wantExact && r.stdout != tt.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tt.wantOut)
			} else if !strings.Contains(r.stdout, tt.wantOut) {
				t.Errorf("stdout:\n%s\nwant it to contain:\n%s", r.stdout, tt.wantOut)
			}
			if strings.Contains(r.stderr, "Usage of") {
				t.Errorf("stderr has the flag package's own usage:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr:\n%s\nwant it to contain:\n%s", r.stderr, tt.wantErr)
			}
			if tt.wantErr == "" && r.stderr != "" {
				t.Errorf("unexpected stderr: %s", r.stderr)
			}
			got := c.requests()
			if tt.noRequests && len(got) > 0 {
				t.Errorf("sent %q, want nothing", got)
			}
			for i, want := range tt.wantReqs {
				if i >= len(got) || !strings.HasPrefix(got[i], want) {
					t.Errorf("requests %q, want #%d to start with %q", got, i, want)
				}
			}
		})
	}
}

func TestResolveConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	explicit := write("explicit.json", `{"url":"http://file","token":"bsn_file"}`)
	write("xdg/bosun/config.json", `{"url":"http://xdg","token":"bsn_xdg"}`)
	write("home/.config/bosun/config.json", `{"url":"http://home","token":"bsn_home"}`)
	bad := write("bad.json", `{"url":"http://x","tokn":"typo"}`)

	tests := []struct {
		name                string
		flagURL, flagConfig string
		env                 map[string]string
		wantURL, wantToken  string
		wantErr             string
	}{
		{name: "flags beat env", flagURL: "http://flag", env: map[string]string{"BOSUN_URL": "http://env", "BOSUN_TOKEN": "bsn_env"}, wantURL: "http://flag", wantToken: "bsn_env"},
		{name: "env beats file", flagConfig: explicit, env: map[string]string{"BOSUN_TOKEN": "bsn_env"}, wantURL: "http://file", wantToken: "bsn_env"},
		{name: "BOSUN_CONFIG", env: map[string]string{"BOSUN_CONFIG": explicit}, wantURL: "http://file", wantToken: "bsn_file"},
		{name: "XDG default", env: map[string]string{"XDG_CONFIG_HOME": filepath.Join(dir, "xdg"), "HOME": filepath.Join(dir, "home")}, wantURL: "http://xdg", wantToken: "bsn_xdg"},
		{name: "HOME default", env: map[string]string{"HOME": filepath.Join(dir, "home")}, wantURL: "http://home", wantToken: "bsn_home"},
		{name: "missing default file is fine", env: map[string]string{"HOME": filepath.Join(dir, "nobody"), "BOSUN_URL": "http://env", "BOSUN_TOKEN": "t"}, wantURL: "http://env", wantToken: "t"},
		{name: "missing explicit file", flagConfig: filepath.Join(dir, "nope.json"), wantErr: "no such file"},
		{name: "unknown field in file", flagConfig: bad, wantErr: `unknown field "tokn"`},
		{name: "nothing", env: map[string]string{"HOME": filepath.Join(dir, "nobody")}, wantErr: "no cloud URL"},
		{name: "no token", env: map[string]string{"HOME": filepath.Join(dir, "nobody"), "BOSUN_URL": "http://x"}, wantErr: "no API token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{url: tt.flagURL, config: tt.flagConfig, getenv: func(k string) string { return tt.env[k] }}
			u, tok, err := a.resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || u != tt.wantURL || tok != tt.wantToken {
				t.Fatalf("got %q %q %v, want %q %q", u, tok, err, tt.wantURL, tt.wantToken)
			}
		})
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantPos string
		wantTO  string
	}{
		{"flags first", []string{"--timeout", "5s", "a", "b"}, "a b", "5s"},
		{"flags last", []string{"a", "b", "--timeout=5s"}, "a b", "5s"},
		{"flags between", []string{"a", "-timeout", "5s", "b"}, "a b", "5s"},
		{"double dash", []string{"a", "--", "--timeout", "-1"}, "a --timeout -1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{stderr: io.Discard}
			fs := a.flags("x")
			to := fs.String("timeout", "", "")
			pos, err := parse(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(pos, " "); got != tt.wantPos || *to != tt.wantTO {
				t.Errorf("got %q timeout %q, want %q %q", got, *to, tt.wantPos, tt.wantTO)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	r := runCLI(context.Background(), map[string]string{"BOSUN_URL": url, "BOSUN_TOKEN": "x"}, "devices")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the cloud at "+url) {
		t.Fatalf("got %d %q", r.code, r.stderr)
	}
}

func TestEventsFollowUntilCancelled(t *testing.T) {
	c := &canned{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	a := &app{stdout: &out, stderr: &errb, now: func() time.Time { return now },
		getenv: func(k string) string { return map[string]string{"BOSUN_URL": srv.URL, "BOSUN_TOKEN": "bsn_good"}[k] }}
	done := make(chan int)
	go func() { done <- a.run(ctx, []string{"events"}) }()
	want := "03:04:05  device.connected      dev-1\n"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("stdout %q, want %q; stderr %q", out.String(), want, errb.String())
		}
		select {
		case code := <-done:
			t.Fatalf("events ended early with %d: %s", code, errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after Ctrl-C, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events did not stop when cancelled")
	}
	if !strings.Contains(errb.String(), "following events") {
		t.Errorf("stderr %q", errb.String())
	}
}

// TestCommandHelp: `bosun COMMAND -h` (and --help, and `bosun help
// COMMAND`) prints, on stdout with exit 0 and without asking the cloud, the
// command's usage, every positional argument of its synopsis with what it
// is, and its flags; no credentials are needed.
func TestCommandHelp(t *testing.T) {
	c := &canned{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	for _, cmd := range commands {
		t.Run(cmd.name, func(t *testing.T) {
			args := synopsisArgs(cmd.synopsis)
			var docs []string
			for _, a := range cmd.args {
				docs = append(docs, strings.Fields(a.name)...)
			}
			for _, w := range args {
				if !slices.Contains(docs, w) {
					t.Errorf("positional argument %s of %q is not documented in args (%q)", w, cmd.synopsis, docs)
				}
			}
			forms := [][]string{{"help", cmd.name}}
			if cmd.name != "help" {
				forms = append(forms, []string{cmd.name, "-h"}, []string{cmd.name, "--help"}, []string{cmd.name, "ID", "--help"})
			}
			var first string
			for _, form := range forms {
				r := runCLI(context.Background(), map[string]string{"BOSUN_URL": srv.URL}, form...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("bosun %s: exit %d, stderr %q", strings.Join(form, " "), r.code, r.stderr)
				}
				if first == "" {
					first = r.stdout
				} else if r.stdout != first {
					t.Errorf("bosun %s printed\n%s\nbosun help %s printed\n%s", strings.Join(form, " "), r.stdout, cmd.name, first)
				}
			}
			if !strings.HasPrefix(first, "usage: bosun "+cmd.name+" ") {
				t.Errorf("help starts %q", first)
			}
			if len(cmd.args) > 0 {
				_, section, ok := strings.Cut(first, "\narguments:\n")
				if !ok {
					t.Fatalf("no arguments section:\n%s", first)
				}
				for _, a := range cmd.args {
					if !strings.Contains(section, "  "+a.name+"  ") || !strings.Contains(section, a.help) {
						t.Errorf("arguments lack %s: %s:\n%s", a.name, a.help, first)
					}
				}
			}
			if cmd.name != "help" {
				for _, f := range []string{"--json", "--url URL", "--token TOKEN", "--config CONFIG"} {
					if !strings.Contains(first, "  "+f+" ") {
						t.Errorf("help lacks flag %s:\n%s", f, first)
					}
				}
			}
		})
	}
	if got := c.requests(); len(got) > 0 {
		t.Fatalf("help asked the cloud: %q", got)
	}
	// The flags of a command, with their value names.
	r := runCLI(context.Background(), nil, "call", "-h")
	for _, want := range []string{
		"usage: bosun call ID METHOD [JSON] [--timeout 30s] [--ttl 1h] [--json]\n       bosun call --tag TAG METHOD [JSON] [--timeout 30s] [--json]\n",
		"\n  --tag TAG          call every device with this tag",
		"\n  --ttl TTL          queue the call this long",
		"\n  --url URL        cloud URL",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bosun call -h lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCLI(context.Background(), nil, "devices", "-h"); !strings.Contains(r.stdout, "  --limit N ") {
		t.Errorf("bosun devices -h: want --limit N:\n%s", r.stdout)
	}
}

// synopsisArgs returns the positional words of a synopsis: everything but
// flags and their values, without brackets and "|".
func synopsisArgs(synopsis string) []string {
	var out []string
	for _, form := range strings.Split(synopsis, "\n") {
		words := strings.Fields(form)
		for i := 0; i < len(words); i++ {
			w := words[i]
			if strings.HasPrefix(strings.TrimLeft(w, "["), "--") {
				switch {
				case strings.HasSuffix(w, "]"): // [--json]
				case strings.HasPrefix(w, "["): // [--limit N]
					for i < len(words) && !strings.HasSuffix(words[i], "]") {
						i++
					}
				default: // --tag TAG
					i++
				}
				continue
			}
			// Brackets of optional groups go; TAG[,TAG...] keeps its own.
			w = strings.TrimPrefix(w, "[")
			if strings.Count(w, "[") < strings.Count(w, "]") {
				w = strings.TrimSuffix(w, "]")
			}
			if w != "|" && w != "" {
				out = append(out, w)
			}
		}
	}
	return out
}

func TestSynopsisArgs(t *testing.T) {
	got := synopsisArgs("ID METHOD [JSON] [--timeout 30s] [--json]\n--tag TAG METHOD [--json]\n[list | create NAME] TAG[,TAG...]")
	want := []string{"ID", "METHOD", "JSON", "METHOD", "list", "create", "NAME", "TAG[,TAG...]"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestAgo: past times read "5m ago", future ones "in 59m", each unit
// rounded down, at and beyond each bound.
func TestAgo(t *testing.T) {
	a := &app{now: func() time.Time { return now }}
	for _, tt := range []struct {
		offset time.Duration // how far in the past
		want   string
	}{
		{0, "0s ago"},
		{999 * time.Millisecond, "0s ago"},
		{59 * time.Second, "59s ago"},
		{time.Minute, "1m ago"},
		{59*time.Minute + 59*time.Second, "59m ago"},
		{time.Hour, "1h ago"},
		{48*time.Hour - time.Second, "47h ago"},
		{48 * time.Hour, "2d ago"},
		{-time.Millisecond, "just now"},
		{-999 * time.Millisecond, "just now"},
		{-time.Second, "in 1s"},
		{-59 * time.Second, "in 59s"},
		{-time.Minute, "in 1m"},
		{-(59*time.Minute + 59*time.Second), "in 59m"},
		{-time.Hour, "in 1h"},
		{-(48*time.Hour - time.Second), "in 47h"},
		{-48 * time.Hour, "in 2d"},
	} {
		if got := a.ago(now.Add(-tt.offset)); got != tt.want {
			t.Errorf("ago(now - %v) = %q, want %q", tt.offset, got, tt.want)
		}
	}
	if got := a.ago(time.Time{}); got != "never" {
		t.Errorf("ago(zero) = %q, want never", got)
	}
	if got := a.when(now.Add(59*time.Minute + 30*time.Second)); got != "2025-01-02 04:05:35 (in 59m)" {
		t.Errorf("when(in 59m30s) = %q", got)
	}
}
