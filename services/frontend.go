package services

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// Notes of frontends without a mapping.
const (
	noteIPv6 = "IPv6: NAT44 does not serve it"
	// Addresses in RejectIPs are routed to ICMP unreachable; a node
	// address is not, so its packets are simply not forwarded to a pod.
	resultRejected = "rejected (ICMP unreachable)"
	resultDropped  = "dropped"
	// A firewall that cannot be read fails closed.
	noteNoSourceRange = "no usable loadBalancerSourceRange: " + resultRejected
)

// vip is a service address every service port is served on.
type vip struct {
	kind  FrontendKind
	addr  netip.Addr
	field string // where it came from, for Problems
}

// candidate is a frontend with the mapping it wants, if any.
type candidate struct {
	Frontend
	mapping *nat44ed.Mapping
	field   string
	// dropped: the traffic policy is Local and every endpoint is on
	// another node; kube-proxy drops such traffic rather than reject it.
	dropped bool
}

// serviceAddresses parses the cluster IPs, load-balancer ingress IPs and
// allowed external IPs of the service, reporting the ones that cannot be
// used, and records the IPv4 ones as RejectIPs.
func (t *translation) serviceAddresses() []vip {
	var vips []vip
	add := func(kind FrontendKind, s, field string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			t.problem(field, ReasonInvalidIP, fmt.Errorf("%q is not an IP address", s))
			return
		}
		vips = append(vips, vip{kind, a, field})
	}

	spec := t.svc.Spec
	if len(spec.ClusterIPs) > 0 {
		for i, s := range spec.ClusterIPs {
			add(ClusterIP, s, fmt.Sprintf("spec.clusterIPs[%d]", i))
		}
	} else {
		add(ClusterIP, spec.ClusterIP, "spec.clusterIP")
	}

	for i, ing := range t.svc.Status.LoadBalancer.Ingress {
		// A hostname-only ingress is resolved by clients, not by us; with
		// ipMode Proxy (or any mode but VIP) the load balancer proxies to
		// the node ports itself, so kube-proxy leaves the IP alone too.
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP) {
			continue
		}
		add(LoadBalancer, ing.IP, fmt.Sprintf("status.loadBalancer.ingress[%d].ip", i))
	}

	for i, s := range spec.ExternalIPs {
		field := fmt.Sprintf("spec.externalIPs[%d]", i)
		a, err := netip.ParseAddr(s)
		if err != nil {
			t.problem(field, ReasonInvalidIP, fmt.Errorf("%q is not an IP address", s))
			continue
		}
		if !t.externalIPAllowed(a) {
			t.problem(field, ReasonExternalIPNotAllowed, fmt.Errorf(
				"externalIP %s is not inside the allowed CIDRs (%s); not programmed", a, t.allowedCIDRs()))
			continue
		}
		vips = append(vips, vip{ExternalIP, a, field})
	}

	for _, v := range vips {
		if v.addr.Is4() {
			t.out.RejectIPs = append(t.out.RejectIPs, v.addr)
		}
	}
	return vips
}

func (t *translation) externalIPAllowed(a netip.Addr) bool {
	for _, p := range t.cfg.ExternalIPCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (t *translation) allowedCIDRs() string {
	if len(t.cfg.ExternalIPCIDRs) == 0 {
		return "none configured"
	}
	s := make([]string, len(t.cfg.ExternalIPCIDRs))
	for i, p := range t.cfg.ExternalIPCIDRs {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// frontend adds the frontend of service port sp on addr, with the mapping
// to the endpoints its traffic policy allows.
func (t *translation) frontend(kind FrontendKind, addr netip.Addr, field string, sp servicePort, sets endpointSets) {
	port := sp.port
	if kind == NodePort {
		port = sp.nodePort
	}
	c := candidate{
		Frontend: Frontend{Kind: kind, Port: sp.label, Address: netip.AddrPortFrom(addr, port), Protocol: sp.proto},
		field:    field,
	}
	if !addr.Is4() {
		c.Note = noteIPv6
		t.candidates = append(t.candidates, c)
		return
	}

	// The traffic policies choose between cluster-wide and node-local
	// endpoints: internal for the cluster IP, external for the rest.
	local := t.externalLocal()
	if kind == ClusterIP {
		local = t.internalLocal()
	}
	backends := sets.cluster
	if local {
		backends = sets.local
	}
	if len(backends) == 0 {
		c.Note = noBackendsNote(kind, local, sets.anywhere)
		c.dropped = local && sets.anywhere
		if !c.dropped || kind == ClusterIP {
			t.candidates = append(t.candidates, c)
			return
		}
		// externalTrafficPolicy Local, every endpoint elsewhere: kube-proxy
		// drops outside clients (an outside-only Firewall) but sends pods
		// on to any endpoint, as to the cluster IP. The mapping serves
		// them; the firewall keeps everyone else out before NAT.
		backends = sets.cluster
	}
	if kind == LoadBalancer {
		if t.ranges.unusable {
			c.Note = noteNoSourceRange
			t.candidates = append(t.candidates, c)
			return
		}
		c.SourceRanges = t.ranges.v4
	}

	m := nat44ed.Mapping{External: c.Address, Protocol: sp.proto, Locals: make([]nat44ed.Local, len(backends))}
	for i, b := range backends {
		m.Locals[i] = nat44ed.Local{Addr: b, Probability: 1}
	}
	// VPP keeps affinity on load-balanced mappings only, which need two
	// locals; with one, every client reaches it anyway.
	if len(backends) >= 2 {
		m.Affinity = t.affinity
	}
	m.Tag = ServiceTag(t.svc.Namespace, t.svc.Name, sp.label, sp.proto, m.Affinity)
	if kind == ClusterIP || local {
		// The client is kept; only a pod reaching itself through the
		// service is rewritten, so its reply comes back through VPP.
		m.SelfTwiceNAT = true
	} else {
		// kube-proxy's masquerade: the chosen backend may be on another
		// node and must reply through this one.
		m.TwiceNAT = true
	}
	c.Backends = slices.Clone(backends)
	c.mapping = &m
	t.candidates = append(t.candidates, c)
}

// noBackendsNote says what becomes of a frontend's traffic without
// backends: as kube-proxy does, rejected when the service has no endpoint
// at all, dropped when its traffic policy keeps it on this node and the
// endpoints are elsewhere (a Firewall). A node address is never rejected
// (see RejectIPs).
func noBackendsNote(kind FrontendKind, local, anyEndpoints bool) string {
	switch {
	case !anyEndpoints || !local:
		if kind == NodePort {
			return "no endpoints: " + resultDropped
		}
		return "no endpoints: " + resultRejected
	case kind == ClusterIP:
		return WhyNoLocalITP + ": " + resultDropped
	}
	return WhyNoLocalETP + ": outside clients " + resultDropped + ", pods served by every endpoint"
}

func frontendOrder(a, b Frontend) int {
	return cmp.Or(cmp.Compare(a.Kind.rank(), b.Kind.rank()),
		a.Address.Compare(b.Address), cmp.Compare(a.Protocol, b.Protocol))
}

// settle sorts the frontends and keeps one mapping per key. Frontends that
// want the same mapping share it; one that wants a different mapping on a
// key already taken (an external IP equal to the cluster IP, say) is
// refused, since VPP holds one mapping per address, port and protocol.
func (t *translation) settle() {
	slices.SortStableFunc(t.candidates, func(a, b candidate) int { return frontendOrder(a.Frontend, b.Frontend) })
	holder := map[nat44ed.Key]int{} // key -> index in candidates
	for i, c := range t.candidates {
		f := c.Frontend
		if c.mapping != nil {
			k := c.mapping.Key()
			if j, taken := holder[k]; !taken {
				holder[k] = i
				t.out.Mappings = append(t.out.Mappings, *c.mapping)
			} else if h := t.candidates[j]; !sameMapping(*h.mapping, *c.mapping) {
				f.Backends = nil
				f.Note = fmt.Sprintf("%s is mapped for the %s frontend of port %s: not programmed", k, h.Kind, h.Port)
				t.problem(c.field, ReasonFrontendConflict, fmt.Errorf(
					"%s frontend %s of port %s collides with the %s frontend of port %s, which maps it differently; not programmed",
					c.Kind, k, c.Port, h.Kind, h.Port))
			}
		}
		t.out.Frontends = append(t.out.Frontends, f)
	}
}

func sameMapping(a, b nat44ed.Mapping) bool {
	return a.Tag == b.Tag && a.Key() == b.Key() && a.Affinity == b.Affinity &&
		a.TwiceNAT == b.TwiceNAT && a.SelfTwiceNAT == b.SelfTwiceNAT && slices.Equal(a.Locals, b.Locals)
}
