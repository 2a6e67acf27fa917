package policy

import (
	"net/netip"
	"slices"
	"strings"
)

// Resolving peers to addresses. Policies made from one template repeat the
// same peers in every namespace (a team's namespaces, the DNS pods, an
// ipBlock), so what a list of peers resolves to is kept by its key for the
// rest of the Compile, and shared by the rules using it (Rule.Peers is
// read-only).

// selectorPeerKey names what a selector peer selects from namespace ns.
func (c *compiler) selectorPeerKey(ns string, podSel, nsSel *selector) string {
	b := c.buf[:0]
	if nsSel == nil {
		b = appendString(append(b, "pods"...), ns) // the policy's own namespace
	} else {
		b = appendString(append(b, "namespaces"...), nsSel.key)
	}
	if podSel == nil {
		b = appendString(b, "*")
	} else {
		b = appendString(b, podSel.key)
	}
	c.buf = b
	if k, ok := c.peerKeys[string(b)]; ok {
		return k
	}
	k := string(b)
	c.peerKeys[k] = k
	return k
}

// appendPeersKey appends the key of a list of peers, the keys of its
// members in order, to b.
func appendPeersKey(b []byte, peers []peerSpec) []byte {
	for _, ps := range peers {
		b = appendString(b, ps.key)
	}
	return b
}

// prefixes resolves peers to the union of their addresses in canonical form.
func (c *compiler) prefixes(ns string, peers []peerSpec) []netip.Prefix {
	c.buf = appendPeersKey(c.buf[:0], peers)
	if out, ok := c.peerSets[string(c.buf)]; ok {
		return out
	}
	key := string(c.buf)
	var out []netip.Prefix
	for _, ps := range peers {
		if ps.isBlock {
			out = append(out, ps.block...)
			continue
		}
		for _, p := range c.cluster.selectPods(ns, ps.podSel, ps.nsSel) {
			for _, a := range p.ips {
				out = append(out, hostPrefix(a))
			}
		}
	}
	if len(out) > 0 {
		out = normalize(out)
	} else {
		out = nil
	}
	c.peerSets[key] = out
	return out
}

// namedDestination is the allow of an egress rule's named port: the port
// number and the addresses of the destination pods that give it.
type namedDestination struct {
	port  uint16
	peers []netip.Prefix
}

// namedDestinations resolves the named port of an egress rule (with peers,
// or anywhere) on each destination pod: pods numbering the port
// differently get one allow per number, in port order.
func (c *compiler) namedDestinations(ns string, anywhere bool, peers []peerSpec, port portSpec) []namedDestination {
	k := appendString(c.buf[:0], port.name)
	k = appendString(k, string(port.proto))
	if anywhere {
		k = append(k, "anywhere"...)
	} else {
		k = appendPeersKey(append(k, "peers"...), peers)
	}
	c.buf = k
	if out, ok := c.named[string(k)]; ok {
		return out
	}
	key := string(k)
	byPort := map[uint16][]netip.Prefix{}
	for _, d := range c.destinations(ns, anywhere, peers) {
		for _, n := range d.pod.namedPort(port.name, port.proto) {
			for _, a := range d.ips {
				byPort[n] = append(byPort[n], hostPrefix(a))
			}
		}
	}
	out := make([]namedDestination, 0, len(byPort))
	for n, ps := range byPort {
		out = append(out, namedDestination{port: n, peers: normalize(ps)})
	}
	slices.SortFunc(out, func(a, b namedDestination) int { return int(a.port) - int(b.port) })
	c.named[key] = out
	return out
}

// destination is a pod an egress rule reaches, with those of its addresses
// the rule's peers cover.
type destination struct {
	pod *pod
	ips []netip.Addr
}

// destinations lists the pods an egress rule reaches: all of them for a
// rule without peers, the selected ones, and those with addresses inside an
// ipBlock (only those addresses).
func (c *compiler) destinations(ns string, anywhere bool, peers []peerSpec) []destination {
	if anywhere {
		out := make([]destination, 0, len(c.cluster.pods))
		for _, p := range c.cluster.pods {
			out = append(out, destination{pod: p, ips: p.ips})
		}
		return out
	}
	ips := map[*pod][]netip.Addr{}
	for _, ps := range peers {
		if !ps.isBlock {
			for _, p := range c.cluster.selectPods(ns, ps.podSel, ps.nsSel) {
				ips[p] = append(ips[p], p.ips...)
			}
			continue
		}
		for _, p := range c.cluster.pods {
			for _, a := range p.ips {
				if slices.ContainsFunc(ps.block, func(b netip.Prefix) bool { return b.Contains(a) }) {
					ips[p] = append(ips[p], a)
				}
			}
		}
	}
	out := make([]destination, 0, len(ips))
	for p, as := range ips {
		out = append(out, destination{pod: p, ips: as})
	}
	// Map order must not reach the output.
	slices.SortFunc(out, func(a, b destination) int { return strings.Compare(a.pod.key, b.pod.key) })
	return out
}
