package services

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// A firewall that drops everyone on an address, port and protocol another
// service maps would cut that service off: Firewalls leaves it out while
// the other holds the key, whichever was applied first, and gives it back
// once the key is free.
func TestProxyFirewallsSkipKeysOthersHold(t *testing.T) {
	// web: internalTrafficPolicy Local, its only endpoint on node-b: its
	// cluster IP 10.96.0.20:80 is dropped, with no mapping of its own.
	// other: a load balancer whose ingress IP is that address (a
	// misconfiguration the API server does not stop).
	web := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)), func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
	})
	other := loadBalancer()
	other.Name, other.Spec.ClusterIP, other.Spec.ClusterIPs = "other", "10.96.0.30", []string{"10.96.0.30"}
	other.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.96.0.20"}}
	otherSlice := eslice("other-1", http8080, ep("10.244.0.12", "node-a"))
	otherSlice.Labels["kubernetes.io/service-name"] = "other"
	key := netip.MustParseAddrPort("10.96.0.20:80")

	for _, order := range [][]string{{"web", "other"}, {"other", "web"}} {
		t.Run(order[0]+" first", func(t *testing.T) {
			h := newHarness(t, testConfig)
			h.resync()
			for _, name := range order {
				if name == "web" {
					h.p.SetService(web)
					h.p.SetEndpointSlice(eslice("web-1", http8080, ep("10.244.1.11", "node-b")))
				} else {
					h.p.SetService(other)
					h.p.SetEndpointSlice(otherSlice)
				}
				h.apply()
			}
			gen, fws := h.p.Firewalls()
			for _, fw := range fws {
				if fw.Address == key {
					t.Errorf("firewall %+v on the key default/other maps", fw)
				}
			}

			h.p.DeleteService("default", "other")
			h.apply()
			g, fws := h.p.Firewalls()
			want := []Firewall{{Service: "default/web", Address: key, Protocol: nat44ed.TCP, Why: WhyNoLocalITP}}
			if g == gen || len(fws) != 1 || !sameFirewall(fws[0], want[0]) {
				t.Errorf("after other left the key: generation %d -> %d, firewalls %+v, want a new generation and %+v", gen, g, fws, want)
			}
		})
	}
}

// Source ranges and externalTrafficPolicy Local without a local endpoint
// on one load-balancer IP: kube-proxy drops outside clients for the policy
// whatever their source, and pods outside the ranges for the ranges.
func TestTranslateFirewallsCombine(t *testing.T) {
	svc := loadBalancer("192.0.2.0/24")
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	out := Translate(testConfig, svc, []*discoveryv1.EndpointSlice{eslice("web-1", http8080, ep("10.244.1.11", "node-b"))})
	lb := netip.MustParseAddrPort("203.0.113.7:80")
	var got []Firewall
	for _, fw := range out.Firewalls {
		if fw.Address == lb {
			got = append(got, fw)
		}
	}
	want := []Firewall{
		{Service: "default/web", Address: lb, Protocol: nat44ed.TCP, Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Why: WhySourceRanges},
		{Service: "default/web", Address: lb, Protocol: nat44ed.TCP, Why: WhyNoLocalETP, OutsideOnly: true},
	}
	if !slices.EqualFunc(got, want, sameFirewall) {
		t.Errorf("firewalls on the LB IP %+v, want %+v", got, want)
	}
}
