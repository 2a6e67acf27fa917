package sim

import (
	"net/netip"
	"testing"

	"go.fd.io/govpp/binapi/fib_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// newLocalSim is a simulator driven through its handlers, without a socket,
// for the lookups packet evaluation will use.
func newLocalSim(t *testing.T) *Sim {
	t.Helper()
	s, err := New(Options{Interfaces: []InterfaceSpec{
		{Name: "eth0", Addresses: []string{"192.0.2.10/24"}, Up: true},
		{Name: "eth1", Addresses: []string{"198.51.100.10/24"}, Up: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Sim) mustRoute(t *testing.T, multipath bool, prefix string, paths ...fib_types.FibPath) {
	t.Helper()
	rep := s.ipRouteAddDel(&ip.IPRouteAddDel{IsAdd: true, IsMultipath: multipath, Route: ip.IPRoute{
		Prefix: addr.FromPrefix(netip.MustParsePrefix(prefix)), Paths: paths,
	}})[0].(*ip.IPRouteAddDelReply)
	if rep.Retval != 0 {
		t.Fatalf("route %s: retval %d", prefix, rep.Retval)
	}
}

func TestLookupLongestPrefix(t *testing.T) {
	s := newLocalSim(t)
	s.mustRoute(t, false, "10.0.0.0/8", via("192.0.2.1", 1))
	s.mustRoute(t, false, "10.1.0.0/16", via("198.51.100.1", 2))
	s.mustRoute(t, false, "10.1.2.3/32", fib_types.FibPath{Type: fib_types.FIB_API_PATH_TYPE_DROP, SwIfIndex: noIndex})
	for _, tc := range []struct {
		table  uint32
		dst    string
		prefix string // "" when the lookup fails
		src    uint8
		kind   pathKind
	}{
		{0, "10.2.3.4", "10.0.0.0/8", srcAPI, pathAttachedNextHop},
		{0, "10.1.9.9", "10.1.0.0/16", srcAPI, pathAttachedNextHop},
		{0, "10.1.2.3", "10.1.2.3/32", srcAPI, pathSpecial},
		{0, "192.0.2.10", "192.0.2.10/32", srcInterface, pathReceive},
		{0, "192.0.2.77", "192.0.2.0/24", srcInterface, pathAttached},
		{0, "192.0.2.255", "192.0.2.255/32", srcInterface, pathSpecial},
		{0, "203.0.113.1", "0.0.0.0/0", srcDefaultRoute, pathSpecial},
		{0, "2001:db8::1", "::/0", srcDefaultRoute, pathSpecial},
		{0, "fe80::1", "fe80::/10", srcSpecial, pathExclusive},
		{0, "::ffff:10.1.9.9", "10.1.0.0/16", srcAPI, pathAttachedNextHop},
		{9, "10.2.3.4", "", 0, 0},
	} {
		r, ok := s.st.lookup(tc.table, netip.MustParseAddr(tc.dst))
		if tc.prefix == "" {
			if ok {
				t.Errorf("lookup %s in table %d found %v", tc.dst, tc.table, r.prefix)
			}
			continue
		}
		if !ok || r.prefix.String() != tc.prefix || r.source != tc.src || len(r.paths) == 0 || r.paths[0].kind != tc.kind {
			t.Errorf("lookup %s = %v ok=%v src %d paths %+v; want %s src %d kind %d", tc.dst, r.prefix, ok, r.source, r.paths, tc.prefix, tc.src, tc.kind)
		}
	}
}

func TestPickPathByFlowHash(t *testing.T) {
	s := newLocalSim(t)
	heavy := via("198.51.100.2", 2)
	heavy.Weight = 3
	s.mustRoute(t, false, "10.0.0.0/8", via("192.0.2.1", 1), heavy)
	r, _ := s.st.lookup(0, netip.MustParseAddr("10.9.9.9"))

	counts := map[string]int{}
	for h := uint32(0); h < 1000; h++ {
		p := r.pickPath(h)
		if p != r.pickPath(h) {
			t.Fatalf("hash %d picked two different paths", h)
		}
		counts[p.nextHop.String()]++
	}
	// Weights 1 and 3 share the flows 1:3.
	if counts["192.0.2.1"] != 250 || counts["198.51.100.2"] != 750 {
		t.Errorf("flows per next hop = %v, want 250 and 750", counts)
	}

	// A path through a down interface stops forwarding; with none left the
	// route drops, like an unresolved load-balance.
	s.swInterfaceSetFlags(&interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(2)})
	r, _ = s.st.lookup(0, netip.MustParseAddr("10.9.9.9"))
	for h := uint32(0); h < 8; h++ {
		if p := r.pickPath(h); p.nextHop.String() != "192.0.2.1" {
			t.Fatalf("hash %d took %v with eth1 down", h, p)
		}
	}
	s.swInterfaceSetFlags(&interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(1)})
	r, _ = s.st.lookup(0, netip.MustParseAddr("10.9.9.9"))
	if p := r.pickPath(7); p.kind != pathSpecial || p.action != actDrop {
		t.Errorf("with both interfaces down the flow took %+v, want drop", p)
	}
}

func TestPickPathPrefersBestPreference(t *testing.T) {
	s := newLocalSim(t)
	backup := via("198.51.100.2", 2)
	backup.Preference = 1
	s.mustRoute(t, false, "10.0.0.0/8", backup, via("192.0.2.1", 1))
	r, _ := s.st.lookup(0, netip.MustParseAddr("10.0.0.1"))
	for h := uint32(0); h < 16; h++ {
		if p := r.pickPath(h); p.nextHop.String() != "192.0.2.1" {
			t.Fatalf("hash %d took the backup path %v", h, p.nextHop)
		}
	}
	s.swInterfaceSetFlags(&interfaces.SwInterfaceSetFlags{SwIfIndex: interface_types.InterfaceIndex(1)})
	r, _ = s.st.lookup(0, netip.MustParseAddr("10.0.0.1"))
	if p := r.pickPath(3); p.nextHop.String() != "198.51.100.2" {
		t.Errorf("with the preferred interface down the flow took %v, want the backup", p.nextHop)
	}
}

func TestFibSourceIDsRunOut(t *testing.T) {
	f := newFIB()
	var last uint8
	for range 255 - firstDynamicSource {
		last = f.allocateSource("x", 0x80)
	}
	// fib_source_allocate never hands out 255; after 254 it answers the invalid source.
	if last != 254 || f.allocateSource("x", 0x80) != srcInvalid {
		t.Errorf("last id %d; ids should stop at 254", last)
	}
}
