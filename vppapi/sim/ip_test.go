package sim

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.fd.io/govpp/api"
	fibapi "go.fd.io/govpp/binapi/fib"
	"go.fd.io/govpp/binapi/fib_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

func (f *fixture) addTable(id uint32, v6 bool, name string) {
	f.t.Helper()
	if _, err := f.ip.IPTableAddDel(f.ctx, &ip.IPTableAddDel{IsAdd: true, Table: ip.IPTable{TableID: id, IsIP6: v6, Name: name}}); err != nil {
		f.t.Fatalf("ip_table_add_del %d: %v", id, err)
	}
}

func (f *fixture) delTable(id uint32, v6 bool) {
	f.t.Helper()
	if _, err := f.ip.IPTableAddDel(f.ctx, &ip.IPTableAddDel{Table: ip.IPTable{TableID: id, IsIP6: v6}}); err != nil {
		f.t.Fatalf("ip_table_add_del delete %d: %v", id, err)
	}
}

func (f *fixture) tables() []ip.IPTable {
	f.t.Helper()
	st, err := f.ip.IPTableDump(f.ctx, &ip.IPTableDump{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []ip.IPTable
	for _, d := range recvAll(f.t, st.Recv) {
		out = append(out, d.Table)
	}
	return out
}

func (f *fixture) hasTable(id uint32, v6 bool) bool {
	return slices.ContainsFunc(f.tables(), func(t ip.IPTable) bool { return t.TableID == id && t.IsIP6 == v6 })
}

// routes dumps a table with ip_route_v2_dump, keyed by masked prefix.
func (f *fixture) routes(table uint32, v6 bool, src uint8) map[string]ip.IPRouteV2 {
	f.t.Helper()
	st, err := f.ip.IPRouteV2Dump(f.ctx, &ip.IPRouteV2Dump{Src: src, Table: ip.IPTable{TableID: table, IsIP6: v6}})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]ip.IPRouteV2{}
	for _, d := range recvAll(f.t, st.Recv) {
		out[addr.ToPrefix(d.Route.Prefix).Masked().String()] = d.Route
	}
	return out
}

func (f *fixture) hasRoute(table uint32, prefix string) bool {
	p := netip.MustParsePrefix(prefix)
	_, ok := f.routes(table, p.Addr().Is6(), 0)[p.String()]
	return ok
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// via builds an API path: a next hop with an interface, or without (~0).
func via(nh string, swIfIndex uint32) fib_types.FibPath {
	a := netip.MustParseAddr(nh)
	p := fib_types.FibPath{SwIfIndex: swIfIndex, Weight: 1, Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4}
	if a.Is6() {
		p.Proto = fib_types.FIB_API_PATH_NH_PROTO_IP6
		p.Nh.Address.SetIP6(ip_types.IP6Address(a.As16()))
	} else {
		p.Nh.Address.SetIP4(ip_types.IP4Address(a.As4()))
	}
	return p
}

func (f *fixture) route(isAdd, multipath bool, table uint32, prefix string, src uint8, paths ...fib_types.FibPath) int32 {
	f.t.Helper()
	_, err := f.ip.IPRouteAddDelV2(f.ctx, &ip.IPRouteAddDelV2{IsAdd: isAdd, IsMultipath: multipath, Route: ip.IPRouteV2{
		TableID: table, Prefix: addr.FromPrefix(netip.MustParsePrefix(prefix)), Src: src, Paths: paths,
	}})
	return retval(f.t, err)
}

// pathsOf renders a route's paths as "type sw nh" strings.
func pathsOf(r ip.IPRouteV2) []string {
	var out []string
	for _, p := range r.Paths {
		a := netip.AddrFrom4(p.Nh.Address.GetIP4())
		if p.Proto == fib_types.FIB_API_PATH_NH_PROTO_IP6 {
			a = netip.AddrFrom16(p.Nh.Address.GetIP6())
		}
		sw := fmt.Sprint(p.SwIfIndex)
		if p.SwIfIndex == noIndex {
			sw = "~0"
		}
		out = append(out, fmt.Sprintf("%s %s %s", strings.TrimPrefix(p.Type.String(), "FIB_API_PATH_TYPE_"), sw, a))
	}
	return out
}

func TestIPTableAddDel(t *testing.T) {
	f := newFixture(t)
	// ip_table_create / ip_table_delete: table 0 is never added or deleted
	// through the API; adding again keeps the first name; deleting a table
	// that isn't there succeeds.
	for _, tc := range []struct {
		add  bool
		id   uint32
		v6   bool
		name string
	}{
		{true, 0, false, "renamed"}, {false, 0, false, ""},
		{true, 5, false, "blue"}, {true, 5, false, "red"},
		{true, 6, false, ""}, {true, 7, true, ""},
		{false, 99, false, ""}, {true, 8, false, ""}, {false, 8, false, ""},
	} {
		_, err := f.ip.IPTableAddDel(f.ctx, &ip.IPTableAddDel{IsAdd: tc.add, Table: ip.IPTable{TableID: tc.id, IsIP6: tc.v6, Name: tc.name}})
		if rv := retval(t, err); rv != 0 {
			t.Fatalf("ip_table_add_del %+v: retval %d", tc, rv)
		}
	}
	var got []string
	for _, tb := range f.tables() {
		got = append(got, fmt.Sprintf("%v/%d/%s", tb.IsIP6, tb.TableID, tb.Name))
	}
	want := []string{"false/0/ipv4-VRF:0", "false/5/blue", "false/6/ipv4-VRF:6", "true/0/ipv6-VRF:0", "true/7/ipv6-VRF:7"}
	if !slices.Equal(got, want) {
		t.Errorf("ip_table_dump = %v, want %v", got, want)
	}
}

func TestSpecialEntriesInFreshTable(t *testing.T) {
	f := newFixture(t)
	f.addTable(7, false, "")
	f.addTable(7, true, "")
	// ip4_fib_hash_load_specials / ip6_fib_hash_load_specials, with sources
	// default-route (20) and special (1).
	for _, tc := range []struct {
		v6   bool
		want map[string]string
	}{
		{false, map[string]string{
			"0.0.0.0/0": "20 DROP ~0 0.0.0.0", "0.0.0.0/32": "20 DROP ~0 0.0.0.0",
			"224.0.0.0/4": "1 DROP ~0 0.0.0.0", "240.0.0.0/4": "1 DROP ~0 0.0.0.0",
			"255.255.255.255/32": "20 DROP ~0 0.0.0.0",
		}},
		{true, map[string]string{"::/0": "20 DROP ~0 ::", "fe80::/10": "1 NORMAL ~0 ::"}},
	} {
		got := map[string]string{}
		for p, r := range f.routes(7, tc.v6, 0) {
			got[p] = fmt.Sprintf("%d %s", r.Src, strings.Join(pathsOf(r), "|"))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("fresh table (ipv6 %v) = %v, want %v", tc.v6, got, tc.want)
		}
		// ip_route_dump lists the same entries; a missing table dumps nothing.
		for table, want := range map[uint32]int{7: len(tc.want), 8: 0} {
			st, err := f.ip.IPRouteDump(f.ctx, &ip.IPRouteDump{Table: ip.IPTable{TableID: table, IsIP6: tc.v6}})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(recvAll(t, st.Recv)); n != want {
				t.Errorf("ip_route_dump of table %d (ipv6 %v) has %d routes, want %d", table, tc.v6, n, want)
			}
		}
	}
}

func TestRouteRetvals(t *testing.T) {
	drop := fib_types.FibPath{Type: fib_types.FIB_API_PATH_TYPE_DROP, SwIfIndex: noIndex}
	for _, tc := range []struct {
		name string
		run  func(f *fixture) int32
		want api.VPPApiError
	}{
		// fib_api_table_id_decode in ip_route_add_del_t_handler.
		{"route into a missing table", func(f *fixture) int32 { return f.route(true, false, 42, "10.0.0.0/8", 0, drop) }, api.NO_SUCH_FIB},
		{"delete from a missing table", func(f *fixture) int32 { return f.route(false, false, 42, "10.0.0.0/8", 0) }, api.NO_SUCH_FIB},
		// fib_api_path_decode.
		{"next hop in a missing table", func(f *fixture) int32 {
			p := via("192.0.2.1", noIndex)
			p.TableID = 42
			return f.route(true, false, 0, "10.0.0.0/8", 0, p)
		}, api.NO_SUCH_FIB},
		{"next hop via a missing interface", func(f *fixture) int32 {
			return f.route(true, false, 0, "10.0.0.0/8", 0, via("192.0.2.1", 9))
		}, api.NO_MATCHING_INTERFACE},
		// fib_api_route_add_del.
		{"prefix length 33", func(f *fixture) int32 {
			_, err := f.ip.IPRouteAddDel(f.ctx, &ip.IPRouteAddDel{IsAdd: true, Route: ip.IPRoute{
				Prefix: ip_types.Prefix{Address: addr.FromAddr(netip.MustParseAddr("10.0.0.0")), Len: 33}, Paths: []fib_types.FibPath{drop},
			}})
			return retval(f.t, err)
		}, api.INVALID_PREFIX_LENGTH},
		{"add without paths", func(f *fixture) int32 { return f.route(true, false, 0, "10.0.0.0/8", 0) }, api.VPPApiError(noPathsInRoute)},
		{"multipath delete without paths", func(f *fixture) int32 { return f.route(false, true, 0, "10.0.0.0/8", 0) }, api.VPPApiError(noPathsInRoute)},
		{"delete a missing route", func(f *fixture) int32 { return f.route(false, false, 0, "10.0.0.0/8", 0) }, 0},
		{"remove a path from a missing route", func(f *fixture) int32 {
			return f.route(false, true, 0, "10.0.0.0/8", 0, via("192.0.2.1", eth0))
		}, 0},
		// The simulator refuses a source id fib_source_add never returned
		// (VPP would index past its source table).
		{"unknown source", func(f *fixture) int32 { return f.route(true, false, 0, "10.0.0.0/8", 200, drop) }, api.INVALID_VALUE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.run(newFixture(t)); got != int32(tc.want) {
				t.Errorf("retval %d, want %d", got, int32(tc.want))
			}
		})
	}
}

func TestMultipathAddAndRemove(t *testing.T) {
	f := newFixture(t)
	f.setUp(eth0, true)
	const pfx = "10.1.0.0/16"
	a, b, c := via("192.0.2.1", eth0), via("192.0.2.2", eth0), via("192.0.2.3", eth0)
	// fib_table_entry_path_add2 / path_remove2 for is_multipath, and
	// fib_table_entry_update (replace) / fib_table_entry_delete without.
	for _, step := range []struct {
		name      string
		add, mp   bool
		paths     []fib_types.FibPath
		wantPaths []string // nil: the route is gone
	}{
		{"add a", true, true, []fib_types.FibPath{a}, []string{"NORMAL 1 192.0.2.1"}},
		{"add b", true, true, []fib_types.FibPath{b}, []string{"NORMAL 1 192.0.2.1", "NORMAL 1 192.0.2.2"}},
		{"add a again", true, true, []fib_types.FibPath{a}, []string{"NORMAL 1 192.0.2.1", "NORMAL 1 192.0.2.2"}},
		{"remove a", false, true, []fib_types.FibPath{a}, []string{"NORMAL 1 192.0.2.2"}},
		{"remove b, the last", false, true, []fib_types.FibPath{b}, nil},
		{"replace with a and b", true, false, []fib_types.FibPath{b, a}, []string{"NORMAL 1 192.0.2.1", "NORMAL 1 192.0.2.2"}},
		{"replace with c", true, false, []fib_types.FibPath{c}, []string{"NORMAL 1 192.0.2.3"}},
		{"delete", false, false, nil, nil},
	} {
		if rv := f.route(step.add, step.mp, 0, pfx, 0, step.paths...); rv != 0 {
			t.Fatalf("%s: retval %d", step.name, rv)
		}
		r, ok := f.routes(0, false, 0)[pfx]
		if step.wantPaths == nil {
			if ok {
				t.Errorf("%s: route still there with %v", step.name, pathsOf(r))
			}
			continue
		}
		if got := pathsOf(r); !ok || !slices.Equal(got, step.wantPaths) || r.Src != srcAPI {
			t.Errorf("%s: route present %v src %d paths %v, want src 8 paths %v", step.name, ok, r.Src, got, step.wantPaths)
		}
	}
}

func TestRoutePathKinds(t *testing.T) {
	f := newFixture(t)
	f.addTable(3, false, "")
	local := fib_types.FibPath{Type: fib_types.FIB_API_PATH_TYPE_LOCAL, SwIfIndex: noIndex}
	recursive := via("198.51.100.1", noIndex)
	recursive.TableID = 3
	deag := via("0.0.0.0", noIndex)
	deag.TableID = 3
	// fib_api_path_decode, fib_table_route_path_fixup and fib_path_encode.
	for _, tc := range []struct {
		prefix string
		path   fib_types.FibPath
		want   string
	}{
		{"10.2.0.0/16", fib_types.FibPath{Type: fib_types.FIB_API_PATH_TYPE_DROP, SwIfIndex: eth0}, "DROP ~0 0.0.0.0 t0"},
		{"10.3.0.0/16", local, "LOCAL ~0 0.0.0.0 t0"},
		{"10.4.0.0/16", recursive, "NORMAL ~0 198.51.100.1 t3"},
		{"10.5.0.0/16", via("0.0.0.0", eth0), "NORMAL 1 0.0.0.0 t0"},    // attached
		{"10.6.0.1/32", via("0.0.0.0", eth0), "NORMAL 1 10.6.0.1 t0"},   // a host route's interface path gets the host as next hop
		{"10.7.0.1/32", via("10.7.0.1", noIndex), "DROP ~0 0.0.0.0 t0"}, // recursing through itself drops
		{"10.8.0.0/16", deag, "NORMAL ~0 0.0.0.0 t3"},                   // a lookup in table 3
	} {
		if rv := f.route(true, false, 0, tc.prefix, 0, tc.path); rv != 0 {
			t.Fatalf("%s: retval %d", tc.prefix, rv)
		}
		r := f.routes(0, false, 0)[tc.prefix]
		if len(r.Paths) != 1 {
			t.Fatalf("%s: %d paths", tc.prefix, len(r.Paths))
		}
		if got := fmt.Sprintf("%s t%d", pathsOf(r)[0], r.Paths[0].TableID); got != tc.want {
			t.Errorf("%s: path %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func TestV2DumpFilteredBySource(t *testing.T) {
	f := newFixture(t)
	add := func(name string, prio uint8) uint8 {
		rep, err := f.fib.FibSourceAdd(f.ctx, &fibapi.FibSourceAdd{Src: fibapi.FibSource{Name: name, Priority: prio}})
		if err != nil {
			t.Fatal(err)
		}
		return rep.ID
	}
	// fib_source_allocate: ids from FIB_SOURCE_LAST+1, one per call, names not deduplicated.
	mine, again := add("kube-vpp", 0x80), add("kube-vpp", 0x80)
	if mine != 22 || again != 23 {
		t.Fatalf("fib_source_add gave ids %d and %d, want 22 and 23", mine, again)
	}
	drop := fib_types.FibPath{Type: fib_types.FIB_API_PATH_TYPE_DROP, SwIfIndex: noIndex}
	f.route(true, false, 0, "10.10.0.0/16", mine, drop)
	f.route(true, false, 0, "10.20.0.0/16", 0, drop)
	// Both sources: API (0x80, slot 0) is better than ours (0x80, slot 1).
	f.route(true, false, 0, "10.30.0.0/16", mine, drop)
	f.route(true, false, 0, "10.30.0.0/16", 0, drop)

	for _, tc := range []struct {
		src  uint8
		want []string
	}{
		{mine, []string{"10.10.0.0/16"}},
		{srcAPI, []string{"10.20.0.0/16", "10.30.0.0/16"}},
		{srcSpecial, []string{"224.0.0.0/4", "240.0.0.0/4"}},
	} {
		if got := keys(f.routes(0, false, tc.src)); !slices.Equal(got, tc.want) {
			t.Errorf("v2 dump for source %d = %v, want %v", tc.src, got, tc.want)
		}
	}
	if r := f.routes(0, false, 0)["10.10.0.0/16"]; r.Src != mine {
		t.Errorf("route of source %d reports source %d", mine, r.Src)
	}
	// Removing the API's contribution leaves ours in charge.
	f.route(false, false, 0, "10.30.0.0/16", 0)
	if got := keys(f.routes(0, false, mine)); !slices.Equal(got, []string{"10.10.0.0/16", "10.30.0.0/16"}) {
		t.Errorf("after the API's delete, source %d has %v", mine, got)
	}

	st, err := f.fib.FibSourceDump(f.ctx, &fibapi.FibSourceDump{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range recvAll(t, st.Recv) {
		names = append(names, fmt.Sprintf("%d:%s:%#x", d.Src.ID, d.Src.Name, d.Src.Priority))
	}
	// FIB_SOURCES and foreach_fib_source in fib_source.h, walked by id.
	want := []string{"0:invalid:0xff", "1:special:0x0", "2:classify:0x1", "3:proxy:0x2", "4:interface:0x3", "5:SR:0x10",
		"6:BIER:0x20", "7:6RD:0x30", "8:API:0x80", "9:CLI:0x81", "10:LISP:0x90", "11:MAP:0xa0", "12:DHCP:0xb0",
		"13:IPv6-proxy-nd:0xc0", "14:IPv6-nd:0xc1", "15:adjacency:0xd0", "16:mpls:0xe0", "17:attached_export:0xf0",
		"18:recursive-resolution:0xfb", "19:urpf-exempt:0xfc", "20:default-route:0xfd", "21:interpose:0xfe",
		"22:kube-vpp:0x80", "23:kube-vpp:0x80"}
	if !slices.Equal(names, want) {
		t.Errorf("fib_source_dump = %v, want %v", names, want)
	}
}

func TestConnectedRoutesFollowAddresses(t *testing.T) {
	f := newFixture(t)
	lo := f.loopback()
	sw := fmt.Sprint(lo)
	ifRoutes := func(v6 bool) map[string]string {
		out := map[string]string{}
		for p, r := range f.routes(0, v6, srcInterface) {
			out[p] = strings.Join(pathsOf(r), "|")
		}
		return out
	}
	// ip4_add_interface_routes, ip4_add_interface_prefix_routes,
	// ip6_add_interface_routes: all with the interface source.
	v4 := map[string]string{
		"10.0.0.1/32": "LOCAL " + sw + " 10.0.0.1", "10.0.0.0/24": "NORMAL " + sw + " 0.0.0.0",
		"10.0.0.0/32": "DROP ~0 0.0.0.0", "10.0.0.255/32": "DROP ~0 0.0.0.0",
	}
	p2p := map[string]string{
		"10.0.1.0/32": "LOCAL " + sw + " 10.0.1.0", "10.0.1.0/31": "NORMAL " + sw + " 0.0.0.0",
		"10.0.1.1/32": "NORMAL " + sw + " 10.0.1.1",
	}
	v6 := map[string]string{"2001:db8::1/128": "LOCAL " + sw + " 2001:db8::1", "2001:db8::/64": "NORMAL " + sw + " ::"}
	union := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	none := map[string]string{}
	for _, step := range []struct {
		name   string
		do     func()
		v4, v6 map[string]string
	}{
		{"add addresses", func() {
			f.address(lo, "10.0.0.1/24", true)
			f.address(lo, "10.0.1.0/31", true)
			f.address(lo, "2001:db8::1/64", true)
		}, union(v4, p2p), v6},
		{"admin down", func() { f.setUp(lo, false) }, none, none},
		{"admin up", func() { f.setUp(lo, true) }, union(v4, p2p), v6},
		{"delete the /31", func() { f.address(lo, "10.0.1.0/31", false) }, v4, v6},
		{"delete all", func() {
			_, err := f.ifs.SwInterfaceAddDelAddress(f.ctx, &interfaces.SwInterfaceAddDelAddress{
				SwIfIndex: interface_types.InterfaceIndex(lo), DelAll: true,
			})
			if err != nil {
				t.Fatal(err)
			}
		}, none, none},
		{"add again", func() { f.address(lo, "10.0.0.1/24", true) }, v4, none},
		{"delete the loopback", func() { f.deleteLoopback(lo) }, none, none},
	} {
		step.do()
		if got := ifRoutes(false); fmt.Sprint(got) != fmt.Sprint(step.v4) {
			t.Errorf("%s: IPv4 interface routes %v, want %v", step.name, got, step.v4)
		}
		if got := ifRoutes(true); fmt.Sprint(got) != fmt.Sprint(step.v6) {
			t.Errorf("%s: IPv6 interface routes %v, want %v", step.name, got, step.v6)
		}
	}
}

func TestInterfaceSourceBeatsAPI(t *testing.T) {
	f := newFixture(t)
	lo := f.loopback()
	drop := fib_types.FibPath{Type: fib_types.FIB_API_PATH_TYPE_DROP, SwIfIndex: noIndex}
	f.route(true, false, 0, "10.0.0.1/32", 0, drop)
	f.address(lo, "10.0.0.1/24", true)
	// interface (0x03) is a better priority than API (0x80).
	if r := f.routes(0, false, 0)["10.0.0.1/32"]; r.Src != srcInterface || pathsOf(r)[0] != fmt.Sprintf("LOCAL %d 10.0.0.1", lo) {
		t.Errorf("with both sources: src %d paths %v, want the interface's local path", r.Src, pathsOf(r))
	}
	f.address(lo, "10.0.0.1/24", false)
	if r := f.routes(0, false, 0)["10.0.0.1/32"]; r.Src != srcAPI || pathsOf(r)[0] != "DROP ~0 0.0.0.0" {
		t.Errorf("after the address went: src %d paths %v, want the API's drop", r.Src, pathsOf(r))
	}
}
