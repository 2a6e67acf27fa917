package acl_test

import (
	"context"
	"testing"

	vppacl "go.fd.io/govpp/binapi/acl"
	"go.fd.io/govpp/binapi/interface_types"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Tables of the tests: web lets anyone reach pod A on TCP 80 and its
// replies back; denyV4 drops every IPv4 packet.
var (
	web     = table("web", rule(acl.PermitReflect, "0.0.0.0/0", podAIP+"/32", 6, 80))
	web8080 = table("web-8080", rule(acl.PermitReflect, "0.0.0.0/0", podAIP+"/32", 6, 8080))
	denyV4  = table("deny-v4", denyAll4)
)

// TestSyncCreatesBindsAndIsIdempotent: Sync creates each wanted ACL once,
// even when two interfaces use it, sets each interface's lists in one
// call, and a second Sync writes nothing.
func TestSyncCreatesBindsAndIsIdempotent(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	want := acl.Desired{
		ACLs: []acl.ACL{web, denyV4},
		Bindings: []acl.Binding{
			{SwIfIndex: podA, Input: tags(denyV4), Output: tags(web)},
			{SwIfIndex: podB, Input: tags(denyV4)},
		},
	}
	// 2 acl_add_replace + 1 acl_interface_set_acl_list per interface.
	if n := writes(env, func() {
		if err := d.Sync(ctx, want); err != nil {
			t.Fatal(err)
		}
	}); n != 4 {
		t.Errorf("Sync: %d writes, want 4 (%v)", n, env.Sim.CallCounts())
	}
	checkVPP(t, env, "after Sync", wantACLs(web, denyV4), map[uint32]string{
		podA: describeLists(tags(denyV4), tags(web)),
		podB: describeLists(tags(denyV4), nil),
	})
	s := readVPP(t, env)
	for _, a := range []acl.ACL{web, denyV4} {
		idx, ok := d.Index(a.Tag)
		if !ok || idx != s.index[a.Tag] {
			t.Errorf("Index(%q) = %d, %v; VPP holds it at %d", a.Tag, idx, ok, s.index[a.Tag])
		}
		if got, ok := d.Tag(s.index[a.Tag]); !ok || got != a.Tag {
			t.Errorf("Tag(%d) = %q, %v, want %q", s.index[a.Tag], got, ok, a.Tag)
		}
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, want); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("second Sync: %d writes, want 0 (%v)", n, env.Sim.CallCounts())
	}
}

// TestSyncRebindsThenDeletes: lists move to the ACLs they want first and
// an ACL no longer wanted is deleted after, which VPP allows only then
// (acl_del_list answers ACL_IN_USE_INBOUND/OUTBOUND for an ACL still in a
// list). A new ACL that an unwanted one's remaining interface wants in its
// place takes it over in place instead. An interface left out of want
// loses its kube-vpp ACLs.
func TestSyncRebindsThenDeletes(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	steps := []struct {
		name   string
		want   acl.Desired
		writes int
		acls   map[string]string
		lists  map[uint32]string
	}{{
		name: "initial",
		want: acl.Desired{ACLs: []acl.ACL{web, denyV4}, Bindings: []acl.Binding{
			{SwIfIndex: podA, Input: tags(denyV4), Output: tags(web)},
			{SwIfIndex: podB, Input: tags(denyV4), Output: tags(web)},
		}},
		writes: 4,
		acls:   wantACLs(web, denyV4),
		lists: map[uint32]string{
			podA: describeLists(tags(denyV4), tags(web)),
			podB: describeLists(tags(denyV4), tags(web)),
		},
	}, {
		// set B (it leaves web), then rewrite web as web-8080 in place:
		// pod A's lists keep their indexes.
		name: "pod A's table changes, pod B is no longer bound",
		want: acl.Desired{ACLs: []acl.ACL{web8080, denyV4}, Bindings: []acl.Binding{
			{SwIfIndex: podA, Input: tags(denyV4), Output: tags(web8080)},
		}},
		writes: 2,
		acls:   wantACLs(web8080, denyV4),
		lists:  map[uint32]string{podA: describeLists(tags(denyV4), tags(web8080))},
	}, {
		// set A, delete web-8080: no new ACL to take it over.
		name: "pod A's output moves to a table VPP holds",
		want: acl.Desired{ACLs: []acl.ACL{denyV4}, Bindings: []acl.Binding{
			{SwIfIndex: podA, Input: tags(denyV4), Output: tags(denyV4)},
		}},
		writes: 2,
		acls:   wantACLs(denyV4),
		lists:  map[uint32]string{podA: describeLists(tags(denyV4), tags(denyV4))},
	}, {
		// set A, delete deny-v4.
		name:   "nothing wanted",
		writes: 2,
		acls:   map[string]string{},
		lists:  map[uint32]string{},
	}}
	for _, st := range steps {
		if n := writes(env, func() {
			if err := d.Sync(ctx, st.want); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}); n != st.writes {
			t.Errorf("%s: %d writes, want %d (%v)", st.name, n, st.writes, env.Sim.CallCounts())
		}
		checkVPP(t, env, st.name, st.acls, st.lists)
	}
}

// TestSyncKeepsForeign: ACLs without a kube-vpp table tag (an operator's,
// or kube-vpp's of another kind) are never changed or deleted, and
// foreign entries of a list stay, first and in their order, with
// kube-vpp's after them.
func TestSyncKeepsForeign(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	rpc := vppacl.NewServiceClient(env.Client)
	mgmt := acl.ACL{Tag: "operator: mgmt", Rules: []acl.Rule{rule(acl.Permit, "172.16.0.0/24", "0.0.0.0/0", 0)}}
	other := acl.ACL{Tag: tag.New("other", "x"), Rules: []acl.Rule{denyAll4}}
	stale := table("stale", rule(acl.Permit, "0.0.0.0/0", "0.0.0.0/0", 17))
	idx := map[string]uint32{}
	for _, a := range []acl.ACL{mgmt, other, stale, web} {
		rep, err := rpc.ACLAddReplace(ctx, &vppacl.ACLAddReplace{ACLIndex: ^uint32(0), Tag: a.Tag, R: apiRules(a.Rules)})
		if err != nil {
			t.Fatalf("adding %q: %v", a.Tag, err)
		}
		idx[a.Tag] = rep.ACLIndex
	}
	set := func(sw uint32, in, out []string) {
		var acls []uint32
		for _, t := range append(append([]string{}, in...), out...) {
			acls = append(acls, idx[t])
		}
		if _, err := rpc.ACLInterfaceSetACLList(ctx, &vppacl.ACLInterfaceSetACLList{SwIfIndex: interface_types.InterfaceIndex(sw),
			NInput: uint8(len(in)), Acls: acls}); err != nil {
			t.Fatalf("setting lists of %d: %v", sw, err)
		}
	}
	set(podA, []string{stale.Tag, mgmt.Tag}, nil)
	set(podB, []string{mgmt.Tag}, []string{other.Tag})
	set(podC, []string{mgmt.Tag, stale.Tag}, []string{stale.Tag, other.Tag})

	want := acl.Desired{ACLs: []acl.ACL{web}, Bindings: []acl.Binding{{SwIfIndex: podA, Input: tags(web)}}}
	// web is in VPP already; set A and C (B holds nothing of kube-vpp's),
	// then delete stale.
	if n := writes(env, func() {
		if err := d.Sync(ctx, want); err != nil {
			t.Fatal(err)
		}
	}); n != 3 {
		t.Errorf("Sync: %d writes, want 3 (%v)", n, env.Sim.CallCounts())
	}
	checkVPP(t, env, "after Sync", wantACLs(mgmt, other, web), map[uint32]string{
		podA: describeLists([]string{mgmt.Tag, web.Tag}, nil),
		podB: describeLists([]string{mgmt.Tag}, []string{other.Tag}),
		podC: describeLists([]string{mgmt.Tag}, []string{other.Tag}),
	})
	if got := readVPP(t, env).index[web.Tag]; got != idx[web.Tag] {
		t.Errorf("web moved from acl_index %d to %d; it was in VPP as wanted", idx[web.Tag], got)
	}
	if _, ok := d.Tag(idx[mgmt.Tag]); ok {
		t.Errorf("Tag(%d) names the operator's ACL as kube-vpp's", idx[mgmt.Tag])
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, want); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("second Sync: %d writes, want 0 (%v)", n, env.Sim.CallCounts())
	}
}

// TestReplaceUnderSameTag: an ACL VPP holds under a wanted tag with other
// rules is replaced in place (acl_add_replace with its index), by Sync
// and by Update, so its lists need no change.
func TestReplaceUnderSameTag(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	rpc := vppacl.NewServiceClient(env.Client)
	old := acl.ACL{Tag: web.Tag, Rules: []acl.Rule{rule(acl.Permit, "0.0.0.0/0", "0.0.0.0/0", 6, 22)}}
	rep, err := rpc.ACLAddReplace(ctx, &vppacl.ACLAddReplace{ACLIndex: ^uint32(0), Tag: old.Tag, R: apiRules(old.Rules)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.ACLInterfaceSetACLList(ctx, &vppacl.ACLInterfaceSetACLList{SwIfIndex: podA, Acls: []uint32{rep.ACLIndex}}); err != nil {
		t.Fatal(err)
	}
	lists := map[uint32]string{podA: describeLists(nil, tags(web))}
	if n := writes(env, func() {
		if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{web}, Bindings: []acl.Binding{{SwIfIndex: podA, Output: tags(web)}}}); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Sync: %d writes, want 1 (%v)", n, env.Sim.CallCounts())
	}
	checkVPP(t, env, "after Sync", wantACLs(web), lists)
	tcp443 := acl.ACL{Tag: web.Tag, Rules: []acl.Rule{rule(acl.PermitReflect, "0.0.0.0/0", podAIP+"/32", 6, 443)}}
	if n := writes(env, func() {
		if err := d.Update(ctx, []acl.ACL{tcp443}, nil); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("Update: %d writes, want 1 (%v)", n, env.Sim.CallCounts())
	}
	checkVPP(t, env, "after Update", wantACLs(tcp443), lists)
	if got, _ := d.Index(web.Tag); got != rep.ACLIndex || readVPP(t, env).index[web.Tag] != rep.ACLIndex {
		t.Errorf("acl_index of %q: driver %d, VPP %d; want %d kept", web.Tag, got, readVPP(t, env).index[web.Tag], rep.ACLIndex)
	}
}
