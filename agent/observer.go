package agent

import "github.com/kube-vpp/kube-vpp/agent/status"

// vppObserver feeds the VPP client's events into the metrics.
type vppObserver struct{ m *status.Metrics }

func (o vppObserver) Connected(up bool) { o.m.SetVPPConnected(up) }

func (o vppObserver) Reconnected(vppRestarted bool) {
	o.m.CountReconnect()
	if vppRestarted {
		o.m.CountVPPRestart()
	}
}

func (o vppObserver) APICall(msg string, write bool) { o.m.CountAPICall(msg, write) }
