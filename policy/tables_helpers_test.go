package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
)

// Expected tables are written from the placement design (tables.go's file
// comment): ingress on the pod interface's output list as "peer -> any",
// egress on its input list as "any -> peer", permit+reflect; VPP denies what
// no rule matches (dataplane_node.c acl_fa_inner_node_fn) and matches the
// first rule of the list (public_inlines.h single_acl_match_5tuple).
//
// A rule is written "action src dst proto srcports dstports <- origin",
// ports "any" for 0-65535, the origin "direction [policy#index] [note]".

const (
	ndEgress  = "permit ::/0 ::/0 58 133-136 any <- egress ipv6 neighbor discovery"
	ndIngress = "permit ::/0 ::/0 58 133-136 any <- ingress ipv6 neighbor discovery"
)

// openEgress and openIngress are the tables of the direction a half
// isolated pod is not isolated in: they make the sessions its replies need.
var (
	openEgress = []string{
		"permit+reflect 0.0.0.0/0 0.0.0.0/0 0 any any <- egress not isolated",
		"permit+reflect ::/0 ::/0 0 any any <- egress not isolated",
	}
	openIngress = []string{
		"permit+reflect 0.0.0.0/0 0.0.0.0/0 0 any any <- ingress not isolated",
		"permit+reflect ::/0 ::/0 0 any any <- ingress not isolated",
	}
)

// allowRule is a compiled allow; no peers means anywhere.
func allowRule(policy string, index int, p Protocol, first, last uint16, peerList ...string) Rule {
	r := Rule{Protocol: p, Ports: PortRange{first, last}, Policy: policy, Index: index}
	for _, s := range peerList {
		r.Peers = append(r.Peers, netip.MustParsePrefix(s))
	}
	return r
}

func isolatedBy(rules ...Rule) Direction { return Direction{Isolated: true, Allow: rules} }

func podRules(pod string, in, eg Direction, policies ...string) PodRules {
	return PodRules{Pod: pod, Ingress: in, Egress: eg, Policies: policies}
}

func frontendOf(addr string, p Protocol, svc string, backends ...string) Frontend {
	f := Frontend{Addr: netip.MustParseAddrPort(addr), Protocol: uint8(p), Service: svc}
	for _, b := range backends {
		f.Backends = append(f.Backends, netip.MustParseAddrPort(b))
	}
	return f
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func showPorts(r acl.PortRange) string {
	switch {
	case r == acl.AnyPort:
		return "any"
	case r.First == r.Last:
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

func showOrigin(o RuleOrigin) string {
	parts := []string{o.Direction}
	switch {
	case o.Policy != "":
		parts = append(parts, fmt.Sprintf("%s#%d", o.Policy, o.Index))
	case o.Index != -1:
		parts = append(parts, fmt.Sprintf("#%d", o.Index)) // an index without a policy is a bug
	}
	if o.Note != "" {
		parts = append(parts, o.Note)
	}
	return strings.Join(parts, " ")
}

func showRule(r acl.Rule, o RuleOrigin) string {
	return fmt.Sprintf("%s %s %s %d %s %s <- %s", r.Action, r.Src, r.Dst, r.Protocol,
		showPorts(r.SrcPorts), showPorts(r.DstPorts), showOrigin(o))
}

// bound is what one interface's lists hold: the rules of its one ACL per
// direction; nil means no list.
type bound struct{ input, output []string }

var tagForm = regexp.MustCompile(`^kube-vpp:acl:(ingress|egress|firewall)-[0-9a-f]{32}$`)

// isFirewall reports whether tg is a service firewall table's tag.
func isFirewall(tg string) bool { return strings.HasPrefix(tg, "kube-vpp:acl:firewall-") }

// tableACLs counts the ACLs that are pods' tables, not the firewall.
func tableACLs(d acl.Desired) int {
	n := 0
	for _, a := range d.ACLs {
		if !isFirewall(a.Tag) {
			n++
		}
	}
	return n
}

// checkPlacement checks what every placement must satisfy and returns the
// bindings as rule text.
func checkPlacement(t *testing.T, in PlaceInput, got Placement) map[uint32]bound {
	t.Helper()
	aclByTag := map[string]acl.ACL{}
	for i, a := range got.Desired.ACLs {
		if i > 0 && got.Desired.ACLs[i-1].Tag >= a.Tag {
			t.Errorf("ACLs not sorted by tag or repeated: %q then %q", got.Desired.ACLs[i-1].Tag, a.Tag)
		}
		if !tagForm.MatchString(a.Tag) {
			t.Errorf("tag %q is not kube-vpp:acl:<direction>-<hash>", a.Tag)
		}
		if len(got.Origins[a.Tag]) != len(a.Rules) {
			t.Errorf("%s: %d rules, %d origins", a.Tag, len(a.Rules), len(got.Origins[a.Tag]))
		}
		aclByTag[a.Tag] = a
	}
	if len(got.Origins) != len(got.Desired.ACLs) {
		t.Errorf("origins for %d tags, %d ACLs", len(got.Origins), len(got.Desired.ACLs))
	}
	show := func(tg, dir string) []string {
		a, ok := aclByTag[tg]
		if !ok {
			t.Errorf("binding uses %q, not among the ACLs", tg)
			return nil
		}
		if !strings.HasPrefix(tg, "kube-vpp:acl:"+dir+"-") {
			t.Errorf("%s list holds %q", dir, tg)
		}
		out := []string{}
		for i, r := range a.Rules {
			out = append(out, showRule(r, got.Origins[tg][i]))
		}
		return out
	}
	used := map[string]bool{}
	out := map[uint32]bound{}
	for i, b := range got.Desired.Bindings {
		if i > 0 && got.Desired.Bindings[i-1].SwIfIndex >= b.SwIfIndex {
			t.Errorf("bindings not sorted by sw_if_index or repeated: %d then %d", got.Desired.Bindings[i-1].SwIfIndex, b.SwIfIndex)
		}
		// A pod's input list is the service firewall, then its egress
		// table; without firewalls the firewall holds no rule.
		if len(b.Input) != 2 || len(b.Output) != 1 || !isFirewall(b.Input[0]) {
			t.Errorf("interface %d: input %q output %q, want the firewall and one ACL in, one out", b.SwIfIndex, b.Input, b.Output)
			continue
		}
		if fw := aclByTag[b.Input[0]]; len(in.Firewalls) == 0 && len(fw.Rules) != 0 {
			t.Errorf("interface %d: firewall %q has %d rules without firewalls", b.SwIfIndex, fw.Tag, len(fw.Rules))
		}
		used[b.Input[0]], used[b.Input[1]], used[b.Output[0]] = true, true, true
		out[b.SwIfIndex] = bound{input: show(b.Input[1], Egress), output: show(b.Output[0], Ingress)}
	}
	for tg := range aclByTag {
		if !used[tg] {
			t.Errorf("ACL %q is bound nowhere", tg)
		}
	}
	// Tables must name what the pod's interfaces are bound to.
	byIf := map[uint32]acl.Binding{}
	for _, b := range got.Desired.Bindings {
		byIf[b.SwIfIndex] = b
	}
	for _, lp := range in.Local {
		pt, ok := got.Tables[lp.Pod]
		if !ok {
			t.Errorf("%s: missing from Tables", lp.Pod)
			continue
		}
		if !slices.Equal(pt.Policies, in.Rules[lp.Pod].Policies) {
			t.Errorf("%s: Tables policies %q, want %q", lp.Pod, pt.Policies, in.Rules[lp.Pod].Policies)
		}
		for _, sw := range lp.SwIfIndexes {
			if b, ok := byIf[sw]; ok && pt.Ingress != "" && len(b.Input) == 2 && (b.Output[0] != pt.Ingress || b.Input[1] != pt.Egress) {
				t.Errorf("%s: Tables %q/%q, interface %d bound to %q/%q", lp.Pod, pt.Ingress, pt.Egress, sw, b.Output, b.Input)
			}
		}
	}
	return out
}
