package behaviour

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// peer matches the pods (by "ns/name") or outside addresses a reachability
// expectation speaks of.
type peer func(name string) bool

func anyone(string) bool { return true }

func ns(name string) peer { return func(s string) bool { return strings.HasPrefix(s, name+"/") } }

func is(names ...string) peer { return func(s string) bool { return slices.Contains(names, s) } }

// reach is an expected reachability matrix, as upstream's Reachability:
// everything allowed, then each rule in order sets the cells it matches.
type reach []reachRule

type reachRule struct {
	from, to peer
	allowed  bool
}

func allAllowed() reach { return nil }

func (r reach) deny(from, to peer) reach {
	return append(slices.Clip(r), reachRule{from: from, to: to})
}

func (r reach) allow(from, to peer) reach {
	return append(slices.Clip(r), reachRule{from: from, to: to, allowed: true})
}

func (r reach) allows(from, to string) bool {
	ok := true
	for _, rule := range r {
		if rule.from(from) && rule.to(to) {
			ok = rule.allowed
		}
	}
	return ok
}

// target is one column: an address probed and the pod behind it.
type target struct {
	label   string
	addr    netip.AddrPort
	backend *netpolPod     // nil: outside the cluster
	reaches netip.AddrPort // where the packet must arrive: addr, or the backend after DNAT
}

// name is what expectations match: the backend pod, or the address.
func (tg target) name() string {
	if tg.backend != nil {
		return tg.backend.String()
	}
	return tg.addr.Addr().String()
}

// probe is one matrix: a protocol and port probed from every model pod to
// every target, with the expected verdicts.
type probe struct {
	spec    string // as given to check, e.g. "tcp/80", "svc/81"
	bad     string // why spec is not one check knows
	proto   string // tcp, udp or sctp
	targets []target
	want    reach
	// deviation, when set, says why want is kube-vpp's documented
	// behaviour rather than Kubernetes' (see sctpPorts).
	deviation string
}

// externalHosts are addresses outside the cluster on the nodes' network.
var externalHosts = []netip.Addr{netip.MustParseAddr("192.168.10.40"), netip.MustParseAddr("192.168.10.50")}

// check expands probe specs sharing one expectation:
//
//	tcp/80 udp/81 sctp/80   the port on every model pod's IP
//	svc/80 svc/81           TCP to every pod's ClusterIP (80 -> 80, 9081 -> 81)
//	dns/udp dns/tcp         port 53 of coredns and of the kube-dns ClusterIP
//	ext/tcp                 TCP 443 to the external hosts
func check(want reach, specs ...string) []probe {
	var out []probe
	for _, spec := range specs {
		kind, arg, _ := strings.Cut(spec, "/")
		p := probe{spec: spec, proto: kind, want: want}
		switch kind {
		case "tcp", "udp", "sctp":
			port, err := strconv.ParseUint(arg, 10, 16)
			if err != nil {
				p.bad = "bad port " + arg
			}
			for _, pod := range netpolModel() {
				ap := netip.AddrPortFrom(pod.ip, uint16(port))
				p.targets = append(p.targets, target{label: pod.String(), addr: ap, backend: &pod, reaches: ap})
			}
		case "svc":
			p.proto = "tcp"
			port, ok := map[string]uint16{"80": 80, "81": 81}[arg]
			if !ok {
				p.bad = "no service port reaches " + arg
			}
			for _, pod := range netpolModel() {
				p.targets = append(p.targets, target{label: pod.String(), addr: netip.AddrPortFrom(pod.svc, svcPort(port)),
					backend: &pod, reaches: netip.AddrPortFrom(pod.ip, port)})
			}
		case "dns":
			p.proto = arg
			dns := corednsPod
			at := netip.AddrPortFrom(dns.ip, 53)
			p.targets = []target{{label: "coredns", addr: at, backend: &dns, reaches: at},
				{label: "kube-dns-VIP", addr: netip.AddrPortFrom(kubeDNSVIP, 53), backend: &dns, reaches: at}}
		case "ext":
			p.proto = arg
			for _, h := range externalHosts {
				ap := netip.AddrPortFrom(h, 443)
				p.targets = append(p.targets, target{label: h.String(), addr: ap, reaches: ap})
			}
		default:
			p.bad = "unknown kind " + kind
		}
		out = append(out, p)
	}
	return out
}

// observed is one probe's matrix: rows are the model pods.
type observed struct {
	p     probe
	rows  []netpolPod
	cells [][]cell // the zero cell: loopback, not probed
}

// run probes every cell; loopback (a pod to itself, by IP or through its
// service) is left out as upstream does: it never leaves the pod.
//
// TCP and UDP cells run in parallel: each connection has its own source
// port, so none meets another's sessions. SCTP cells do not: VPP's ACL
// plugin reads the ports of TCP and UDP only (acl_fill_5tuple_l4_and_pkt_data,
// src/plugins/acl/public_inlines.h), so an SCTP session covers every SCTP
// packet between two addresses, and a cell would depend on the cells
// probed before it. Each SCTP cell runs alone, after the simulators'
// clocks moved past the sessions' timeout: a new association between
// pods that have not talked lately, judged by the rules. What an earlier
// association opens is the stateful test's business.
func (c *netpolCluster) run(ctx context.Context, p probe) observed {
	o := observed{p: p, rows: netpolModel()}
	o.cells = make([][]cell, len(o.rows))
	workers := 8
	if p.proto == "sctp" {
		workers = 1
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, from := range o.rows {
		o.cells[i] = make([]cell, len(p.targets))
		for j, tg := range p.targets {
			if tg.backend != nil && tg.backend.String() == from.String() {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if p.proto == "sctp" {
					c.sessionsOver()
				}
				o.cells[i][j] = c.connect(ctx, from, tg, p.proto)
			}()
		}
	}
	wg.Wait()
	return o
}

// sessionsOver moves both simulators' clocks past VPP's idle timeout of
// ACL sessions of protocols other than TCP (acl.h:
// UDP_SESSION_IDLE_TIMEOUT_SEC, 600 s), ending the sessions of earlier
// probes.
func (c *netpolCluster) sessionsOver() {
	for _, n := range c.nodes {
		n.vpp.Sim.Advance(11 * time.Minute)
	}
}

func (o observed) probed(i, j int) bool {
	return len(o.cells[i][j].legs) > 0 || o.cells[i][j].err != nil
}

// wrong counts the cells that differ from the expectation or went astray.
func (o observed) wrong() int {
	n := 0
	for i, from := range o.rows {
		for j, tg := range o.p.targets {
			if !o.probed(i, j) {
				continue
			}
			c := o.cells[i][j]
			if c.err != nil || c.problem != "" || c.allowed != o.p.want.allows(from.String(), tg.name()) {
				n++
			}
		}
	}
	return n
}

// table prints a truth table as upstream does: "." allowed (or agrees),
// "X" denied (or differs), "-" not probed.
func (o observed) table(title string, mark func(i, j int) string) string {
	w := 5
	for _, tg := range o.p.targets {
		w = max(w, len(tg.label))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s\n  %-5s", title, "")
	for _, tg := range o.p.targets {
		fmt.Fprintf(&b, " %-*s", w, tg.label)
	}
	for i, from := range o.rows {
		fmt.Fprintf(&b, "\n  %-5s", from)
		for j := range o.p.targets {
			m := "-"
			if o.probed(i, j) {
				m = mark(i, j)
			}
			fmt.Fprintf(&b, " %-*s", w, m)
		}
	}
	return b.String() + "\n"
}

func dot(ok bool) string {
	if ok {
		return "."
	}
	return "X"
}

// diff is the failure report: expected, observed and their comparison,
// then each wrong cell with the trace of its packets.
func (o observed) diff() string {
	var b strings.Builder
	b.WriteString(o.table("expected", func(i, j int) string { return dot(o.p.want.allows(o.rows[i].String(), o.p.targets[j].name())) }))
	b.WriteString(o.table("observed", func(i, j int) string {
		if c := o.cells[i][j]; c.err != nil || c.problem != "" {
			return "?"
		}
		return dot(o.cells[i][j].allowed)
	}))
	b.WriteString(o.table("comparison", func(i, j int) string {
		c := o.cells[i][j]
		return dot(c.err == nil && c.problem == "" && c.allowed == o.p.want.allows(o.rows[i].String(), o.p.targets[j].name()))
	}))
	for i, from := range o.rows {
		for j, tg := range o.p.targets {
			if !o.probed(i, j) {
				continue
			}
			c := o.cells[i][j]
			want := o.p.want.allows(from.String(), tg.name())
			if c.err == nil && c.problem == "" && c.allowed == want {
				continue
			}
			fmt.Fprintf(&b, "  %s -> %s (%s %s): want %s, got %s", from, tg.label, o.p.proto, tg.addr, verdictWord(want), verdictWord(c.allowed))
			if c.err != nil {
				fmt.Fprintf(&b, " (error: %v)", c.err)
			}
			if c.problem != "" {
				fmt.Fprintf(&b, " (%s)", c.problem)
			}
			for _, l := range c.legs {
				b.WriteString("\n" + l.report())
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func verdictWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// probeAll runs the probes and reports each matrix that differs from its
// expectation. waitApplied saw the write reach the agents' policy tables;
// a wrong matrix is probed again twice, a moment apart, in case a pod or
// namespace change was still on its way through its own informer.
func (c *netpolCluster) probeAll(t *testing.T, probes []probe) {
	t.Helper()
	for _, pause := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 0} {
		var bad []probe
		var last []observed
		for _, p := range probes {
			if p.bad != "" {
				t.Errorf("probe %q: %s", p.spec, p.bad)
				continue
			}
			if o := c.run(context.Background(), p); o.wrong() > 0 {
				bad, last = append(bad, p), append(last, o)
			}
		}
		if len(bad) == 0 {
			return
		}
		if pause == 0 {
			for _, o := range last {
				t.Errorf("%s: %d cells wrong\n%s", o.p.spec, o.wrong(), o.diff())
			}
			return
		}
		probes = bad
		time.Sleep(pause)
	}
}
