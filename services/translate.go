// Package services is the node's service proxy: it turns Kubernetes
// Services and their EndpointSlices into the NAT44-ED mappings that serve
// them, with the behaviour kube-proxy users rely on.
package services

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Config is what the node's configuration says about services.
type Config struct {
	// Node is this node's name: endpoints whose nodeName equals it are
	// local. Empty means no endpoint is local.
	Node string
	// NodePortAddresses are the addresses NodePorts are served on (the
	// caller chose them). IPv6 ones are skipped: NAT44 does not serve them.
	NodePortAddresses []netip.Addr
	// ExternalIPCIDRs bound spec.externalIPs: only those inside one of
	// them are programmed, so a user who may create Services cannot
	// capture traffic to arbitrary addresses (CVE-2020-8554).
	ExternalIPCIDRs []netip.Prefix
	// Zone is this node's topology.kubernetes.io/zone label, for the
	// EndpointSlices' zone hints; empty when it has none.
	Zone string
}

// FrontendKind says how a frontend's address came to the service.
type FrontendKind string

// Frontend kinds, in the order Output lists them.
const (
	ClusterIP    FrontendKind = "ClusterIP"
	NodePort     FrontendKind = "NodePort"
	LoadBalancer FrontendKind = "LoadBalancer"
	ExternalIP   FrontendKind = "ExternalIP"
)

// rank orders frontend kinds for Output.Frontends.
func (k FrontendKind) rank() int {
	switch k {
	case ClusterIP:
		return 0
	case NodePort:
		return 1
	case LoadBalancer:
		return 2
	case ExternalIP:
		return 3
	}
	return 4
}

// Frontend is one address:port/protocol a service answers on, for people
// (kube-vppctl show services).
type Frontend struct {
	Kind FrontendKind `json:"kind"`
	// Port is the service port's name, or its number when unnamed.
	Port     string           `json:"port"`
	Address  netip.AddrPort   `json:"address"`
	Protocol nat44ed.Protocol `json:"protocol"`
	// Backends are the mapping's locals; empty when there is no mapping.
	Backends []netip.AddrPort `json:"backends,omitempty"`
	// Note says why there is no mapping.
	Note string `json:"note,omitempty"`
	// SourceRanges are the only clients a LoadBalancer frontend admits
	// (spec.loadBalancerSourceRanges of its family); empty admits all.
	SourceRanges []netip.Prefix `json:"sourceRanges,omitempty"`
}

// HealthCheck is the healthCheckNodePort of an externalTrafficPolicy Local
// service and what it reports: the number of distinct ready endpoints on
// this node (kube-proxy answers 200 while it is non-zero, 503 otherwise).
type HealthCheck struct {
	Port           uint16 `json:"port"`
	LocalEndpoints int    `json:"localEndpoints"`
}

// Problem is a field of the Service (or of one of its EndpointSlices) that
// could not be programmed as asked; the rest of the Service still applies.
type Problem struct {
	// Field is the path of the field, such as "spec.ports[1].protocol".
	Field string
	// Reason is a short UpperCamelCase word, fit for a Kubernetes Event.
	Reason string
	Err    error
}

func (p Problem) Error() string { return p.Field + ": " + p.errText() }

func (p Problem) errText() string {
	if p.Err == nil {
		return p.Reason
	}
	return p.Err.Error()
}

func (p Problem) Unwrap() error { return p.Err }

// Problem reasons.
const (
	ReasonUnsupportedProtocol  = "UnsupportedProtocol"
	ReasonExternalIPNotAllowed = "ExternalIPNotAllowed"
	ReasonInvalidIP            = "InvalidIP"
	ReasonInvalidPort          = "InvalidPort"
	ReasonInvalidAffinity      = "InvalidSessionAffinity"
	ReasonInvalidSourceRange   = "InvalidLoadBalancerSourceRange"
	// ReasonFrontendConflict: two frontends of the service share an
	// address, port and protocol but want different mappings; VPP holds one
	// mapping per key, so the first (in Frontends order) wins.
	ReasonFrontendConflict = "FrontendConflict"
)

// Output is one Service's desired NAT44-ED state on this node.
//
// RejectIPs is how "a service with no endpoints rejects connections" is
// done: the caller routes each of these addresses to ICMP unreachable.
// NAT44-ED runs on the ip4-unicast arc before ip4-lookup, so a packet to a
// port that has a mapping is translated to a backend before the FIB ever
// sees the service address; only packets to ports without a mapping (no
// usable endpoints, or a protocol NAT44-ED cannot serve) reach the route
// and get an ICMP unreachable at once instead of a silent timeout.
type Output struct {
	// Service is "namespace/name"; set for every non-nil Service, even
	// one left alone.
	Service string
	// Mappings are sorted by Key (address, port, protocol), their locals
	// by address.
	Mappings []nat44ed.Mapping
	// Frontends are sorted by kind (ClusterIP, NodePort, LoadBalancer,
	// ExternalIP), then address, port and protocol.
	Frontends []Frontend
	// RejectIPs are the service's IPv4 cluster IPs, load-balancer ingress
	// IPs (not ipMode Proxy) and allowed external IPs, whether programmed
	// or not: sorted, without duplicates.
	RejectIPs []netip.Addr
	// Firewalls are the frontends whose packets are dropped before any
	// translation unless they come from their Sources, in frontend order.
	Firewalls []Firewall
	// HealthCheck is nil unless externalTrafficPolicy is Local and the
	// Service has a healthCheckNodePort.
	HealthCheck *HealthCheck
	Problems    []Problem
}

// defaultAffinityTimeout is Kubernetes' default
// sessionAffinityConfig.clientIP.timeoutSeconds (3 hours).
const defaultAffinityTimeout = 10800

// maxAffinityTimeout is the largest timeout the API server accepts (1 day).
const maxAffinityTimeout = 86400

// ServiceTag is the tag of a service port's mappings. The affinity timeout
// is part of it because VPP's load-balanced mapping dump does not report
// affinity: a changed timeout changes the tag, so the driver replaces it.
func ServiceTag(namespace, name, port string, proto nat44ed.Protocol, affinity uint32) string {
	k := namespace + "/" + name + ":" + port + "/" + proto.String()
	if affinity != 0 {
		k += ":aff" + strconv.FormatUint(uint64(affinity), 10)
	}
	return tag.New(nat44ed.KindService, k)
}

// Translate computes one Service's desired NAT44-ED state from the Service
// and its EndpointSlices, as kube-proxy would serve it. It is pure, costs
// time in proportion to this service's size, and never panics: bad fields
// become Problems, and the rest still translates. Slices of other services,
// other namespaces or other address types, and nil ones, are ignored.
func Translate(cfg Config, svc *corev1.Service, slices []*discoveryv1.EndpointSlice) Output {
	if svc == nil {
		return Output{}
	}
	t := &translation{
		cfg: cfg,
		svc: svc,
		out: Output{Service: svc.Namespace + "/" + svc.Name},
	}
	if !proxied(svc) {
		return t.out
	}
	t.translate(slices)
	return t.out
}

// LabelServiceProxyName marks a Service another proxy implements
// (KEP-2447): kube-proxy watches only Services without it, whatever its
// value, and so does the agent.
const LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// proxied reports whether kube-proxy would program the service at all:
// ExternalName services are DNS-only, headless ones have no virtual IP,
// and a service-proxy-name label gives the Service to another proxy.
func proxied(svc *corev1.Service) bool {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	if _, other := svc.Labels[LabelServiceProxyName]; other {
		return false
	}
	ip := svc.Spec.ClusterIP
	if len(svc.Spec.ClusterIPs) > 0 {
		ip = svc.Spec.ClusterIPs[0]
	}
	return ip != "" && ip != corev1.ClusterIPNone
}

// translation holds one Translate call's work in progress.
type translation struct {
	cfg Config
	svc *corev1.Service
	out Output
	// candidates are the frontends with the mapping each wants, before
	// frontends that collide on one key are settled.
	candidates []candidate
	affinity   uint32 // ClientIP timeout, 0 without session affinity
	ranges     sourceRanges
}

func (t *translation) problem(field, reason string, err error) {
	t.out.Problems = append(t.out.Problems, Problem{Field: field, Reason: reason, Err: err})
}

func (t *translation) translate(in []*discoveryv1.EndpointSlice) {
	vips := t.serviceAddresses()
	t.affinity = t.affinityTimeout()
	t.ranges = t.sourceRanges()
	eps := readSlices(t.svc, t.cfg.Node, in, t.problem)

	for i := range t.svc.Spec.Ports {
		sp, ok := t.servicePort(i)
		if !ok {
			continue
		}
		sets := categorize(eps.backends(sp.name, sp.k8sProto), t.cfg.Node, t.cfg.Zone)
		for _, v := range vips {
			t.frontend(v.kind, v.addr, v.field, sp, sets)
		}
		if sp.nodePort != 0 {
			for _, a := range t.cfg.NodePortAddresses {
				if a.Is4() {
					t.frontend(NodePort, a, fmt.Sprintf("spec.ports[%d].nodePort", i), sp, sets)
				}
			}
		}
	}

	if t.externalLocal() && t.svc.Spec.HealthCheckNodePort != 0 {
		p := t.svc.Spec.HealthCheckNodePort
		if p < 1 || p > 65535 {
			t.problem("spec.healthCheckNodePort", ReasonInvalidPort,
				fmt.Errorf("healthCheckNodePort %d is outside 1..65535", p))
		} else {
			t.out.HealthCheck = &HealthCheck{Port: uint16(p), LocalEndpoints: eps.localReady()}
		}
	}
	t.settle()
	t.out.Firewalls = t.firewalls()
	slices.SortFunc(t.out.Mappings, func(a, b nat44ed.Mapping) int {
		return cmp.Or(a.External.Compare(b.External), cmp.Compare(a.Protocol, b.Protocol))
	})
	slices.SortFunc(t.out.RejectIPs, netip.Addr.Compare)
	t.out.RejectIPs = slices.Compact(t.out.RejectIPs)
}

// servicePort is one usable entry of spec.ports.
type servicePort struct {
	name     string // the port's name, "" when unnamed
	label    string // name, or the number when unnamed
	k8sProto corev1.Protocol
	proto    nat44ed.Protocol
	port     uint16
	nodePort uint16 // 0 for none
}

// servicePort checks spec.ports[i], reporting what cannot be served.
func (t *translation) servicePort(i int) (servicePort, bool) {
	p := t.svc.Spec.Ports[i]
	field := fmt.Sprintf("spec.ports[%d]", i)
	sp := servicePort{name: p.Name, k8sProto: p.Protocol}
	if sp.k8sProto == "" {
		sp.k8sProto = corev1.ProtocolTCP // the API's default
	}
	switch sp.k8sProto {
	case corev1.ProtocolTCP:
		sp.proto = nat44ed.TCP
	case corev1.ProtocolUDP:
		sp.proto = nat44ed.UDP
	default:
		t.problem(field+".protocol", ReasonUnsupportedProtocol,
			fmt.Errorf("port %s protocol %s: NAT44-ED serves TCP and UDP only", portLabel(p), p.Protocol))
		return sp, false
	}
	if p.Port < 1 || p.Port > 65535 {
		t.problem(field+".port", ReasonInvalidPort, fmt.Errorf("port %d is outside 1..65535", p.Port))
		return sp, false
	}
	sp.port = uint16(p.Port)
	sp.label = portLabel(p)
	nodePorts := t.svc.Spec.Type == corev1.ServiceTypeNodePort || t.svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	switch {
	case !nodePorts || p.NodePort == 0:
	case p.NodePort < 1 || p.NodePort > 65535:
		t.problem(field+".nodePort", ReasonInvalidPort, fmt.Errorf("nodePort %d is outside 1..65535", p.NodePort))
	default:
		sp.nodePort = uint16(p.NodePort)
	}
	return sp, true
}

func portLabel(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}

// affinityTimeout is the ClientIP affinity timeout, 0 without affinity.
func (t *translation) affinityTimeout() uint32 {
	if t.svc.Spec.SessionAffinity != corev1.ServiceAffinityClientIP {
		return 0
	}
	c := t.svc.Spec.SessionAffinityConfig
	if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
		return defaultAffinityTimeout
	}
	s := *c.ClientIP.TimeoutSeconds
	if s < 1 || s > maxAffinityTimeout {
		t.problem("spec.sessionAffinityConfig.clientIP.timeoutSeconds", ReasonInvalidAffinity,
			fmt.Errorf("timeoutSeconds %d is outside 1..%d; using %d", s, maxAffinityTimeout, defaultAffinityTimeout))
		return defaultAffinityTimeout
	}
	return uint32(s)
}

func (t *translation) externalLocal() bool {
	return t.svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

func (t *translation) internalLocal() bool {
	p := t.svc.Spec.InternalTrafficPolicy
	return p != nil && *p == corev1.ServiceInternalTrafficPolicyLocal
}
