package sim

import (
	"testing"
	"time"

	"go.fd.io/govpp/binapi/acl_types"
)

// Addresses of the ACL evaluation node: eth0 192.168.10.5/24 with a client
// at .9, pods pod1 and pod2 (loopbacks unnumbered to a gateway loopback).
const (
	aclClient = "192.168.10.9"
	aclPod1   = "10.1.0.2"
	aclPod2   = "10.1.0.3"
	aclPod1v6 = "2001:db8:1::2"
	aclHostv6 = "2001:db8::9"
)

const (
	ruleDeny    = acl_types.ACL_ACTION_API_DENY
	rulePermit  = acl_types.ACL_ACTION_API_PERMIT
	ruleReflect = acl_types.ACL_ACTION_API_PERMIT_REFLECT
)

type aclNode struct {
	*aclFixture
	pod1, pod2 uint32
	denyAll    uint32 // an ACL with one rule: deny everything IPv4
}

func newACLNode(t *testing.T) *aclNode {
	t.Helper()
	n := &aclNode{aclFixture: newACLFixture(t)}
	gw := n.loopback()
	n.address(gw, "10.1.0.1/32", true)
	n.setUp(eth0, true)
	n.address(eth0, "192.168.10.5/24", true)
	n.address(eth0, "2001:db8::5/64", true)
	for ip, idx := range map[string]*uint32{aclPod1: &n.pod1, aclPod2: &n.pod2} {
		*idx = n.loopback()
		if rv := n.setUnnumbered(*idx, gw, true); rv != 0 {
			t.Fatalf("unnumbered: %d", rv)
		}
		if rv := n.route(true, false, 0, ip+"/32", 0, via(ip, *idx)); rv != 0 {
			t.Fatalf("route %s: %d", ip, rv)
		}
	}
	if rv := n.route(true, false, 0, aclPod1v6+"/128", 0, via(aclPod1v6, n.pod1)); rv != 0 {
		t.Fatalf("route %s: %d", aclPod1v6, rv)
	}
	n.denyAll = n.mustAdd("deny-all", aclR(ruleDeny, "0.0.0.0/0", "0.0.0.0/0", 0, nil, nil))
	return n
}

func (n *aclNode) eval(p Packet) Result {
	n.t.Helper()
	res, err := n.sim.Evaluate(p)
	if err != nil {
		n.t.Fatalf("Evaluate(%+v): %v", p, err)
	}
	return res
}

// lastACL is the decision of the last ACL node the packet met.
func lastACL(res Result) ACLMatch {
	if len(res.ACL) == 0 {
		return ACLMatch{Rule: -2}
	}
	return res.ACL[len(res.ACL)-1]
}

func port(p uint16) []uint16 { return []uint16{p, p} }

// TestACLFirstMatch: single_rule_match_5tuple over the list in order, the
// first match deciding; nothing matching drops (acl_fa_inner_node_fn).
// Ports are ICMP type/code for ICMP and 0 for protocols other than TCP,
// UDP and ICMP (acl_fill_5tuple_l4_and_pkt_data); IPv4 rules never match
// IPv6 packets.
func TestACLFirstMatch(t *testing.T) {
	n := newACLNode(t)
	first := n.mustAdd("first",
		aclR(ruleDeny, aclClient+"/32", "0.0.0.0/0", 6, nil, port(80)),
		aclR(rulePermit, "192.168.10.0/24", "0.0.0.0/0", 6, nil, []uint16{80, 89}),
		aclR(rulePermit, "0.0.0.0/0", aclPod1+"/32", 17, nil, port(53)),
		aclR(rulePermit, "0.0.0.0/0", "0.0.0.0/0", 1, port(8), port(0)), // echo request
		aclR(rulePermit, "192.168.40.0/24", "0.0.0.0/0", 132, nil, port(5000)),
	)
	synOnly, ackOnly := aclR(rulePermit, "192.168.30.0/24", "0.0.0.0/0", 6, nil, nil), aclR(rulePermit, "192.168.30.0/24", "0.0.0.0/0", 6, nil, nil)
	synOnly.TCPFlagsMask, synOnly.TCPFlagsValue = 0x12, 0x02
	ackOnly.TCPFlagsMask, ackOnly.TCPFlagsValue = 0x10, 0x10
	second := n.mustAdd("second",
		aclR(ruleDeny, "0.0.0.0/0", "0.0.0.0/0", 1, port(0), nil), // echo reply: no match
		aclR(rulePermit, "192.168.20.0/24", "0.0.0.0/0", 0, nil, nil),
		ackOnly,
		synOnly,
	)
	n.mustSetLists(n.pod1, 0, first, second)

	tests := []struct {
		name    string
		p       Packet
		verdict Verdict
		acl     uint32
		rule    int
		action  string
	}{
		{"denied by rule 0", pkt(eth0, 6, aclClient, 1000, aclPod1, 80), Dropped, first, 0, "deny"},
		{"other port of the range", pkt(eth0, 6, aclClient, 1000, aclPod1, 81), Forwarded, first, 1, "permit"},
		{"other source, same port", pkt(eth0, 6, "192.168.10.10", 1000, aclPod1, 80), Forwarded, first, 1, "permit"},
		{"udp 53", pkt(eth0, 17, aclClient, 1000, aclPod1, 53), Forwarded, first, 2, "permit"},
		{"echo request", pkt(eth0, 1, aclClient, 7, aclPod1, 0), Forwarded, first, 3, "permit"},
		{"sctp port not parsed", pkt(eth0, 132, "192.168.40.1", 1000, aclPod1, 5000), Dropped, noIndex, -1, "deny"},
		{"any protocol from 20/24", pkt(eth0, 132, "192.168.20.1", 1, aclPod1, 2), Forwarded, second, 1, "permit"},
		{"second list entry, tcp", pkt(eth0, 6, "192.168.20.1", 1000, aclPod1, 90), Forwarded, second, 1, "permit"},
		{"SYN matches, ACK rule does not", pkt(eth0, 6, "192.168.30.1", 1000, aclPod1, 443), Forwarded, second, 3, "permit"},
		{"nothing matches", pkt(eth0, 17, "192.168.30.1", 1000, aclPod1, 443), Dropped, noIndex, -1, "deny"},
		{"out of the range, nothing else", pkt(eth0, 6, aclClient, 1000, aclPod1, 90), Dropped, noIndex, -1, "deny"},
		{"ipv6 against ipv4 rules", pkt(eth0, 6, aclHostv6, 1000, aclPod1v6, 80), Dropped, noIndex, -1, "deny"},
	}
	for _, tc := range tests {
		res := n.eval(tc.p)
		m := lastACL(res)
		if res.Verdict != tc.verdict || m.ACLIndex != tc.acl || m.Rule != tc.rule || m.Action != tc.action || m.SwIfIndex != n.pod1 {
			t.Errorf("%s: %s (%s), acl %+v; want %s by acl %d rule %d %s on pod1", tc.name, res.Verdict, res.Reason, m,
				tc.verdict, tc.acl, tc.rule, tc.action)
		}
	}
	// The output node of each family, by name, with the tag.
	if m := lastACL(n.eval(pkt(eth0, 6, aclClient, 1000, aclPod1, 81))); m.Node != "acl-plugin-out-ip4-fa" || m.Tag != "first" {
		t.Errorf("ipv4 match %+v, want acl-plugin-out-ip4-fa and tag first", m)
	}
	v6 := n.mustAdd("v6", aclR(rulePermit, "::/0", "2001:db8:1::/64", 6, nil, port(80)))
	n.mustSetLists(n.pod1, 0, first, v6)
	if res := n.eval(pkt(eth0, 6, aclHostv6, 1000, aclPod1v6, 80)); res.Verdict != Forwarded || lastACL(res).Node != "acl-plugin-out-ip6-fa" ||
		lastACL(res).ACLIndex != v6 {
		t.Errorf("ipv6 with an ipv6 rule: %s (%s) %+v", res.Verdict, res.Reason, res.ACL)
	}
}

// TestACLListPresence: with no list in a direction the node is off and
// everything passes; any list enables it, and an ACL without rules
// matches nothing, so it drops (acl_interface_set_inout_acl_list enables
// the feature exactly when the list is not empty).
func TestACLListPresence(t *testing.T) {
	n := newACLNode(t)
	empty := n.mustAdd("empty")
	p := pkt(eth0, 6, aclClient, 1000, aclPod2, 80)
	steps := []struct {
		name    string
		nInput  uint8
		acls    []uint32
		verdict Verdict
		nodes   int // ACL nodes met
	}{
		{"no lists", 0, nil, Forwarded, 0},
		{"input list only: output off", 1, []uint32{n.denyAll}, Forwarded, 0},
		{"output: an ACL without rules", 0, []uint32{empty}, Dropped, 1},
		{"lists cleared", 0, nil, Forwarded, 0},
	}
	for _, st := range steps {
		n.mustSetLists(n.pod2, st.nInput, st.acls...)
		if res := n.eval(p); res.Verdict != st.verdict || len(res.ACL) != st.nodes {
			t.Errorf("%s: %s (%s) with %d ACL nodes, want %s with %d", st.name, res.Verdict, res.Reason, len(res.ACL), st.verdict, st.nodes)
		}
	}
	// The input node also sees traffic to VPP's own address.
	n.mustSetLists(eth0, 1, n.denyAll)
	if res := n.eval(pkt(eth0, 1, aclClient, 1, "192.168.10.5", 0)); res.Verdict != Dropped || lastACL(res).Node != "acl-plugin-in-ip4-fa" {
		t.Errorf("ping to eth0 with deny-all input: %s (%s)", res.Verdict, res.Reason)
	}
}

// TestACLReflectOnOutput: a permit+reflect match on pod1's output adds the
// forward key (client->pod1, output, pod1) and the reverse one
// (pod1->client, input, pod1) (acl_fa_add_session,
// reverse_session_add_del_ip4): pod1's reply passes pod1's input list
// whatever it says; nothing else does.
func TestACLReflectOnOutput(t *testing.T) {
	n := newACLNode(t)
	ingress := n.mustAdd("ingress", aclR(ruleReflect, aclClient+"/32", aclPod1+"/32", 6, nil, port(8080)))
	plain := n.mustAdd("plain", aclR(rulePermit, aclClient+"/32", aclPod2+"/32", 6, nil, port(8080)))
	n.mustSetLists(n.pod1, 1, n.denyAll, ingress)
	n.mustSetLists(n.pod2, 1, n.denyAll, plain)

	req := n.eval(pkt(eth0, 6, aclClient, 40000, aclPod1, 8080))
	if m := lastACL(req); req.Verdict != Forwarded || m.Action != "permit+reflect" || m.Session {
		t.Fatalf("request: %s (%s) %+v", req.Verdict, req.Reason, m)
	}
	tests := []struct {
		name    string
		p       Packet
		verdict Verdict
		session bool
	}{
		{"reply on pod1's input", pkt(n.pod1, 6, aclPod1, 8080, aclClient, 40000), Forwarded, true},
		{"next request on pod1's output", pkt(eth0, 6, aclClient, 40000, aclPod1, 8080), Forwarded, true},
		{"reply from another port", pkt(n.pod1, 6, aclPod1, 8081, aclClient, 40000), Dropped, false},
		{"pod1 opening a connection", pkt(n.pod1, 6, aclPod1, 8080, aclClient, 22), Dropped, false},
		{"same reply on pod2: other interface", pkt(n.pod2, 6, aclPod1, 8080, aclClient, 40000), Dropped, false},
		{"plain permit: request passes", pkt(eth0, 6, aclClient, 40000, aclPod2, 8080), Forwarded, false},
		{"plain permit: no session for the reply", pkt(n.pod2, 6, aclPod2, 8080, aclClient, 40000), Dropped, false},
	}
	for _, tc := range tests {
		res := n.eval(tc.p)
		m := lastACL(res)
		if res.Verdict != tc.verdict || m.Session != tc.session {
			t.Errorf("%s: %s (%s) %+v, want %s (session %v)", tc.name, res.Verdict, res.Reason, m, tc.verdict, tc.session)
		}
		if tc.session && (m.ACLIndex != ingress || m.Tag != "ingress" || m.Rule != 0) {
			t.Errorf("%s: session hit names %+v, want the rule that made it", tc.name, m)
		}
		if tc.verdict == Dropped && m.Node != "acl-plugin-in-ip4-fa" && m.Node != "acl-plugin-out-ip4-fa" {
			t.Errorf("%s: dropped by %q, want an ACL node", tc.name, m.Node)
		}
	}
}

// TestACLReflectOnInput: a session made on pod1's input (egress policy)
// passes the reply on pod1's output only; the reply tuple met on pod1's
// input is not the reverse key (IS_INPUT is part of it).
func TestACLReflectOnInput(t *testing.T) {
	n := newACLNode(t)
	egress := n.mustAdd("egress", aclR(ruleReflect, "0.0.0.0/0", "192.168.10.0/24", 0, nil, nil))
	n.mustSetLists(n.pod1, 1, egress, n.denyAll)
	if res := n.eval(pkt(n.pod1, 17, aclPod1, 5000, aclClient, 53)); res.Verdict != Forwarded {
		t.Fatalf("request: %s (%s)", res.Verdict, res.Reason)
	}
	tests := []struct {
		name    string
		p       Packet
		verdict Verdict
	}{
		{"reply on pod1's output", pkt(eth0, 17, aclClient, 53, aclPod1, 5000), Forwarded},
		{"new flow to pod1", pkt(eth0, 17, aclClient, 53, aclPod1, 5001), Dropped},
		{"reply tuple on pod1's input", pkt(n.pod1, 17, aclClient, 53, aclPod1, 5000), Dropped},
	}
	for _, tc := range tests {
		if res := n.eval(tc.p); res.Verdict != tc.verdict {
			t.Errorf("%s: %s (%s) %+v, want %s", tc.name, res.Verdict, res.Reason, res.ACL, tc.verdict)
		}
	}
}

// TestACLSessionExpiry: sessions go after their idle timeout (acl.h: UDP
// 600s, TCP transient 120s, TCP established 24h) counted from the last
// packet either way; VPP's cleaner frees them between one and one and a
// half timeouts, so the checks sit before one and after one and a half.
func TestACLSessionExpiry(t *testing.T) {
	n := newACLNode(t)
	egress := n.mustAdd("egress", aclR(ruleReflect, "0.0.0.0/0", "192.168.10.0/24", 0, nil, nil))
	n.mustSetLists(n.pod1, 1, egress, n.denyAll)
	open := func(proto uint8, sport uint16) {
		if res := n.eval(pkt(n.pod1, proto, aclPod1, sport, aclClient, 80)); res.Verdict != Forwarded {
			t.Fatalf("opening %d/%d: %s (%s)", proto, sport, res.Verdict, res.Reason)
		}
	}
	reply := func(proto uint8, dport uint16) Verdict {
		return n.eval(pkt(eth0, proto, aclClient, 80, aclPod1, dport)).Verdict
	}
	// again sends the opening direction once more; Forwarded only when an
	// existing session passed it.
	again := func(proto uint8, sport uint16) Verdict {
		res := n.eval(pkt(n.pod1, proto, aclPod1, sport, aclClient, 80))
		if !lastACL(res).Session {
			return Dropped
		}
		return res.Verdict
	}
	steps := []struct {
		name    string
		advance time.Duration
		do      func() Verdict
		want    Verdict
	}{
		{"udp opened", 0, func() Verdict { open(17, 1000); return Forwarded }, Forwarded},
		{"udp reply just before 600s", 599 * time.Second, func() Verdict { return reply(17, 1000) }, Forwarded},
		{"udp reply 599s after the last one", 599 * time.Second, func() Verdict { return reply(17, 1000) }, Forwarded},
		{"udp after 1.5 timeouts idle", 901 * time.Second, func() Verdict { return reply(17, 1000) }, Dropped},
		{"tcp opened", 0, func() Verdict { open(6, 2000); return Forwarded }, Forwarded},
		{"tcp same way at 119s: session, still transient", 119 * time.Second, func() Verdict { return again(6, 2000) }, Forwarded},
		{"tcp transient idle 181s", 181 * time.Second, func() Verdict { return reply(6, 2000) }, Dropped},
		{"tcp opened again", 0, func() Verdict { open(6, 3000); return Forwarded }, Forwarded},
		{"tcp reply: established", time.Second, func() Verdict { return reply(6, 3000) }, Forwarded},
		{"tcp established idle 1h", time.Hour, func() Verdict { return reply(6, 3000) }, Forwarded},
		{"tcp established idle 36h", 36*time.Hour + time.Second, func() Verdict { return reply(6, 3000) }, Dropped},
	}
	for _, st := range steps {
		n.sim.Advance(st.advance)
		if got := st.do(); got != st.want {
			t.Errorf("%s: %s, want %s", st.name, got, st.want)
		}
	}
}

// TestACLSessionsAndListChanges: replacing the rules of an ACL in use
// keeps its sessions (reclassify_sessions is off); setting the same set
// of ACLs keeps them too; a different set clears the interface's sessions
// (acl_interface_set_inout_acl_list -> acl_clear_sessions).
func TestACLSessionsAndListChanges(t *testing.T) {
	n := newACLNode(t)
	ingress := n.mustAdd("ingress", aclR(ruleReflect, aclClient+"/32", aclPod1+"/32", 6, nil, port(8080)))
	other := n.mustAdd("other")
	n.mustSetLists(n.pod1, 1, n.denyAll, ingress)
	if res := n.eval(pkt(eth0, 6, aclClient, 40000, aclPod1, 8080)); res.Verdict != Forwarded {
		t.Fatalf("request: %s (%s)", res.Verdict, res.Reason)
	}
	reply := pkt(n.pod1, 6, aclPod1, 8080, aclClient, 40000)
	steps := []struct {
		name   string
		change func()
		want   Verdict
	}{
		{"rules of the input ACL replaced", func() {
			if _, rv := n.add(n.denyAll, "deny-all", aclR(ruleDeny, "0.0.0.0/0", "0.0.0.0/0", 6, nil, nil)); rv != 0 {
				t.Fatalf("replace: %d", rv)
			}
		}, Forwarded},
		{"the same lists set again", func() { n.mustSetLists(n.pod1, 1, n.denyAll, ingress) }, Forwarded},
		{"another ACL added to the output list", func() { n.mustSetLists(n.pod1, 1, n.denyAll, ingress, other) }, Dropped},
	}
	for _, st := range steps {
		st.change()
		if res := n.eval(reply); res.Verdict != st.want {
			t.Errorf("%s: reply %s (%s), want %s", st.name, res.Verdict, res.Reason, st.want)
		}
	}
}
