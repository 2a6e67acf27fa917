package nat44ed_test

import (
	"context"
	"strings"
	"testing"

	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// newPod creates a loopback standing for a pod interface being plumbed
// and returns its sw_if_index.
func newPod(t *testing.T, env *simtest.Env) uint32 {
	t.Helper()
	rep, err := vppif.NewServiceClient(env.Client).CreateLoopback(context.Background(), &vppif.CreateLoopback{})
	if err != nil {
		t.Fatal(err)
	}
	return uint32(rep.SwIfIndex)
}

func deletePod(t *testing.T, env *simtest.Env, idx uint32) {
	t.Helper()
	if _, err := vppif.NewServiceClient(env.Client).DeleteLoopback(context.Background(),
		&vppif.DeleteLoopback{SwIfIndex: interface_types.InterfaceIndex(idx)}); err != nil {
		t.Fatal(err)
	}
}

// withPod is nodeBase with idx listed as a pod interface.
func withPod(idx uint32) nat44ed.Base {
	b := nodeBase
	b.Interfaces = append(append([]nat44ed.Interface{}, nodeBase.Interfaces...), nat44ed.Interface{SwIfIndex: idx, Inside: true, Outside: true})
	return b
}

// nodeRoles is roles once nodeBase is programmed, plus extra.
func nodeRoles(extra map[uint32]string) map[uint32]string {
	out := map[uint32]string{uplink: "out", podA: "in+out", podB: "in+out", podC: "in+out"}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// TestAttach: Attach gives a pod interface its roles at once, enabling
// the plugin if needed; a Configure that does not list it yet (it read
// the pods before this one) keeps them; once a base has listed it, the
// base decides.
func TestAttach(t *testing.T) {
	env, d := start(t)
	ctx := context.Background()
	pod := newPod(t, env)
	attach := func() error {
		return d.Attach(ctx, []nat44ed.Interface{{SwIfIndex: pod, Inside: true, Outside: true}}, nil)
	}
	steps := []struct {
		name   string
		do     func() error
		writes int
		roles  map[uint32]string
	}{
		// nat44_ed_plugin_enable_disable, forwarding, inside, outside.
		{"attach on a disabled plugin", attach, 4, map[uint32]string{pod: "in+out"}},
		{"attach again", attach, 0, map[uint32]string{pod: "in+out"}},
		// The base's 7 roles and its twice-NAT address; the pod's kept.
		{"configure without the pod", func() error { return d.Configure(ctx, nodeBase) }, 8, nodeRoles(map[uint32]string{pod: "in+out"})},
		{"configure without the pod again", func() error { return d.Configure(ctx, nodeBase) }, 0, nodeRoles(map[uint32]string{pod: "in+out"})},
		{"configure listing the pod", func() error { return d.Configure(ctx, withPod(pod)) }, 0, nodeRoles(map[uint32]string{pod: "in+out"})},
		// nat44_ed_del_interface of inside, then outside.
		{"configure without the pod once listed", func() error { return d.Configure(ctx, nodeBase) }, 2, nodeRoles(nil)},
		{"attach after the base dropped it", attach, 2, nodeRoles(map[uint32]string{pod: "in+out"})},
	}
	for _, st := range steps {
		n := writes(env, func() {
			if err := st.do(); err != nil {
				t.Errorf("%s: %v", st.name, err)
			}
		})
		if n != st.writes {
			t.Errorf("%s: %d writes, want %d (%v)", st.name, n, st.writes, env.Sim.CallCounts())
		}
		if got := roles(t, env); !equalMaps(got, st.roles) {
			t.Errorf("%s: roles %v, want %v", st.name, got, st.roles)
		}
	}
	if rc := runningConfig(t, env); rc.Sessions == 0 || !rc.ForwardingEnabled {
		t.Errorf("plugin: sessions %d forwarding %v, want enabled with forwarding", rc.Sessions, rc.ForwardingEnabled)
	}
}

// TestAttachAddsOnlyMissingRoles: Attach adds what the interface lacks and
// removes nothing.
func TestAttachAddsOnlyMissingRoles(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		ifs    []nat44ed.Interface
		writes int
		roles  map[uint32]string
	}{
		{"uplink given inside too", []nat44ed.Interface{{SwIfIndex: uplink, Inside: true, Outside: true}}, 1,
			nodeRoles(map[uint32]string{uplink: "in+out"})},
		{"pod asked inside only keeps outside", []nat44ed.Interface{{SwIfIndex: podA, Inside: true}}, 0, nodeRoles(nil)},
		{"nothing", nil, 0, nodeRoles(nil)},
	}
	for _, tt := range tests {
		// Back to the base: it lists every interface here, so it also
		// drops what the previous case attached.
		if err := d.Configure(ctx, nodeBase); err != nil {
			t.Fatal(err)
		}
		n := writes(env, func() {
			if err := d.Attach(ctx, tt.ifs, nil); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		})
		if n != tt.writes {
			t.Errorf("%s: %d writes, want %d", tt.name, n, tt.writes)
		}
		if got := roles(t, env); !equalMaps(got, tt.roles) {
			t.Errorf("%s: roles %v, want %v", tt.name, got, tt.roles)
		}
	}
}

// TestAttachedInterfaceDeleted: VPP removes the roles of an interface it
// deletes (nat44_ed_sw_interface_add_del) and gives its index to the next
// one. The driver forgets the attached interface then, so the new one at
// that index is not protected: roles it has are taken as kube-vpp's and
// removed when no base lists it.
func TestAttachedInterfaceDeleted(t *testing.T) {
	tests := []struct {
		name string
		// configureBetween: a Configure runs between the deletion and the
		// new interface.
		configureBetween bool
	}{
		{"configure before the index is reused", true},
		{"index reused before any configure", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, d := configured(t)
			ctx := context.Background()
			pod := newPod(t, env)
			if err := d.Attach(ctx, []nat44ed.Interface{{SwIfIndex: pod, Inside: true, Outside: true}}, nil); err != nil {
				t.Fatal(err)
			}
			deletePod(t, env, pod)
			if tt.configureBetween {
				if n := writes(env, func() {
					if err := d.Configure(ctx, nodeBase); err != nil {
						t.Errorf("Configure after the deletion: %v", err)
					}
				}); n != 0 {
					t.Errorf("Configure after the deletion: %d writes, want 0", n)
				}
			}
			next := newPod(t, env)
			if next != pod {
				t.Fatalf("new loopback got index %d, want the freed %d", next, pod)
			}
			if got := roles(t, env); !equalMaps(got, nodeRoles(nil)) {
				t.Fatalf("roles %v: the new interface should have none", got)
			}
			if n := writes(env, func() {
				if err := d.Configure(ctx, nodeBase); err != nil {
					t.Error(err)
				}
			}); n != 0 {
				t.Errorf("Configure with the new interface: %d writes, want 0", n)
			}
			// A role set on the new interface by something else is
			// kube-vpp's to remove: nothing attached it.
			if _, err := nat.NewServiceClient(env.Client).Nat44InterfaceAddDelFeature(ctx, &nat.Nat44InterfaceAddDelFeature{
				IsAdd: true, Flags: nat_types.NAT_IS_INSIDE, SwIfIndex: interface_types.InterfaceIndex(next)}); err != nil {
				t.Fatal(err)
			}
			if n := writes(env, func() {
				if err := d.Configure(ctx, nodeBase); err != nil {
					t.Error(err)
				}
			}); n != 1 {
				t.Errorf("Configure removing the new interface's role: %d writes, want 1", n)
			}
			if got := roles(t, env); !equalMaps(got, nodeRoles(nil)) {
				t.Errorf("roles %v, want the base's only", got)
			}
		})
	}
}

// TestAttachMissingInterface: VPP refuses a role on an index it does not
// have (VALIDATE_SW_IF_INDEX); the error names it and a later Configure
// neither fails on it nor keeps it.
func TestAttachMissingInterface(t *testing.T) {
	env, d := configured(t)
	ctx := context.Background()
	err := d.Attach(ctx, []nat44ed.Interface{{SwIfIndex: 40, Inside: true}}, nil)
	if err == nil || !strings.Contains(err.Error(), "sw_if_index 40") {
		t.Errorf("Attach of a missing interface: %v, want an error naming sw_if_index 40", err)
	}
	if n := writes(env, func() {
		if err := d.Configure(ctx, nodeBase); err != nil {
			t.Errorf("Configure after: %v", err)
		}
	}); n != 0 {
		t.Errorf("Configure after: %d writes, want 0", n)
	}
}
