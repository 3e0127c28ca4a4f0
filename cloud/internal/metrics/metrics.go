// Package metrics keeps a cloud replica's Prometheus metrics: sessions,
// handshakes, envelope rejections, calls and their latency, the queue of
// persistent calls, NATS, the database pool, OTA downloads and the JSON API.
//
// It exists so that instrumenting the rest of the cloud costs one-line
// hooks: fleet.Service and hub.Hub call a Cloud through their Observer
// interfaces; the HTTP handlers are wrapped (API, Downloads); everything
// the hub, the store and NATS already know is read at scrape time by
// collectors (WatchHub, WatchService, WatchNATS) instead of being counted
// twice. Each Cloud has its own prometheus.Registry, never the global one,
// so that several replicas in one process (tests) do not collide.
//
// docs/operations.md ("Metrics") lists every metric this package exports.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/bosunhq/bosun/cloud/internal/store"
	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of Options.
const (
	DefaultMaxMethods   = 50
	DefaultQueueRefresh = 5 * time.Second
)

// OtherMethod is the method label of calls whose method is neither built in
// nor among the first Options.MaxMethods others seen.
const OtherMethod = "other"

// BuiltinMethods are the cloud → device methods every bridge serves; each
// has its own method label from the start.
var BuiltinMethods = []string{
	rpcproto.MethodSystemInfo, rpcproto.MethodRPCList, rpcproto.MethodContainersList, rpcproto.MethodContainersLogs,
	rpcproto.MethodLogsTail, rpcproto.MethodStateGet, rpcproto.MethodOTAUpdate, rpcproto.MethodOTACommit,
	rpcproto.MethodOTARevert, rpcproto.MethodOTACreateSnap, rpcproto.MethodOTAGetBootState,
	rpcproto.MethodOTASetBootState, rpcproto.MethodOTAAbort,
}

// callStatuses are the status labels of bosun_calls_total: the final
// statuses of a call, and "other" for anything else.
var callStatuses = []string{store.CallSucceeded, store.CallFailed, store.CallTimeout, store.CallExpired, "other"}

// LatencyBuckets are the buckets (seconds) of the latency histograms: from
// half a millisecond (a call on loopback) to a minute.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Options tune a Cloud; the zero value means the defaults.
type Options struct {
	// MaxMethods bounds the method label values learned at run time, beyond
	// BuiltinMethods: method names come from operators and devices, and
	// every value is a series. Calls of later methods are counted under
	// "other". Defaults to DefaultMaxMethods (50).
	MaxMethods int
	// QueueRefresh is how old the count of queued calls may be before a
	// scrape counts again in PostgreSQL. Defaults to DefaultQueueRefresh (5s).
	QueueRefresh time.Duration
}

// Cloud is one replica's metrics. It implements fleet.Observer and
// hub.Observer. All methods are safe for concurrent use.
type Cloud struct {
	opts Options
	reg  *prometheus.Registry

	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	methodsMu sync.RWMutex // guards methods and learned
	methods   map[string]*callSeries
	learned   int
	other     *callSeries

	handshakes   map[string]prometheus.Counter // by hub.Handshake* outcome; read-only after New
	handshakeVec *prometheus.CounterVec
	routing      *prometheus.CounterVec

	httpRequests *prometheus.CounterVec
	httpLatency  *prometheus.HistogramVec

	otaBytes     prometheus.Counter
	otaDownloads *prometheus.CounterVec
}

// callSeries are the pre-curried series of one method label, so that
// counting a call allocates nothing.
type callSeries struct {
	byStatus []prometheus.Counter // in callStatuses order
	latency  prometheus.Observer
}

// New returns the metrics of one replica, with the Go runtime and process
// collectors registered.
func New(opts Options) *Cloud {
	if opts.MaxMethods <= 0 {
		opts.MaxMethods = DefaultMaxMethods
	}
	if opts.QueueRefresh <= 0 {
		opts.QueueRefresh = DefaultQueueRefresh
	}
	m := &Cloud{opts: opts, reg: prometheus.NewRegistry(), methods: map[string]*callSeries{}}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bosun_calls_total",
		Help: "Calls to devices whose outcome this replica recorded, by method and final status.",
	}, []string{"method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bosun_call_duration_seconds",
		Help:    "Time from a call being sent to its outcome being recorded, by method.",
		Buckets: LatencyBuckets,
	}, []string{"method"})
	m.handshakeVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bosun_handshakes_total",
		Help: "Device websocket handshakes, by outcome.",
	}, []string{"outcome"})
	m.routing = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bosun_nats_routing_errors_total",
		Help: "Calls NATS failed to carry to the replica holding the device's session (not offline, not timeout).",
	}, []string{"what"})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bosun_http_requests_total",
		Help: "JSON API requests, by route pattern and HTTP status code.",
	}, []string{"route", "code"})
	m.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bosun_http_request_duration_seconds",
		Help:    "Time to answer a JSON API request, by route pattern.",
		Buckets: LatencyBuckets,
	}, []string{"route"})
	m.otaBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bosun_ota_download_bytes_total",
		Help: "Bytes of OTA artifacts sent to devices (complete, partial and aborted downloads).",
	})
	m.otaDownloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bosun_ota_downloads_total",
		Help: "OTA artifact downloads, by outcome.",
	}, []string{"outcome"})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.calls, m.latency, m.handshakeVec, m.routing, m.httpRequests, m.httpLatency, m.otaBytes, m.otaDownloads)

	// Every fixed label value exists from the start (at zero), so that
	// rate() sees the first increase and dashboards have a series.
	for _, method := range BuiltinMethods {
		m.methods[method] = m.newSeries(method)
	}
	m.other = m.newSeries(OtherMethod)
	m.handshakes = make(map[string]prometheus.Counter, len(hub.HandshakeOutcomes))
	for _, o := range hub.HandshakeOutcomes {
		m.handshakes[o] = m.handshakeVec.WithLabelValues(o)
	}
	m.routing.WithLabelValues("call")
	for _, o := range downloadOutcomes {
		m.otaDownloads.WithLabelValues(o)
	}
	return m
}

// Registry is the replica's registry (more collectors may join it).
func (m *Cloud) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. It is not
// protected: see server's /metrics for what guards it.
func (m *Cloud) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Cloud) newSeries(method string) *callSeries {
	s := &callSeries{byStatus: make([]prometheus.Counter, len(callStatuses)), latency: m.latency.WithLabelValues(method)}
	for i, st := range callStatuses {
		s.byStatus[i] = m.calls.WithLabelValues(method, st)
	}
	return s
}

// series returns the series of method: its own while it is built in or
// among the first MaxMethods others, "other" after that.
func (m *Cloud) series(method string) *callSeries {
	m.methodsMu.RLock()
	s := m.methods[method]
	m.methodsMu.RUnlock()
	if s != nil {
		return s
	}
	m.methodsMu.Lock()
	defer m.methodsMu.Unlock()
	if s := m.methods[method]; s != nil {
		return s
	}
	if m.learned >= m.opts.MaxMethods {
		return m.other
	}
	m.learned++
	s = m.newSeries(method)
	m.methods[method] = s
	return s
}

func statusIndex(status string) int {
	for i, st := range callStatuses[:len(callStatuses)-1] {
		if st == status {
			return i
		}
	}
	return len(callStatuses) - 1
}

// CallFinished counts a call by method and status and, when it was sent,
// observes its latency (sent → outcome recorded). fleet.Observer.
func (m *Cloud) CallFinished(c fleet.Call) {
	s := m.series(c.Method)
	s.byStatus[statusIndex(c.Status)].Inc()
	if c.SentAt != nil && c.FinishedAt != nil {
		if d := c.FinishedAt.Sub(*c.SentAt); d >= 0 {
			s.latency.Observe(d.Seconds())
		}
	}
}

// RoutingFailed counts a NATS routing failure. fleet.Observer.
func (m *Cloud) RoutingFailed(what string) {
	if what != "call" {
		what = "other"
	}
	m.routing.WithLabelValues(what).Inc()
}

// Handshake counts a handshake by outcome. hub.Observer.
func (m *Cloud) Handshake(outcome string) {
	c, ok := m.handshakes[outcome]
	if !ok {
		c = m.handshakes[hub.HandshakeError]
	}
	c.Inc()
}

// API wraps the JSON API handler: it counts each request by the route
// pattern that served it (the API's own mux sets Request.Pattern; a
// request no route matched is "unmatched") and the status code.
func (m *Cloud) API(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/api/v1/" {
			route = "unmatched"
		}
		m.httpRequests.WithLabelValues(route, strconv.Itoa(sw.code())).Inc()
		m.httpLatency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flushes of
// event streams, write deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
