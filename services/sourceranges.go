package services

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
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

// Firewall is a programmed load-balancer frontend that admits only clients
// from Sources: kube-proxy drops the others, before any translation.
type Firewall struct {
	Service  string // "namespace/name"
	Address  netip.AddrPort
	Protocol nat44ed.Protocol
	Sources  []netip.Prefix
}

// firewalls are out's frontends held by a mapping and restricted to
// source ranges, in frontend order.
func firewalls(out Output) []Firewall {
	var fws []Firewall
	for _, f := range out.Frontends {
		if f.Kind == LoadBalancer && len(f.Backends) > 0 && len(f.SourceRanges) > 0 {
			fws = append(fws, Firewall{Service: out.Service, Address: f.Address, Protocol: f.Protocol, Sources: f.SourceRanges})
		}
	}
	return fws
}

func sameFirewall(a, b Firewall) bool {
	return a.Service == b.Service && a.Address == b.Address && a.Protocol == b.Protocol && slices.Equal(a.Sources, b.Sources)
}

// setFirewalls records the firewalls of an applied service.
func (p *Proxy) setFirewalls(out Output) {
	fws := firewalls(out)
	if slices.EqualFunc(fws, p.firewalls[out.Service], sameFirewall) {
		return
	}
	if len(fws) == 0 {
		delete(p.firewalls, out.Service)
	} else {
		p.firewalls[out.Service] = fws
	}
	p.fwGen++
}

// Firewalls returns the programmed source-restricted frontends, by service,
// and a generation that changes whenever they do, so a caller can skip
// work when they have not.
func (p *Proxy) Firewalls() (uint64, []Firewall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Firewall
	for _, k := range slices.Sorted(maps.Keys(p.firewalls)) {
		out = append(out, p.firewalls[k]...)
	}
	return p.fwGen, out
}

// FirewallGeneration is Firewalls' generation alone, without the copy.
func (p *Proxy) FirewallGeneration() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fwGen
}
