package services

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kube-vpp/kube-vpp/services/healthcheck"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// claim settles which service serves each mapping key: the one already
// holding it keeps it; another asking for it gets a Problem and waits
// until it is released. It returns out without the refused mappings.
func (p *Proxy) claim(out Output) Output {
	// Waits of an earlier translation are void; this one decides again.
	for _, k := range p.waitsFor[out.Service] {
		delete(p.waiting[k], out.Service)
		if len(p.waiting[k]) == 0 {
			delete(p.waiting, k)
		}
	}
	delete(p.waitsFor, out.Service)
	kept := out.Mappings[:0:0]
	for _, m := range out.Mappings {
		k := m.Key()
		if o, held := p.owner[k]; held && o != out.Service {
			out.Problems = append(out.Problems, Problem{
				Field: "spec.ports", Reason: "AddressInUse",
				Err: fmt.Errorf("%s is already served by service %s", k, o),
			})
			for i := range out.Frontends {
				f := &out.Frontends[i]
				if f.Address == k.External && f.Protocol == k.Protocol {
					f.Backends, f.Note = nil, "not programmed: "+k.String()+" is served by service "+o
				}
			}
			if p.waiting[k] == nil {
				p.waiting[k] = map[string]bool{}
			}
			p.waiting[k][out.Service] = true
			p.waitsFor[out.Service] = append(p.waitsFor[out.Service], k)
			continue
		}
		kept = append(kept, m)
	}
	out.Mappings = kept
	return out
}

// own records out as applied, moving key ownership, reject-route and
// health-check references from the previous output; it returns the
// reject routes whose need changed.
func (p *Proxy) own(out Output) []netip.Addr {
	prev := p.applied[out.Service]
	var held map[nat44ed.Key]bool // the keys out.Service held before
	for _, m := range prev.Mappings {
		if p.owner[m.Key()] == out.Service {
			if held == nil {
				held = map[nat44ed.Key]bool{}
			}
			held[m.Key()] = true
			delete(p.owner, m.Key())
			for w := range p.waiting[m.Key()] {
				p.dirty[w] = true // may take it now
			}
			delete(p.waiting, m.Key())
		}
	}
	for _, m := range out.Mappings {
		p.owner[m.Key()] = out.Service
		if !held[m.Key()] {
			p.ownerChanged(m.Key())
		}
	}
	for k := range held {
		if p.owner[k] != out.Service {
			p.ownerChanged(k)
		}
	}
	var changed []netip.Addr
	for _, a := range prev.RejectIPs {
		if !slices.Contains(out.RejectIPs, a) {
			delete(p.rejects[a], out.Service)
			if len(p.rejects[a]) == 0 {
				delete(p.rejects, a)
				changed = append(changed, a)
			}
		}
	}
	for _, a := range out.RejectIPs {
		if p.rejects[a] == nil {
			p.rejects[a] = map[string]bool{}
			changed = append(changed, a)
		}
		p.rejects[a][out.Service] = true
	}
	p.setFirewalls(out)
	if out.HealthCheck != nil {
		p.health[out.Service] = *out.HealthCheck
	} else {
		delete(p.health, out.Service)
	}
	if len(out.Mappings) == 0 && len(out.RejectIPs) == 0 && out.HealthCheck == nil && len(out.Problems) == 0 {
		delete(p.applied, out.Service)
	} else {
		p.applied[out.Service] = out
	}
	return changed
}

// rejectRoute is the route for a service IP: ICMP unreachable, reached
// only by ports with no mapping (see RejectIPs).
func (p *Proxy) rejectRoute(a netip.Addr) ip.Route {
	r := ip.Route{Prefix: netip.PrefixFrom(a, a.BitLen())}
	if len(p.rejects[a]) > 0 && !slices.Contains(p.cfg.NodePortAddresses, a) {
		r.Paths = []ip.Path{{Type: ip.Unreachable}}
	}
	return r
}

// healthChecks is the health-check listeners wanted: per port the first
// service (by name) asking for it.
func (p *Proxy) healthChecks() (map[uint16]healthcheck.Service, bool) {
	want := map[uint16]healthcheck.Service{}
	owner := map[uint16]string{}
	for k, hc := range p.health {
		if o, ok := owner[hc.Port]; ok && o < k {
			continue
		}
		ns, name, _ := strings.Cut(k, "/")
		want[hc.Port] = healthcheck.Service{Namespace: ns, Name: name, LocalEndpoints: hc.LocalEndpoints}
		owner[hc.Port] = k
	}
	changed := len(owner) != len(p.hcOwner)
	for port, k := range owner {
		if p.hcOwner[port] != k {
			changed = true
		}
	}
	p.hcOwner = owner
	return want, changed
}

func sameHealthCheck(a, b *HealthCheck) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ReasonHealthCheckFailed is kube-proxy's Event reason for a
// healthCheckNodePort it cannot serve.
const ReasonHealthCheckFailed = "FailedToStartServiceHealthcheck"

// healthProblems turns the ports the health check servers could not open
// into problems of their services (Events, retried at the next Apply)
// rather than sync errors: one taken port must not fail every sync.
func healthProblems(err error) ([]ServiceProblem, error) {
	if err == nil {
		return nil, nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var problems []ServiceProblem
	var rest []error
	for _, e := range errs {
		var pe *healthcheck.PortError
		if errors.As(e, &pe) {
			problems = append(problems, ServiceProblem{Service: pe.Service.String(), Problem: Problem{
				Field: "spec.healthCheckNodePort", Reason: ReasonHealthCheckFailed,
				Err: fmt.Errorf("port %d: %w", pe.Port, pe.Err)}})
			continue
		}
		rest = append(rest, e)
	}
	return problems, errors.Join(rest...)
}
