package nat44ed_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// roles reads nat44_interface_dump as sw_if_index -> "in", "out" or "in+out".
func roles(t *testing.T, env *simtest.Env) map[uint32]string {
	t.Helper()
	s, err := nat.NewServiceClient(env.Client).Nat44InterfaceDump(context.Background(), &nat.Nat44InterfaceDump{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := vppapi.Collect(s.Recv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]string{}
	for _, i := range list {
		var r []string
		if i.Flags&nat_types.NAT_IS_INSIDE != 0 {
			r = append(r, "in")
		}
		if i.Flags&nat_types.NAT_IS_OUTSIDE != 0 {
			r = append(r, "out")
		}
		out[uint32(i.SwIfIndex)] = strings.Join(r, "+")
	}
	return out
}

// pools reads nat44_address_dump as "address" or "address twice-nat".
func pools(t *testing.T, env *simtest.Env) []string {
	t.Helper()
	s, err := nat.NewServiceClient(env.Client).Nat44AddressDump(context.Background(), &nat.Nat44AddressDump{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := vppapi.Collect(s.Recv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range list {
		e := netip.AddrFrom4(a.IPAddress).String()
		if a.Flags&nat_types.NAT_IS_TWICE_NAT != 0 {
			e += " twice-nat"
		}
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

func runningConfig(t *testing.T, env *simtest.Env) *nat.Nat44ShowRunningConfigReply {
	t.Helper()
	rc, err := nat.NewServiceClient(env.Client).Nat44ShowRunningConfig(context.Background(), &nat.Nat44ShowRunningConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestConfigureEnables: on a VPP whose plugin is disabled, Configure
// enables it and forwarding; a second Configure writes nothing.
func TestConfigureEnables(t *testing.T) {
	env, d := start(t)
	ctx := context.Background()
	if rc := runningConfig(t, env); rc.Sessions != 0 {
		t.Fatalf("fresh VPP reports sessions %d: plugin already enabled", rc.Sessions)
	}
	// enable, forwarding, 7 roles, 1 twice-NAT address.
	if n := writes(env, func() {
		if err := d.Configure(ctx, nodeBase); err != nil {
			t.Fatal(err)
		}
	}); n != 10 {
		t.Errorf("first Configure: %d writes, want 10 (%v)", n, env.Sim.CallCounts())
	}
	if rc := runningConfig(t, env); rc.Sessions == 0 || !rc.ForwardingEnabled {
		t.Errorf("after Configure: sessions %d forwarding %v, want enabled with forwarding", rc.Sessions, rc.ForwardingEnabled)
	}
	want := map[uint32]string{uplink: "out", podA: "in+out", podB: "in+out", podC: "in+out"}
	if got := roles(t, env); !equalMaps(got, want) {
		t.Errorf("roles %v, want %v", got, want)
	}
	if n := writes(env, func() {
		if err := d.Configure(ctx, nodeBase); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("second Configure: %d writes, want 0 (%v)", n, env.Sim.CallCounts())
	}
}

func equalMaps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestConfigureDiff: roles and the twice-NAT pool follow the base, adds
// before deletes; the operator's interface is left alone while it is
// listed as foreign, and its plain pool address always.
func TestConfigureDiff(t *testing.T) {
	env, d := start(t)
	ctx := context.Background()
	rpc := nat.NewServiceClient(env.Client)
	// The operator enabled the plugin (forwarding stays off), set inside
	// on op0 and put an address in the plain pool.
	if _, err := rpc.Nat44EdPluginEnableDisable(ctx, &nat.Nat44EdPluginEnableDisable{Enable: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.Nat44InterfaceAddDelFeature(ctx, &nat.Nat44InterfaceAddDelFeature{IsAdd: true, Flags: nat_types.NAT_IS_INSIDE,
		SwIfIndex: interface_types.InterfaceIndex(opIf)}); err != nil {
		t.Fatal(err)
	}
	op := ip_types.IP4Address(netip.MustParseAddr("192.0.2.1").As4())
	if _, err := rpc.Nat44AddDelAddressRange(ctx, &nat.Nat44AddDelAddressRange{FirstIPAddress: op, LastIPAddress: op, VrfID: ^uint32(0), IsAdd: true}); err != nil {
		t.Fatal(err)
	}
	a1, a2 := netip.MustParseAddr("10.1.255.1"), netip.MustParseAddr("10.1.255.2")
	steps := []struct {
		name   string
		base   nat44ed.Base
		roles  map[uint32]string
		pool   []string
		writes int
	}{
		{
			name: "first",
			base: nat44ed.Base{Interfaces: []nat44ed.Interface{{SwIfIndex: uplink, Outside: true},
				{SwIfIndex: podA, Inside: true, Outside: true}, {SwIfIndex: podB, Inside: true, Outside: true}},
				TwiceNATAddresses: []netip.Addr{a1}, ForeignInterfaces: []uint32{opIf}},
			roles: map[uint32]string{uplink: "out", podA: "in+out", podB: "in+out", opIf: "in"},
			pool:  []string{"10.1.255.1 twice-nat", "192.0.2.1"},
			// forwarding, 5 roles, 1 address: the plugin was enabled.
			writes: 7,
		},
		{
			name: "pod B gone, pod C inside only, pod A outside only, pool moved",
			base: nat44ed.Base{Interfaces: []nat44ed.Interface{{SwIfIndex: uplink, Outside: true},
				{SwIfIndex: podA, Outside: true}, {SwIfIndex: podC, Inside: true}},
				TwiceNATAddresses: []netip.Addr{a2}, ForeignInterfaces: []uint32{opIf}},
			roles: map[uint32]string{uplink: "out", podA: "out", podC: "in", opIf: "in"},
			pool:  []string{"10.1.255.2 twice-nat", "192.0.2.1"},
			// add C in; del A in, B in, B out; add .2, del .1.
			writes: 6,
		},
		{
			name:  "op0 no longer foreign: its role is taken as kube-vpp's",
			base:  nat44ed.Base{Interfaces: []nat44ed.Interface{{SwIfIndex: uplink, Outside: true}}},
			roles: map[uint32]string{uplink: "out"},
			pool:  []string{"192.0.2.1"},
			// del A out, C in, op0 in; del .2.
			writes: 4,
		},
	}
	for _, st := range steps {
		for run, want := range []int{st.writes, 0} {
			n := writes(env, func() {
				if err := d.Configure(ctx, st.base); err != nil {
					t.Errorf("%s: %v", st.name, err)
				}
			})
			if n != want {
				t.Errorf("%s (run %d): %d writes, want %d", st.name, run+1, n, want)
			}
		}
		if got := roles(t, env); !equalMaps(got, st.roles) {
			t.Errorf("%s: roles %v, want %v", st.name, got, st.roles)
		}
		if got := pools(t, env); !slices.Equal(got, st.pool) {
			t.Errorf("%s: pool %v, want %v", st.name, got, st.pool)
		}
	}
}

func TestConfigureRefusesBadBase(t *testing.T) {
	tests := []struct {
		name string
		base nat44ed.Base
		want string
	}{
		{"interface twice", nat44ed.Base{Interfaces: []nat44ed.Interface{{SwIfIndex: podA, Inside: true}, {SwIfIndex: podA, Outside: true}}},
			"sw_if_index 2 listed twice"},
		{"interface also foreign", nat44ed.Base{Interfaces: []nat44ed.Interface{{SwIfIndex: opIf, Inside: true}}, ForeignInterfaces: []uint32{opIf}},
			"sw_if_index 5 is also a foreign interface"},
		{"IPv6 twice-NAT address", nat44ed.Base{TwiceNATAddresses: []netip.Addr{netip.MustParseAddr("fd00::1")}},
			"twice-NAT address fd00::1 is not a usable IPv4 address"},
		{"twice-NAT address twice", nat44ed.Base{TwiceNATAddresses: []netip.Addr{netip.MustParseAddr(twiceIP), netip.MustParseAddr(twiceIP)}},
			"twice-NAT address 10.1.255.1 listed twice"},
	}
	env, d := start(t)
	for _, tt := range tests {
		n := writes(env, func() {
			err := d.Configure(context.Background(), tt.base)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
			}
		})
		if n != 0 {
			t.Errorf("%s: %d writes, want none", tt.name, n)
		}
	}
}

// An interface deleted from VPP loses its roles there
// (nat44_ed_sw_interface_add_del) and VPP hands its index to the next
// one: Configure reads the roles each time, so it neither fails removing
// the old roles nor takes the new interface for configured.
func TestConfigureAfterInterfaceDeletion(t *testing.T) {
	env, d := start(t)
	ctx := context.Background()
	ifs := vppif.NewServiceClient(env.Client)
	newLoopback := func() uint32 {
		rep, err := ifs.CreateLoopback(ctx, &vppif.CreateLoopback{})
		if err != nil {
			t.Fatal(err)
		}
		return uint32(rep.SwIfIndex)
	}
	pod := newLoopback()
	base := func(idx ...uint32) nat44ed.Base {
		b := nat44ed.Base{Interfaces: []nat44ed.Interface{{SwIfIndex: uplink, Outside: true}}}
		for _, i := range idx {
			b.Interfaces = append(b.Interfaces, nat44ed.Interface{SwIfIndex: i, Inside: true, Outside: true})
		}
		return b
	}
	if err := d.Configure(ctx, base(pod)); err != nil {
		t.Fatal(err)
	}
	if _, err := ifs.DeleteLoopback(ctx, &vppif.DeleteLoopback{SwIfIndex: interface_types.InterfaceIndex(pod)}); err != nil {
		t.Fatal(err)
	}
	if n := writes(env, func() {
		if err := d.Configure(ctx, base()); err != nil {
			t.Errorf("Configure after the pod interface went: %v", err)
		}
	}); n != 0 {
		t.Errorf("Configure after the pod interface went: %d writes, want 0", n)
	}
	next := newLoopback()
	if next != pod {
		t.Fatalf("new loopback got index %d, want the freed %d", next, pod)
	}
	if n := writes(env, func() {
		if err := d.Configure(ctx, base(next)); err != nil {
			t.Error(err)
		}
	}); n != 2 {
		t.Errorf("Configure of the new interface at the reused index: %d writes, want 2", n)
	}
	if got := roles(t, env); !equalMaps(got, map[uint32]string{uplink: "out", next: "in+out"}) {
		t.Errorf("roles %v", got)
	}
	// An index VPP does not have: VALIDATE_SW_IF_INDEX refuses it.
	err := d.Configure(ctx, base(next, 40))
	if err == nil || !strings.Contains(err.Error(), "sw_if_index 40") {
		t.Errorf("role on a missing interface: %v, want an error naming sw_if_index 40", err)
	}
}
