// Package nodenet translates Nodes into the node-level dataplane: the node's
// own loopback with its pod gateway addresses, a blackhole for its pod range
// (pods get more specific routes), and a route to every other node's pod
// range via that node's address. It is a pure function of its inputs.
package nodenet

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// LoopbackTag tags the node's own loopback.
var LoopbackTag = tag.New(interfaces.KindLoopback, "node")

// Input is what the translation reads.
type Input struct {
	NodeName string
	Nodes    []*corev1.Node
	// Uplink is the sw_if_index of the interface facing the other nodes, or
	// ip.NoInterface to resolve next hops through the FIB.
	Uplink uint32
}

// Output is the desired state for the interfaces and ip drivers, plus one
// error per object or field that could not be used (the rest still applies).
type Output struct {
	Interfaces interfaces.Desired
	FIB        ip.Desired
	Problems   []Problem
}

// Problem is a bad field on a Node, reported with the node's name.
type Problem struct {
	Node  string
	Field string
	Err   error
}

func (p Problem) Error() string { return fmt.Sprintf("node %s: %s: %v", p.Node, p.Field, p.Err) }

// Translate computes the node-level desired state.
func Translate(in Input) Output {
	var out Output
	nodes := append([]*corev1.Node(nil), in.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	var self *corev1.Node
	for _, n := range nodes {
		if n.Name == in.NodeName {
			self = n
		}
	}
	if self == nil {
		out.Problems = append(out.Problems, Problem{Node: in.NodeName, Field: "metadata.name", Err: fmt.Errorf("this node is not among the %d known nodes", len(nodes))})
		return out
	}

	selfCIDRs, probs := podCIDRs(self)
	out.Problems = append(out.Problems, probs...)
	lo := interfaces.Loopback{Tag: LoopbackTag, Up: true}
	for _, c := range selfCIDRs {
		gw := c.Addr().Next()
		lo.Addresses = append(lo.Addresses, netip.PrefixFrom(gw, gw.BitLen()))
		out.FIB.Routes = append(out.FIB.Routes, ip.Route{Prefix: c, Paths: []ip.Path{{Type: ip.Drop}}})
	}
	out.Interfaces.Loopbacks = []interfaces.Loopback{lo}

	for _, n := range nodes {
		if n == self {
			continue
		}
		cidrs, probs := podCIDRs(n)
		out.Problems = append(out.Problems, probs...)
		for _, c := range cidrs {
			nh, ok := internalIP(n, c.Addr().Is4())
			if !ok {
				out.Problems = append(out.Problems, Problem{Node: n.Name, Field: "status.addresses",
					Err: fmt.Errorf("no InternalIP of the family of pod range %s", c)})
				continue
			}
			out.FIB.Routes = append(out.FIB.Routes, ip.Route{Prefix: c, Paths: []ip.Path{{NextHop: nh, SwIfIndex: in.Uplink}}})
		}
	}
	return out
}

// podCIDRs returns the node's pod ranges: spec.podCIDRs, or the older
// spec.podCIDR when the list is empty.
func podCIDRs(n *corev1.Node) ([]netip.Prefix, []Problem) {
	raw, field := n.Spec.PodCIDRs, "spec.podCIDRs"
	if len(raw) == 0 && n.Spec.PodCIDR != "" {
		raw, field = []string{n.Spec.PodCIDR}, "spec.podCIDR"
	}
	var out []netip.Prefix
	var probs []Problem
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			probs = append(probs, Problem{n.Name, field, fmt.Errorf("%q is not a CIDR", s)})
		case p != p.Masked():
			probs = append(probs, Problem{n.Name, field, fmt.Errorf("%q has host bits set (network is %s)", s, p.Masked())})
		case p.Bits() == p.Addr().BitLen():
			probs = append(probs, Problem{n.Name, field, fmt.Errorf("%q leaves no room for pods", s)})
		default:
			out = append(out, p)
		}
	}
	return out, probs
}

func internalIP(n *corev1.Node, v4 bool) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err == nil && ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
