package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/cloudtest"
	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/cloud/internal/metrics"
	"github.com/bosunhq/bosun/cloud/internal/server"
	"github.com/bosunhq/bosun/pkg/jsonrpc"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// acceptedDevice connects a device serving system.info and app.fail (which
// always fails) and accepts it.
func acceptedDevice(t *testing.T, s *cloudtest.Server, id string) *cloudtest.Device {
	t.Helper()
	disp := jsonrpc.NewDispatcher()
	disp.Register(rpcproto.MethodSystemInfo, func(context.Context, json.RawMessage) (any, error) {
		return map[string]string{"hostname": id}, nil
	})
	disp.Register("app.fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("it always fails")
	})
	d := cloudtest.MustConnect(t, s, id, cloudtest.DeviceOptions{Dispatcher: disp})
	if err := s.Service().Accept(ctxT(t), s.Super, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Accepted():
	case <-time.After(10 * time.Second):
		t.Fatalf("device %s: no auth.accepted within 10s", id)
	}
	return d
}

// apiCall makes a call through the JSON API and returns the HTTP status.
func apiCall(t *testing.T, s *cloudtest.Server, device, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, s.URL()+"/api/v1/devices/"+device+"/call", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token(t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// delta is after[k] - before[k] for each k of want, compared with want.
func checkDelta(t *testing.T, before, after samples, want map[string]float64) {
	t.Helper()
	for k, w := range want {
		if got := after[k] - before[k]; got != w {
			t.Errorf("%s moved by %v, want %v (before %v, after %v)", k, got, w, before[k], after[k])
		}
	}
}

// TestMetricsCountWhatHappened drives a real replica through handshakes,
// a refused frame, calls that succeed and fail, bad input and unknown
// routes, and checks that each counter of /metrics moved by exactly that.
func TestMetricsCountWhatHappened(t *testing.T) {
	s := cloudtest.NewServer(t)
	tok := s.Token(t)
	before := scrape(t, s.URL(), tok)
	for _, name := range []string{"bosun_sessions", "bosun_handshakes_total", "bosun_calls_total", "go_goroutines",
		"process_resident_memory_bytes", "bosun_db_pool_max_connections", "bosun_calls_queued", "bosun_nats_connected"} {
		if !before.names()[name] {
			t.Errorf("the first scrape has no %s", name)
		}
	}

	// A pending device, then accepted: one handshake "pending", and the
	// session moves from pending to accepted.
	d := acceptedDevice(t, s, "dev-m")
	mid := scrape(t, s.URL(), tok)
	checkDelta(t, before, mid, map[string]float64{
		`bosun_handshakes_total{outcome="pending"}`:  1,
		`bosun_handshakes_total{outcome="accepted"}`: 0,
		`bosun_sessions{state="accepted"}`:           1,
		`bosun_sessions{state="pending"}`:            0,
		`bosun_sessions{state="handshaking"}`:        0,
	})
	// Reconnecting with the accepted key: one handshake "accepted".
	d.Close()
	cloudtest.Eventually(t, 5*time.Second, func() bool { return s.Hub().Sessions() == 0 }, "session gone")
	d = acceptedDeviceAgain(t, s, "dev-m", d)
	_ = d

	// A frame whose signature fails: rejected, counted by reason, and the
	// handshake is "invalid".
	key := cloudtest.NewKey()
	r := cloudtest.DialRaw(ctxT(t), t, s.DeviceURL())
	f := cloudtest.RegisterFrame(t, "dev-bad", key, "dev-bad", key.Public(), r.Header())
	i := bytes.Index(f, []byte(`"sig":"`)) + len(`"sig":"`)
	if f[i] == 'A' { // another valid base64 character: the signature, not the encoding, fails
		f[i] = 'B'
	} else {
		f[i] = 'A'
	}
	r.Write(ctxT(t), websocket.MessageText, f)
	r.WaitClose(t, 5*time.Second)

	for range 3 {
		if code := apiCall(t, s, "dev-m", `{"method":"system.info"}`); code != http.StatusOK {
			t.Fatalf("system.info call = %d", code)
		}
	}
	if code := apiCall(t, s, "dev-m", `{"method":"app.fail"}`); code != http.StatusOK {
		t.Fatalf("app.fail call = %d", code)
	}
	// Bad input: refused with 400, no call counted.
	if code := apiCall(t, s, "dev-m", `{"method":"no spaces allowed"}`); code != http.StatusBadRequest {
		t.Fatalf("invalid method = %d, want 400", code)
	}
	if resp, _ := get(t, s.URL()+"/api/v1/no-such-route", "Bearer "+tok); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown route = %d", resp.StatusCode)
	}

	var after samples
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		after = scrape(t, s.URL(), tok)
		return after[`bosun_envelope_rejections_total{reason="bad_signature"}`] == 1 &&
			after[`bosun_handshakes_total{outcome="invalid"}`]-before[`bosun_handshakes_total{outcome="invalid"}`] == 1
	}, "bad_signature counted")
	checkDelta(t, before, after, map[string]float64{
		`bosun_handshakes_total{outcome="pending"}`:                                         1,
		`bosun_handshakes_total{outcome="accepted"}`:                                        1,
		`bosun_handshakes_total{outcome="invalid"}`:                                         1,
		`bosun_sessions{state="accepted"}`:                                                  1,
		`bosun_calls_total{method="system.info",status="succeeded"}`:                        3,
		`bosun_calls_total{method="system.info",status="failed"}`:                           0,
		`bosun_call_duration_seconds_count{method="system.info"}`:                           3,
		`bosun_calls_total{method="app.fail",status="failed"}`:                              1,
		`bosun_calls_total{method="other",status="succeeded"}`:                              0,
		`bosun_http_requests_total{code="200",route="POST /api/v1/devices/{id}/call"}`:      4,
		`bosun_http_requests_total{code="400",route="POST /api/v1/devices/{id}/call"}`:      1,
		`bosun_http_requests_total{code="404",route="unmatched"}`:                           1,
		`bosun_http_request_duration_seconds_count{route="POST /api/v1/devices/{id}/call"}`: 5,
		`bosun_nats_routing_errors_total{what="call"}`:                                      0,
	})
	var calls float64
	for k, v := range after {
		if strings.HasPrefix(k, "bosun_calls_total{") {
			calls += v - before[k]
		}
	}
	if calls != 4 {
		t.Errorf("bosun_calls_total moved by %v in all, want 4 (the invalid call counts nowhere)", calls)
	}
	if after[`bosun_db_pool_max_connections`] <= 0 || after[`bosun_db_pool_acquires_total`] <= before[`bosun_db_pool_acquires_total`] {
		t.Errorf("db pool: max %v, acquires %v -> %v", after[`bosun_db_pool_max_connections`],
			before[`bosun_db_pool_acquires_total`], after[`bosun_db_pool_acquires_total`])
	}
	if after[`bosun_nats_connected`] != 1 || after[`bosun_nats_messages_total{direction="out"}`] <= before[`bosun_nats_messages_total{direction="out"}`] {
		t.Errorf("nats: connected %v, out %v -> %v", after[`bosun_nats_connected`],
			before[`bosun_nats_messages_total{direction="out"}`], after[`bosun_nats_messages_total{direction="out"}`])
	}
}

// acceptedDeviceAgain reconnects an accepted device with its key.
func acceptedDeviceAgain(t *testing.T, s *cloudtest.Server, id string, old *cloudtest.Device) *cloudtest.Device {
	t.Helper()
	d := cloudtest.MustConnect(t, s, id, cloudtest.DeviceOptions{Key: old.Key, Dispatcher: old.Dispatcher})
	if d.Registration.Status != rpcproto.StatusAccepted {
		t.Fatalf("reconnect: registration %+v", d.Registration)
	}
	return d
}

// TestMetricsAuth: on the main listener /metrics needs a super user's API
// token; anything else is refused and shows no metric.
func TestMetricsAuth(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	svc := s.Service()
	tokenOf := func(email string, role fleet.Role) string {
		s.Actor(t, email, role, "")
		tok, _, err := svc.CreateTokenForUser(ctx, email, "metrics")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	revoked, rt, err := svc.CreateTokenForUser(ctx, cloudtest.SuperEmail, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeToken(ctx, s.Super, rt.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		auth string
		want int
	}{
		{name: "no token", auth: "", want: http.StatusUnauthorized},
		{name: "not bearer", auth: "Basic c3VwZXI6c2VjcmV0", want: http.StatusUnauthorized},
		{name: "empty bearer", auth: "Bearer ", want: http.StatusUnauthorized},
		{name: "malformed token", auth: "Bearer bsn_nope", want: http.StatusUnauthorized},
		{name: "unknown token", auth: "Bearer " + fleet.TokenPrefix + strings.Repeat("A", 43), want: http.StatusUnauthorized},
		{name: "revoked super token", auth: "Bearer " + revoked, want: http.StatusUnauthorized},
		{name: "admin", auth: "Bearer " + tokenOf("admin@m.test", fleet.RoleAdmin), want: http.StatusForbidden},
		{name: "operator", auth: "Bearer " + tokenOf("op@m.test", fleet.RoleOperator), want: http.StatusForbidden},
		{name: "viewer", auth: "Bearer " + tokenOf("viewer@m.test", fleet.RoleViewer), want: http.StatusForbidden},
		{name: "super", auth: "Bearer " + s.Token(t), want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, s.URL()+"/metrics", tt.auth)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			leaked := bytes.Contains(body, []byte("bosun_")) || bytes.Contains(body, []byte("go_goroutines"))
			if tt.want != http.StatusOK && leaked {
				t.Fatalf("a refused scrape shows metrics: %.200s", body)
			}
			if tt.want == http.StatusOK && !leaked {
				t.Fatalf("the super user's scrape has no metrics: %.200s", body)
			}
			if tt.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

// TestMetricsListen: --metrics-listen serves /metrics without a token and
// nothing else; a bad address is refused at start.
func TestMetricsListen(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) { c.MetricsListen = "127.0.0.1:0" }))
	addr := s.MetricsAddr()
	if addr == "" {
		t.Fatal("no metrics address")
	}
	resp, body := get(t, "http://"+addr+"/metrics", "")
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("bosun_sessions")) {
		t.Fatalf("GET /metrics on the metrics listener = %d: %.200s", resp.StatusCode, body)
	}
	for _, path := range []string{"/api/v1/devices", "/v1/device", "/"} {
		if resp, _ := get(t, "http://"+addr+path, "Bearer "+s.Token(t)); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on the metrics listener = %d, want 404", path, resp.StatusCode)
		}
	}
	// The main listener still wants a token.
	if resp, _ := get(t, s.URL()+"/metrics", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("main listener without a token = %d, want 401", resp.StatusCode)
	}
	if got := (&server.Server{}).MetricsAddr(); got != "" {
		t.Errorf("MetricsAddr without a listener = %q", got)
	}

	// A metrics address that cannot be listened on fails the start, with
	// the address in the error.
	ctx := ctxT(t)
	_, err := server.Start(ctx, server.Config{DatabaseURL: s.DatabaseURL, Listen: "127.0.0.1:0", CloudKey: s.Key,
		Replica: "r-bad-metrics", MetricsListen: "127.0.0.1:99999"}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:99999") {
		t.Fatalf("Start with a bad metrics address: %v", err)
	}
}

// TestQueuedCallsGauge: bosun_calls_queued counts the queue in PostgreSQL,
// at most once per Options.QueueRefresh.
func TestQueuedCallsGauge(t *testing.T) {
	for _, tt := range []struct {
		name    string
		refresh time.Duration
		want    float64 // after queueing 3 calls
	}{
		{name: "refreshed", refresh: 50 * time.Millisecond, want: 3},
		{name: "cached", refresh: time.Hour, want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := cloudtest.NewServer(t, cloudtest.WithConfig(func(c *server.Config) { c.Metrics.QueueRefresh = tt.refresh }))
			tok := s.Token(t)
			if got := scrape(t, s.URL(), tok)[`bosun_calls_queued`]; got != 0 {
				t.Fatalf("queued at start = %v", got)
			}
			d := acceptedDevice(t, s, "dev-q")
			d.Close()
			cloudtest.Eventually(t, 5*time.Second, func() bool { return s.Hub().Sessions() == 0 }, "offline")
			for range 3 {
				if code := apiCall(t, s, "dev-q", `{"method":"system.info","ttl":"1h"}`); code != http.StatusAccepted {
					t.Fatalf("queued call = %d, want 202", code)
				}
			}
			if tt.want == 0 {
				if got := scrape(t, s.URL(), tok)[`bosun_calls_queued`]; got != 0 {
					t.Fatalf("queued within the refresh interval = %v, want the cached 0", got)
				}
				return
			}
			cloudtest.Eventually(t, 5*time.Second, func() bool { return scrape(t, s.URL(), tok)[`bosun_calls_queued`] == tt.want },
				"bosun_calls_queued = %v", tt.want)
		})
	}
}

// TestOTADownloads: bytes and outcomes of real downloads.
func TestOTADownloads(t *testing.T) {
	s := cloudtest.NewServer(t)
	ctx := ctxT(t)
	tok := s.Token(t)
	acceptedDevice(t, s, "dev-ota")
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	art, err := s.Service().UploadArtifact(ctx, s.Super, "app", "1.0.0", int64(len(body)), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	dl, _, err := s.Service().DownloadToken(ctx, "dev-ota", art)
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, s.URL(), tok)
	fetch := func(token, rng string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+fleet.DownloadPath+token, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode == http.StatusOK && n != int64(len(body)) {
			t.Fatalf("downloaded %d bytes, want %d", n, len(body))
		}
		return resp.StatusCode
	}
	if code := fetch(dl, ""); code != http.StatusOK {
		t.Fatalf("download = %d", code)
	}
	if code := fetch(dl, "bytes=0-99"); code != http.StatusPartialContent {
		t.Fatalf("range download = %d", code)
	}
	if code := fetch("not-a-token", ""); code != http.StatusForbidden {
		t.Fatalf("bad token = %d", code)
	}
	after := scrape(t, s.URL(), tok)
	checkDelta(t, before, after, map[string]float64{
		`bosun_ota_download_bytes_total`:                float64(len(body) + 100),
		`bosun_ota_downloads_total{outcome="complete"}`: 1,
		`bosun_ota_downloads_total{outcome="partial"}`:  1,
		`bosun_ota_downloads_total{outcome="refused"}`:  1,
		`bosun_ota_downloads_total{outcome="aborted"}`:  0,
	})
}

// TestMethodLabelsBounded: method names come from operators and devices;
// 10,000 distinct ones must not make 10,000 series. Up to MaxMethods learned
// methods get their own label, exactly at the bound too; every later one
// is "other".
func TestMethodLabelsBounded(t *testing.T) {
	const limit = 50
	m := metrics.New(metrics.Options{MaxMethods: limit})
	now := time.Now()
	sent := now.Add(-3 * time.Millisecond)
	call := func(method string) {
		m.CallFinished(fleet.Call{Method: method, Status: "succeeded", SentAt: &sent, FinishedAt: &now})
	}
	for i := range limit {
		call(fmt.Sprintf("app.m%d", i))
	}
	if n := callsOf(t, m, metrics.OtherMethod); n != 0 {
		t.Fatalf("at the bound: %v calls under other, want 0", n)
	}
	call(rpcproto.MethodSystemInfo) // built in: never "other"
	for i := range 10_000 {
		call(fmt.Sprintf("app.unknown%d", i))
	}
	call("app.m0") // learned before the bound: still its own label
	if n := callsOf(t, m, metrics.OtherMethod); n != 10_000 {
		t.Fatalf("beyond the bound: %v calls under other, want 10000", n)
	}
	if n := callsOf(t, m, "app.m0"); n != 2 {
		t.Fatalf("app.m0 = %v, want 2", n)
	}
	series := testutil.CollectAndCount(m.Registry(), "bosun_calls_total")
	maxSeries := (len(metrics.BuiltinMethods) + limit + 1) * 5
	if series > maxSeries {
		t.Fatalf("bosun_calls_total has %d series, want at most %d", series, maxSeries)
	}
	if hist := testutil.CollectAndCount(m.Registry(), "bosun_call_duration_seconds"); hist > len(metrics.BuiltinMethods)+limit+1 {
		t.Fatalf("bosun_call_duration_seconds has %d series", hist)
	}
	// An unknown status is "other", not a new label.
	m.CallFinished(fleet.Call{Method: "app.m1", Status: "weird"})
	if got := testutil.CollectAndCount(m.Registry(), "bosun_calls_total"); got != series {
		t.Fatalf("an unknown status added series: %d -> %d", series, got)
	}
}

// callsOf sums bosun_calls_total of one method label.
func callsOf(t *testing.T, m *metrics.Cloud, method string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "bosun_calls_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "method" && l.GetValue() == method {
					n += mt.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// TestDashboardQueriesExist: every bosun_ metric the Grafana dashboard
// queries (docs/grafana/bosun.json) is in a real replica's /metrics, except
// the bridge's (bosun_bridge_*), which the bridge's own test checks.
func TestDashboardQueriesExist(t *testing.T) {
	raw, err := os.ReadFile("../../../docs/grafana/bosun.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana/bosun.json is not valid JSON: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) < 7 {
		t.Fatalf("dashboard %q has %d panels", dash.Title, len(dash.Panels))
	}
	s := cloudtest.NewServer(t)
	// Series with labels appear once something was counted: one API
	// request and one refused device frame.
	if resp, _ := get(t, s.URL()+"/api/v1/devices", "Bearer "+s.Token(t)); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/devices = %d", resp.StatusCode)
	}
	r := cloudtest.DialRaw(ctxT(t), t, s.DeviceURL())
	r.Write(ctxT(t), websocket.MessageText, []byte("not an envelope"))
	r.WaitClose(t, 5*time.Second)
	var have map[string]bool
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		have = scrape(t, s.URL(), s.Token(t)).names()
		return have["bosun_envelope_rejections_total"]
	}, "the refused frame counted")
	re := regexp.MustCompile(`\bbosun_[a-z0-9_]+`)
	checked := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				if strings.HasPrefix(name, "bosun_bridge_") {
					continue
				}
				checked++
				if !have[name] {
					t.Errorf("panel %q queries %s, which the cloud's /metrics does not have", p.Title, name)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no cloud metric in the dashboard's queries")
	}
}

// TestHandshakeOutcomes: a connection that has not registered yet is
// "handshaking" until it ends; a device whose key was rejected is counted
// "rejected" and never becomes a session.
func TestHandshakeOutcomes(t *testing.T) {
	s := cloudtest.NewServer(t, cloudtest.WithHub(func(o *hub.Options) { o.HandshakeTimeout = 500 * time.Millisecond }))
	tok := s.Token(t)
	before := scrape(t, s.URL(), tok)

	r := cloudtest.DialRaw(ctxT(t), t, s.DeviceURL()) // says nothing after the challenge
	cloudtest.Eventually(t, 5*time.Second, func() bool { return scrape(t, s.URL(), tok)[`bosun_sessions{state="handshaking"}`] == 1 },
		"one connection handshaking")
	r.WaitClose(t, 5*time.Second) // the handshake timeout
	cloudtest.Eventually(t, 5*time.Second, func() bool { return scrape(t, s.URL(), tok)[`bosun_sessions{state="handshaking"}`] == 0 },
		"no connection handshaking")

	d := cloudtest.MustConnect(t, s, "dev-rej", cloudtest.DeviceOptions{})
	if err := s.Service().Reject(ctxT(t), s.Super, "dev-rej"); err != nil {
		t.Fatal(err)
	}
	d.WaitClosed(t, 5*time.Second)
	again, err := cloudtest.Connect(ctxT(t), t, s.DeviceURL(), s.CloudPublic(), "dev-rej", cloudtest.DeviceOptions{Key: d.Key})
	if err == nil && again.Registration.Status != rpcproto.StatusRejected {
		t.Fatalf("a rejected key registered: %+v", again.Registration)
	}
	var after samples
	cloudtest.Eventually(t, 5*time.Second, func() bool {
		after = scrape(t, s.URL(), tok)
		return after[`bosun_handshakes_total{outcome="rejected"}`] > before[`bosun_handshakes_total{outcome="rejected"}`]
	}, "the rejected handshake counted")
	checkDelta(t, before, after, map[string]float64{
		`bosun_handshakes_total{outcome="invalid"}`:                   1, // the silent one
		`bosun_handshakes_total{outcome="pending"}`:                   1,
		`bosun_handshakes_total{outcome="rejected"}`:                  1,
		`bosun_handshakes_total{outcome="accepted"}`:                  0,
		`bosun_envelope_rejections_total{reason="handshake_timeout"}`: 1,
		`bosun_sessions{state="pending"}`:                             0,
		`bosun_sessions{state="accepted"}`:                            0,
	})
}
