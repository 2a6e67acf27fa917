package sim

import (
	"fmt"
	"strings"
)

// ACLs in packet evaluation: the nodes acl_fa_enable_disable
// (src/plugins/acl/sess_mgmt_node.c) turns on for an interface whose input
// or output list is not empty: acl-plugin-in-ip4-fa / -ip6-fa on
// ip4-unicast / ip6-unicast, before every NAT44-ED node (nat44_ed.c:
// runs_after acl-plugin-in-ip4-fa), and acl-plugin-out-ip4-fa / -ip6-fa on
// ip4-output / ip6-output, after nat44-ed-in2out-output (nat44_ed.c:
// runs_before acl-plugin-out-ip4-fa). The node logic is
// acl_fa_inner_node_fn (dataplane_node.c): a session hit passes the packet
// without consulting the list; otherwise the first matching rule over the
// list decides, and no match drops.
//
// Not modelled: non-first fragments, IPv6 extension headers, the session
// limit and recycling, reclassify_sessions, and TCP flags: packets carry
// none, so rule matching takes a TCP packet for a SYN (aclAssumedTCPFlags)
// and a session counts as established once a packet went each way.

// ACLMatch is what one ACL node decided for a packet.
type ACLMatch struct {
	Node      string // acl-plugin-in-ip4-fa, acl-plugin-out-ip6-fa, ...
	SwIfIndex uint32 // the interface whose list was consulted
	// ACLIndex, Tag and Rule name the rule that matched; for a session hit,
	// the rule that created the session (which VPP itself does not keep).
	// No match: ACLIndex ~0, Tag empty, Rule -1.
	ACLIndex uint32
	Tag      string
	Rule     int
	// Action is "deny", "permit", "permit+reflect" or "action N" as VPP's
	// format_acl_action names is_permit; "permit" for a session hit.
	Action  string
	Session bool // passed by an existing reflexive session
}

// aclAssumedTCPFlags are the flags rule matching sees on TCP packets: SYN,
// as for the first packet of a connection.
const aclAssumedTCPFlags = 0x02

func aclInput(c *evalCtx) bool  { return c.aclNode(true, c.ingress) }
func aclOutput(c *evalCtx) bool { return c.aclNode(false, c.egress) }

func aclNodeName(af afi, input bool) string {
	if input {
		return "acl-plugin-in-" + af.String() + "-fa"
	}
	return "acl-plugin-out-" + af.String() + "-fa"
}

func aclDirection(input bool) string {
	if input {
		return "input"
	}
	return "output"
}

func aclActionName(action uint8) string {
	switch action {
	case aclDeny:
		return "deny"
	case aclPermit:
		return "permit"
	case aclPermitReflect:
		return "permit+reflect"
	}
	return fmt.Sprintf("action %d", action)
}

// aclNode is one ACL node for the interface the packet enters (input) or
// leaves (output) by.
func (c *evalCtx) aclNode(input bool, ifc *iface) bool {
	a := &c.st.acl
	list := a.list(ifc.index, input)
	if len(list) == 0 {
		return true // the feature is off in this direction
	}
	node, dir := aclNodeName(c.af, input), aclDirection(input)
	now := c.st.clock
	a.sess.expire(now)
	k := c.aclKey(input, ifc.index)
	m := ACLMatch{Node: node, SwIfIndex: ifc.index, ACLIndex: noIndex, Rule: -1}

	if s := a.sess.keys[k]; s != nil {
		// acl_fa_track_session: refresh, note the direction seen.
		s.lastActive = now
		if k == s.fwd {
			s.seen[0] = true
		} else {
			s.seen[1] = true
		}
		m.ACLIndex, m.Tag, m.Rule, m.Action, m.Session = s.acl, s.tag, s.rule, aclActionName(aclPermit), true
		c.res.ACL = append(c.res.ACL, m)
		c.step(node, "%s %s: existing session (made by acl %d %q rule %d): permit", dir, ifc.name, s.acl, s.tag, s.rule)
		return true
	}

	idx, rule, r, ok := a.match(list, k, aclAssumedTCPFlags)
	if !ok {
		m.Action = aclActionName(aclDeny)
		c.res.ACL = append(c.res.ACL, m)
		c.step(node, "%s %s: no rule matched in acls %s: deny", dir, ifc.name, a.describe(list))
		return c.end(Dropped, fmt.Sprintf("no rule matched in the %s ACL list of %s (acls %s): denied", dir, ifc.name, a.describe(list)))
	}
	l, _ := a.get(idx)
	m.ACLIndex, m.Tag, m.Rule, m.Action = idx, l.tag, rule, aclActionName(r.action)
	c.res.ACL = append(c.res.ACL, m)
	switch r.action {
	case aclDeny:
		c.step(node, "%s %s: acl %d %q rule %d: deny", dir, ifc.name, idx, l.tag, rule)
		return c.end(Dropped, fmt.Sprintf("denied by %s ACL %d %q rule %d on %s", dir, idx, l.tag, rule, ifc.name))
	case aclPermitReflect:
		s := &aclSession{fwd: k, lastActive: now, seen: [2]bool{true, false}, acl: idx, tag: l.tag, rule: rule}
		a.sess.add(s, c.af)
		c.step(node, "%s %s: acl %d %q rule %d: permit+reflect, session added", dir, ifc.name, idx, l.tag, rule)
		return true
	}
	c.step(node, "%s %s: acl %d %q rule %d: %s", dir, ifc.name, idx, l.tag, rule, aclActionName(r.action))
	return true
}

// aclKey is acl_fill_5tuple for the packet as it is at this node.
func (c *evalCtx) aclKey(input bool, swIfIndex uint32) aclKey {
	k := aclKey{src: c.pkt.Src, dst: c.pkt.Dst, proto: c.pkt.Protocol, input: input, swIfIndex: swIfIndex}
	switch c.pkt.Protocol {
	case protoTCP, protoUDP:
		k.sport, k.dport = c.pkt.SrcPort, c.pkt.DstPort
	case icmpProto(c.af):
		// Evaluated ICMP packets are echo requests: type 8 (128), code 0.
		k.sport = 8
		if c.af == af6 {
			k.sport = 128
		}
	}
	return k
}

// describe lists ACLs as index and tag, for steps and reasons.
func (a *aclState) describe(list []uint32) string {
	parts := make([]string, 0, len(list))
	for _, idx := range list {
		tag := ""
		if l, ok := a.get(idx); ok {
			tag = l.tag
		}
		parts = append(parts, fmt.Sprintf("%d %q", idx, tag))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
