package services

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

func TestTranslateExternalFrontends(t *testing.T) {
	https := []*discoveryv1.EndpointSlice{eslice("web-abc",
		[]discoveryv1.EndpointPort{epPort("https", corev1.ProtocolTCP, 8443)},
		ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b"))}
	b := []string{"10.244.1.5:8443", "10.244.2.7:8443"}
	http := []*discoveryv1.EndpointSlice{eslice("web-abc",
		[]discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 8080)},
		ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b"))}
	h := []string{"10.244.1.5:8080", "10.244.2.7:8080"}
	externalIPs := func(ips ...string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
	}
	ingress := func(in ...corev1.LoadBalancerIngress) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = in }
	}
	dualStack := Config{
		Node:              "node-a",
		NodePortAddresses: []netip.Addr{netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("fd00:1::10")},
		ExternalIPCIDRs:   []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64")},
	}
	overlapping := Config{
		Node:              "node-a",
		NodePortAddresses: []netip.Addr{netip.MustParseAddr("192.168.1.10")},
		ExternalIPCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("203.0.113.0/24")},
	}

	runCases(t, []translateCase{{
		// kube-proxy programs VIP-mode ingress IPs only: with ipMode Proxy
		// the load balancer itself proxies to the node ports, and a
		// hostname is for clients to resolve.
		name: "LoadBalancer ingress IPs, ipMode Proxy and hostname skipped",
		svc: service(withType(corev1.ServiceTypeLoadBalancer),
			withPorts(svcPort("https", corev1.ProtocolTCP, 443, 31443)),
			ingress(
				corev1.LoadBalancerIngress{IP: "198.51.100.5"},
				corev1.LoadBalancerIngress{IP: "198.51.100.6", IPMode: ptr(corev1.LoadBalancerIPModeProxy)},
				corev1.LoadBalancerIngress{Hostname: "lb.example.com"},
				corev1.LoadBalancerIngress{IP: "198.51.100.7", IPMode: ptr(corev1.LoadBalancerIPModeVIP)},
			)),
		slices: https,
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:443", nat44ed.TCP, "https", self, 0, b...),
				mapping("192.168.1.10:31443", nat44ed.TCP, "https", twice, 0, b...),
				mapping("192.168.1.11:31443", nat44ed.TCP, "https", twice, 0, b...),
				mapping("198.51.100.5:443", nat44ed.TCP, "https", twice, 0, b...),
				mapping("198.51.100.7:443", nat44ed.TCP, "https", twice, 0, b...),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "https", "10.96.0.20:443", nat44ed.TCP, "", b...),
				fe(NodePort, "https", "192.168.1.10:31443", nat44ed.TCP, "", b...),
				fe(NodePort, "https", "192.168.1.11:31443", nat44ed.TCP, "", b...),
				fe(LoadBalancer, "https", "198.51.100.5:443", nat44ed.TCP, "", b...),
				fe(LoadBalancer, "https", "198.51.100.7:443", nat44ed.TCP, "", b...),
			},
			RejectIPs: ips("10.96.0.20", "198.51.100.5", "198.51.100.7"),
		},
	}, {
		// CVE-2020-8554: an external IP outside the allowed CIDRs is
		// refused, not programmed, not rejected.
		name:   "externalIPs: allowed one programmed, other refused",
		svc:    service(withPorts(svcPort("http", corev1.ProtocolTCP, 80, 0)), externalIPs("203.0.113.9", "198.18.0.1")),
		slices: http,
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, h...),
				mapping("203.0.113.9:80", nat44ed.TCP, "http", twice, 0, h...),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", h...),
				fe(ExternalIP, "http", "203.0.113.9:80", nat44ed.TCP, "", h...),
			},
			RejectIPs: ips("10.96.0.20", "203.0.113.9"),
		},
		problems: []string{"spec.externalIPs[1] ExternalIPNotAllowed"},
	}, {
		// externalTrafficPolicy applies to external IPs of a ClusterIP
		// service too (they are externally reachable).
		name: "externalIP with ETP Local uses local endpoints, keeps the client",
		svc: service(withPorts(svcPort("http", corev1.ProtocolTCP, 80, 0)), externalIPs("203.0.113.9"),
			func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}),
		slices: http,
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, h...),
				mapping("203.0.113.9:80", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", h...),
				fe(ExternalIP, "http", "203.0.113.9:80", nat44ed.TCP, "", "10.244.1.5:8080"),
			},
			RejectIPs: ips("10.96.0.20", "203.0.113.9"),
		},
	}, {
		name:   "externalIPs with no allowed CIDRs configured are all refused",
		cfg:    &Config{Node: "node-a"},
		svc:    service(withPorts(svcPort("http", corev1.ProtocolTCP, 80, 0)), externalIPs("203.0.113.9")),
		slices: http,
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, h...)},
			Frontends: []Frontend{fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", h...)},
			RejectIPs: ips("10.96.0.20"),
		},
		problems: []string{"spec.externalIPs[0] ExternalIPNotAllowed"},
	}, {
		// IPv6 addresses are shown with a note, never mapped nor rejected;
		// IPv6 node addresses are the caller's and skipped.
		name: "dual stack: IPv6 frontends noted",
		cfg:  &dualStack,
		svc: service(withType(corev1.ServiceTypeLoadBalancer),
			withPorts(svcPort("http", corev1.ProtocolTCP, 80, 30080)),
			func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.20", "fd00::20"} },
			ingress(corev1.LoadBalancerIngress{IP: "2001:db8::5"}, corev1.LoadBalancerIngress{IP: "198.51.100.5"}),
			externalIPs("2001:db8:1::9")),
		slices: http,
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, h...),
				mapping("192.168.1.10:30080", nat44ed.TCP, "http", twice, 0, h...),
				mapping("198.51.100.5:80", nat44ed.TCP, "http", twice, 0, h...),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", h...),
				fe(ClusterIP, "http", "[fd00::20]:80", nat44ed.TCP, noteIPv6),
				fe(NodePort, "http", "192.168.1.10:30080", nat44ed.TCP, "", h...),
				fe(LoadBalancer, "http", "198.51.100.5:80", nat44ed.TCP, "", h...),
				fe(LoadBalancer, "http", "[2001:db8::5]:80", nat44ed.TCP, noteIPv6),
				fe(ExternalIP, "http", "[2001:db8:1::9]:80", nat44ed.TCP, noteIPv6),
			},
			RejectIPs: ips("10.96.0.20", "198.51.100.5"),
		},
	}, {
		// VPP holds one mapping per address, port and protocol. The same
		// mapping wanted twice (external IP = LB IP) is one mapping; a
		// different one (external IP = cluster IP, twice-NAT vs
		// self-twice-NAT) is refused, the first in frontend order kept.
		name: "frontends on one address: shared when equal, refused when not",
		cfg:  &overlapping,
		svc: service(withType(corev1.ServiceTypeLoadBalancer),
			withPorts(svcPort("http", corev1.ProtocolTCP, 80, 30080)),
			externalIPs("10.96.0.20", "203.0.113.9"),
			ingress(corev1.LoadBalancerIngress{IP: "203.0.113.9"})),
		slices: http,
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, h...),
				mapping("192.168.1.10:30080", nat44ed.TCP, "http", twice, 0, h...),
				mapping("203.0.113.9:80", nat44ed.TCP, "http", twice, 0, h...),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", h...),
				fe(NodePort, "http", "192.168.1.10:30080", nat44ed.TCP, "", h...),
				fe(LoadBalancer, "http", "203.0.113.9:80", nat44ed.TCP, "", h...),
				fe(ExternalIP, "http", "10.96.0.20:80", nat44ed.TCP,
					"10.96.0.20:80/tcp is mapped for the ClusterIP frontend of port http: not programmed"),
				fe(ExternalIP, "http", "203.0.113.9:80", nat44ed.TCP, "", h...),
			},
			RejectIPs: ips("10.96.0.20", "203.0.113.9"),
		},
		problems: []string{"spec.externalIPs[0] FrontendConflict"},
	}})
}

func TestExternalIPNotAllowedNamesIPAndCIDRs(t *testing.T) {
	cfg := testConfig
	cfg.ExternalIPCIDRs = append(cfg.ExternalIPCIDRs, netip.MustParsePrefix("198.51.100.0/24"))
	svc := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)),
		func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"198.18.0.1"} })
	out := Translate(cfg, svc, nil)
	if len(out.Problems) != 1 {
		t.Fatalf("Problems = %v, want one", out.Problems)
	}
	msg := out.Problems[0].Error()
	for _, want := range []string{"spec.externalIPs[0]", "198.18.0.1", "203.0.113.0/24", "198.51.100.0/24"} {
		if !strings.Contains(msg, want) {
			t.Errorf("problem %q does not name %s", msg, want)
		}
	}
}

// Bad input anywhere is a Problem naming the field; what is valid still
// translates.
func TestTranslateGarbage(t *testing.T) {
	bad := service(withType(corev1.ServiceTypeLoadBalancer), func(s *corev1.Service) {
		s.Spec.ClusterIPs = []string{"10.96.0.20", "bogus"}
		s.Spec.ExternalIPs = []string{"nope"}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "300.1.1.1"}}
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](-5)}}
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = 99999
		s.Spec.Ports = []corev1.ServicePort{
			svcPort("zero", corev1.ProtocolTCP, 0, 0),
			svcPort("big", corev1.ProtocolTCP, 70000, 0),
			svcPort("http", corev1.ProtocolTCP, 80, -5),
		}
	})
	slice := eslice("web-bad", []discoveryv1.EndpointPort{
		{Name: ptr("http")}, // no port: skipped
		epPort("http", corev1.ProtocolTCP, 70000),
		{Name: ptr("http"), Port: ptr[int32](8080)}, // protocol nil: TCP
	},
		discoveryv1.Endpoint{},
		discoveryv1.Endpoint{Addresses: []string{"garbage"}},
		discoveryv1.Endpoint{Addresses: []string{"fd00::1"}},
		discoveryv1.Endpoint{Addresses: []string{"10.244.1.5"}, NodeName: ptr("node-a")},
	)
	runCases(t, []translateCase{{
		name:   "garbage",
		svc:    bad,
		slices: []*discoveryv1.EndpointSlice{nil, {}, slice},
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080")},
			Frontends: []Frontend{fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080")},
			RejectIPs: ips("10.96.0.20"),
		},
		problems: []string{
			"spec.clusterIPs[1] InvalidIP",
			"status.loadBalancer.ingress[0].ip InvalidIP",
			"spec.externalIPs[0] InvalidIP",
			"spec.sessionAffinityConfig.clientIP.timeoutSeconds InvalidSessionAffinity",
			"EndpointSlice web-bad ports[1].port InvalidPort",
			"EndpointSlice web-bad endpoints[1].addresses[0] InvalidIP",
			"EndpointSlice web-bad endpoints[2].addresses[0] InvalidIP",
			"spec.ports[0].port InvalidPort",
			"spec.ports[1].port InvalidPort",
			"spec.ports[2].nodePort InvalidPort",
			"spec.healthCheckNodePort InvalidPort",
		},
	}})
}

// Zero values and half-filled objects never panic.
func TestTranslateNeverPanics(t *testing.T) {
	web := metav1.ObjectMeta{Namespace: "default", Name: "web"}
	svcs := []*corev1.Service{
		nil,
		{},
		{ObjectMeta: web, Spec: corev1.ServiceSpec{ClusterIPs: []string{""}}},
		{ObjectMeta: web, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20", Ports: []corev1.ServicePort{{}}}},
		{ObjectMeta: web, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.20",
			SessionAffinity:       corev1.ServiceAffinityClientIP,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{},
			InternalTrafficPolicy: ptr(corev1.ServiceInternalTrafficPolicy("")),
			ExternalIPs:           []string{""},
			Ports:                 []corev1.ServicePort{{Port: 80, NodePort: 30080}, {Port: 80, NodePort: 30080}},
		}, Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{}}}}},
	}
	slices := []*discoveryv1.EndpointSlice{
		nil,
		{},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{}, {Port: ptr[int32](-1)}, {Port: ptr[int32](8080)}},
			Endpoints:   []discoveryv1.Endpoint{{}, {Addresses: []string{""}}, {Addresses: []string{"10.244.1.5", "x"}}}},
	}
	for _, cfg := range []Config{{}, testConfig} {
		for _, s := range svcs {
			out := Translate(cfg, s, slices)
			for _, m := range out.Mappings {
				if err := m.Validate(); err != nil {
					t.Errorf("invalid mapping: %v", err)
				}
			}
		}
	}
}
