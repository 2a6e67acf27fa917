package sim

import (
	"testing"

	acl "go.fd.io/govpp/binapi/acl"
)

// aclNATNode is the NAT evaluation node (nat44ed_eval_test.go: pods A, B1,
// B2, a load-balanced VIP over B1:8080 and B2:8080) with an ACL client.
type aclNATNode struct {
	*natNode
	a *aclFixture
}

func newACLNATNode(t *testing.T) *aclNATNode {
	t.Helper()
	n := newNATNode(t, false)
	return &aclNATNode{natNode: n, a: &aclFixture{fixture: n.fixture, acl: acl.NewServiceClient(n.conn)}}
}

// stepIndex is the position of the first step of node, -1 if none.
func stepIndex(res Result, node string) int {
	for i, s := range res.Steps {
		if s.Node == node {
			return i
		}
	}
	return -1
}

// TestACLBeforeNATOnInput: every NAT44-ED node on ip4-unicast runs_after
// acl-plugin-in-ip4-fa (nat44_ed.c), so an input ACL sees the VIP, not the
// backend: a rule on the VIP drops the packet untranslated, a rule on the
// backends does not match.
func TestACLBeforeNATOnInput(t *testing.T) {
	n := newACLNATNode(t)
	any4 := aclR(rulePermit, "0.0.0.0/0", "0.0.0.0/0", 0, nil, nil)
	onVIP := n.a.mustAdd("deny-vip", aclR(ruleDeny, "0.0.0.0/0", vip+"/32", 6, nil, port(80)), any4)
	onBackends := n.a.mustAdd("deny-backends",
		aclR(ruleDeny, "0.0.0.0/0", podB1IP+"/32", 6, nil, port(8080)),
		aclR(ruleDeny, "0.0.0.0/0", podB2IP+"/32", 6, nil, port(8080)), any4)
	req := pkt(n.podA, 6, podAIP, 40000, vip, 80)

	n.a.mustSetLists(n.podA, 1, onVIP)
	res := n.eval(req)
	if m := lastACL(res); res.Verdict != Dropped || m.ACLIndex != onVIP || m.Rule != 0 || m.Node != "acl-plugin-in-ip4-fa" {
		t.Errorf("VIP rule on A's input: %s (%s) %+v, want dropped by deny-vip rule 0", res.Verdict, res.Reason, m)
	}
	if len(res.Translations) != 0 {
		t.Errorf("dropped before NAT, yet translated: %+v", res.Translations)
	}

	n.a.mustSetLists(n.podA, 1, onBackends)
	res = n.eval(req)
	if m := lastACL(res); res.Verdict != Forwarded || m.ACLIndex != onBackends || m.Rule != 2 {
		t.Errorf("backend rules on A's input: %s (%s) %+v, want forwarded by rule 2", res.Verdict, res.Reason, m)
	}
	if a, nat := stepIndex(res, "acl-plugin-in-ip4-fa"), stepIndex(res, "nat44-ed-classify"); a < 0 || nat < a {
		t.Errorf("steps %+v: want the input ACL before nat44-ed-classify", res.Steps)
	}
}

// TestACLAfterNATOnOutput: nat44-ed-in2out-output runs_before
// acl-plugin-out-ip4-fa and DNAT happened on the ingress already, so the
// backend's output ACL sees the chosen backend, not the VIP.
func TestACLAfterNATOnOutput(t *testing.T) {
	n := newACLNATNode(t)
	any4 := aclR(rulePermit, "0.0.0.0/0", "0.0.0.0/0", 0, nil, nil)
	onVIP := n.a.mustAdd("deny-vip", aclR(ruleDeny, "0.0.0.0/0", vip+"/32", 6, nil, port(80)), any4)
	onBackend := n.a.mustAdd("deny-8080", aclR(ruleDeny, podAIP+"/32", "10.1.0.0/24", 6, nil, port(8080)), any4)
	req := pkt(n.podA, 6, podAIP, 40000, vip, 80)

	for _, b := range []uint32{n.podB1, n.b2} {
		n.a.mustSetLists(b, 0, onVIP)
	}
	res := n.eval(req)
	if m := lastACL(res); res.Verdict != Forwarded || m.Rule != 1 || m.Node != "acl-plugin-out-ip4-fa" || m.SwIfIndex != res.Egress {
		t.Errorf("VIP rule on the backends' output: %s (%s) %+v, want forwarded by rule 1 on the egress", res.Verdict, res.Reason, m)
	}

	for _, b := range []uint32{n.podB1, n.b2} {
		n.a.mustSetLists(b, 0, onBackend)
	}
	res = n.eval(pkt(n.podA, 6, podAIP, 40001, vip, 80))
	if m := lastACL(res); res.Verdict != Dropped || m.ACLIndex != onBackend || m.Rule != 0 {
		t.Errorf("backend rule on the backends' output: %s (%s) %+v, want dropped by deny-8080 rule 0", res.Verdict, res.Reason, m)
	}
	if len(res.Translations) != 1 || res.Translations[0].Kind != "dnat" {
		t.Errorf("want the DNAT done before the output ACL dropped it, got %+v", res.Translations)
	}
}

// TestACLReflectThroughNAT: sessions are keyed on the tuple each node saw.
// A session made on the backend's output (post-DNAT A->B:8080) passes B's
// reply on B's input before NAT restores the VIP; a session made on A's
// input (pre-DNAT A->VIP:80) passes the translated reply VIP:80->A on A's
// output.
func TestACLReflectThroughNAT(t *testing.T) {
	n := newACLNATNode(t)
	denyAll := n.a.mustAdd("deny-all", aclR(ruleDeny, "0.0.0.0/0", "0.0.0.0/0", 0, nil, nil))
	ingressB := n.a.mustAdd("ingress-b", aclR(ruleReflect, podAIP+"/32", "0.0.0.0/0", 6, nil, port(8080)))
	egressA := n.a.mustAdd("egress-a", aclR(ruleReflect, podAIP+"/32", "0.0.0.0/0", 0, nil, nil))
	n.a.mustSetLists(n.podA, 1, egressA, denyAll)
	for _, b := range []uint32{n.podB1, n.b2} {
		n.a.mustSetLists(b, 1, denyAll, ingressB)
	}

	res := n.eval(pkt(n.podA, 6, podAIP, 40000, vip, 80))
	if res.Verdict != Forwarded || len(res.ACL) != 2 || res.ACL[0].ACLIndex != egressA || res.ACL[1].ACLIndex != ingressB {
		t.Fatalf("request: %s (%s) %+v, want permitted by egress-a then ingress-b", res.Verdict, res.Reason, res.ACL)
	}
	b := n.backendOf(res)
	reply := n.eval(pkt(res.Egress, 6, b, 8080, podAIP, 40000))
	if reply.Verdict != Forwarded || reply.Egress != n.podA || len(reply.ACL) != 2 || !reply.ACL[0].Session || !reply.ACL[1].Session {
		t.Fatalf("reply: %s (%s) egress %d %+v, want two session hits to A", reply.Verdict, reply.Reason, reply.Egress, reply.ACL)
	}
	if reply.ACL[0].ACLIndex != ingressB || reply.ACL[1].ACLIndex != egressA {
		t.Errorf("reply sessions made by %+v, want ingress-b then egress-a", reply.ACL)
	}
	// B opening its own connection to A is not a reply: B's input denies it.
	if res := n.eval(pkt(res.Egress, 6, b, 8081, podAIP, 40000)); res.Verdict != Dropped {
		t.Errorf("B from another port: %s (%s), want dropped", res.Verdict, res.Reason)
	}
}
