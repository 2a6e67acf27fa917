package policy

import (
	"net/netip"
	"slices"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
)

// addAllow adds the permit+reflect ACL rules of one compiled allow (index
// j of the allow list, from o): one per peer prefix and protocol, an allow
// without peers standing for both 0.0.0.0/0 and ::/0. An ACL rule holds one
// family (VPP rejects mixed ones, acl_api_invalid_prefix), and an IPv4 rule
// never matches IPv6, so a table allowing one family still denies the other.
//
// SCTP ports are written as the policy gives them although VPP passes 0 as
// the port of every protocol but TCP, UDP and ICMP
// (acl_fill_5tuple_l4_and_pkt_data): an SCTP allow with ports then matches
// nothing. Opening every SCTP port instead would allow what the policy
// denies.
func (t *table) addAllow(dir string, r Rule, o RuleOrigin, j int) {
	peers := r.Peers
	if len(peers) == 0 {
		peers = anyPrefixes()
	}
	ports := acl.AnyPort
	if !r.Ports.Any() {
		ports = acl.PortRange{First: r.Ports.First, Last: r.Ports.Last}
	}
	protos, nProtos := ruleProtocols(r)
	for _, peer := range peers {
		if !peer.IsValid() {
			continue
		}
		peer = peer.Masked() // VPP refuses host bits beyond the length
		src, dst := peer, anyOf(peer.Addr())
		if dir == Egress {
			src, dst = dst, peer
		}
		for _, proto := range protos[:nProtos] {
			ar := acl.Rule{Action: acl.PermitReflect, Src: src, Dst: dst, Protocol: proto,
				SrcPorts: acl.AnyPort, DstPorts: ports}
			if proto == uint8(AnyProtocol) {
				ar.DstPorts = acl.AnyPort
			}
			t.add(ar, o, j)
		}
	}
}

// allowRuleCount is at most how many rules addAllow adds for r.
func allowRuleCount(r Rule) int {
	_, n := ruleProtocols(r)
	return max(len(r.Peers), 2) * n
}

// ruleProtocols are the ACL protocols of r (the first n of the array). VPP
// ignores the ports of a protocol-0 rule, and NetworkPolicy ports exist for
// TCP, UDP and SCTP only, so ports without a protocol (the compiler never
// makes them) become those three.
func ruleProtocols(r Rule) (protos [3]uint8, n int) {
	switch {
	case r.Protocol != AnyProtocol:
		return [3]uint8{uint8(r.Protocol)}, 1
	case r.Ports.Any():
		return [3]uint8{uint8(AnyProtocol)}, 1
	}
	return [3]uint8{uint8(TCP), uint8(UDP), uint8(SCTP)}, 3
}

// allows reports whether r lets traffic go to (egress) or come from
// (ingress) a, on port with proto.
func allows(r Rule, a netip.Addr, port uint16, proto uint8) bool {
	switch {
	case r.Protocol != AnyProtocol && uint8(r.Protocol) != proto:
		return false
	case r.Protocol == AnyProtocol && !r.Ports.Any() && proto != uint8(TCP) && proto != uint8(UDP) && proto != uint8(SCTP):
		return false // as ruleProtocols writes it
	}
	if !r.Ports.Any() && (port < r.Ports.First || port > r.Ports.Last) {
		return false
	}
	return len(r.Peers) == 0 || containsAddr(r.Peers, a)
}

// containsAddr reports whether a is in one of peers, which are sorted and
// disjoint (Rule.Peers): only the prefix starting at or last before a can
// hold it.
func containsAddr(peers []netip.Prefix, a netip.Addr) bool {
	i, _ := slices.BinarySearchFunc(peers, a, func(p netip.Prefix, a netip.Addr) int {
		return p.Addr().Compare(a)
	})
	if i < len(peers) && peers[i].Contains(a) {
		return true
	}
	return i > 0 && peers[i-1].Contains(a)
}
