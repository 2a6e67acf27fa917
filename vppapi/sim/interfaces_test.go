package sim

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	fibapi "go.fd.io/govpp/binapi/fib"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/core"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// fixture is a simulator with one NIC, eth0 (index 1), reached through
// govpp's socket client and generated RPC clients.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	sim  *Sim
	conn *core.Connection
	ifs  interfaces.RPCService
	ip   ip.RPCService
	fib  fibapi.RPCService
}

const eth0 = 1

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, conn, _ := startSim(t, Options{Interfaces: []InterfaceSpec{{Name: "eth0"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, sim: s, conn: conn,
		ifs: interfaces.NewServiceClient(conn), ip: ip.NewServiceClient(conn), fib: fibapi.NewServiceClient(conn)}
}

// retval turns an RPC error back into VPP's retval; transport errors fail the test.
func retval(t *testing.T, err error) int32 {
	t.Helper()
	if err == nil {
		return 0
	}
	var e api.VPPApiError
	if !errors.As(err, &e) {
		t.Fatalf("call failed outside VPP: %v", err)
	}
	return int32(e)
}

// recvAll drains a dump stream.
func recvAll[T any](t *testing.T, recv func() (T, error)) []T {
	t.Helper()
	var out []T
	for {
		d, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		out = append(out, d)
	}
}

func (f *fixture) dumpIfaces(req *interfaces.SwInterfaceDump) []*interfaces.SwInterfaceDetails {
	f.t.Helper()
	st, err := f.ifs.SwInterfaceDump(f.ctx, req)
	if err != nil {
		f.t.Fatal(err)
	}
	return recvAll(f.t, st.Recv)
}

func (f *fixture) iface(idx uint32) *interfaces.SwInterfaceDetails {
	f.t.Helper()
	d := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(idx)})
	if len(d) != 1 {
		f.t.Fatalf("dump of sw_if_index %d gave %d details", idx, len(d))
	}
	return d[0]
}

// loopback creates a loopback and sets it admin up.
func (f *fixture) loopback() uint32 {
	f.t.Helper()
	rep, err := f.ifs.CreateLoopback(f.ctx, &interfaces.CreateLoopback{})
	if err != nil {
		f.t.Fatalf("create_loopback: %v", err)
	}
	f.setUp(uint32(rep.SwIfIndex), true)
	return uint32(rep.SwIfIndex)
}

func (f *fixture) deleteLoopback(idx uint32) {
	f.t.Helper()
	if _, err := f.ifs.DeleteLoopback(f.ctx, &interfaces.DeleteLoopback{SwIfIndex: interface_types.InterfaceIndex(idx)}); err != nil {
		f.t.Fatalf("delete_loopback %d: %v", idx, err)
	}
}

func (f *fixture) setUp(idx uint32, up bool) {
	f.t.Helper()
	var flags interface_types.IfStatusFlags
	if up {
		flags = interface_types.IF_STATUS_API_FLAG_ADMIN_UP
	}
	if _, err := f.ifs.SwInterfaceSetFlags(f.ctx, &interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(idx), Flags: flags}); err != nil {
		f.t.Fatalf("set_flags on %d: %v", idx, err)
	}
}

// address adds or deletes an interface address and returns VPP's retval.
func (f *fixture) address(idx uint32, cidr string, add bool) int32 {
	f.t.Helper()
	_, err := f.ifs.SwInterfaceAddDelAddress(f.ctx, &interfaces.SwInterfaceAddDelAddress{
		SwIfIndex: interface_types.InterfaceIndex(idx), IsAdd: add, Prefix: addr.FromInterfaceAddress(netip.MustParsePrefix(cidr)),
	})
	return retval(f.t, err)
}

func (f *fixture) addresses(idx uint32, v6 bool) []string {
	f.t.Helper()
	st, err := f.ip.IPAddressDump(f.ctx, &ip.IPAddressDump{SwIfIndex: interface_types.InterfaceIndex(idx), IsIPv6: v6})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, d := range recvAll(f.t, st.Recv) {
		out = append(out, addr.ToInterfaceAddress(d.Prefix).String())
	}
	return out
}

func TestStartupInterfacesAndLocal0(t *testing.T) {
	_, conn, _ := startSim(t, Options{Interfaces: []InterfaceSpec{
		{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.5/24", "2001:db8::5/64"}, Up: true},
		{Name: "eth1"},
	}})
	f := &fixture{t: t, ctx: context.Background(), conn: conn, ifs: interfaces.NewServiceClient(conn), ip: ip.NewServiceClient(conn)}
	all := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	type want struct {
		name, dev string
		flags     interface_types.IfStatusFlags
		mtu       uint32
	}
	up := interface_types.IF_STATUS_API_FLAG_ADMIN_UP | interface_types.IF_STATUS_API_FLAG_LINK_UP
	wants := []want{
		{"local0", "local", 0, 0}, // always index 0 and down, as in VPP
		{"GigabitEthernet0/8/0", "dpdk", up, 9000},
		{"eth1", "dpdk", 0, 9000},
	}
	if len(all) != len(wants) {
		t.Fatalf("dump has %d interfaces, want %d", len(all), len(wants))
	}
	for i, w := range wants {
		d := all[i]
		if uint32(d.SwIfIndex) != uint32(i) || d.InterfaceName != w.name || d.InterfaceDevType != w.dev ||
			d.Flags != w.flags || d.Mtu[0] != w.mtu || d.Tag != "" || d.Type != interface_types.IF_API_TYPE_HARDWARE {
			t.Errorf("interface %d = %+v, want %+v untagged", i, d, w)
		}
	}
	if got := f.addresses(1, false); len(got) != 1 || got[0] != "192.168.10.5/24" {
		t.Errorf("IPv4 addresses of the start-up NIC = %v", got)
	}
	if got := f.addresses(1, true); len(got) != 1 || got[0] != "2001:db8::5/64" {
		t.Errorf("IPv6 addresses of the start-up NIC = %v", got)
	}
}

func TestStartupInterfaceErrors(t *testing.T) {
	for name, spec := range map[string][]InterfaceSpec{
		"bad CIDR":       {{Name: "eth0", Addresses: []string{"10.0.0.1"}}},
		"empty name":     {{Name: ""}},
		"duplicate name": {{Name: "eth0"}, {Name: "eth0"}},
		"overlap":        {{Name: "eth0", Addresses: []string{"10.0.0.1/24"}}, {Name: "eth1", Addresses: []string{"10.0.0.2/24"}}},
	} {
		if _, err := New(Options{Interfaces: spec}); err == nil {
			t.Errorf("%s: start-up interfaces %+v accepted", name, spec)
		}
	}
}

func TestSwInterfaceDumpSelection(t *testing.T) {
	f := newFixture(t)
	f.loopback() // loop0, index 2
	f.loopback() // loop1, index 3
	names := func(ds []*interfaces.SwInterfaceDetails) string {
		var n []string
		for _, d := range ds {
			n = append(n, d.InterfaceName)
		}
		return strings.Join(n, ",")
	}
	// vl_api_sw_interface_dump_t_handler: ~0 and 0 dump everything, another
	// index dumps that interface or nothing; a valid name filter wins over
	// the index and matches a case-insensitive substring.
	for _, tc := range []struct {
		name string
		req  interfaces.SwInterfaceDump
		want string
	}{
		{"all", interfaces.SwInterfaceDump{SwIfIndex: ^interface_types.InterfaceIndex(0)}, "local0,eth0,loop0,loop1"},
		{"index 0 means all", interfaces.SwInterfaceDump{SwIfIndex: 0}, "local0,eth0,loop0,loop1"},
		{"one", interfaces.SwInterfaceDump{SwIfIndex: 3}, "loop1"},
		{"missing index", interfaces.SwInterfaceDump{SwIfIndex: 42}, ""},
		{"name filter", interfaces.SwInterfaceDump{SwIfIndex: 1, NameFilterValid: true, NameFilter: "LOOP"}, "loop0,loop1"},
		{"empty filter", interfaces.SwInterfaceDump{NameFilterValid: true}, "local0,eth0,loop0,loop1"},
		{"filter ignored when not valid", interfaces.SwInterfaceDump{SwIfIndex: 1, NameFilter: "loop"}, "eth0"},
	} {
		if got := names(f.dumpIfaces(&tc.req)); got != tc.want {
			t.Errorf("%s: dumped %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestInterfaceRetvals(t *testing.T) {
	idx := func(i uint32) interface_types.InterfaceIndex { return interface_types.InterfaceIndex(i) }
	for _, tc := range []struct {
		name string
		run  func(f *fixture) int32
		want api.VPPApiError // 0 for success
	}{
		// VALIDATE_SW_IF_INDEX in the interface handlers.
		{"set_flags on missing interface", func(f *fixture) int32 {
			_, err := f.ifs.SwInterfaceSetFlags(f.ctx, &interfaces.SwInterfaceSetFlags{SwIfIndex: 9})
			return retval(f.t, err)
		}, api.INVALID_SW_IF_INDEX},
		// vnet_delete_loopback_interface: free index, or not a loopback.
		{"delete missing interface", func(f *fixture) int32 {
			_, err := f.ifs.DeleteLoopback(f.ctx, &interfaces.DeleteLoopback{SwIfIndex: 9})
			return retval(f.t, err)
		}, api.INVALID_SW_IF_INDEX},
		{"delete a NIC as loopback", func(f *fixture) int32 {
			_, err := f.ifs.DeleteLoopback(f.ctx, &interfaces.DeleteLoopback{SwIfIndex: eth0})
			return retval(f.t, err)
		}, api.INVALID_SW_IF_INDEX},
		{"delete local0", func(f *fixture) int32 {
			_, err := f.ifs.DeleteLoopback(f.ctx, &interfaces.DeleteLoopback{SwIfIndex: 0})
			return retval(f.t, err)
		}, api.INVALID_SW_IF_INDEX},
		// vnet_sw_interface_supports_addressing.
		{"address on local0", func(f *fixture) int32 { return f.address(0, "10.0.0.1/24", true) }, api.UNSUPPORTED},
		// ip4_add_del_interface_address_internal: the overlap check catches
		// the same address before the duplicate check can.
		{"same IPv4 address twice", func(f *fixture) int32 {
			f.address(eth0, "10.0.0.1/24", true)
			return f.address(eth0, "10.0.0.1/24", true)
		}, api.ADDRESS_IN_USE},
		{"overlapping IPv4 on another interface", func(f *fixture) int32 {
			f.address(eth0, "10.0.0.1/24", true)
			return f.address(f.loopback(), "10.0.0.2/25", true)
		}, api.ADDRESS_IN_USE},
		{"second IPv4 address in the same subnet", func(f *fixture) int32 {
			f.address(eth0, "10.0.0.1/24", true)
			return f.address(eth0, "10.0.0.2/24", true)
		}, 0},
		{"same IPv4 subnet in another table", func(f *fixture) int32 {
			f.address(eth0, "10.0.0.1/24", true)
			lo := f.loopback()
			f.addTable(5, false, "")
			f.setTable(lo, 5, false)
			return f.address(lo, "10.0.0.1/24", true)
		}, 0},
		{"IPv4 length 33", func(f *fixture) int32 { return f.rawAddress(eth0, "10.0.0.1", 33, true) }, api.ADDRESS_LENGTH_MISMATCH},
		{"IPv4 length 0", func(f *fixture) int32 { return f.rawAddress(eth0, "10.0.0.1", 0, true) }, api.ADDRESS_LENGTH_MISMATCH},
		// ip6_add_del_interface_address.
		{"same IPv6 address twice", func(f *fixture) int32 {
			f.address(eth0, "2001:db8::1/64", true)
			return f.address(eth0, "2001:db8::1/64", true)
		}, api.DUPLICATE_IF_ADDRESS},
		{"link-local not /128", func(f *fixture) int32 { return f.address(eth0, "fe80::1/64", true) }, api.ADDRESS_LENGTH_MISMATCH},
		{"delete the link-local address", func(f *fixture) int32 {
			f.address(eth0, "fe80::1/128", true)
			return f.address(eth0, "fe80::1/128", false)
		}, api.ADDRESS_NOT_DELETABLE},
		{"delete another link-local address", func(f *fixture) int32 {
			f.address(eth0, "fe80::1/128", true)
			return f.address(eth0, "fe80::2/128", false)
		}, api.ADDRESS_NOT_FOUND_FOR_INTERFACE},
		// ip4_add_del_interface_address_internal / ip_interface_address_del.
		{"delete missing address", func(f *fixture) int32 { return f.address(eth0, "10.9.9.9/24", false) }, api.ADDRESS_NOT_FOUND_FOR_INTERFACE},
		{"delete another interface's address", func(f *fixture) int32 {
			lo := f.loopback()
			f.address(lo, "10.0.0.1/24", true)
			return f.address(eth0, "10.0.0.1/24", false)
		}, api.ADDRESS_NOT_FOUND_FOR_INTERFACE},
		// vl_api_sw_interface_tag_add_del_t_handler.
		{"empty tag", func(f *fixture) int32 {
			_, err := f.ifs.SwInterfaceTagAddDel(f.ctx, &interfaces.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: eth0})
			return retval(f.t, err)
		}, api.INVALID_VALUE},
		{"tag on missing interface", func(f *fixture) int32 {
			_, err := f.ifs.SwInterfaceTagAddDel(f.ctx, &interfaces.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: 9, Tag: "x"})
			return retval(f.t, err)
		}, api.INVALID_SW_IF_INDEX},
		// loopback_instance_alloc.
		{"duplicate loopback instance", func(f *fixture) int32 {
			f.loopbackInstance(3)
			_, err := f.ifs.CreateLoopbackInstance(f.ctx, &interfaces.CreateLoopbackInstance{IsSpecified: true, UserInstance: 3})
			return retval(f.t, err)
		}, api.INVALID_REGISTRATION},
		{"loopback instance out of range", func(f *fixture) int32 {
			_, err := f.ifs.CreateLoopbackInstance(f.ctx, &interfaces.CreateLoopbackInstance{IsSpecified: true, UserInstance: 16384})
			return retval(f.t, err)
		}, api.INVALID_REGISTRATION},
		// ip_table_bind.
		{"set_table onto a missing table", func(f *fixture) int32 { return f.setTable(eth0, 7, false) }, api.NO_SUCH_FIB},
		{"set_table with addresses", func(f *fixture) int32 {
			f.addTable(5, false, "")
			f.address(eth0, "10.0.0.1/24", true)
			return f.setTable(eth0, 5, false)
		}, api.ADDRESS_FOUND_FOR_INTERFACE},
		{"set IPv6 table with only IPv4 addresses", func(f *fixture) int32 {
			f.addTable(5, true, "")
			f.address(eth0, "10.0.0.1/24", true)
			return f.setTable(eth0, 5, true)
		}, 0},
		{"get_table of missing interface", func(f *fixture) int32 {
			_, err := f.ifs.SwInterfaceGetTable(f.ctx, &interfaces.SwInterfaceGetTable{SwIfIndex: idx(9)})
			return retval(f.t, err)
		}, api.INVALID_SW_IF_INDEX},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(newFixture(t)); got != int32(tc.want) {
				t.Errorf("retval %d, want %d (%v)", got, int32(tc.want), tc.want)
			}
		})
	}
}

func (f *fixture) rawAddress(idx uint32, a string, bits uint8, add bool) int32 {
	f.t.Helper()
	p := addr.FromInterfaceAddress(netip.PrefixFrom(netip.MustParseAddr(a), 32))
	p.Len = bits
	_, err := f.ifs.SwInterfaceAddDelAddress(f.ctx, &interfaces.SwInterfaceAddDelAddress{SwIfIndex: interface_types.InterfaceIndex(idx), IsAdd: add, Prefix: p})
	return retval(f.t, err)
}

func (f *fixture) loopbackInstance(inst uint32) uint32 {
	f.t.Helper()
	rep, err := f.ifs.CreateLoopbackInstance(f.ctx, &interfaces.CreateLoopbackInstance{IsSpecified: true, UserInstance: inst})
	if err != nil {
		f.t.Fatalf("create_loopback_instance %d: %v", inst, err)
	}
	return uint32(rep.SwIfIndex)
}

func (f *fixture) setTable(idx, table uint32, v6 bool) int32 {
	f.t.Helper()
	_, err := f.ifs.SwInterfaceSetTable(f.ctx, &interfaces.SwInterfaceSetTable{SwIfIndex: interface_types.InterfaceIndex(idx), IsIPv6: v6, VrfID: table})
	return retval(f.t, err)
}

func TestTagSetAndClearVisibleInDump(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("t", 70)
	for _, tc := range []struct {
		add  bool
		tag  string
		want string
	}{
		{true, "kube-vpp:uplink", "kube-vpp:uplink"},
		{true, long, long[:63]}, // VPP zeroes the 64th byte
		{false, "", ""},
	} {
		if _, err := f.ifs.SwInterfaceTagAddDel(f.ctx, &interfaces.SwInterfaceTagAddDel{IsAdd: tc.add, SwIfIndex: eth0, Tag: tc.tag}); err != nil {
			t.Fatalf("tag_add_del %v %q: %v", tc.add, tc.tag, err)
		}
		if got := f.iface(eth0).Tag; got != tc.want {
			t.Errorf("after tag_add_del %v %q the dump shows %q, want %q", tc.add, tc.tag, got, tc.want)
		}
	}
}

func TestLoopbackLifecycle(t *testing.T) {
	f := newFixture(t)
	rep, err := f.ifs.CreateLoopback(f.ctx, &interfaces.CreateLoopback{})
	if err != nil {
		t.Fatal(err)
	}
	loop0 := uint32(rep.SwIfIndex)
	d := f.iface(loop0)
	// vnet_create_loopback_interface: first free instance, MAC de:ad:00:00:00:<instance>, down.
	if d.InterfaceName != "loop0" || d.InterfaceDevType != "Loopback" || d.Flags != 0 ||
		d.L2Address != (ethernet_types.MacAddress{0xde, 0xad, 0, 0, 0, 0}) {
		t.Errorf("new loopback = %+v", d)
	}
	if got := f.loopbackInstance(5); f.iface(got).InterfaceName != "loop5" {
		t.Errorf("instance 5 is named %q", f.iface(got).InterfaceName)
	}
	f.setUp(loop0, true)
	if got := f.iface(loop0).Flags; got != interface_types.IF_STATUS_API_FLAG_ADMIN_UP|interface_types.IF_STATUS_API_FLAG_LINK_UP {
		t.Errorf("loopback up has flags %v, want admin and link up", got)
	}
	if _, err := f.ifs.DeleteLoopback(f.ctx, &interfaces.DeleteLoopback{SwIfIndex: interface_types.InterfaceIndex(loop0)}); err != nil {
		t.Fatal(err)
	}
	if got := f.dumpIfaces(&interfaces.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(loop0)}); len(got) != 0 {
		t.Errorf("deleted loopback still dumped: %+v", got)
	}
	// The freed instance and index are handed out again.
	rep2, err := f.ifs.CreateLoopbackInstance(f.ctx, &interfaces.CreateLoopbackInstance{
		MacAddress: ethernet_types.MacAddress{2, 0, 0, 0, 0, 9},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := f.iface(uint32(rep2.SwIfIndex)); uint32(rep2.SwIfIndex) != loop0 || d.InterfaceName != "loop0" ||
		d.L2Address != (ethernet_types.MacAddress{2, 0, 0, 0, 0, 9}) {
		t.Errorf("re-created loopback = index %d %+v, want index %d loop0 with the given MAC", rep2.SwIfIndex, d, loop0)
	}
}

func TestSetTableBindsAndLocks(t *testing.T) {
	f := newFixture(t)
	lo := f.loopback()
	f.addTable(10, false, "blue")
	if rv := f.setTable(lo, 10, false); rv != 0 {
		t.Fatalf("set_table: %d", rv)
	}
	rep, err := f.ifs.SwInterfaceGetTable(f.ctx, &interfaces.SwInterfaceGetTable{SwIfIndex: interface_types.InterfaceIndex(lo)})
	if err != nil || rep.VrfID != 10 {
		t.Fatalf("get_table = %+v, %v; want 10", rep, err)
	}
	rep6, err := f.ifs.SwInterfaceGetTable(f.ctx, &interfaces.SwInterfaceGetTable{SwIfIndex: interface_types.InterfaceIndex(lo), IsIPv6: true})
	if err != nil || rep6.VrfID != 0 {
		t.Fatalf("IPv6 get_table = %+v, %v; want 0", rep6, err)
	}
	f.address(lo, "10.0.0.1/24", true)
	if !f.hasRoute(10, "10.0.0.1/32") || f.hasRoute(0, "10.0.0.1/32") {
		t.Error("the local route of an address must be in the interface's table only")
	}
	// ip_table_delete drops only the API's lock; the interface still holds one.
	f.delTable(10, false)
	if !f.hasTable(10, false) {
		t.Fatal("table deleted while an interface is bound to it")
	}
	f.address(lo, "10.0.0.1/24", false)
	if rv := f.setTable(lo, 0, false); rv != 0 {
		t.Fatalf("back to table 0: %d", rv)
	}
	if f.hasTable(10, false) {
		t.Error("table kept after its last lock went")
	}
}
