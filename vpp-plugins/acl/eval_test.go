package acl_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// TestBoundACLsDecidePackets: tables as the driver builds and binds them
// decide packets as VPP's ACL nodes do (dataplane_node.c
// acl_fa_inner_node_fn): the first matching rule of the list decides, no
// match drops, and a permit+reflect match on pod A's output makes a
// session whose reverse entry passes the reply on pod A's input, before
// that list is read (session_inlines.h acl_fa_add_session). An interface
// with no list has no ACL node.
func TestBoundACLsDecidePackets(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	want := acl.Desired{ACLs: []acl.ACL{web, denyV4}, Bindings: []acl.Binding{
		{SwIfIndex: podA, Input: tags(denyV4), Output: tags(web)},
	}}
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	type decision struct {
		tag     string // "" for no match
		rule    int
		action  string
		session bool
	}
	tests := []struct {
		name    string
		pkt     sim.Packet
		verdict sim.Verdict
		egress  uint32
		acl     []decision // every ACL node met, in order
	}{
		{"client to pod A on TCP 80: web rule 0 permits and reflects",
			packet(uplink, 6, clientIP+":40000", podAIP+":80"), sim.Forwarded, podA,
			[]decision{{web.Tag, 0, "permit+reflect", false}}},
		{"pod A's reply passes its input by the session, not deny-v4",
			packet(podA, 6, podAIP+":80", clientIP+":40000"), sim.Forwarded, uplink,
			[]decision{{web.Tag, 0, "permit", true}}},
		{"client to pod A on TCP 22: no rule of the output list matches, denied",
			packet(uplink, 6, clientIP+":40001", podAIP+":22"), sim.Dropped, 0,
			[]decision{{"", -1, "deny", false}}},
		{"pod A opening a connection: deny-v4 rule 0 on its input",
			packet(podA, 6, podAIP+":5555", clientIP+":443"), sim.Dropped, 0,
			[]decision{{denyV4.Tag, 0, "deny", false}}},
		{"client to pod B, which has no list: no ACL node",
			packet(uplink, 6, clientIP+":40002", podBIP+":22"), sim.Forwarded, podB, nil},
	}
	for _, tt := range tests {
		res, err := env.Sim.Evaluate(tt.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Verdict != tt.verdict || (tt.verdict == sim.Forwarded && res.Egress != tt.egress) {
			t.Errorf("%s: %s via %d (%s), want %s via %d", tt.name, res.Verdict, res.Egress, res.Reason, tt.verdict, tt.egress)
		}
		var got []decision
		for _, m := range res.ACL {
			name, ok := d.Tag(m.ACLIndex)
			if !ok && m.Tag != "" {
				t.Errorf("%s: acl_index %d (%q) is not known to the driver", tt.name, m.ACLIndex, m.Tag)
			}
			got = append(got, decision{name, m.Rule, m.Action, m.Session})
		}
		if len(got) != len(tt.acl) {
			t.Errorf("%s: ACL decisions %+v, want %+v", tt.name, got, tt.acl)
			continue
		}
		for i := range got {
			if got[i] != tt.acl[i] {
				t.Errorf("%s: ACL decision %d: %+v, want %+v", tt.name, i, got[i], tt.acl[i])
			}
		}
	}
}

func packet(ingress uint32, proto uint8, src, dst string) sim.Packet {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return sim.Packet{Ingress: ingress, Protocol: proto, Src: s.Addr(), SrcPort: s.Port(), Dst: d.Addr(), DstPort: d.Port()}
}
