package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-vpp/kube-vpp/services/healthcheck"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// NAT is where the proxy programs mappings: the nat44ed driver.
type NAT interface {
	Sync(ctx context.Context, all map[string][]nat44ed.Mapping) error
	Update(ctx context.Context, service string, mappings []nat44ed.Mapping) error
}

// Routes is where the proxy programs the reject routes of service IPs: an
// ip driver with a FIB source of its own.
type Routes interface {
	Sync(ctx context.Context, want ip.Desired) error
	Update(ctx context.Context, routes []ip.Route) error
}

// HealthChecks serves the healthCheckNodePorts of externalTrafficPolicy
// Local services.
type HealthChecks interface {
	Sync(want map[uint16]healthcheck.Service) error
}

// ServiceProblem is a Problem of one service ("namespace/name").
type ServiceProblem struct {
	Service string
	Problem
}

func (p ServiceProblem) Error() string { return "service " + p.Service + ": " + p.Problem.Error() }

// Proxy is the node's service proxy. It keeps the Services and
// EndpointSlices it is told about, and on Apply translates only the
// services that changed and programs only their mappings, routes and
// health checks: the cost of one endpoint change does not grow with the
// number of services. Resync programs everything, after VPP (re)connects.
type Proxy struct {
	nat     NAT
	routes  Routes
	servers HealthChecks
	log     *zap.Logger

	mu       sync.Mutex
	cfg      Config
	services map[string]*corev1.Service
	slices   map[string]map[string]*discoveryv1.EndpointSlice // service -> slice name -> slice
	// sliceOwner is the service of each slice ("namespace/slice"), so a
	// relabelled slice leaves its old service without a scan.
	sliceOwner map[string]string
	dirty      map[string]bool
	applied    map[string]Output // what is programmed, by service
	owner      map[nat44ed.Key]string
	waiting    map[nat44ed.Key]map[string]bool // services refused a key another holds
	waitsFor   map[string][]nat44ed.Key        // the keys each waiting service waits for
	// health are the health checks of the applied services that have one.
	health  map[string]HealthCheck
	rejects map[netip.Addr]map[string]bool // reject route -> services wanting it
	// reroute are reject routes to program at the next Apply although no
	// service's need changed: their last update failed, or the address
	// became or stopped being a node address.
	reroute map[netip.Addr]bool
	hcOwner map[uint16]string
	// hcRetry: the last health-check Sync failed.
	hcRetry bool
	synced  bool
	// firewalls are the applied services' Firewalls; fwGen counts their
	// changes and those of the keys' holders (Firewalls leaves out a
	// firewall on another service's key).
	firewalls map[string][]Firewall
	fwKeys    map[nat44ed.Key]map[string]bool // services with a firewall on a key
	fwGen     uint64
}

// NewProxy returns a proxy programming through nat, routes and health.
func NewProxy(nat NAT, routes Routes, health HealthChecks, log *zap.Logger) *Proxy {
	return &Proxy{
		nat: nat, routes: routes, servers: health, log: log.Named("services"),
		services:   map[string]*corev1.Service{},
		slices:     map[string]map[string]*discoveryv1.EndpointSlice{},
		sliceOwner: map[string]string{},
		waitsFor:   map[string][]nat44ed.Key{},
		health:     map[string]HealthCheck{},
		dirty:      map[string]bool{},
		applied:    map[string]Output{},
		owner:      map[nat44ed.Key]string{},
		waiting:    map[nat44ed.Key]map[string]bool{},
		rejects:    map[netip.Addr]map[string]bool{},
		reroute:    map[netip.Addr]bool{},
		hcOwner:    map[uint16]string{},
		firewalls:  map[string][]Firewall{},
		fwKeys:     map[nat44ed.Key]map[string]bool{},
	}
}

func key(namespace, name string) string { return namespace + "/" + name }

// SetConfig changes the node-level inputs; every service is translated
// again at the next Apply when they differ.
func (p *Proxy) SetConfig(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Equal(cfg.NodePortAddresses, p.cfg.NodePortAddresses) &&
		slices.Equal(cfg.ExternalIPCIDRs, p.cfg.ExternalIPCIDRs) && cfg.Node == p.cfg.Node && cfg.Zone == p.cfg.Zone {
		return
	}
	for a := range p.rejects {
		if slices.Contains(p.cfg.NodePortAddresses, a) != slices.Contains(cfg.NodePortAddresses, a) {
			p.reroute[a] = true
		}
	}
	p.cfg = cfg
	for k := range p.services {
		p.dirty[k] = true
	}
	for k := range p.applied {
		p.dirty[k] = true
	}
}

// SetService records a Service added or changed.
func (p *Proxy) SetService(svc *corev1.Service) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key(svc.Namespace, svc.Name)
	p.services[k] = svc
	p.dirty[k] = true
}

// DeleteService records a Service deleted.
func (p *Proxy) DeleteService(namespace, name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key(namespace, name)
	delete(p.services, k)
	p.dirty[k] = true
}

// SetEndpointSlice records an EndpointSlice added or changed. A slice
// without the kubernetes.io/service-name label belongs to no service.
func (p *Proxy) SetEndpointSlice(s *discoveryv1.EndpointSlice) {
	svc := s.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key(s.Namespace, svc)
	id := key(s.Namespace, s.Name)
	// A slice relabelled to another service leaves its old one.
	if other, ok := p.sliceOwner[id]; ok && other != k {
		p.removeSlice(other, s.Name)
	}
	p.sliceOwner[id] = k
	if p.slices[k] == nil {
		p.slices[k] = map[string]*discoveryv1.EndpointSlice{}
	}
	p.slices[k][s.Name] = s
	p.dirty[k] = true
}

// DeleteEndpointSlice records an EndpointSlice deleted.
func (p *Proxy) DeleteEndpointSlice(s *discoveryv1.EndpointSlice) {
	svc := s.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := key(s.Namespace, s.Name)
	k := key(s.Namespace, svc)
	if owner, ok := p.sliceOwner[id]; ok {
		k = owner // the label may have changed since we recorded it
	}
	delete(p.sliceOwner, id)
	p.removeSlice(k, s.Name)
}

// removeSlice drops a slice from a service; p.mu is held.
func (p *Proxy) removeSlice(service, name string) {
	if byName := p.slices[service]; byName != nil {
		delete(byName, name)
		if len(byName) == 0 {
			delete(p.slices, service)
		}
	}
	p.dirty[service] = true
}

// Synced reports whether a Resync has succeeded since the proxy was made
// or last invalidated.
func (p *Proxy) Synced() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.synced
}

// Invalidate makes the next sync a Resync: call it when VPP reconnects.
func (p *Proxy) Invalidate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = false
}

// Pending reports whether some service changed since the last Apply, or
// something the last Apply programmed failed.
func (p *Proxy) Pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirty) > 0 || len(p.reroute) > 0 || p.hcRetry
}

func (p *Proxy) translate(k string) Output {
	svc := p.services[k]
	if svc == nil {
		return Output{Service: k}
	}
	var sl []*discoveryv1.EndpointSlice
	for _, s := range p.slices[k] {
		sl = append(sl, s)
	}
	sort.Slice(sl, func(i, j int) bool { return sl[i].Name < sl[j].Name })
	out := Translate(p.cfg, svc, sl)
	out.Service = k
	return out
}

// Apply translates and programs the services that changed since the last
// Apply or Resync. It returns the services' problems (to report as
// Events) and the programming errors, joined; a service that failed stays
// pending and is tried again at the next Apply.
func (p *Proxy) Apply(ctx context.Context) ([]ServiceProblem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.synced {
		return nil, errors.New("services: not synced with VPP yet")
	}
	var (
		errs    []error
		hcDirty bool
		// A service translated twice reports its last translation's
		// problems only: a key refused in the first round may be taken
		// in the second.
		byService = map[string][]Problem{}
	)
	// A key released in this round may be waited for by a service handled
	// before it: a second round lets that one take it now.
	failed := map[string]bool{}
	for round := 0; round < 2 && len(p.dirty) > 0; round++ {
		keys := make([]string, 0, len(p.dirty))
		for k := range p.dirty {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		clear(p.dirty)
		for _, k := range keys {
			out := p.claim(p.translate(k))
			byService[k] = out.Problems
			if err := p.nat.Update(ctx, k, out.Mappings); err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", k, err))
				failed[k] = true
				continue
			}
			delete(failed, k)
			prevHC := p.applied[k].HealthCheck
			for _, a := range p.own(out) {
				p.reroute[a] = true
			}
			if !sameHealthCheck(prevHC, out.HealthCheck) {
				hcDirty = true
			}
			p.log.Debug("service applied", zap.String("service", k), zap.Int("mappings", len(out.Mappings)))
		}
		for k := range failed {
			delete(p.dirty, k) // not again in this Apply
		}
	}
	for k := range failed {
		p.dirty[k] = true
	}
	if len(p.reroute) > 0 {
		routes := make([]ip.Route, 0, len(p.reroute))
		for _, a := range slices.SortedFunc(maps.Keys(p.reroute), netip.Addr.Compare) {
			routes = append(routes, p.rejectRoute(a))
		}
		if err := p.routes.Update(ctx, routes); err != nil {
			errs = append(errs, fmt.Errorf("service reject routes: %w", err))
		} else {
			clear(p.reroute)
		}
	}
	var problems []ServiceProblem
	if want, changed := p.healthChecks(); changed || hcDirty || p.hcRetry {
		err := p.servers.Sync(want)
		p.hcRetry = err != nil
		hcProblems, err := healthProblems(err)
		problems = append(problems, hcProblems...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(byService)) {
		for _, pr := range byService[k] {
			problems = append(problems, ServiceProblem{k, pr})
		}
	}
	return problems, errors.Join(errs...)
}

// Resync translates every service and makes VPP hold exactly their
// mappings and reject routes, and the health checks their listeners.
func (p *Proxy) Resync(ctx context.Context) ([]ServiceProblem, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.services))
	for k := range p.services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// A key keeps its holder across a resync: a VPP reconnect must not
	// hand it to the service waiting for it.
	held := maps.Clone(p.owner)
	clear(p.dirty)
	clear(p.applied)
	clear(p.owner)
	clear(p.waiting)
	clear(p.waitsFor)
	clear(p.health)
	clear(p.rejects)
	clear(p.reroute)
	clear(p.firewalls)
	clear(p.fwKeys)
	p.fwGen++
	p.hcRetry = false
	outs := make([]Output, len(keys))
	for i, k := range keys {
		outs[i] = p.translate(k)
		for _, m := range outs[i].Mappings {
			if held[m.Key()] == k {
				p.owner[m.Key()] = k
			}
		}
	}
	var problems []ServiceProblem
	all := make(map[string][]nat44ed.Mapping, len(keys))
	for i, k := range keys {
		out := p.claim(outs[i])
		for _, pr := range out.Problems {
			problems = append(problems, ServiceProblem{k, pr})
		}
		p.own(out)
		if len(out.Mappings) > 0 {
			all[k] = out.Mappings
		}
	}
	var want ip.Desired
	for a := range p.rejects {
		if r := p.rejectRoute(a); len(r.Paths) > 0 {
			want.Routes = append(want.Routes, r)
		}
	}
	var errs []error
	if err := p.nat.Sync(ctx, all); err != nil {
		errs = append(errs, fmt.Errorf("service mappings: %w", err))
	}
	if err := p.routes.Sync(ctx, want); err != nil {
		errs = append(errs, fmt.Errorf("service reject routes: %w", err))
	}
	hc, _ := p.healthChecks()
	hcErr := p.servers.Sync(hc)
	p.hcRetry = hcErr != nil
	hcProblems, hcErr := healthProblems(hcErr)
	problems = append(problems, hcProblems...)
	if hcErr != nil {
		errs = append(errs, hcErr)
	}
	if len(errs) > 0 {
		return problems, errors.Join(errs...)
	}
	p.synced = true
	p.log.Info("services synced", zap.Int("services", len(keys)), zap.Int("mapped", len(all)),
		zap.Int("reject_routes", len(want.Routes)))
	return problems, nil
}

// Status is one service as the proxy sees it, for kube-vppctl show services.
type Status struct {
	Service   string     `json:"service"`
	Frontends []Frontend `json:"frontends"`
	Problems  []string   `json:"problems,omitempty"`
	// Mappings are what VPP holds for the service, as the NAT44-ED
	// driver last programmed it; filled in by the caller.
	Mappings []nat44ed.Mapping `json:"mappings,omitempty"`
	// HealthCheck is the healthCheckNodePort served, if any.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
}

// Services lists every service the proxy programmed or refused, by name.
func (p *Proxy) Services() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Status, 0, len(p.applied))
	for k, o := range p.applied {
		st := Status{Service: k, Frontends: slices.Clone(o.Frontends)}
		if o.HealthCheck != nil {
			hc := *o.HealthCheck
			st.HealthCheck = &hc
		}
		for _, pr := range o.Problems {
			st.Problems = append(st.Problems, pr.Error())
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}
