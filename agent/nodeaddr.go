package agent

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// nodeIPs are the node's InternalIP and ExternalIP addresses, sorted,
// without duplicates.
func nodeIPs(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	if n == nil {
		return nil
	}
	for _, na := range n.Status.Addresses {
		if na.Type != corev1.NodeInternalIP && na.Type != corev1.NodeExternalIP {
			continue
		}
		if a, err := netip.ParseAddr(na.Address); err == nil {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// podGateways are the node's pod gateways, one per pod CIDR: its first
// address, held by the node loopback (nodenet).
func podGateways(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	if n == nil {
		return nil
	}
	for _, c := range n.Spec.PodCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked().Addr().Next())
		}
	}
	return out
}
