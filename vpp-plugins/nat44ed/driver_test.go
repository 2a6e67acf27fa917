package nat44ed_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.fd.io/govpp/binapi/interface_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

func ip4(s string) [4]byte { return ap(s + ":0").Addr().As4() }

// program adds mappings directly, as an older agent or an operator would.
func program(t *testing.T, rpc nat.RPCService, statics []nat.Nat44AddDelStaticMappingV2, lbs []nat.Nat44AddDelLbStaticMapping) {
	t.Helper()
	ctx := context.Background()
	for _, m := range statics {
		m.IsAdd, m.ExternalSwIfIndex = true, interface_types.InterfaceIndex(^uint32(0))
		if _, err := rpc.Nat44AddDelStaticMappingV2(ctx, &m); err != nil {
			t.Fatalf("adding %+v: %v", m, err)
		}
	}
	for _, m := range lbs {
		m.IsAdd, m.LocalNum = true, uint32(len(m.Locals))
		if _, err := rpc.Nat44AddDelLbStaticMapping(ctx, &m); err != nil {
			t.Fatalf("adding %+v: %v", m, err)
		}
	}
}

func lbLocals(ls ...string) []nat.Nat44LbAddrPort {
	var out []nat.Nat44LbAddrPort
	for _, s := range ls {
		l := local(s)
		out = append(out, nat.Nat44LbAddrPort{Addr: l.Addr.Addr().As4(), Port: l.Addr.Port(), Probability: l.Probability})
	}
	return out
}

// TestSyncAddsRemovesFixes: Sync leaves VPP's kube-vpp mappings exactly as
// wanted, touching only those that differ, and never a foreign one; a
// second Sync writes nothing.
func TestSyncAddsRemovesFixes(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	rpc := nat.NewServiceClient(env.Client)
	o2i := nat_types.NAT_IS_OUT2IN_ONLY
	web := mapping("default/web", "10.96.0.1:80", backendA, backendB)                 // in VPP as wanted
	api := mapping("default/api", "10.96.0.2:80", backendA+"@30", backendB, backendC) // one probability differs
	dns := mapping("kube-system/dns", "10.96.0.3:53", backendC+":5353")               // local differs
	db := mapping("default/db", "10.96.0.4:5432", backendB+":5432")                   // not out2in-only in VPP
	hairpin := mapping("default/self", "10.96.0.5:80", backendA)                      // missing
	hairpin.SelfTwiceNAT = true
	stale := mapping("default/old", "10.96.0.9:80", backendA, backendB)
	foreignTag := "operator: keep"
	program(t, rpc,
		[]nat.Nat44AddDelStaticMappingV2{
			{Flags: o2i, Tag: dns.Tag, ExternalIPAddress: ip4("10.96.0.3"), ExternalPort: 53, LocalIPAddress: ip4(backendB), LocalPort: 5353, Protocol: 6},
			{Tag: db.Tag, ExternalIPAddress: ip4("10.96.0.4"), ExternalPort: 5432, LocalIPAddress: ip4(backendB), LocalPort: 5432, Protocol: 6},
			{Flags: o2i, Tag: foreignTag, ExternalIPAddress: ip4("192.0.2.10"), ExternalPort: 80, LocalIPAddress: ip4(backendC), LocalPort: 80, Protocol: 6},
		},
		[]nat.Nat44AddDelLbStaticMapping{
			{Flags: o2i, Tag: web.Tag, ExternalAddr: ip4("10.96.0.1"), ExternalPort: 80, Protocol: 6, Locals: lbLocals(backendA, backendB)},
			{Flags: o2i, Tag: api.Tag, ExternalAddr: ip4("10.96.0.2"), ExternalPort: 80, Protocol: 6, Locals: lbLocals(backendA, backendB, backendC)},
			{Flags: o2i, Tag: stale.Tag, ExternalAddr: ip4("10.96.0.9"), ExternalPort: 80, Protocol: 6, Locals: lbLocals(backendA, backendB)},
		})
	foreign := map[string]string{"192.0.2.10:80": fmt.Sprintf("static proto 6 flags out2in-only tag %q -> %s:80 vrf 0", foreignTag, backendC)}
	all := map[string][]nat44ed.Mapping{
		"default/web": {web}, "default/api": {api}, "kube-system/dns": {dns}, "default/db": {db}, "default/self": {hairpin},
	}
	// stale: del 1; api: del+add of A's local 2; dns: del+add 2; db: del+add 2; self: add 1.
	if n := writes(env, func() {
		if err := d.Sync(ctx, all); err != nil {
			t.Fatal(err)
		}
	}); n != 8 {
		t.Errorf("Sync: %d writes, want 8 (%v)", n, env.Sim.CallCounts())
	}
	if diff := diffMaps(vppMappings(t, env), wantVPP(foreign, web, api, dns, db, hairpin)); diff != "" {
		t.Errorf("VPP after Sync:%s", diff)
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, all); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("second Sync: %d writes, want 0 (%v)", n, env.Sim.CallCounts())
	}
	if got := d.Programmed("default/api"); len(got) != 1 || describe(got[0]) != describe(api) {
		t.Errorf("Programmed(default/api) = %+v, want %+v", got, api)
	}
	// Nothing wanted: every kube-vpp mapping goes, the foreign one stays.
	if err := d.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if diff := diffMaps(vppMappings(t, env), foreign); diff != "" {
		t.Errorf("VPP after an empty Sync:%s", diff)
	}
	if got := d.Programmed("default/web"); got != nil {
		t.Errorf("Programmed after removal: %+v, want nil", got)
	}
}

// TestSyncReportsBadMappings: each bad mapping is reported with its
// service and key; the others are programmed, and what VPP has at a bad
// mapping's key stays.
func TestSyncReportsBadMappings(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	good := mapping("default/good", "10.96.0.1:80", backendA, backendB)
	kept := mapping("default/kept", "10.96.0.2:80", backendA, backendB)
	if err := d.Sync(ctx, map[string][]nat44ed.Mapping{"default/kept": {kept}}); err != nil {
		t.Fatal(err)
	}
	zero := mapping("default/kept", "10.96.0.2:80", backendA, backendB+"@0")
	foreignTag := mapping("default/bad-tag", "10.96.0.3:80", backendA)
	foreignTag.Tag = "my-mapping"
	sctp := mapping("default/sctp", "10.96.0.4:80", backendA)
	sctp.Protocol = 132
	dup := mapping("default/dup", "10.96.0.1:80", backendC) // default/good's key; "default/dup" sorts first
	rpc := nat.NewServiceClient(env.Client)
	program(t, rpc, []nat.Nat44AddDelStaticMappingV2{{Flags: nat_types.NAT_IS_OUT2IN_ONLY, Tag: "operator",
		ExternalIPAddress: ip4("10.96.0.5"), ExternalPort: 80, LocalIPAddress: ip4(backendC), LocalPort: 80, Protocol: 6}}, nil)
	taken := mapping("default/taken", "10.96.0.5:80", backendA)
	err := d.Sync(ctx, map[string][]nat44ed.Mapping{
		"default/good": {good}, "default/kept": {zero}, "default/bad-tag": {foreignTag}, "default/sctp": {sctp},
		"default/dup": {dup}, "default/taken": {taken},
	})
	for _, want := range []string{
		"service default/kept: mapping 10.96.0.2:80/tcp", "probability 0",
		"service default/bad-tag: mapping 10.96.0.3:80/tcp", `tag "my-mapping"`,
		"service default/sctp: mapping 10.96.0.4:80/proto-132",
		"service default/good: mapping 10.96.0.1:80/tcp", "held by service default/dup",
		"service default/taken: mapping 10.96.0.5:80/tcp", `(tag "operator")`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Sync error %v, want it to say %q", err, want)
		}
	}
	got := vppMappings(t, env)
	for _, m := range []nat44ed.Mapping{dup, kept} {
		if got[m.External.String()] != describe(m) {
			t.Errorf("VPP at %s: %q, want %q", m.External, got[m.External.String()], describe(m))
		}
	}
	for _, ext := range []string{"10.96.0.3:80", "10.96.0.4:80"} {
		if g, ok := got[ext]; ok {
			t.Errorf("bad mapping programmed at %s: %q", ext, g)
		}
	}
	if p := d.Programmed("default/kept"); len(p) != 1 || describe(p[0]) != describe(kept) {
		t.Errorf("Programmed(default/kept) = %+v, want the mapping VPP kept", p)
	}
}

// TestUpdateCostsOneService: with 1,000 services synced, one service's
// change costs only its own writes.
func TestUpdateCostsOneService(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	all := map[string][]nat44ed.Mapping{}
	for i := range 1000 {
		svc := fmt.Sprintf("ns/svc-%d", i)
		all[svc] = []nat44ed.Mapping{mapping(svc, fmt.Sprintf("10.96.%d.%d:80", i/250, i%250+1), backendA, backendB)}
	}
	if err := d.Update(ctx, "ns/svc-1", nil); !errors.Is(err, nat44ed.ErrNotSynced) {
		t.Errorf("Update before Sync: %v, want ErrNotSynced", err)
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, all); err != nil {
			t.Fatal(err)
		}
	}); n != 1000 {
		t.Fatalf("Sync of 1,000 services: %d writes, want 1000", n)
	}
	svc := "ns/svc-500"
	grown := mapping(svc, "10.96.2.1:80", backendA, backendB, backendC)
	tests := []struct {
		name   string
		want   []nat44ed.Mapping
		writes int
	}{
		{"one endpoint added", []nat44ed.Mapping{grown}, 1},
		{"unchanged", []nat44ed.Mapping{grown}, 0},
		{"one endpoint removed", all[svc], 1},
		{"second port", append([]nat44ed.Mapping{mapping(svc, "10.96.2.1:443", backendA+":8443", backendB+":8443")}, all[svc]...), 1},
		{"service deleted", nil, 2},
	}
	for _, tt := range tests {
		if n := writes(env, func() {
			if err := d.Update(ctx, svc, tt.want); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		}); n != tt.writes {
			t.Errorf("%s: %d writes, want %d", tt.name, n, tt.writes)
		}
		got := vppMappings(t, env)
		for _, m := range tt.want {
			if got[m.External.String()] != describe(m) {
				t.Errorf("%s: VPP at %s = %q, want %q", tt.name, m.External, got[m.External.String()], describe(m))
			}
		}
		if p := d.Programmed(svc); len(p) != len(tt.want) {
			t.Errorf("%s: Programmed holds %d mappings, want %d", tt.name, len(p), len(tt.want))
		}
	}
	if n := len(vppMappings(t, env)); n != 999 {
		t.Errorf("VPP holds %d mappings, want the other 999", n)
	}
}

// TestUpdateTransitions: each change of one mapping takes the writes VPP
// needs and leaves exactly the new mapping.
func TestUpdateTransitions(t *testing.T) {
	ext := "10.96.0.1:80"
	m := func(locals ...string) nat44ed.Mapping { return mapping("default/web", ext, locals...) }
	withAffinity := m(backendA, backendB)
	withAffinity.Affinity = 10800
	withAffinity.Tag = tag.New(nat44ed.KindService, "default/web:"+ext+":affinity=10800") // services/ puts the timeout in the tag
	twice := m(backendA, backendB)
	twice.TwiceNAT = true
	tests := []struct {
		name     string
		from, to nat44ed.Mapping
		writes   int
	}{
		// Static <-> load-balanced: delete, then add.
		{"2 -> 1 locals", m(backendA, backendB), m(backendA), 2},
		{"1 -> 2 locals", m(backendA), m(backendA, backendB), 2},
		{"static local moves", m(backendA), m(backendB), 2},
		// nat44_lb_static_mapping_add_del_local, adds before deletes.
		{"2 -> 3 locals", m(backendA, backendB), m(backendA, backendB, backendC), 1},
		{"3 -> 2 locals", m(backendA, backendB, backendC), m(backendA, backendC), 1},
		{"both locals replaced", m(backendA, backendB), m(backendC, backendA+":9090"), 4},
		{"probability, 3 locals", m(backendA, backendB, backendC), m(backendA+"@20", backendB, backendC), 2},
		// Two locals: VPP refuses to delete one, so the mapping is replaced.
		{"probability, 2 locals", m(backendA, backendB), m(backendA+"@20", backendB), 2},
		{"affinity on (tag differs)", m(backendA, backendB), withAffinity, 2},
		{"twice-NAT on", m(backendA, backendB), twice, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := configured(t)
			ctx := context.Background()
			if err := d.Sync(ctx, map[string][]nat44ed.Mapping{"default/web": {tt.from}}); err != nil {
				t.Fatal(err)
			}
			if n := writes(env, func() {
				if err := d.Update(ctx, "default/web", []nat44ed.Mapping{tt.to}); err != nil {
					t.Error(err)
				}
			}); n != tt.writes {
				t.Errorf("%d writes, want %d (%v)", n, tt.writes, env.Sim.CallCounts())
			}
			if diff := diffMaps(vppMappings(t, env), wantVPP(nil, tt.to)); diff != "" {
				t.Errorf("VPP:%s", diff)
			}
			if p := d.Programmed("default/web"); len(p) != 1 || describe(p[0]) != describe(tt.to) || p[0].Affinity != tt.to.Affinity {
				t.Errorf("Programmed = %+v, want %+v", p, tt.to)
			}
			// What VPP holds now is what a restarted agent finds: no write.
			fresh := nat44ed.New(env.Client, zaptest.NewLogger(t))
			if n := writes(env, func() {
				if err := fresh.Sync(ctx, map[string][]nat44ed.Mapping{"default/web": {tt.to}}); err != nil {
					t.Error(err)
				}
			}); n != 0 {
				t.Errorf("a new driver's Sync: %d writes, want 0", n)
			}
		})
	}
}

// Update's partial failure leaves the driver knowing what VPP has: a key
// a foreign mapping holds fails, the rest of the service is programmed,
// and once the foreign mapping goes the next Update adds only what is
// missing.
func TestUpdatePartialFailure(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	if err := d.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	rpc := nat.NewServiceClient(env.Client)
	operator := nat.Nat44AddDelStaticMappingV2{Flags: nat_types.NAT_IS_OUT2IN_ONLY, Tag: "operator",
		ExternalIPAddress: ip4("10.96.0.2"), ExternalPort: 80, LocalIPAddress: ip4(backendC), LocalPort: 80, Protocol: 6}
	program(t, rpc, []nat.Nat44AddDelStaticMappingV2{operator}, nil)
	a := mapping("default/web", "10.96.0.1:80", backendA, backendB)
	b := mapping("default/web", "10.96.0.2:80", backendA, backendB)
	err := d.Update(ctx, "default/web", []nat44ed.Mapping{a, b})
	if err == nil || !strings.Contains(err.Error(), "service default/web: adding mapping 10.96.0.2:80/tcp") {
		t.Errorf("Update error %v, want one naming the service and 10.96.0.2:80/tcp", err)
	}
	if p := d.Programmed("default/web"); len(p) != 1 || p[0].External != a.External {
		t.Errorf("Programmed = %+v, want only %s", p, a.External)
	}
	operator.IsAdd, operator.ExternalSwIfIndex = false, interface_types.InterfaceIndex(^uint32(0))
	if _, err := rpc.Nat44AddDelStaticMappingV2(ctx, &operator); err != nil {
		t.Fatal(err)
	}
	if n := writes(env, func() {
		if err := d.Update(ctx, "default/web", []nat44ed.Mapping{a, b}); err != nil {
			t.Error(err)
		}
	}); n != 1 {
		t.Errorf("retry: %d writes, want 1", n)
	}
	if diff := diffMaps(vppMappings(t, env), wantVPP(nil, a, b)); diff != "" {
		t.Errorf("VPP:%s", diff)
	}
}

// TestInvalidateAndSyncAfterRestart: a restarted VPP has nothing; Update
// refuses until a Sync, and Configure + Sync program everything again.
func TestInvalidateAndSyncAfterRestart(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	all := map[string][]nat44ed.Mapping{
		"default/web": {mapping("default/web", "10.96.0.1:80", backendA, backendB)},
		"default/dns": {mapping("default/dns", "10.96.0.10:53", backendC+":5353")},
	}
	if err := d.Sync(ctx, all); err != nil {
		t.Fatal(err)
	}
	env.Restart()
	d.Invalidate()
	if err := d.Update(ctx, "default/web", all["default/web"]); !errors.Is(err, nat44ed.ErrNotSynced) {
		t.Errorf("Update after Invalidate: %v, want ErrNotSynced", err)
	}
	if d.Programmed("default/web") != nil {
		t.Error("Programmed after Invalidate is not nil")
	}
	if err := d.Configure(ctx, nodeBase); err != nil {
		t.Fatal(err)
	}
	if n := writes(env, func() {
		if err := d.Sync(ctx, all); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Errorf("Sync after restart: %d writes, want 2", n)
	}
	if diff := diffMaps(vppMappings(t, env), wantVPP(nil, all["default/web"][0], all["default/dns"][0])); diff != "" {
		t.Errorf("VPP after restart and Sync:%s", diff)
	}

	// A VPP that lost its NAT state without the driver being told: the
	// Configure that enables the plugin again also voids the cache.
	env.Restart()
	if err := d.Configure(ctx, nodeBase); err != nil {
		t.Fatal(err)
	}
	if err := d.Update(ctx, "default/web", all["default/web"]); !errors.Is(err, nat44ed.ErrNotSynced) {
		t.Errorf("Update after the plugin was re-enabled: %v, want ErrNotSynced", err)
	}
}
