package acl

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	a, b, c := ACL{Tag: "kube-vpp:acl:a"}, ACL{Tag: "kube-vpp:acl:b"}, ACL{Tag: "kube-vpp:acl:c"}
	b2 := ACL{Tag: b.Tag, Rules: []Rule{{Action: Deny, Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")}}}
	old := Desired{ACLs: []ACL{a, b}, Bindings: []Binding{
		{SwIfIndex: 3, Output: []string{a.Tag}},
		{SwIfIndex: 4, Input: []string{b.Tag}},
		{SwIfIndex: 5, Output: []string{a.Tag}},
	}}
	tests := []struct {
		name         string
		new          Desired
		wantACLs     []ACL
		wantBindings []Binding
	}{
		{"unchanged", old, nil, nil},
		{"a new table for one interface", Desired{ACLs: []ACL{a, b, c}, Bindings: []Binding{
			{SwIfIndex: 3, Output: []string{a.Tag}},
			{SwIfIndex: 4, Input: []string{c.Tag}},
			{SwIfIndex: 5, Output: []string{a.Tag}},
		}}, []ACL{c}, []Binding{{SwIfIndex: 4, Input: []string{c.Tag}}}},
		{"a tag kept with other rules", Desired{ACLs: []ACL{a, b2}, Bindings: old.Bindings}, []ACL{b2}, nil},
		{"an interface unbound, another bound", Desired{ACLs: []ACL{a, b}, Bindings: []Binding{
			{SwIfIndex: 3, Output: []string{a.Tag}},
			{SwIfIndex: 4, Input: []string{b.Tag}},
			{SwIfIndex: 9, Input: []string{b.Tag}, Output: []string{a.Tag}},
		}}, nil, []Binding{{SwIfIndex: 5}, {SwIfIndex: 9, Input: []string{b.Tag}, Output: []string{a.Tag}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acls, bindings := Diff(old, tt.new)
			if !reflect.DeepEqual(acls, tt.wantACLs) || !reflect.DeepEqual(bindings, tt.wantBindings) {
				t.Errorf("Diff = %+v, %+v; want %+v, %+v", acls, bindings, tt.wantACLs, tt.wantBindings)
			}
		})
	}
}
