package bridge

import (
	"net/http"
	"sync"
	"time"

	"github.com/bosunhq/bosun/pkg/rpcproto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// This file is the bridge's Prometheus metrics (Options.Metrics,
// MetricsHandler). Counters live here; what the bridge already keeps
// (status, rejections, outbox, workers) is read at scrape time. With
// Options.Metrics false the bridge has no metrics and every hook is a nil
// check, so a simulator running thousands of bridges pays nothing.

// MaxMetricMethods bounds the method label values of the calls served,
// beyond the built-in methods: the cloud names the methods, and each value
// is a series. Later methods are counted as "other".
const MaxMetricMethods = 50

// The statuses of a call the bridge served (bosun_bridge_calls_total).
const (
	callOK          = "ok"          // the worker answered with a result
	callError       = "error"       // the worker answered with an error
	callNoWorker    = "no_worker"   // no worker serves the method (-32601)
	callTimeout     = "timeout"     // no worker answered within WorkerTimeout
	callUnavailable = "unavailable" // the device-local NATS failed
	callInvalid     = "invalid"     // the worker's reply was not a JSON-RPC response
	callTooLarge    = "too_large"   // the result does not fit an envelope
)

var bridgeCallStatuses = []string{callOK, callError, callNoWorker, callTimeout, callUnavailable, callInvalid, callTooLarge}

// bridgeBuiltinMethods each have their own label from the start.
var bridgeBuiltinMethods = []string{
	rpcproto.MethodSystemInfo, rpcproto.MethodContainersList, rpcproto.MethodContainersLogs, rpcproto.MethodLogsTail,
	rpcproto.MethodStateGet, rpcproto.MethodOTAUpdate, rpcproto.MethodOTACommit, rpcproto.MethodOTARevert,
	rpcproto.MethodOTACreateSnap, rpcproto.MethodOTAGetBootState, rpcproto.MethodOTASetBootState, rpcproto.MethodOTAAbort,
}

// bridgeLatencyBuckets (seconds): from a local worker's tenth of a
// millisecond to the default worker timeout.
var bridgeLatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

type metrics struct {
	reg        *prometheus.Registry
	calls      *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	connects   prometheus.Counter
	reconnects prometheus.Counter

	mu      sync.RWMutex // guards methods and learned
	methods map[string]*bridgeSeries
	learned int
	other   *bridgeSeries

	dialled sync.Once // the first connect is not a reconnect
}

// bridgeSeries are one method label's pre-curried series.
type bridgeSeries struct {
	byStatus map[string]prometheus.Counter // read-only once made
	latency  prometheus.Observer
}

var (
	bridgeStateDesc = prometheus.NewDesc("bosun_bridge_session_state",
		"1 for the bridge's current state with the cloud (offline, connecting, pending, accepted, rejected), 0 for the others.",
		[]string{"state"}, nil)
	bridgeRejectionsDesc = prometheus.NewDesc("bosun_bridge_envelope_rejections_total",
		"Messages and handshakes from the cloud that failed verification, by reason.", []string{"reason"}, nil)
	bridgeOutboxDesc  = prometheus.NewDesc("bosun_bridge_outbox_entries", "Reports waiting in the on-disk outbox.", nil, nil)
	bridgeWorkersDesc = prometheus.NewDesc("bosun_bridge_workers", "Workers that announced themselves on the device-local NATS.", nil, nil)
)

var bridgeStates = []Status{StatusOffline, StatusConnecting, StatusPending, StatusAccepted, StatusRejected}

// newMetrics makes the metrics of b, in a registry of its own (several
// bridges in one process do not collide).
func newMetrics(b *Bridge) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), methods: map[string]*bridgeSeries{}}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bosun_bridge_calls_total",
		Help: "Cloud → device calls the bridge forwarded to workers, by method and status.",
	}, []string{"method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bosun_bridge_call_duration_seconds",
		Help:    "Time from forwarding a call to a worker to its answer (or failure), by method.",
		Buckets: bridgeLatencyBuckets,
	}, []string{"method"})
	m.connects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bosun_bridge_connects_total", Help: "Connection attempts to the cloud."})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bosun_bridge_reconnects_total", Help: "Connection attempts to the cloud after the first one."})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.calls, m.latency, m.connects, m.reconnects, bridgeCollector{b})
	for _, method := range bridgeBuiltinMethods {
		m.methods[method] = m.newSeries(method)
	}
	m.other = m.newSeries("other")
	return m
}

func (m *metrics) newSeries(method string) *bridgeSeries {
	s := &bridgeSeries{byStatus: make(map[string]prometheus.Counter, len(bridgeCallStatuses)), latency: m.latency.WithLabelValues(method)}
	for _, st := range bridgeCallStatuses {
		s.byStatus[st] = m.calls.WithLabelValues(method, st)
	}
	return s
}

func (m *metrics) series(method string) *bridgeSeries {
	m.mu.RLock()
	s := m.methods[method]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.methods[method]; s != nil {
		return s
	}
	if m.learned >= MaxMetricMethods {
		return m.other
	}
	m.learned++
	s = m.newSeries(method)
	m.methods[method] = s
	return s
}

// served counts a call forwarded to the workers. A nil m does nothing.
func (m *metrics) served(method string, start time.Time, status *string) {
	if m == nil {
		return
	}
	s := m.series(method)
	c, ok := s.byStatus[*status]
	if !ok {
		c = s.byStatus[callError]
	}
	c.Inc()
	s.latency.Observe(time.Since(start).Seconds())
}

// connecting counts a connection attempt. A nil m does nothing.
func (m *metrics) connecting() {
	if m == nil {
		return
	}
	m.connects.Inc()
	first := false
	m.dialled.Do(func() { first = true })
	if !first {
		m.reconnects.Inc()
	}
}

// bridgeCollector reads the bridge's own state at scrape time.
type bridgeCollector struct{ b *Bridge }

func (c bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- bridgeStateDesc
	ch <- bridgeRejectionsDesc
	ch <- bridgeOutboxDesc
	ch <- bridgeWorkersDesc
}

func (c bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.b.Status()
	for _, st := range bridgeStates {
		v := 0.0
		if st == now {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(bridgeStateDesc, prometheus.GaugeValue, v, string(st))
	}
	for reason, n := range c.b.Rejected() {
		ch <- prometheus.MustNewConstMetric(bridgeRejectionsDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(bridgeOutboxDesc, prometheus.GaugeValue, float64(c.b.OutboxLen()))
	ch <- prometheus.MustNewConstMetric(bridgeWorkersDesc, prometheus.GaugeValue, float64(len(c.b.reg.workerNames())))
}

// MetricsHandler serves the bridge's metrics in the Prometheus text
// format; without Options.Metrics it answers 404. It is not protected:
// serve it on an address only Prometheus reaches (bosun-bridge
// --metrics-listen).
func (b *Bridge) MetricsHandler() http.Handler {
	if b.metrics == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{Registry: b.metrics.reg})
}
