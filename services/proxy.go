package services

import (
	"context"
	"errors"
	"fmt"
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
	nat    NAT
	routes Routes
	health HealthChecks
	log    *zap.Logger

	mu       sync.Mutex
	cfg      Config
	services map[string]*corev1.Service
	slices   map[string]map[string]*discoveryv1.EndpointSlice // service -> slice name -> slice
	dirty    map[string]bool
	applied  map[string]Output // what is programmed, by service
	owner    map[nat44ed.Key]string
	waiting  map[nat44ed.Key]map[string]bool // services refused a key another holds
	rejects  map[netip.Addr]map[string]bool  // reject route -> services wanting it
	hcOwner  map[uint16]string
	synced   bool
}

// NewProxy returns a proxy programming through nat, routes and health.
func NewProxy(nat NAT, routes Routes, health HealthChecks, log *zap.Logger) *Proxy {
	return &Proxy{
		nat: nat, routes: routes, health: health, log: log.Named("services"),
		services: map[string]*corev1.Service{},
		slices:   map[string]map[string]*discoveryv1.EndpointSlice{},
		dirty:    map[string]bool{},
		applied:  map[string]Output{},
		owner:    map[nat44ed.Key]string{},
		waiting:  map[nat44ed.Key]map[string]bool{},
		rejects:  map[netip.Addr]map[string]bool{},
		hcOwner:  map[uint16]string{},
	}
}

func key(namespace, name string) string { return namespace + "/" + name }

// SetConfig changes the node-level inputs; every service is translated
// again at the next Apply when they differ.
func (p *Proxy) SetConfig(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Equal(cfg.NodePortAddresses, p.cfg.NodePortAddresses) &&
		slices.Equal(cfg.ExternalIPCIDRs, p.cfg.ExternalIPCIDRs) && cfg.Node == p.cfg.Node {
		return
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
	// A slice relabelled to another service leaves its old one.
	for other, byName := range p.slices {
		if old, ok := byName[s.Name]; ok && other != k && old.Namespace == s.Namespace {
			delete(byName, s.Name)
			p.dirty[other] = true
		}
	}
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
	k := key(s.Namespace, svc)
	if byName := p.slices[k]; byName != nil {
		delete(byName, s.Name)
		if len(byName) == 0 {
			delete(p.slices, k)
		}
	}
	p.dirty[k] = true
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

// Pending reports whether some service changed since the last Apply.
func (p *Proxy) Pending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirty) > 0
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

// claim settles which service serves each mapping key: the one already
// holding it keeps it; another asking for it gets a Problem and waits
// until it is released. It returns out without the refused mappings.
func (p *Proxy) claim(out Output) Output {
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
	for _, m := range prev.Mappings {
		if p.owner[m.Key()] == out.Service {
			delete(p.owner, m.Key())
			for w := range p.waiting[m.Key()] {
				p.dirty[w] = true // may take it now
			}
			delete(p.waiting, m.Key())
		}
	}
	for _, m := range out.Mappings {
		p.owner[m.Key()] = out.Service
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
	for k, out := range p.applied {
		hc := out.HealthCheck
		if hc == nil {
			continue
		}
		if o, ok := owner[hc.Port]; ok && o < k {
			continue
		}
		ns, name, _ := cutKey(k)
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

func cutKey(k string) (namespace, name string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return "", k, false
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
		problems []ServiceProblem
		errs     []error
		routes   []ip.Route
		hcDirty  bool
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
			if round == 0 || !failed[k] {
				for _, pr := range out.Problems {
					problems = append(problems, ServiceProblem{k, pr})
				}
			}
			if err := p.nat.Update(ctx, k, out.Mappings); err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", k, err))
				failed[k] = true
				continue
			}
			delete(failed, k)
			prevHC := p.applied[k].HealthCheck
			for _, a := range p.own(out) {
				routes = append(routes, p.rejectRoute(a))
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
	if len(routes) > 0 {
		if err := p.routes.Update(ctx, routes); err != nil {
			errs = append(errs, fmt.Errorf("service reject routes: %w", err))
		}
	}
	if want, changed := p.healthChecks(); changed || hcDirty {
		if err := p.health.Sync(want); err != nil {
			errs = append(errs, err)
		}
	}
	return problems, errors.Join(errs...)
}

func sameHealthCheck(a, b *HealthCheck) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
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
	clear(p.dirty)
	clear(p.applied)
	clear(p.owner)
	clear(p.waiting)
	clear(p.rejects)
	var problems []ServiceProblem
	all := make(map[string][]nat44ed.Mapping, len(keys))
	for _, k := range keys {
		out := p.claim(p.translate(k))
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
	if err := p.health.Sync(hc); err != nil {
		errs = append(errs, err)
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
		st := Status{Service: k, Frontends: o.Frontends, HealthCheck: o.HealthCheck}
		for _, pr := range o.Problems {
			st.Problems = append(st.Problems, pr.Error())
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}
