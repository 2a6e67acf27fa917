package nat44ed_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// The node: an uplink with a client beside it, three pod interfaces each
// with one backend address, and one for an operator.
const (
	uplink, podA, podB, podC, opIf = 1, 2, 3, 4, 5

	clientIP = "192.168.10.9"
	backendA = "10.1.1.2"
	backendB = "10.1.2.2"
	backendC = "10.1.3.2"
	twiceIP  = "10.1.255.1"
)

var nodeInterfaces = []sim.InterfaceSpec{
	{Name: "eth0", Addresses: []string{"192.168.10.5/24"}, Up: true},
	{Name: "pod-a", Addresses: []string{"10.1.1.1/24"}, Up: true},
	{Name: "pod-b", Addresses: []string{"10.1.2.1/24"}, Up: true},
	{Name: "pod-c", Addresses: []string{"10.1.3.1/24"}, Up: true},
	{Name: "op0", Addresses: []string{"172.16.0.1/24"}, Up: true},
}

// nodeBase is the base kube-vpp wants on that node: pods inside and
// outside, the uplink outside.
var nodeBase = nat44ed.Base{
	Interfaces: []nat44ed.Interface{
		{SwIfIndex: uplink, Outside: true},
		{SwIfIndex: podA, Inside: true, Outside: true},
		{SwIfIndex: podB, Inside: true, Outside: true},
		{SwIfIndex: podC, Inside: true, Outside: true},
	},
	TwiceNATAddresses: []netip.Addr{netip.MustParseAddr(twiceIP)},
}

func start(t *testing.T) (*simtest.Env, *nat44ed.Driver) {
	t.Helper()
	env := simtest.Start(t, sim.Options{Interfaces: nodeInterfaces})
	return env, nat44ed.New(env.Client, zaptest.NewLogger(t))
}

// configured starts a node whose base is programmed.
func configured(t *testing.T) (*simtest.Env, *nat44ed.Driver) {
	t.Helper()
	env, d := start(t)
	if err := d.Configure(context.Background(), nodeBase); err != nil {
		t.Fatal(err)
	}
	return env, d
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// local is a backend on port 8080 with probability 50, or p given as "ip:port@p".
func local(s string) nat44ed.Local {
	p := uint8(50)
	if at := strings.IndexByte(s, '@'); at >= 0 {
		n, _ := strconv.Atoi(s[at+1:])
		p, s = uint8(n), s[:at]
	}
	if !strings.Contains(s, ":") {
		s += ":8080"
	}
	return nat44ed.Local{Addr: ap(s), Probability: p}
}

// mapping is service svc's TCP mapping of ext to the locals, tagged as
// services/ tags it (namespace/name:port).
func mapping(svc, ext string, locals ...string) nat44ed.Mapping {
	m := nat44ed.Mapping{Tag: tag.New(nat44ed.KindService, svc+":"+ext), External: ap(ext), Protocol: nat44ed.TCP}
	for _, l := range locals {
		m.Locals = append(m.Locals, local(l))
	}
	return m
}

// vppMappings reads every static and load-balanced mapping VPP holds, in
// the words of nat44_static_mapping_details / nat44_lb_static_mapping_details,
// by external address and port.
func vppMappings(t *testing.T, env *simtest.Env) map[string]string {
	t.Helper()
	ctx := context.Background()
	rpc := nat.NewServiceClient(env.Client)
	out := map[string]string{}
	ss, err := rpc.Nat44StaticMappingDump(ctx, &nat.Nat44StaticMappingDump{})
	if err != nil {
		t.Fatal(err)
	}
	statics, err := vppapi.Collect(ss.Recv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range statics {
		ext := netip.AddrPortFrom(netip.AddrFrom4(s.ExternalIPAddress), s.ExternalPort).String()
		out[ext] = fmt.Sprintf("static proto %d flags %s tag %q -> %s vrf %d", s.Protocol, flagString(s.Flags), s.Tag,
			netip.AddrPortFrom(netip.AddrFrom4(s.LocalIPAddress), s.LocalPort), s.VrfID)
	}
	ls, err := rpc.Nat44LbStaticMappingDump(ctx, &nat.Nat44LbStaticMappingDump{})
	if err != nil {
		t.Fatal(err)
	}
	lbs, err := vppapi.Collect(ls.Recv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range lbs {
		ext := netip.AddrPortFrom(netip.AddrFrom4(s.ExternalAddr), s.ExternalPort).String()
		var locals []string
		for _, l := range s.Locals {
			locals = append(locals, fmt.Sprintf("%s@%d", netip.AddrPortFrom(netip.AddrFrom4(l.Addr), l.Port), l.Probability))
		}
		slices.Sort(locals)
		out[ext] = fmt.Sprintf("lb proto %d flags %s tag %q -> %s", s.Protocol, flagString(s.Flags), s.Tag, strings.Join(locals, ","))
	}
	return out
}

// describe is how vppMappings shows m once kube-vpp programmed it:
// out2in-only with the twice-NAT flags asked, table 0.
func describe(m nat44ed.Mapping) string {
	flags := nat_types.NAT_IS_OUT2IN_ONLY
	if m.TwiceNAT {
		flags |= nat_types.NAT_IS_TWICE_NAT
	}
	if m.SelfTwiceNAT {
		flags |= nat_types.NAT_IS_SELF_TWICE_NAT
	}
	if len(m.Locals) == 1 {
		return fmt.Sprintf("static proto %d flags %s tag %q -> %s vrf 0", m.Protocol, flagString(flags), m.Tag, m.Locals[0].Addr)
	}
	var locals []string
	for _, l := range m.Locals {
		locals = append(locals, fmt.Sprintf("%s@%d", l.Addr, l.Probability))
	}
	slices.Sort(locals)
	return fmt.Sprintf("lb proto %d flags %s tag %q -> %s", m.Protocol, flagString(flags), m.Tag, strings.Join(locals, ","))
}

func flagString(f nat_types.NatConfigFlags) string {
	var names []string
	for _, n := range []struct {
		f    nat_types.NatConfigFlags
		name string
	}{{nat_types.NAT_IS_OUT2IN_ONLY, "out2in-only"}, {nat_types.NAT_IS_TWICE_NAT, "twice-nat"},
		{nat_types.NAT_IS_SELF_TWICE_NAT, "self-twice-nat"}, {nat_types.NAT_IS_ADDR_ONLY, "addr-only"}} {
		if f&n.f != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, "|")
}

// wantVPP is vppMappings of exactly ms plus extra (already described).
func wantVPP(extra map[string]string, ms ...nat44ed.Mapping) map[string]string {
	out := map[string]string{}
	for k, v := range extra {
		out[k] = v
	}
	for _, m := range ms {
		out[m.External.String()] = describe(m)
	}
	return out
}

func diffMaps(got, want map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			fmt.Fprintf(&b, "\n  %s: got %q\n  %s  want %q", k, got[k], strings.Repeat(" ", len(k)), want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "\n  %s: unexpected %q", k, got[k])
		}
	}
	return b.String()
}

// writes runs f and returns the number of write calls it sent.
func writes(env *simtest.Env, f func()) int {
	before := env.Writes()
	f()
	return env.Writes() - before
}
