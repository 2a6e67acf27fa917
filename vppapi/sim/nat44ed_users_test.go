package sim

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
)

func (f *natFixture) users() []*nat.Nat44UserDetails {
	s, err := f.nat.Nat44UserDump(f.ctx, &nat.Nat44UserDump{})
	return drain(f.t, func() (*nat.Nat44UserDetails, error) { return s.Recv() }, err)
}

func (f *natFixture) userSessions(ip string) []*nat.Nat44UserSessionV3Details {
	s, err := f.nat.Nat44UserSessionV3Dump(f.ctx, &nat.Nat44UserSessionV3Dump{IPAddress: a4(ip)})
	return drain(f.t, func() (*nat.Nat44UserSessionV3Details, error) { return s.Recv() }, err)
}

// user is a nat44_user_details record in comparable form.
type user struct {
	ip               string
	vrf              uint32
	dynamic, statics uint32
}

func (f *natFixture) userSet() []user {
	var out []user
	for _, u := range f.users() {
		out = append(out, user{netip.AddrFrom4(u.IPAddress).String(), u.VrfID, u.Nsessions, u.Nstaticsessions})
	}
	slices.SortFunc(out, func(a, b user) int { return netip.MustParseAddr(a.ip).Compare(netip.MustParseAddr(b.ip)) })
	return out
}

// TestNAT44UserSessionDump: nat44_user_dump groups sessions by inside
// address and table (nat_ed_user_create_helper), counting static and
// dynamic ones apart; send_nat44_user_session_v3_details reports both
// ends, the remote host, the twice-NAT source of a twice-NAT session,
// the packet count and times in seconds, and is_timed_out once
// last_heard + the protocol's timeout has passed.
func TestNAT44UserSessionDump(t *testing.T) {
	n := newNATNode(t, false)
	if got := n.nf.users(); len(got) != 0 {
		t.Fatalf("users before any packet: %d, want none", len(got))
	}
	// t=0: a client's UDP flow through the static mapping; t=5: its reply.
	n.eval(pkt(eth0, 17, client, 7000, vipUDP, 53))
	n.sim.Advance(5 * time.Second)
	n.eval(pkt(n.podB1, 17, podB1IP, 5353, client, 7000))
	n.sim.Advance(3 * time.Second)
	// t=8: pod A to itself through the self-twice-NAT mapping, and pod B2
	// to the client with forwarding off (dynamic SNAT to the pool).
	hairpin := n.eval(pkt(n.podA, 6, podAIP, 40000, vipSelf, 80))
	n.nf.run([]natStep{{"forwarding off", forwarding(false), 0}})
	dyn := n.eval(pkt(n.b2, 17, podB2IP, 6000, client, 53))
	if len(dyn.Translations) != 1 {
		t.Fatalf("dynamic flow: %+v", dyn)
	}

	wantUsers := []user{{podAIP, 0, 0, 1}, {podB1IP, 0, 0, 1}, {podB2IP, 0, 1, 0}}
	if got := n.nf.userSet(); !equalSlices(got, wantUsers) {
		t.Errorf("users %v, want %v", got, wantUsers)
	}

	valid, static, twice := nat_types.NAT_IS_EXT_HOST_VALID, nat_types.NAT_IS_STATIC, nat_types.NAT_IS_TWICE_NAT
	tests := []struct {
		user string
		want nat.Nat44UserSessionV3Details
	}{
		{podB1IP, nat.Nat44UserSessionV3Details{
			OutsideIPAddress: a4(vipUDP), OutsidePort: 53, InsideIPAddress: a4(podB1IP), InsidePort: 5353,
			Protocol: 17, Flags: static | valid, LastHeard: 5, TimeSinceLastHeard: 3, TotalPkts: 2,
			ExtHostAddress: a4(client), ExtHostPort: 7000,
		}},
		{podAIP, nat.Nat44UserSessionV3Details{
			OutsideIPAddress: a4(vipSelf), OutsidePort: 80, InsideIPAddress: a4(podAIP), InsidePort: 8080,
			Protocol: 6, Flags: static | twice | valid, LastHeard: 8, TotalPkts: 1,
			ExtHostAddress: a4(podAIP), ExtHostPort: 40000,
			ExtHostNatAddress: a4(twiceIP), ExtHostNatPort: hairpin.Packet.SrcPort,
		}},
		{podB2IP, nat.Nat44UserSessionV3Details{
			OutsideIPAddress: a4(dyn.Packet.Src.String()), OutsidePort: dyn.Packet.SrcPort,
			InsideIPAddress: a4(podB2IP), InsidePort: 6000,
			Protocol: 17, Flags: valid, LastHeard: 8, TotalPkts: 1,
			ExtHostAddress: a4(client), ExtHostPort: 53,
		}},
	}
	for _, tt := range tests {
		got := n.nf.userSessions(tt.user)
		if len(got) != 1 || *got[0] != tt.want {
			t.Errorf("sessions of %s: %+v, want [%+v]", tt.user, got, tt.want)
		}
	}

	// t=307: the TCP session (last heard at 8, 240s transitory) and the
	// first UDP one (at 5, 300s) have timed out, the other UDP one (at 8)
	// not yet; nothing freed them, since no packet came.
	n.sim.Advance(299 * time.Second)
	for u, timedOut := range map[string]bool{podAIP: true, podB1IP: true, podB2IP: false} {
		got := n.nf.userSessions(u)
		if len(got) != 1 || got[0].IsTimedOut != timedOut {
			t.Errorf("sessions of %s at t=307: %+v, want one, timed out %v", u, got, timedOut)
		}
	}
	if got := n.nf.userSessions(podB2IP); len(got) == 1 && got[0].TimeSinceLastHeard != 299 {
		t.Errorf("dynamic session at t=307: %ds since last heard, want 299", got[0].TimeSinceLastHeard)
	}
}

// backendFlow finds a source port whose flow from pod A to the mapping
// at dst:80 lands on backend b.
func (n *natNode) backendFlow(dst, b string, from uint16) (uint16, Result) {
	n.t.Helper()
	for port := from; port < from+200; port++ {
		if res := n.eval(pkt(n.podA, 6, podAIP, port, dst, 80)); n.backendOf(res) == b {
			return port, res
		}
	}
	n.t.Fatalf("no flow to %s reached %s", dst, b)
	return 0, Result{}
}

// Deleting what sessions depend on frees them as VPP 25.10 does.
func TestNAT44DeletesFreeSessions(t *testing.T) {
	t.Run("load-balanced local", func(t *testing.T) {
		// nat44_ed_add_del_lb_static_mapping_local: the deleted local's
		// load-balanced sessions go; the others' stay.
		n := newNATNode(t, false)
		p1, _ := n.backendFlow(vip, podB1IP, 20000)
		p2, _ := n.backendFlow(vip, podB2IP, 21000)
		b2Sessions := len(n.nf.userSessions(podB2IP))
		n.nf.run([]natStep{
			{"add A", lbLocal(nat.Nat44LbStaticMappingAddDelLocal{IsAdd: true, ExternalAddr: a4(vip), ExternalPort: 80, Protocol: 6,
				Local: nat.Nat44LbAddrPort{Addr: a4(podAIP), Port: 8080, Probability: 50}}), 0},
			{"del B1", lbLocal(nat.Nat44LbStaticMappingAddDelLocal{ExternalAddr: a4(vip), ExternalPort: 80, Protocol: 6,
				Local: nat.Nat44LbAddrPort{Addr: a4(podB1IP), Port: 8080}}), 0},
		})
		if got := n.nf.userSessions(podB1IP); len(got) != 0 {
			t.Errorf("B1 sessions after its local went: %d, want 0", len(got))
		}
		if got := n.nf.userSessions(podB2IP); len(got) != b2Sessions {
			t.Errorf("B2 sessions: %d, want its %d", len(got), b2Sessions)
		}
		if res := n.eval(pkt(n.podA, 6, podAIP, p2, vip, 80)); n.backendOf(res) != podB2IP || len(res.Translations) == 0 || res.Translations[0].Node != "nat44-ed-out2in" {
			t.Errorf("B2's flow after the change: to %q via %+v, want B2 by its session", n.backendOf(res), res.Translations)
		}
		if res := n.eval(pkt(n.podA, 6, podAIP, p1, vip, 80)); res.Egress == n.podB1 || res.Verdict != Forwarded {
			t.Errorf("B1's flow after B1 went: %s to %d, want a new backend", res.Verdict, res.Egress)
		}
	})
	t.Run("load-balanced mapping", func(t *testing.T) {
		// nat44_ed_del_lb_static_mapping: the locals' sessions go, and
		// nat_affinity_flush_service drops the affinity records.
		n := newNATNode(t, false)
		n.eval(pkt(eth0, 6, client, 30000, vipAff, 80))
		n.nf.run([]natStep{{"del", lbMap(nat.Nat44AddDelLbStaticMapping{ExternalAddr: a4(vipAff), ExternalPort: 80, Protocol: 6}), 0}})
		if got := n.nf.users(); len(got) != 0 {
			t.Errorf("users after the mapping went: %+v, want none", got)
		}
		n.sim.mu.Lock()
		left := len(n.sim.st.nat.db.sessions.affinity)
		n.sim.mu.Unlock()
		if left != 0 {
			t.Errorf("%d affinity records left, want 0", left)
		}
	})
	t.Run("static mapping", func(t *testing.T) {
		// nat_ed_static_mapping_del_sessions breaks out of its loop after
		// the first session of a mapping with ports: of two clients'
		// sessions one is freed.
		n := newNATNode(t, false)
		n.eval(pkt(eth0, 17, client, 7000, vipUDP, 53))
		n.eval(pkt(eth0, 17, "192.168.10.20", 7000, vipUDP, 53))
		n.nf.run([]natStep{{"del", staticMap(nat.Nat44AddDelStaticMappingV2{LocalIPAddress: a4(podB1IP), LocalPort: 5353,
			ExternalIPAddress: a4(vipUDP), ExternalPort: 53, Protocol: 17}), 0}})
		if got := n.nf.userSessions(podB1IP); len(got) != 1 {
			t.Errorf("sessions after the mapping went: %d, want 1 of 2", len(got))
		}
	})
	t.Run("pool address", func(t *testing.T) {
		// nat44_ed_del_address frees the dynamic sessions translated to the
		// address; static sessions whose outside is the address stay.
		n := newNATNode(t, false)
		n.backendFlow(vip, podB1IP, 20000) // static sessions, outside vip:80
		statics := len(n.nf.users())
		n.nf.run([]natStep{{"forwarding off", forwarding(false), 0}})
		dyn := n.eval(pkt(n.b2, 17, podB2IP, 6000, client, 53))
		if len(dyn.Translations) != 1 {
			t.Fatalf("dynamic flow: %+v", dyn)
		}
		pooled := dyn.Packet.Src.String()
		n.nf.run([]natStep{{"del address", addrRange(pooled, pooled, false, 0), 0}})
		for _, s := range n.nf.userSessions(podB2IP) {
			if s.Flags&nat_types.NAT_IS_STATIC == 0 {
				t.Errorf("dynamic session on %s survived its address leaving the pool: %+v", pooled, s)
			}
		}
		if got := len(n.nf.users()); got != statics {
			t.Errorf("users after the address went: %d, want the %d with static sessions", got, statics)
		}
	})
}

// TestNAT44InterfaceDeletion: nat44_ed_sw_interface_add_del removes a
// deleted interface's roles and output feature, so the next interface
// that takes its index starts without NAT.
func TestNAT44InterfaceDeletion(t *testing.T) {
	n := newNATNode(t, false)
	out := n.loopback()
	n.nf.run([]natStep{{"output feature", outputIf(out, true), 0}})
	n.deleteLoopback(n.b2)
	n.deleteLoopback(out)
	for _, i := range n.nf.interfaces() {
		if uint32(i.SwIfIndex) == n.b2 {
			t.Errorf("deleted interface %d still has roles %v", n.b2, i.Flags)
		}
	}
	if idx, _, _ := n.nf.outputIfs(0); len(idx) != 0 {
		t.Errorf("output feature interfaces after deletion: %v, want none", idx)
	}
	again, again2 := n.loopback(), n.loopback()
	if !slices.Contains([]uint32{again, again2}, n.b2) {
		t.Fatalf("new loopbacks %d, %d did not reuse index %d", again, again2, n.b2)
	}
	for _, i := range n.nf.interfaces() {
		if uint32(i.SwIfIndex) == n.b2 {
			t.Errorf("new interface at reused index %d has roles %v", n.b2, i.Flags)
		}
	}
	// Deleting an interface while the plugin is disabled has nothing to do.
	n.nf.run([]natStep{{"disable", disable, 0}})
	n.deleteLoopback(again)
}
