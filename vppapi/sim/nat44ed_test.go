package sim

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
)

// eth1 is the second start-up NIC of the NAT fixture.
const eth1 = 2

type natFixture struct {
	t   *testing.T
	ctx context.Context
	sim *Sim
	nat nat.RPCService
	ifs interfaces.RPCService
}

func newNATFixture(t *testing.T) *natFixture {
	t.Helper()
	s, conn, _ := startSim(t, Options{Interfaces: []InterfaceSpec{{Name: "eth0"}, {Name: "eth1"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return &natFixture{t: t, ctx: ctx, sim: s, nat: nat.NewServiceClient(conn), ifs: interfaces.NewServiceClient(conn)}
}

// natStep is one request of a sequence and the retval VPP gives it.
type natStep struct {
	name string
	do   func(f *natFixture) error
	want api.VPPApiError
}

func (f *natFixture) run(steps []natStep) {
	f.t.Helper()
	for _, st := range steps {
		if got := api.VPPApiError(retval(f.t, st.do(f))); got != st.want {
			f.t.Errorf("%s: retval %d (%v), want %d (%v)", st.name, int32(got), got, int32(st.want), st.want)
		}
	}
}

func a4(s string) ip_types.IP4Address { return ip_types.IP4Address(netip.MustParseAddr(s).As4()) }

func enable(sessions, inside, outside uint32) func(*natFixture) error {
	return func(f *natFixture) error {
		_, err := f.nat.Nat44EdPluginEnableDisable(f.ctx, &nat.Nat44EdPluginEnableDisable{
			Enable: true, Sessions: sessions, InsideVrf: inside, OutsideVrf: outside})
		return err
	}
}

func disable(f *natFixture) error {
	_, err := f.nat.Nat44EdPluginEnableDisable(f.ctx, &nat.Nat44EdPluginEnableDisable{})
	return err
}

func feature(idx uint32, add bool, flags nat_types.NatConfigFlags) func(*natFixture) error {
	return func(f *natFixture) error {
		_, err := f.nat.Nat44InterfaceAddDelFeature(f.ctx, &nat.Nat44InterfaceAddDelFeature{
			IsAdd: add, Flags: flags, SwIfIndex: interface_types.InterfaceIndex(idx)})
		return err
	}
}

func outputIf(idx uint32, add bool) func(*natFixture) error {
	return func(f *natFixture) error {
		_, err := f.nat.Nat44EdAddDelOutputInterface(f.ctx, &nat.Nat44EdAddDelOutputInterface{
			IsAdd: add, SwIfIndex: interface_types.InterfaceIndex(idx)})
		return err
	}
}

func addrRange(first, last string, add bool, flags nat_types.NatConfigFlags) func(*natFixture) error {
	return func(f *natFixture) error {
		_, err := f.nat.Nat44AddDelAddressRange(f.ctx, &nat.Nat44AddDelAddressRange{
			FirstIPAddress: a4(first), LastIPAddress: a4(last), VrfID: noIndex, IsAdd: add, Flags: flags})
		return err
	}
}

func staticMap(m nat.Nat44AddDelStaticMappingV2) func(*natFixture) error {
	return func(f *natFixture) error {
		if m.ExternalSwIfIndex == 0 {
			m.ExternalSwIfIndex = interface_types.InterfaceIndex(noIndex)
		}
		_, err := f.nat.Nat44AddDelStaticMappingV2(f.ctx, &m)
		return err
	}
}

func identity(m nat.Nat44AddDelIdentityMapping) func(*natFixture) error {
	return func(f *natFixture) error {
		if m.SwIfIndex == 0 {
			m.SwIfIndex = interface_types.InterfaceIndex(noIndex)
		}
		_, err := f.nat.Nat44AddDelIdentityMapping(f.ctx, &m)
		return err
	}
}

func lbMap(m nat.Nat44AddDelLbStaticMapping) func(*natFixture) error {
	return func(f *natFixture) error {
		m.LocalNum = uint32(len(m.Locals))
		_, err := f.nat.Nat44AddDelLbStaticMapping(f.ctx, &m)
		return err
	}
}

func lbLocal(m nat.Nat44LbStaticMappingAddDelLocal) func(*natFixture) error {
	return func(f *natFixture) error {
		_, err := f.nat.Nat44LbStaticMappingAddDelLocal(f.ctx, &m)
		return err
	}
}

func forwarding(on bool) func(*natFixture) error {
	return func(f *natFixture) error {
		_, err := f.nat.Nat44ForwardingEnableDisable(f.ctx, &nat.Nat44ForwardingEnableDisable{Enable: on})
		return err
	}
}

// drain reads a dump stream to its end.
func drain[T any](t *testing.T, recv func() (T, error), err error) []T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return recvAll(t, recv)
}

func (f *natFixture) interfaces() []*nat.Nat44InterfaceDetails {
	s, err := f.nat.Nat44InterfaceDump(f.ctx, &nat.Nat44InterfaceDump{})
	return drain(f.t, func() (*nat.Nat44InterfaceDetails, error) { return s.Recv() }, err)
}

func (f *natFixture) addresses() []*nat.Nat44AddressDetails {
	s, err := f.nat.Nat44AddressDump(f.ctx, &nat.Nat44AddressDump{})
	return drain(f.t, func() (*nat.Nat44AddressDetails, error) { return s.Recv() }, err)
}

func (f *natFixture) statics() []*nat.Nat44StaticMappingDetails {
	s, err := f.nat.Nat44StaticMappingDump(f.ctx, &nat.Nat44StaticMappingDump{})
	return drain(f.t, func() (*nat.Nat44StaticMappingDetails, error) { return s.Recv() }, err)
}

func (f *natFixture) identities() []*nat.Nat44IdentityMappingDetails {
	s, err := f.nat.Nat44IdentityMappingDump(f.ctx, &nat.Nat44IdentityMappingDump{})
	return drain(f.t, func() (*nat.Nat44IdentityMappingDetails, error) { return s.Recv() }, err)
}

func (f *natFixture) lbs() []*nat.Nat44LbStaticMappingDetails {
	s, err := f.nat.Nat44LbStaticMappingDump(f.ctx, &nat.Nat44LbStaticMappingDump{})
	return drain(f.t, func() (*nat.Nat44LbStaticMappingDetails, error) { return s.Recv() }, err)
}

// outputIfs calls nat44_ed_output_interface_get and returns the indexes
// and the reply.
func (f *natFixture) outputIfs(cursor uint32) ([]uint32, *nat.Nat44EdOutputInterfaceGetReply, api.VPPApiError) {
	f.t.Helper()
	s, err := f.nat.Nat44EdOutputInterfaceGet(f.ctx, &nat.Nat44EdOutputInterfaceGet{Cursor: cursor})
	if err != nil {
		f.t.Fatal(err)
	}
	var idx []uint32
	for {
		d, rep, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return idx, rep, 0
		}
		if err != nil {
			return idx, rep, api.VPPApiError(retval(f.t, err))
		}
		idx = append(idx, uint32(d.SwIfIndex))
	}
}

func (f *natFixture) runningConfig() *nat.Nat44ShowRunningConfigReply {
	f.t.Helper()
	r, err := f.nat.Nat44ShowRunningConfig(f.ctx, &nat.Nat44ShowRunningConfig{})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func TestNAT44EnableDisable(t *testing.T) {
	f := newNATFixture(t)
	f.run([]natStep{
		// vl_api_nat44_ed_plugin_enable_disable_t_handler refuses the
		// endpoint-independent modes before anything else.
		{"enable static-mapping-only", func(f *natFixture) error {
			_, err := f.nat.Nat44EdPluginEnableDisable(f.ctx, &nat.Nat44EdPluginEnableDisable{Enable: true, Flags: nat.NAT44_IS_STATIC_MAPPING_ONLY})
			return err
		}, api.UNSUPPORTED},
		{"enable connection tracking", func(f *natFixture) error {
			_, err := f.nat.Nat44EdPluginEnableDisable(f.ctx, &nat.Nat44EdPluginEnableDisable{Enable: true, Flags: nat.NAT44_IS_CONNECTION_TRACKING})
			return err
		}, api.UNSUPPORTED},
		// nat44_plugin_disable: fail_if_disabled.
		{"disable while disabled", disable, api.FEATURE_ALREADY_DISABLED},
		// nat44_ed_forwarding_enable_disable sets the flag whatever the state.
		{"forwarding while disabled", forwarding(true), 0},
		{"enable", enable(0, 0, 0), 0},
		// nat44_plugin_enable: fail_if_enabled.
		{"enable twice", enable(0, 0, 0), api.FEATURE_ALREADY_ENABLED},
	})
	rc := f.runningConfig()
	// nat44_plugin_enable: 0 sessions means 63*1024, buckets from
	// nat_calc_bihash_buckets (64512/2.5 = 25804 -> 32768), forwarding reset,
	// nat_reset_timeouts defaults.
	if rc.Sessions != 64512 || rc.TranslationBuckets != 32768 || rc.ForwardingEnabled ||
		rc.Timeouts != (nat_types.NatTimeouts{UDP: 300, TCPEstablished: 7440, TCPTransitory: 240, ICMP: 60}) ||
		rc.Flags != nat.NAT44_IS_ENDPOINT_DEPENDENT {
		t.Errorf("running config after enable = %+v", rc)
	}
	f.run([]natStep{
		{"forwarding on", forwarding(true), 0},
		{"disable", disable, 0},
		{"enable with tables", enable(1000, 5, 7), 0},
	})
	rc = f.runningConfig()
	if rc.InsideVrf != 5 || rc.OutsideVrf != 7 || rc.Sessions != 1000 || rc.TranslationBuckets != 512 || rc.ForwardingEnabled {
		t.Errorf("running config after re-enable = %+v, want inside 5 outside 7 sessions 1000 buckets 512 forwarding off", rc)
	}
	f.run([]natStep{{"forwarding on", forwarding(true), 0}})
	if !f.runningConfig().ForwardingEnabled {
		t.Error("forwarding_enabled false after nat44_forwarding_enable_disable(1)")
	}
}

// Every nat44_ed.c function behind these messages starts with
// "if (!sm->enabled) return VNET_API_ERROR_UNSUPPORTED", except
// nat44_ed_del_address, which finds nothing instead.
func TestNAT44Disabled(t *testing.T) {
	f := newNATFixture(t)
	f.run([]natStep{
		{"feature add", feature(eth0, true, nat_types.NAT_IS_INSIDE), api.UNSUPPORTED},
		{"feature del", feature(eth0, false, nat_types.NAT_IS_INSIDE), api.UNSUPPORTED},
		// VALIDATE_SW_IF_INDEX runs before the enabled check.
		{"feature bad index", feature(99, true, nat_types.NAT_IS_INSIDE), api.INVALID_SW_IF_INDEX},
		{"output add", outputIf(eth0, true), api.UNSUPPORTED},
		{"output del", outputIf(eth0, false), api.UNSUPPORTED},
		{"output bad index", outputIf(99, true), api.INVALID_SW_IF_INDEX},
		{"address add", addrRange("10.0.0.1", "10.0.0.1", true, 0), api.UNSUPPORTED},
		{"address del", addrRange("10.0.0.1", "10.0.0.1", false, 0), api.NO_SUCH_ENTRY},
		{"static add", staticMap(nat.Nat44AddDelStaticMappingV2{IsAdd: true, LocalIPAddress: a4("10.1.0.1"), ExternalIPAddress: a4("10.0.0.1"), Protocol: 6, LocalPort: 80, ExternalPort: 80}), api.UNSUPPORTED},
		{"static del", staticMap(nat.Nat44AddDelStaticMappingV2{LocalIPAddress: a4("10.1.0.1"), ExternalIPAddress: a4("10.0.0.1"), Protocol: 6, LocalPort: 80, ExternalPort: 80}), api.UNSUPPORTED},
		{"identity add", identity(nat.Nat44AddDelIdentityMapping{IsAdd: true, IPAddress: a4("10.0.0.1"), Flags: nat_types.NAT_IS_ADDR_ONLY}), api.UNSUPPORTED},
		{"identity del", identity(nat.Nat44AddDelIdentityMapping{IPAddress: a4("10.0.0.1"), Flags: nat_types.NAT_IS_ADDR_ONLY}), api.UNSUPPORTED},
		{"lb add", lbMap(nat.Nat44AddDelLbStaticMapping{IsAdd: true, ExternalAddr: a4("10.0.0.1"), ExternalPort: 80, Protocol: 6,
			Locals: []nat.Nat44LbAddrPort{{Addr: a4("10.1.0.1"), Port: 80}, {Addr: a4("10.1.0.2"), Port: 80}}}), api.UNSUPPORTED},
		{"lb del", lbMap(nat.Nat44AddDelLbStaticMapping{ExternalAddr: a4("10.0.0.1"), ExternalPort: 80, Protocol: 6}), api.UNSUPPORTED},
		{"lb local", lbLocal(nat.Nat44LbStaticMappingAddDelLocal{IsAdd: true, ExternalAddr: a4("10.0.0.1"), ExternalPort: 80, Protocol: 6}), api.UNSUPPORTED},
	})
	if n := len(f.interfaces()) + len(f.addresses()) + len(f.statics()) + len(f.identities()) + len(f.lbs()); n != 0 {
		t.Errorf("dumps of a disabled plugin returned %d records", n)
	}
	us, err := f.nat.Nat44UserSessionV3Dump(f.ctx, &nat.Nat44UserSessionV3Dump{IPAddress: a4("10.1.0.1")})
	if got := drain(t, func() (*nat.Nat44UserSessionV3Details, error) { return us.Recv() }, err); len(got) != 0 {
		t.Errorf("user sessions = %d records, want none", len(got))
	}
	ud, err := f.nat.Nat44UserDump(f.ctx, &nat.Nat44UserDump{})
	if got := drain(t, func() (*nat.Nat44UserDetails, error) { return ud.Recv() }, err); len(got) != 0 {
		t.Errorf("users = %d records, want none", len(got))
	}
	if _, _, rv := f.outputIfs(0); rv != 0 {
		t.Errorf("output_interface_get with no interfaces: retval %v, want 0", rv)
	}
}

func TestNAT44Interfaces(t *testing.T) {
	f := newNATFixture(t)
	type want struct {
		idx   uint32
		flags nat_types.NatConfigFlags
	}
	in, out := nat_types.NAT_IS_INSIDE, nat_types.NAT_IS_OUTSIDE
	steps := []struct {
		step natStep
		dump []want // nil: not checked
	}{
		{natStep{"enable", enable(0, 0, 0), 0}, []want{}},
		{natStep{"bad index", feature(99, true, in), api.INVALID_SW_IF_INDEX}, []want{}},
		{natStep{"eth0 inside", feature(eth0, true, in), 0}, []want{{eth0, in}}},
		// nat44_ed_add_interface: the same role again is no error.
		{natStep{"eth0 inside again", feature(eth0, true, in), 0}, []want{{eth0, in}}},
		// Only NAT_IS_INSIDE is read: inside|outside means inside.
		{natStep{"eth1 both flags", feature(eth1, true, in|out), 0}, []want{{eth0, in}, {eth1, in}}},
		{natStep{"eth0 outside", feature(eth0, true, 0), 0}, []want{{eth0, in | out}, {eth1, in}}},
		// nat44_ed_del_interface: with both roles, only the named one goes.
		{natStep{"eth0 del inside", feature(eth0, false, in), 0}, []want{{eth0, out}, {eth1, in}}},
		// With one role, the interface goes whichever role is named.
		{natStep{"eth0 del inside of outside-only", feature(eth0, false, in), 0}, []want{{eth1, in}}},
		{natStep{"eth0 del again", feature(eth0, false, 0), api.NO_SUCH_ENTRY}, []want{{eth1, in}}},
		// nat44_ed_add_output_interface refuses interfaces with the feature,
		// and nat44_ed_add_interface output-feature interfaces.
		{natStep{"output on featured eth1", outputIf(eth1, true), api.VALUE_EXIST}, nil},
		{natStep{"output on eth0", outputIf(eth0, true), 0}, []want{{eth1, in}}},
		{natStep{"output on eth0 again", outputIf(eth0, true), api.VALUE_EXIST}, nil},
		{natStep{"feature on output eth0", feature(eth0, true, in), api.VALUE_EXIST}, []want{{eth1, in}}},
	}
	for _, st := range steps {
		f.run([]natStep{st.step})
		if st.dump == nil {
			continue
		}
		var got []want
		for _, d := range f.interfaces() {
			got = append(got, want{uint32(d.SwIfIndex), d.Flags})
		}
		if !equalSlices(got, st.dump) {
			t.Errorf("%s: interfaces %v, want %v", st.step.name, got, st.dump)
		}
	}
	if idx, rep, rv := f.outputIfs(0); rv != 0 || len(idx) != 1 || idx[0] != eth0 || rep.Cursor != noIndex {
		t.Errorf("output_interface_get = %v cursor %d retval %v, want [eth0] cursor ~0", idx, rep.Cursor, rv)
	}
	// REPLY_AND_DETAILS_MACRO: a cursor on a free slot with nothing after it.
	if idx, _, rv := f.outputIfs(5); rv != api.INVALID_VALUE || len(idx) != 0 {
		t.Errorf("output_interface_get(5) = %v retval %v, want nothing and INVALID_VALUE", idx, rv)
	}
	f.run([]natStep{
		{"output del", outputIf(eth0, false), 0},
		{"output del again", outputIf(eth0, false), api.NO_SUCH_ENTRY},
	})
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNAT44AddressRange(t *testing.T) {
	f := newNATFixture(t)
	type pooled struct {
		ip    string
		twice bool
	}
	tw := nat_types.NAT_IS_TWICE_NAT
	steps := []struct {
		step natStep
		want []pooled
	}{
		{natStep{"enable", enable(0, 0, 0), 0}, nil},
		{natStep{"add .1-.3", addrRange("10.0.0.1", "10.0.0.3", true, 0), 0}, []pooled{{"10.0.0.1", false}, {"10.0.0.2", false}, {"10.0.0.3", false}}},
		// Added one by one, stopping at the first existing one, keeping the rest.
		{natStep{"add .0-.1 overlapping", addrRange("10.0.0.0", "10.0.0.1", true, 0), api.VALUE_EXIST},
			[]pooled{{"10.0.0.1", false}, {"10.0.0.2", false}, {"10.0.0.3", false}, {"10.0.0.0", false}}},
		// The twice-NAT pool is a separate list.
		{natStep{"add .1 twice-nat", addrRange("10.0.0.1", "10.0.0.1", true, tw), 0},
			[]pooled{{"10.0.0.1", false}, {"10.0.0.2", false}, {"10.0.0.3", false}, {"10.0.0.0", false}, {"10.0.0.1", true}}},
		// vec_del1 moves the last address into the freed place.
		{natStep{"del .2", addrRange("10.0.0.2", "10.0.0.2", false, 0), 0},
			[]pooled{{"10.0.0.1", false}, {"10.0.0.0", false}, {"10.0.0.3", false}, {"10.0.0.1", true}}},
		{natStep{"del .2 again", addrRange("10.0.0.2", "10.0.0.2", false, 0), api.NO_SUCH_ENTRY}, nil},
		{natStep{"del .3 from twice-nat pool", addrRange("10.0.0.3", "10.0.0.3", false, tw), api.NO_SUCH_ENTRY}, nil},
		// last before first: the 32-bit count is not positive, nothing happens.
		{natStep{"add reversed", addrRange("10.0.0.9", "10.0.0.5", true, 0), 0},
			[]pooled{{"10.0.0.1", false}, {"10.0.0.0", false}, {"10.0.0.3", false}, {"10.0.0.1", true}}},
	}
	for _, st := range steps {
		f.run([]natStep{st.step})
		if st.want == nil {
			continue
		}
		var got []pooled
		for _, d := range f.addresses() {
			got = append(got, pooled{netip.AddrFrom4(d.IPAddress).String(), d.Flags&tw != 0})
			if d.VrfID != noIndex {
				t.Errorf("%s: address %v vrf %d, want ~0", st.step.name, d.IPAddress, d.VrfID)
			}
		}
		if !equalSlices(got, st.want) {
			t.Errorf("%s: addresses %v, want %v", st.step.name, got, st.want)
		}
	}
}
