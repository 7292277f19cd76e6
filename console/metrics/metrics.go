// Package metrics is the console's Prometheus /metrics: counters and a latency histogram
// of the Omaha check-ins, and rollout gauges read from the store at each scrape (instances
// per group by version and by status, updates in flight, whether a group is paused or
// halted itself).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-os/cairn/console/store"
)

// Metrics holds the console's metrics.
type Metrics struct {
	reg      *prometheus.Registry
	checkins *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New makes the metrics, with the rollout gauges read from st.
func New(st *store.Store, log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_console_omaha_requests_total",
			Help: "Omaha requests answered, by result: update (offered), noupdate, hold (held back by the rollout policy), event (events or pings alone), unknown_app, error.",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_console_omaha_request_duration_seconds",
			Help:    "Time to answer an Omaha request, its database transaction included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.checkins, m.latency, &rollouts{store: st, log: log},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe counts one Omaha request (updates.Service.Observe).
func (m *Metrics) Observe(result string, d time.Duration) {
	m.checkins.WithLabelValues(result).Inc()
	m.latency.WithLabelValues(result).Observe(d.Seconds())
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var (
	instancesDesc = prometheus.NewDesc("cairn_console_instances", "Instances by application, group, version and update status.",
		[]string{"app", "group", "track", "version", "status"}, nil)
	inFlightDesc = prometheus.NewDesc("cairn_console_group_updates_in_flight", "Updates granted and not yet complete, failed or timed out, by group.",
		[]string{"app", "group", "track"}, nil)
	pausedDesc = prometheus.NewDesc("cairn_console_group_paused", "1 when the group grants no updates (paused by an operator or halted by its rollout policy).",
		[]string{"app", "group", "track"}, nil)
	haltedDesc = prometheus.NewDesc("cairn_console_group_halted", "1 when the group's rollout halted itself (rollbacks and errors reached the policy's limit).",
		[]string{"app", "group", "track"}, nil)
	onTargetDesc = prometheus.NewDesc("cairn_console_group_instances_on_target", "Instances running the version of the group's channel.",
		[]string{"app", "group", "track", "version"}, nil)
)

// rollouts reads the gauges from the store at each scrape.
type rollouts struct {
	store *store.Store
	log   *slog.Logger
}

func (r *rollouts) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{instancesDesc, inFlightDesc, pausedDesc, haltedDesc, onTargetDesc} {
		ch <- d
	}
}

func (r *rollouts) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := r.store.AllGroups(ctx)
	if err != nil {
		r.log.Warn("metrics: groups", "err", err)
		return
	}
	counts, err := r.store.Counts(ctx, "")
	if err != nil {
		r.log.Warn("metrics: instance counts", "err", err)
		return
	}
	names, tracks := map[string]string{}, map[string]string{}
	inFlight, onTarget := map[string]int{}, map[string]int{}
	target := map[string]string{}
	for _, g := range groups {
		names[g.ID], tracks[g.ID] = g.Name, g.Track
		target[g.ID] = g.Version
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, b2f(g.Paused), g.AppID, g.Name, g.Track)
		ch <- prometheus.MustNewConstMetric(haltedDesc, prometheus.GaugeValue, b2f(g.Paused && g.PausedBy == store.ActorRollout), g.AppID, g.Name, g.Track)
	}
	for _, c := range counts {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(c.N), c.AppID, names[c.GroupID], tracks[c.GroupID], c.Version, string(c.Status))
		inFlight[c.GroupID] += c.InFlight
		if t := target[c.GroupID]; t != "" && c.Version == t {
			onTarget[c.GroupID] += c.N
		}
	}
	for _, g := range groups {
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(inFlight[g.ID]), g.AppID, g.Name, g.Track)
		if g.Version != "" {
			ch <- prometheus.MustNewConstMetric(onTargetDesc, prometheus.GaugeValue, float64(onTarget[g.ID]), g.AppID, g.Name, g.Track, g.Version)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
