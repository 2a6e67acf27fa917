package nat44ed_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// SCTP (a protocol NAT44-ED does not know) from a pod behind an inside
// interface: VPP's in2out translates it even with forwarding on
// (nat44_ed_in2out_slowpath_unknown_proto) and, with no static mapping for
// the source and no pool address, drops it. An identity mapping of the
// pod's address for SCTP lets it through untranslated; Configure keeps
// exactly the wanted ones, Attach only adds.
func TestIdentitiesLetSCTPThrough(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	sctp := func() sim.Result {
		t.Helper()
		res, err := env.Sim.Evaluate(sim.Packet{Ingress: podA, Protocol: 132, Src: netip.MustParseAddr(backendA), SrcPort: 5000,
			Dst: netip.MustParseAddr(backendB), DstPort: 9000})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := sctp(); res.Verdict != sim.Dropped {
		t.Fatalf("SCTP without an identity mapping: %s (%s), want dropped as VPP drops it", res.Verdict, res.Reason)
	}

	a := nat44ed.Identity{Addr: netip.MustParseAddr(backendA), Protocol: 132}
	b := nat44ed.Identity{Addr: netip.MustParseAddr(backendB), Protocol: 132}
	with := func(ids ...nat44ed.Identity) nat44ed.Base {
		base := nodeBase
		base.Identities = ids
		return base
	}
	steps := []struct {
		name   string
		do     func() error
		writes int
	}{
		{"attach adds pod A's", func() error { return d.Attach(ctx, nil, []nat44ed.Identity{a}) }, 1},
		{"attach again", func() error { return d.Attach(ctx, nil, []nat44ed.Identity{a}) }, 0},
		{"configure with A and B", func() error { return d.Configure(ctx, with(a, b)) }, 1},
		{"configure again", func() error { return d.Configure(ctx, with(a, b)) }, 0},
		{"configure with B only removes A's", func() error { return d.Configure(ctx, with(b)) }, 1},
	}
	for _, s := range steps {
		before := env.Writes()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if w := env.Writes() - before; w != s.writes {
			t.Errorf("%s: %d writes, want %d", s.name, w, s.writes)
		}
		if s.name == "configure again" {
			res := sctp()
			if res.Verdict != sim.Forwarded || len(res.Translations) != 0 {
				t.Errorf("SCTP with an identity mapping: %s %v (%s), want forwarded untranslated", res.Verdict, res.Translations, res.Reason)
			}
		}
	}
}
