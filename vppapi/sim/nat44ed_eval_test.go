package sim

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
)

// Addresses of the NAT evaluation node: pods A, B1, B2 behind a gateway
// loopback, eth0 (192.168.10.5/24) as uplink with a client 192.168.10.9.
const (
	podAIP  = "10.1.0.2"
	podB1IP = "10.1.0.3"
	podB2IP = "10.1.0.4"
	vip     = "10.96.0.10" // load-balanced B1:8080, B2:8080
	vipAff  = "10.96.0.11" // the same, affinity 10s
	vipUDP  = "10.96.0.12" // static B1:5353 UDP
	vipSelf = "10.96.0.13" // static A:8080 self-twice-NAT
	vipO2I  = "10.96.0.14" // static B1:80 out2in-only
	twiceIP = "10.1.255.1" // twice-NAT pool
	client  = "192.168.10.9"
)

type natNode struct {
	*fixture
	nf              *natFixture
	podA, podB1, b2 uint32
}

// newNATNode wires pods as the agent will: every pod interface inside
// and outside (nat44-ed-classify picks the direction), the uplink outside,
// forwarding on.
func newNATNode(t *testing.T, podInsideOnly bool) *natNode {
	t.Helper()
	f := newFixture(t)
	n := &natNode{fixture: f, nf: &natFixture{t: t, ctx: f.ctx, sim: f.sim, nat: nat.NewServiceClient(f.conn), ifs: f.ifs}}
	gw := f.loopback()
	f.address(gw, "10.1.0.1/32", true)
	f.setUp(eth0, true)
	f.address(eth0, "192.168.10.5/24", true)
	pods := map[string]*uint32{podAIP: &n.podA, podB1IP: &n.podB1, podB2IP: &n.b2}
	for ip, idx := range pods {
		*idx = f.loopback()
		f.setUp(*idx, true)
		if rv := f.setUnnumbered(*idx, gw, true); rv != 0 {
			t.Fatalf("unnumbered: %d", rv)
		}
		if rv := f.route(true, false, 0, ip+"/32", 0, via(ip, *idx)); rv != 0 {
			t.Fatalf("route %s: %d", ip, rv)
		}
	}
	local := func(ip string, port uint16) nat.Nat44LbAddrPort {
		return nat.Nat44LbAddrPort{Addr: a4(ip), Port: port, Probability: 50}
	}
	steps := []natStep{
		{"enable", enable(0, 0, 0), 0},
		{"uplink outside", feature(eth0, true, 0), 0},
		{"forwarding", forwarding(true), 0},
		{"pool", addrRange(vip, vipAff, true, 0), 0},
		{"twice-NAT pool", addrRange(twiceIP, twiceIP, true, nat_types.NAT_IS_TWICE_NAT), 0},
		{"lb", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4(vip), ExternalPort: 80, Protocol: 6,
			Locals: []nat.Nat44LbAddrPort{local(podB1IP, 8080), local(podB2IP, 8080)}}), 0},
		{"lb affinity", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4(vipAff), ExternalPort: 80, Protocol: 6,
			Affinity: 10, Locals: []nat.Nat44LbAddrPort{local(podB1IP, 8080), local(podB2IP, 8080)}}), 0},
		{"static udp", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4(podB1IP), LocalPort: 5353,
			ExternalIPAddress: a4(vipUDP), ExternalPort: 53, Protocol: 17, ExternalSwIfIndex: 0xffffffff}), 0},
		{"self twice", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4(podAIP), LocalPort: 8080,
			ExternalIPAddress: a4(vipSelf), ExternalPort: 80, Protocol: 6, ExternalSwIfIndex: 0xffffffff,
			Flags: nat_types.NAT_IS_SELF_TWICE_NAT}), 0},
		{"out2in only", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4(podB1IP), LocalPort: 80,
			ExternalIPAddress: a4(vipO2I), ExternalPort: 80, Protocol: 6, ExternalSwIfIndex: 0xffffffff,
			Flags: nat_types.NAT_IS_OUT2IN_ONLY}), 0},
	}
	for _, idx := range []uint32{n.podA, n.podB1, n.b2} {
		steps = append(steps, natStep{"pod inside", feature(idx, true, nat_types.NAT_IS_INSIDE), 0})
		if !podInsideOnly {
			steps = append(steps, natStep{"pod outside", feature(idx, true, 0), 0})
		}
	}
	n.nf.run(steps)
	return n
}

func pkt(ingress uint32, proto uint8, src string, sport uint16, dst string, dport uint16) Packet {
	return Packet{Ingress: ingress, Protocol: proto, Src: netip.MustParseAddr(src), SrcPort: sport,
		Dst: netip.MustParseAddr(dst), DstPort: dport}
}

func ap(s string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s), port)
}

func (n *natNode) eval(p Packet) Result {
	n.t.Helper()
	res, err := n.sim.Evaluate(p)
	if err != nil {
		n.t.Fatalf("Evaluate(%+v): %v", p, err)
	}
	return res
}

// backendOf maps a pod's egress interface to its address.
func (n *natNode) backendOf(res Result) string {
	switch res.Egress {
	case n.podB1:
		return podB1IP
	case n.b2:
		return podB2IP
	}
	return ""
}

// TestNATLoadBalancedService: a pod reaching a ClusterIP-style
// load-balanced mapping is DNATed by out2in (classify sends a pool address
// there) to a local picked by probability; the reply from the backend
// matches the session's in2out side and is SNATed back to the VIP
// (create_session_for_static_mapping_ed, nat44_ed_in2out fast path).
func TestNATLoadBalancedService(t *testing.T) {
	n := newNATNode(t, false)
	req := pkt(n.podA, 6, podAIP, 40000, vip, 80)
	res := n.eval(req)
	b := n.backendOf(res)
	if res.Verdict != Forwarded || b == "" {
		t.Fatalf("request: %s (%s), egress %d; steps %+v", res.Verdict, res.Reason, res.Egress, res.Steps)
	}
	wantDNAT := []Translation{{Node: "nat44-ed-out2in-slowpath", Kind: "dnat", From: ap(vip, 80), To: ap(b, 8080)}}
	if !equalTranslations(res.Translations, wantDNAT) || res.Packet.Dst != netip.MustParseAddr(b) || res.Packet.Src != req.Src {
		t.Errorf("request translated %+v to %+v, want %+v", res.Translations, res.Packet, wantDNAT)
	}
	if again := n.eval(req); n.backendOf(again) != b {
		t.Errorf("same flow went to %s, then %s", b, n.backendOf(again))
	}

	reply := pkt(res.Egress, 6, b, 8080, podAIP, 40000)
	rres := n.eval(reply)
	wantSNAT := []Translation{{Node: "nat44-ed-in2out", Kind: "snat", From: ap(b, 8080), To: ap(vip, 80)}}
	if rres.Verdict != Forwarded || rres.Egress != n.podA || !equalTranslations(rres.Translations, wantSNAT) {
		t.Errorf("reply: %s (%s) egress %d, translations %+v, want forwarded to A with %+v",
			rres.Verdict, rres.Reason, rres.Egress, rres.Translations, wantSNAT)
	}

	// 200 flows from distinct ports spread over both 50/50 locals.
	seen := map[string]int{}
	for port := uint16(20000); port < 20200; port++ {
		seen[n.backendOf(n.eval(pkt(n.podA, 6, podAIP, port, vip, 80)))]++
	}
	if seen[podB1IP] < 50 || seen[podB2IP] < 50 {
		t.Errorf("200 flows spread %v, want both backends well used", seen)
	}
}

// TestNATAffinity: nat_affinity keeps one client on one backend while its
// sessions live and for the affinity time after the last one ends
// (nat_affinity_unlock); then the next flow picks afresh.
func TestNATAffinity(t *testing.T) {
	n := newNATNode(t, false)
	flows := func(src string, first uint16) map[string]bool {
		got := map[string]bool{}
		for port := first; port < first+100; port++ {
			got[n.backendOf(n.eval(pkt(eth0, 6, src, port, vipAff, 80)))] = true
		}
		return got
	}
	first := flows(client, 30000)
	if len(first) != 1 || first[""] {
		t.Fatalf("100 flows from one client used backends %v, want one", first)
	}
	key := affinityKey{client: netip.MustParseAddr(client), service: netip.MustParseAddr(vipAff), port: 80, proto: 6}
	if a := n.sim.st.nat.db.sessions.affinity[key]; a == nil || a.refs != 100 {
		t.Errorf("affinity record %+v, want one held by the 100 sessions", a)
	}
	// Sessions (TCP transitory, 240s) still hold the record after 11s.
	n.sim.Advance(11 * time.Second)
	if again := flows(client, 31000); !equalSets(again, first) {
		t.Errorf("after 11s with live sessions: %v, want %v", again, first)
	}
	// Other clients spread over both backends.
	all := map[string]bool{}
	for i := 20; i < 60; i++ {
		res := n.eval(pkt(eth0, 6, "192.168.10."+strconv.Itoa(i), 5000, vipAff, 80))
		all[n.backendOf(res)] = true
	}
	if !all[podB1IP] || !all[podB2IP] {
		t.Errorf("40 clients used %v, want both backends", all)
	}
	// Sessions end at 240s after their last packet; affinity 10s later.
	n.sim.Advance(240*time.Second + 11*time.Second)
	after := flows(client, 32000)
	if len(after) != 1 || after[""] {
		t.Errorf("after expiry 100 flows used %v, want one backend again", after)
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func equalTranslations(a, b []Translation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNATEvaluate covers the other cases, each on a fresh node.
func TestNATEvaluate(t *testing.T) {
	tests := []struct {
		name        string
		insideOnly  bool
		setup       []natStep
		pkt         func(n *natNode) Packet
		want        Verdict
		egress      func(n *natNode) uint32
		translation []Translation
		reason      string
	}{
		{
			name: "static mapping, UDP, from the uplink",
			pkt:  func(n *natNode) Packet { return pkt(eth0, 17, client, 7000, vipUDP, 53) },
			want: Forwarded, egress: func(n *natNode) uint32 { return n.podB1 },
			translation: []Translation{{"nat44-ed-out2in-slowpath", "dnat", ap(vipUDP, 53), ap(podB1IP, 5353)}},
		},
		{
			// nat44_ed_out2in_slowpath_unknown_proto: no mapping of protocol
			// 47; forwarding lets it pass untranslated (then no route).
			name: "GRE to a VIP is not translated",
			pkt:  func(n *natNode) Packet { return pkt(n.podA, 47, podAIP, 0, vip, 0) },
			want: Dropped, reason: "no route",
		},
		{
			name:  "GRE to a VIP without forwarding: no translation",
			setup: []natStep{{"forwarding off", forwarding(false), 0}},
			pkt:   func(n *natNode) Packet { return pkt(eth0, 47, client, 0, vip, 0) },
			want:  Dropped, reason: "no translation",
		},
		{
			// create_session_for_static_mapping_ed: TWICE_NAT_SELF and the
			// client is the local: source from the twice-NAT pool.
			name: "hairpin with self-twice-NAT",
			pkt:  func(n *natNode) Packet { return pkt(n.podA, 6, podAIP, 40000, vipSelf, 80) },
			want: Forwarded, egress: func(n *natNode) uint32 { return n.podA },
			translation: []Translation{
				{"nat44-ed-out2in-slowpath", "dnat", ap(vipSelf, 80), ap(podAIP, 8080)},
				{"nat44-ed-out2in-slowpath", "snat", ap(podAIP, 40000), ap(twiceIP, 0)}, // port checked apart
			},
		},
		{
			name: "self-twice-NAT leaves other clients' source alone",
			pkt:  func(n *natNode) Packet { return pkt(n.podB1, 6, podB1IP, 40000, vipSelf, 80) },
			want: Forwarded, egress: func(n *natNode) uint32 { return n.podA },
			translation: []Translation{{"nat44-ed-out2in-slowpath", "dnat", ap(vipSelf, 80), ap(podAIP, 8080)}},
		},
		{
			// Forwarding off: in2out translates flows behind outside
			// interfaces; a local of a mapping takes its external address.
			name:  "local of a mapping SNATs to it",
			setup: []natStep{{"forwarding off", forwarding(false), 0}},
			pkt:   func(n *natNode) Packet { return pkt(n.podB1, 17, podB1IP, 5353, client, 53) },
			want:  Forwarded, egress: func(n *natNode) uint32 { return eth0 },
			translation: []Translation{{"nat44-ed-in2out-slowpath", "snat", ap(podB1IP, 5353), ap(vipUDP, 53)}},
		},
		{
			// Out2in-only: no in2out key, so the local's own flow takes a
			// dynamic pool address, never the mapping's external one.
			name:  "out2in-only mapping ignored from inside",
			setup: []natStep{{"forwarding off", forwarding(false), 0}},
			pkt:   func(n *natNode) Packet { return pkt(n.podB1, 6, podB1IP, 80, client, 5000) },
			want:  Forwarded, egress: func(n *natNode) uint32 { return eth0 },
			translation: []Translation{{"nat44-ed-in2out-slowpath", "snat", ap(podB1IP, 80), ap("10.96.0.0", 0)}}, // address checked apart
		},
		{
			name:  "out2in-only mapping applies from outside",
			setup: []natStep{{"forwarding off", forwarding(false), 0}},
			pkt:   func(n *natNode) Packet { return pkt(eth0, 6, client, 5000, vipO2I, 80) },
			want:  Forwarded, egress: func(n *natNode) uint32 { return n.podB1 },
			translation: []Translation{{"nat44-ed-out2in-slowpath", "dnat", ap(vipO2I, 80), ap(podB1IP, 80)}},
		},
		{
			name: "pod to pod is not translated",
			pkt:  func(n *natNode) Packet { return pkt(n.podA, 6, podAIP, 40000, podB1IP, 8080) },
			want: Forwarded, egress: func(n *natNode) uint32 { return n.podB1 },
		},
		{
			name:  "plugin disabled: nothing translated",
			setup: []natStep{{"disable", disable, 0}},
			pkt:   func(n *natNode) Packet { return pkt(n.podA, 6, podAIP, 40000, vip, 80) },
			want:  Dropped, reason: "no route",
		},
		{
			// slow_path_ed hairpinning rewrites to m->local_addr, unset for
			// a load-balanced mapping.
			name: "inside-only pod to a load-balanced VIP", insideOnly: true,
			pkt:  func(n *natNode) Packet { return pkt(n.podA, 6, podAIP, 40000, vip, 80) },
			want: Dropped, reason: "local_addr",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newNATNode(t, tc.insideOnly)
			n.nf.run(tc.setup)
			res := n.eval(tc.pkt(n))
			if res.Verdict != tc.want || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("%s (%s), want %s (%q); steps %+v", res.Verdict, res.Reason, tc.want, tc.reason, res.Steps)
			}
			if tc.egress != nil && res.Egress != tc.egress(n) {
				t.Errorf("egress %d, want %d", res.Egress, tc.egress(n))
			}
			got := res.Translations
			if len(got) == len(tc.translation) {
				for i, w := range tc.translation {
					if w.To.Port() == 0 && w.To.Addr() == netip.MustParseAddr(twiceIP) {
						got[i].To = netip.AddrPortFrom(got[i].To.Addr(), 0) // any pool port
					}
					if w.To.Addr() == netip.MustParseAddr("10.96.0.0") && (got[i].To.Addr() == netip.MustParseAddr(vip) || got[i].To.Addr() == netip.MustParseAddr(vipAff)) {
						got[i].To = w.To // any pool address and port
					}
				}
			}
			if !equalTranslations(got, tc.translation) {
				t.Errorf("translations %+v, want %+v", got, tc.translation)
			}
		})
	}
}

// TestNATHairpinReply: the backend's reply to a self-twice-NAT session
// matches its in2out side and goes back with both addresses restored.
func TestNATHairpinReply(t *testing.T) {
	n := newNATNode(t, false)
	res := n.eval(pkt(n.podA, 6, podAIP, 40000, vipSelf, 80))
	if res.Verdict != Forwarded || res.Packet.Src != netip.MustParseAddr(twiceIP) || res.Packet.SrcPort < 1024 {
		t.Fatalf("request: %+v", res)
	}
	rres := n.eval(pkt(n.podA, 6, podAIP, 8080, twiceIP, res.Packet.SrcPort))
	want := netip.AddrPortFrom(rres.Packet.Src, rres.Packet.SrcPort) == ap(vipSelf, 80) &&
		netip.AddrPortFrom(rres.Packet.Dst, rres.Packet.DstPort) == ap(podAIP, 40000)
	if rres.Verdict != Forwarded || rres.Egress != n.podA || !want {
		t.Errorf("reply: %s (%s) %+v, want %s -> %s on A", rres.Verdict, rres.Reason, rres.Packet, ap(vipSelf, 80), ap(podAIP, 40000))
	}
}

// TestNATSessionExpiry: a UDP session lives 300s after its last packet
// (nat44_session_get_timeout); after that the reply is no longer
// un-translated.
func TestNATSessionExpiry(t *testing.T) {
	n := newNATNode(t, false)
	res := n.eval(pkt(eth0, 17, client, 7000, vipUDP, 53))
	if res.Verdict != Forwarded {
		t.Fatalf("request: %s (%s)", res.Verdict, res.Reason)
	}
	reply := pkt(n.podB1, 17, podB1IP, 5353, client, 7000)
	n.sim.Advance(299 * time.Second)
	if r := n.eval(reply); len(r.Translations) != 1 || r.Packet.Src != netip.MustParseAddr(vipUDP) {
		t.Errorf("reply at 299s: %+v, want SNAT to %s", r.Translations, vipUDP)
	}
	n.sim.Advance(301 * time.Second) // 301s after the reply refreshed it
	if r := n.eval(reply); len(r.Translations) != 0 {
		t.Errorf("reply after expiry translated %+v; forwarding passes it untranslated", r.Translations)
	}
}
