package acl_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	vppacl "go.fd.io/govpp/binapi/acl"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// Shared tables of these tests. ingressOld lets the uplink's clients reach
// any pod on TCP 80 and reflects; ingressNew is the same table once a peer
// pod (10.1.9.9) is added. Each pod's input list holds denyV4, so a pod's
// reply passes only by a session its output list made.
var (
	ingressOld = table("ingress-old", rule(acl.PermitReflect, "192.168.10.0/24", "10.1.0.0/16", 6, 80))
	ingressNew = table("ingress-new", rule(acl.PermitReflect, "192.168.10.0/24", "10.1.0.0/16", 6, 80),
		rule(acl.PermitReflect, "10.1.9.9/32", "10.1.0.0/16", 6, 80))
)

// podBinding binds a pod's input to denyV4 and its output to out.
func podBinding(sw uint32, out acl.ACL) acl.Binding {
	return acl.Binding{SwIfIndex: sw, Input: tags(denyV4), Output: tags(out)}
}

// writeCalls runs f and returns the ACL plugin writes it sent, by name.
func writeCalls(env *simtest.Env, f func()) map[string]int {
	got := aclCalls(env, f)
	maps.DeleteFunc(got, func(k string, _ int) bool { return strings.HasSuffix(k, "_dump") })
	return got
}

// TestSharedTableChangeRewritesInPlace: a table three interfaces share
// gets new content, hence a new tag, and the old one is no longer wanted.
// The driver replaces the old ACL's rules and tag in place
// (acl_add_replace on its index, acl.c acl_add_list), so the three lists
// are unchanged by index and need no acl_interface_set_acl_list, and
// nothing is deleted: one write, by Update as by Sync.
func TestSharedTableChangeRewritesInPlace(t *testing.T) {
	initial := acl.Desired{ACLs: []acl.ACL{ingressOld, denyV4}, Bindings: []acl.Binding{
		podBinding(podA, ingressOld), podBinding(podB, ingressOld), podBinding(podC, ingressOld)}}
	changed := acl.Desired{ACLs: []acl.ACL{ingressNew, denyV4}, Bindings: []acl.Binding{
		podBinding(podA, ingressNew), podBinding(podB, ingressNew), podBinding(podC, ingressNew)}}
	tests := []struct {
		name   string
		change func(context.Context, *acl.Driver) error
	}{
		{"Update with acl.Diff", func(ctx context.Context, d *acl.Driver) error {
			acls, bindings := acl.Diff(initial, changed)
			return d.Update(ctx, acls, bindings)
		}},
		{"Sync", func(ctx context.Context, d *acl.Driver) error { return d.Sync(ctx, changed) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := start(t, nodeInterfaces)
			ctx := context.Background()
			if err := d.Sync(ctx, initial); err != nil {
				t.Fatal(err)
			}
			oldIndex := readVPP(t, env).index[ingressOld.Tag]
			got := writeCalls(env, func() {
				if err := tt.change(ctx, d); err != nil {
					t.Fatal(err)
				}
			})
			if want := map[string]int{"acl_add_replace": 1}; !maps.Equal(got, want) {
				t.Errorf("writes %v, want %v", got, want)
			}
			lists := describeLists(tags(denyV4), tags(ingressNew))
			checkVPP(t, env, "after the change", wantACLs(ingressNew, denyV4),
				map[uint32]string{podA: lists, podB: lists, podC: lists})
			if idx := readVPP(t, env).index[ingressNew.Tag]; idx != oldIndex {
				t.Errorf("%q is at acl_index %d, want the old table's %d", ingressNew.Tag, idx, oldIndex)
			}
			if idx, ok := d.Index(ingressNew.Tag); !ok || idx != oldIndex {
				t.Errorf("Index(%q) = %d, %v; want %d", ingressNew.Tag, idx, ok, oldIndex)
			}
			if tg, ok := d.Tag(oldIndex); !ok || tg != ingressNew.Tag {
				t.Errorf("Tag(%d) = %q, %v; want %q", oldIndex, tg, ok, ingressNew.Tag)
			}
			if idx, ok := d.Index(ingressOld.Tag); ok {
				t.Errorf("Index(%q) = %d: the old tag is still known", ingressOld.Tag, idx)
			}
			if n := writes(env, func() {
				if err := d.Sync(ctx, changed); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Sync after the change: %d writes, want 0", n)
			}
		})
	}
}

// TestTableChangeKeepsSessions: a client's TCP connection to pod A made a
// session on pod A's output (permit+reflect), through which pod A's reply
// passes its input list, which denies everything (dataplane_node.c: the
// session hash is looked up before the list). Rewriting the shared table
// in place keeps the session (reclassify_sessions is off); when pod C
// keeps the old table, pods A and B are rebound to a new ACL, which
// changes the set of their output lists and clears their sessions
// (acl_interface_set_inout_acl_list -> acl_clear_sessions): the reply then
// meets denyV4.
func TestTableChangeKeepsSessions(t *testing.T) {
	tests := []struct {
		name     string
		bindings []acl.Binding
		writes   map[string]int
		acls     map[string]string
		lists    map[uint32]string
		reply    sim.Verdict
	}{{
		name:     "every holder moves to the new table: rewritten in place",
		bindings: []acl.Binding{podBinding(podA, ingressNew), podBinding(podB, ingressNew), podBinding(podC, ingressNew)},
		writes:   map[string]int{"acl_add_replace": 1},
		acls:     wantACLs(ingressNew, denyV4),
		lists: map[uint32]string{podA: describeLists(tags(denyV4), tags(ingressNew)),
			podB: describeLists(tags(denyV4), tags(ingressNew)), podC: describeLists(tags(denyV4), tags(ingressNew))},
		reply: sim.Forwarded,
	}, {
		name:     "pod C keeps the old table: new ACL, A and B rebound, old kept",
		bindings: []acl.Binding{podBinding(podA, ingressNew), podBinding(podB, ingressNew)},
		writes:   map[string]int{"acl_add_replace": 1, "acl_interface_set_acl_list": 2},
		acls:     wantACLs(ingressOld, ingressNew, denyV4),
		lists: map[uint32]string{podA: describeLists(tags(denyV4), tags(ingressNew)),
			podB: describeLists(tags(denyV4), tags(ingressNew)), podC: describeLists(tags(denyV4), tags(ingressOld))},
		reply: sim.Dropped,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := start(t, nodeInterfaces)
			ctx := context.Background()
			if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{ingressOld, denyV4}, Bindings: []acl.Binding{
				podBinding(podA, ingressOld), podBinding(podB, ingressOld), podBinding(podC, ingressOld)}}); err != nil {
				t.Fatal(err)
			}
			evaluate := func(p sim.Packet) sim.Result {
				t.Helper()
				res, err := env.Sim.Evaluate(p)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			syn := packet(uplink, 6, clientIP+":40000", podAIP+":80")
			reply := packet(podA, 6, podAIP+":80", clientIP+":40000")
			if res := evaluate(syn); res.Verdict != sim.Forwarded {
				t.Fatalf("client to pod A: %s (%s), want forwarded", res.Verdict, res.Reason)
			}
			if res := evaluate(reply); res.Verdict != sim.Forwarded || len(res.ACL) != 1 || !res.ACL[0].Session {
				t.Fatalf("reply before the change: %s (%s) %+v, want forwarded by the session", res.Verdict, res.Reason, res.ACL)
			}

			got := writeCalls(env, func() {
				if err := d.Update(ctx, []acl.ACL{ingressNew}, tt.bindings); err != nil {
					t.Fatal(err)
				}
			})
			if !maps.Equal(got, tt.writes) {
				t.Errorf("writes %v, want %v", got, tt.writes)
			}
			checkVPP(t, env, "after the change", tt.acls, tt.lists)

			res := evaluate(reply)
			if res.Verdict != tt.reply {
				t.Errorf("reply after the change: %s (%s), want %s", res.Verdict, res.Reason, tt.reply)
			}
			if tt.reply == sim.Forwarded && (len(res.ACL) != 1 || !res.ACL[0].Session) {
				t.Errorf("reply after the change passed by %+v, want the session", res.ACL)
			}
			if tt.reply == sim.Dropped && (len(res.ACL) != 1 || res.ACL[0].Session || res.ACL[0].Tag != denyV4.Tag) {
				t.Errorf("reply after the change dropped by %+v, want deny-v4 rule 0 with no session", res.ACL)
			}
		})
	}
}

// TestReuseCompetition: an old ACL whose interfaces want different new
// ACLs in its place goes to one of them, chosen whatever the order of the
// call's ACLs and bindings: the one of the old tag's kind, then the one
// most of its interfaces want, then the lowest tag. The interfaces that
// want another new ACL are set to it (created) before the rewrite.
func TestReuseCompetition(t *testing.T) {
	old := table("ingress-x", rule(acl.PermitReflect, "0.0.0.0/0", "10.1.0.0/16", 6, 80))
	mk := func(key string, port uint16) acl.ACL {
		return table(key, rule(acl.PermitReflect, "0.0.0.0/0", "10.1.0.0/16", 6, port))
	}
	b, c := mk("ingress-b", 81), mk("ingress-c", 82)
	otherKind, sameKind := mk("egress-a", 83), mk("ingress-z", 84)
	out := func(sw uint32, a acl.ACL) acl.Binding { return acl.Binding{SwIfIndex: sw, Output: tags(a)} }
	tests := []struct {
		name    string
		holders []uint32 // hold old on their output
		acls    []acl.ACL
		want    []acl.Binding
		winner  acl.ACL // takes old's index
		writes  map[string]int
	}{
		{"A to b, B to c: lowest tag", []uint32{podA, podB}, []acl.ACL{b, c},
			[]acl.Binding{out(podA, b), out(podB, c)}, b,
			map[string]int{"acl_add_replace": 2, "acl_interface_set_acl_list": 1}},
		{"A to c, B to b: lowest tag", []uint32{podA, podB}, []acl.ACL{b, c},
			[]acl.Binding{out(podA, c), out(podB, b)}, b,
			map[string]int{"acl_add_replace": 2, "acl_interface_set_acl_list": 1}},
		{"same kind before a lower tag", []uint32{podA, podB}, []acl.ACL{otherKind, sameKind},
			[]acl.Binding{out(podA, otherKind), out(podB, sameKind)}, sameKind,
			map[string]int{"acl_add_replace": 2, "acl_interface_set_acl_list": 1}},
		{"most interfaces before a lower tag", []uint32{podA, podB, podC}, []acl.ACL{b, c},
			[]acl.Binding{out(podA, b), out(podB, c), out(podC, c)}, c,
			map[string]int{"acl_add_replace": 2, "acl_interface_set_acl_list": 1}},
	}
	for _, tt := range tests {
		for _, reversed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reversed=%v", tt.name, reversed), func(t *testing.T) {
				env, d := start(t, nodeInterfaces)
				ctx := context.Background()
				initial := acl.Desired{ACLs: []acl.ACL{old}}
				for _, sw := range tt.holders {
					initial.Bindings = append(initial.Bindings, out(sw, old))
				}
				if err := d.Sync(ctx, initial); err != nil {
					t.Fatal(err)
				}
				oldIndex := readVPP(t, env).index[old.Tag]
				acls, bindings := slices.Clone(tt.acls), slices.Clone(tt.want)
				if reversed {
					slices.Reverse(acls)
					slices.Reverse(bindings)
				}
				got := writeCalls(env, func() {
					if err := d.Update(ctx, acls, bindings); err != nil {
						t.Fatal(err)
					}
				})
				if !maps.Equal(got, tt.writes) {
					t.Errorf("writes %v, want %v", got, tt.writes)
				}
				lists := map[uint32]string{}
				for _, b := range tt.want {
					lists[b.SwIfIndex] = describeLists(nil, b.Output)
				}
				checkVPP(t, env, "after Update", wantACLs(tt.acls...), lists)
				if idx := readVPP(t, env).index[tt.winner.Tag]; idx != oldIndex {
					t.Errorf("%q is at acl_index %d, want the old table's %d", tt.winner.Tag, idx, oldIndex)
				}
			})
		}
	}
}

// TestReuseFallsBackWhenOrderImpossible: pod B leaves old1 (so it must be
// set before old1 is rewritten, or it would apply new1) and takes new2
// where it did not hold old2 (so it must be set after old2 is rewritten,
// or it would apply old2's rules). Both cannot be: the rewrite ranked
// second (old2 as new2) falls back to create, rebind, delete.
func TestReuseFallsBackWhenOrderImpossible(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	old1 := table("ingress-1", rule(acl.Permit, "0.0.0.0/0", "10.1.0.0/16", 6, 1))
	old2 := table("ingress-2", rule(acl.Permit, "0.0.0.0/0", "10.1.0.0/16", 6, 2))
	new1 := table("ingress-n1", rule(acl.Permit, "0.0.0.0/0", "10.1.0.0/16", 6, 3))
	new2 := table("ingress-n2", rule(acl.Permit, "0.0.0.0/0", "10.1.0.0/16", 6, 4))
	out := func(sw uint32, a acl.ACL) acl.Binding { return acl.Binding{SwIfIndex: sw, Output: tags(a)} }
	if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{old1, old2},
		Bindings: []acl.Binding{out(podA, old1), out(podB, old1), out(podC, old2)}}); err != nil {
		t.Fatal(err)
	}
	old1Index := readVPP(t, env).index[old1.Tag]
	// add new2, set B, rewrite old1 as new1, set C, delete old2.
	got := writeCalls(env, func() {
		if err := d.Update(ctx, []acl.ACL{new1, new2}, []acl.Binding{out(podA, new1), out(podB, new2), out(podC, new2)}); err != nil {
			t.Fatal(err)
		}
	})
	if want := map[string]int{"acl_add_replace": 2, "acl_interface_set_acl_list": 2, "acl_del": 1}; !maps.Equal(got, want) {
		t.Errorf("writes %v, want %v", got, want)
	}
	checkVPP(t, env, "after Update", wantACLs(new1, new2), map[uint32]string{
		podA: describeLists(nil, tags(new1)), podB: describeLists(nil, tags(new2)), podC: describeLists(nil, tags(new2))})
	if idx := readVPP(t, env).index[new1.Tag]; idx != old1Index {
		t.Errorf("%q is at acl_index %d, want old1's %d", new1.Tag, idx, old1Index)
	}
}

// TestReuseNeedsLeaversGone: pod B leaves the old table (its output) for
// two tables on its input, but its lists cannot be set: with its 254
// foreign input ACLs they would hold 256, and acl_interface_set_acl_list
// counts them in a u8. It keeps the old ACL, so the old ACL is not
// rewritten: the new one is created and pod A is rebound to it.
func TestReuseNeedsLeaversGone(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	rpc := vppacl.NewServiceClient(env.Client)
	c1 := table("ingress-c1", rule(acl.Permit, "0.0.0.0/0", "10.1.0.0/16", 6, 1))
	c2 := table("egress-c2", rule(acl.Permit, "0.0.0.0/0", "10.1.0.0/16", 6, 2))
	out := func(sw uint32, a acl.ACL) acl.Binding { return acl.Binding{SwIfIndex: sw, Output: tags(a)} }
	if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{ingressOld}, Bindings: []acl.Binding{out(podA, ingressOld), out(podB, ingressOld)}}); err != nil {
		t.Fatal(err)
	}
	oldIndex := readVPP(t, env).index[ingressOld.Tag]
	var foreign []uint32
	for i := range 254 {
		rep, err := rpc.ACLAddReplace(ctx, &vppacl.ACLAddReplace{ACLIndex: ^uint32(0), Tag: fmt.Sprintf("operator: %d", i),
			R: apiRules([]acl.Rule{denyAll4})})
		if err != nil {
			t.Fatal(err)
		}
		foreign = append(foreign, rep.ACLIndex)
	}
	if _, err := rpc.ACLInterfaceSetACLList(ctx, &vppacl.ACLInterfaceSetACLList{SwIfIndex: interfaceIndex(podB),
		NInput: uint8(len(foreign)), Acls: append(slices.Clone(foreign), oldIndex)}); err != nil {
		t.Fatal(err)
	}
	var err error
	got := writeCalls(env, func() {
		err = d.Update(ctx, []acl.ACL{ingressNew, c1, c2}, []acl.Binding{out(podA, ingressNew), {SwIfIndex: podB, Input: tags(c1, c2)}})
	})
	if err == nil || !strings.Contains(err.Error(), "binding of sw_if_index 3 not applied: 256 ACLs") {
		t.Errorf("Update: error %v, want one saying pod B's binding has 256 ACLs", err)
	}
	// add c1, c2 and ingress-new, set A; the old ACL stays in B's list.
	if want := map[string]int{"acl_add_replace": 3, "acl_interface_set_acl_list": 1}; !maps.Equal(got, want) {
		t.Errorf("writes %v, want %v", got, want)
	}
	s := readVPP(t, env)
	if s.index[ingressOld.Tag] != oldIndex || s.acls[ingressOld.Tag] != wantACLs(ingressOld)[ingressOld.Tag] {
		t.Errorf("old table: acl_index %d rules %q, want %d unchanged", s.index[ingressOld.Tag], s.acls[ingressOld.Tag], oldIndex)
	}
	if want := describeLists(nil, tags(ingressNew)); s.lists[podA] != want {
		t.Errorf("pod A: %s, want %s", s.lists[podA], want)
	}
	if !strings.HasSuffix(s.lists[podB], fmt.Sprintf("out [%q]", ingressOld.Tag)) {
		t.Errorf("pod B: %s, want its output unchanged (%q)", s.lists[podB], ingressOld.Tag)
	}
}

// TestPeerAddedToSharedTables: three shared tables name the pods of one
// namespace: egress e1 (input of pods 0-2), egress e2 (input of pods 3-5)
// and ingress i (output of pods 0-5). A pod added to that namespace
// changes all three, so the engine's acl.Diff gives three new ACLs and six
// changed bindings. Each new table takes over its old one in place: three
// writes, where creating, rebinding and deleting took 3 + 6 + 3. Pod 0's
// connection keeps its session.
func TestPeerAddedToSharedTables(t *testing.T) {
	const pods = 6
	ifs := []sim.InterfaceSpec{{Name: "eth0", Addresses: []string{"192.168.10.5/24"}, Up: true}}
	for i := range pods {
		ifs = append(ifs, sim.InterfaceSpec{Name: fmt.Sprintf("pod-%d", i), Addresses: []string{fmt.Sprintf("10.1.%d.1/24", i)}, Up: true})
	}
	env, d := start(t, ifs)
	ctx := context.Background()
	sw := func(pod int) uint32 { return uint32(pod + 2) }
	peers := []string{"10.2.0.5/32", "10.2.0.6/32"}
	tables := func(peers []string) (e1, e2, in acl.ACL) {
		var er, ir []acl.Rule
		for _, p := range peers {
			er = append(er, rule(acl.PermitReflect, "10.1.0.0/16", p, 6, 5432))
			ir = append(ir, rule(acl.PermitReflect, p, "10.1.0.0/16", 6, 80))
		}
		ir = append(ir, rule(acl.PermitReflect, "192.168.10.0/24", "10.1.0.0/16", 6, 80))
		key := strings.ReplaceAll(strings.Join(peers, ","), "/", "_")
		return table("egress-1-"+key, er...), table("egress-2-"+key, append(er, rule(acl.Permit, "10.1.0.0/16", "10.3.0.0/16", 17, 53))...),
			table("ingress-"+key, ir...)
	}
	desired := func(peers []string) acl.Desired {
		e1, e2, in := tables(peers)
		want := acl.Desired{ACLs: []acl.ACL{e1, e2, in}}
		for i := range pods {
			eg := e1
			if i >= 3 {
				eg = e2
			}
			want.Bindings = append(want.Bindings, acl.Binding{SwIfIndex: sw(i), Input: tags(eg), Output: tags(in)})
		}
		return want
	}
	before := desired(peers)
	if err := d.Sync(ctx, before); err != nil {
		t.Fatal(err)
	}
	indexes := readVPP(t, env).index
	client := packet(1, 6, "192.168.10.9:40000", "10.1.0.2:80")
	reply := packet(sw(0), 6, "10.1.0.2:80", "192.168.10.9:40000")
	for _, p := range []sim.Packet{client, reply} {
		if res, err := env.Sim.Evaluate(p); err != nil || res.Verdict != sim.Forwarded {
			t.Fatalf("before the change: %+v: %s (%s) %v", p, res.Verdict, res.Reason, err)
		}
	}

	after := desired(append(peers, "10.2.0.7/32"))
	acls, bindings := acl.Diff(before, after)
	if len(acls) != 3 || len(bindings) != pods {
		t.Fatalf("Diff: %d ACLs, %d bindings; want 3 and %d", len(acls), len(bindings), pods)
	}
	got := writeCalls(env, func() {
		if err := d.Update(ctx, acls, bindings); err != nil {
			t.Fatal(err)
		}
	})
	if want := map[string]int{"acl_add_replace": 3}; !maps.Equal(got, want) {
		t.Errorf("writes %v, want %v", got, want)
	}
	s := readVPP(t, env)
	for i := range before.ACLs {
		if old, cur := before.ACLs[i], after.ACLs[i]; s.index[cur.Tag] != indexes[old.Tag] {
			t.Errorf("%q at acl_index %d, want %q's %d", cur.Tag, s.index[cur.Tag], old.Tag, indexes[old.Tag])
		}
	}
	lists := map[uint32]string{}
	for _, b := range after.Bindings {
		lists[b.SwIfIndex] = describeLists(b.Input, b.Output)
	}
	checkVPP(t, env, "after the change", wantACLs(after.ACLs...), lists)
	if res, err := env.Sim.Evaluate(reply); err != nil || res.Verdict != sim.Forwarded || len(res.ACL) != 1 || !res.ACL[0].Session {
		t.Errorf("pod 0's reply after the change: %s (%s) %+v %v, want forwarded by its session", res.Verdict, res.Reason, res.ACL, err)
	}
}

// TestReuseLeaverThatStays: pod A leaves egress-1 for a new table on its
// input while its output, like pod C's, wants ingress-n in ingress-1's
// place; pod B wants egress-n in egress-1's place. Pod A is set before the
// rewrites, naming ingress-n by ingress-1's index (which it keeps), then
// both old tables are rewritten: pods B and C need no write and keep their
// sessions.
func TestReuseLeaverThatStays(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	mk := func(key string, port uint16) acl.ACL {
		return table(key, rule(acl.PermitReflect, "0.0.0.0/0", "10.1.0.0/16", 6, port))
	}
	e1, i1 := mk("egress-1", 1), mk("ingress-1", 2)
	en, in, ex := mk("egress-n", 3), mk("ingress-n", 4), mk("egress-x", 5) // egress-n < egress-x
	if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{e1, i1}, Bindings: []acl.Binding{
		{SwIfIndex: podA, Input: tags(e1), Output: tags(i1)},
		{SwIfIndex: podB, Input: tags(e1)},
		{SwIfIndex: podC, Output: tags(i1)},
	}}); err != nil {
		t.Fatal(err)
	}
	before := readVPP(t, env).index
	want := []acl.Binding{
		{SwIfIndex: podA, Input: tags(ex), Output: tags(in)},
		{SwIfIndex: podB, Input: tags(en)},
		{SwIfIndex: podC, Output: tags(in)},
	}
	// add egress-x, set A, rewrite egress-1 and ingress-1.
	got := writeCalls(env, func() {
		if err := d.Update(ctx, []acl.ACL{en, in, ex}, want); err != nil {
			t.Fatal(err)
		}
	})
	if w := map[string]int{"acl_add_replace": 3, "acl_interface_set_acl_list": 1}; !maps.Equal(got, w) {
		t.Errorf("writes %v, want %v", got, w)
	}
	checkVPP(t, env, "after Update", wantACLs(en, in, ex), map[uint32]string{
		podA: describeLists(tags(ex), tags(in)), podB: describeLists(tags(en), nil), podC: describeLists(nil, tags(in))})
	s := readVPP(t, env)
	if s.index[en.Tag] != before[e1.Tag] || s.index[in.Tag] != before[i1.Tag] {
		t.Errorf("egress-n at %d, ingress-n at %d; want %d and %d", s.index[en.Tag], s.index[in.Tag], before[e1.Tag], before[i1.Tag])
	}
}
