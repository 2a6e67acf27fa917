package agent

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/policy"
)

// A pod being plumbed is placed with its interfaces and addresses before
// the pod manager lists it (its Pod object may not show its IP yet); once
// listed, it leaves the attaching set.
func TestWithAttaching(t *testing.T) {
	pod := func(name, ip string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name}}
		if ip != "" {
			p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		}
		return p
	}
	old, fresh := pod("old", "10.244.0.5"), pod("new", "")
	e := &policyEngine{attaching: map[string]attachment{
		"x/new":  {ips: []netip.Addr{netip.MustParseAddr("10.244.0.9")}, swIfIndexes: []uint32{7}},
		"x/done": {ips: []netip.Addr{netip.MustParseAddr("10.244.0.6")}, swIfIndexes: []uint32{6}},
	}}
	local := []policy.LocalPod{{Pod: "x/old", SwIfIndexes: []uint32{5}}, {Pod: "x/done", SwIfIndexes: []uint32{6}}}
	pods, gotLocal := e.withAttaching([]*corev1.Pod{old, fresh}, local)

	wantLocal := append(local, policy.LocalPod{Pod: "x/new", SwIfIndexes: []uint32{7}})
	if !reflect.DeepEqual(gotLocal, wantLocal) {
		t.Errorf("local = %+v, want %+v", gotLocal, wantLocal)
	}
	if pods[0] != old {
		t.Error("a pod with its IP shown was copied")
	}
	if pods[1].Status.PodIP != "10.244.0.9" || len(pods[1].Status.PodIPs) != 1 {
		t.Errorf("attaching pod's status = %+v, want its CNI address", pods[1].Status)
	}
	if fresh.Status.PodIP != "" {
		t.Error("the informer's Pod object was modified")
	}
	if _, ok := e.attaching["x/done"]; ok {
		t.Error("a pod the manager lists is still attaching")
	}
	if _, ok := e.attaching["x/new"]; !ok {
		t.Error("a pod still being plumbed left the attaching set")
	}
}

// A service change re-places policy only while some local pod's egress is
// isolated (its table opens VIPs) or the source-range firewalls are not the
// ones placed; otherwise no table depends on services.
func TestServiceChangedPokesOnlyWhenATableDependsOnIt(t *testing.T) {
	p := &policyEngine{changed: make(chan struct{}, 1)}
	p.firewalls.Store(3)
	steps := []struct {
		name        string
		viaServices bool
		fwGen       uint64
		poke        bool
	}{
		{"no egress isolation, firewalls as placed", false, 3, false},
		{"firewalls changed", false, 4, true},
		{"egress isolation", true, 3, true},
	}
	for _, s := range steps {
		for len(p.changed) > 0 {
			<-p.changed
		}
		p.viaServices.Store(s.viaServices)
		p.serviceChanged(s.fwGen)
		if got := len(p.changed) == 1; got != s.poke {
			t.Errorf("%s: re-placed %v, want %v", s.name, got, s.poke)
		}
	}
}
