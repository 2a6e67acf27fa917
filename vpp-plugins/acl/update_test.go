package acl_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	interfaces "go.fd.io/govpp/binapi/interface"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// TestUpdateTouchesOnlyItsBindings: with 1,000 tables each bound to its
// own interface, an Update sends only the writes of what it changes and
// reads only the lists of the interfaces it is given.
func TestUpdateTouchesOnlyItsBindings(t *testing.T) {
	const pods = 1000
	ifs := []sim.InterfaceSpec{{Name: "eth0", Up: true}}
	for i := range pods {
		ifs = append(ifs, sim.InterfaceSpec{Name: fmt.Sprintf("pod-%d", i), Up: true})
	}
	env, d := start(t, ifs)
	ctx := context.Background()
	sw := func(pod int) uint32 { return uint32(pod + 2) } // after local0 and eth0
	tables := make([]acl.ACL, pods)
	want := acl.Desired{}
	for i := range pods {
		tables[i] = table(fmt.Sprintf("t%d", i), rule(acl.Permit, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), "0.0.0.0/0", 0))
		want.ACLs = append(want.ACLs, tables[i])
		want.Bindings = append(want.Bindings, acl.Binding{SwIfIndex: sw(i), Input: tags(tables[i])})
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, want); err != nil {
			t.Fatal(err)
		}
	}); n != 2*pods {
		t.Fatalf("Sync: %d writes, want %d", n, 2*pods)
	}
	fresh := table("fresh", rule(acl.Deny, "0.0.0.0/0", "0.0.0.0/0", 6))
	steps := []struct {
		name     string
		acls     []acl.ACL
		bindings []acl.Binding
		writes   map[string]int
		lists    map[uint32]string // of some interfaces; "" for none
		gone     []acl.ACL         // no longer in VPP
		kept     []acl.ACL
	}{{
		// Its old table goes and only pod 5 held it: rewritten in place,
		// its list unchanged (reuse.go).
		name:     "pod 5 gets a new table",
		acls:     []acl.ACL{fresh},
		bindings: []acl.Binding{{SwIfIndex: sw(5), Input: tags(fresh)}},
		writes:   map[string]int{"acl_add_replace": 1},
		lists:    map[uint32]string{sw(5): describeLists(tags(fresh), nil), sw(4): describeLists(tags(tables[4]), nil)},
		gone:     []acl.ACL{tables[5]},
		kept:     []acl.ACL{fresh, tables[4], tables[6]},
	}, {
		name:     "pod 6 shares pod 7's table",
		bindings: []acl.Binding{{SwIfIndex: sw(6), Input: tags(tables[7])}},
		writes:   map[string]int{"acl_interface_set_acl_list": 1, "acl_del": 1},
		lists:    map[uint32]string{sw(6): describeLists(tags(tables[7]), nil)},
		gone:     []acl.ACL{tables[6]},
		kept:     []acl.ACL{tables[7]},
	}, {
		name:     "pod 7 unbound, its table still used by pod 6",
		bindings: []acl.Binding{{SwIfIndex: sw(7)}},
		writes:   map[string]int{"acl_interface_set_acl_list": 1},
		lists:    map[uint32]string{sw(7): "", sw(6): describeLists(tags(tables[7]), nil)},
		kept:     []acl.ACL{tables[7]},
	}, {
		name:     "nothing changes",
		acls:     []acl.ACL{fresh, tables[7]},
		bindings: []acl.Binding{{SwIfIndex: sw(6), Input: tags(tables[7])}, {SwIfIndex: sw(5), Input: tags(fresh)}},
	}}
	for _, st := range steps {
		got := aclCalls(env, func() {
			if err := d.Update(ctx, st.acls, st.bindings); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		})
		// One list dump per binding; no ACL dump, whatever the number of ACLs.
		want := map[string]int{"acl_interface_list_dump": len(st.bindings)}
		for k, v := range st.writes {
			want[k] = v
		}
		if diff := diffMaps(got, want); diff != "" {
			t.Errorf("%s: requests:%s", st.name, diff)
		}
		s := readVPP(t, env)
		for sw, l := range st.lists {
			if s.lists[sw] != l {
				t.Errorf("%s: lists of %d: %q, want %q", st.name, sw, s.lists[sw], l)
			}
		}
		for _, a := range st.gone {
			if _, ok := s.acls[a.Tag]; ok {
				t.Errorf("%s: %q still in VPP", st.name, a.Tag)
			}
		}
		for _, a := range st.kept {
			if _, ok := s.acls[a.Tag]; !ok {
				t.Errorf("%s: %q not in VPP", st.name, a.Tag)
			}
		}
	}
}

// TestUpdateReusedInterfaceIndex: VPP empties the lists of an interface
// it deletes (acl_sw_interface_add_del) and gives its index to the next
// interface; binding the new one must program it even though the driver
// had bound that index before, and unbinding a deleted interface releases
// its ACLs.
func TestUpdateReusedInterfaceIndex(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	ifc := interfaces.NewServiceClient(env.Client)
	loopback := func() uint32 {
		rep, err := ifc.CreateLoopback(ctx, &interfaces.CreateLoopback{})
		if err != nil {
			t.Fatal(err)
		}
		return uint32(rep.SwIfIndex)
	}
	remove := func(sw uint32) {
		if _, err := ifc.DeleteLoopback(ctx, &interfaces.DeleteLoopback{SwIfIndex: interfaceIndex(sw)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{web}}); err != nil {
		t.Fatal(err)
	}
	lo := loopback()
	bind := []acl.Binding{{SwIfIndex: lo, Output: tags(web)}}
	if err := d.Update(ctx, nil, bind); err != nil {
		t.Fatal(err)
	}
	remove(lo)
	if again := loopback(); again != lo {
		t.Fatalf("the new loopback is %d, not %d: the simulator no longer reuses indexes as VPP does", again, lo)
	}
	if n := writes(env, func() {
		if err := d.Update(ctx, nil, bind); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("binding the new interface: %d writes, want 1", n)
	}
	checkVPP(t, env, "after binding the new interface", wantACLs(web), map[uint32]string{lo: describeLists(nil, tags(web))})
	remove(lo)
	if n := writes(env, func() {
		if err := d.Update(ctx, nil, []acl.Binding{{SwIfIndex: lo}}); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("unbinding the deleted interface: %d writes, want 1 (acl_del)", n)
	}
	checkVPP(t, env, "after unbinding the deleted interface", map[string]string{}, map[uint32]string{})
}

// TestUpdateReportsBadInput: an invalid ACL, or a binding naming an ACL
// that is invalid or unknown, changes nothing and is reported.
func TestUpdateReportsBadInput(t *testing.T) {
	bad := table("bad", rule(acl.Permit, "10.1.1.1/24", "0.0.0.0/0", 0))
	tests := []struct {
		name     string
		acls     []acl.ACL
		bindings []acl.Binding
		want     []string
	}{
		{"invalid ACL bound", []acl.ACL{bad}, []acl.Binding{{SwIfIndex: podA, Output: tags(bad)}},
			[]string{`acl "kube-vpp:acl:bad": rule 0`, `binding not applied: sw_if_index 2: output acl "kube-vpp:acl:bad" is invalid`}},
		{"unknown ACL bound", nil, []acl.Binding{{SwIfIndex: podA, Output: tags(web, web8080)}},
			[]string{`binding not applied: sw_if_index 2: output acl "kube-vpp:acl:web-8080" does not exist`}},
		{"interface ~0", nil, []acl.Binding{{SwIfIndex: ^uint32(0)}}, []string{"binding not applied: sw_if_index ~0 is no interface"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := start(t, nodeInterfaces)
			ctx := context.Background()
			if err := d.Sync(ctx, acl.Desired{ACLs: []acl.ACL{web}, Bindings: []acl.Binding{{SwIfIndex: podA, Output: tags(web)}}}); err != nil {
				t.Fatal(err)
			}
			var err error
			if n := writes(env, func() { err = d.Update(ctx, tt.acls, tt.bindings) }); n != 0 {
				t.Errorf("Update: %d writes, want 0", n)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Update: error %v, want one saying %q", err, w)
				}
			}
			checkVPP(t, env, "after Update", wantACLs(web), map[uint32]string{podA: describeLists(nil, tags(web))})
		})
	}
}

// TestRestart: Update needs a Sync on the current connection; after VPP
// restarts (empty state), Invalidate and Sync program everything again.
func TestRestart(t *testing.T) {
	env, d := start(t, nodeInterfaces)
	ctx := context.Background()
	if err := d.Update(ctx, []acl.ACL{web}, nil); !errors.Is(err, acl.ErrNotSynced) {
		t.Errorf("Update before Sync: %v, want ErrNotSynced", err)
	}
	want := acl.Desired{ACLs: []acl.ACL{web, denyV4}, Bindings: []acl.Binding{{SwIfIndex: podA, Input: tags(denyV4), Output: tags(web)}}}
	lists := map[uint32]string{podA: describeLists(tags(denyV4), tags(web))}
	if err := d.Sync(ctx, want); err != nil {
		t.Fatal(err)
	}
	env.Restart()
	checkVPP(t, env, "after the restart", map[string]string{}, map[uint32]string{})
	d.Invalidate()
	if err := d.Update(ctx, []acl.ACL{web}, nil); !errors.Is(err, acl.ErrNotSynced) {
		t.Errorf("Update after Invalidate: %v, want ErrNotSynced", err)
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, want); err != nil {
			t.Fatal(err)
		}
	}); n != 3 {
		t.Errorf("Sync after the restart: %d writes, want 3", n)
	}
	checkVPP(t, env, "after Sync", wantACLs(web, denyV4), lists)
	if n := writes(env, func() {
		if err := d.Update(ctx, []acl.ACL{web}, []acl.Binding{{SwIfIndex: podA, Input: tags(denyV4), Output: tags(web)}}); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Update in sync: %d writes, want 0", n)
	}
}
