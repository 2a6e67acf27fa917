package sim

import (
	"net/netip"
	"testing"

	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
)

// The mappings as kube-vpp programs them: load-balanced, out2in-only, with
// a VIP outside the NAT pool (nat44_ed_add_lb_static_mapping checks the
// pool only without NAT_IS_OUT2IN_ONLY).
const (
	vipSvc   = "10.96.1.1" // A:8080, B1:8080, self-twice-NAT (ClusterIP with hairpin)
	vipTwice = "10.96.1.2" // B1:8080, B2:8080, twice-NAT (externalTrafficPolicy Cluster)
)

func newServiceNode(t *testing.T) *natNode {
	t.Helper()
	n := newNATNode(t, false)
	local := func(ip string) nat.Nat44LbAddrPort {
		return nat.Nat44LbAddrPort{Addr: a4(ip), Port: 8080, Probability: 50}
	}
	o2i := nat_types.NAT_IS_OUT2IN_ONLY
	n.nf.run([]natStep{
		{"self-twice-NAT service", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4(vipSvc), ExternalPort: 80, Protocol: 6,
			Flags: o2i | nat_types.NAT_IS_SELF_TWICE_NAT, Locals: []nat.Nat44LbAddrPort{local(podAIP), local(podB1IP)}}), 0},
		{"twice-NAT service", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4(vipTwice), ExternalPort: 80, Protocol: 6,
			Flags: o2i | nat_types.NAT_IS_TWICE_NAT, Locals: []nat.Nat44LbAddrPort{local(podB1IP), local(podB2IP)}}), 0},
	})
	return n
}

// TestNATOut2InOnlyLBSelfTwiceNAT: nat44-ed-classify sends a packet to an
// out2in-only load-balanced VIP out2in (a static mapping's external
// address with local 0.0.0.0); create_session_for_static_mapping_ed
// rewrites the source to the twice-NAT pool only when the picked local is
// the client itself (TWICE_NAT_SELF), and the backend's reply goes back
// through the session's in2out side.
func TestNATOut2InOnlyLBSelfTwiceNAT(t *testing.T) {
	n := newServiceNode(t)
	toSelf, toOther := 0, 0
	for port := uint16(40000); port < 40040; port++ {
		res := n.eval(pkt(n.podA, 6, podAIP, port, vipSvc, 80))
		if res.Verdict != Forwarded || len(res.Translations) == 0 || res.Translations[0].Kind != "dnat" ||
			res.Translations[0].From != ap(vipSvc, 80) {
			t.Fatalf("flow from port %d: %s (%s) %+v", port, res.Verdict, res.Reason, res.Translations)
		}
		switch res.Egress {
		case n.podA:
			toSelf++
			if len(res.Translations) != 2 || res.Translations[1].Kind != "snat" || res.Packet.Src != netip.MustParseAddr(twiceIP) {
				t.Errorf("to itself: %+v, want DNAT to A and SNAT to %s", res.Translations, twiceIP)
				continue
			}
			reply := n.eval(pkt(n.podA, 6, podAIP, 8080, twiceIP, res.Packet.SrcPort))
			back := netip.AddrPortFrom(reply.Packet.Src, reply.Packet.SrcPort) == ap(vipSvc, 80) &&
				netip.AddrPortFrom(reply.Packet.Dst, reply.Packet.DstPort) == ap(podAIP, port)
			if reply.Verdict != Forwarded || reply.Egress != n.podA || !back {
				t.Errorf("reply to itself: %s %+v, want %s -> %s on A", reply.Verdict, reply.Packet, ap(vipSvc, 80), ap(podAIP, port))
			}
		case n.podB1:
			toOther++
			if len(res.Translations) != 1 || res.Packet.Src != netip.MustParseAddr(podAIP) {
				t.Errorf("to B1: %+v, want DNAT only, source kept", res.Translations)
			}
		default:
			t.Errorf("flow from port %d left through %d, want A or B1", port, res.Egress)
		}
	}
	if toSelf == 0 || toOther == 0 {
		t.Errorf("40 flows: %d to itself, %d to B1; want both locals used", toSelf, toOther)
	}
}

// TestNATOut2InOnlyLBTwiceNAT: a client on the uplink reaches an
// out2in-only twice-NAT VIP: DNAT to a local and SNAT to the twice-NAT
// pool; the backend replies to that address and the session restores
// both ends toward the uplink.
func TestNATOut2InOnlyLBTwiceNAT(t *testing.T) {
	n := newServiceNode(t)
	res := n.eval(pkt(eth0, 6, client, 50000, vipTwice, 80))
	b := n.backendOf(res)
	if res.Verdict != Forwarded || b == "" || len(res.Translations) != 2 || res.Packet.Src != netip.MustParseAddr(twiceIP) {
		t.Fatalf("request: %s (%s) egress %d %+v", res.Verdict, res.Reason, res.Egress, res.Translations)
	}
	reply := n.eval(pkt(res.Egress, 6, b, 8080, twiceIP, res.Packet.SrcPort))
	back := netip.AddrPortFrom(reply.Packet.Src, reply.Packet.SrcPort) == ap(vipTwice, 80) &&
		netip.AddrPortFrom(reply.Packet.Dst, reply.Packet.DstPort) == ap(client, 50000)
	if reply.Verdict != Forwarded || reply.Egress != eth0 || !back {
		t.Errorf("reply: %s (%s) egress %d %+v, want %s -> %s on eth0", reply.Verdict, reply.Reason, reply.Egress, reply.Packet,
			ap(vipTwice, 80), ap(client, 50000))
	}
}

// With forwarding on, traffic that matches no mapping passes untranslated
// whichever way it goes (nat44_ed_not_translate in in2out, the forwarding
// branch of the out2in slow path).
func TestNATForwardingLeavesOtherTraffic(t *testing.T) {
	n := newServiceNode(t)
	tests := []struct {
		name   string
		pkt    Packet
		egress func(*natNode) uint32
	}{
		{"pod to pod", pkt(n.podA, 6, podAIP, 40000, podB2IP, 8080), func(n *natNode) uint32 { return n.b2 }},
		{"pod to remote", pkt(n.podA, 6, podAIP, 40000, client, 443), func(*natNode) uint32 { return eth0 }},
		{"remote to pod", pkt(eth0, 6, client, 50000, podB1IP, 8080), func(n *natNode) uint32 { return n.podB1 }},
		{"pod to a VIP's other port", pkt(n.podA, 6, podAIP, 40000, vipSvc, 81), nil},
	}
	for _, tt := range tests {
		res := n.eval(tt.pkt)
		if len(res.Translations) != 0 {
			t.Errorf("%s: translated %+v, want untouched", tt.name, res.Translations)
		}
		if tt.egress != nil && (res.Verdict != Forwarded || res.Egress != tt.egress(n)) {
			t.Errorf("%s: %s (%s) egress %d, want forwarded to %d", tt.name, res.Verdict, res.Reason, res.Egress, tt.egress(n))
		}
	}
}
