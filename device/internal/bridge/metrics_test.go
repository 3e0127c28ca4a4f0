package bridge_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/bosunhq/bosun/device/internal/bridge"
	"github.com/bosunhq/bosun/pkg/envelope"
	"github.com/bosunhq/bosun/pkg/keys"
	"github.com/bosunhq/bosun/pkg/rpcproto"
)

// scrapeBridge GETs /metrics of a bridge's handler served on a real
// loopback listener and parses the text format into series → value.
func scrapeBridge(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d: %s", url, resp.StatusCode, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("malformed sample %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func metricsServer(t *testing.T, b *testBridge) string {
	t.Helper()
	srv := httptest.NewServer(b.MetricsHandler())
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// TestBridgeMetrics: a real bridge, a worker and a cloud peer; the calls
// served, the state, the workers, the reconnects and the label bound show
// in /metrics by exactly what happened.
func TestBridgeMetrics(t *testing.T) {
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir, func(o *bridge.Options) { o.Metrics = true })
	url := metricsServer(t, b)
	startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitListed(t, cc, "test.fail")
	eventually(t, "accepted", func() bool { return b.Status() == bridge.StatusAccepted })

	before := scrapeBridge(t, url)
	for _, k := range []string{`bosun_bridge_session_state{state="accepted"}`, `bosun_bridge_workers`, `bosun_bridge_outbox_entries`,
		`bosun_bridge_connects_total`, `bosun_bridge_reconnects_total`, `go_goroutines`} {
		if _, ok := before[k]; !ok {
			t.Errorf("no %s in /metrics", k)
		}
	}
	if before[`bosun_bridge_session_state{state="accepted"}`] != 1 || before[`bosun_bridge_session_state{state="offline"}`] != 0 {
		t.Errorf("state: %v", before)
	}
	if before[`bosun_bridge_workers`] != 1 || before[`bosun_bridge_connects_total`] != 1 || before[`bosun_bridge_reconnects_total`] != 0 {
		t.Errorf("workers %v, connects %v, reconnects %v; want 1, 1, 0", before[`bosun_bridge_workers`],
			before[`bosun_bridge_connects_total`], before[`bosun_bridge_reconnects_total`])
	}

	for range 3 {
		if _, err := cc.call(t, "test.count", nil); err != nil {
			t.Fatal(err)
		}
	}
	cc.call(t, "test.fail", nil)
	cc.call(t, "nobody.serves.this", nil)
	cc.call(t, "bad method", nil) // refused before any worker is asked: not a call served
	// More distinct unknown methods than the label bound: test.count,
	// test.fail and nobody.serves.this took 3 of the MaxMetricMethods
	// learned labels, the next MaxMetricMethods-3 get one, the rest are
	// "other".
	const extra = bridge.MaxMetricMethods + 20
	for i := range extra {
		cc.call(t, fmt.Sprintf("unknown.m%d", i), nil)
	}
	after := scrapeBridge(t, url)
	for k, want := range map[string]float64{
		`bosun_bridge_calls_total{method="test.count",status="ok"}`:                3,
		`bosun_bridge_call_duration_seconds_count{method="test.count"}`:            3,
		`bosun_bridge_calls_total{method="test.fail",status="error"}`:              1,
		`bosun_bridge_calls_total{method="nobody.serves.this",status="no_worker"}`: 1,
		`bosun_bridge_calls_total{method="other",status="no_worker"}`:              float64(extra - (bridge.MaxMetricMethods - 3)),
	} {
		if got := after[k] - before[k]; got != want {
			t.Errorf("%s moved by %v, want %v", k, got, want)
		}
	}
	methods := map[string]bool{}
	for k := range after {
		if m := regexp.MustCompile(`^bosun_bridge_calls_total\{method="([^"]+)"`).FindStringSubmatch(k); m != nil {
			methods[m[1]] = true
		}
	}
	if max := len(bridgeBuiltins) + bridge.MaxMetricMethods + 1; len(methods) > max {
		t.Errorf("%d method labels, want at most %d", len(methods), max)
	}
	if methods["bad method"] {
		t.Error("a refused method name became a label")
	}

	// The cloud drops the connection: the bridge reconnects once.
	cc.ws.CloseNow()
	cloud.nextConn(t)
	eventually(t, "accepted again", func() bool { return b.Status() == bridge.StatusAccepted })
	again := scrapeBridge(t, url)
	if again[`bosun_bridge_reconnects_total`] != 1 || again[`bosun_bridge_connects_total`] != 2 {
		t.Errorf("after a reconnect: connects %v, reconnects %v; want 2, 1", again[`bosun_bridge_connects_total`],
			again[`bosun_bridge_reconnects_total`])
	}
}

// bridgeBuiltins are the methods that have a label from the start.
var bridgeBuiltins = []string{rpcproto.MethodSystemInfo, rpcproto.MethodContainersList, rpcproto.MethodContainersLogs,
	rpcproto.MethodLogsTail, rpcproto.MethodStateGet, rpcproto.MethodOTAUpdate, rpcproto.MethodOTACommit,
	rpcproto.MethodOTARevert, rpcproto.MethodOTACreateSnap, rpcproto.MethodOTAGetBootState,
	rpcproto.MethodOTASetBootState, rpcproto.MethodOTAAbort}

// TestBridgeMetricsRejections: a challenge signed by another key is
// counted by reason, and the state shows the bridge is not accepted.
func TestBridgeMetricsRejections(t *testing.T) {
	cloud := newTestCloud(t)
	other, _ := keys.Generate(keys.AlgEd25519, 0)
	s, _ := envelope.NewSealer(testCloudID, other)
	cloud.challenger.Store(s)
	b := startBridge(t, cloud, t.TempDir(), func(o *bridge.Options) { o.Metrics = true })
	url := metricsServer(t, b)
	eventually(t, "two refused challenges", func() bool { return b.Rejected()["bad_signature"] >= 2 })
	m := scrapeBridge(t, url)
	if got := m[`bosun_bridge_envelope_rejections_total{reason="bad_signature"}`]; got < 2 {
		t.Errorf("bad_signature rejections = %v, want >= 2", got)
	}
	if m[`bosun_bridge_session_state{state="accepted"}`] != 0 {
		t.Error("a bridge that never verified a challenge shows accepted")
	}
}

// TestBridgeMetricsOff: without Options.Metrics there is nothing to scrape.
func TestBridgeMetricsOff(t *testing.T) {
	b := startBridge(t, newTestCloud(t), t.TempDir())
	srv := httptest.NewServer(b.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("metrics off: GET /metrics = %d, want 404", resp.StatusCode)
	}
}

// TestDashboardBridgeQueriesExist: every bosun_bridge_ metric the Grafana
// dashboard queries is in a real bridge's /metrics (the cloud's test
// checks the others).
func TestDashboardBridgeQueriesExist(t *testing.T) {
	raw, err := os.ReadFile("../../../docs/grafana/bosun.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
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
	cloud := newTestCloud(t)
	dir := t.TempDir()
	b := startBridge(t, cloud, dir, func(o *bridge.Options) { o.Metrics = true })
	startWorker(t, dir)
	cc := cloud.nextConn(t)
	waitListed(t, cc, "test.count")
	cc.call(t, "test.count", nil) // so that the histogram has a series for it
	have := map[string]bool{}
	for k := range scrapeBridge(t, metricsServer(t, b)) {
		name, _, _ := strings.Cut(k, "{")
		have[name] = true
	}
	re := regexp.MustCompile(`\bbosun_bridge_[a-z0-9_]+`)
	checked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				checked++
				if !have[name] {
					t.Errorf("panel %q queries %s, which the bridge's /metrics does not have", p.Title, name)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("the dashboard queries no bridge metric")
	}
}
