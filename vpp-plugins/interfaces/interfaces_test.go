package interfaces_test

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"testing"

	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	vppip "go.fd.io/govpp/binapi/ip"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vppapi/addr"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

var (
	nodeTag  = tag.New(interfaces.KindLoopback, "node")
	otherTag = tag.New(interfaces.KindLoopback, "hairpin")
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

type iface struct {
	name  string
	tag   string
	up    bool
	addrs []string
}

// observe reads VPP's interfaces back through the API, as an operator would.
func observe(t *testing.T, env *simtest.Env) map[string]iface {
	t.Helper()
	ctx := context.Background()
	rpc := vppif.NewServiceClient(env.Client)
	iprpc := vppip.NewServiceClient(env.Client)
	stream, err := rpc.SwInterfaceDump(ctx, &vppif.SwInterfaceDump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]iface{}
	for {
		d, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f := iface{name: d.InterfaceName, tag: d.Tag, up: d.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0}
		for _, v6 := range []bool{false, true} {
			as, err := iprpc.IPAddressDump(ctx, &vppip.IPAddressDump{SwIfIndex: d.SwIfIndex, IsIPv6: v6})
			if err != nil {
				t.Fatal(err)
			}
			for {
				a, err := as.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				f.addrs = append(f.addrs, addr.ToInterfaceAddress(a.Prefix).String())
			}
		}
		slices.Sort(f.addrs)
		out[d.InterfaceName] = f
	}
	return out
}

func byTag(m map[string]iface, tg string) (iface, bool) {
	for _, f := range m {
		if f.tag == tg {
			return f, true
		}
	}
	return iface{}, false
}

func TestSyncCreatesThenWritesNothing(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	d := interfaces.New(env.Client, zaptest.NewLogger(t))
	want := interfaces.Desired{Loopbacks: []interfaces.Loopback{
		{Tag: nodeTag, Up: true, Addresses: pfx("10.244.0.1/32", "fd00:10:244::1/128")},
	}}
	idx, err := d.Sync(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := byTag(observe(t, env), nodeTag)
	if !ok {
		t.Fatal("no interface carries the node tag after Sync")
	}
	if !f.up || !slices.Equal(f.addrs, []string{"10.244.0.1/32", "fd00:10:244::1/128"}) {
		t.Errorf("loopback = %+v, want up with both addresses", f)
	}
	if _, ok := idx[nodeTag]; !ok {
		t.Errorf("Sync returned no sw_if_index for %s: %v", nodeTag, idx)
	}

	before := env.Writes()
	idx2, err := d.Sync(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if n := env.Writes() - before; n != 0 {
		t.Errorf("second Sync of the same state issued %d write calls, want 0 (%v)", n, env.Sim.CallCounts())
	}
	if idx2[nodeTag] != idx[nodeTag] {
		t.Errorf("sw_if_index changed between syncs: %d -> %d", idx[nodeTag], idx2[nodeTag])
	}
}

func TestSyncChangesOnlyWhatDiffers(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	d := interfaces.New(env.Client, zaptest.NewLogger(t))
	ctx := context.Background()
	if _, err := d.Sync(ctx, interfaces.Desired{Loopbacks: []interfaces.Loopback{
		{Tag: nodeTag, Up: true, Addresses: pfx("10.244.0.1/32", "10.99.0.1/32")},
	}}); err != nil {
		t.Fatal(err)
	}
	before := env.Sim.CallCounts()
	if _, err := d.Sync(ctx, interfaces.Desired{Loopbacks: []interfaces.Loopback{
		{Tag: nodeTag, Up: true, Addresses: pfx("10.244.0.1/32", "10.98.0.1/32")},
	}}); err != nil {
		t.Fatal(err)
	}
	after := env.Sim.CallCounts()
	if n := after["sw_interface_add_del_address"] - before["sw_interface_add_del_address"]; n != 2 {
		t.Errorf("address change took %d add_del_address calls, want 2 (one del, one add)", n)
	}
	for _, m := range []string{"create_loopback", "delete_loopback", "sw_interface_set_flags"} {
		if after[m] != before[m] {
			t.Errorf("%s called %d times for an address change", m, after[m]-before[m])
		}
	}
	f, _ := byTag(observe(t, env), nodeTag)
	if !slices.Equal(f.addrs, []string{"10.244.0.1/32", "10.98.0.1/32"}) {
		t.Errorf("addresses = %v", f.addrs)
	}
}

// Interfaces without our tag — the operator's NIC, another agent's loopback —
// must survive any Sync; our stale ones must go.
func TestSyncLeavesForeignInterfacesAlone(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: []sim.InterfaceSpec{
		{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true},
	}})
	ctx := context.Background()
	rpc := vppif.NewServiceClient(env.Client)
	foreign, err := rpc.CreateLoopback(ctx, &vppif.CreateLoopback{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.SwInterfaceTagAddDel(ctx, &vppif.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: foreign.SwIfIndex, Tag: "calico-vpp:loop"}); err != nil {
		t.Fatal(err)
	}
	// VPP names loopbacks loopN in creation order: this one is loop1.
	if _, err := rpc.CreateLoopback(ctx, &vppif.CreateLoopback{}); err != nil {
		t.Fatal(err)
	}

	d := interfaces.New(env.Client, zaptest.NewLogger(t))
	if _, err := d.Sync(ctx, interfaces.Desired{Loopbacks: []interfaces.Loopback{{Tag: nodeTag}, {Tag: otherTag}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sync(ctx, interfaces.Desired{Loopbacks: []interfaces.Loopback{{Tag: nodeTag}}}); err != nil {
		t.Fatal(err)
	}
	got := observe(t, env)
	if f, ok := got["GigabitEthernet0/8/0"]; !ok || !f.up || !slices.Equal(f.addrs, []string{"192.168.10.11/24"}) {
		t.Errorf("uplink changed: %+v (present %v)", f, ok)
	}
	if _, ok := byTag(got, "calico-vpp:loop"); !ok {
		t.Error("a loopback tagged by another owner was deleted")
	}
	untaggedLeft := false
	for _, f := range got {
		if f.tag == "" && f.name == "loop1" {
			untaggedLeft = true
		}
	}
	if !untaggedLeft {
		t.Errorf("the untagged loopback loop1 was deleted: %v", got)
	}
	if _, ok := byTag(got, otherTag); ok {
		t.Error("our stale loopback survived")
	}
	if _, ok := byTag(got, nodeTag); !ok {
		t.Error("our wanted loopback is gone")
	}
}

func TestSyncRestoresAfterVPPRestart(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	d := interfaces.New(env.Client, zaptest.NewLogger(t))
	want := interfaces.Desired{Loopbacks: []interfaces.Loopback{{Tag: nodeTag, Up: true, Addresses: pfx("10.244.0.1/32")}}}
	ctx := context.Background()
	if _, err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	env.Restart()
	if _, ok := byTag(observe(t, env), nodeTag); ok {
		t.Fatal("a restarted simulator still has the old state")
	}
	if _, err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	f, ok := byTag(observe(t, env), nodeTag)
	if !ok || !f.up || !slices.Equal(f.addrs, []string{"10.244.0.1/32"}) {
		t.Errorf("after restart and Sync: %+v (present %v)", f, ok)
	}
}
