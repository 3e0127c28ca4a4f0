package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/bosunhq/bosun/cloud/internal/fleet"
	"github.com/bosunhq/bosun/cloud/internal/hub"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// The collectors below read, at scrape time, what the hub, the store and
// NATS already keep; nothing is counted twice on a hot path.

var (
	sessionsDesc = prometheus.NewDesc("bosun_sessions",
		"Device websockets on this replica, by state: handshaking (upgrade to session start), pending (key awaits an operator), accepted.",
		[]string{"state"}, nil)
	rejectionsDesc = prometheus.NewDesc("bosun_envelope_rejections_total",
		"Device messages and connections the hub refused, by reason (bad_signature, replay, wrong_session, too_large, malformed, registration_*, ...).",
		[]string{"reason"}, nil)
)

// hubCollector exports hub.SessionStates and hub.Rejected.
type hubCollector struct{ h *hub.Hub }

func (c hubCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsDesc
	ch <- rejectionsDesc
}

func (c hubCollector) Collect(ch chan<- prometheus.Metric) {
	hs, pending, accepted := c.h.SessionStates()
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(hs), "handshaking")
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(pending), "pending")
	ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(accepted), "accepted")
	for reason, n := range c.h.Rejected() {
		ch <- prometheus.MustNewConstMetric(rejectionsDesc, prometheus.CounterValue, float64(n), reason)
	}
}

// WatchHub exports the hub's sessions by state and its rejections by
// reason.
func (m *Cloud) WatchHub(h *hub.Hub) { m.reg.MustRegister(hubCollector{h}) }

var (
	poolAcquiredDesc = prometheus.NewDesc("bosun_db_pool_acquired_connections", "PostgreSQL connections in use.", nil, nil)
	poolIdleDesc     = prometheus.NewDesc("bosun_db_pool_idle_connections", "PostgreSQL connections idle in the pool.", nil, nil)
	poolTotalDesc    = prometheus.NewDesc("bosun_db_pool_total_connections", "PostgreSQL connections open (acquired, idle and being opened).", nil, nil)
	poolMaxDesc      = prometheus.NewDesc("bosun_db_pool_max_connections", "The pool's limit of PostgreSQL connections.", nil, nil)
	poolAcquiresDesc = prometheus.NewDesc("bosun_db_pool_acquires_total", "Connections taken from the pool.", nil, nil)
	poolEmptyDesc    = prometheus.NewDesc("bosun_db_pool_empty_acquires_total",
		"Acquires that had to wait because no connection was idle.", nil, nil)
	poolWaitDesc = prometheus.NewDesc("bosun_db_pool_acquire_wait_seconds_total",
		"Time spent acquiring connections, in total (divide its rate by the acquires' rate for the mean wait).", nil, nil)
	queuedDesc = prometheus.NewDesc("bosun_calls_queued",
		"Persistent calls waiting in the queue, in every organisation (the database is shared: every replica reports the same number). Counted at most every few seconds.",
		nil, nil)
)

// storeCollector exports the pgx pool's Stat and the queue depth.
type storeCollector struct {
	svc     *fleet.Service
	refresh time.Duration

	mu     sync.Mutex // guards the following; held across the count so scrapes share one query
	at     time.Time  // when queued was counted
	queued float64
	ok     bool // queued holds a count
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquiredDesc, poolIdleDesc, poolTotalDesc, poolMaxDesc,
		poolAcquiresDesc, poolEmptyDesc, poolWaitDesc, queuedDesc} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.svc.PoolStat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(poolAcquiredDesc, float64(s.AcquiredConns()))
	gauge(poolIdleDesc, float64(s.IdleConns()))
	gauge(poolTotalDesc, float64(s.TotalConns()))
	gauge(poolMaxDesc, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquiresDesc, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolEmptyDesc, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, s.AcquireDuration().Seconds())
	if n, ok := c.queuedCalls(); ok {
		gauge(queuedDesc, n)
	}
}

// queuedCalls returns the count of queued calls, counting again when the
// last count is older than the refresh interval. When counting fails the
// metric is left out of the scrape (Prometheus then sees it absent rather
// than a stale number).
func (c *storeCollector) queuedCalls() (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && time.Since(c.at) < c.refresh {
		return c.queued, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.svc.CountQueuedCalls(ctx)
	if err != nil {
		c.ok = false
		return 0, false
	}
	c.queued, c.at, c.ok = float64(n), time.Now(), true
	return c.queued, true
}

// WatchService exports the database pool and the number of queued calls,
// which the service reads from its store.
func (m *Cloud) WatchService(svc *fleet.Service) {
	m.reg.MustRegister(&storeCollector{svc: svc, refresh: m.opts.QueueRefresh})
}

var (
	natsMsgsDesc       = prometheus.NewDesc("bosun_nats_messages_total", "NATS messages of this replica's connection, by direction (in, out).", []string{"direction"}, nil)
	natsBytesDesc      = prometheus.NewDesc("bosun_nats_bytes_total", "NATS payload bytes of this replica's connection, by direction (in, out).", []string{"direction"}, nil)
	natsReconnectsDesc = prometheus.NewDesc("bosun_nats_reconnects_total", "Times this replica's NATS connection reconnected.", nil, nil)
	natsConnectedDesc  = prometheus.NewDesc("bosun_nats_connected", "1 while this replica's NATS connection is up.", nil, nil)
)

type natsCollector struct{ nc *nats.Conn }

func (c natsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- natsMsgsDesc
	ch <- natsBytesDesc
	ch <- natsReconnectsDesc
	ch <- natsConnectedDesc
}

func (c natsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.nc.Stats()
	ch <- prometheus.MustNewConstMetric(natsMsgsDesc, prometheus.CounterValue, float64(s.InMsgs), "in")
	ch <- prometheus.MustNewConstMetric(natsMsgsDesc, prometheus.CounterValue, float64(s.OutMsgs), "out")
	ch <- prometheus.MustNewConstMetric(natsBytesDesc, prometheus.CounterValue, float64(s.InBytes), "in")
	ch <- prometheus.MustNewConstMetric(natsBytesDesc, prometheus.CounterValue, float64(s.OutBytes), "out")
	ch <- prometheus.MustNewConstMetric(natsReconnectsDesc, prometheus.CounterValue, float64(s.Reconnects))
	up := 0.0
	if c.nc.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(natsConnectedDesc, prometheus.GaugeValue, up)
}

// WatchNATS exports the replica's NATS connection statistics.
func (m *Cloud) WatchNATS(nc *nats.Conn) { m.reg.MustRegister(natsCollector{nc}) }
