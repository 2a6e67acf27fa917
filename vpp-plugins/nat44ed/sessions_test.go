package nat44ed_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// backendOf names the backend behind the pod interface a packet left by.
var backendOf = map[uint32]string{podA: backendA, podB: backendB, podC: backendC}

func eval(t *testing.T, env *simtest.Env, ingress uint32, proto uint8, src, dst string) sim.Result {
	t.Helper()
	s, d := ap(src), ap(dst)
	res, err := env.Sim.Evaluate(sim.Packet{Ingress: ingress, Protocol: proto, Src: s.Addr(), SrcPort: s.Port(), Dst: d.Addr(), DstPort: d.Port()})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestUpdateKeepsSessionsOfUnchangedBackends: replacing one backend of a
// load-balanced mapping changes only that local, so a connection to a
// backend that stays keeps its session (the packet takes the session's
// fast path, not a new pick), while the removed backend's sessions go
// with it (nat44_ed_add_del_lb_static_mapping_local).
func TestUpdateKeepsSessionsOfUnchangedBackends(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	const vip = "10.96.0.1:80"
	if err := d.Sync(ctx, map[string][]nat44ed.Mapping{"default/web": {mapping("default/web", vip, backendB, backendC)}}); err != nil {
		t.Fatal(err)
	}
	flows := map[string]string{} // backend -> client address:port of a flow to it
	for port := 30000; len(flows) < 2 && port < 30200; port++ {
		src := netip.AddrPortFrom(netip.MustParseAddr(clientIP), uint16(port)).String()
		res := eval(t, env, uplink, 6, src, vip)
		if b := backendOf[res.Egress]; b != "" && flows[b] == "" {
			flows[b] = src
		}
	}
	if len(flows) != 2 {
		t.Fatalf("200 flows reached %v, want both backends", flows)
	}
	if n := writes(env, func() {
		if err := d.Update(ctx, "default/web", []nat44ed.Mapping{mapping("default/web", vip, backendB, backendA)}); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Errorf("replacing backend C by A: %d writes, want 2 (add A, delete C)", n)
	}
	kept := eval(t, env, uplink, 6, flows[backendB], vip)
	if backendOf[kept.Egress] != backendB || len(kept.Translations) == 0 || kept.Translations[0].Node != "nat44-ed-out2in" {
		t.Errorf("B's connection after the change: to %q by %+v, want B by its session", backendOf[kept.Egress], kept.Translations)
	}
	moved := eval(t, env, uplink, 6, flows[backendC], vip)
	if b := backendOf[moved.Egress]; b != backendA && b != backendB {
		t.Errorf("C's connection after C went: to %q, want a new pick among A and B", b)
	}
}

// TestSessions lists the sessions evaluated packets made: a client's UDP
// flow through a plain mapping, and a pod reaching itself through a
// self-twice-NAT one, whose source VPP rewrote to the twice-NAT pool.
func TestSessions(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	dns := mapping("kube-system/dns", "10.96.0.10:53", backendC+":5353")
	dns.Protocol = nat44ed.UDP
	self := mapping("default/self", "10.96.0.5:80", backendA)
	self.SelfTwiceNAT = true
	if err := d.Sync(ctx, map[string][]nat44ed.Mapping{"kube-system/dns": {dns}, "default/self": {self}}); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Sessions(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Sessions before any packet: %+v, %v; want none", got, err)
	}
	eval(t, env, uplink, 17, clientIP+":7000", "10.96.0.10:53")
	hairpin := eval(t, env, podA, 6, backendA+":40000", "10.96.0.5:80")
	if hairpin.Packet.Src != netip.MustParseAddr(twiceIP) {
		t.Fatalf("hairpin packet left as %+v, want source %s", hairpin.Packet, twiceIP)
	}
	got, err := d.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []nat44ed.Session{
		{Inside: ap(backendA + ":8080"), Outside: ap("10.96.0.5:80"), External: ap(backendA + ":40000"),
			ExternalNAT: netip.AddrPortFrom(netip.MustParseAddr(twiceIP), hairpin.Packet.SrcPort),
			Protocol:    nat44ed.TCP, Static: true, TwiceNAT: true, Packets: 1},
		{Inside: ap(backendC + ":5353"), Outside: ap("10.96.0.10:53"), External: ap(clientIP + ":7000"),
			Protocol: nat44ed.UDP, Static: true, Packets: 1},
	}
	slices.SortFunc(got, func(a, b nat44ed.Session) int { return a.Inside.Compare(b.Inside) })
	if !slices.Equal(got, want) {
		t.Errorf("Sessions =\n  %+v\nwant\n  %+v", got, want)
	}
}
