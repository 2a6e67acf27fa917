package services

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// hinted is ep with topology hints: zones (hints.forZones) and nodes
// (hints.forNodes).
func hinted(e discoveryv1.Endpoint, zones []string, nodes ...string) discoveryv1.Endpoint {
	e.Hints = &discoveryv1.EndpointHints{}
	for _, z := range zones {
		e.Hints.ForZones = append(e.Hints.ForZones, discoveryv1.ForZone{Name: z})
	}
	for _, n := range nodes {
		e.Hints.ForNodes = append(e.Hints.ForNodes, discoveryv1.ForNode{Name: n})
	}
	return e
}

// Expected backends follow kube-proxy's pkg/proxy/topology.go: hints narrow
// the cluster endpoints when every ready endpoint has one and one is for
// this node (PreferSameNode, first) or this node's zone (PreferSameZone);
// otherwise every endpoint serves. The local set (traffic policy Local)
// never looks at hints. This node is node-a in zone-a.
func TestTranslateTopologyHints(t *testing.T) {
	za, zb := []string{"zone-a"}, []string{"zone-b"}
	tests := []struct {
		name    string
		zone    string
		eps     []discoveryv1.Endpoint
		cluster []string // the cluster IP's backends
	}{
		{name: "no hints: all",
			zone:    "zone-a",
			eps:     []discoveryv1.Endpoint{ep("10.244.1.1", "node-b"), ep("10.244.2.1", "node-c")},
			cluster: []string{"10.244.1.1:8080", "10.244.2.1:8080"}},
		{name: "zone hints: this zone's only",
			zone: "zone-a",
			eps: []discoveryv1.Endpoint{hinted(ep("10.244.1.1", "node-b"), za), hinted(ep("10.244.2.1", "node-c"), zb),
				hinted(ep("10.244.3.1", "node-d"), []string{"zone-b", "zone-a"})},
			cluster: []string{"10.244.1.1:8080", "10.244.3.1:8080"}},
		{name: "one ready endpoint without a hint: all",
			zone:    "zone-a",
			eps:     []discoveryv1.Endpoint{hinted(ep("10.244.1.1", "node-b"), za), ep("10.244.2.1", "node-c")},
			cluster: []string{"10.244.1.1:8080", "10.244.2.1:8080"}},
		{name: "a not-ready endpoint without a hint does not count",
			zone: "zone-a",
			eps: []discoveryv1.Endpoint{hinted(ep("10.244.1.1", "node-b"), za), hinted(ep("10.244.2.1", "node-c"), zb),
				cond("10.244.4.1", "node-e", false, false, false)},
			cluster: []string{"10.244.1.1:8080"}},
		{name: "no hint for this zone: all",
			zone:    "zone-a",
			eps:     []discoveryv1.Endpoint{hinted(ep("10.244.1.1", "node-b"), zb), hinted(ep("10.244.2.1", "node-c"), []string{"zone-c"})},
			cluster: []string{"10.244.1.1:8080", "10.244.2.1:8080"}},
		{name: "node without a zone label: all",
			zone:    "",
			eps:     []discoveryv1.Endpoint{hinted(ep("10.244.1.1", "node-b"), za), hinted(ep("10.244.2.1", "node-c"), zb)},
			cluster: []string{"10.244.1.1:8080", "10.244.2.1:8080"}},
		{name: "node hints for this node win over zone hints",
			zone:    "zone-a",
			eps:     []discoveryv1.Endpoint{hinted(ep("10.244.0.5", "node-a"), za, "node-a"), hinted(ep("10.244.1.1", "node-b"), za, "node-b")},
			cluster: []string{"10.244.0.5:8080"}},
		{name: "node hints for other nodes only: zone hints apply",
			zone:    "zone-a",
			eps:     []discoveryv1.Endpoint{hinted(ep("10.244.1.1", "node-b"), za, "node-b"), hinted(ep("10.244.2.1", "node-c"), zb, "node-c")},
			cluster: []string{"10.244.1.1:8080"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.Zone = tt.zone
			svc := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)))
			out := Translate(cfg, svc, []*discoveryv1.EndpointSlice{eslice("web-1", http8080, tt.eps...)})
			var got []string
			for _, f := range out.Frontends {
				for _, b := range f.Backends {
					got = append(got, b.String())
				}
			}
			if !reflect.DeepEqual(got, tt.cluster) {
				t.Errorf("cluster IP backends %v, want %v", got, tt.cluster)
			}
		})
	}
}

// Hints narrow the Cluster traffic policy only: externalTrafficPolicy
// Local serves this node's endpoints whatever they are hinted for.
func TestTopologyHintsLeaveLocalAlone(t *testing.T) {
	cfg := testConfig
	cfg.Zone = "zone-a"
	svc := service(withType(corev1.ServiceTypeNodePort), withPorts(svcPort("", corev1.ProtocolTCP, 80, 30080)), func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	eps := []discoveryv1.Endpoint{
		hinted(ep("10.244.0.5", "node-a"), []string{"zone-b"}),
		hinted(ep("10.244.1.1", "node-b"), []string{"zone-a"}),
	}
	out := Translate(cfg, svc, []*discoveryv1.EndpointSlice{eslice("web-1", http8080, eps...)})
	for _, f := range out.Frontends {
		want := []netip.AddrPort{netip.MustParseAddrPort("10.244.1.1:8080")} // the cluster IP: zone-a's
		if f.Kind == NodePort {
			want = []netip.AddrPort{netip.MustParseAddrPort("10.244.0.5:8080")} // this node's
		}
		if !slices.Equal(f.Backends, want) {
			t.Errorf("%s %s: backends %v, want %v", f.Kind, f.Address, f.Backends, want)
		}
	}
}
