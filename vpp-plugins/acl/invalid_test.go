package acl_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// TestSyncReportsInvalidACLs: each ACL that acl_add_replace would refuse
// (acl.c: acl_add_list, acl_api_invalid_prefix: INVALID_SRC_ADDRESS,
// INVALID_DST_ADDRESS, INVALID_VALUE_2 for ports, INVALID_VALUE for a tag
// with no room for its NUL) or that kube-vpp does not own is reported by
// tag and rule and not sent; the binding naming it is not applied; the
// good ACL and its binding are programmed.
func TestSyncReportsInvalidACLs(t *testing.T) {
	good := table("good", rule(acl.Permit, "0.0.0.0/0", podAIP+"/32", 6, 80))
	ok := rule(acl.Permit, "10.0.0.0/8", "10.1.0.0/16", 17, 53) // rule 0 of each bad ACL
	withRule := func(key string, r acl.Rule) acl.ACL { return table(key, ok, r) }
	ports := func(r acl.Rule, src, dst acl.PortRange) acl.Rule {
		r.SrcPorts, r.DstPorts = src, dst
		return r
	}
	tests := []struct {
		name string
		bad  acl.ACL
		want []string // in the error, besides the binding's
	}{
		{"mixed families", withRule("mixed", rule(acl.Permit, "10.0.0.0/8", "2001:db8::/32", 0)), []string{"rule 1", "different families"}},
		{"src host bits", withRule("src-bits", rule(acl.Permit, "10.1.1.1/24", "0.0.0.0/0", 0)), []string{"rule 1", "src prefix 10.1.1.1/24 has host bits"}},
		{"dst host bits", withRule("dst-bits", rule(acl.Deny, "::/0", "2001:db8::1/64", 0)), []string{"rule 1", "dst prefix 2001:db8::1/64 has host bits"}},
		{"src ports reversed", withRule("sports", ports(rule(acl.Permit, "0.0.0.0/0", "0.0.0.0/0", 6), acl.PortRange{First: 200, Last: 100}, acl.AnyPort)),
			[]string{"rule 1", "src ports: first 200 > last 100"}},
		{"dst ports reversed, protocol any", withRule("dports", ports(rule(acl.Permit, "0.0.0.0/0", "0.0.0.0/0", 0), acl.AnyPort, acl.PortRange{First: 9, Last: 8})),
			[]string{"rule 1", "dst ports: first 9 > last 8"}},
		{"missing prefix", withRule("no-src", acl.Rule{Action: acl.Permit, Dst: netip.MustParsePrefix("0.0.0.0/0"), DstPorts: acl.AnyPort, SrcPorts: acl.AnyPort}),
			[]string{"rule 1", "src prefix is missing"}},
		{"IPv4-mapped prefix", withRule("mapped", rule(acl.Permit, "::ffff:10.0.0.0/104", "::/0", 0)), []string{"rule 1", "IPv4-mapped"}},
		{"unknown action", withRule("action", rule(acl.Action(3), "0.0.0.0/0", "0.0.0.0/0", 0)), []string{"rule 1", "action 3"}},
		{"tag too long", acl.ACL{Tag: tag.Prefix + acl.KindTable + ":" + strings.Repeat("x", 60), Rules: []acl.Rule{ok}}, []string{"VPP stores at most 63"}},
		{"foreign tag", acl.ACL{Tag: "operator: mine", Rules: []acl.Rule{ok}}, []string{"not a kube-vpp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := start(t, nodeInterfaces)
			want := acl.Desired{ACLs: []acl.ACL{good, tt.bad}, Bindings: []acl.Binding{
				{SwIfIndex: podA, Output: tags(good)},
				{SwIfIndex: podB, Input: tags(good), Output: tags(tt.bad)},
			}}
			var err error
			// add good, set pod A.
			if n := writes(env, func() { err = d.Sync(context.Background(), want) }); n != 2 {
				t.Errorf("Sync: %d writes, want 2 (%v)", n, env.Sim.CallCounts())
			}
			if err == nil {
				t.Fatal("Sync: no error")
			}
			for _, w := range append(tt.want, tt.bad.Tag, "binding not applied: sw_if_index 3: output acl") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			checkVPP(t, env, "after Sync", wantACLs(good), map[uint32]string{podA: describeLists(nil, tags(good))})
		})
	}
}

// TestSyncReportsBadBindings: a binding that names an ACL not wanted,
// names one ACL twice in a list (VPP: ENTRY_ALREADY_EXISTS), binds an
// interface twice or names an interface VPP lacks is reported and not
// applied: that interface keeps what it had. The others are applied.
func TestSyncReportsBadBindings(t *testing.T) {
	initial := acl.Desired{ACLs: []acl.ACL{web, denyV4}, Bindings: []acl.Binding{{SwIfIndex: podB, Input: tags(denyV4)}}}
	tests := []struct {
		name     string
		bindings []acl.Binding
		want     string
	}{
		{"unknown tag", []acl.Binding{{SwIfIndex: podB, Input: []string{table("nope").Tag}}},
			`sw_if_index 3: input acl "kube-vpp:acl:nope" is not among the wanted ACLs`},
		{"tag twice in a list", []acl.Binding{{SwIfIndex: podB, Output: tags(web, web)}},
			`sw_if_index 3: output list names acl "kube-vpp:acl:web" twice`},
		{"interface bound twice", []acl.Binding{{SwIfIndex: podB, Output: tags(web)}, {SwIfIndex: podB, Input: tags(web)}},
			"sw_if_index 3: bound 2 times"},
		{"no such interface", []acl.Binding{{SwIfIndex: podB, Input: tags(denyV4)}, {SwIfIndex: 42, Input: tags(web)}},
			"sw_if_index 42 not applied: no such interface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := start(t, nodeInterfaces)
			ctx := context.Background()
			if err := d.Sync(ctx, initial); err != nil {
				t.Fatal(err)
			}
			want := initial
			want.Bindings = append([]acl.Binding{{SwIfIndex: podA, Output: tags(web)}}, tt.bindings...)
			err := d.Sync(ctx, want)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Sync: error %v, want one saying %q", err, tt.want)
			}
			checkVPP(t, env, "after Sync", wantACLs(web, denyV4), map[uint32]string{
				podA: describeLists(nil, tags(web)),
				podB: describeLists(tags(denyV4), nil),
			})
		})
	}
}

// TestValidate: the checks Validate makes, by themselves.
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		acl  acl.ACL
		ok   bool
	}{
		{"empty ACL (VPP accepts count 0)", table("empty"), true},
		{"IPv6 rule", table("v6", rule(acl.PermitReflect, "2001:db8::/32", "::/0", 58)), true},
		{"host route", table("host", rule(acl.Deny, "10.1.1.2/32", "10.1.1.3/32", 0)), true},
		{"longest tag", acl.ACL{Tag: tag.Prefix + acl.KindTable + ":" + strings.Repeat("x", 63-len(tag.Prefix+acl.KindTable+":"))}, true},
		{"tag one byte too long", acl.ACL{Tag: tag.Prefix + acl.KindTable + ":" + strings.Repeat("x", 64-len(tag.Prefix+acl.KindTable+":"))}, false},
		{"kube-vpp tag of another kind", acl.ACL{Tag: tag.New("service", "x")}, false},
		{"host bits", table("bits", rule(acl.Deny, "10.1.1.3/31", "0.0.0.0/0", 0)), false},
	}
	for _, tt := range tests {
		if err := tt.acl.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
