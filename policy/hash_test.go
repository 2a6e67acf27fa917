package policy

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestDirectionHash(t *testing.T) {
	web := Rule{Peers: prefixes("10.0.1.0/24"), Protocol: TCP, Ports: PortRange{80, 80}, Policy: "x/p", Index: 0}
	dns := Rule{Protocol: UDP, Ports: PortRange{53, 53}, Policy: "x/p", Index: 1}
	with := func(r Rule, f func(*Rule)) Rule { f(&r); return r }
	base := Direction{Isolated: true, Allow: []Rule{web, dns}}.Hash()

	if len(base) != 32 {
		t.Errorf("hash %q: want 32 hex digits", base)
	}
	same := map[string]Direction{
		"other policy and index": {Isolated: true, Allow: []Rule{
			with(web, func(r *Rule) { r.Policy, r.Index = "x/q", 3 }), with(dns, func(r *Rule) { r.Policy = "x/a" })}},
		"other order":            {Isolated: true, Allow: []Rule{dns, web}},
		"not isolated":           {Allow: []Rule{web, dns}},
		"duplicate":              {Isolated: true, Allow: []Rule{web, dns, web}},
		"equal peers, own slice": {Isolated: true, Allow: []Rule{with(web, func(r *Rule) { r.Peers = prefixes("10.0.1.0/24") }), dns}},
	}
	for name, d := range same {
		if got := d.Hash(); got != base {
			t.Errorf("%s: hash %s, want %s", name, got, base)
		}
	}
	differ := map[string]Direction{
		"other port":     {Allow: []Rule{with(web, func(r *Rule) { r.Ports = PortRange{81, 81} }), dns}},
		"port range":     {Allow: []Rule{with(web, func(r *Rule) { r.Ports = PortRange{80, 81} }), dns}},
		"other protocol": {Allow: []Rule{with(web, func(r *Rule) { r.Protocol = SCTP }), dns}},
		"other peers":    {Allow: []Rule{with(web, func(r *Rule) { r.Peers = prefixes("10.0.2.0/24") }), dns}},
		"more peers":     {Allow: []Rule{with(web, func(r *Rule) { r.Peers = prefixes("10.0.1.0/24", "fd00::/64") }), dns}},
		"peers anywhere": {Allow: []Rule{with(web, func(r *Rule) { r.Peers = nil }), dns}},
		"fewer rules":    {Allow: []Rule{web}},
		"none":           {Isolated: true},
	}
	seen := map[string]string{base: "base"}
	for name, d := range differ {
		h := d.Hash()
		if prev, ok := seen[h]; ok {
			t.Errorf("%s: same hash as %s", name, prev)
		}
		seen[h] = name
	}
}

// Pods whose policies allow the same traffic get the same hash, so they can
// share a table; the policy names behind the allows do not matter.
func TestCompiledPodsShareHash(t *testing.T) {
	nss, pods := cluster3()
	out := Compile(Input{Pods: pods, Namespaces: nss, Policies: []*networkingv1.NetworkPolicy{
		netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(nsPeer("ns", "y")), ports: ports(port(tcp, 80))})),
		netpol("x/q", match("pod", "b"), ingress(rule{peers: peers(nsPeer("ns", "y")), ports: ports(port(tcp, 80))})),
		netpol("x/r", match("pod", "c"), ingress(rule{peers: peers(nsPeer("ns", "y")), ports: ports(port(tcp, 81))})),
	}})
	a, b, c := out.Pods["x/a"].Ingress.Hash(), out.Pods["x/b"].Ingress.Hash(), out.Pods["x/c"].Ingress.Hash()
	if a != b {
		t.Errorf("x/a and x/b allow the same: hashes %s, %s", a, b)
	}
	if a == c {
		t.Errorf("x/c allows another port but shares hash %s", a)
	}
}
