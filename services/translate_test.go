package services

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// testConfig is node-a with two NodePort addresses, allowing external IPs
// in 203.0.113.0/24 only.
var testConfig = Config{
	Node:              "node-a",
	NodePortAddresses: []netip.Addr{netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.11")},
	ExternalIPCIDRs:   []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
}

func ptr[T any](v T) *T { return &v }

// service is default/web, type ClusterIP on 10.96.0.20, changed by mods.
func service(mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  "10.96.0.20",
			ClusterIPs: []string{"10.96.0.20"},
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func withPorts(ps ...corev1.ServicePort) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Ports = ps }
}

func withType(t corev1.ServiceType) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Type = t }
}

func svcPort(name string, proto corev1.Protocol, port, nodePort int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: port, NodePort: nodePort}
}

// eslice is an IPv4 EndpointSlice of default/web.
func eslice(name string, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func epPort(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Protocol: ptr(proto), Port: ptr(port)}
}

// http8080 is the slice port of an unnamed TCP service port targeting 8080.
var http8080 = []discoveryv1.EndpointPort{epPort("", corev1.ProtocolTCP, 8080)}

// ep is an endpoint on node with all conditions left nil (ready, serving,
// not terminating).
func ep(ip, node string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}}
	if node != "" {
		e.NodeName = ptr(node)
	}
	return e
}

// cond is an endpoint with explicit conditions.
func cond(ip, node string, ready, serving, terminating bool) discoveryv1.Endpoint {
	e := ep(ip, node)
	e.Conditions = discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
	return e
}

type natMode int

const (
	self  natMode = iota // SelfTwiceNAT: cluster IPs and externalTrafficPolicy Local
	twice                // TwiceNAT: external frontends with externalTrafficPolicy Cluster
)

// mapping is a mapping of default/web.
func mapping(ext string, proto nat44ed.Protocol, port string, mode natMode, aff uint32, locals ...string) nat44ed.Mapping {
	return mappingOf("default", "web", ext, proto, port, mode, aff, locals...)
}

func mappingOf(ns, name, ext string, proto nat44ed.Protocol, port string, mode natMode, aff uint32, locals ...string) nat44ed.Mapping {
	m := nat44ed.Mapping{
		Tag:          ServiceTag(ns, name, port, proto, aff),
		External:     netip.MustParseAddrPort(ext),
		Protocol:     proto,
		Affinity:     aff,
		TwiceNAT:     mode == twice,
		SelfTwiceNAT: mode == self,
	}
	for _, l := range locals {
		m.Locals = append(m.Locals, nat44ed.Local{Addr: netip.MustParseAddrPort(l), Probability: 1})
	}
	return m
}

func fe(kind FrontendKind, port, addr string, proto nat44ed.Protocol, note string, backends ...string) Frontend {
	f := Frontend{Kind: kind, Port: port, Address: netip.MustParseAddrPort(addr), Protocol: proto, Note: note}
	for _, b := range backends {
		f.Backends = append(f.Backends, netip.MustParseAddrPort(b))
	}
	return f
}

func ips(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// Notes as a person reads them in kube-vppctl show services.
const (
	noEndpointsRejected = "no endpoints: rejected (ICMP unreachable)"
	noEndpointsDropped  = "no endpoints: dropped"
	etpLocalDropped     = "externalTrafficPolicy Local and no endpoint on this node: outside clients dropped, pods served by every endpoint"
	itpLocalDropped     = "internalTrafficPolicy Local and no endpoint on this node: dropped"
)

type translateCase struct {
	name   string
	cfg    *Config // testConfig when nil
	svc    *corev1.Service
	slices []*discoveryv1.EndpointSlice
	want   Output // Problems compared as "field reason" in problems
	// problems are the expected Problems, "field reason" each, in order.
	problems []string
}

func runCases(t *testing.T, cases []translateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig
			if tc.cfg != nil {
				cfg = *tc.cfg
			}
			var before *corev1.Service
			if tc.svc != nil {
				before = tc.svc.DeepCopy()
			}
			got := Translate(cfg, tc.svc, tc.slices)
			checkOutput(t, got, tc.want, tc.problems)
			if tc.svc != nil && !reflect.DeepEqual(before, tc.svc) {
				t.Errorf("Translate changed the Service")
			}
			// The caller's slice order must not matter.
			rev := slices.Clone(tc.slices)
			slices.Reverse(rev)
			if again := Translate(cfg, tc.svc, rev); !reflect.DeepEqual(again, got) {
				t.Errorf("slices reversed: output differs\n got %+v\nwant %+v", again, got)
			}
		})
	}
}

func checkOutput(t *testing.T, got, want Output, problems []string) {
	t.Helper()
	if got.Service != want.Service {
		t.Errorf("Service = %q, want %q", got.Service, want.Service)
	}
	if !reflect.DeepEqual(got.Mappings, want.Mappings) {
		t.Errorf("Mappings:\n got %s\nwant %s", dump(got.Mappings), dump(want.Mappings))
	}
	if !reflect.DeepEqual(got.Frontends, want.Frontends) {
		t.Errorf("Frontends:\n got %s\nwant %s", dump(got.Frontends), dump(want.Frontends))
	}
	if !reflect.DeepEqual(got.RejectIPs, want.RejectIPs) {
		t.Errorf("RejectIPs = %v, want %v", got.RejectIPs, want.RejectIPs)
	}
	if !reflect.DeepEqual(got.Firewalls, want.Firewalls) {
		t.Errorf("Firewalls:\n got %s\nwant %s", dump(got.Firewalls), dump(want.Firewalls))
	}
	if !reflect.DeepEqual(got.HealthCheck, want.HealthCheck) {
		t.Errorf("HealthCheck = %+v, want %+v", got.HealthCheck, want.HealthCheck)
	}
	var gotProblems []string
	for _, p := range got.Problems {
		gotProblems = append(gotProblems, p.Field+" "+p.Reason)
		if p.Err == nil {
			t.Errorf("problem %s %s has no error", p.Field, p.Reason)
		}
	}
	if !slices.Equal(gotProblems, problems) {
		t.Errorf("Problems = %q, want %q (%v)", gotProblems, problems, got.Problems)
	}
	// Whatever Translate emits must be what VPP accepts.
	for _, m := range got.Mappings {
		if err := m.Validate(); err != nil {
			t.Errorf("invalid mapping: %v", err)
		}
	}
}

func dump[T any](v []T) string {
	var b strings.Builder
	for _, x := range v {
		fmt.Fprintf(&b, "\n\t%+v", x)
	}
	return b.String()
}

func TestTranslateServiceTypes(t *testing.T) {
	kubeDNS := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-dns"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{
				svcPort("dns", corev1.ProtocolUDP, 53, 0),
				svcPort("dns-tcp", corev1.ProtocolTCP, 53, 0),
				svcPort("metrics", corev1.ProtocolTCP, 9153, 0),
			},
		},
	}
	dnsSlice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "kube-system", Name: "kube-dns-x7k2p",
			Labels: map[string]string{discoveryv1.LabelServiceName: "kube-dns"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			epPort("dns", corev1.ProtocolUDP, 53), epPort("dns-tcp", corev1.ProtocolTCP, 53),
			epPort("metrics", corev1.ProtocolTCP, 9153),
		},
		Endpoints: []discoveryv1.Endpoint{ep("10.244.2.7", "node-b"), ep("10.244.1.5", "node-a")},
	}
	dns := func(ext string, proto nat44ed.Protocol, port string, locals ...string) nat44ed.Mapping {
		return mappingOf("kube-system", "kube-dns", ext, proto, port, self, 0, locals...)
	}
	twoEndpoints := eslice("web-abc", http8080, ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b"))

	runCases(t, []translateCase{{
		// One service port per protocol on the same number, as kube-dns has:
		// each is a mapping of its own (the key includes the protocol).
		name:   "kube-dns: TCP and UDP on 53, and a metrics port",
		svc:    kubeDNS,
		slices: []*discoveryv1.EndpointSlice{dnsSlice},
		want: Output{
			Service: "kube-system/kube-dns",
			Mappings: []nat44ed.Mapping{
				dns("10.96.0.10:53", nat44ed.TCP, "dns-tcp", "10.244.1.5:53", "10.244.2.7:53"),
				dns("10.96.0.10:53", nat44ed.UDP, "dns", "10.244.1.5:53", "10.244.2.7:53"),
				dns("10.96.0.10:9153", nat44ed.TCP, "metrics", "10.244.1.5:9153", "10.244.2.7:9153"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "dns-tcp", "10.96.0.10:53", nat44ed.TCP, "", "10.244.1.5:53", "10.244.2.7:53"),
				fe(ClusterIP, "dns", "10.96.0.10:53", nat44ed.UDP, "", "10.244.1.5:53", "10.244.2.7:53"),
				fe(ClusterIP, "metrics", "10.96.0.10:9153", nat44ed.TCP, "", "10.244.1.5:9153", "10.244.2.7:9153"),
			},
			RejectIPs: ips("10.96.0.10"),
		},
	}, {
		// A named targetPort resolves per pod: each slice carries the
		// number its endpoints listen on.
		name: "named targetPort with two slices carrying different numbers",
		svc:  service(withPorts(svcPort("http", corev1.ProtocolTCP, 80, 0))),
		slices: []*discoveryv1.EndpointSlice{
			eslice("web-1", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 8080)}, ep("10.244.1.5", "node-a")),
			eslice("web-2", []discoveryv1.EndpointPort{epPort("http", corev1.ProtocolTCP, 9090)}, ep("10.244.2.7", "node-b")),
		},
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080", "10.244.2.7:9090")},
			Frontends: []Frontend{fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080", "10.244.2.7:9090")},
			RejectIPs: ips("10.96.0.20"),
		},
	}, {
		// An empty protocol is TCP (the API default); the slice port
		// matches by name "" and protocol.
		name:   "unnamed port with empty protocol is TCP",
		svc:    service(withPorts(svcPort("", "", 80, 0))),
		slices: []*discoveryv1.EndpointSlice{eslice("web-abc", []discoveryv1.EndpointPort{{Port: ptr[int32](8080)}}, ep("10.244.1.5", "node-a"))},
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, "10.244.1.5:8080")},
			Frontends: []Frontend{fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080")},
			RejectIPs: ips("10.96.0.20"),
		},
	}, {
		// NodePort: every node address, masqueraded (twice-NAT) since the
		// backend may be on another node.
		name:   "NodePort on two node addresses",
		svc:    service(withType(corev1.ServiceTypeNodePort), withPorts(svcPort("", corev1.ProtocolTCP, 80, 30080))),
		slices: []*discoveryv1.EndpointSlice{twoEndpoints},
		want: Output{
			Service: "default/web",
			Mappings: []nat44ed.Mapping{
				mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, "10.244.1.5:8080", "10.244.2.7:8080"),
				mapping("192.168.1.10:30080", nat44ed.TCP, "80", twice, 0, "10.244.1.5:8080", "10.244.2.7:8080"),
				mapping("192.168.1.11:30080", nat44ed.TCP, "80", twice, 0, "10.244.1.5:8080", "10.244.2.7:8080"),
			},
			Frontends: []Frontend{
				fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080", "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.10:30080", nat44ed.TCP, "", "10.244.1.5:8080", "10.244.2.7:8080"),
				fe(NodePort, "80", "192.168.1.11:30080", nat44ed.TCP, "", "10.244.1.5:8080", "10.244.2.7:8080"),
			},
			// Node addresses are the node's own: never rejected.
			RejectIPs: ips("10.96.0.20"),
		},
	}, {
		// A nodePort left on a ClusterIP service (type changed) is not served.
		name:   "nodePort on a ClusterIP service is ignored",
		svc:    service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 30080))),
		slices: []*discoveryv1.EndpointSlice{twoEndpoints},
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "80", self, 0, "10.244.1.5:8080", "10.244.2.7:8080")},
			Frontends: []Frontend{fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080", "10.244.2.7:8080")},
			RejectIPs: ips("10.96.0.20"),
		},
	}, {
		// SCTP is refused loudly; the service's other ports still work,
		// and the cluster IP is still rejected for what has no mapping.
		name: "SCTP refused, TCP port kept",
		svc: service(withPorts(
			svcPort("sig", corev1.ProtocolSCTP, 9999, 0),
			svcPort("http", corev1.ProtocolTCP, 80, 0),
		)),
		slices: []*discoveryv1.EndpointSlice{eslice("web-abc",
			[]discoveryv1.EndpointPort{epPort("sig", corev1.ProtocolSCTP, 9999), epPort("http", corev1.ProtocolTCP, 8080)},
			ep("10.244.1.5", "node-a"))},
		want: Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "http", self, 0, "10.244.1.5:8080")},
			Frontends: []Frontend{fe(ClusterIP, "http", "10.96.0.20:80", nat44ed.TCP, "", "10.244.1.5:8080")},
			RejectIPs: ips("10.96.0.20"),
		},
		problems: []string{"spec.ports[0].protocol UnsupportedProtocol"},
	}, {
		name: "ExternalName left alone",
		svc: service(withType(corev1.ServiceTypeExternalName), func(s *corev1.Service) {
			s.Spec.ExternalName = "db.example.com"
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
			s.Spec.Ports = []corev1.ServicePort{svcPort("", corev1.ProtocolTCP, 5432, 0)}
		}),
		want: Output{Service: "default/web"},
	}, {
		name: "headless left alone",
		svc: service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)), func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
		}),
		slices: []*discoveryv1.EndpointSlice{twoEndpoints},
		want:   Output{Service: "default/web"},
	}, {
		// KEP-2447: another proxy implements it, whatever the value.
		name: "a Service of another proxy left alone",
		svc: service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)), func(s *corev1.Service) {
			s.Labels = map[string]string{LabelServiceProxyName: ""}
		}),
		slices: []*discoveryv1.EndpointSlice{twoEndpoints},
		want:   Output{Service: "default/web"},
	}, {
		name: "no cluster IP left alone",
		svc: service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)), func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
		}),
		slices: []*discoveryv1.EndpointSlice{twoEndpoints},
		want:   Output{Service: "default/web"},
	}, {
		name: "nil service",
		want: Output{},
	}})
}

func TestTranslateSessionAffinity(t *testing.T) {
	clientIP := func(timeout *int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			if timeout != nil {
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
					ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: timeout},
				}
			}
		}
	}
	two := eslice("web-abc", http8080, ep("10.244.1.5", "node-a"), ep("10.244.2.7", "node-b"))
	one := eslice("web-abc", http8080, ep("10.244.1.5", "node-a"))
	port := withPorts(svcPort("", corev1.ProtocolTCP, 80, 0))
	ok := func(aff uint32, locals ...string) Output {
		return Output{
			Service:   "default/web",
			Mappings:  []nat44ed.Mapping{mapping("10.96.0.20:80", nat44ed.TCP, "80", self, aff, locals...)},
			Frontends: []Frontend{fe(ClusterIP, "80", "10.96.0.20:80", nat44ed.TCP, "", locals...)},
			RejectIPs: ips("10.96.0.20"),
		}
	}
	runCases(t, []translateCase{{
		// Kubernetes' default timeoutSeconds is 10800 (3 hours).
		name:   "ClientIP without config takes the 3h default",
		svc:    service(port, clientIP(nil)),
		slices: []*discoveryv1.EndpointSlice{two},
		want:   ok(10800, "10.244.1.5:8080", "10.244.2.7:8080"),
	}, {
		name:   "ClientIP with explicit timeout",
		svc:    service(port, clientIP(ptr[int32](600))),
		slices: []*discoveryv1.EndpointSlice{two},
		want:   ok(600, "10.244.1.5:8080", "10.244.2.7:8080"),
	}, {
		// One local: a plain static mapping, no affinity (every client
		// reaches the one backend anyway).
		name:   "ClientIP with one endpoint has no affinity",
		svc:    service(port, clientIP(ptr[int32](600))),
		slices: []*discoveryv1.EndpointSlice{one},
		want:   ok(0, "10.244.1.5:8080"),
	}, {
		// The API accepts 1..86400; an out-of-range value is reported and
		// the default used.
		name:     "ClientIP with timeout 0 is a problem, default used",
		svc:      service(port, clientIP(ptr[int32](0))),
		slices:   []*discoveryv1.EndpointSlice{two},
		want:     ok(10800, "10.244.1.5:8080", "10.244.2.7:8080"),
		problems: []string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds InvalidSessionAffinity"},
	}, {
		name:   "affinity None",
		svc:    service(port, func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityNone }),
		slices: []*discoveryv1.EndpointSlice{two},
		want:   ok(0, "10.244.1.5:8080", "10.244.2.7:8080"),
	}})
}

func TestServiceTag(t *testing.T) {
	tests := []struct {
		ns, name, port string
		proto          nat44ed.Protocol
		aff            uint32
		want           string
	}{
		{"default", "web", "http", nat44ed.TCP, 0, "kube-vpp:svc:default/web:http/tcp"},
		{"kube-system", "kube-dns", "dns", nat44ed.UDP, 0, "kube-vpp:svc:kube-system/kube-dns:dns/udp"},
		{"default", "web", "80", nat44ed.TCP, 10800, "kube-vpp:svc:default/web:80/tcp:aff10800"},
	}
	for _, tt := range tests {
		if got := ServiceTag(tt.ns, tt.name, tt.port, tt.proto, tt.aff); got != tt.want {
			t.Errorf("ServiceTag(%q, %q, %q, %v, %d) = %q, want %q", tt.ns, tt.name, tt.port, tt.proto, tt.aff, got, tt.want)
		}
	}

	// Long names still fit VPP's tag field, stay owned and of kind svc,
	// and a different affinity still gives a different tag.
	long := strings.Repeat("n", 63)
	a, b := ServiceTag(long, long, "http", nat44ed.TCP, 0), ServiceTag(long, long, "http", nat44ed.TCP, 600)
	for _, s := range []string{a, b} {
		if len(s) > tag.MaxLen || tag.Kind(s) != nat44ed.KindService {
			t.Errorf("long tag %q: %d bytes, kind %q", s, len(s), tag.Kind(s))
		}
	}
	if a == b {
		t.Errorf("affinity 0 and 600 give the same tag %q", a)
	}
}

func TestProblemError(t *testing.T) {
	inner := errors.New("externalIP 198.18.0.1 is not allowed")
	p := Problem{Field: "spec.externalIPs[1]", Reason: ReasonExternalIPNotAllowed, Err: inner}
	if got, want := p.Error(), "spec.externalIPs[1]: externalIP 198.18.0.1 is not allowed"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(p, inner) {
		t.Errorf("errors.Is(problem, its Err) = false")
	}
}
