package sim

import (
	"testing"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
)

func (f *fixture) setUnnumbered(borrower, lender uint32, add bool) int32 {
	f.t.Helper()
	_, err := f.ifs.SwInterfaceSetUnnumbered(f.ctx, &interfaces.SwInterfaceSetUnnumbered{
		SwIfIndex: interface_types.InterfaceIndex(lender), UnnumberedSwIfIndex: interface_types.InterfaceIndex(borrower), IsAdd: add,
	})
	return retval(f.t, err)
}

// unnumbered returns ip_unnumbered_dump as borrower -> lender.
func (f *fixture) unnumbered(idx uint32) map[uint32]uint32 {
	f.t.Helper()
	st, err := f.ip.IPUnnumberedDump(f.ctx, &ip.IPUnnumberedDump{SwIfIndex: interface_types.InterfaceIndex(idx)})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[uint32]uint32{}
	for _, d := range recvAll(f.t, st.Recv) {
		out[uint32(d.SwIfIndex)] = uint32(d.IPSwIfIndex)
	}
	return out
}

// TestSetUnnumberedRetvals follows vl_api_sw_interface_set_unnumbered_t_handler
// and vnet_sw_interface_update_unnumbered (src/vnet/interface_api.c, interface.c).
func TestSetUnnumberedRetvals(t *testing.T) {
	f := newFixture(t)
	lo := f.loopback() // 2
	other := f.loopback()
	f.addTable(5, false, "")
	if rv := f.setTable(other, 5, false); rv != 0 {
		t.Fatal(rv)
	}
	for _, tc := range []struct {
		name             string
		borrower, lender uint32
		add              bool
		want             int32
	}{
		{"borrower missing", 99, lo, true, int32(api.INVALID_SW_IF_INDEX)},
		{"borrower missing on delete", 99, lo, false, int32(api.INVALID_SW_IF_INDEX)},
		{"lender missing on add", eth0, 99, true, int32(api.INVALID_SW_IF_INDEX_2)},
		{"lender not checked on delete", eth0, 99, false, 0},
		{"tables differ", eth0, other, true, int32(api.UNEXPECTED_INTF_STATE)},
		{"to itself is not refused", lo, lo, true, 0},
		{"undo", lo, lo, false, 0},
		{"bind", eth0, lo, true, 0},
		{"bind again", eth0, lo, true, 0},
		{"delete when not unnumbered", other, lo, false, 0},
	} {
		if rv := f.setUnnumbered(tc.borrower, tc.lender, tc.add); rv != tc.want {
			t.Errorf("%s: retval %d, want %d", tc.name, rv, tc.want)
		}
	}
	if got := f.unnumbered(noIndex); len(got) != 1 || got[eth0] != lo {
		t.Errorf("ip_unnumbered_dump = %v, want {%d: %d}", got, eth0, lo)
	}
	if got := f.unnumbered(eth0); len(got) != 1 || got[eth0] != lo {
		t.Errorf("ip_unnumbered_dump %d = %v", eth0, got)
	}
	for _, idx := range []uint32{lo, 99} {
		if got := f.unnumbered(idx); len(got) != 0 {
			t.Errorf("ip_unnumbered_dump %d = %v, want nothing", idx, got)
		}
	}
}

// TestUnnumberedBorrowsWithoutRoutes: the borrower shows the lender's
// addresses (show interface address honours unnumbered) and the interface
// source adds no routes for it; deleting the borrower drops its binding
// (ip4_sw_interface_add_del), deleting the lender leaves others' bindings
// naming the gone index, as VPP does.
func TestUnnumberedBorrowsWithoutRoutes(t *testing.T) {
	f := newFixture(t)
	lo := f.loopback()
	f.address(lo, "10.9.0.1/32", true)
	f.setUp(eth0, true)
	before := keys(f.routes(0, false, 0))
	if rv := f.setUnnumbered(eth0, lo, true); rv != 0 {
		t.Fatal(rv)
	}
	if after := keys(f.routes(0, false, 0)); len(after) != len(before) {
		t.Errorf("routes changed by unnumbered: %v -> %v", before, after)
	}
	out, rv := f.cli("show interface address")
	want := "eth0 (up): \n  unnumbered, use loop0\n  L3 10.9.0.1/32\nlocal0 (dn):\nloop0 (up):\n  L3 10.9.0.1/32\n"
	if rv != 0 || out != want {
		t.Errorf("show interface address = %q, want %q", out, want)
	}
	f.deleteLoopback(lo)
	if got := f.unnumbered(noIndex); got[eth0] != lo {
		t.Errorf("after deleting the lender: %v, want eth0 still naming %d", got, lo)
	}
	lo2 := f.loopback()
	if rv := f.setUnnumbered(lo2, eth0, true); rv != 0 {
		t.Fatal(rv)
	}
	f.deleteLoopback(lo2)
	if got := f.unnumbered(noIndex); len(got) != 1 {
		t.Errorf("after deleting a borrower: %v, want only eth0's binding", got)
	}
}
