package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// compiled is a NetworkPolicy with its selectors parsed and every allow that
// does not depend on the target pod resolved.
type compiled struct {
	id       int // in name order, unique within one Compile
	key      string
	ns       string
	selector *selector // nil: every pod of ns
	// ingress and egress say which directions the policy isolates.
	ingress, egress bool
	// inFixed are the ingress allows with numbered (or no) ports; inNamed
	// the ingress ports named on the target, resolved per target pod.
	inFixed []Rule
	inNamed []namedIngress
	// out are the egress allows: named ports resolve per destination pod,
	// which does not depend on the pod the policy selects.
	out []Rule
}

type namedIngress struct {
	peers []netip.Prefix // nil: anywhere
	name  string
	proto corev1.Protocol
	index int
}

// portSpec is one validated NetworkPolicyPort.
type portSpec struct {
	proto corev1.Protocol
	ports PortRange // zero when name is set
	name  string
}

// peerSpec is one validated NetworkPolicyPeer.
type peerSpec struct {
	podSel, nsSel *selector      // either may be nil (not given)
	block         []netip.Prefix // ipBlock: cidr minus except
	isBlock       bool
	// key names what the peer selects, in the policy's namespace: equal
	// keys, equal peers (resolve.go caches by it).
	key string
}

// compiler compiles policies against one cluster, collecting problems.
type compiler struct {
	cluster  *cluster
	problems []Problem
	// Policies are written from templates: many repeat the same
	// selectors, blocks and peers. Each is resolved once per Compile.
	selectors *selectorCache
	blocks    map[string]parsedBlock        // valid ipBlocks
	peerKeys  map[string]string             // peerSpec keys, made once
	peerSets  map[string][]netip.Prefix     // prefixes by appendPeersKey
	named     map[string][]namedDestination // named egress ports, by rule
	portNames map[string][]string           // port names' validation errors
	buf       []byte                        // the cache key being looked up
}

func newCompiler(cl *cluster) *compiler {
	return &compiler{
		cluster:   cl,
		selectors: newSelectorCache(),
		blocks:    map[string]parsedBlock{},
		peerKeys:  map[string]string{},
		peerSets:  map[string][]netip.Prefix{},
		named:     map[string][]namedDestination{},
		portNames: map[string][]string{},
	}
}

func (c *compiler) problem(policy, field string, err error) {
	c.problems = append(c.problems, Problem{Policy: policy, Field: field, Err: err})
}

func (c *compiler) compile(np *networkingv1.NetworkPolicy) *compiled {
	p := &compiled{key: np.Namespace + "/" + np.Name, ns: np.Namespace}
	p.ingress, p.egress = c.policyTypes(p.key, &np.Spec)
	sel, err := c.selectors.parse(&np.Spec.PodSelector)
	if err != nil {
		// Which pods the author meant is unknown: isolate the whole
		// namespace with no allows rather than leave any pod open.
		c.problem(p.key, "spec.podSelector", fmt.Errorf("invalid selector: %w", err))
		p.selector = nil
		return p
	}
	p.selector = sel
	if p.ingress {
		for i, r := range np.Spec.Ingress {
			c.ingressRule(p, i, r)
		}
	}
	if p.egress {
		for i, r := range np.Spec.Egress {
			c.egressRule(p, i, r)
		}
	}
	return p
}

// policyTypes returns the directions spec covers. Unset, it is ingress
// always and egress when egress rules exist (networking/v1 NetworkPolicySpec).
// An unknown type is reported and covers both directions, so that a typo
// cannot leave open what the author meant to isolate.
func (c *compiler) policyTypes(key string, spec *networkingv1.NetworkPolicySpec) (ingress, egress bool) {
	if len(spec.PolicyTypes) == 0 {
		return true, len(spec.Egress) > 0
	}
	for i, t := range spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		default:
			c.problem(key, fmt.Sprintf("spec.policyTypes[%d]", i),
				fmt.Errorf("unsupported value %q: must be Ingress or Egress", t))
			ingress, egress = true, true
		}
	}
	return ingress, egress
}

func (c *compiler) ingressRule(p *compiled, i int, r networkingv1.NetworkPolicyIngressRule) {
	path := "spec.ingress[" + strconv.Itoa(i) + "]"
	ports, okPorts := c.ports(p.key, path, r.Ports)
	peers, okPeers := c.peers(p.key, p.ns, path+".from", r.From)
	if !okPorts || !okPeers {
		return
	}
	anywhere := len(r.From) == 0
	prefixes := c.prefixes(p.ns, peers)
	if !anywhere && len(prefixes) == 0 {
		return // the peers match nothing (yet): this rule allows nothing
	}
	if len(ports) == 0 {
		p.inFixed = append(p.inFixed, Rule{Peers: prefixes, Policy: p.key, Index: i})
		return
	}
	for _, ps := range ports {
		if ps.name != "" {
			p.inNamed = append(p.inNamed, namedIngress{peers: prefixes, name: ps.name, proto: ps.proto, index: i})
			continue
		}
		p.inFixed = append(p.inFixed, Rule{Peers: prefixes, Protocol: protocol(ps.proto), Ports: ps.ports, Policy: p.key, Index: i})
	}
}

func (c *compiler) egressRule(p *compiled, i int, r networkingv1.NetworkPolicyEgressRule) {
	path := "spec.egress[" + strconv.Itoa(i) + "]"
	ports, okPorts := c.ports(p.key, path, r.Ports)
	peers, okPeers := c.peers(p.key, p.ns, path+".to", r.To)
	if !okPorts || !okPeers {
		return
	}
	anywhere := len(r.To) == 0
	prefixes := c.prefixes(p.ns, peers)
	if len(ports) == 0 {
		if anywhere || len(prefixes) > 0 {
			p.out = append(p.out, Rule{Peers: prefixes, Policy: p.key, Index: i})
		}
		return
	}
	for _, ps := range ports {
		if ps.name == "" {
			if anywhere || len(prefixes) > 0 {
				p.out = append(p.out, Rule{Peers: prefixes, Protocol: protocol(ps.proto), Ports: ps.ports, Policy: p.key, Index: i})
			}
			continue
		}
		for _, d := range c.namedDestinations(p.ns, anywhere, peers, ps) {
			p.out = append(p.out, Rule{Peers: d.peers, Protocol: protocol(ps.proto),
				Ports: PortRange{d.port, d.port}, Policy: p.key, Index: i})
		}
	}
}

// ports validates a rule's ports as the API server does
// (pkg/apis/networking/validation ValidateNetworkPolicyPort).
func (c *compiler) ports(key, path string, in []networkingv1.NetworkPolicyPort) ([]portSpec, bool) {
	ok := true
	out := make([]portSpec, 0, len(in))
	for j, np := range in {
		ps, errs := parsePort(np, c.portNameErrors)
		for _, e := range errs {
			c.problem(key, fmt.Sprintf("%s.ports[%d]%s", path, j, e.field), e.err)
			ok = false
		}
		out = append(out, ps)
	}
	return out, ok
}

// portNameErrors is validation.IsValidPortName, once per name.
func (c *compiler) portNameErrors(name string) []string {
	msgs, ok := c.portNames[name]
	if !ok {
		msgs = validation.IsValidPortName(name)
		c.portNames[name] = msgs
	}
	return msgs
}

type fieldError struct {
	field string // relative to the port
	err   error
}

// parsePort validates np; nameErrors checks a port name
// (validation.IsValidPortName).
func parsePort(np networkingv1.NetworkPolicyPort, nameErrors func(string) []string) (portSpec, []fieldError) {
	var errs []fieldError
	ps := portSpec{proto: corev1.ProtocolTCP}
	if np.Protocol != nil {
		ps.proto = *np.Protocol
		if protocol(ps.proto) == AnyProtocol {
			errs = append(errs, fieldError{".protocol", fmt.Errorf("unsupported value %q: must be TCP, UDP or SCTP", ps.proto)})
		}
	}
	switch {
	case np.Port == nil:
		if np.EndPort != nil {
			errs = append(errs, fieldError{".endPort", errors.New("may not be specified when port is not specified")})
		}
	case np.Port.Type == intstr.String:
		if np.EndPort != nil {
			errs = append(errs, fieldError{".endPort", errors.New("may not be specified when port is a name")})
		}
		if msgs := nameErrors(np.Port.StrVal); len(msgs) > 0 {
			errs = append(errs, fieldError{".port", fmt.Errorf("invalid port name %q: %s", np.Port.StrVal, strings.Join(msgs, "; "))})
		}
		ps.name = np.Port.StrVal
	default:
		first := np.Port.IntVal
		if first < 1 || first > 65535 {
			errs = append(errs, fieldError{".port", fmt.Errorf("%d is out of range 1-65535", first)})
		}
		last := first
		if np.EndPort != nil {
			last = *np.EndPort
			if last < first {
				errs = append(errs, fieldError{".endPort", fmt.Errorf("%d is less than port %d", last, first)})
			} else if last > 65535 {
				errs = append(errs, fieldError{".endPort", fmt.Errorf("%d is out of range 1-65535", last)})
			}
		}
		if len(errs) == 0 {
			ps.ports = PortRange{uint16(first), uint16(last)}
		}
	}
	return ps, errs
}

func protocol(p corev1.Protocol) Protocol {
	switch p {
	case corev1.ProtocolTCP:
		return TCP
	case corev1.ProtocolUDP:
		return UDP
	case corev1.ProtocolSCTP:
		return SCTP
	}
	return AnyProtocol
}

// peers validates a rule's peers as the API server does
// (ValidateNetworkPolicyPeer, ValidateIPBlock) and parses their selectors.
func (c *compiler) peers(key, ns, path string, in []networkingv1.NetworkPolicyPeer) ([]peerSpec, bool) {
	ok := true
	out := make([]peerSpec, 0, len(in))
	for k, np := range in {
		var ps peerSpec
		bad := func(sub string, err error) {
			c.problem(key, path+"["+strconv.Itoa(k)+"]"+sub, err)
			ok = false
		}
		switch {
		case np.IPBlock != nil && (np.PodSelector != nil || np.NamespaceSelector != nil):
			bad("", errors.New("may not specify both ipBlock and another peer"))
			continue
		case np.IPBlock == nil && np.PodSelector == nil && np.NamespaceSelector == nil:
			bad("", errors.New("must specify a peer"))
			continue
		case np.IPBlock != nil:
			ps.isBlock = true
			ps.block, ps.key = c.block(np.IPBlock, func(sub string, err error) { bad(".ipBlock"+sub, err) })
			out = append(out, ps)
			continue
		}
		if np.PodSelector != nil {
			sel, err := c.selectors.parse(np.PodSelector)
			if err != nil {
				bad(".podSelector", fmt.Errorf("invalid selector: %w", err))
			}
			ps.podSel = sel
		}
		if np.NamespaceSelector != nil {
			sel, err := c.selectors.parse(np.NamespaceSelector)
			if err != nil {
				bad(".namespaceSelector", fmt.Errorf("invalid selector: %w", err))
			}
			ps.nsSel = sel
		}
		ps.key = c.selectorPeerKey(ns, ps.podSel, ps.nsSel)
		out = append(out, ps)
	}
	return out, ok
}

// parsedBlock is a valid ipBlock's prefixes and key.
type parsedBlock struct {
	prefixes []netip.Prefix
	key      string
}

// block returns an ipBlock's prefixes (parseBlock) and a key naming them.
// Valid blocks are parsed once per Compile; invalid ones again each time,
// so that each use reports its problems.
func (c *compiler) block(b *networkingv1.IPBlock, bad func(field string, err error)) ([]netip.Prefix, string) {
	k := appendString(append(c.buf[:0], "block"...), b.CIDR)
	for _, e := range b.Except {
		k = appendString(k, e)
	}
	c.buf = k
	if pb, ok := c.blocks[string(k)]; ok {
		return pb.prefixes, pb.key
	}
	key := string(k)
	valid := true
	ps := parseBlock(b, func(field string, err error) {
		valid = false
		bad(field, err)
	})
	if valid {
		c.blocks[key] = parsedBlock{ps, key}
	}
	return ps, key
}

// parseBlock returns cidr minus its excepts as disjoint prefixes. Each
// except must be a strict subset of cidr.
func parseBlock(b *networkingv1.IPBlock, bad func(field string, err error)) []netip.Prefix {
	if b.CIDR == "" {
		bad(".cidr", errors.New("required"))
		return nil
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		bad(".cidr", fmt.Errorf("invalid CIDR: %w", err))
		return nil
	}
	// Host bits are allowed (the field is a legacy CIDR) and ignored.
	cidr = cidr.Masked()
	except := make([]netip.Prefix, 0, len(b.Except))
	valid := true
	for m, s := range b.Except {
		field := fmt.Sprintf(".except[%d]", m)
		e, err := netip.ParsePrefix(s)
		if err != nil {
			bad(field, fmt.Errorf("invalid CIDR: %w", err))
			valid = false
			continue
		}
		e = e.Masked()
		if e.Addr().Is4() != cidr.Addr().Is4() || e.Bits() <= cidr.Bits() || !cidr.Contains(e.Addr()) {
			bad(field, fmt.Errorf("%s is not a strict subset of cidr %s", s, cidr))
			valid = false
			continue
		}
		except = append(except, e)
	}
	if !valid {
		return nil
	}
	return subtract(cidr, except)
}
