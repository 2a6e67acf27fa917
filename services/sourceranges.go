package services

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// sourceRanges is what spec.loadBalancerSourceRanges asks of the IPv4
// load-balancer frontends.
type sourceRanges struct {
	v4 []netip.Prefix // the admitted clients; nil admits all
	// unusable: ranges were given but none could be read; the frontends
	// are not programmed rather than opened to everyone.
	unusable bool
}

// sourceRanges reads spec.loadBalancerSourceRanges as kube-proxy does
// (pkg/proxy/serviceport.go): entries are trimmed, only those of the
// frontend's family apply, a zero-length range admits everyone, and
// ranges of the other family alone leave this family open. kube-proxy
// skips an unreadable entry silently; here it is a Problem, and when no
// readable entry is left the firewall fails closed.
func (t *translation) sourceRanges() sourceRanges {
	if t.svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(t.svc.Spec.LoadBalancerSourceRanges) == 0 {
		return sourceRanges{}
	}
	var v4 []netip.Prefix
	readable := 0
	for i, s := range t.svc.Spec.LoadBalancerSourceRanges {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			t.problem(fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i), ReasonInvalidSourceRange,
				fmt.Errorf("%q is not a CIDR", s))
			continue
		}
		readable++
		if !p.Addr().Is4() {
			continue
		}
		if p.Bits() == 0 {
			return sourceRanges{} // admits everyone, whatever else is listed
		}
		v4 = append(v4, p.Masked())
	}
	if readable == 0 {
		return sourceRanges{unusable: true}
	}
	slices.SortFunc(v4, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return sourceRanges{v4: slices.Compact(v4)}
}
