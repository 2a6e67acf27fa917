// Placement: where each pod's compiled rules are enforced in VPP, and why.
//
// The ACL plugin's nodes sit at fixed points of VPP 25.10's feature arcs
// (src/plugins/acl/dataplane_node.c, src/plugins/nat/nat44-ed/nat44_ed.c):
// on ip4-unicast acl-plugin-in-ip4-fa runs before every NAT44-ED node, so an
// interface's INPUT list sees a packet before DNAT (a service VIP as the
// destination); on ip4-output nat44-ed-in2out-output runs before
// acl-plugin-out-ip4-fa, so an OUTPUT list sees it after translation (the
// chosen backend as the destination, the client's real source). Sessions of
// permit+reflect rules are keyed on the interface and direction they were
// made in (session_inlines.h): one made at X's output passes the reply at
// X's input, one made at X's input passes the reply at X's output, and
// nothing anywhere else.
//
// Hence:
//   - Ingress of a pod is enforced on its interface's OUTPUT list, after
//     NAT: rules name the real backend port and the client's real address,
//     which is what a NetworkPolicy speaks of. The node's own addresses are
//     always allowed (Kubernetes lets a pod's node reach it, for kubelet
//     probes; the node's pod gateway is also the source of hairpinned,
//     twice-NATed service traffic).
//   - Egress of a pod is enforced on its interface's INPUT list, before NAT,
//     where a connection to a service still shows the VIP. So a VIP:port is
//     opened when every backend behind it is one the pod's egress rules
//     allow; a service only partly allowed is not opened, and when an allow
//     rule's peers happen to cover its VIP:port a deny for it goes first, so
//     a service is never a way around the policy to one of its backends.
//   - Replies: the session made where a connection was admitted passes its
//     replies on the same interface in the other direction. That direction
//     must therefore have a list too, or no ACL node runs there to make the
//     session: a pod isolated in one direction only gets a permit+reflect-all
//     table in the other, so that replies to what that direction lets
//     through pass the isolated one.
//   - Every table permits IPv6 neighbour discovery (ICMPv6 133-136): the
//     pod's neighbour advertisements are unicast and meet its input list,
//     and VPP's multicast solicitations go through ip6-rewrite-mcast's
//     output features (ip6_forward.c), so denying them would cut all IPv6.
//
// Tables hold nothing pod-specific, and an ACL's tag is a hash of its
// rules: pods whose tables are equal share one ACL in VPP.

package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Directions, as tags and RuleOrigin.Direction name them.
const (
	Ingress = "ingress"
	Egress  = "egress"
)

// Notes of rules no policy rule gave (RuleOrigin.Note). A VIP rule's note
// is NoteService followed by the service's "namespace/name".
const (
	NoteNode              = "node"
	NoteService           = "service "
	NoteNotIsolated       = "not isolated"
	NoteNeighborDiscovery = "ipv6 neighbor discovery"
)

// Frontend is one address:port/protocol a service answers on, with the
// backends its mapping sends to.
type Frontend struct {
	Addr     netip.AddrPort
	Protocol uint8
	Service  string // "namespace/name"
	Backends []netip.AddrPort
}

// LocalPod is a pod of this node and its VPP interfaces.
type LocalPod struct {
	Pod         string // "namespace/name"
	SwIfIndexes []uint32
}

// PlaceInput is what Place reads.
type PlaceInput struct {
	Rules         map[string]PodRules // Compile's Output.Pods
	Local         []LocalPod          // this node's pods and their VPP interfaces
	NodeAddresses []netip.Addr        // always allowed as ingress sources
	Frontends     []Frontend          // every service frontend with its backends
	Firewalls     []Firewall          // source-restricted load-balancer frontends
	Uplinks       []uint32            // where clients outside the cluster come in
}

// RuleOrigin says where one ACL rule comes from: a policy's rule (Policy,
// Direction, Index of its ingress or egress rule), or, with Policy empty and
// Index -1, a Note. A service VIP rule that permits names both the rule that
// allows its first backend and the service.
type RuleOrigin struct {
	Policy    string
	Direction string
	Index     int
	Note      string
}

// Placement is the ACL state that enforces the node's policies.
type Placement struct {
	Desired acl.Desired             // ACLs (sorted by tag) and bindings (sorted by sw_if_index)
	Origins map[string][]RuleOrigin // by ACL tag: per rule index
	Tables  map[string]PodTables    // by local pod
}

// PodTables are the tags of the ACLs bound to a pod's interfaces (empty for
// no list) and the policies selecting it. A pod isolated in one direction
// only has the not-isolated table (NoteNotIsolated) in the other.
type PodTables struct {
	Ingress, Egress string
	// Firewall is the service firewall first in the pod's input list, ""
	// when the list has none.
	Firewall string
	Policies []string
}

// Place turns the compiled rules of the node's pods into ACLs and interface
// bindings (see the file comment for where and why). It is pure and
// deterministic, and costs time in proportion to the local pods' rules plus
// frontends times distinct egress tables. Pods without interfaces are
// bound to nothing; pods without compiled rules or isolated in neither
// direction are bound to nothing but the service firewall (firewall.go),
// which the uplinks get too when there is one. An interface listed by two
// pods is bound for the first by name that needs lists.
//
// An ACL shared by pods of different policies names, per rule, the first
// policy by name that gives it.
func Place(in PlaceInput) Placement {
	p := &placer{
		in:        in,
		frontends: newFrontendIndex(in.Frontends),
		nodes:     nodePrefixes(in.NodeAddresses),
		sums:      map[allowID][16]byte{},
		built:     map[tableKey]*table{},
		merged:    map[mergeKey]struct{}{},
		bound:     map[uint32]acl.Binding{},
		firewall:  buildFirewall(in.Firewalls),
	}
	p.firewall.register(p.built)
	out := Placement{Tables: make(map[string]PodTables, len(in.Local))}
	for _, lp := range mergeLocal(in.Local) {
		out.Tables[lp.Pod] = p.placePod(lp)
	}
	for _, sw := range in.Uplinks {
		if _, taken := p.bound[sw]; !taken {
			if list := p.firewall.uplinkInput(); list != nil {
				p.bound[sw] = acl.Binding{SwIfIndex: sw, Input: list}
			}
		}
	}
	out.Desired, out.Origins = p.result()
	return out
}

// table is one ACL's content, built once per distinct allow list. Origins
// are merged over the pods using it; allow maps each rule to the index in
// the allow list it was made from (-1: none), so other pods' origins can be
// merged in.
type table struct {
	tag     string
	rules   []acl.Rule
	origins []RuleOrigin
	allow   []int
	used    bool
}

func (t *table) add(r acl.Rule, o RuleOrigin, allow int) {
	t.rules = append(t.rules, r)
	t.origins = append(t.origins, o)
	t.allow = append(t.allow, allow)
}

// newTable returns an empty table with room for n rules.
func newTable(n int) *table {
	return &table{rules: make([]acl.Rule, 0, n), origins: make([]RuleOrigin, 0, n), allow: make([]int, 0, n)}
}

// seal computes the tag from the rules' content and the direction. The
// encoding is what VPP already holds tags of: changing it would replace
// every ACL on upgrade.
func (t *table) seal(dir string) {
	const ruleSize = 2 + 2*prefixSize + 8
	h := sha256.New()
	var chunk [64 * ruleSize]byte
	buf := chunk[:0]
	for _, r := range t.rules {
		if len(buf)+ruleSize > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = append(buf, byte(r.Action), r.Protocol)
		buf = appendPrefix(buf, r.Src)
		buf = appendPrefix(buf, r.Dst)
		buf = binary.BigEndian.AppendUint16(buf, r.SrcPorts.First)
		buf = binary.BigEndian.AppendUint16(buf, r.SrcPorts.Last)
		buf = binary.BigEndian.AppendUint16(buf, r.DstPorts.First)
		buf = binary.BigEndian.AppendUint16(buf, r.DstPorts.Last)
	}
	h.Write(buf)
	// 128 bits: "kube-vpp:acl:ingress-" plus 32 hex digits fits VPP's tag.
	t.tag = tag.New(acl.KindTable, dir+"-"+hex.EncodeToString(h.Sum(chunk[:0])[:16]))
}

// prefixSize is the length of appendPrefix's encoding.
const prefixSize = 1 + 16 + 1

// appendPrefix writes p in a fixed size: family, 16 address bytes, length.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	var enc [prefixSize]byte
	a := p.Addr()
	enc[0] = 6
	if a.Is4() {
		enc[0] = 4
	}
	*(*[16]byte)(enc[1:17]) = a.As16()
	enc[17] = byte(p.Bits())
	return append(b, enc[:]...)
}

// use merges the origins of a pod whose allow list made (or equals the one
// that made) t.
func (t *table) use(dir string, allow []Rule) {
	t.used = true
	for k, j := range t.allow {
		if j < 0 || j >= len(allow) {
			continue
		}
		o := t.origins[k]
		o.Policy, o.Direction, o.Index = allow[j].Policy, dir, allow[j].Index
		if compareOrigins(o, t.origins[k]) < 0 {
			t.origins[k] = o
		}
	}
}

// compareOrigins orders origins with a policy first, then by name.
func compareOrigins(a, b RuleOrigin) int {
	if (a.Policy == "") != (b.Policy == "") {
		if a.Policy == "" {
			return 1
		}
		return -1
	}
	return cmp.Or(
		strings.Compare(a.Policy, b.Policy),
		cmp.Compare(a.Index, b.Index),
		strings.Compare(a.Direction, b.Direction),
		strings.Compare(a.Note, b.Note),
	)
}

// placer holds one Place call's work.
type placer struct {
	in        PlaceInput
	frontends frontendIndex
	nodes     []netip.Prefix
	// sums are the allow lists' hashes. Compile shares one Allow slice
	// between the pods of the same policies, so a list is hashed once.
	sums map[allowID][16]byte
	// built are the tables by direction and allow-list hash.
	built map[tableKey]*table
	// merged are the allow lists whose origins a table has taken in.
	merged   map[mergeKey]struct{}
	bound    map[uint32]acl.Binding
	firewall firewallTables
}

// allowID is an allow list's identity: its backing array and length.
// Within one Place, whose input is read-only, equal identities hold equal
// rules.
type allowID struct {
	first *Rule
	n     int
}

func idOf(allow []Rule) allowID {
	if len(allow) == 0 {
		return allowID{}
	}
	return allowID{first: &allow[0], n: len(allow)}
}

type tableKey struct {
	dir  string
	open bool     // not isolated: the permit-all table
	sum  [16]byte // the allow list's hash when isolated
}

type mergeKey struct {
	t     *table
	allow allowID
}

func (p *placer) placePod(lp LocalPod) PodTables {
	pr, ok := p.in.Rules[lp.Pod]
	pt := PodTables{Policies: pr.Policies}
	var ifaces []uint32
	for _, sw := range lp.SwIfIndexes {
		if _, taken := p.bound[sw]; !taken {
			ifaces = append(ifaces, sw)
		}
	}
	if len(ifaces) == 0 {
		return pt
	}
	if !ok || (!pr.Ingress.Isolated && !pr.Egress.Isolated) {
		if list := p.firewall.podInput(""); list != nil {
			pt.Firewall = list[0]
			for _, sw := range ifaces {
				p.bound[sw] = acl.Binding{SwIfIndex: sw, Input: list}
			}
		}
		return pt
	}
	in, eg := p.direction(Ingress, pr.Ingress), p.direction(Egress, pr.Egress)
	input := p.firewall.podInput(eg.tag)
	pt.Ingress, pt.Egress, pt.Firewall = in.tag, eg.tag, input[0]
	for _, sw := range ifaces {
		// Egress is checked where the pod's packets enter VPP, ingress
		// where packets leave VPP toward the pod.
		p.bound[sw] = acl.Binding{SwIfIndex: sw, Input: input, Output: []string{in.tag}}
	}
	return pt
}

// direction returns the table of one direction of a pod isolated in at
// least one, with the pod's origins merged in.
func (p *placer) direction(dir string, d Direction) *table {
	key := tableKey{dir: dir, open: !d.Isolated}
	id := idOf(d.Allow)
	if d.Isolated {
		sum, ok := p.sums[id]
		if !ok {
			sum = allowSum(d.Allow)
			p.sums[id] = sum
		}
		key.sum = sum
	}
	t, ok := p.built[key]
	if !ok {
		t = p.build(dir, d)
		p.built[key] = t
	}
	if !d.Isolated {
		t.used = true
		return t
	}
	// Pods sharing an allow list would merge the same origins again.
	if _, done := p.merged[mergeKey{t, id}]; !done {
		p.merged[mergeKey{t, id}] = struct{}{}
		t.use(dir, d.Allow)
	}
	return t
}

func (p *placer) build(dir string, d Direction) *table {
	if !d.Isolated {
		// Permits everything, with sessions, so that replies to what the
		// other (isolated) direction admits pass it.
		t := newTable(2)
		o := RuleOrigin{Direction: dir, Index: -1, Note: NoteNotIsolated}
		for _, whole := range anyPrefixes() {
			t.add(acl.Rule{Action: acl.PermitReflect, Src: whole, Dst: whole, SrcPorts: acl.AnyPort, DstPorts: acl.AnyPort}, o, -1)
		}
		t.seal(dir)
		return t
	}
	var frontends []int
	if dir == Egress {
		frontends = p.frontends.candidates(d.Allow)
	}
	// Sized up front: tables run to thousands of rules, and growing three
	// slices rule by rule was much of Place's garbage.
	n := len(frontends) + 1
	for _, r := range d.Allow {
		n += allowRuleCount(r)
	}
	if dir == Ingress {
		n += len(p.nodes)
	}
	t := newTable(n)
	p.addFrontends(t, d.Allow, frontends)
	for j, r := range d.Allow {
		o := RuleOrigin{Policy: r.Policy, Direction: dir, Index: r.Index}
		t.addAllow(dir, r, o, j)
	}
	if dir == Ingress {
		o := RuleOrigin{Direction: dir, Index: -1, Note: NoteNode}
		for _, n := range p.nodes {
			t.add(acl.Rule{Action: acl.PermitReflect, Src: n, Dst: anyOf(n.Addr()), SrcPorts: acl.AnyPort, DstPorts: acl.AnyPort}, o, -1)
		}
	}
	any6 := netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	t.add(acl.Rule{Action: acl.Permit, Src: any6, Dst: any6, Protocol: icmp6,
		SrcPorts: acl.PortRange{First: ndFirst, Last: ndLast}, DstPorts: acl.AnyPort},
		RuleOrigin{Direction: dir, Index: -1, Note: NoteNeighborDiscovery}, -1)
	t.seal(dir)
	return t
}

// ICMPv6 and its neighbour discovery types: router solicitation (133) to
// neighbour advertisement (136). VPP matches ICMP type as the source port.
const (
	icmp6   = 58
	ndFirst = 133
	ndLast  = 136
)

// result collects the ACLs bound somewhere and the bindings, sorted.
func (p *placer) result() (acl.Desired, map[string][]RuleOrigin) {
	byTag := map[string]*table{}
	origins := map[string][]RuleOrigin{}
	for _, t := range p.built {
		if !t.used {
			continue
		}
		prev, ok := byTag[t.tag]
		if !ok {
			// The placer ends here: the table's origins can be handed out.
			byTag[t.tag] = t
			origins[t.tag] = slices.Clip(t.origins)
			continue
		}
		// Two allow lists made the same rules: one ACL, each rule named
		// by the first origin of either, whatever the map order.
		merged := origins[t.tag]
		for k := range min(len(merged), len(t.origins), len(prev.rules)) {
			if compareOrigins(t.origins[k], merged[k]) < 0 {
				merged[k] = t.origins[k]
			}
		}
	}
	var d acl.Desired
	for _, tg := range slices.Sorted(maps.Keys(byTag)) {
		d.ACLs = append(d.ACLs, acl.ACL{Tag: tg, Rules: byTag[tg].rules})
	}
	for _, sw := range slices.Sorted(maps.Keys(p.bound)) {
		d.Bindings = append(d.Bindings, p.bound[sw])
	}
	return d, origins
}

// mergeLocal sorts the local pods by name and merges repeated ones, their
// interfaces sorted without duplicates.
func mergeLocal(in []LocalPod) []LocalPod {
	byPod := map[string][]uint32{}
	for _, lp := range in {
		byPod[lp.Pod] = append(byPod[lp.Pod], lp.SwIfIndexes...)
	}
	out := make([]LocalPod, 0, len(byPod))
	for _, pod := range slices.Sorted(maps.Keys(byPod)) {
		sws := slices.Clone(byPod[pod])
		slices.Sort(sws)
		out = append(out, LocalPod{Pod: pod, SwIfIndexes: slices.Compact(sws)})
	}
	return out
}

// nodePrefixes returns the valid node addresses as host prefixes, sorted
// without duplicates.
func nodePrefixes(addrs []netip.Addr) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, hostPrefix(a.Unmap()))
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out)
}

// anyPrefixes is 0.0.0.0/0 and ::/0, what an allow without peers stands for.
func anyPrefixes() []netip.Prefix {
	return []netip.Prefix{
		netip.PrefixFrom(netip.IPv4Unspecified(), 0),
		netip.PrefixFrom(netip.IPv6Unspecified(), 0),
	}
}

// anyOf is the whole address space of a's family.
func anyOf(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}
