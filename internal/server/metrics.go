package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raibid-labs/raibid-ci/internal/queue"
)

type metrics struct {
	registry       *prometheus.Registry
	webhooks       *prometheus.CounterVec
	enqueued       *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	cacheArtifacts *prometheus.CounterVec
	jobPhases      *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, q *queue.Queue) *metrics {
	m := &metrics{
		registry: reg,
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raibid_webhooks_total",
			Help: "Forge webhook deliveries by forge and result.",
		}, []string{"forge", "result"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "raibid_jobs_enqueued_total",
			Help: "Jobs queued, by trigger (push, manual, retry).",
		}, []string{"trigger"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "raibid_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "route", "code"}),
	}
	m.cacheArtifacts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "raibid_build_cache_artifacts_total",
		Help: "Cargo artifacts of finished jobs, by whether the build cache had them fresh.",
	}, []string{"fresh"})
	m.jobPhases = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "raibid_job_phase_seconds",
		Help:    "Where finished jobs spent their time on the agent: workspace, clone, plan, prepare (caches, sandbox), steps, and overhead (all but the steps).",
		Buckets: []float64{.001, .0025, .005, .01, .015, .025, .05, .1, .25, .5, 1, 5, 30, 300, 3600},
	}, []string{"phase"})
	reg.MustRegister(m.webhooks, m.enqueued, m.httpDuration, m.cacheArtifacts, m.jobPhases, &queueCollector{q: q},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	queueLength  = prometheus.NewDesc("raibid_queue_length", "Entries in the jobs stream.", nil, nil)
	queueLag     = prometheus.NewDesc("raibid_queue_lag", "Entries not yet delivered to the consumer group (what KEDA scales on).", nil, nil)
	queuePending = prometheus.NewDesc("raibid_queue_pending", "Entries delivered and not yet acked (running jobs).", nil, nil)
	queueDead    = prometheus.NewDesc("raibid_queue_dead_letters", "Entries in the dead-letter stream.", nil, nil)
	queueUp      = prometheus.NewDesc("raibid_queue_up", "1 when the queue statistics could be read from Redis.", nil, nil)
)

// queueCollector reads the queue's figures at scrape time, so the gauges are
// never staler than the scrape and cost nothing between scrapes.
type queueCollector struct{ q *queue.Queue }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueLength, queueLag, queuePending, queueDead, queueUp} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.q.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(queueLength, prometheus.GaugeValue, float64(st.Length))
	ch <- prometheus.MustNewConstMetric(queueLag, prometheus.GaugeValue, float64(st.Lag))
	ch <- prometheus.MustNewConstMetric(queuePending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(queueDead, prometheus.GaugeValue, float64(st.Dead))
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
