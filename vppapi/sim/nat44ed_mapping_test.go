package sim

import (
	"net/netip"
	"strings"
	"testing"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

func TestNAT44StaticMappings(t *testing.T) {
	f := newNATFixture(t)
	longTag := strings.Repeat("t", 63)
	sm := func(add bool, local, ext string, lport, eport uint16, flags nat_types.NatConfigFlags, tag string) func(*natFixture) error {
		return staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: add, LocalIPAddress: a4(local), ExternalIPAddress: a4(ext),
			Protocol: 6, LocalPort: lport, ExternalPort: eport, VrfID: noIndex, Flags: flags, Tag: tag})
	}
	f.run([]natStep{
		{"enable", enable(0, 3, 0), 0},
		{"add", sm(true, "10.1.0.1", "192.0.2.1", 8080, 80, 0, "ns/web:http"), 0},
		// nat44_ed_add_static_mapping_internal: the external side is taken...
		{"same external", sm(true, "10.1.0.2", "192.0.2.1", 8080, 80, 0, ""), api.VALUE_EXIST},
		// ...and so is the local side, unless out2in-only.
		{"same local", sm(true, "10.1.0.1", "192.0.2.2", 8080, 80, 0, ""), api.VALUE_EXIST},
		{"same local out2in-only", sm(true, "10.1.0.1", "192.0.2.2", 8080, 80, nat_types.NAT_IS_OUT2IN_ONLY, longTag), 0},
		// nat44_ed_validate_sm_input.
		{"addr-only twice-nat", sm(true, "10.1.0.3", "192.0.2.3", 0, 0, nat_types.NAT_IS_ADDR_ONLY|nat_types.NAT_IS_TWICE_NAT, ""), api.UNSUPPORTED},
		{"self-twice-nat", sm(true, "10.1.0.4", "192.0.2.4", 53, 53, nat_types.NAT_IS_SELF_TWICE_NAT, ""), 0},
		// VPP 25.10 checks no protocol number.
		{"protocol 47", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.5"), ExternalIPAddress: a4("192.0.2.5"),
			Protocol: 47, LocalPort: 1, ExternalPort: 1, VrfID: 9}), 0},
		{"addr-only", sm(true, "10.1.0.6", "192.0.2.6", 1234, 5678, nat_types.NAT_IS_ADDR_ONLY, ""), 0},
		{"del missing", sm(false, "10.1.0.9", "192.0.2.9", 80, 80, 0, ""), api.NO_SUCH_ENTRY},
		{"del self-twice-nat", sm(false, "10.1.0.4", "192.0.2.4", 53, 53, nat_types.NAT_IS_SELF_TWICE_NAT, ""), 0},
		{"del self-twice-nat again", sm(false, "10.1.0.4", "192.0.2.4", 53, 53, nat_types.NAT_IS_SELF_TWICE_NAT, ""), api.NO_SUCH_ENTRY},
	})
	type rec struct {
		local, ext   string
		lport, eport uint16
		proto        uint8
		vrf          uint32
		flags        nat_types.NatConfigFlags
		tag          string
	}
	// vrf ~0 falls back to the inside table of the enable call (3).
	want := []rec{
		{"10.1.0.1", "192.0.2.1", 8080, 80, 6, 3, 0, "ns/web:http"},
		{"10.1.0.1", "192.0.2.2", 8080, 80, 6, 3, nat_types.NAT_IS_OUT2IN_ONLY, longTag},
		{"10.1.0.5", "192.0.2.5", 1, 1, 47, 9, 0, ""},
		{"10.1.0.6", "192.0.2.6", 0, 0, 0, 3, nat_types.NAT_IS_ADDR_ONLY, ""},
	}
	var got []rec
	for _, d := range f.statics() {
		if d.ExternalSwIfIndex != interface_types.InterfaceIndex(noIndex) {
			t.Errorf("mapping %v: external_sw_if_index %d, want ~0", d.LocalIPAddress, d.ExternalSwIfIndex)
		}
		got = append(got, rec{netip.AddrFrom4(d.LocalIPAddress).String(), netip.AddrFrom4(d.ExternalIPAddress).String(),
			d.LocalPort, d.ExternalPort, d.Protocol, d.VrfID, d.Flags, d.Tag})
	}
	if !equalSlices(got, want) {
		t.Errorf("static mappings\n got %+v\nwant %+v", got, want)
	}
}

func TestNAT44InterfaceBoundMapping(t *testing.T) {
	f := newNATFixture(t)
	bound := func(add bool) func(*natFixture) error {
		return staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: add, LocalIPAddress: a4("10.1.0.1"), Protocol: 17,
			LocalPort: 53, ExternalPort: 53, ExternalSwIfIndex: eth1, VrfID: 0, Tag: "dns"})
	}
	f.run([]natStep{
		{"enable", enable(0, 0, 0), 0},
		// Without an address the record waits, unresolved.
		{"bound to eth1 without address", bound(true), 0},
		{"again", bound(true), api.VALUE_EXIST},
	})
	if got := f.statics(); len(got) != 1 || got[0].ExternalSwIfIndex != eth1 || got[0].Tag != "dns" || got[0].LocalPort != 53 {
		t.Fatalf("unresolved record: %+v, want one record on eth1", got)
	}
	f.run([]natStep{
		{"del", bound(false), 0},
		{"address on eth1", func(f *natFixture) error {
			_, err := f.ifs.SwInterfaceAddDelAddress(f.ctx, &interfaces.SwInterfaceAddDelAddress{SwIfIndex: eth1, IsAdd: true,
				Prefix: addr.FromInterfaceAddress(netip.MustParsePrefix("198.51.100.7/24"))})
			return err
		}, 0},
		{"bound to eth1 with address", bound(true), 0},
	})
	// A resolved record is listed as the mapping and as the record.
	got := f.statics()
	if len(got) != 2 || netip.AddrFrom4(got[0].ExternalIPAddress).String() != "198.51.100.7" ||
		got[0].ExternalSwIfIndex != interface_types.InterfaceIndex(noIndex) || got[1].ExternalSwIfIndex != eth1 {
		t.Errorf("resolved mapping: %+v, want the mapping on 198.51.100.7 then the record on eth1", got)
	}
}

func TestNAT44IdentityMappings(t *testing.T) {
	f := newNATFixture(t)
	id := func(add bool, vrf uint32) func(*natFixture) error {
		return identity(nat.Nat44AddDelIdentityMapping{IsAdd: add, IPAddress: a4("192.0.2.10"), Protocol: 6, Port: 22, VrfID: vrf, Tag: "ssh"})
	}
	f.run([]natStep{
		{"enable", enable(0, 0, 0), 0},
		{"add", id(true, noIndex), 0},
		// A second table for the same address and port adds a local.
		{"add table 10", id(true, 10), 0},
		{"add table 10 again", id(true, 10), api.VALUE_EXIST},
		// The external side is taken by the identity mapping.
		{"static on same external", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.1"),
			ExternalIPAddress: a4("192.0.2.10"), Protocol: 6, LocalPort: 22, ExternalPort: 22, VrfID: 4}), 0},
	})
	var vrfs []uint32
	for _, d := range f.identities() {
		if d.Tag != "ssh" || d.Port != 22 || d.Protocol != 6 || netip.AddrFrom4(d.IPAddress).String() != "192.0.2.10" {
			t.Errorf("identity record %+v", d)
		}
		vrfs = append(vrfs, d.VrfID)
	}
	// The static mapping on an identity mapping's external side became one
	// more local of it (nat44_ed_add_static_mapping_internal checks the
	// existing mapping's flags only).
	if !equalSlices(vrfs, []uint32{0, 10, 4}) {
		t.Errorf("identity tables %v, want [0 10 4]", vrfs)
	}
	if n := len(f.statics()); n != 0 {
		t.Errorf("static dump lists %d identity records, want none", n)
	}
	f.run([]natStep{
		{"del table 10", id(false, 10), 0},
		{"del table 10 again", id(false, 10), api.NO_SUCH_ENTRY},
		{"del table 4", id(false, 4), 0},
		{"del default", id(false, noIndex), 0},
		{"del default again", id(false, noIndex), api.NO_SUCH_ENTRY},
	})
	if n := len(f.identities()); n != 0 {
		t.Errorf("%d identity records left", n)
	}
}

func TestNAT44LBMappings(t *testing.T) {
	f := newNATFixture(t)
	two := []nat.Nat44LbAddrPort{{Addr: a4("10.1.0.1"), Port: 8080, Probability: 50}, {Addr: a4("10.1.0.2"), Port: 8080, Probability: 50}}
	lb := func(add bool, ext string, flags nat_types.NatConfigFlags, locals []nat.Nat44LbAddrPort) func(*natFixture) error {
		return lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: add, ExternalAddr: a4(ext), ExternalPort: 80, Protocol: 6,
			Flags: flags, Affinity: 10800, Tag: "default/web:http", Locals: locals})
	}
	local := func(add bool, ext, addr string) func(*natFixture) error {
		return lbLocal(nat.Nat44LbStaticMappingAddDelLocal{IsAdd: add, ExternalAddr: a4(ext), ExternalPort: 80, Protocol: 6,
			Local: nat.Nat44LbAddrPort{Addr: a4(addr), Port: 8080, Probability: 20}})
	}
	o2i := nat_types.NAT_IS_OUT2IN_ONLY
	f.run([]natStep{
		{"enable", enable(0, 0, 0), 0},
		// nat44_ed_add_lb_static_mapping: fewer than two locals.
		{"one local", lb(true, "192.0.2.1", o2i, two[:1]), api.INVALID_VALUE},
		// Unless out2in-only, the external address must be in the pool.
		{"external not pooled", lb(true, "192.0.2.1", 0, two), api.NO_SUCH_ENTRY},
		{"pool", addrRange("192.0.2.2", "192.0.2.2", true, 0), 0},
		{"external pooled", lb(true, "192.0.2.2", nat_types.NAT_IS_SELF_TWICE_NAT, two), 0},
		{"out2in-only", lb(true, "192.0.2.1", o2i|nat_types.NAT_IS_SELF_TWICE_NAT, two), 0},
		// The external check comes before the locals count.
		{"existing with one local", lb(true, "192.0.2.1", o2i, two[:1]), api.VALUE_EXIST},
		{"add local", local(true, "192.0.2.1", "10.1.0.3"), 0},
		{"add local again", local(true, "192.0.2.1", "10.1.0.3"), api.VALUE_EXIST},
		{"local of missing", local(true, "192.0.2.9", "10.1.0.3"), api.NO_SUCH_ENTRY},
		{"static", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.9"), ExternalIPAddress: a4("192.0.2.3"),
			Protocol: 6, LocalPort: 80, ExternalPort: 80, VrfID: noIndex}), 0},
		{"local of static", local(true, "192.0.2.3", "10.1.0.3"), api.INVALID_VALUE},
		{"lb del of static", lb(false, "192.0.2.3", 0, nil), api.INVALID_VALUE},
	})
	got := f.lbs()
	if len(got) != 2 {
		t.Fatalf("lb mappings: %d, want 2", len(got))
	}
	d := got[1]
	// send_nat44_lb_static_mapping_details does not fill in the affinity.
	if netip.AddrFrom4(d.ExternalAddr).String() != "192.0.2.1" || d.ExternalPort != 80 || d.Protocol != 6 ||
		d.Flags != o2i|nat_types.NAT_IS_SELF_TWICE_NAT || d.Tag != "default/web:http" || d.Affinity != 0 || d.LocalNum != 3 {
		t.Errorf("lb mapping %+v", d)
	}
	wantLocals := []nat.Nat44LbAddrPort{two[0], two[1], {Addr: a4("10.1.0.3"), Port: 8080, Probability: 20}}
	if !equalSlices(d.Locals, wantLocals) {
		t.Errorf("locals %+v, want %+v", d.Locals, wantLocals)
	}
	if n := len(f.statics()); n != 1 {
		t.Errorf("static dump lists %d records, want only the plain mapping", n)
	}
	f.run([]natStep{
		{"del local", local(false, "192.0.2.1", "10.1.0.1"), 0},
		{"del local again", local(false, "192.0.2.1", "10.1.0.1"), api.NO_SUCH_ENTRY},
		// nat44_ed_add_del_lb_static_mapping_local: never below two locals.
		{"del down to one", local(false, "192.0.2.1", "10.1.0.2"), api.UNSPECIFIED},
		{"lb del", lb(false, "192.0.2.1", o2i, nil), 0},
		{"lb del again", lb(false, "192.0.2.1", o2i, nil), api.NO_SUCH_ENTRY},
	})
	if got := f.lbs(); len(got) != 1 || netip.AddrFrom4(got[0].ExternalAddr).String() != "192.0.2.2" {
		t.Errorf("after deletes: %+v, want the 192.0.2.2 mapping only", got)
	}
}

func TestNAT44DisableClearsState(t *testing.T) {
	f := newNATFixture(t)
	two := []nat.Nat44LbAddrPort{{Addr: a4("10.1.0.1"), Port: 80, Probability: 1}, {Addr: a4("10.1.0.2"), Port: 80, Probability: 1}}
	f.run([]natStep{
		{"enable", enable(0, 0, 0), 0},
		{"inside", feature(eth0, true, nat_types.NAT_IS_INSIDE), 0},
		{"output", outputIf(eth1, true), 0},
		{"pool", addrRange("192.0.2.1", "192.0.2.2", true, 0), 0},
		{"twice pool", addrRange("192.0.2.9", "192.0.2.9", true, nat_types.NAT_IS_TWICE_NAT), 0},
		{"static", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.5"), ExternalIPAddress: a4("192.0.2.5"), Protocol: 6, LocalPort: 1, ExternalPort: 1, VrfID: noIndex}), 0},
		{"identity", identity(nat.Nat44AddDelIdentityMapping{IsAdd: true, IPAddress: a4("192.0.2.6"), Flags: nat_types.NAT_IS_ADDR_ONLY, VrfID: noIndex}), 0},
		{"lb", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4("192.0.2.1"), ExternalPort: 80, Protocol: 6, Locals: two}), 0},
		{"forwarding", forwarding(true), 0},
		{"disable", disable, 0},
	})
	if n := len(f.interfaces()) + len(f.addresses()) + len(f.statics()) + len(f.identities()) + len(f.lbs()); n != 0 {
		t.Errorf("%d records left after disable", n)
	}
	if idx, _, _ := f.outputIfs(0); len(idx) != 0 {
		t.Errorf("output interfaces left after disable: %v", idx)
	}
	// nat44_plugin_disable zeroes rconfig and forwarding, keeps the buckets.
	if rc := f.runningConfig(); rc.Sessions != 0 || rc.ForwardingEnabled || rc.TranslationBuckets != 32768 {
		t.Errorf("running config after disable = %+v", rc)
	}
	f.run([]natStep{
		{"enable again", enable(0, 0, 0), 0},
		// The same objects can be created again: nothing of them was left.
		{"static again", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.5"), ExternalIPAddress: a4("192.0.2.5"), Protocol: 6, LocalPort: 1, ExternalPort: 1, VrfID: noIndex}), 0},
		{"inside again", feature(eth1, true, nat_types.NAT_IS_INSIDE), 0},
		// An identity mapping only in table 7: nat44_ed_del_static_mappings
		// looks for table 0 and fails, which disable reports as a bug.
		{"identity table 7", identity(nat.Nat44AddDelIdentityMapping{IsAdd: true, IPAddress: a4("192.0.2.6"), Flags: nat_types.NAT_IS_ADDR_ONLY, VrfID: 7}), 0},
		{"disable", disable, api.BUG},
		{"disable again", disable, api.FEATURE_ALREADY_DISABLED},
	})
}

// The lookups packet evaluation will use, on state built through the API.
func TestNAT44Lookups(t *testing.T) {
	f := newNATFixture(t)
	two := []nat.Nat44LbAddrPort{{Addr: a4("10.1.0.1"), Port: 8080, Probability: 30, VrfID: 0}, {Addr: a4("10.1.0.2"), Port: 8080, Probability: 70}}
	f.run([]natStep{
		{"enable", enable(0, 0, 0), 0},
		{"inside", feature(eth0, true, nat_types.NAT_IS_INSIDE), 0},
		{"outside", feature(eth0, true, 0), 0},
		{"output", outputIf(eth1, true), 0},
		{"lb", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4("10.96.0.1"), ExternalPort: 80, Protocol: 6,
			Flags: nat_types.NAT_IS_OUT2IN_ONLY, Locals: two}), 0},
		{"addr-only", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.9"), ExternalIPAddress: a4("192.0.2.9"),
			Flags: nat_types.NAT_IS_ADDR_ONLY, VrfID: noIndex}), 0},
	})
	f.sim.mu.Lock()
	defer f.sim.mu.Unlock()
	n := &f.sim.st.nat
	ip := netip.MustParseAddr
	tests := []struct {
		name     string
		got      *staticMapping
		wantExt  string // "" for no match
		wantPort uint16
	}{
		{"out2in exact", n.matchOut2In(ip("10.96.0.1"), 80, 6), "10.96.0.1", 80},
		{"out2in other port", n.matchOut2In(ip("10.96.0.1"), 81, 6), "", 0},
		{"out2in udp", n.matchOut2In(ip("10.96.0.1"), 80, 17), "", 0},
		{"out2in address-only", n.matchOut2In(ip("192.0.2.9"), 443, 6), "192.0.2.9", 0},
		// Out2in-only LB locals have no in2out key.
		{"in2out lb local", n.matchIn2Out(ip("10.1.0.1"), 8080, 0, 6), "", 0},
		{"in2out address-only", n.matchIn2Out(ip("10.1.0.9"), 5555, 0, 17), "192.0.2.9", 0},
		{"in2out other table", n.matchIn2Out(ip("10.1.0.9"), 5555, 8, 17), "192.0.2.9", 0},
	}
	for _, tt := range tests {
		switch {
		case tt.wantExt == "" && tt.got != nil:
			t.Errorf("%s: matched %v, want none", tt.name, tt.got.external)
		case tt.wantExt != "" && (tt.got == nil || tt.got.external.String() != tt.wantExt || tt.got.externalPort != tt.wantPort):
			t.Errorf("%s: matched %+v, want %s:%d", tt.name, tt.got, tt.wantExt, tt.wantPort)
		}
	}
	if m := n.matchOut2In(ip("10.96.0.1"), 80, 6); m != nil {
		var prefixes []uint32
		for _, l := range m.locals.values() {
			prefixes = append(prefixes, l.prefix)
		}
		if !equalSlices(prefixes, []uint32{30, 100}) || !m.is(smOut2InOnly) {
			t.Errorf("lb prefixes %v out2in-only %v, want [30 100] true", prefixes, m.is(smOut2InOnly))
		}
	}
	for _, tt := range []struct {
		idx                     uint32
		inside, outside, output bool
	}{{eth0, true, true, false}, {eth1, false, false, true}, {0, false, false, false}} {
		if i, o, out := n.roles(tt.idx); i != tt.inside || o != tt.outside || out != tt.output {
			t.Errorf("roles(%d) = %v %v %v, want %v %v %v", tt.idx, i, o, out, tt.inside, tt.outside, tt.output)
		}
	}
}
