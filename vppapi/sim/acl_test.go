package sim

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go.fd.io/govpp/api"
	acl "go.fd.io/govpp/binapi/acl"
	"go.fd.io/govpp/binapi/acl_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// aclFixture is the plain fixture (local0, eth0) with an ACL client.
type aclFixture struct {
	*fixture
	acl acl.RPCService
}

func newACLFixture(t *testing.T) *aclFixture {
	t.Helper()
	f := newFixture(t)
	return &aclFixture{fixture: f, acl: acl.NewServiceClient(f.conn)}
}

// aclR builds a rule; ports are first-last ranges, nil meaning any.
func aclR(action acl_types.ACLAction, src, dst string, proto uint8, sport, dport []uint16) acl_types.ACLRule {
	r := acl_types.ACLRule{IsPermit: action, Proto: ip_types.IPProto(proto),
		SrcPrefix: addr.FromPrefix(netip.MustParsePrefix(src)), DstPrefix: addr.FromPrefix(netip.MustParsePrefix(dst)),
		SrcportOrIcmptypeLast: 65535, DstportOrIcmpcodeLast: 65535}
	if sport != nil {
		r.SrcportOrIcmptypeFirst, r.SrcportOrIcmptypeLast = sport[0], sport[1]
	}
	if dport != nil {
		r.DstportOrIcmpcodeFirst, r.DstportOrIcmpcodeLast = dport[0], dport[1]
	}
	return r
}

func (f *aclFixture) add(idx uint32, tag string, rules ...acl_types.ACLRule) (uint32, int32) {
	f.t.Helper()
	rep, err := f.acl.ACLAddReplace(f.ctx, &acl.ACLAddReplace{ACLIndex: idx, Tag: tag, R: rules})
	rv := retval(f.t, err)
	return rep.ACLIndex, rv // the generated client returns the reply with a retval error
}

func (f *aclFixture) mustAdd(tag string, rules ...acl_types.ACLRule) uint32 {
	f.t.Helper()
	idx, rv := f.add(noIndex, tag, rules...)
	if rv != 0 {
		f.t.Fatalf("acl_add_replace %q: retval %d", tag, rv)
	}
	return idx
}

func (f *aclFixture) del(idx uint32) int32 {
	f.t.Helper()
	_, err := f.acl.ACLDel(f.ctx, &acl.ACLDel{ACLIndex: idx})
	return retval(f.t, err)
}

func (f *aclFixture) setLists(sw uint32, nInput uint8, acls ...uint32) int32 {
	f.t.Helper()
	_, err := f.acl.ACLInterfaceSetACLList(f.ctx, &acl.ACLInterfaceSetACLList{
		SwIfIndex: interface_types.InterfaceIndex(sw), NInput: nInput, Acls: acls})
	return retval(f.t, err)
}

func (f *aclFixture) mustSetLists(sw uint32, nInput uint8, acls ...uint32) {
	f.t.Helper()
	if rv := f.setLists(sw, nInput, acls...); rv != 0 {
		f.t.Fatalf("acl_interface_set_acl_list %d %v: retval %d", sw, acls, rv)
	}
}

func (f *aclFixture) dumpACLs(idx uint32) []*acl.ACLDetails {
	f.t.Helper()
	st, err := f.acl.ACLDump(f.ctx, &acl.ACLDump{ACLIndex: idx})
	if err != nil {
		f.t.Fatal(err)
	}
	return recvAll(f.t, st.Recv)
}

func (f *aclFixture) ifLists(sw uint32) []*acl.ACLInterfaceListDetails {
	f.t.Helper()
	st, err := f.acl.ACLInterfaceListDump(f.ctx, &acl.ACLInterfaceListDump{SwIfIndex: interface_types.InterfaceIndex(sw)})
	if err != nil {
		f.t.Fatal(err)
	}
	return recvAll(f.t, st.Recv)
}

// TestACLAddReplace: acl_add_list checks the tag, then each rule, then
// the index to replace; the reply echoes the requested index on failure
// (~0 for a failed add); new indexes come from the pool.
func TestACLAddReplace(t *testing.T) {
	f := newACLFixture(t)
	any4 := aclR(acl_types.ACL_ACTION_API_PERMIT, "0.0.0.0/0", "0.0.0.0/0", 0, nil, nil)
	badAf := any4
	badAf.SrcPrefix.Address.Af = 2
	hostBits := aclR(acl_types.ACL_ACTION_API_DENY, "0.0.0.0/0", "10.0.0.1/24", 6, nil, nil)
	longSrc := any4
	longSrc.SrcPrefix.Len = 33
	mixed := any4
	mixed.DstPrefix = addr.FromPrefix(netip.MustParsePrefix("::/0"))
	sportBack := aclR(acl_types.ACL_ACTION_API_PERMIT, "0.0.0.0/0", "0.0.0.0/0", 17, []uint16{100, 99}, nil)
	dportBack := aclR(acl_types.ACL_ACTION_API_PERMIT, "0.0.0.0/0", "0.0.0.0/0", 0, nil, []uint16{2, 1})
	odd := aclR(7, "10.0.0.0/8", "0.0.0.0/0", 250, nil, nil) // action and proto are not checked

	tests := []struct {
		name    string
		idx     uint32
		tag     string
		rules   []acl_types.ACLRule
		rv      api.VPPApiError
		wantIdx uint32
	}{
		{"first", noIndex, "a", []acl_types.ACLRule{any4}, 0, 0},
		{"second, no rules", noIndex, "b", nil, 0, 1},
		{"odd action and proto kept", noIndex, "c", []acl_types.ACLRule{odd}, 0, 2},
		{"tag of 64 bytes", noIndex, strings.Repeat("t", 64), nil, api.INVALID_VALUE, noIndex},
		{"bad family", noIndex, "x", []acl_types.ACLRule{any4, badAf}, api.INVALID_SRC_ADDRESS, noIndex},
		{"src longer than 32", noIndex, "x", []acl_types.ACLRule{longSrc}, api.INVALID_SRC_ADDRESS, noIndex},
		{"dst host bits", 1, "x", []acl_types.ACLRule{hostBits}, api.INVALID_DST_ADDRESS, 1},
		{"families differ", noIndex, "x", []acl_types.ACLRule{mixed}, api.INVALID_SRC_ADDRESS, noIndex},
		{"source ports backwards", noIndex, "x", []acl_types.ACLRule{sportBack}, api.INVALID_VALUE_2, noIndex},
		{"dest ports backwards, proto 0", noIndex, "x", []acl_types.ACLRule{dportBack}, api.INVALID_VALUE_2, noIndex},
		{"rules checked before the index", 9, "x", []acl_types.ACLRule{sportBack}, api.INVALID_VALUE_2, 9},
		{"replace missing", 9, "x", nil, api.NO_SUCH_ENTRY, 9},
		{"replace", 1, "b2", []acl_types.ACLRule{any4, any4}, 0, 1},
		{"third new", noIndex, "d", nil, 0, 3},
	}
	for _, tc := range tests {
		idx, rv := f.add(tc.idx, tc.tag, tc.rules...)
		if api.VPPApiError(rv) != tc.rv || idx != tc.wantIdx {
			t.Errorf("%s: index %d retval %d, want %d retval %d", tc.name, idx, rv, tc.wantIdx, tc.rv)
		}
	}
	// Failed requests made and changed nothing.

	d := f.dumpACLs(noIndex)
	var got []string
	for _, x := range d {
		got = append(got, x.Tag)
	}
	if want := []string{"a", "b2", "c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("dump tags %v, want %v", got, want)
	}
	if len(d[1].R) != 2 || d[1].Count != 2 || d[1].R[0] != any4 {
		t.Errorf("replaced ACL dumps %+v, want two permit-any rules", d[1])
	}
	if len(d[2].R) != 1 || d[2].R[0] != odd {
		t.Errorf("ACL c dumps %+v, want %+v", d[2].R, odd)
	}
	if one := f.dumpACLs(2); len(one) != 1 || one[0].ACLIndex != 2 || one[0].Tag != "c" {
		t.Errorf("dump of 2: %+v", one)
	}
	if none := f.dumpACLs(42); len(none) != 0 {
		t.Errorf("dump of a missing ACL: %+v, want nothing", none)
	}
}

// TestACLIndexReuse: the pool hands out the last freed index first.
func TestACLIndexReuse(t *testing.T) {
	f := newACLFixture(t)
	for i := range 4 {
		if idx := f.mustAdd("x"); idx != uint32(i) {
			t.Fatalf("new ACL %d got index %d", i, idx)
		}
	}
	for _, idx := range []uint32{1, 2} {
		if rv := f.del(idx); rv != 0 {
			t.Fatalf("acl_del %d: %d", idx, rv)
		}
	}
	var got []uint32
	for range 3 {
		got = append(got, f.mustAdd("y"))
	}
	if want := []uint32{2, 1, 4}; !slices.Equal(got, want) {
		t.Errorf("indexes after freeing 1 then 2: %v, want %v", got, want)
	}
}

// TestACLDelInUse: acl_del_list refuses an ACL in an input list
// (checked first), then one in an output list; a missing one is
// NO_SUCH_ENTRY; once unbound it goes.
func TestACLDelInUse(t *testing.T) {
	f := newACLFixture(t)
	a, b, c := f.mustAdd("a"), f.mustAdd("b"), f.mustAdd("c")
	f.mustSetLists(eth0, 1, a, b) // input [a], output [b]
	lo := f.loopback()
	f.mustSetLists(lo, 1, b, a) // input [b], output [a]
	tests := []struct {
		name string
		idx  uint32
		want api.VPPApiError
	}{
		{"input on eth0, output on lo", a, api.ACL_IN_USE_INBOUND},
		{"output on eth0, input on lo", b, api.ACL_IN_USE_INBOUND},
		{"unused", c, 0},
		{"already deleted", c, api.NO_SUCH_ENTRY},
		{"never made", 77, api.NO_SUCH_ENTRY},
	}
	for _, tc := range tests {
		if rv := f.del(tc.idx); api.VPPApiError(rv) != tc.want {
			t.Errorf("%s: retval %d, want %d", tc.name, rv, tc.want)
		}
	}
	f.mustSetLists(lo, 0)      // lo: nothing
	f.mustSetLists(eth0, 0, b) // eth0: output [b]
	if rv := f.del(b); api.VPPApiError(rv) != api.ACL_IN_USE_OUTBOUND {
		t.Errorf("b only in eth0's output: retval %d, want ACL_IN_USE_OUTBOUND", rv)
	}
	if rv := f.del(a); rv != 0 {
		t.Errorf("a unbound: retval %d", rv)
	}
	// Deleting the interface resets its lists (acl_sw_interface_add_del).
	f.mustSetLists(lo, 1, b)
	f.mustSetLists(eth0, 0)
	f.deleteLoopback(lo)
	if rv := f.del(b); rv != 0 {
		t.Errorf("b after its interface went: retval %d, want 0", rv)
	}
}

// TestACLSetList: the handler checks the interface and every ACL before
// changing anything; a duplicate makes set_inout fail and the reply 1
// (VPP's rv = rv || ...), the output part being applied first.
func TestACLSetList(t *testing.T) {
	f := newACLFixture(t)
	a, b, c := f.mustAdd("a"), f.mustAdd("b"), f.mustAdd("c")
	type lists struct{ in, out []uint32 }
	tests := []struct {
		name   string
		sw     uint32
		nInput uint8
		acls   []uint32
		rv     int32
		want   lists // eth0's lists afterwards
	}{
		{"input a b, output c", eth0, 2, []uint32{a, b, c}, 0, lists{[]uint32{a, b}, []uint32{c}}},
		{"bad interface", 9, 0, []uint32{a}, int32(api.INVALID_SW_IF_INDEX), lists{[]uint32{a, b}, []uint32{c}}},
		{"unknown ACL", eth0, 1, []uint32{c, 42}, int32(api.NO_SUCH_ENTRY), lists{[]uint32{a, b}, []uint32{c}}},
		{"duplicate in output: nothing set", eth0, 1, []uint32{c, a, a}, 1, lists{[]uint32{a, b}, []uint32{c}}},
		{"duplicate in input: output set", eth0, 2, []uint32{b, b, a}, 1, lists{[]uint32{a, b}, []uint32{a}}},
		{"same ACL both ways", eth0, 1, []uint32{b, b}, 0, lists{[]uint32{b}, []uint32{b}}},
		{"n_input beyond count", eth0, 5, []uint32{c, a}, 0, lists{[]uint32{c, a}, nil}},
		{"empty clears both", eth0, 0, nil, 0, lists{}},
	}
	for _, tc := range tests {
		if rv := f.setLists(tc.sw, tc.nInput, tc.acls...); rv != tc.rv {
			t.Errorf("%s: retval %d, want %d", tc.name, rv, tc.rv)
		}
		d := f.ifLists(eth0)
		wantAcls := append(slices.Clone(tc.want.in), tc.want.out...)
		if len(d) != 1 || int(d[0].NInput) != len(tc.want.in) || int(d[0].Count) != len(wantAcls) || !slices.Equal(d[0].Acls, wantAcls) {
			t.Errorf("%s: eth0 lists %+v, want input %v output %v", tc.name, d, tc.want.in, tc.want.out)
		}
	}
}

// TestACLInterfaceListDump: ~0 sends every interface, local0 and empty
// lists included, in index order; a missing index sends nothing.
func TestACLInterfaceListDump(t *testing.T) {
	f := newACLFixture(t)
	a := f.mustAdd("a")
	lo := f.loopback()
	f.mustSetLists(lo, 0, a)
	d := f.ifLists(noIndex)
	if len(d) != 3 {
		t.Fatalf("dump of all: %d details, want 3 (local0, eth0, loop0)", len(d))
	}
	for i, x := range d {
		if uint32(x.SwIfIndex) != uint32(i) {
			t.Errorf("detail %d names sw_if_index %d", i, x.SwIfIndex)
		}
	}
	if d[0].Count != 0 || d[1].Count != 0 || d[2].Count != 1 || d[2].NInput != 0 || d[2].Acls[0] != a {
		t.Errorf("lists %+v %+v %+v, want empty, empty, output [a]", d[0], d[1], d[2])
	}
	if none := f.ifLists(99); len(none) != 0 {
		t.Errorf("dump of a missing interface: %+v", none)
	}
	if one := f.ifLists(eth0); len(one) != 1 || one[0].Count != 0 {
		t.Errorf("dump of eth0: %+v, want one empty", one)
	}
}

func TestACLPluginVersionAndPing(t *testing.T) {
	f := newACLFixture(t)
	v, err := f.acl.ACLPluginGetVersion(f.ctx, &acl.ACLPluginGetVersion{})
	if err != nil || v.Major != 1 || v.Minor != 4 {
		t.Errorf("version %+v %v, want 1.4", v, err)
	}
	p, err := f.acl.ACLPluginControlPing(f.ctx, &acl.ACLPluginControlPing{})
	if err != nil || p.VpePID != f.sim.PID() {
		t.Errorf("ping %+v %v, want vpe_pid %d", p, err, f.sim.PID())
	}
}
