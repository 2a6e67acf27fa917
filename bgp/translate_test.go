package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Fixtures.

const self = "worker-1"

func testNode(name string, podCIDRs []string, internalIPs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	// Other address types must be ignored.
	n.Status.Addresses = append(n.Status.Addresses,
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: name},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "198.51.100.99"})
	for _, ip := range internalIPs {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return n
}

func annotated(n *corev1.Node, kv ...string) *corev1.Node {
	n.Annotations = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Annotations[kv[i]] = kv[i+1]
	}
	return n
}

// dualStackNode is this node with both families.
func dualStackNode() *corev1.Node {
	return testNode(self, []string{"10.244.1.0/24", "fd00:244:1::/64"}, "192.0.2.11", "2001:db8::11")
}

type svcOpt func(*corev1.Service)

func testService(ns, name string, typ corev1.ServiceType, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: typ, ClusterIP: "10.96.0.10"},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func ingress(ips ...string) svcOpt {
	return func(s *corev1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

func externalIPs(ips ...string) svcOpt {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

func etpLocal(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

func etpCluster(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
}

func headless(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }

type ep struct {
	node               string
	ready, terminating *bool
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

func testSlice(ns, svc string, family discoveryv1.AddressType, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + strings.ToLower(string(family)),
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: family,
	}
	for i, e := range eps {
		addr := "10.244.1." + string(rune('1'+i))
		if family == discoveryv1.AddressTypeIPv6 {
			addr = "fd00:244:1::" + string(rune('1'+i))
		}
		e := e
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{addr},
			NodeName:   &e.node,
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Terminating: e.terminating},
		})
	}
	return es
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// ad builds an expected advertisement; the next hops of this node are
// 192.0.2.11 and 2001:db8::11 unless configured otherwise.
func ad(prefix, nextHop, reason string) Advertisement {
	return Advertisement{Prefix: pfx(prefix), NextHop: ip(nextHop), Reason: reason}
}

// withDefaults fills in what most cases share: this dual-stack node,
// every kind of advertisement on, external IPs allowed from 203.0.113.0/24
// and 2001:db8:e::/64.
func withDefaults(in AdvertiseInput) AdvertiseInput {
	in.PodCIDRs, in.ServiceCIDRRanges, in.LoadBalancerIPs, in.ExternalIPs = true, true, true, true
	if in.Node == nil {
		in.Node = dualStackNode()
	}
	if in.ExternalIPCIDRs == nil {
		in.ExternalIPCIDRs = []netip.Prefix{pfx("203.0.113.0/24"), pfx("2001:db8:e::/64")}
	}
	return in
}

// servicesOnly turns off the pod and service CIDRs so a case shows only
// what its Services contribute.
func servicesOnly(in AdvertiseInput) AdvertiseInput {
	in = withDefaults(in)
	in.PodCIDRs, in.ServiceCIDRRanges = false, false
	return in
}

func TestAdvertisements(t *testing.T) {
	tests := []struct {
		name     string
		in       AdvertiseInput
		want     []Advertisement
		problems []string
	}{
		{
			name: "dual-stack node: pod and service CIDRs of both families, sorted",
			in: withDefaults(AdvertiseInput{
				ServiceCIDRs: []netip.Prefix{pfx("fd00:96::/112"), pfx("10.96.0.0/12")},
			}),
			want: []Advertisement{
				ad("10.96.0.0/12", "192.0.2.11", ReasonServiceCIDR),
				ad("10.244.1.0/24", "192.0.2.11", ReasonPodCIDR),
				ad("fd00:96::/112", "2001:db8::11", ReasonServiceCIDR),
				ad("fd00:244:1::/64", "2001:db8::11", ReasonPodCIDR),
			},
		},
		{
			name: "legacy spec.podCIDR alone, host bits read as the network",
			in: withDefaults(AdvertiseInput{Node: func() *corev1.Node {
				n := testNode(self, nil, "192.0.2.11")
				n.Spec.PodCIDR = "10.244.7.1/24"
				return n
			}()}),
			want: []Advertisement{ad("10.244.7.0/24", "192.0.2.11", ReasonPodCIDR)},
		},
		{
			name: "configured next hops win over the node's addresses",
			in: withDefaults(AdvertiseInput{
				ServiceCIDRs: []netip.Prefix{pfx("10.96.0.0/12")},
				NextHopV4:    ip("192.0.2.200"), NextHopV6: ip("2001:db8::200"),
			}),
			want: []Advertisement{
				ad("10.96.0.0/12", "192.0.2.200", ReasonServiceCIDR),
				ad("10.244.1.0/24", "192.0.2.200", ReasonPodCIDR),
				ad("fd00:244:1::/64", "2001:db8::200", ReasonPodCIDR),
			},
		},
		{
			name: "IPv6 prefix without an IPv6 next hop is a problem; IPv4 still goes",
			in: withDefaults(AdvertiseInput{
				Node:         testNode(self, []string{"10.244.1.0/24", "fd00:244:1::/64"}, "192.0.2.11"),
				ServiceCIDRs: []netip.Prefix{pfx("fd00:96::/112")},
			}),
			want: []Advertisement{ad("10.244.1.0/24", "192.0.2.11", ReasonPodCIDR)},
			problems: []string{
				"node worker-1: spec.podCIDRs[1]: fd00:244:1::/64 not advertised: no IPv6 next hop (none configured and the node has no IPv6 InternalIP)",
				"service CIDR fd00:96::/112: fd00:96::/112 not advertised: no IPv6 next hop (none configured and the node has no IPv6 InternalIP)",
			},
		},
		{
			name: "a configured next hop of the wrong family is not used",
			in: withDefaults(AdvertiseInput{
				Node:      testNode(self, []string{"10.244.1.0/24"}, "192.0.2.11"),
				NextHopV4: ip("2001:db8::5"),
			}),
			want:     []Advertisement{ad("10.244.1.0/24", "192.0.2.11", ReasonPodCIDR)},
			problems: []string{"configuration: next hop 2001:db8::5 given for IPv4 is of the wrong family; using the node's address"},
		},
		{
			name: "everything turned off",
			in: AdvertiseInput{
				Node:         dualStackNode(),
				ServiceCIDRs: []netip.Prefix{pfx("10.96.0.0/12")},
				Services:     []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, ingress("192.0.2.50"), externalIPs("203.0.113.5"))},
			},
		},
		{
			name: "ETP Cluster: LB ingress IPs of both families as host routes, without any endpoint",
			in: servicesOnly(AdvertiseInput{Services: []*corev1.Service{
				testService("default", "web", corev1.ServiceTypeLoadBalancer, etpCluster, ingress("192.0.2.50", "2001:db8:50::1")),
			}}),
			want: []Advertisement{
				ad("192.0.2.50/32", "192.0.2.11", ReasonLoadBalancer),
				ad("2001:db8:50::1/128", "2001:db8::11", ReasonLoadBalancer),
			},
		},
		{
			name: "ETP Local with a ready endpoint here (ready unset means ready)",
			in: servicesOnly(AdvertiseInput{
				Services:       []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, etpLocal, ingress("192.0.2.50"))},
				EndpointSlices: []*discoveryv1.EndpointSlice{testSlice("default", "web", discoveryv1.AddressTypeIPv4, ep{node: "worker-2"}, ep{node: self})},
			}),
			want: []Advertisement{ad("192.0.2.50/32", "192.0.2.11", ReasonLoadBalancer)},
		},
		{
			name: "ETP Local with no endpoint anywhere",
			in: servicesOnly(AdvertiseInput{
				Services: []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, etpLocal, ingress("192.0.2.50"))},
			}),
		},
		{
			name: "ETP Local with only a terminating and a not-ready endpoint here",
			in: servicesOnly(AdvertiseInput{
				Services: []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, etpLocal, ingress("192.0.2.50"), externalIPs("203.0.113.5"))},
				EndpointSlices: []*discoveryv1.EndpointSlice{testSlice("default", "web", discoveryv1.AddressTypeIPv4,
					ep{node: self, ready: no(), terminating: yes()},
					ep{node: self, ready: no()},
					ep{node: "worker-2", ready: yes()})},
			}),
		},
		{
			name: "ETP Local with ready endpoints only on another node",
			in: servicesOnly(AdvertiseInput{
				Services:       []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, etpLocal, ingress("192.0.2.50"))},
				EndpointSlices: []*discoveryv1.EndpointSlice{testSlice("default", "web", discoveryv1.AddressTypeIPv4, ep{node: "worker-2", ready: yes()})},
			}),
		},
		{
			name: "ETP Local: a ready endpoint here of a same-named service in another namespace does not count",
			in: servicesOnly(AdvertiseInput{
				Services: []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, etpLocal, ingress("192.0.2.50"))},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					testSlice("other", "web", discoveryv1.AddressTypeIPv4, ep{node: self, ready: yes()}),
					testSlice("default", "api", discoveryv1.AddressTypeIPv4, ep{node: self, ready: yes()}),
				},
			}),
		},
		{
			name: "ETP Local dual-stack: only the family with a ready endpoint here",
			in: servicesOnly(AdvertiseInput{
				Services: []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, etpLocal,
					ingress("192.0.2.50", "2001:db8:50::1"), externalIPs("203.0.113.5", "2001:db8:e::5"))},
				EndpointSlices: []*discoveryv1.EndpointSlice{
					testSlice("default", "web", discoveryv1.AddressTypeIPv4, ep{node: self, ready: no()}),
					testSlice("default", "web", discoveryv1.AddressTypeIPv6, ep{node: self, ready: yes()}),
				},
			}),
			want: []Advertisement{
				ad("2001:db8:e::5/128", "2001:db8::11", ReasonExternalIP),
				ad("2001:db8:50::1/128", "2001:db8::11", ReasonLoadBalancer),
			},
		},
		{
			name: "externalIPs inside the allowed CIDRs go, outside are problems",
			in: servicesOnly(AdvertiseInput{Services: []*corev1.Service{
				testService("default", "web", corev1.ServiceTypeClusterIP, externalIPs("203.0.113.5", "198.51.100.7", "2001:db8:e::5")),
			}}),
			want: []Advertisement{
				ad("203.0.113.5/32", "192.0.2.11", ReasonExternalIP),
				ad("2001:db8:e::5/128", "2001:db8::11", ReasonExternalIP),
			},
			problems: []string{
				"service default/web: spec.externalIPs[1]: 198.51.100.7 is outside the CIDRs allowed for externalIPs (203.0.113.0/24, 2001:db8:e::/64); not advertised",
			},
		},
		{
			name: "no externalIP allowed when no CIDR is configured",
			in: servicesOnly(AdvertiseInput{
				ExternalIPCIDRs: []netip.Prefix{},
				Services:        []*corev1.Service{testService("default", "web", corev1.ServiceTypeNodePort, externalIPs("203.0.113.5"))},
			}),
			problems: []string{"service default/web: spec.externalIPs[0]: 203.0.113.5 is outside the CIDRs allowed for externalIPs (none allowed); not advertised"},
		},
		{
			name: "ClusterIP service with externalIPs and ETP Local is externally accessible: needs a local endpoint",
			in: servicesOnly(AdvertiseInput{
				Services: []*corev1.Service{
					testService("default", "web", corev1.ServiceTypeClusterIP, etpLocal, externalIPs("203.0.113.5")),
					testService("default", "api", corev1.ServiceTypeClusterIP, etpLocal, externalIPs("203.0.113.6")),
				},
				EndpointSlices: []*discoveryv1.EndpointSlice{testSlice("default", "api", discoveryv1.AddressTypeIPv4, ep{node: self})},
			}),
			want: []Advertisement{ad("203.0.113.6/32", "192.0.2.11", ReasonExternalIP)},
		},
		{
			name: "bad addresses are problems naming the object and field",
			in: withDefaults(AdvertiseInput{
				Node: testNode(self, []string{"10.244.1.0/33", "fd00:244:1::/64"}, "192.0.2.11", "2001:db8::11"),
				Services: []*corev1.Service{
					testService("default", "web", corev1.ServiceTypeLoadBalancer, ingress("300.1.1.1", "192.0.2.50"), externalIPs("not-an-ip", "fe80::1%eth0")),
				},
			}),
			want: []Advertisement{
				ad("192.0.2.50/32", "192.0.2.11", ReasonLoadBalancer),
				ad("fd00:244:1::/64", "2001:db8::11", ReasonPodCIDR),
			},
			problems: []string{
				`node worker-1: spec.podCIDRs[0]: "10.244.1.0/33" is not a CIDR`,
				`service default/web: status.loadBalancer.ingress[0].ip: "300.1.1.1" is not an IP address`,
				`service default/web: spec.externalIPs[0]: "not-an-ip" is not an IP address`,
				`service default/web: spec.externalIPs[1]: "fe80::1%eth0" is not an IP address`,
			},
		},
		{
			name: "a bad InternalIP is a problem; the next valid one is used",
			in: servicesOnly(AdvertiseInput{
				Node:     testNode(self, nil, "192.0.2.999", "192.0.2.12"),
				Services: []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, ingress("192.0.2.50"))},
			}),
			want:     []Advertisement{ad("192.0.2.50/32", "192.0.2.12", ReasonLoadBalancer)},
			problems: []string{`node worker-1: status.addresses[2].address: "192.0.2.999" is not an IP address`},
		},
		{
			name: "IPv4-mapped ingress IP is IPv4",
			in: servicesOnly(AdvertiseInput{Services: []*corev1.Service{
				testService("default", "web", corev1.ServiceTypeLoadBalancer, ingress("::ffff:192.0.2.50")),
			}}),
			want: []Advertisement{ad("192.0.2.50/32", "192.0.2.11", ReasonLoadBalancer)},
		},
		{
			name: "headless, ExternalName, no ingress yet, hostname-only, ipMode Proxy, stale status on ClusterIP: nothing",
			in: servicesOnly(AdvertiseInput{Services: []*corev1.Service{
				testService("default", "headless", corev1.ServiceTypeClusterIP, headless, externalIPs("203.0.113.1")),
				testService("default", "headless-lb", corev1.ServiceTypeLoadBalancer, headless, ingress("192.0.2.51")),
				testService("default", "extname", corev1.ServiceTypeExternalName, externalIPs("203.0.113.2")),
				testService("default", "pending", corev1.ServiceTypeLoadBalancer),
				testService("default", "hostname", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}}
				}),
				testService("default", "proxied", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
					mode := corev1.LoadBalancerIPModeProxy
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.52", IPMode: &mode}}
				}),
				testService("default", "was-lb", corev1.ServiceTypeClusterIP, ingress("192.0.2.53")),
				nil,
			}}),
		},
		{
			name: "ipMode VIP is announced",
			in: servicesOnly(AdvertiseInput{Services: []*corev1.Service{
				testService("default", "vip", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
					mode := corev1.LoadBalancerIPModeVIP
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.52", IPMode: &mode}}
				}),
			}}),
			want: []Advertisement{ad("192.0.2.52/32", "192.0.2.11", ReasonLoadBalancer)},
		},
		{
			name: "the same prefix from several sources is announced once, with the earliest reason",
			in: servicesOnly(AdvertiseInput{Services: []*corev1.Service{
				// "a-ext" sorts first, yet load-balancer outranks external-ip.
				testService("default", "z-lb", corev1.ServiceTypeLoadBalancer, ingress("203.0.113.5", "192.0.2.50")),
				testService("default", "a-ext", corev1.ServiceTypeClusterIP, externalIPs("203.0.113.5")),
				testService("default", "shared-lb", corev1.ServiceTypeLoadBalancer, ingress("192.0.2.50")),
				testService("default", "twice", corev1.ServiceTypeClusterIP, externalIPs("203.0.113.9", "203.0.113.9")),
			}}),
			want: []Advertisement{
				ad("192.0.2.50/32", "192.0.2.11", ReasonLoadBalancer),
				ad("203.0.113.5/32", "192.0.2.11", ReasonLoadBalancer),
				ad("203.0.113.9/32", "192.0.2.11", ReasonExternalIP),
			},
		},
		{
			name: "a pod CIDR equal to a service CIDR is announced once as pod-cidr",
			in: withDefaults(AdvertiseInput{
				Node:         testNode(self, []string{"10.244.1.0/24"}, "192.0.2.11"),
				ServiceCIDRs: []netip.Prefix{pfx("10.244.1.0/24")},
			}),
			want: []Advertisement{ad("10.244.1.0/24", "192.0.2.11", ReasonPodCIDR)},
		},
		{
			name: "only external IPs turned on",
			in: AdvertiseInput{
				Node:            dualStackNode(),
				ExternalIPs:     true,
				ExternalIPCIDRs: []netip.Prefix{pfx("203.0.113.0/24")},
				Services:        []*corev1.Service{testService("default", "web", corev1.ServiceTypeLoadBalancer, ingress("192.0.2.50"), externalIPs("203.0.113.5"))},
			},
			want: []Advertisement{ad("203.0.113.5/32", "192.0.2.11", ReasonExternalIP)},
		},
		{
			name: "unknown Node: service CIDRs with configured next hops still go",
			in: AdvertiseInput{
				ServiceCIDRs: []netip.Prefix{pfx("10.96.0.0/12"), pfx("fd00:96::/112")},
				NextHopV4:    ip("192.0.2.200"),
				PodCIDRs:     true, ServiceCIDRRanges: true,
			},
			want: []Advertisement{ad("10.96.0.0/12", "192.0.2.200", ReasonServiceCIDR)},
			problems: []string{
				"node: this node's Node object is not known yet",
				"service CIDR fd00:96::/112: fd00:96::/112 not advertised: no IPv6 next hop (none configured and the node has no IPv6 InternalIP)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := Advertisements(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("advertisements:\n got %v\nwant %v", got, tt.want)
			}
			if msgs := problemStrings(problems); !slices.Equal(msgs, tt.problems) {
				t.Errorf("problems:\n got %q\nwant %q", msgs, tt.problems)
			}

			// The result does not depend on the order of the inputs.
			rev := tt.in
			rev.Services = slices.Clone(tt.in.Services)
			slices.Reverse(rev.Services)
			rev.EndpointSlices = slices.Clone(tt.in.EndpointSlices)
			slices.Reverse(rev.EndpointSlices)
			got2, problems2 := Advertisements(rev)
			if !slices.Equal(got2, got) || !slices.Equal(problemStrings(problems2), problemStrings(problems)) {
				t.Errorf("reversed input gives %v %q, want %v %q", got2, problemStrings(problems2), got, problemStrings(problems))
			}
		})
	}
}

func problemStrings(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Error())
	}
	return out
}

func TestProblemError(t *testing.T) {
	_, problems := Advertisements(servicesOnly(AdvertiseInput{Services: []*corev1.Service{
		testService("default", "web", corev1.ServiceTypeLoadBalancer, ingress("300.1.1.1")),
	}}))
	if len(problems) != 1 {
		t.Fatalf("got %d problems, want 1: %q", len(problems), problemStrings(problems))
	}
	p := problems[0]
	if p.Object != "service default/web" || p.Field != "status.loadBalancer.ingress[0].ip" {
		t.Errorf("got object %q field %q", p.Object, p.Field)
	}
	const want = `service default/web: status.loadBalancer.ingress[0].ip: "300.1.1.1" is not an IP address`
	if p.Error() != want {
		t.Errorf("got %q, want %q", p.Error(), want)
	}
}

func TestLocalSpeaker(t *testing.T) {
	const annASN, annID = "metadata.annotations[bgp.kube-vpp.io/asn]", "metadata.annotations[bgp.kube-vpp.io/router-id]"
	tests := []struct {
		name     string
		node     *corev1.Node
		asn      uint32
		routerID netip.Addr
		wantASN  uint32
		wantID   netip.Addr
		problems []string // "field: text" fragments, in order
	}{
		{name: "configured values", node: dualStackNode(), asn: 65000, routerID: ip("192.0.2.1"), wantASN: 65000, wantID: ip("192.0.2.1")},
		{
			name: "router ID from the node's IPv4 InternalIP even when IPv6 is listed first",
			node: testNode(self, nil, "2001:db8::11", "192.0.2.11"), asn: 65000,
			wantASN: 65000, wantID: ip("192.0.2.11"),
		},
		{
			name: "annotations override both",
			node: annotated(dualStackNode(), AnnotationASN, "4200000001", AnnotationRouterID, "10.0.0.1"),
			asn:  65000, routerID: ip("192.0.2.1"),
			wantASN: 4200000001, wantID: ip("10.0.0.1"),
		},
		{
			name: "invalid ASN annotation keeps the configured ASN",
			node: annotated(dualStackNode(), AnnotationASN, "AS65001"), asn: 65000, routerID: ip("192.0.2.1"),
			wantASN: 65000, wantID: ip("192.0.2.1"),
			problems: []string{annASN + `: "AS65001" is not an AS number`},
		},
		{
			name: "ASN annotation 0", node: annotated(dualStackNode(), AnnotationASN, "0"), asn: 65000,
			wantASN: 65000, wantID: ip("192.0.2.11"),
			problems: []string{annASN + `: "0" is not an AS number`},
		},
		{
			name: "ASN annotation beyond 32 bits", node: annotated(dualStackNode(), AnnotationASN, "4294967296"), asn: 65000,
			wantASN: 65000, wantID: ip("192.0.2.11"),
			problems: []string{annASN + `: "4294967296" is not an AS number`},
		},
		{
			name: "IPv6 router ID annotation keeps the configured router ID",
			node: annotated(dualStackNode(), AnnotationRouterID, "fd00::1"), asn: 65000, routerID: ip("192.0.2.1"),
			wantASN: 65000, wantID: ip("192.0.2.1"),
			problems: []string{annID + `: "fd00::1" is not a non-zero IPv4 address`},
		},
		{
			name: "zero router ID annotation falls back to the node address",
			node: annotated(dualStackNode(), AnnotationRouterID, "0.0.0.0"), asn: 65000,
			wantASN: 65000, wantID: ip("192.0.2.11"),
			problems: []string{annID + `: "0.0.0.0" is not a non-zero IPv4 address`},
		},
		{
			name: "IPv6-only node without a router ID",
			node: testNode(self, nil, "2001:db8::11"), asn: 65000,
			wantASN:  65000,
			problems: []string{"no router ID"},
		},
		{
			name: "no ASN anywhere", node: dualStackNode(),
			wantID:   ip("192.0.2.11"),
			problems: []string{"no AS number"},
		},
		{
			name: "ASN from the annotation alone", node: annotated(dualStackNode(), AnnotationASN, "64512"),
			wantASN: 64512, wantID: ip("192.0.2.11"),
		},
		{name: "no Node object, configured values", asn: 65000, routerID: ip("192.0.2.1"), wantASN: 65000, wantID: ip("192.0.2.1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asn, id, problems := LocalSpeaker(tt.node, tt.asn, tt.routerID)
			if asn != tt.wantASN || id != tt.wantID {
				t.Errorf("got %d %v, want %d %v", asn, id, tt.wantASN, tt.wantID)
			}
			msgs := problemStrings(problems)
			if len(msgs) != len(tt.problems) {
				t.Fatalf("problems %q, want %d matching %q", msgs, len(tt.problems), tt.problems)
			}
			for i, want := range tt.problems {
				if !strings.Contains(msgs[i], want) {
					t.Errorf("problem %q does not contain %q", msgs[i], want)
				}
				if tt.node != nil && !strings.HasPrefix(msgs[i], "node "+tt.node.Name+": ") {
					t.Errorf("problem %q does not name node %s", msgs[i], tt.node.Name)
				}
			}
		})
	}
}

func TestMeshPeers(t *testing.T) {
	template := Peer{Password: "mesh", HoldTime: 9 * time.Second, GracefulRestart: true}
	peer := func(addr string, asn uint32, desc string) Peer {
		p := template
		p.Address, p.ASN, p.Description = ip(addr), asn, desc
		return p
	}
	tests := []struct {
		name     string
		self     *corev1.Node
		nodes    []*corev1.Node
		template Peer
		want     []Peer
	}{
		{
			name: "one peer per other node and family, ASN from the annotation, sorted by address",
			self: dualStackNode(),
			nodes: []*corev1.Node{
				testNode("worker-3", nil, "192.0.2.13"),
				dualStackNode(),
				annotated(testNode("worker-2", nil, "2001:db8::12", "192.0.2.12"), AnnotationASN, "65010"),
				annotated(testNode("worker-4", nil, "192.0.2.14"), AnnotationASN, "bogus"),
				testNode("worker-5", nil), // no InternalIP yet
				nil,
			},
			template: template,
			want: []Peer{
				peer("192.0.2.12", 65010, "node worker-2"),
				peer("192.0.2.13", 65000, "node worker-3"),
				peer("192.0.2.14", 65000, "node worker-4"),
				peer("2001:db8::12", 65010, "node worker-2"),
			},
		},
		{
			name: "addresses of this node and addresses already taken are skipped; a set description is kept",
			self: dualStackNode(),
			nodes: []*corev1.Node{
				testNode("worker-9", nil, "192.0.2.20"),
				testNode("clone", nil, "192.0.2.11"), // misconfigured: this node's address
				testNode("worker-8", nil, "192.0.2.20", "2001:db8::20"),
			},
			template: Peer{Description: "mesh"},
			want: []Peer{
				{Address: ip("192.0.2.20"), ASN: 65000, Description: "mesh"},
				{Address: ip("2001:db8::20"), ASN: 65000, Description: "mesh"},
			},
		},
		{
			name:  "alone in the cluster",
			self:  dualStackNode(),
			nodes: []*corev1.Node{dualStackNode()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MeshPeers(tt.self, tt.nodes, 65000, tt.template)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Only Services with LB ingress IPs or externalIPs can change what a node
// announces, and only under externalTrafficPolicy Local do their endpoints
// matter: the agent skips the advertisement pass for every other change.
func TestServiceAdvertises(t *testing.T) {
	tests := []struct {
		name             string
		svc              *corev1.Service
		advertises       bool
		followsEndpoints bool
	}{
		{"nil", nil, false, false},
		{"plain ClusterIP", testService("ns", "a", corev1.ServiceTypeClusterIP), false, false},
		{"NodePort without IPs", testService("ns", "a", corev1.ServiceTypeNodePort, etpLocal), false, false},
		{"LoadBalancer not yet given an IP", testService("ns", "a", corev1.ServiceTypeLoadBalancer, etpLocal), false, false},
		{"LoadBalancer with an IP", testService("ns", "a", corev1.ServiceTypeLoadBalancer, ingress("203.0.113.1")), true, false},
		{"LoadBalancer with an IP, ETP Local", testService("ns", "a", corev1.ServiceTypeLoadBalancer, ingress("203.0.113.1"), etpLocal), true, true},
		{"ingress left over on a ClusterIP", testService("ns", "a", corev1.ServiceTypeClusterIP, ingress("203.0.113.1")), false, false},
		{"ClusterIP with externalIPs", testService("ns", "a", corev1.ServiceTypeClusterIP, externalIPs("203.0.113.2")), true, false},
		{"ClusterIP with externalIPs, ETP Local", testService("ns", "a", corev1.ServiceTypeClusterIP, externalIPs("203.0.113.2"), etpLocal), true, true},
		{"headless with externalIPs", testService("ns", "a", corev1.ServiceTypeClusterIP, externalIPs("203.0.113.2"), headless), false, false},
		{"ExternalName with externalIPs", testService("ns", "a", corev1.ServiceTypeExternalName, externalIPs("203.0.113.2")), false, false},
		{"another proxy's LoadBalancer", testService("ns", "a", corev1.ServiceTypeLoadBalancer, ingress("203.0.113.1"), etpLocal,
			func(s *corev1.Service) {
				s.Labels = map[string]string{"service.kubernetes.io/service-proxy-name": "other"}
			}), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ServiceAdvertises(tt.svc); got != tt.advertises {
				t.Errorf("ServiceAdvertises = %v, want %v", got, tt.advertises)
			}
			if got := AdvertisementsFollowEndpoints(tt.svc); got != tt.followsEndpoints {
				t.Errorf("AdvertisementsFollowEndpoints = %v, want %v", got, tt.followsEndpoints)
			}
		})
	}
}
