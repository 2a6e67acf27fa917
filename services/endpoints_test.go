package services

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// clusterOnly is the output of default/web (port 80, target 8080) with a
// cluster IP mapping to locals, or a note when there are none.
// dropAll is a firewall of default/web's TCP frontend at addr that admits
// nobody.
func dropAll(addr, why string, outsideOnly bool) Firewall {
	return Firewall{Service: "default/web", Address: netip.MustParseAddrPort(addr), Protocol: nat44ed.TCP, Why: why, OutsideOnly: outsideOnly}
}

func withFirewalls(o Output, fws ...Firewall) Output {
	o.Firewalls = fws
	return o
}

func clusterOnly(note string, locals ...string) Output {
	o := Output{
		Service:   "default/web",
		Frontends: []Frontend{fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, note, locals...)},
		RejectIPs: ips("10.96.0.20"),
	}
	if len(locals) > 0 {
		o.Mappings = []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, locals...)}
	}
	return o
}

// Which endpoints serve: kube-proxy's rule (pkg/proxy/topology.go
// CategorizeEndpoints) is the ready ones, and only when none is ready the
// ones serving while terminating; conditions default as the API documents
// (discovery/v1 EndpointConditions: ready nil true, serving nil true,
// terminating nil false).
func TestTranslateEndpointConditions(t *testing.T) {
	web := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)))
	one := func(eps ...discoveryv1.Endpoint) []*discoveryv1.EndpointSlice {
		return []*discoveryv1.EndpointSlice{eslice("web-abc", http8080, eps...)}
	}
	runCases(t, []translateCase{{
		name:   "nil conditions are ready",
		svc:    web,
		slices: one(ep("10.244.1.5", "node-a")),
		want:   clusterOnly("", "10.244.1.5:8080"),
	}, {
		name: "ready present: terminating ignored",
		svc:  web,
		slices: one(
			cond("10.244.1.5", "node-a", true, true, false),
			cond("10.244.1.6", "node-a", false, true, true),
		),
		want: clusterOnly("", "10.244.1.5:8080"),
	}, {
		name: "none ready: serving terminating used, not-serving never",
		svc:  web,
		slices: one(
			cond("10.244.1.6", "node-a", false, true, true),
			cond("10.244.2.8", "node-b", false, true, true),
			cond("10.244.1.7", "node-a", false, false, true),
		),
		want: clusterOnly("", "10.244.1.6:8080", "10.244.2.8:8080"),
	}, {
		name:   "only not-serving terminating: no endpoints",
		svc:    web,
		slices: one(cond("10.244.1.7", "node-a", false, false, true)),
		want:   clusterOnly(noEndpointsRejected),
	}, {
		name:   "not ready and not terminating: no endpoints",
		svc:    web,
		slices: one(cond("10.244.1.7", "node-a", false, false, false)),
		want:   clusterOnly(noEndpointsRejected),
	}, {
		// serving nil reads as true (the discovery/v1 API doc, and
		// kube-proxy's endpointslicecache), so a terminating endpoint
		// whose controller did not set serving is still a fallback.
		name: "serving nil on a terminating endpoint counts as serving",
		svc:  web,
		slices: one(discoveryv1.Endpoint{
			Addresses:  []string{"10.244.1.6"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Terminating: ptr(true)},
		}),
		want: clusterOnly("", "10.244.1.6:8080"),
	}, {
		name:   "no slices: no endpoints",
		svc:    web,
		slices: nil,
		want:   clusterOnly(noEndpointsRejected),
	}})
}

func TestTranslateEndpointSlices(t *testing.T) {
	web := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)))
	other := func(mod func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
		s := eslice("other", http8080, ep("10.244.9.9", "node-a"))
		mod(s)
		return s
	}
	runCases(t, []translateCase{{
		// An endpoint moving between slices shows in both for a while.
		name: "same endpoint in two slices is one local",
		svc:  web,
		slices: []*discoveryv1.EndpointSlice{
			eslice("web-1", http8080, ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")),
			eslice("web-2", http8080, ep("10.244.1.5", "node-a")),
		},
		want: clusterOnly("", "10.244.1.5:8080", "10.244.2.7:8080"),
	}, {
		// An IP reused by a new pod while the old one terminates: the
		// live copy wins whichever slice comes first (kube-proxy
		// endpointslicecache addEndpoints).
		name: "duplicate IP: the non-terminating copy wins (terminating first)",
		svc:  web,
		slices: []*discoveryv1.EndpointSlice{
			eslice("web-1", http8080, cond("10.244.1.5", "node-a", false, false, true)),
			eslice("web-2", http8080, ep("10.244.1.5", "node-a")),
		},
		want: clusterOnly("", "10.244.1.5:8080"),
	}, {
		name: "duplicate IP: the non-terminating copy wins (terminating last)",
		svc:  web,
		slices: []*discoveryv1.EndpointSlice{
			eslice("web-1", http8080, ep("10.244.1.5", "node-a")),
			eslice("web-2", http8080, cond("10.244.1.5", "node-a", false, false, true)),
		},
		want: clusterOnly("", "10.244.1.5:8080"),
	}, {
		name: "slices of other services, namespaces and address types ignored",
		svc:  web,
		slices: []*discoveryv1.EndpointSlice{
			nil,
			other(func(s *discoveryv1.EndpointSlice) { s.Labels[discoveryv1.LabelServiceName] = "api" }),
			other(func(s *discoveryv1.EndpointSlice) { s.Labels = nil }),
			other(func(s *discoveryv1.EndpointSlice) { s.Namespace = "prod" }),
			other(func(s *discoveryv1.EndpointSlice) {
				s.AddressType = discoveryv1.AddressTypeIPv6
				s.Endpoints = []discoveryv1.Endpoint{ep("fd00::9", "node-a")}
			}),
			other(func(s *discoveryv1.EndpointSlice) {
				s.AddressType = discoveryv1.AddressTypeFQDN
				s.Endpoints = []discoveryv1.Endpoint{ep("db.example.com", "node-a")}
			}),
		},
		want: clusterOnly(noEndpointsRejected),
	}, {
		// Slice ports match service ports by name and protocol; one with
		// a nil port is "all ports", which a mapping cannot express.
		name: "slice ports of another name, protocol or no number do not match",
		svc:  service(withPorts(svcPort("http", corev1.ProtocolTCP, 80, 0))),
		slices: []*discoveryv1.EndpointSlice{
			eslice("web-1", []discoveryv1.EndpointPort{epPort("metrics", corev1.ProtocolTCP, 9090)}, ep("10.244.1.1", "node-a")),
			eslice("web-2", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolUDP, 8080)}, ep("10.244.1.2", "node-a")),
			eslice("web-3", []discoveryv1.EndpointPort{{Name: ptr("http"), Protocol: ptr(corev1.ProtocolTCP)}}, ep("10.244.1.3", "node-a")),
			eslice("web-4", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 8080)}, ep("10.244.1.4", "node-a")),
		},
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, "10.244.1.4:8080")},
			Frontends: []Frontend{fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.4:8080")},
			RejectIPs: ips("10.96.0.20"),
		},
	}})
}

// Traffic policies: externalTrafficPolicy Local keeps NodePort,
// LoadBalancer and external IP traffic on this node's endpoints (client IP
// preserved); internalTrafficPolicy Local does so for the cluster IP.
func TestTranslateTrafficPolicies(t *testing.T) {
	etpLocal := func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = 32000
		s.Spec.Ports = []corev1.ServicePort{svcPort("", corev1.ProtocolTCP, 80, 30080)}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.5"}}
	}
	itpLocal := func(s *corev1.Service) {
		s.Spec.InternalTrafficPolicy = ptr(corev1.ServiceInternalTrafficPolicyLocal)
		s.Spec.Ports = []corev1.ServicePort{svcPort("", corev1.ProtocolTCP, 80, 0)}
	}
	slice := func(eps ...discoveryv1.Endpoint) []*discoveryv1.EndpointSlice {
		return []*discoveryv1.EndpointSlice{eslice("web-abc", http8080, eps...)}
	}
	all := []string{"10.244.1.5:8080", "10.244.1.6:8080", "10.244.2.7:8080"}
	local := []string{"10.244.1.5:8080", "10.244.1.6:8080"}

	runCases(t, []translateCase{{
		name: "ETP Local with local endpoints",
		svc:  service(etpLocal),
		slices: slice(
			ep("10.244.1.5", "node-a"), ep("10.244.1.6", "node-a"), ep("10.244.2.7", "node-b"),
			cond("10.244.1.9", "node-a", false, true, true), // terminating: not used, not counted
		),
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, all...),
				mapping("192.168.1.10:30080", nat44ed.TCP, "80", self, 0, local...),
				mapping("192.168.1.11:30080", nat44ed.TCP, "80", self, 0, local...),
				mapping("198.51.100.5:80", nat44ed.TCP, "80", self, 0, local...),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", all...),
				fe(NodePort, "80", "192.168.1.10:30080", nat44ed.TCP, "", local...),
				fe(NodePort, "80", "192.168.1.11:30080", nat44ed.TCP, "", local...),
				fe(LoadBalancer, "80", "198.51.100.5:80", nat44ed.TCP, "", local...),
			},
			RejectIPs:   ips("10.96.0.20", "198.51.100.5"),
			HealthCheck: &HealthCheck{Port: 32000, LocalEndpoints: 2},
		},
	}, {
		// No endpoint here: external traffic is not sent elsewhere (the
		// load balancer's health check moves it to other nodes); the
		// cluster IP still works.
		name:   "ETP Local without local endpoints",
		svc:    service(etpLocal),
		slices: slice(ep("10.244.2.7", "node-b")),
		// kube-proxy drops outside clients of every external frontend
		// (the firewalls) and sends pods on as to the cluster IP (the
		// mappings, to every endpoint, keeping the client address).
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, "10.244.2.7:8080"),
				mapping("192.168.1.10:30080", nat44ed.TCP, "80", self, 0, "10.244.2.7:8080"),
				mapping("192.168.1.11:30080", nat44ed.TCP, "80", self, 0, "10.244.2.7:8080"),
				mapping("198.51.100.5:80", nat44ed.TCP, "80", self, 0, "10.244.2.7:8080"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.10:30080", nat44ed.TCP, etpLocalDropped, "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.11:30080", nat44ed.TCP, etpLocalDropped, "10.244.2.7:8080"),
				fe(LoadBalancer, "80", "198.51.100.5:80", nat44ed.TCP, etpLocalDropped, "10.244.2.7:8080"),
			},
			RejectIPs:   ips("10.96.0.20", "198.51.100.5"),
			HealthCheck: &HealthCheck{Port: 32000, LocalEndpoints: 0},
			Firewalls: []Firewall{
				dropAll("192.168.1.10:30080", WhyNoLocalETP, true),
				dropAll("192.168.1.11:30080", WhyNoLocalETP, true),
				dropAll("198.51.100.5:80", WhyNoLocalETP, true),
			},
		},
	}, {
		// Only terminating-but-serving endpoints here: traffic still goes
		// to them, but the health check reports 0 so the load balancer
		// drains the node (kube-proxy counts ready endpoints only).
		name:   "ETP Local with only a serving terminating local endpoint",
		svc:    service(etpLocal),
		slices: slice(cond("10.244.1.9", "node-a", false, true, true), ep("10.244.2.7", "node-b")),
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, "10.244.2.7:8080"),
				mapping("192.168.1.10:30080", nat44ed.TCP, "80", self, 0, "10.244.1.9:8080"),
				mapping("192.168.1.11:30080", nat44ed.TCP, "80", self, 0, "10.244.1.9:8080"),
				mapping("198.51.100.5:80", nat44ed.TCP, "80", self, 0, "10.244.1.9:8080"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.10:30080", nat44ed.TCP, "", "10.244.1.9:8080"),
				fe(NodePort, "80", "192.168.1.11:30080", nat44ed.TCP, "", "10.244.1.9:8080"),
				fe(LoadBalancer, "80", "198.51.100.5:80", nat44ed.TCP, "", "10.244.1.9:8080"),
			},
			RejectIPs:   ips("10.96.0.20", "198.51.100.5"),
			HealthCheck: &HealthCheck{Port: 32000, LocalEndpoints: 0},
		},
	}, {
		// No endpoints anywhere: that is "no endpoints", not a policy.
		name:   "ETP Local without any endpoint",
		svc:    service(etpLocal),
		slices: nil,
		want: Output{
			Service: "default/web",
			Frontends: []Frontend{
				fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, noEndpointsRejected),
				fe(NodePort, "80", "192.168.1.10:30080", nat44ed.TCP, noEndpointsDropped),
				fe(NodePort, "80", "192.168.1.11:30080", nat44ed.TCP, noEndpointsDropped),
				fe(LoadBalancer, "80", "198.51.100.5:80", nat44ed.TCP, noEndpointsRejected),
			},
			RejectIPs:   ips("10.96.0.20", "198.51.100.5"),
			HealthCheck: &HealthCheck{Port: 32000, LocalEndpoints: 0},
		},
	}, {
		// Distinct IPs count once across ports (pkg/proxy/endpoints.go
		// LocalReadyEndpoints).
		name: "health check counts distinct local IPs across ports",
		svc: service(etpLocal, func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{
				svcPort("http", corev1.ProtocolTCP, 80, 30080),
				svcPort("https", corev1.ProtocolTCP, 443, 30443),
			}
			s.Status.LoadBalancer.Ingress = nil
		}),
		slices: []*discoveryv1.EndpointSlice{eslice("web-abc",
			[]discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 8080), epPort("https", corev1.ProtocolTCP, 8443)},
			ep("10.244.1.5", "node-a"))},
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080"),
				mapping("10.96.0.20:443", nat44ed.TCP, "https", self, 0, "10.244.1.5:8443"),
				mapping("192.168.1.10:30080", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080"),
				mapping("192.168.1.10:30443", nat44ed.TCP, "https", self, 0, "10.244.1.5:8443"),
				mapping("192.168.1.11:30080", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080"),
				mapping("192.168.1.11:30443", nat44ed.TCP, "https", self, 0, "10.244.1.5:8443"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080"),
				fe(ClusterIP, "https", "10.96.0.20:443", nat44ed.TCP, "", "10.244.1.5:8443"),
				fe(NodePort, "http", "192.168.1.10:30080", nat44ed.TCP, "", "10.244.1.5:8080"),
				fe(NodePort, "https", "192.168.1.10:30443", nat44ed.TCP, "", "10.244.1.5:8443"),
				fe(NodePort, "http", "192.168.1.11:30080", nat44ed.TCP, "", "10.244.1.5:8080"),
				fe(NodePort, "https", "192.168.1.11:30443", nat44ed.TCP, "", "10.244.1.5:8443"),
			},
			RejectIPs:   ips("10.96.0.20"),
			HealthCheck: &HealthCheck{Port: 32000, LocalEndpoints: 1},
		},
	}, {
		// ETP Cluster: no health check even with a port set.
		name: "ETP Cluster has no health check",
		svc: service(etpLocal, func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Status.LoadBalancer.Ingress = nil
		}),
		slices: slice(ep("10.244.2.7", "node-b")),
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, "10.244.2.7:8080"),
				mapping("192.168.1.10:30080", nat44ed.TCP, "80", twice, 0, "10.244.2.7:8080"),
				mapping("192.168.1.11:30080", nat44ed.TCP, "80", twice, 0, "10.244.2.7:8080"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.10:30080", nat44ed.TCP, "", "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.11:30080", nat44ed.TCP, "", "10.244.2.7:8080"),
			},
			RejectIPs: ips("10.96.0.20"),
		},
	}, {
		name:   "ITP Local uses local endpoints for the cluster IP",
		svc:    service(itpLocal),
		slices: slice(ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b")),
		want:   clusterOnly("", "10.244.1.5:8080"),
	}, {
		name:   "ITP Local without local endpoints",
		svc:    service(itpLocal),
		slices: slice(ep("10.244.2.7", "node-b")),
		want:   withFirewalls(clusterOnly(itpLocalDropped), dropAll("10.96.0.20:80", WhyNoLocalITP, false)),
	}, {
		// With no node name configured, nothing is local.
		name:   "ITP Local with an empty node name",
		cfg:    &Config{},
		svc:    service(itpLocal),
		slices: slice(ep("10.244.1.5", ""), ep("10.244.2.7", "node-b")),
		want:   withFirewalls(clusterOnly(itpLocalDropped), dropAll("10.96.0.20:80", WhyNoLocalITP, false)),
	}, {
		// No endpoint anywhere: rejected, not dropped, whatever the policy.
		name:   "ITP Local without any endpoint",
		svc:    service(itpLocal),
		slices: slice(),
		want:   clusterOnly(noEndpointsRejected),
	}})
}

// Nothing but the service's own objects is read, in O(its size): a
// service with many slices is translated from those alone.
func TestTranslateManySlices(t *testing.T) {
	var in []*discoveryv1.EndpointSlice
	want := 0
	for i := range 20 {
		s := eslice(fmt.Sprintf("web-%02d", i), http8080)
		for j := range 50 {
			s.Endpoints = append(s.Endpoints, ep(fmt.Sprintf("10.244.%d.%d", i, j+1), "node-b"))
			want++
		}
		in = append(in, s)
	}
	out := Translate(testConfig, service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0))), in)
	if len(out.Mappings) != 1 || len(out.Mappings[0].Locals) != want {
		t.Fatalf("got %d mappings, want 1 with %d locals", len(out.Mappings), want)
	}
	ls := out.Mappings[0].Locals
	for i := 1; i < len(ls); i++ {
		if ls[i-1].Addr.Compare(ls[i].Addr) >= 0 {
			t.Fatalf("locals not sorted: %v before %v", ls[i-1].Addr, ls[i].Addr)
		}
	}
}
