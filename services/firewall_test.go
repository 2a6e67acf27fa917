package services

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// A firewall that drops everyone on an address, port and protocol another
// service maps would cut that service off: Firewalls leaves it out while
// the other holds the key, whichever was applied first, and gives it back
// once the key is free.
func TestProxyFirewallsSkipKeysOthersHold(t *testing.T) {
	// web: ETP Local, its only endpoint on node-b: dropped from outside
	// on its LB IP and node port. other: ETP Cluster on the same LB IP
	// and port (a misconfiguration the API server does not stop).
	web := loadBalancer()
	web.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	other := loadBalancer()
	other.Name, other.Spec.ClusterIP, other.Spec.ClusterIPs = "other", "10.96.0.30", []string{"10.96.0.30"}
	other.Spec.Ports[0].NodePort = 30081
	otherSlice := eslice("other-1", http8080, ep("10.244.0.12", "node-a"))
	otherSlice.Labels["kubernetes.io/service-name"] = "other"
	lbKey := netip.MustParseAddrPort("203.0.113.7:80")

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
			var addrs []netip.AddrPort
			for _, fw := range fws {
				addrs = append(addrs, fw.Address)
				if fw.Address == lbKey {
					t.Errorf("firewall %+v on the key default/other maps", fw)
				}
			}
			if len(fws) != 2 {
				t.Errorf("firewalls on %v, want web's two node ports only", addrs)
			}

			h.p.DeleteService("default", "other")
			h.apply()
			g, fws := h.p.Firewalls()
			if g == gen || len(fws) != 3 {
				t.Errorf("after other left the key: generation %d -> %d, %d firewalls, want a new generation and 3", gen, g, len(fws))
			}
		})
	}
}
