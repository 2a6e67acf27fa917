// Source ranges of LoadBalancer services (spec.loadBalancerSourceRanges).
//
// kube-proxy drops a connection to a load-balancer IP:port from a client
// outside the service's source ranges before it translates anything, for
// outside clients and pods alike (its firewall runs at prerouting). Here
// that check is an ACL on INPUT lists, where the VIP is still the
// destination (acl-plugin-in-ip4-fa runs before NAT44-ED, see tables.go):
// the uplink's, for clients outside the cluster, and every local pod's.
// Pods of other nodes reach the VIP through their own node, which
// translates and checks them itself.
//
// VPP's ACL lists stop at the first matching rule of any ACL in the list,
// and no action means "go on". A rule permitting a client inside the ranges
// would therefore end the list before a pod's egress table and let the
// client around its NetworkPolicy. So the firewall only denies: one deny per
// prefix of the complement of the ranges, per frontend. It goes first in
// lists that have a table after it; a list with nothing after it (the
// uplink, a pod no policy isolates) gets the variant ending in permit-all,
// since a list that matches nothing denies.
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

// Firewall is a load-balancer frontend that admits only clients from
// Sources (IPv4, like the frontend).
type Firewall struct {
	Addr     netip.AddrPort
	Protocol uint8
	Service  string // "namespace/name"
	Sources  []netip.Prefix
}

// Notes of firewall rules. A deny's note is NoteSourceRanges followed by
// the service's "namespace/name".
const (
	NoteSourceRanges = "loadBalancerSourceRanges of service "
	NoteFirewallPass = "no loadBalancerSourceRanges denies it"
)

// firewallDir names the firewall tables in tags and origins.
const firewallDir = "firewall"

// firewallTables are the deny-only table, empty without firewalls, and
// its variant closed by permit-all, nil without firewalls.
type firewallTables struct {
	deny, open *table
}

func buildFirewall(fws []Firewall) firewallTables {
	fws = slices.Clone(fws)
	slices.SortFunc(fws, func(a, b Firewall) int {
		return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Service, b.Service))
	})
	deny := newTable(0)
	for _, fw := range fws {
		if !fw.Addr.Addr().Is4() || len(fw.Sources) == 0 {
			continue
		}
		var sources []netip.Prefix
		for _, s := range fw.Sources {
			if s.IsValid() && s.Addr().Is4() {
				sources = append(sources, s)
			}
		}
		o := RuleOrigin{Direction: firewallDir, Index: -1, Note: NoteSourceRanges + fw.Service}
		port := acl.PortRange{First: fw.Addr.Port(), Last: fw.Addr.Port()}
		for _, outside := range subtract(anyOf(fw.Addr.Addr()), normalize(sources)) {
			deny.add(acl.Rule{Action: acl.Deny, Src: outside, Dst: hostPrefix(fw.Addr.Addr()), Protocol: fw.Protocol,
				SrcPorts: acl.AnyPort, DstPorts: port}, o, -1)
		}
	}
	deny.seal(firewallDir)
	if len(deny.rules) == 0 {
		return firewallTables{deny: deny}
	}
	open := newTable(len(deny.rules) + 2)
	for i, r := range deny.rules {
		open.add(r, deny.origins[i], -1)
	}
	pass := RuleOrigin{Direction: firewallDir, Index: -1, Note: NoteFirewallPass}
	for _, whole := range anyPrefixes() {
		open.add(acl.Rule{Action: acl.Permit, Src: whole, Dst: whole, SrcPorts: acl.AnyPort, DstPorts: acl.AnyPort}, pass, -1)
	}
	open.seal(firewallDir)
	return firewallTables{deny: deny, open: open}
}

// input is an input list with the firewall in front of next, or the
// closed variant alone when there is no next.
func (f firewallTables) input(next string) []string {
	switch {
	case next != "":
		f.deny.used = true
		return []string{f.deny.tag, next}
	case f.open != nil:
		f.open.used = true
		return []string{f.open.tag}
	}
	return nil
}
