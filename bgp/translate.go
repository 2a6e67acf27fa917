package bgp

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Reasons an Advertisement carries. When several sources give the same
// prefix, the earliest reason in this list is the one kept.
const (
	ReasonPodCIDR      = "pod-cidr"
	ReasonServiceCIDR  = "service-cidr"
	ReasonLoadBalancer = "load-balancer"
	ReasonExternalIP   = "external-ip"
)

func reasonRank(r string) int {
	switch r {
	case ReasonPodCIDR:
		return 0
	case ReasonServiceCIDR:
		return 1
	case ReasonLoadBalancer:
		return 2
	default:
		return 3
	}
}

// Node annotations that override the configured identity of one node's
// speaker, for racks where nodes sit in different ASes.
const (
	AnnotationASN      = "bgp.kube-vpp.io/asn"
	AnnotationRouterID = "bgp.kube-vpp.io/router-id"
)

// Problem is one piece of input that could not be turned into BGP state:
// the rest is advertised without it.
type Problem struct {
	Object string // "service default/web", "node worker-1"
	Field  string // "status.loadBalancer.ingress[0].ip"; empty when about the whole object
	Err    error
}

func (p Problem) Error() string {
	if p.Field == "" {
		return fmt.Sprintf("%s: %v", p.Object, p.Err)
	}
	return fmt.Sprintf("%s: %s: %v", p.Object, p.Field, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// AdvertiseInput is what Advertisements needs to know about the cluster and
// the configuration.
type AdvertiseInput struct {
	Node            *corev1.Node // this node
	Services        []*corev1.Service
	EndpointSlices  []*discoveryv1.EndpointSlice
	ServiceCIDRs    []netip.Prefix
	ExternalIPCIDRs []netip.Prefix // the only ranges Service externalIPs may come from
	// NextHopV4 and NextHopV6 are the next hops announced; an invalid Addr
	// means this node's InternalIP of that family.
	NextHopV4, NextHopV6 netip.Addr

	// What to advertise.
	PodCIDRs          bool
	ServiceCIDRRanges bool
	LoadBalancerIPs   bool
	ExternalIPs       bool
}

// Advertisements returns the prefixes this node announces, sorted by
// prefix, each once, and the problems that kept others out.
//
// Load-balancer ingress IPs and externalIPs of a Service with
// externalTrafficPolicy Local are announced only by nodes with a ready local
// endpoint of the IP's family, so that the ToR sends them only where
// kube-proxy semantics can serve them without a second hop.
func Advertisements(in AdvertiseInput) ([]Advertisement, []Problem) {
	a := advertiser{out: make(map[netip.Prefix]Advertisement)}
	node := "node"
	var nodeName string
	if in.Node == nil {
		a.problem(node, "", errors.New("this node's Node object is not known yet"))
	} else {
		nodeName = in.Node.Name
		node = "node " + nodeName
		v4, v6, problems := internalIPs(in.Node)
		a.problems = append(a.problems, problems...)
		a.nodeHop = [2]netip.Addr{v4, v6}
	}
	a.setNextHops(in.NextHopV4, in.NextHopV6)

	if in.PodCIDRs && in.Node != nil {
		a.podCIDRs(node, in.Node.Spec)
	}
	if in.ServiceCIDRRanges {
		for _, p := range in.ServiceCIDRs {
			if p.IsValid() {
				a.add("service CIDR "+p.String(), "", p.Masked(), ReasonServiceCIDR)
			}
		}
	}
	if in.LoadBalancerIPs || in.ExternalIPs {
		ready := localReady(in.EndpointSlices, nodeName)
		for _, svc := range sortedServices(in.Services) {
			a.service(in, svc, ready[svcKey{svc.Namespace, svc.Name}])
		}
	}

	ads := make([]Advertisement, 0, len(a.out))
	for _, ad := range a.out {
		ads = append(ads, ad)
	}
	slices.SortFunc(ads, func(x, y Advertisement) int { return comparePrefix(x.Prefix, y.Prefix) })
	return ads, a.problems
}

// advertiser collects the advertisements of one Advertisements call.
type advertiser struct {
	nodeHop  [2]netip.Addr // this node's InternalIP per family (0: IPv4, 1: IPv6)
	nextHop  [2]netip.Addr
	out      map[netip.Prefix]Advertisement
	problems []Problem
}

func (a *advertiser) problem(object, field string, err error) {
	a.problems = append(a.problems, Problem{Object: object, Field: field, Err: err})
}

// setNextHops takes each configured next hop of the right family, and the
// node's address otherwise.
func (a *advertiser) setNextHops(v4, v6 netip.Addr) {
	a.nextHop = a.nodeHop
	for fam, nh := range [2]netip.Addr{v4, v6} {
		switch {
		case !nh.IsValid():
		case family(nh) != fam:
			a.problem("configuration", "", fmt.Errorf("next hop %s given for IPv%d is of the wrong family; using the node's address", nh, 4+2*fam))
		default:
			a.nextHop[fam] = nh
		}
	}
}

// add records prefix unless a source with an earlier reason has it already.
func (a *advertiser) add(object, field string, prefix netip.Prefix, reason string) {
	fam := family(prefix.Addr())
	nh := a.nextHop[fam]
	if !nh.IsValid() {
		v := 4 + 2*fam
		a.problem(object, field, fmt.Errorf("%s not advertised: no IPv%d next hop (none configured and the node has no IPv%d InternalIP)", prefix, v, v))
		return
	}
	if old, ok := a.out[prefix]; ok && reasonRank(old.Reason) <= reasonRank(reason) {
		return
	}
	a.out[prefix] = Advertisement{Prefix: prefix, NextHop: nh, Reason: reason}
}

// podCIDRs adds the node's pod ranges: spec.podCIDRs, or the older single
// spec.podCIDR when the list is empty.
func (a *advertiser) podCIDRs(node string, spec corev1.NodeSpec) {
	cidrs, field := spec.PodCIDRs, "spec.podCIDRs"
	if len(cidrs) == 0 && spec.PodCIDR != "" {
		cidrs, field = []string{spec.PodCIDR}, "spec.podCIDR"
	}
	for i, s := range cidrs {
		f := field
		if field == "spec.podCIDRs" {
			f = fmt.Sprintf("%s[%d]", field, i)
		}
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a.problem(node, f, fmt.Errorf("%q is not a CIDR", s))
			continue
		}
		// Kubernetes reads a CIDR with host bits set as its network.
		a.add(node, f, p.Masked(), ReasonPodCIDR)
	}
}

// service adds svc's load-balancer ingress IPs and allowed externalIPs.
// ready says, per family, whether this node has a ready endpoint of it.
func (a *advertiser) service(in AdvertiseInput, svc *corev1.Service, ready [2]bool) {
	if !ServiceAdvertises(svc) {
		return
	}
	obj := fmt.Sprintf("service %s/%s", svc.Namespace, svc.Name)
	local := externalPolicyLocal(svc)

	if in.LoadBalancerIPs && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for i, ing := range svc.Status.LoadBalancer.Ingress {
			// A hostname-only ingress has no IP to announce; with ipMode
			// Proxy the IP belongs to an external proxy that sends traffic
			// to node or pod IPs, so kube-proxy does not serve it either.
			if ing.IP == "" || ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
				continue
			}
			field := fmt.Sprintf("status.loadBalancer.ingress[%d].ip", i)
			ip, err := parseIP(ing.IP)
			if err != nil {
				a.problem(obj, field, err)
				continue
			}
			if local && !ready[family(ip)] {
				continue
			}
			a.add(obj, field, netip.PrefixFrom(ip, ip.BitLen()), ReasonLoadBalancer)
		}
	}

	if in.ExternalIPs {
		for i, s := range svc.Spec.ExternalIPs {
			field := fmt.Sprintf("spec.externalIPs[%d]", i)
			ip, err := parseIP(s)
			if err != nil {
				a.problem(obj, field, err)
				continue
			}
			if !slices.ContainsFunc(in.ExternalIPCIDRs, func(p netip.Prefix) bool { return p.Contains(ip) }) {
				a.problem(obj, field, fmt.Errorf("%s is outside the CIDRs allowed for externalIPs (%s); not advertised", ip, prefixList(in.ExternalIPCIDRs)))
				continue
			}
			if local && !ready[family(ip)] {
				continue
			}
			a.add(obj, field, netip.PrefixFrom(ip, ip.BitLen()), ReasonExternalIP)
		}
	}
}

// labelServiceProxyName gives a Service to another proxy (KEP-2447);
// services.LabelServiceProxyName is the same label.
const labelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// ServiceAdvertises reports whether svc can give advertisements: it has
// load-balancer ingress IPs or externalIPs. Changes to other Services
// cannot change what a node announces.
func ServiceAdvertises(svc *corev1.Service) bool {
	// kube-proxy serves neither ExternalName nor headless Services, nor
	// those another proxy implements: no traffic to attract.
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return false
	}
	if _, other := svc.Labels[labelServiceProxyName]; other {
		return false
	}
	return len(svc.Spec.ExternalIPs) > 0 ||
		svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) > 0
}

// AdvertisementsFollowEndpoints reports whether what a node announces for
// svc depends on its endpoints: only under externalTrafficPolicy Local,
// where a node announces the IPs while it has a ready local endpoint.
func AdvertisementsFollowEndpoints(svc *corev1.Service) bool {
	return ServiceAdvertises(svc) && externalPolicyLocal(svc)
}

// externalPolicyLocal reports whether traffic from outside must stay on
// the node it arrives at, as kube-proxy decides it (ExternalPolicyLocal in
// k8s.io/kubernetes pkg/apis/core/v1/helper): the Service must be
// externally accessible and have externalTrafficPolicy Local.
func externalPolicyLocal(svc *corev1.Service) bool {
	accessible := false
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		accessible = true
	case corev1.ServiceTypeClusterIP, "":
		accessible = len(svc.Spec.ExternalIPs) > 0
	}
	return accessible && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

type svcKey struct{ namespace, name string }

// localReady indexes, per Service and address family, whether nodeName has
// at least one ready endpoint. Ready unset counts as ready, as the
// discovery API defines; terminating endpoints are not ready.
func localReady(eps []*discoveryv1.EndpointSlice, nodeName string) map[svcKey][2]bool {
	out := make(map[svcKey][2]bool)
	if nodeName == "" {
		return out
	}
	for _, es := range eps {
		if es == nil {
			continue
		}
		name := es.Labels[discoveryv1.LabelServiceName]
		var fam int
		switch es.AddressType {
		case discoveryv1.AddressTypeIPv4:
			fam = 0
		case discoveryv1.AddressTypeIPv6:
			fam = 1
		default:
			continue // FQDN slices are not proxied
		}
		if name == "" {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil || *ep.NodeName != nodeName {
				continue
			}
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			k := svcKey{es.Namespace, name}
			r := out[k]
			r[fam] = true
			out[k] = r
		}
	}
	return out
}

// sortedServices returns the non-nil services ordered by namespace/name,
// so that problems and the kept reason do not depend on input order.
func sortedServices(in []*corev1.Service) []*corev1.Service {
	out := make([]*corev1.Service, 0, len(in))
	for _, s := range in {
		if s != nil {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(x, y *corev1.Service) int {
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	return out
}

// LocalSpeaker returns the AS number and router ID this node's speaker uses:
// the node's annotations override the configured values, and the router ID
// falls back to the node's IPv4 InternalIP. An invalid annotation is a
// Problem and leaves the configured value in place; a missing ASN or router
// ID is a Problem and returns 0 or an invalid Addr.
func LocalSpeaker(node *corev1.Node, asn uint32, routerID netip.Addr) (uint32, netip.Addr, []Problem) {
	var problems []Problem
	obj := "node"
	if node != nil {
		obj = "node " + node.Name
	}
	if routerID.IsValid() && !validRouterID(routerID) {
		problems = append(problems, Problem{Object: obj, Err: fmt.Errorf("configured router ID %s is not a non-zero IPv4 address; ignoring it", routerID)})
		routerID = netip.Addr{}
	}

	if node != nil {
		if s, ok := node.Annotations[AnnotationASN]; ok {
			if n, err := parseASN(s); err != nil {
				problems = append(problems, Problem{Object: obj, Field: annotationField(AnnotationASN), Err: err})
			} else {
				asn = n
			}
		}
		if s, ok := node.Annotations[AnnotationRouterID]; ok {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !validRouterID(a) {
				problems = append(problems, Problem{Object: obj, Field: annotationField(AnnotationRouterID),
					Err: fmt.Errorf("%q is not a non-zero IPv4 address", s)})
			} else {
				routerID = a
			}
		}
		if !routerID.IsValid() {
			v4, _, ps := internalIPs(node)
			problems = append(problems, ps...)
			routerID = v4
		}
	}

	if asn == 0 {
		problems = append(problems, Problem{Object: obj, Err: fmt.Errorf("no AS number: configure one or annotate the node with %s", AnnotationASN)})
	}
	if !routerID.IsValid() {
		problems = append(problems, Problem{Object: obj, Err: fmt.Errorf(
			"no router ID: configure one, annotate the node with %s, or give it an IPv4 InternalIP", AnnotationRouterID)})
	}
	return asn, routerID, problems
}

// MeshPeers returns the iBGP full mesh seen from self: one peer per
// InternalIP (the first of each family) of every other node, with the
// node's own ASN annotation or else asn, and the other fields from
// template. It skips addresses self has and addresses two nodes share. The
// peers are sorted by address.
func MeshPeers(self *corev1.Node, nodes []*corev1.Node, asn uint32, template Peer) []Peer {
	var selfName string
	skip := make(map[netip.Addr]bool)
	if self != nil {
		selfName = self.Name
		v4, v6, _ := internalIPs(self)
		skip[v4], skip[v6] = true, true
	}
	others := make([]*corev1.Node, 0, len(nodes))
	for _, n := range nodes {
		if n != nil && n.Name != selfName {
			others = append(others, n)
		}
	}
	slices.SortFunc(others, func(x, y *corev1.Node) int { return cmp.Compare(x.Name, y.Name) })

	var out []Peer
	for _, n := range others {
		peerASN := asn
		if s, ok := n.Annotations[AnnotationASN]; ok {
			if v, err := parseASN(s); err == nil {
				peerASN = v
			}
		}
		if peerASN == 0 {
			continue
		}
		v4, v6, _ := internalIPs(n)
		for _, addr := range []netip.Addr{v4, v6} {
			if !addr.IsValid() || skip[addr] {
				continue
			}
			skip[addr] = true
			p := template
			p.Address, p.ASN = addr, peerASN
			if p.Description == "" {
				p.Description = "node " + n.Name
			}
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(x, y Peer) int { return x.Address.Compare(y.Address) })
	return out
}

// internalIPs returns the node's first InternalIP of each family (invalid
// when it has none) and a Problem per InternalIP that does not parse.
func internalIPs(node *corev1.Node) (v4, v6 netip.Addr, problems []Problem) {
	for i, na := range node.Status.Addresses {
		if na.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := parseIP(na.Address)
		if err != nil {
			problems = append(problems, Problem{Object: "node " + node.Name, Field: fmt.Sprintf("status.addresses[%d].address", i), Err: err})
			continue
		}
		switch {
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && !v6.IsValid():
			v6 = ip
		}
	}
	return v4, v6, problems
}

// parseIP parses an IP address as Kubernetes writes it in Service and Node
// fields. An IPv4-mapped IPv6 address counts as IPv4, as Kubernetes' own
// parser takes it.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return ip.Unmap(), nil
}

func parseASN(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not an AS number from 1 to 4294967295", s)
	}
	return uint32(n), nil
}

// validRouterID: RFC 6286 makes the BGP identifier a non-zero 32-bit value.
func validRouterID(a netip.Addr) bool { return a.Is4() && !a.IsUnspecified() }

func annotationField(key string) string { return "metadata.annotations[" + key + "]" }

// family is 0 for IPv4 and 1 for IPv6, the index into per-family arrays.
func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

func comparePrefix(x, y netip.Prefix) int {
	return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
}

func prefixList(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none allowed"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
