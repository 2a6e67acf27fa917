package services

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// Why a Firewall denies.
const (
	WhySourceRanges = "outside its loadBalancerSourceRanges"
	WhyNoLocalITP   = "internalTrafficPolicy Local and no endpoint on this node"
	WhyNoLocalETP   = "externalTrafficPolicy Local and no endpoint on this node"
)

// Firewall is a frontend whose packets kube-proxy drops before any
// translation unless they come from Sources: a load-balancer IP's clients
// outside spec.loadBalancerSourceRanges, and everyone (Sources empty) on a
// frontend whose traffic policy is Local while its endpoints are all on
// other nodes. OutsideOnly firewalls apply to clients outside the cluster:
// kube-proxy sends a pod's traffic to an externalTrafficPolicy Local
// frontend as it would to the cluster IP.
type Firewall struct {
	Service     string // "namespace/name"
	Address     netip.AddrPort
	Protocol    nat44ed.Protocol
	Sources     []netip.Prefix
	Why         string
	OutsideOnly bool
}

// firewalls are the frontends of a translation that kube-proxy filters, in
// frontend order. t.candidates and t.out.Frontends are settled.
func (t *translation) firewalls() []Firewall {
	var fws []Firewall
	for i, c := range t.candidates {
		f := t.out.Frontends[i]
		if c.mapping != nil && len(f.Backends) == 0 {
			continue // refused: the key is another frontend's
		}
		if len(f.SourceRanges) > 0 {
			fws = append(fws, Firewall{Service: t.out.Service, Address: f.Address, Protocol: f.Protocol,
				Sources: f.SourceRanges, Why: WhySourceRanges})
		}
		if c.dropped {
			drop := Firewall{Service: t.out.Service, Address: f.Address, Protocol: f.Protocol, Why: WhyNoLocalETP, OutsideOnly: true}
			if f.Kind == ClusterIP {
				drop.Why, drop.OutsideOnly = WhyNoLocalITP, false
			}
			fws = append(fws, drop)
		}
	}
	return fws
}

func sameFirewall(a, b Firewall) bool {
	return a.Service == b.Service && a.Address == b.Address && a.Protocol == b.Protocol &&
		slices.Equal(a.Sources, b.Sources) && a.Why == b.Why && a.OutsideOnly == b.OutsideOnly
}

// setFirewalls records the firewalls of an applied service.
func (p *Proxy) setFirewalls(out Output) {
	prev := p.firewalls[out.Service]
	if slices.EqualFunc(out.Firewalls, prev, sameFirewall) {
		return
	}
	for _, fw := range prev {
		k := fw.key()
		delete(p.fwKeys[k], out.Service)
		if len(p.fwKeys[k]) == 0 {
			delete(p.fwKeys, k)
		}
	}
	if len(out.Firewalls) == 0 {
		delete(p.firewalls, out.Service)
	} else {
		p.firewalls[out.Service] = out.Firewalls
	}
	for _, fw := range out.Firewalls {
		k := fw.key()
		if p.fwKeys[k] == nil {
			p.fwKeys[k] = map[string]bool{}
		}
		p.fwKeys[k][out.Service] = true
	}
	p.fwGen++
}

func (fw Firewall) key() nat44ed.Key { return nat44ed.Key{External: fw.Address, Protocol: fw.Protocol} }

// ownerChanged notes that the holder of key changed: Firewalls leaves out
// a firewall on a key another service holds a mapping on (it would drop
// that service's traffic), so its answer may change.
func (p *Proxy) ownerChanged(key nat44ed.Key) {
	if len(p.fwKeys[key]) > 0 {
		p.fwGen++
	}
}

// Firewalls returns the programmed firewalls, by service, and a
// generation that changes whenever they do, so a caller can skip work when
// they have not. A firewall on an address, port and protocol that another
// service maps is left out: it would drop that service's traffic.
func (p *Proxy) Firewalls() (uint64, []Firewall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Firewall
	for _, k := range slices.Sorted(maps.Keys(p.firewalls)) {
		for _, fw := range p.firewalls[k] {
			if owner, held := p.owner[fw.key()]; !held || owner == fw.Service {
				out = append(out, fw)
			}
		}
	}
	return p.fwGen, out
}

// FirewallGeneration is Firewalls' generation alone, without the copy.
func (p *Proxy) FirewallGeneration() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fwGen
}
