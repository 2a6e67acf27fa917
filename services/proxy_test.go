package services

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-vpp/kube-vpp/services/healthcheck"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// fakeNAT records what the proxy programs and fails Update for the
// services in fail.
type fakeNAT struct {
	syncs   []map[string][]nat44ed.Mapping
	updates []natUpdate
	fail    map[string]error
	syncErr error
}

type natUpdate struct {
	service  string
	mappings []nat44ed.Mapping
}

func (f *fakeNAT) Sync(_ context.Context, all map[string][]nat44ed.Mapping) error {
	f.syncs = append(f.syncs, maps.Clone(all))
	return f.syncErr
}

func (f *fakeNAT) Update(_ context.Context, service string, ms []nat44ed.Mapping) error {
	f.updates = append(f.updates, natUpdate{service, slices.Clone(ms)})
	return f.fail[service]
}

type fakeRoutes struct {
	syncs   []ip.Desired
	updates [][]ip.Route
	err     error
}

func (f *fakeRoutes) Sync(_ context.Context, want ip.Desired) error {
	f.syncs = append(f.syncs, want)
	return f.err
}

func (f *fakeRoutes) Update(_ context.Context, routes []ip.Route) error {
	f.updates = append(f.updates, slices.Clone(routes))
	return f.err
}

type fakeHealth struct {
	syncs []map[uint16]healthcheck.Service
	err   error
}

func (f *fakeHealth) Sync(want map[uint16]healthcheck.Service) error {
	f.syncs = append(f.syncs, maps.Clone(want))
	return f.err
}

// harness is a Proxy over the three fakes.
type harness struct {
	t      *testing.T
	p      *Proxy
	nat    *fakeNAT
	routes *fakeRoutes
	health *fakeHealth
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, nat: &fakeNAT{}, routes: &fakeRoutes{}, health: &fakeHealth{}}
	h.p = NewProxy(h.nat, h.routes, h.health, zaptest.NewLogger(t))
	h.p.SetConfig(cfg)
	return h
}

// forget clears what the fakes recorded.
func (h *harness) forget() {
	h.nat.syncs, h.nat.updates = nil, nil
	h.routes.syncs, h.routes.updates = nil, nil
	h.health.syncs = nil
}

func (h *harness) resync() []ServiceProblem {
	h.t.Helper()
	problems, err := h.p.Resync(context.Background())
	if err != nil {
		h.t.Fatalf("Resync: %v", err)
	}
	return problems
}

func (h *harness) apply() []ServiceProblem {
	h.t.Helper()
	problems, err := h.p.Apply(context.Background())
	if err != nil {
		h.t.Fatalf("Apply: %v", err)
	}
	return problems
}

// updated is the services NAT.Update was called for, in call order.
func (h *harness) updated() []string {
	var out []string
	for _, u := range h.nat.updates {
		out = append(out, u.service)
	}
	return out
}

// lastUpdate is the mappings of the last NAT.Update of service, described.
func (h *harness) lastUpdate(service string) []string {
	h.t.Helper()
	for i := len(h.nat.updates) - 1; i >= 0; i-- {
		if u := h.nat.updates[i]; u.service == service {
			return describeMappings(u.mappings)
		}
	}
	h.t.Fatalf("no NAT update for %s (updates: %v)", service, h.updated())
	return nil
}

// routeChanges merges the Routes.Update calls: prefix -> "unreachable",
// or "removed" for a route without paths (ip.Driver.Update deletes it).
func (h *harness) routeChanges() map[string]string {
	out := map[string]string{}
	for _, call := range h.routes.updates {
		for _, r := range call {
			out[r.Prefix.String()] = describeRoute(r)
		}
	}
	return out
}

func describeRoute(r ip.Route) string {
	if len(r.Paths) == 0 {
		return "removed"
	}
	var s []string
	for _, p := range r.Paths {
		s = append(s, p.Type.String())
	}
	return strings.Join(s, ",")
}

// describeMappings writes each mapping as "ext/proto -> local,local".
func describeMappings(ms []nat44ed.Mapping) []string {
	out := []string{}
	for _, m := range ms {
		var ls []string
		for _, l := range m.Locals {
			ls = append(ls, l.Addr.String())
		}
		slices.Sort(ls)
		out = append(out, m.Key().String()+" -> "+strings.Join(ls, ","))
	}
	slices.Sort(out)
	return out
}

func problemsOf(ps []ServiceProblem) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Service+" "+p.Reason)
	}
	return out
}

// svcAt is namespace/name on clusterIP with one unnamed TCP port 80
// (target 8080), changed by mods.
func svcAt(ns, name, clusterIP string, mods ...func(*corev1.Service)) *corev1.Service {
	s := service(withPorts(svcPort("", corev1.ProtocolTCP, 80, 0)))
	s.Namespace, s.Name = ns, name
	s.Spec.ClusterIP, s.Spec.ClusterIPs = clusterIP, []string{clusterIP}
	for _, m := range mods {
		m(s)
	}
	return s
}

func withExternalIPs(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

// withIngress makes the service a LoadBalancer with these ingress IPs.
func withIngress(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Status.LoadBalancer.Ingress = nil
		for _, a := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: a})
		}
	}
}

// withLocal sets externalTrafficPolicy Local with healthCheckNodePort hc.
func withLocal(hc int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = hc
	}
}

// withNodePort makes the service a NodePort one, port 80 on nodePort np.
func withNodePort(np int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports = []corev1.ServicePort{svcPort("", corev1.ProtocolTCP, 80, np)}
	}
}

// sliceOf is EndpointSlice ns/name of service svc, port 8080.
func sliceOf(ns, svc, name string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	s := eslice(name, http8080, eps...)
	s.Namespace = ns
	s.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	return s
}

const proxyNode = "node-a"

// proxyConfig serves NodePorts on 192.168.1.10 and 192.168.1.11 and allows
// external IPs in 203.0.113.0/24.
var proxyConfig = Config{
	Node:              proxyNode,
	NodePortAddresses: ips("192.168.1.10", "192.168.1.11"),
	ExternalIPCIDRs:   []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
}

// TestProxyApplyTouchesOnlyChanged: with 50 services programmed, each
// change to one of them programs that one only; reject routes change only
// when one of its addresses starts or stops being a service address, and
// health checks only when its healthCheckNodePort or count changes.
func TestProxyApplyTouchesOnlyChanged(t *testing.T) {
	h := newHarness(t, proxyConfig)
	for i := range 50 {
		name := fmt.Sprintf("svc-%02d", i)
		h.p.SetService(svcAt("default", name, fmt.Sprintf("10.96.1.%d", i+10)))
		h.p.SetEndpointSlice(sliceOf("default", name, name+"-x",
			ep(fmt.Sprintf("10.1.%d.1", i), "node-b"), ep(fmt.Sprintf("10.1.%d.2", i), "node-b")))
	}
	h.resync()
	if len(h.nat.syncs) != 1 || len(h.nat.syncs[0]) != 50 {
		t.Fatalf("Resync: NAT syncs %d, want one of 50 services", len(h.nat.syncs))
	}
	if len(h.routes.syncs) != 1 || len(h.routes.syncs[0].Routes) != 50 {
		t.Fatalf("Resync: route syncs %v, want one of 50 reject routes", h.routes.syncs)
	}

	const svc = "default/svc-17"
	steps := []struct {
		name     string
		change   func(p *Proxy)
		nat      []string // the mappings of the one NAT update, for svc
		routes   map[string]string
		health   []map[uint16]healthcheck.Service // nil: no Sync
		services int                              // len(Services()) after
	}{
		{
			name: "endpoint added",
			change: func(p *Proxy) {
				p.SetEndpointSlice(sliceOf("default", "svc-17", "svc-17-x",
					ep("10.1.17.1", "node-b"), ep("10.1.17.2", "node-b"), ep("10.1.17.3", "node-b")))
			},
			nat:      []string{"10.96.1.27:80/tcp -> 10.1.17.1:8080,10.1.17.2:8080,10.1.17.3:8080"},
			routes:   map[string]string{},
			services: 50,
		},
		{
			// The cluster IP was a reject route already: only ports
			// without a mapping reach it (see Output).
			name:     "all endpoints gone",
			change:   func(p *Proxy) { p.SetEndpointSlice(sliceOf("default", "svc-17", "svc-17-x")) },
			nat:      []string{},
			routes:   map[string]string{},
			services: 50,
		},
		{
			name:     "load-balancer ingress IP added",
			change:   func(p *Proxy) { p.SetService(svcAt("default", "svc-17", "10.96.1.27", withIngress("198.51.100.17"))) },
			nat:      []string{},
			routes:   map[string]string{"198.51.100.17/32": "unreachable"},
			services: 50,
		},
		{
			name: "externalTrafficPolicy Local with a local endpoint",
			change: func(p *Proxy) {
				p.SetService(svcAt("default", "svc-17", "10.96.1.27", withIngress("198.51.100.17"), withLocal(32017)))
				p.SetEndpointSlice(sliceOf("default", "svc-17", "svc-17-x", ep("10.1.17.1", proxyNode)))
			},
			nat:      []string{"10.96.1.27:80/tcp -> 10.1.17.1:8080", "198.51.100.17:80/tcp -> 10.1.17.1:8080"},
			routes:   map[string]string{},
			health:   []map[uint16]healthcheck.Service{{32017: {Namespace: "default", Name: "svc-17", LocalEndpoints: 1}}},
			services: 50,
		},
		{
			name:     "service deleted",
			change:   func(p *Proxy) { p.DeleteService("default", "svc-17") },
			nat:      []string{},
			routes:   map[string]string{"10.96.1.27/32": "removed", "198.51.100.17/32": "removed"},
			health:   []map[uint16]healthcheck.Service{{}},
			services: 49,
		},
	}
	for _, st := range steps {
		h.forget()
		st.change(h.p)
		h.apply()
		if got := h.updated(); !slices.Equal(got, []string{svc}) {
			t.Errorf("%s: NAT updates for %v, want exactly one for %s", st.name, got, svc)
			continue
		}
		if got := h.lastUpdate(svc); !slices.Equal(got, st.nat) {
			t.Errorf("%s: mappings %q, want %q", st.name, got, st.nat)
		}
		if got := h.routeChanges(); !reflect.DeepEqual(got, st.routes) {
			t.Errorf("%s: route changes %v, want %v", st.name, got, st.routes)
		}
		if !reflect.DeepEqual(h.health.syncs, st.health) {
			t.Errorf("%s: health syncs %v, want %v", st.name, h.health.syncs, st.health)
		}
		if len(h.nat.syncs)+len(h.routes.syncs) != 0 {
			t.Errorf("%s: Apply made a full sync", st.name)
		}
		if h.p.Pending() {
			t.Errorf("%s: still pending after Apply", st.name)
		}
		if got := len(h.p.Services()); got != st.services {
			t.Errorf("%s: %d services listed, want %d", st.name, got, st.services)
		}
	}

	h.forget()
	h.apply()
	if len(h.nat.updates)+len(h.routes.updates)+len(h.health.syncs) != 0 {
		t.Errorf("Apply with nothing changed: NAT %v, routes %v, health %v", h.updated(), h.routes.updates, h.health.syncs)
	}
}

// TestProxyResync: every service goes to NAT.Sync; every service IP
// (cluster IP, load-balancer ingress, allowed external IP) gets a reject
// route, except the node's own addresses, which must keep answering.
func TestProxyResync(t *testing.T) {
	cfg := proxyConfig
	cfg.ExternalIPCIDRs = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("192.168.1.0/24")}
	h := newHarness(t, cfg)
	h.p.SetService(svcAt("default", "cluster", "10.96.0.1"))
	h.p.SetEndpointSlice(sliceOf("default", "cluster", "cluster-x", ep("10.1.0.1", "node-b")))
	h.p.SetService(svcAt("default", "empty", "10.96.0.2"))
	h.p.SetService(svcAt("default", "lb", "10.96.0.3",
		withIngress("198.51.100.1", "192.168.1.10"),
		withExternalIPs("203.0.113.5", "192.168.1.11", "198.18.0.1"),
		withLocal(32000)))
	h.p.SetEndpointSlice(sliceOf("default", "lb", "lb-x", ep("10.1.0.2", proxyNode)))
	headless := svcAt("default", "headless", corev1.ClusterIPNone)
	h.p.SetService(headless)
	h.p.SetService(svcAt("default", "v6", "fd00::10"))

	problems := h.resync()
	if got, want := problemsOf(problems), []string{"default/lb " + ReasonExternalIPNotAllowed}; !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	if len(h.nat.syncs) != 1 {
		t.Fatalf("NAT syncs %d, want 1", len(h.nat.syncs))
	}
	gotNAT := map[string][]string{}
	for k, ms := range h.nat.syncs[0] {
		gotNAT[k] = describeMappings(ms)
	}
	wantNAT := map[string][]string{
		"default/cluster": {"10.96.0.1:80/tcp -> 10.1.0.1:8080"},
		"default/lb": {"10.96.0.3:80/tcp -> 10.1.0.2:8080", "192.168.1.10:80/tcp -> 10.1.0.2:8080",
			"192.168.1.11:80/tcp -> 10.1.0.2:8080", "198.51.100.1:80/tcp -> 10.1.0.2:8080", "203.0.113.5:80/tcp -> 10.1.0.2:8080"},
	}
	if !reflect.DeepEqual(gotNAT, wantNAT) {
		t.Errorf("NAT.Sync\n got %q\nwant %q", gotNAT, wantNAT)
	}
	if len(h.routes.syncs) != 1 {
		t.Fatalf("route syncs %d, want 1", len(h.routes.syncs))
	}
	gotRoutes := map[string]string{}
	for _, r := range h.routes.syncs[0].Routes {
		gotRoutes[r.Prefix.String()] = describeRoute(r)
	}
	wantRoutes := map[string]string{"10.96.0.1/32": "unreachable", "10.96.0.2/32": "unreachable",
		"10.96.0.3/32": "unreachable", "198.51.100.1/32": "unreachable", "203.0.113.5/32": "unreachable"}
	if !reflect.DeepEqual(gotRoutes, wantRoutes) {
		t.Errorf("reject routes\n got %v\nwant %v", gotRoutes, wantRoutes)
	}
	wantHealth := []map[uint16]healthcheck.Service{{32000: {Namespace: "default", Name: "lb", LocalEndpoints: 1}}}
	if !reflect.DeepEqual(h.health.syncs, wantHealth) {
		t.Errorf("health syncs %v, want %v", h.health.syncs, wantHealth)
	}
	if !h.p.Synced() || h.p.Pending() {
		t.Errorf("after Resync: synced %v pending %v, want synced and nothing pending", h.p.Synced(), h.p.Pending())
	}

	// A node address that stops being a service address is not routed
	// either: Apply must not "remove" a route it never made into one.
	h.forget()
	h.p.SetService(svcAt("default", "lb", "10.96.0.3", withIngress("198.51.100.1"), withExternalIPs("203.0.113.5"), withLocal(32000)))
	h.apply()
	for prefix, r := range h.routeChanges() {
		if r != "removed" {
			t.Errorf("route %s changed to %s, want no unreachable route", prefix, r)
		}
	}
	h.p.SetService(svcAt("default", "lb", "10.96.0.3", withIngress("198.51.100.1", "192.168.1.10"), withExternalIPs("192.168.1.11")))
	h.forget()
	h.apply()
	for prefix, r := range h.routeChanges() {
		if prefix == "192.168.1.10/32" || prefix == "192.168.1.11/32" {
			if r != "removed" {
				t.Errorf("node address %s got route %s in Apply", prefix, r)
			}
		}
	}
}

// TestProxyNotSynced: Apply programs nothing until a Resync succeeded on
// the current VPP connection.
func TestProxyNotSynced(t *testing.T) {
	fail := errors.New("vpp gone")
	tests := []struct {
		name  string
		setup func(h *harness)
	}{
		{"never resynced", func(*harness) {}},
		{"NAT sync failed", func(h *harness) {
			h.nat.syncErr = fail
			if _, err := h.p.Resync(context.Background()); !errors.Is(err, fail) {
				t.Errorf("Resync error %v, want %v", err, fail)
			}
		}},
		{"route sync failed", func(h *harness) {
			h.routes.err = fail
			if _, err := h.p.Resync(context.Background()); !errors.Is(err, fail) {
				t.Errorf("Resync error %v, want %v", err, fail)
			}
		}},
		{"invalidated after a resync", func(h *harness) {
			h.resync()
			h.p.Invalidate()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, proxyConfig)
			h.p.SetService(svcAt("default", "web", "10.96.0.1"))
			tt.setup(h)
			h.p.SetService(svcAt("default", "other", "10.96.0.2"))
			h.forget()
			if _, err := h.p.Apply(context.Background()); err == nil {
				t.Error("Apply succeeded, want an error: not synced")
			}
			if h.p.Synced() {
				t.Error("Synced() = true")
			}
			if len(h.nat.updates)+len(h.routes.updates)+len(h.health.syncs) != 0 {
				t.Errorf("Apply programmed something: NAT %v, routes %v", h.updated(), h.routes.updates)
			}
		})
	}
}

// TestProxyKeyConflict: two services asking for one external
// address:port/protocol (the same externalIP and port). VPP holds one
// mapping per key, so the first holder keeps it and the other is told
// (AddressInUse, a Note on its frontend). When the holder lets go, the
// waiting service takes the key in the same Apply.
func TestProxyProgrammingFailures(t *testing.T) {
	vppSaysNo := errors.New("vpp says no")
	// bad has an SCTP port besides TCP 80: one UnsupportedProtocol problem.
	bad := svcAt("default", "bad", "10.96.0.1")
	bad.Spec.Ports = append(bad.Spec.Ports, svcPort("sctp", corev1.ProtocolSCTP, 9, 0))
	steps := []struct {
		name     string
		change   func(h *harness)
		err      error  // nil: Apply succeeds
		errNames string // what the error must name
		updated  []string
		problems []string
		routes   map[string]string
		health   int // number of health Syncs
		pending  bool
	}{
		{
			name: "NAT update of one service fails",
			change: func(h *harness) {
				h.nat.fail = map[string]error{"default/bad": vppSaysNo}
				h.p.SetService(bad)
				h.p.SetEndpointSlice(sliceOf("default", "bad", "b", ep("10.1.0.1", "node-b")))
				h.p.SetService(svcAt("default", "good", "10.96.0.2"))
			},
			err:      vppSaysNo,
			errNames: "service default/bad",
			updated:  []string{"default/bad", "default/good"},
			problems: []string{"default/bad " + ReasonUnsupportedProtocol},
			routes:   map[string]string{"10.96.0.2/32": "unreachable"},
			pending:  true,
		},
		{
			name:     "still failing",
			change:   func(*harness) {},
			err:      vppSaysNo,
			updated:  []string{"default/bad"},
			problems: []string{"default/bad " + ReasonUnsupportedProtocol},
			routes:   map[string]string{},
			pending:  true,
		},
		{
			name:     "VPP accepts it",
			change:   func(h *harness) { h.nat.fail = nil },
			updated:  []string{"default/bad"},
			problems: []string{"default/bad " + ReasonUnsupportedProtocol},
			routes:   map[string]string{"10.96.0.1/32": "unreachable"},
		},
		{
			name: "route update fails",
			change: func(h *harness) {
				h.routes.err = vppSaysNo
				h.p.SetService(svcAt("default", "third", "10.96.0.3"))
			},
			err:     vppSaysNo,
			updated: []string{"default/third"},
			routes:  map[string]string{"10.96.0.3/32": "unreachable"},
			pending: true,
		},
		{
			name:    "route update retried",
			change:  func(h *harness) { h.routes.err = nil },
			routes:  map[string]string{"10.96.0.3/32": "unreachable"},
			pending: false,
		},
		{
			name: "health check sync fails",
			change: func(h *harness) {
				h.health.err = vppSaysNo
				h.p.SetService(svcAt("default", "third", "10.96.0.3", withNodePort(30003), withLocal(30103)))
			},
			err:     vppSaysNo,
			updated: []string{"default/third"},
			routes:  map[string]string{},
			health:  1,
			pending: true,
		},
		{
			name:   "health check sync retried",
			change: func(h *harness) { h.health.err = nil },
			routes: map[string]string{},
			health: 1,
		},
	}
	h := newHarness(t, proxyConfig)
	h.resync()
	for _, st := range steps {
		h.forget()
		st.change(h)
		problems, err := h.p.Apply(context.Background())
		switch {
		case st.err == nil && err != nil:
			t.Errorf("%s: Apply: %v", st.name, err)
		case st.err != nil && !errors.Is(err, st.err):
			t.Errorf("%s: Apply error %v, want %v", st.name, err, st.err)
		}
		if err != nil && !strings.Contains(err.Error(), st.errNames) {
			t.Errorf("%s: error %q does not name %q", st.name, err, st.errNames)
		}
		if got := h.updated(); !slices.Equal(got, st.updated) {
			t.Errorf("%s: NAT updates %v, want %v", st.name, got, st.updated)
		}
		if got := problemsOf(problems); !slices.Equal(got, st.problems) {
			t.Errorf("%s: problems %q, want %q", st.name, got, st.problems)
		}
		if got := h.routeChanges(); !reflect.DeepEqual(got, st.routes) {
			t.Errorf("%s: route changes %v, want %v", st.name, got, st.routes)
		}
		if got := len(h.health.syncs); got != st.health {
			t.Errorf("%s: %d health syncs, want %d", st.name, got, st.health)
		}
		if got := h.p.Pending(); got != st.pending {
			t.Errorf("%s: Pending() = %v, want %v", st.name, got, st.pending)
		}
	}
}

// TestProxyEndpointSlices: slices belong to the service their
// kubernetes.io/service-name label names, in their namespace.
func TestProxyEndpointSlices(t *testing.T) {
	unlabelled := sliceOf("default", "a", "s9", ep("10.1.0.9", "node-b"))
	unlabelled.Labels = nil
	tests := []struct {
		name   string
		change func(p *Proxy)
		want   map[string][]string // last NAT update per service; absent: none
	}{
		{
			name:   "slice without the service-name label ignored",
			change: func(p *Proxy) { p.SetEndpointSlice(unlabelled); p.DeleteEndpointSlice(unlabelled) },
			want:   map[string][]string{},
		},
		{
			name: "second slice of a service adds to it",
			change: func(p *Proxy) {
				p.SetEndpointSlice(sliceOf("default", "a", "s2", ep("10.1.0.2", "node-b")))
			},
			want: map[string][]string{"default/a": {"10.96.0.1:80/tcp -> 10.1.0.1:8080,10.1.0.2:8080"}},
		},
		{
			name: "slice relabelled to another service moves",
			change: func(p *Proxy) {
				p.SetEndpointSlice(sliceOf("default", "b", "s1", ep("10.1.0.1", "node-b")))
			},
			want: map[string][]string{"default/a": {}, "default/b": {"10.96.0.2:80/tcp -> 10.1.0.1:8080"}},
		},
		{
			name: "same slice name in another namespace is another slice",
			change: func(p *Proxy) {
				p.SetEndpointSlice(sliceOf("other", "a", "s1", ep("10.1.0.5", "node-b")))
			},
			want: map[string][]string{"other/a": {"10.96.0.3:80/tcp -> 10.1.0.5:8080"}},
		},
		{
			name:   "slice deleted",
			change: func(p *Proxy) { p.DeleteEndpointSlice(sliceOf("default", "a", "s1")) },
			want:   map[string][]string{"default/a": {}},
		},
		{
			name:   "service deleted",
			change: func(p *Proxy) { p.DeleteService("default", "a") },
			want:   map[string][]string{"default/a": {}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, proxyConfig)
			h.p.SetService(svcAt("default", "a", "10.96.0.1"))
			h.p.SetService(svcAt("default", "b", "10.96.0.2"))
			h.p.SetService(svcAt("other", "a", "10.96.0.3"))
			h.p.SetEndpointSlice(sliceOf("default", "a", "s1", ep("10.1.0.1", "node-b")))
			h.resync()
			h.forget()
			tt.change(h.p)
			h.apply()
			got := map[string][]string{}
			for _, u := range h.nat.updates {
				got[u.service] = describeMappings(u.mappings)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NAT updates\n got %q\nwant %q", got, tt.want)
			}
			// What Resync programs agrees with what Apply did.
			h.forget()
			h.p.Invalidate()
			h.resync()
			for svc, want := range tt.want {
				if got := describeMappings(h.nat.syncs[0][svc]); !slices.Equal(got, want) {
					t.Errorf("Resync after: %s maps %q, want %q", svc, got, want)
				}
			}
		})
	}
}

// TestProxySetConfig: node-level changes translate every service again;
// the same config changes nothing. A service IP that becomes one of the
// node's addresses loses its reject route, and gets it back when it stops
// being one.
func TestProxySetConfig(t *testing.T) {
	h := newHarness(t, proxyConfig)
	h.p.SetService(svcAt("default", "np", "10.96.0.1", withNodePort(30001)))
	h.p.SetService(svcAt("default", "lb", "10.96.0.2", withIngress("192.168.1.20")))
	h.p.SetService(svcAt("default", "plain", "10.96.0.3"))
	for _, name := range []string{"np", "lb", "plain"} {
		h.p.SetEndpointSlice(sliceOf("default", name, name, ep("10.1.0.1", "node-b")))
	}
	h.resync()

	moved := proxyConfig
	moved.NodePortAddresses = ips("192.168.1.10", "192.168.1.20")
	steps := []struct {
		name    string
		cfg     Config
		updated []string
		np      []string // default/np's mappings
		routes  map[string]string
	}{
		{name: "same config", cfg: proxyConfig, routes: map[string]string{}},
		{name: "a copy of the same config", cfg: Config{Node: proxyNode, NodePortAddresses: ips("192.168.1.10", "192.168.1.11"),
			ExternalIPCIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, routes: map[string]string{}},
		{
			name: "new NodePort addresses, one of them the LB IP", cfg: moved,
			updated: []string{"default/lb", "default/np", "default/plain"},
			np:      []string{"10.96.0.1:80/tcp -> 10.1.0.1:8080", "192.168.1.10:30001/tcp -> 10.1.0.1:8080", "192.168.1.20:30001/tcp -> 10.1.0.1:8080"},
			routes:  map[string]string{"192.168.1.20/32": "removed"},
		},
		{
			name: "back", cfg: proxyConfig,
			updated: []string{"default/lb", "default/np", "default/plain"},
			np:      []string{"10.96.0.1:80/tcp -> 10.1.0.1:8080", "192.168.1.10:30001/tcp -> 10.1.0.1:8080", "192.168.1.11:30001/tcp -> 10.1.0.1:8080"},
			routes:  map[string]string{"192.168.1.20/32": "unreachable"},
		},
		{
			name: "another node name", cfg: Config{Node: "node-b", NodePortAddresses: proxyConfig.NodePortAddresses,
				ExternalIPCIDRs: proxyConfig.ExternalIPCIDRs},
			updated: []string{"default/lb", "default/np", "default/plain"},
			np:      []string{"10.96.0.1:80/tcp -> 10.1.0.1:8080", "192.168.1.10:30001/tcp -> 10.1.0.1:8080", "192.168.1.11:30001/tcp -> 10.1.0.1:8080"},
			routes:  map[string]string{},
		},
		{
			// The zone decides which hinted endpoints serve.
			name: "a zone label", cfg: Config{Node: "node-b", NodePortAddresses: proxyConfig.NodePortAddresses,
				ExternalIPCIDRs: proxyConfig.ExternalIPCIDRs, Zone: "zone-a"},
			updated: []string{"default/lb", "default/np", "default/plain"},
			np:      []string{"10.96.0.1:80/tcp -> 10.1.0.1:8080", "192.168.1.10:30001/tcp -> 10.1.0.1:8080", "192.168.1.11:30001/tcp -> 10.1.0.1:8080"},
			routes:  map[string]string{},
		},
	}
	for _, st := range steps {
		h.forget()
		h.p.SetConfig(st.cfg)
		h.apply()
		if got := h.updated(); !slices.Equal(got, st.updated) {
			t.Errorf("%s: NAT updates %v, want %v", st.name, got, st.updated)
		}
		if st.np != nil {
			if got := h.lastUpdate("default/np"); !slices.Equal(got, st.np) {
				t.Errorf("%s: np maps %q, want %q", st.name, got, st.np)
			}
		}
		if got := h.routeChanges(); !reflect.DeepEqual(got, st.routes) {
			t.Errorf("%s: route changes %v, want %v", st.name, got, st.routes)
		}
	}
}

// TestProxyServices: Services lists what is programmed or refused, by
// namespace/name; headless services and deleted ones are not listed.
func TestProxyServices(t *testing.T) {
	h := newHarness(t, proxyConfig)
	h.resync()
	h.p.SetService(svcAt("kube-system", "dns", "10.96.0.10"))
	h.p.SetEndpointSlice(sliceOf("kube-system", "dns", "d", ep("10.1.0.10", "node-b")))
	h.p.SetService(svcAt("default", "web", "10.96.0.1", withExternalIPs("198.18.0.1")))
	h.p.SetService(svcAt("default", "headless", corev1.ClusterIPNone))
	h.p.SetService(svcAt("default", "gone", "10.96.0.2"))
	h.apply()
	h.p.DeleteService("default", "gone")
	h.apply()

	got := h.p.Services()
	var names []string
	for _, st := range got {
		names = append(names, st.Service)
	}
	if want := []string{"default/web", "kube-system/dns"}; !slices.Equal(names, want) {
		t.Fatalf("Services() = %v, want %v", names, want)
	}
	web, dns := got[0], got[1]
	if len(web.Problems) != 1 || !strings.Contains(web.Problems[0], "198.18.0.1") {
		t.Errorf("web problems %q, want one naming the refused external IP", web.Problems)
	}
	wantDNS := []Frontend{fe(ClusterIP, "80", "10.96.0.10:80", nat44ed.TCP, "", "10.1.0.10:8080")}
	if !reflect.DeepEqual(dns.Frontends, wantDNS) || len(dns.Problems) != 0 {
		t.Errorf("dns: frontends %+v problems %q, want %+v and none", dns.Frontends, dns.Problems, wantDNS)
	}
}
