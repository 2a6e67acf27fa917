package status

import (
	"errors"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// sample returns the value of the series name{labels} in m's registry: the
// counter or gauge value, or a histogram's sample count. ok is false when the
// series does not exist.
func sample(t *testing.T, m *Metrics, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			if !labelsEqual(metric.GetLabel(), labels) {
				continue
			}
			switch {
			case metric.Counter != nil:
				return metric.Counter.GetValue(), true
			case metric.Gauge != nil:
				return metric.Gauge.GetValue(), true
			case metric.Histogram != nil:
				return float64(metric.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func labelsEqual(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

func TestMetrics(t *testing.T) {
	type series struct {
		name   string
		labels map[string]string
		want   float64
	}
	tests := []struct {
		name    string
		observe func(m *Metrics)
		want    []series
		absent  []series
	}{
		{
			name:    "not connected at start",
			observe: func(*Metrics) {},
			want: []series{
				{name: "kube_vpp_vpp_connected", want: 0},
				{name: "kube_vpp_vpp_reconnects_total", want: 0},
				{name: "kube_vpp_vpp_restarts_detected_total", want: 0},
			},
		},
		{
			name: "connection flaps",
			observe: func(m *Metrics) {
				m.SetVPPConnected(true)
				m.SetVPPConnected(false)
				m.CountReconnect()
				m.CountVPPRestart()
				m.SetVPPConnected(true)
			},
			want: []series{
				{name: "kube_vpp_vpp_connected", want: 1},
				{name: "kube_vpp_vpp_reconnects_total", want: 1},
				{name: "kube_vpp_vpp_restarts_detected_total", want: 1},
			},
		},
		{
			name: "syncs split by result, durations by driver",
			observe: func(m *Metrics) {
				m.ObserveSync("nat44ed", 200*time.Microsecond, nil)
				m.ObserveSync("nat44ed", 3*time.Millisecond, nil)
				m.ObserveSync("nat44ed", time.Second, errors.New("VPP said -1"))
				m.ObserveSync("acl", 2*time.Second, nil)
			},
			want: []series{
				{name: "kube_vpp_sync_total", labels: map[string]string{"driver": "nat44ed", "result": "ok"}, want: 2},
				{name: "kube_vpp_sync_total", labels: map[string]string{"driver": "nat44ed", "result": "error"}, want: 1},
				{name: "kube_vpp_sync_total", labels: map[string]string{"driver": "acl", "result": "ok"}, want: 1},
				{name: "kube_vpp_sync_duration_seconds", labels: map[string]string{"driver": "nat44ed"}, want: 3},
				{name: "kube_vpp_sync_duration_seconds", labels: map[string]string{"driver": "acl"}, want: 1},
			},
			absent: []series{
				{name: "kube_vpp_sync_total", labels: map[string]string{"driver": "acl", "result": "error"}},
			},
		},
		{
			name: "errors by kind",
			observe: func(m *Metrics) {
				m.CountError("invalid_annotation")
				m.CountError("invalid_annotation")
				m.CountError("vpp_call")
			},
			want: []series{
				{name: "kube_vpp_errors_total", labels: map[string]string{"kind": "invalid_annotation"}, want: 2},
				{name: "kube_vpp_errors_total", labels: map[string]string{"kind": "vpp_call"}, want: 1},
			},
		},
		{
			name: "API calls by message and kind",
			observe: func(m *Metrics) {
				m.CountAPICall("nat44_static_mapping_dump", false)
				m.CountAPICall("nat44_add_del_static_mapping_v2", true)
				m.CountAPICall("nat44_add_del_static_mapping_v2", true)
			},
			want: []series{
				{name: "kube_vpp_vpp_api_calls_total", labels: map[string]string{"message": "nat44_static_mapping_dump", "kind": "read"}, want: 1},
				{name: "kube_vpp_vpp_api_calls_total", labels: map[string]string{"message": "nat44_add_del_static_mapping_v2", "kind": "write"}, want: 2},
			},
			absent: []series{
				{name: "kube_vpp_vpp_api_calls_total", labels: map[string]string{"message": "nat44_static_mapping_dump", "kind": "write"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMetrics()
			tt.observe(m)
			for _, s := range tt.want {
				got, ok := sample(t, m, s.name, s.labels)
				if !ok || got != s.want {
					t.Errorf("%s%v = %v (present %v), want %v", s.name, s.labels, got, ok, s.want)
				}
			}
			for _, s := range tt.absent {
				if got, ok := sample(t, m, s.name, s.labels); ok {
					t.Errorf("%s%v = %v, want no such series", s.name, s.labels, got)
				}
			}
		})
	}
}

func TestSyncDurationBucketsSpan100usTo30s(t *testing.T) {
	m := NewMetrics()
	m.ObserveSync("ip", 150*time.Microsecond, nil)
	m.ObserveSync("ip", 20*time.Second, nil)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kube_vpp_sync_duration_seconds" {
			continue
		}
		buckets := f.GetMetric()[0].GetHistogram().GetBucket()
		first, last := buckets[0], buckets[len(buckets)-1]
		// 150µs must land in a bucket of its own order, not in "everything up to 5ms".
		if first.GetUpperBound() > 0.0001 || first.GetCumulativeCount() != 0 {
			t.Errorf("first bucket le=%v count=%d, want le<=0.0001 holding nothing", first.GetUpperBound(), first.GetCumulativeCount())
		}
		if last.GetUpperBound() < 30 || last.GetCumulativeCount() != 2 {
			t.Errorf("last bucket le=%v count=%d, want le>=30 holding both syncs", last.GetUpperBound(), last.GetCumulativeCount())
		}
		return
	}
	t.Fatal("kube_vpp_sync_duration_seconds not gathered")
}

func TestMetricsRegistriesAreIndependent(t *testing.T) {
	a, b := NewMetrics(), NewMetrics()
	a.CountError("x")
	if _, ok := sample(t, b, "kube_vpp_errors_total", map[string]string{"kind": "x"}); ok {
		t.Error("a count on one Metrics shows up in another")
	}
}
