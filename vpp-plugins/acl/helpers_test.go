package acl_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	vppacl "go.fd.io/govpp/binapi/acl"
	"go.fd.io/govpp/binapi/acl_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/addr"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// The node: an uplink with a client beside it and three pod interfaces,
// each with one pod address (.2) in its own /24.
const (
	uplink, podA, podB, podC = 1, 2, 3, 4

	clientIP = "192.168.10.9"
	podAIP   = "10.1.1.2"
	podBIP   = "10.1.2.2"
)

var nodeInterfaces = []sim.InterfaceSpec{
	{Name: "eth0", Addresses: []string{"192.168.10.5/24"}, Up: true},
	{Name: "pod-a", Addresses: []string{"10.1.1.1/24"}, Up: true},
	{Name: "pod-b", Addresses: []string{"10.1.2.1/24"}, Up: true},
	{Name: "pod-c", Addresses: []string{"10.1.3.1/24"}, Up: true},
}

func start(t *testing.T, ifs []sim.InterfaceSpec) (*simtest.Env, *acl.Driver) {
	t.Helper()
	env := simtest.Start(t, sim.Options{Interfaces: ifs})
	return env, acl.New(env.Client, zaptest.NewLogger(t))
}

// table is the kube-vpp ACL with key as its content hash stand-in.
func table(key string, rules ...acl.Rule) acl.ACL {
	return acl.ACL{Tag: tag.New(acl.KindTable, key), Rules: rules}
}

// rule matches src -> dst, any source port; dport is none (any), one port
// or first and last.
func rule(action acl.Action, src, dst string, proto uint8, dport ...uint16) acl.Rule {
	r := acl.Rule{Action: action, Src: netip.MustParsePrefix(src), Dst: netip.MustParsePrefix(dst), Protocol: proto,
		SrcPorts: acl.AnyPort, DstPorts: acl.AnyPort}
	switch len(dport) {
	case 1:
		r.DstPorts = acl.PortRange{First: dport[0], Last: dport[0]}
	case 2:
		r.DstPorts = acl.PortRange{First: dport[0], Last: dport[1]}
	}
	return r
}

// denyAll4 denies every IPv4 packet.
var denyAll4 = rule(acl.Deny, "0.0.0.0/0", "0.0.0.0/0", 0)

// wantRule is how acl_details shows r once programmed: the fields as
// given, TCP flags mask and value 0 (copy_acl_rule_to_api_rule).
func wantRule(r acl.Rule) string {
	return fmt.Sprintf("action %d %s -> %s proto %d sport %d-%d dport %d-%d flags 0/0", uint8(r.Action), r.Src, r.Dst,
		r.Protocol, r.SrcPorts.First, r.SrcPorts.Last, r.DstPorts.First, r.DstPorts.Last)
}

func apiRule(r acl_types.ACLRule) string {
	return fmt.Sprintf("action %d %s -> %s proto %d sport %d-%d dport %d-%d flags %d/%d", r.IsPermit,
		addr.ToPrefix(r.SrcPrefix), addr.ToPrefix(r.DstPrefix), r.Proto, r.SrcportOrIcmptypeFirst, r.SrcportOrIcmptypeLast,
		r.DstportOrIcmpcodeFirst, r.DstportOrIcmpcodeLast, r.TCPFlagsMask, r.TCPFlagsValue)
}

// wantACLs is what vppState.acls holds for exactly these ACLs.
func wantACLs(acls ...acl.ACL) map[string]string {
	out := map[string]string{}
	for _, a := range acls {
		rs := make([]string, len(a.Rules))
		for i, r := range a.Rules {
			rs[i] = wantRule(r)
		}
		out[a.Tag] = strings.Join(rs, "; ")
	}
	return out
}

// vppState is what VPP holds, by tag: every ACL (acl_dump) and every
// non-empty interface list (acl_interface_list_dump).
type vppState struct {
	acls  map[string]string // tag -> rules; a tag held twice is an error
	index map[string]uint32 // tag -> acl_index
	lists map[uint32]string // sw_if_index -> "in [tags] out [tags]"
}

func readVPP(t *testing.T, env *simtest.Env) vppState {
	t.Helper()
	ctx := context.Background()
	rpc := vppacl.NewServiceClient(env.Client)
	s := vppState{acls: map[string]string{}, index: map[string]uint32{}, lists: map[uint32]string{}}
	ds, err := rpc.ACLDump(ctx, &vppacl.ACLDump{ACLIndex: ^uint32(0)})
	if err != nil {
		t.Fatal(err)
	}
	details, err := vppapi.Collect(ds.Recv)
	if err != nil {
		t.Fatal(err)
	}
	tagOf := map[uint32]string{}
	for _, d := range details {
		if _, dup := s.acls[d.Tag]; dup {
			t.Errorf("VPP holds tag %q twice", d.Tag)
		}
		rs := make([]string, len(d.R))
		for i, r := range d.R {
			rs[i] = apiRule(r)
		}
		s.acls[d.Tag], s.index[d.Tag], tagOf[d.ACLIndex] = strings.Join(rs, "; "), d.ACLIndex, d.Tag
	}
	ls, err := rpc.ACLInterfaceListDump(ctx, &vppacl.ACLInterfaceListDump{SwIfIndex: interface_types.InterfaceIndex(^uint32(0))})
	if err != nil {
		t.Fatal(err)
	}
	lists, err := vppapi.Collect(ls.Recv)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		if len(l.Acls) == 0 {
			continue
		}
		names := make([]string, len(l.Acls))
		for i, idx := range l.Acls {
			names[i] = tagOf[idx]
		}
		s.lists[uint32(l.SwIfIndex)] = describeLists(names[:l.NInput], names[l.NInput:])
	}
	return s
}

// apiRules are rs as an operator or an older agent would send them.
func apiRules(rs []acl.Rule) []acl_types.ACLRule {
	out := make([]acl_types.ACLRule, len(rs))
	for i, r := range rs {
		out[i] = acl_types.ACLRule{IsPermit: acl_types.ACLAction(r.Action), SrcPrefix: addr.FromPrefix(r.Src),
			DstPrefix: addr.FromPrefix(r.Dst), Proto: ip_types.IPProto(r.Protocol),
			SrcportOrIcmptypeFirst: r.SrcPorts.First, SrcportOrIcmptypeLast: r.SrcPorts.Last,
			DstportOrIcmpcodeFirst: r.DstPorts.First, DstportOrIcmpcodeLast: r.DstPorts.Last}
	}
	return out
}

func describeLists(in, out []string) string {
	return fmt.Sprintf("in %q out %q", in, out)
}

func tags(acls ...acl.ACL) []string {
	out := make([]string, len(acls))
	for i, a := range acls {
		out[i] = a.Tag
	}
	return out
}

func diffMaps[K comparable, V comparable](got, want map[K]V) string {
	var b strings.Builder
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			fmt.Fprintf(&b, "\n  %v: got %v\n  %v  want %v", k, g, strings.Repeat(" ", len(fmt.Sprint(k))), w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&b, "\n  %v: unexpected %v", k, g)
		}
	}
	return b.String()
}

// checkVPP compares VPP's ACLs and lists with the wanted ones.
func checkVPP(t *testing.T, env *simtest.Env, when string, acls map[string]string, lists map[uint32]string) {
	t.Helper()
	s := readVPP(t, env)
	if d := diffMaps(s.acls, acls); d != "" {
		t.Errorf("%s: ACLs:%s", when, d)
	}
	if d := diffMaps(s.lists, lists); d != "" {
		t.Errorf("%s: lists:%s", when, d)
	}
}

// writes runs f and returns the number of write calls it sent.
func writes(env *simtest.Env, f func()) int {
	before := env.Writes()
	f()
	return env.Writes() - before
}

// aclCalls runs f and returns the ACL plugin requests it sent, by
// message name (the client's own health pings are left out).
func aclCalls(env *simtest.Env, f func()) map[string]int {
	before := env.Sim.CallCounts()
	f()
	out := map[string]int{}
	for k, v := range env.Sim.CallCounts() {
		if n := v - before[k]; n != 0 && strings.HasPrefix(k, "acl_") {
			out[k] = n
		}
	}
	return out
}

func interfaceIndex(sw uint32) interface_types.InterfaceIndex {
	return interface_types.InterfaceIndex(sw)
}
