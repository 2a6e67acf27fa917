package services

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/services/healthcheck"
)

func TestProxyKeyConflict(t *testing.T) {
	tests := []struct {
		name, holder, waiter string
		// waiterChanges: the waiter's slice changes in the Apply that
		// deletes the holder, so it is translated before the key is free.
		waiterChanges bool
	}{
		{name: "holder sorts first", holder: "a-holder", waiter: "b-waiter"},
		{name: "waiter sorts first", holder: "b-holder", waiter: "a-waiter"},
		{name: "waiter changed with the holder's deletion", holder: "b-holder", waiter: "a-waiter", waiterChanges: true},
	}
	const shared = "203.0.113.5:80/tcp"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holder, waiter := "default/"+tt.holder, "default/"+tt.waiter
			h := newHarness(t, proxyConfig)
			h.resync()
			h.p.SetService(svcAt("default", tt.holder, "10.96.0.1", withExternalIPs("203.0.113.5")))
			h.p.SetEndpointSlice(sliceOf("default", tt.holder, "h", ep("10.1.0.1", "node-b")))
			h.apply()

			h.forget()
			h.p.SetService(svcAt("default", tt.waiter, "10.96.0.2", withExternalIPs("203.0.113.5")))
			h.p.SetEndpointSlice(sliceOf("default", tt.waiter, "w", ep("10.1.0.2", "node-b")))
			problems := h.apply()
			if got, want := problemsOf(problems), []string{waiter + " AddressInUse"}; !slices.Equal(got, want) {
				t.Errorf("waiter added: problems %q, want %q", got, want)
			}
			if got, want := h.lastUpdate(waiter), []string{"10.96.0.2:80/tcp -> 10.1.0.2:8080"}; !slices.Equal(got, want) {
				t.Errorf("waiter added: waiter's mappings %q, want %q", got, want)
			}
			if slices.Contains(h.updated(), holder) {
				t.Errorf("waiter added: holder updated too (%v)", h.updated())
			}
			if got, want := h.routeChanges(), map[string]string{"10.96.0.2/32": "unreachable"}; !reflect.DeepEqual(got, want) {
				t.Errorf("waiter added: route changes %v, want %v", got, want)
			}
			f := externalFrontend(t, h.p, waiter)
			if len(f.Backends) != 0 || !strings.Contains(f.Note, "served by service "+holder) {
				t.Errorf("waiter's external frontend %+v, want no backends and a note naming %s", f, holder)
			}

			// The holder's endpoints change: it keeps the key.
			h.forget()
			h.p.SetEndpointSlice(sliceOf("default", tt.holder, "h", ep("10.1.0.1", "node-b"), ep("10.1.0.3", "node-b")))
			problems = h.apply()
			if got := h.lastUpdate(holder); !slices.Contains(got, shared+" -> 10.1.0.1:8080,10.1.0.3:8080") {
				t.Errorf("holder changed: holder's mappings %q, want it to keep %s", got, shared)
			}
			if n := strings.Count(strings.Join(problemsOf(problems), "\n"), waiter+" AddressInUse"); n > 1 {
				t.Errorf("holder changed: %s reported %d times in one Apply", waiter, n)
			}

			// The holder goes: the waiter takes the key in this Apply.
			h.forget()
			h.p.DeleteService("default", tt.holder)
			h.p.DeleteEndpointSlice(sliceOf("default", tt.holder, "h"))
			if tt.waiterChanges {
				h.p.SetEndpointSlice(sliceOf("default", tt.waiter, "w", ep("10.1.0.2", "node-b"), ep("10.1.0.4", "node-b")))
			}
			problems = h.apply()
			if len(problems) != 0 {
				t.Errorf("holder deleted: problems %q, want none", problemsOf(problems))
			}
			locals := "10.1.0.2:8080"
			if tt.waiterChanges {
				locals += ",10.1.0.4:8080"
			}
			want := []string{"10.96.0.2:80/tcp -> " + locals, shared + " -> " + locals}
			if got := h.lastUpdate(waiter); !slices.Equal(got, want) {
				t.Errorf("holder deleted: waiter's mappings %q, want %q", got, want)
			}
			if h.p.Pending() {
				t.Error("holder deleted: still pending")
			}
			// The external IP is still a service address: its route stays.
			if got, want := h.routeChanges(), map[string]string{"10.96.0.1/32": "removed"}; !reflect.DeepEqual(got, want) {
				t.Errorf("holder deleted: route changes %v, want %v", got, want)
			}
			if f := externalFrontend(t, h.p, waiter); f.Note != "" || len(f.Backends) == 0 {
				t.Errorf("holder deleted: waiter's external frontend %+v, want backends and no note", f)
			}
		})
	}
}

// TestProxyKeyHolderKeepsItAcrossResync: a VPP reconnect does not hand a
// held key to the service waiting for it, whatever the names' order.
func TestProxyKeyHolderKeepsItAcrossResync(t *testing.T) {
	h := newHarness(t, proxyConfig)
	h.resync()
	h.p.SetService(svcAt("default", "b-holder", "10.96.0.1", withExternalIPs("203.0.113.5")))
	h.p.SetEndpointSlice(sliceOf("default", "b-holder", "h", ep("10.1.0.1", "node-b")))
	h.apply()
	h.p.SetService(svcAt("default", "a-waiter", "10.96.0.2", withExternalIPs("203.0.113.5")))
	h.p.SetEndpointSlice(sliceOf("default", "a-waiter", "w", ep("10.1.0.2", "node-b")))
	h.apply()

	h.forget()
	h.p.Invalidate()
	problems := h.resync()
	if got, want := problemsOf(problems), []string{"default/a-waiter AddressInUse"}; !slices.Equal(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	got := map[string][]string{}
	for k, ms := range h.nat.syncs[0] {
		got[k] = describeMappings(ms)
	}
	want := map[string][]string{
		"default/b-holder": {"10.96.0.1:80/tcp -> 10.1.0.1:8080", "203.0.113.5:80/tcp -> 10.1.0.1:8080"},
		"default/a-waiter": {"10.96.0.2:80/tcp -> 10.1.0.2:8080"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NAT.Sync\n got %q\nwant %q", got, want)
	}
	// And the waiter still takes it once the holder goes.
	h.forget()
	h.p.DeleteService("default", "b-holder")
	h.apply()
	if got := h.lastUpdate("default/a-waiter"); !slices.Contains(got, "203.0.113.5:80/tcp -> 10.1.0.2:8080") {
		t.Errorf("holder deleted: waiter's mappings %q, want 203.0.113.5:80/tcp", got)
	}
}

// externalFrontend is the ExternalIP frontend of service in Services().
func externalFrontend(t *testing.T, p *Proxy, service string) Frontend {
	t.Helper()
	for _, st := range p.Services() {
		if st.Service != service {
			continue
		}
		for _, f := range st.Frontends {
			if f.Kind == ExternalIP {
				return f
			}
		}
	}
	t.Fatalf("no ExternalIP frontend of %s in Services()", service)
	return Frontend{}
}

// TestProxySharedRejectIP: one load-balancer IP serving two services on
// different ports keeps its reject route while either service has it.
func TestProxySharedRejectIP(t *testing.T) {
	one := svcAt("default", "one", "10.96.0.1", withIngress("198.51.100.9"))
	two := svcAt("default", "two", "10.96.0.2", withIngress("198.51.100.9"))
	two.Spec.Ports = []corev1.ServicePort{svcPort("", corev1.ProtocolTCP, 443, 0)}
	steps := []struct {
		name   string
		change func(p *Proxy)
		routes map[string]string
	}{
		{"first service", func(p *Proxy) { p.SetService(one) },
			map[string]string{"10.96.0.1/32": "unreachable", "198.51.100.9/32": "unreachable"}},
		{"second service on another port", func(p *Proxy) { p.SetService(two) },
			map[string]string{"10.96.0.2/32": "unreachable"}},
		{"first service deleted", func(p *Proxy) { p.DeleteService("default", "one") },
			map[string]string{"10.96.0.1/32": "removed"}},
		{"second service deleted", func(p *Proxy) { p.DeleteService("default", "two") },
			map[string]string{"10.96.0.2/32": "removed", "198.51.100.9/32": "removed"}},
	}
	h := newHarness(t, proxyConfig)
	h.resync()
	for _, st := range steps {
		h.forget()
		st.change(h.p)
		h.apply()
		if got := h.routeChanges(); !reflect.DeepEqual(got, st.routes) {
			t.Errorf("%s: route changes %v, want %v", st.name, got, st.routes)
		}
	}
}

// TestProxyHealthChecks: an externalTrafficPolicy Local service's
// healthCheckNodePort reports its ready endpoints on this node, as
// kube-proxy's health server does; the port goes with the policy or the
// service.
func TestProxyHealthChecks(t *testing.T) {
	web := func(mods ...func(*corev1.Service)) *corev1.Service {
		return svcAt("default", "web", "10.96.0.1", append([]func(*corev1.Service){withNodePort(30080)}, mods...)...)
	}
	local := func(n int) []map[uint16]healthcheck.Service {
		return []map[uint16]healthcheck.Service{{30100: {Namespace: "default", Name: "web", LocalEndpoints: n}}}
	}
	gone := []map[uint16]healthcheck.Service{{}}
	steps := []struct {
		name   string
		change func(p *Proxy)
		want   []map[uint16]healthcheck.Service // nil: no Sync
	}{
		{"Local with one local and one remote endpoint", func(p *Proxy) {
			p.SetService(web(withLocal(30100)))
			p.SetEndpointSlice(sliceOf("default", "web", "s", ep("10.1.0.1", proxyNode), ep("10.1.0.2", "node-b")))
		}, local(1)},
		{"second local endpoint", func(p *Proxy) {
			p.SetEndpointSlice(sliceOf("default", "web", "s", ep("10.1.0.1", proxyNode), ep("10.1.0.2", "node-b"), ep("10.1.0.3", proxyNode)))
		}, local(2)},
		{"remote endpoint added: count unchanged", func(p *Proxy) {
			p.SetEndpointSlice(sliceOf("default", "web", "s", ep("10.1.0.1", proxyNode), ep("10.1.0.2", "node-b"),
				ep("10.1.0.3", proxyNode), ep("10.1.0.4", "node-b")))
		}, nil},
		{"a local endpoint not ready", func(p *Proxy) {
			p.SetEndpointSlice(sliceOf("default", "web", "s", ep("10.1.0.1", proxyNode), ep("10.1.0.2", "node-b"),
				cond("10.1.0.3", proxyNode, false, false, false), ep("10.1.0.4", "node-b")))
		}, local(1)},
		{"no local endpoints left", func(p *Proxy) {
			p.SetEndpointSlice(sliceOf("default", "web", "s", ep("10.1.0.2", "node-b")))
		}, local(0)},
		{"policy back to Cluster", func(p *Proxy) { p.SetService(web()) }, gone},
		{"Local again", func(p *Proxy) { p.SetService(web(withLocal(30100))) }, local(0)},
		{"service deleted", func(p *Proxy) { p.DeleteService("default", "web") }, gone},
	}
	h := newHarness(t, proxyConfig)
	h.resync()
	for _, st := range steps {
		h.forget()
		st.change(h.p)
		h.apply()
		if !reflect.DeepEqual(h.health.syncs, st.want) {
			t.Errorf("%s: health syncs %v, want %v", st.name, h.health.syncs, st.want)
		}
	}
}

// TestProxyProgrammingFailures: a service whose NAT update fails stays
// pending and is tried again at the next Apply, without holding up the
// others; its problems are reported once in each Apply. A failed route or
// health-check update is tried again too.

func TestHealthProblems(t *testing.T) {
	bind := &healthcheck.PortError{Service: healthcheck.Service{Namespace: "shop", Name: "lb"}, Port: 32000,
		Err: errors.New("address already in use")}
	other := errors.New("health check servers closed")
	problems, err := healthProblems(errors.Join(bind, other))
	if len(problems) != 1 || problems[0].Service != "shop/lb" || problems[0].Reason != ReasonHealthCheckFailed ||
		problems[0].Field != "spec.healthCheckNodePort" || !strings.Contains(problems[0].Error(), "port 32000: address already in use") {
		t.Errorf("problems = %+v", problems)
	}
	if !errors.Is(err, other) || errors.Is(err, bind) {
		t.Errorf("remaining error = %v, want only the non-port one", err)
	}
	if p, err := healthProblems(nil); p != nil || err != nil {
		t.Errorf("healthProblems(nil) = %v, %v", p, err)
	}
}
