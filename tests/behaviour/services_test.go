// Package behaviour holds the behaviour tests of DESIGN.md: manifests in,
// the agent and a simulated VPP in this process (package offline), packets
// evaluated. Every expected verdict and translation below was written
// from Kubernetes' semantics before the code was run.
package behaviour

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/offline"
)

// Interfaces of node-a the paths name.
const uplink = offline.Uplink

type env struct {
	t   *testing.T
	ctx context.Context
	c   *ctl.Client
	dir string
}

func (e *env) trace(from, to, proto string, count int) []ctl.TracePacket {
	e.t.Helper()
	rep, err := e.c.Trace(e.ctx, ctl.TraceRequest{From: from, To: to, Protocol: proto, Count: count})
	if err != nil {
		e.t.Fatalf("trace %s -> %s/%s: %v", from, to, proto, err)
	}
	if len(rep.Packets) != max(count, 1) {
		e.t.Fatalf("trace %s -> %s/%s: %d packets, want %d", from, to, proto, len(rep.Packets), count)
	}
	return rep.Packets
}

func dnat(p ctl.TracePacket) string {
	for _, t := range p.Translations {
		if t.Kind == "dnat" {
			return t.To
		}
	}
	return ""
}

func snat(p ctl.TracePacket) string {
	for _, t := range p.Translations {
		if t.Kind == "snat" {
			return t.To
		}
	}
	return ""
}

// denial is why an ACL denied p, "" when none did.
func denial(p ctl.TracePacket) string {
	for _, d := range p.Policy {
		if d.Action == "deny" {
			return d.Why
		}
	}
	return ""
}

func hostOf(addrPort string) string {
	h, _, _ := net.SplitHostPort(addrPort)
	return h
}

// podIface is the VPP interface of a pod of node-a.
func (e *env) podIface(ns, name string) string {
	e.t.Helper()
	list, err := e.c.Pods(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range list {
		if p.Namespace == ns && p.Name == name && len(p.Interfaces) > 0 {
			return p.Interfaces[0].Name
		}
	}
	e.t.Fatalf("pod %s/%s not plumbed on node-a", ns, name)
	return ""
}

// forwardedTo checks one packet: forwarded, DNAT to one of backends, out
// of the interface that reaches the chosen backend.
func (e *env) forwardedTo(p ctl.TracePacket, backends map[string]string) string {
	e.t.Helper()
	got := dnat(p)
	if p.Verdict != "forwarded" {
		e.t.Fatalf("%s: verdict %s (%s), want forwarded", p, p.Verdict, p.Reason)
	}
	egress, ok := backends[got]
	if !ok {
		e.t.Fatalf("%s: DNAT to %q, want one of %v", p, got, keys(backends))
	}
	if p.Egress == nil || p.Egress.Name != egress {
		e.t.Fatalf("%s: egress %v, want %s", p, p.Egress, egress)
	}
	return got
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// waitBackends waits until the agent shows frontend with exactly want.
func (e *env) waitBackends(service, frontend string, want []string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []string
	for time.Now().Before(deadline) {
		list, err := e.c.Services(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, s := range list {
			if s.Service != service {
				continue
			}
			for _, f := range s.Frontends {
				if f.Address.String() == frontend {
					last = last[:0]
					for _, b := range f.Backends {
						last = append(last, b.String())
					}
					slices.Sort(last)
				}
			}
		}
		if slices.Equal(last, want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s %s: backends %v, want %v", service, frontend, last, want)
}

func TestServices(t *testing.T) {
	dir := t.TempDir()
	hcPort, hcHere, healthz := freePort(t), freePort(t), freePort(t)
	write(t, dir, "cluster.yaml", clusterYAML)
	write(t, dir, "services.yaml", fmt.Sprintf(servicesYAML, hcPort, hcHere))
	write(t, dir, "web-slices.yaml", webSlices(true))
	write(t, dir, "slices.yaml", otherSlices())

	node, err := offline.PickNode(dir, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := offline.Options{Log: zaptest.NewLogger(t), Args: []string{"--external-ip-cidrs", "192.0.2.0/24", "--health-check-addresses", "127.0.0.1",
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", healthz)}}
	err = offline.Run(ctx, dir, node, opts, func(ctx context.Context, c *ctl.Client) error {
		e := &env{t: t, ctx: ctx, c: c, dir: dir}
		webA, webA2 := e.podIface("default", "web-a"), e.podIface("default", "web-a2")
		web8080 := map[string]string{"10.244.0.11:8080": webA, "10.244.0.12:8080": webA2, "10.244.1.11:8080": uplink}

		t.Run("ClusterIP TCP reaches every endpoint", func(t *testing.T) {
			e := *e
			e.t = t
			seen := map[string]int{}
			for _, p := range e.trace("default/client", "10.96.0.20:80", "tcp", 300) {
				seen[e.forwardedTo(p, web8080)]++
				if s := snat(p); s != "" {
					t.Fatalf("%s: source rewritten to %s; a pod's ClusterIP traffic keeps its address", p, s)
				}
			}
			if len(seen) != 3 {
				t.Errorf("300 connections reached %v, want all three endpoints", seen)
			}
		})
		t.Run("multi-port: 443 goes to 8443", func(t *testing.T) {
			e := *e
			e.t = t
			b := map[string]string{"10.244.0.11:8443": webA, "10.244.0.12:8443": webA2, "10.244.1.11:8443": uplink}
			for _, p := range e.trace("default/client", "10.96.0.20:443", "tcp", 30) {
				e.forwardedTo(p, b)
			}
		})
		t.Run("remote endpoint leaves through the uplink to node-b", func(t *testing.T) {
			e := *e
			e.t = t
			for _, p := range e.trace("default/client", "10.96.0.20:80", "tcp", 60) {
				if dnat(p) == "10.244.1.11:8080" && p.NextHop != "192.168.10.12" {
					t.Fatalf("%s: next hop %q, want node-b 192.168.10.12", p, p.NextHop)
				}
			}
		})
		t.Run("ClusterIP UDP and TCP on one port", func(t *testing.T) {
			e := *e
			e.t = t
			b := map[string]string{"10.244.0.11:5353": webA}
			e.forwardedTo(e.trace("default/client", "10.96.0.10:53", "udp", 1)[0], b)
			e.forwardedTo(e.trace("default/client", "10.96.0.10:53", "tcp", 1)[0], b)
		})
		t.Run("NodePort on each node address, masqueraded", func(t *testing.T) {
			e := *e
			e.t = t
			b := map[string]string{"10.244.0.11:8080": webA, "10.244.1.11:8080": uplink}
			for _, addr := range []string{"192.168.10.11:30080", "203.0.113.50:30080"} {
				for _, p := range e.trace("198.51.100.7", addr, "tcp", 20) {
					e.forwardedTo(p, b)
					// externalTrafficPolicy Cluster: the source becomes this
					// node's (its pod gateway), so the backend replies here.
					if s := snat(p); hostOf(s) != "10.244.0.1" {
						t.Fatalf("%s: SNAT to %q, want 10.244.0.1:*", p, s)
					}
				}
			}
			if p := e.trace("198.51.100.7", "192.168.10.12:30080", "tcp", 1)[0]; dnat(p) != "" {
				t.Errorf("%s: node-b's address is not node-a's to serve", p)
			}
		})
		t.Run("LoadBalancer ingress IP", func(t *testing.T) {
			e := *e
			e.t = t
			e.forwardedTo(e.trace("198.51.100.7", "198.18.0.10:80", "tcp", 1)[0], map[string]string{"10.244.0.11:8080": webA})
		})
		t.Run("kube-proxy's /healthz and /livez, which cloud load balancers probe", func(t *testing.T) {
			for _, path := range []string{"/healthz", "/livez"} {
				code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d%s", healthz, path))
				if code != http.StatusOK || body["healthy"] != true {
					t.Errorf("%s: %d %v, want 200 and healthy: the services are programmed", path, code, body)
				}
				if _, shown := body["nodeEligible"]; shown != (path == "/healthz") || shown && body["nodeEligible"] != true {
					t.Errorf("%s: nodeEligible %v, want true on /healthz only", path, body["nodeEligible"])
				}
			}
		})
		t.Run("loadBalancerSourceRanges: only the ranges reach the LB IP", func(t *testing.T) {
			e := *e
			e.t = t
			to := map[string]string{"10.244.0.11:8080": webA}
			// Inside the ranges: an outside client and the client pod.
			e.forwardedTo(e.trace("198.51.100.7", "198.18.0.11:80", "tcp", 1)[0], to)
			e.forwardedTo(e.trace("default/client", "198.18.0.11:80", "tcp", 1)[0], to)
			// Outside them: dropped before any translation, by the
			// service's firewall, from outside and from a pod alike.
			for _, from := range []string{"198.51.100.200", "default/web-a2"} {
				p := e.trace(from, "198.18.0.11:80", "tcp", 1)[0]
				if p.Verdict != "dropped" || dnat(p) != "" {
					t.Errorf("%s: verdict %s, DNAT %q; want dropped untranslated", p, p.Verdict, dnat(p))
				}
				if why := denial(p); !strings.Contains(why, "service default/lbfw: outside its loadBalancerSourceRanges") {
					t.Errorf("%s: denied by %q, want the source ranges of default/lbfw", p, why)
				}
			}
			// The ranges restrict the LB IP only: the cluster IP, the
			// node port and other LB IPs stay open to everyone.
			e.forwardedTo(e.trace("default/web-a2", "10.96.0.23:80", "tcp", 1)[0], to)
			e.forwardedTo(e.trace("198.51.100.200", "192.168.10.11:30083", "tcp", 1)[0], to)
			e.forwardedTo(e.trace("198.51.100.200", "198.18.0.10:80", "tcp", 1)[0], to)

			// Ranges changed on the live agent: the new client is let in
			// after one sync, and taking it out again shuts it out.
			services := fmt.Sprintf(servicesYAML, hcPort, hcHere)
			widened := strings.Replace(services, "[198.51.100.0/25, 10.244.0.10/32]", "[198.51.100.0/24, 10.244.0.10/32]", 1)
			for _, step := range []struct {
				yaml, verdict string
			}{{widened, "forwarded"}, {services, "dropped"}} {
				write(t, dir, "services.yaml", step.yaml)
				deadline := time.Now().Add(20 * time.Second)
				for {
					p := e.trace("198.51.100.200", "198.18.0.11:80", "tcp", 1)[0]
					if p.Verdict == step.verdict {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after the ranges changed: %s, want %s", p, step.verdict)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
		t.Run("external IPs: allowed served, outside the allowed CIDRs refused with an Event", func(t *testing.T) {
			e := *e
			e.t = t
			e.forwardedTo(e.trace("default/client", "192.0.2.10:80", "tcp", 1)[0], map[string]string{"10.244.0.11:8080": webA})
			if p := e.trace("default/client", "198.51.100.99:80", "tcp", 1)[0]; dnat(p) != "" {
				t.Errorf("%s: an external IP outside 192.0.2.0/24 was translated", p)
			}
			e.waitEvent("Service", "default/ext", "ExternalIPNotAllowed", "198.51.100.99")
		})
		t.Run("SCTP refused with an Event", func(t *testing.T) {
			e := *e
			e.t = t
			e.waitEvent("Service", "default/sctp", "UnsupportedProtocol", "SCTP")
		})
		t.Run("affinity keeps one client on one backend; clients spread", func(t *testing.T) {
			e := *e
			e.t = t
			first := ""
			for _, p := range e.trace("default/client", "10.96.0.30:80", "tcp", 100) {
				got := e.forwardedTo(p, web8080)
				if first == "" {
					first = got
				}
				if got != first {
					t.Fatalf("connection went to %s after %s: affinity broken", got, first)
				}
			}
			seen := map[string]bool{}
			for i := 1; i <= 60; i++ {
				p := e.trace(fmt.Sprintf("198.51.100.%d", i), "10.96.0.30:80", "tcp", 1)[0]
				seen[e.forwardedTo(p, web8080)] = true
			}
			if len(seen) != 3 {
				t.Errorf("60 clients reached %v, want all three endpoints", seen)
			}
		})
		t.Run("externalTrafficPolicy Local without a local endpoint", func(t *testing.T) {
			e := *e
			e.t = t
			// NodePort traffic is dropped on this node ...
			for _, addr := range []string{"192.168.10.11:30090", "203.0.113.50:30090"} {
				p := e.trace("198.51.100.7", addr, "tcp", 1)[0]
				if p.Verdict != "dropped" || dnat(p) != "" {
					t.Errorf("%s: want dropped, untranslated", p)
				}
			}
			// So is LoadBalancer traffic from outside, before any
			// translation, as kube-proxy drops it (not rejected).
			if p := e.trace("198.51.100.7", "198.18.0.12:80", "tcp", 1)[0]; p.Verdict != "dropped" || dnat(p) != "" ||
				!strings.Contains(denial(p), "externalTrafficPolicy Local and no endpoint on this node") {
				t.Errorf("%s: want dropped untranslated by the service's firewall, denied by %q", p, denial(p))
			}
			// A pod is served as through the cluster IP, as kube-proxy
			// does for pods: node-b's endpoint, on the LB IP and the
			// node port alike.
			for _, to := range []string{"198.18.0.12:80", "192.168.10.11:30090"} {
				e.forwardedTo(e.trace("default/client", to, "tcp", 1)[0], map[string]string{"10.244.1.11:8080": uplink})
			}
			// ... while the ClusterIP still reaches node-b's endpoint.
			e.forwardedTo(e.trace("default/client", "10.96.0.40:80", "tcp", 1)[0], map[string]string{"10.244.1.11:8080": uplink})
			// The health check says so, as kube-proxy's does.
			code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", hcPort))
			if code != http.StatusServiceUnavailable || body["localEndpoints"] != float64(0) {
				t.Errorf("health check: %d %v, want 503 with localEndpoints 0", code, body)
			}
		})
		t.Run("externalTrafficPolicy Local with a local endpoint", func(t *testing.T) {
			e := *e
			e.t = t
			// Only the local endpoint, and the client keeps its address.
			for _, p := range e.trace("198.51.100.7", "192.168.10.11:30091", "tcp", 20) {
				e.forwardedTo(p, map[string]string{"10.244.0.11:8080": webA})
				if s := snat(p); s != "" {
					t.Fatalf("%s: source rewritten to %s; externalTrafficPolicy Local keeps the client's", p, s)
				}
			}
			// The ClusterIP still uses both endpoints.
			seen := map[string]bool{}
			for _, p := range e.trace("default/client", "10.96.0.41:80", "tcp", 40) {
				seen[e.forwardedTo(p, map[string]string{"10.244.0.11:8080": webA, "10.244.1.11:8080": uplink})] = true
			}
			if len(seen) != 2 {
				t.Errorf("ClusterIP of an externalTrafficPolicy Local service reached %v, want both endpoints", seen)
			}
			code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", hcHere))
			if code != http.StatusOK || body["localEndpoints"] != float64(1) {
				t.Errorf("health check: %d %v, want 200 with localEndpoints 1", code, body)
			}
		})
		t.Run("internalTrafficPolicy Local", func(t *testing.T) {
			e := *e
			e.t = t
			for _, p := range e.trace("default/client", "10.96.0.42:80", "tcp", 40) {
				e.forwardedTo(p, map[string]string{"10.244.0.11:8080": webA})
			}
			// Its endpoints all on node-b: dropped, as kube-proxy does,
			// not rejected (the service has endpoints, just not here).
			p := e.trace("default/client", "10.96.0.43:80", "tcp", 1)[0]
			if p.Verdict != "dropped" || dnat(p) != "" || !strings.Contains(denial(p), "internalTrafficPolicy Local and no endpoint on this node") {
				t.Errorf("%s: want dropped untranslated by the service's firewall, denied by %q", p, denial(p))
			}
		})
		t.Run("no endpoints rejects", func(t *testing.T) {
			e := *e
			e.t = t
			p := e.trace("default/client", "10.96.0.50:80", "tcp", 1)[0]
			if p.Verdict != "rejected" {
				t.Errorf("%s: want rejected (ICMP unreachable), not a silent drop", p)
			}
			// A port the service does not have is rejected too.
			if p := e.trace("default/client", "10.96.0.20:8081", "tcp", 1)[0]; p.Verdict != "rejected" {
				t.Errorf("%s: want rejected", p)
			}
		})
		t.Run("hairpin: a pod reaches itself through its service", func(t *testing.T) {
			e := *e
			e.t = t
			p := e.trace("default/web-a", "10.96.0.60:80", "tcp", 1)[0]
			e.forwardedTo(p, map[string]string{"10.244.0.11:8080": webA})
			if s := snat(p); hostOf(s) != "10.244.0.1" {
				t.Errorf("%s: SNAT to %q, want the node's 10.244.0.1 so the reply returns through VPP", p, s)
			}
		})
		t.Run("terminating endpoints only when no ready one", func(t *testing.T) {
			e := *e
			e.t = t
			e.forwardedTo(e.trace("default/client", "10.96.0.70:80", "tcp", 1)[0], map[string]string{"10.244.0.12:8080": webA2})
			for _, p := range e.trace("default/client", "10.96.0.71:80", "tcp", 30) {
				e.forwardedTo(p, map[string]string{"10.244.0.11:8080": webA})
			}
		})
		t.Run("headless left alone", func(t *testing.T) {
			e := *e
			e.t = t
			list, err := c.Services(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range list {
				if s.Service == "default/headless" && len(s.Frontends) > 0 {
					t.Errorf("headless service programmed: %+v", s)
				}
			}
		})
		t.Run("an endpoint removed, then added, after one sync", func(t *testing.T) {
			e := *e
			e.t = t
			write(t, dir, "web-slices.yaml", webSlices(false))
			e.waitBackends("default/web", "10.96.0.20:80", []string{"10.244.0.11:8080", "10.244.1.11:8080"})
			for _, p := range e.trace("default/client", "10.96.0.20:80", "tcp", 100) {
				if e.forwardedTo(p, web8080) == "10.244.0.12:8080" {
					t.Fatalf("%s: went to the removed endpoint", p)
				}
			}
			write(t, dir, "web-slices.yaml", webSlices(true))
			e.waitBackends("default/web", "10.96.0.20:80", []string{"10.244.0.11:8080", "10.244.0.12:8080", "10.244.1.11:8080"})
			seen := map[string]bool{}
			for _, p := range e.trace("default/client", "10.96.0.20:80", "tcp", 300) {
				seen[e.forwardedTo(p, web8080)] = true
			}
			if !seen["10.244.0.12:8080"] {
				t.Errorf("300 connections never reached the endpoint added back: %v", seen)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) waitEvent(kind, object, reason, mention string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		evs, err := e.c.Events(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Kind == kind && ev.Object == object && ev.Reason == reason && strings.Contains(ev.Message, mention) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Errorf("no Warning Event %s on %s %s mentioning %q", reason, kind, object, mention)
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: body %q: %v", url, b, err)
	}
	return resp.StatusCode, body
}
