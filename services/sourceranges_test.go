package services

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// loadBalancer is default/web as a LoadBalancer on 203.0.113.7 with one
// TCP port 80 (nodePort 30080) served by one endpoint, and the given
// loadBalancerSourceRanges.
func loadBalancer(ranges ...string) *corev1.Service {
	return service(withType(corev1.ServiceTypeLoadBalancer),
		withPorts(svcPort("", corev1.ProtocolTCP, 80, 30080)),
		func(s *corev1.Service) {
			s.Spec.LoadBalancerSourceRanges = ranges
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		})
}

// Expected values follow kube-proxy (pkg/proxy/serviceport.go): ranges of
// the frontend's family only, trimmed, /0 admits all; the source ranges
// restrict the load-balancer frontend only, never the cluster IP or the
// node ports.
func TestTranslateSourceRanges(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name     string
		ranges   []string
		want     []netip.Prefix // on the LB frontend
		mapped   bool           // the LB frontend has its mapping
		problems []string       // fields
	}{
		{name: "none: open", mapped: true},
		{name: "two ranges, sorted, host bits cleared", ranges: []string{"198.51.100.0/24", " 192.0.2.9/24 "},
			want: pfx("192.0.2.0/24", "198.51.100.0/24"), mapped: true},
		{name: "duplicates once", ranges: []string{"192.0.2.0/24", "192.0.2.0/24"}, want: pfx("192.0.2.0/24"), mapped: true},
		{name: "0.0.0.0/0 admits all", ranges: []string{"192.0.2.0/24", "0.0.0.0/0"}, mapped: true},
		{name: "IPv6 ranges do not restrict IPv4", ranges: []string{"2001:db8::/32"}, mapped: true},
		{name: "IPv6 next to IPv4: IPv4 applies", ranges: []string{"2001:db8::/32", "192.0.2.0/24"},
			want: pfx("192.0.2.0/24"), mapped: true},
		{name: "unreadable next to a readable one", ranges: []string{"192.0.2.0/33", "198.51.100.0/24"},
			want: pfx("198.51.100.0/24"), mapped: true, problems: []string{"spec.loadBalancerSourceRanges[0]"}},
		{name: "only unreadable: fails closed", ranges: []string{"everyone"},
			mapped: false, problems: []string{"spec.loadBalancerSourceRanges[0]"}},
	}
	slice := eslice("web-1", http8080, ep("10.244.0.11", "node-a"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Translate(testConfig, loadBalancer(tt.ranges...), []*discoveryv1.EndpointSlice{slice})
			var lb *Frontend
			for i, f := range out.Frontends {
				if f.SourceRanges != nil && f.Kind != LoadBalancer {
					t.Errorf("%s frontend %s restricted to %v: source ranges apply to load-balancer IPs only", f.Kind, f.Address, f.SourceRanges)
				}
				if f.Kind == LoadBalancer {
					lb = &out.Frontends[i]
				}
			}
			if lb == nil {
				t.Fatalf("no LoadBalancer frontend in %+v", out.Frontends)
			}
			if !reflect.DeepEqual(lb.SourceRanges, tt.want) {
				t.Errorf("source ranges %v, want %v", lb.SourceRanges, tt.want)
			}
			if mapped := len(lb.Backends) > 0; mapped != tt.mapped {
				t.Errorf("LB frontend mapped %v (note %q), want %v", mapped, lb.Note, tt.mapped)
			}
			if !tt.mapped && !strings.Contains(lb.Note, "loadBalancerSourceRange") {
				t.Errorf("note %q does not say why", lb.Note)
			}
			hasLB := false
			for _, m := range out.Mappings {
				hasLB = hasLB || m.External.Addr() == netip.MustParseAddr("203.0.113.7")
			}
			if hasLB != tt.mapped {
				t.Errorf("LB mapping programmed %v, want %v", hasLB, tt.mapped)
			}
			var wantFW []Firewall
			if tt.mapped && tt.want != nil {
				wantFW = []Firewall{{Service: "default/web", Address: netip.MustParseAddrPort("203.0.113.7:80"), Protocol: nat44ed.TCP,
					Sources: tt.want, Why: WhySourceRanges}}
			}
			if !reflect.DeepEqual(out.Firewalls, wantFW) {
				t.Errorf("firewalls %+v, want %+v", out.Firewalls, wantFW)
			}
			var fields []string
			for _, p := range out.Problems {
				fields = append(fields, p.Field)
				if p.Reason != ReasonInvalidSourceRange {
					t.Errorf("problem %v: reason %q", p, p.Reason)
				}
			}
			if !reflect.DeepEqual(fields, tt.problems) {
				t.Errorf("problems at %v, want %v", fields, tt.problems)
			}
		})
	}
}

// The proxy lists the programmed firewalls and bumps their generation only
// when one appears, changes or goes: an endpoint change of a firewalled
// service or any change of another service leaves it alone, so the agent
// re-places ACLs only when it must.
func TestProxyFirewalls(t *testing.T) {
	h := newHarness(t, testConfig)
	h.resync()
	lb := loadBalancer("192.0.2.0/24")
	h.p.SetService(lb)
	h.p.SetEndpointSlice(eslice("web-1", http8080, ep("10.244.0.11", "node-a")))
	h.apply()
	gen, fws := h.p.Firewalls()
	want := []Firewall{{Service: "default/web", Address: netip.MustParseAddrPort("203.0.113.7:80"), Protocol: nat44ed.TCP,
		Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Why: WhySourceRanges}}
	if !reflect.DeepEqual(fws, want) {
		t.Fatalf("firewalls %+v, want %+v", fws, want)
	}

	steps := []struct {
		name    string
		change  func()
		bumped  bool
		entries int
	}{
		{"another endpoint", func() {
			h.p.SetEndpointSlice(eslice("web-1", http8080, ep("10.244.0.11", "node-a"), ep("10.244.1.11", "node-b")))
		}, false, 1},
		{"another service", func() {
			other := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)))
			other.Name, other.Spec.ClusterIP, other.Spec.ClusterIPs = "other", "10.96.0.30", []string{"10.96.0.30"}
			h.p.SetService(other)
		}, false, 1},
		{"ranges changed", func() { h.p.SetService(loadBalancer("192.0.2.0/25")) }, true, 1},
		{"no endpoints left: no mapping, no firewall", func() {
			h.p.SetEndpointSlice(eslice("web-1", http8080))
		}, true, 0},
		{"endpoints back", func() {
			h.p.SetEndpointSlice(eslice("web-1", http8080, ep("10.244.0.11", "node-a")))
		}, true, 1},
		{"service deleted", func() { h.p.DeleteService("default", "web") }, true, 0},
	}
	for _, s := range steps {
		s.change()
		h.apply()
		g, fws := h.p.Firewalls()
		if (g != gen) != s.bumped {
			t.Errorf("%s: generation %d -> %d, want changed %v", s.name, gen, g, s.bumped)
		}
		if len(fws) != s.entries {
			t.Errorf("%s: %d firewalls, want %d: %+v", s.name, len(fws), s.entries, fws)
		}
		if g != h.p.FirewallGeneration() {
			t.Errorf("%s: FirewallGeneration %d, Firewalls says %d", s.name, h.p.FirewallGeneration(), g)
		}
		gen = g
	}
}
