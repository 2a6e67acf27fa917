// Service firewalls: what kube-proxy drops before it translates anything.
//
// Two things: a connection to a load-balancer IP:port from a client outside
// the Service's spec.loadBalancerSourceRanges (kube-proxy checks it at
// prerouting, for outside clients and pods alike), and any connection to a
// frontend whose traffic policy is Local while all its endpoints are on
// other nodes (internalTrafficPolicy for the cluster IP, from pods;
// externalTrafficPolicy for the external frontends, from outside, since
// kube-proxy sends pods on as to the cluster IP). Here each is an ACL deny
// on INPUT lists, where the VIP is still the destination
// (acl-plugin-in-ip4-fa runs before NAT44-ED, see tables.go): the uplink's,
// for clients outside the cluster, and every local pod's. Pods of other
// nodes reach the VIP through their own node, which translates and checks
// them itself.
//
// VPP's ACL lists stop at the first matching rule of any ACL in the list,
// and no action means "go on". A rule permitting a client inside the ranges
// would therefore end the list before a pod's egress table and let the
// client around its NetworkPolicy. So the firewall only denies: one deny per
// prefix of the complement of the admitted sources, per frontend (0.0.0.0/0
// when none is admitted). It goes first in lists that have a table after it;
// a list with nothing after it (the uplink, a pod no policy isolates) gets
// the variant ending in permit-all, since a list that matches nothing
// denies.
//
// In front of a pod's tables the firewall is there even when it denies
// nothing (an ACL without rules). VPP clears an interface's sessions when
// the set of ACLs in its lists changes (acl_interface_set_inout_acl_list),
// so a firewall that came and went would cut the established connections
// of every isolated pod; a firewall that is always there changes content
// only, and the ACL driver rewrites it in place. Lists without a table
// after the firewall hold no sessions, so they get one only when it denies
// something.

package policy

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
)

// Firewall is a service frontend that admits only clients from Sources
// (IPv4, like the frontend; none when empty), for Why. OutsideOnly ones
// apply to clients outside the cluster only.
type Firewall struct {
	Addr        netip.AddrPort
	Protocol    uint8
	Service     string // "namespace/name"
	Sources     []netip.Prefix
	Why         string
	OutsideOnly bool
}

// NoteFirewallPass is the note of the permit-all closing a firewall list;
// a deny's note is "service <namespace/name>: <why>".
const NoteFirewallPass = "no service firewall denies it"

// firewallDir names the firewall tables in tags and origins.
const firewallDir = "firewall"

// firewallTables are the tables of the firewalls: pods is the deny-only
// table in front of pods' tables, empty without firewalls; open is pods
// closed by permit-all and uplink every firewall closed so, nil when they
// would deny nothing.
type firewallTables struct {
	pods, open, uplink *table
}

func buildFirewall(fws []Firewall) firewallTables {
	fws = slices.Clone(fws)
	// Rules in a total order, so equal inputs hash to the same tag.
	slices.SortFunc(fws, func(a, b Firewall) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.Why, b.Why), compareBools(a.OutsideOnly, b.OutsideOnly), comparePrefixLists(a.Sources, b.Sources))
	})
	pods, all := newTable(0), newTable(0)
	for _, fw := range fws {
		if !fw.Addr.Addr().Is4() {
			continue
		}
		var sources []netip.Prefix
		for _, s := range fw.Sources {
			if s.IsValid() && s.Addr().Is4() {
				sources = append(sources, s)
			}
		}
		o := RuleOrigin{Direction: firewallDir, Index: -1, Note: "service " + fw.Service + ": " + fw.Why}
		port := acl.PortRange{First: fw.Addr.Port(), Last: fw.Addr.Port()}
		for _, outside := range subtract(anyOf(fw.Addr.Addr()), normalize(sources)) {
			r := acl.Rule{Action: acl.Deny, Src: outside, Dst: hostPrefix(fw.Addr.Addr()), Protocol: fw.Protocol,
				SrcPorts: acl.AnyPort, DstPorts: port}
			all.add(r, o, -1)
			if !fw.OutsideOnly {
				pods.add(r, o, -1)
			}
		}
	}
	pods.seal(firewallDir)
	return firewallTables{pods: pods, open: closed(pods), uplink: closed(all)}
}

func compareBools(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// closed is t followed by permit-all, sealed; nil when t has no rule.
func closed(t *table) *table {
	if len(t.rules) == 0 {
		return nil
	}
	c := newTable(len(t.rules) + 2)
	for i, r := range t.rules {
		c.add(r, t.origins[i], -1)
	}
	pass := RuleOrigin{Direction: firewallDir, Index: -1, Note: NoteFirewallPass}
	for _, whole := range anyPrefixes() {
		c.add(acl.Rule{Action: acl.Permit, Src: whole, Dst: whole, SrcPorts: acl.AnyPort, DstPorts: acl.AnyPort}, pass, -1)
	}
	c.seal(firewallDir)
	return c
}

// podInput is a pod's input list: the firewall in front of next, or the
// closed variant alone when there is no next.
func (f firewallTables) podInput(next string) []string {
	switch {
	case next != "":
		f.pods.used = true
		return []string{f.pods.tag, next}
	case f.open != nil:
		f.open.used = true
		return []string{f.open.tag}
	}
	return nil
}

// uplinkInput is an uplink's input list.
func (f firewallTables) uplinkInput() []string {
	if f.uplink == nil {
		return nil
	}
	f.uplink.used = true
	return []string{f.uplink.tag}
}

// register adds the tables to the placer's, to be collected if used.
func (f firewallTables) register(built map[tableKey]*table) {
	for i, t := range []*table{f.pods, f.open, f.uplink} {
		if t != nil {
			built[tableKey{dir: firewallDir, sum: [16]byte{byte(i)}}] = t
		}
	}
}
