package policy

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
)

func firewallOf(addr string, p Protocol, svc, why string, sources ...string) Firewall {
	f := Firewall{Addr: netip.MustParseAddrPort(addr), Protocol: uint8(p), Service: svc, Why: why}
	for _, s := range sources {
		f.Sources = append(f.Sources, netip.MustParsePrefix(s))
	}
	return f
}

// showLists renders every binding's lists as rule text, ACL by ACL.
func showLists(t *testing.T, got Placement) map[uint32][2][][]string {
	t.Helper()
	byTag := map[string]acl.ACL{}
	for _, a := range got.Desired.ACLs {
		byTag[a.Tag] = a
	}
	render := func(tags []string) [][]string {
		var out [][]string
		for _, tg := range tags {
			a, ok := byTag[tg]
			if !ok {
				t.Errorf("binding names %q, not among the ACLs", tg)
				continue
			}
			var rules []string
			for i, r := range a.Rules {
				rules = append(rules, showRule(r, got.Origins[tg][i]))
			}
			out = append(out, rules)
		}
		return out
	}
	out := map[uint32][2][][]string{}
	for _, b := range got.Desired.Bindings {
		out[b.SwIfIndex] = [2][][]string{render(b.Input), render(b.Output)}
	}
	return out
}

// A connection to a firewalled frontend from outside its sources is
// denied on every input list where the VIP is still the destination: the
// uplink's and every local pod's, or the uplink's alone for firewalls of
// outside clients. The firewall denies only, so a pod's egress table still
// decides what it admits; lists with nothing after it end in permit-all.
func TestPlaceFirewall(t *testing.T) {
	// 128.0.0.0/1 admitted: its complement is 0.0.0.0/1. Two quarters
	// admitted: the other two are denied, in address order. No source
	// admitted: all of IPv4 is denied, for pods too or from outside only.
	outside := firewallOf("203.0.113.10:443", TCP, "web/etp", "no local endpoint")
	outside.OutsideOnly = true
	// shop/lb's ranges and its no-endpoint drop share a key: the order of
	// the two must not depend on the input's.
	shopDrop := firewallOf("203.0.113.7:443", TCP, "shop/lb", "no local endpoint")
	shopDrop.OutsideOnly = true
	fws := []Firewall{
		shopDrop,
		firewallOf("203.0.113.7:443", TCP, "shop/lb", "outside its ranges", "128.0.0.0/1"),
		firewallOf("203.0.113.8:53", UDP, "dns/lb", "outside its ranges", "0.0.0.0/2", "128.0.0.0/2"),
		firewallOf("10.96.0.9:80", TCP, "web/itp", "no local endpoint"),
		outside,
	}
	denies := []string{
		"deny 0.0.0.0/0 10.96.0.9/32 6 any 80 <- firewall service web/itp: no local endpoint",
		"deny 0.0.0.0/1 203.0.113.7/32 6 any 443 <- firewall service shop/lb: outside its ranges",
		"deny 64.0.0.0/2 203.0.113.8/32 17 any 53 <- firewall service dns/lb: outside its ranges",
		"deny 192.0.0.0/2 203.0.113.8/32 17 any 53 <- firewall service dns/lb: outside its ranges",
	}
	pass := []string{
		"permit 0.0.0.0/0 0.0.0.0/0 0 any any <- firewall " + NoteFirewallPass,
		"permit ::/0 ::/0 0 any any <- firewall " + NoteFirewallPass,
	}
	closed := append(slices.Clone(denies), pass...)
	uplink := append([]string{
		"deny 0.0.0.0/0 10.96.0.9/32 6 any 80 <- firewall service web/itp: no local endpoint",
		"deny 0.0.0.0/0 203.0.113.7/32 6 any 443 <- firewall service shop/lb: no local endpoint",
	}, denies[1:]...)
	uplink = append(append(uplink, "deny 0.0.0.0/0 203.0.113.10/32 6 any 443 <- firewall service web/etp: no local endpoint"), pass...)
	egressTable := []string{
		"permit+reflect 0.0.0.0/0 10.0.2.0/24 17 any 53 <- egress x/p#0",
		ndEgress,
	}
	ingressTable := []string{
		"permit+reflect 10.0.1.20/32 0.0.0.0/0 6 any 80 <- ingress x/p#0",
		ndIngress,
	}
	in := PlaceInput{
		Rules: map[string]PodRules{
			"x/open":    podRules("x/open", Direction{}, Direction{}),
			"x/egress":  podRules("x/egress", Direction{}, isolatedBy(allowRule("x/p", 0, UDP, 53, 53, "10.0.2.0/24")), "x/p"),
			"x/ingress": podRules("x/ingress", isolatedBy(allowRule("x/p", 0, TCP, 80, 80, "10.0.1.20/32")), Direction{}, "x/p"),
		},
		Local: []LocalPod{
			{Pod: "x/open", SwIfIndexes: []uint32{1}},
			{Pod: "x/egress", SwIfIndexes: []uint32{2}},
			{Pod: "x/ingress", SwIfIndexes: []uint32{3}},
			{Pod: "x/unknown", SwIfIndexes: []uint32{4}}, // no compiled rules yet
		},
		Firewalls: fws,
		Uplinks:   []uint32{9},
	}
	got := Place(in)
	want := map[uint32][2][][]string{
		1: {{closed}, nil},
		2: {{denies, egressTable}, {openIngress}},
		3: {{denies, openEgress}, {ingressTable}},
		4: {{closed}, nil},
		9: {{uplink}, nil},
	}
	if lists := showLists(t, got); !reflect.DeepEqual(lists, want) {
		for sw, w := range want {
			if !reflect.DeepEqual(lists[sw], w) {
				t.Errorf("interface %d:\n got  %q\n want %q", sw, lists[sw], w)
			}
		}
		for sw := range lists {
			if _, ok := want[sw]; !ok {
				t.Errorf("interface %d bound, want no lists", sw)
			}
		}
	}
	// deny, closed, uplink, two egress and two ingress tables.
	if len(got.Desired.ACLs) != 7 {
		t.Errorf("%d ACLs, want 7", len(got.Desired.ACLs))
	}
	for _, a := range got.Desired.ACLs {
		if !strings.HasPrefix(a.Tag, "kube-vpp:acl:") || len(a.Tag) > 64 {
			t.Errorf("tag %q", a.Tag)
		}
	}
	// Without outside-only firewalls the uplink's table is the pods'
	// closed one: one ACL.
	inside := in
	inside.Firewalls = fws[1:4]
	shared := Place(inside)
	if lists := showLists(t, shared); !reflect.DeepEqual(lists[9], lists[1]) || len(shared.Desired.ACLs) != 6 {
		t.Errorf("without outside-only firewalls: uplink %q, open pod %q, %d ACLs; want the same list, 6 ACLs",
			lists[9], lists[1], len(shared.Desired.ACLs))
	}
	// The pods' own tables are what they were without a firewall, and
	// Tables names the firewall each pod's input list starts with.
	plain := in
	plain.Firewalls = nil
	without := Place(plain)
	bindingOf := func(p Placement, sw uint32) acl.Binding {
		i := slices.IndexFunc(p.Desired.Bindings, func(b acl.Binding) bool { return b.SwIfIndex == sw })
		if i < 0 {
			return acl.Binding{}
		}
		return p.Desired.Bindings[i]
	}
	for _, lp := range in.Local {
		for _, pl := range []Placement{got, without} {
			pt, b := pl.Tables[lp.Pod], bindingOf(pl, lp.SwIfIndexes[0])
			want := ""
			if len(b.Input) > 0 && isFirewall(b.Input[0]) {
				want = b.Input[0]
			}
			if pt.Firewall != want {
				t.Errorf("%s: Tables firewall %q, input list %q", lp.Pod, pt.Firewall, b.Input)
			}
		}
		g, w := got.Tables[lp.Pod], without.Tables[lp.Pod]
		if g.Ingress != w.Ingress || g.Egress != w.Egress || !slices.Equal(g.Policies, w.Policies) {
			t.Errorf("%s: tables with a firewall %+v, without %+v", lp.Pod, g, w)
		}
	}
	// Without firewalls only isolated pods have lists, and the firewall
	// keeps its place in them, empty: its coming then changes no list.
	wantWithout := map[uint32][2][][]string{
		2: {{nil, egressTable}, {openIngress}},
		3: {{nil, openEgress}, {ingressTable}},
	}
	if lists := showLists(t, without); !reflect.DeepEqual(lists, wantWithout) {
		t.Errorf("without firewalls:\n got  %q\n want %q", lists, wantWithout)
	}
	for _, b := range without.Desired.Bindings {
		if i := slices.IndexFunc(got.Desired.Bindings, func(g acl.Binding) bool { return g.SwIfIndex == b.SwIfIndex }); i < 0 ||
			len(got.Desired.Bindings[i].Input) != len(b.Input) || got.Desired.Bindings[i].Input[1] != b.Input[1] {
			t.Errorf("interface %d: input %q without firewalls, %v with: only the firewall's content may differ", b.SwIfIndex, b.Input, got.Desired.Bindings)
		}
	}

	// Order of the input does not matter.
	shuffled := in
	shuffled.Firewalls = slices.Clone(fws)
	rand.Shuffle(len(shuffled.Firewalls), func(i, j int) {
		shuffled.Firewalls[i], shuffled.Firewalls[j] = shuffled.Firewalls[j], shuffled.Firewalls[i]
	})
	if again := Place(shuffled); !reflect.DeepEqual(again.Desired, got.Desired) {
		t.Errorf("a shuffled firewall list placed differently")
	}
}
