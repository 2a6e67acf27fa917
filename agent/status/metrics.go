// Package status serves the agent's health, readiness and Prometheus metrics
// over HTTP, and holds the metrics the rest of the agent updates.
package status

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Sync results, the values of the result label of kube_vpp_sync_total.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// API call kinds, the values of the kind label of kube_vpp_vpp_api_calls_total.
const (
	CallRead  = "read"
	CallWrite = "write"
)

// syncBuckets span a driver sync from a no-op diff (about 100µs) to a full
// rebuild of a large node after a VPP restart (tens of seconds).
func syncBuckets() []float64 {
	return []float64{
		0.0001, 0.00025, 0.0005,
		0.001, 0.0025, 0.005,
		0.01, 0.025, 0.05,
		0.1, 0.25, 0.5,
		1, 2.5, 5,
		10, 30,
	}
}

// Metrics holds the agent's Prometheus metrics on a registry of its own, so
// that tests and several agents in one process never share global state.
type Metrics struct {
	// Registry holds every metric below plus the Go runtime and process
	// collectors; /metrics serves it.
	Registry *prometheus.Registry

	vppConnected  prometheus.Gauge
	vppReconnects prometheus.Counter
	vppRestarts   prometheus.Counter
	syncs         *prometheus.CounterVec
	syncDuration  *prometheus.HistogramVec
	errors        *prometheus.CounterVec
	apiCalls      *prometheus.CounterVec
}

// NewMetrics creates the agent's metrics on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		vppConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kube_vpp_vpp_connected",
			Help: "1 while the agent holds a working connection to VPP's binary API, else 0.",
		}),
		vppReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kube_vpp_vpp_reconnects_total",
			Help: "Connections to VPP re-established after a loss.",
		}),
		vppRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kube_vpp_vpp_restarts_detected_total",
			Help: "VPP restarts detected (VPP came back with its state reset).",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_vpp_sync_total",
			Help: "Driver syncs of desired state into VPP, by driver and result (ok or error).",
		}, []string{"driver", "result"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kube_vpp_sync_duration_seconds",
			Help:    "Time a driver sync took, dump and diff and apply, by driver.",
			Buckets: syncBuckets(),
		}, []string{"driver"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_vpp_errors_total",
			Help: "Errors the agent logged and carried on past, by kind.",
		}, []string{"kind"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kube_vpp_vpp_api_calls_total",
			Help: "VPP binary API requests sent, by message name and kind (read or write).",
		}, []string{"message", "kind"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.vppConnected, m.vppReconnects, m.vppRestarts,
		m.syncs, m.syncDuration, m.errors, m.apiCalls,
	)
	return m
}

// SetVPPConnected records whether the agent is connected to VPP.
func (m *Metrics) SetVPPConnected(connected bool) {
	v := 0.0
	if connected {
		v = 1
	}
	m.vppConnected.Set(v)
}

// CountReconnect records a connection to VPP re-established after a loss.
func (m *Metrics) CountReconnect() { m.vppReconnects.Inc() }

// CountVPPRestart records a detected VPP restart.
func (m *Metrics) CountVPPRestart() { m.vppRestarts.Inc() }

// ObserveSync records one sync of driver that took d and ended with err.
func (m *Metrics) ObserveSync(driver string, d time.Duration, err error) {
	result := ResultOK
	if err != nil {
		result = ResultError
	}
	m.syncs.WithLabelValues(driver, result).Inc()
	m.syncDuration.WithLabelValues(driver).Observe(d.Seconds())
}

// CountError records an error of the given kind that the agent carried on
// past (an invalid annotation, a VPP call refused for one object).
func (m *Metrics) CountError(kind string) { m.errors.WithLabelValues(kind).Inc() }

// CountAPICall records one VPP API request named msg; write is true for
// requests that change VPP's state, false for dumps and queries.
func (m *Metrics) CountAPICall(msg string, write bool) {
	kind := CallRead
	if write {
		kind = CallWrite
	}
	m.apiCalls.WithLabelValues(msg, kind).Inc()
}
