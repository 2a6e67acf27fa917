package nat44ed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/interface_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
)

// anyTable is vrf_id ~0 for a pool address: usable from every table.
const anyTable = ^uint32(0)

// Configure makes the plugin's base what base says: the plugin enabled,
// forwarding on, the interface roles exactly base.Interfaces (roles on
// base.ForeignInterfaces are never touched, every other role is taken as
// kube-vpp's) and the twice-NAT pool exactly base.TwiceNATAddresses (the
// plain pool is not kube-vpp's and stays). It reads VPP every time (three
// dumps, O(interfaces + addresses)) rather than trusting a cache, because
// VPP removes the roles of a deleted interface itself and reuses its index
// for the next one; in sync it sends no write. An invalid base changes
// nothing.
func (d *Driver) Configure(ctx context.Context, base Base) error {
	if err := base.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enable(ctx); err != nil {
		return err
	}
	return errors.Join(d.configureInterfaces(ctx, base), d.configurePool(ctx, base.TwiceNATAddresses),
		d.configureIdentities(ctx, base.Identities))
}

// enable turns the plugin and forwarding on where they are off. VPP has no
// "is enabled" query: nat44_plugin_enable stores its config in
// sm->rconfig with sessions never 0 (0 asks for the 63*1024 default), and
// nat44_plugin_disable zeroes it, so nat44_show_running_config's sessions
// is 0 exactly while the plugin is disabled. Enabling resets forwarding
// (nat44_plugin_enable sets forwarding_enabled = 0), and it starts from
// empty state: what the driver knew of mappings is void. d.mu is held.
func (d *Driver) enable(ctx context.Context) error {
	rc, err := d.rpc.Nat44ShowRunningConfig(ctx, &nat.Nat44ShowRunningConfig{})
	if err != nil {
		return fmt.Errorf("nat44_show_running_config: %w", err)
	}
	forwarding := rc.ForwardingEnabled
	if rc.Sessions == 0 {
		if _, err := d.rpc.Nat44EdPluginEnableDisable(ctx, &nat.Nat44EdPluginEnableDisable{Enable: true}); err != nil {
			return fmt.Errorf("enabling the NAT44-ED plugin: %w", err)
		}
		d.forgetAll()
		forwarding = false
		d.log.Info("enabled NAT44-ED plugin")
	}
	if forwarding {
		return nil
	}
	// Without forwarding, out2in drops every packet that matches no
	// session or mapping, and in2out translates pod traffic leaving
	// through an outside interface (see vppapi/sim/nat44ed_eval.go).
	if _, err := d.rpc.Nat44ForwardingEnableDisable(ctx, &nat.Nat44ForwardingEnableDisable{Enable: true}); err != nil {
		return fmt.Errorf("enabling NAT44-ED forwarding: %w", err)
	}
	d.log.Info("enabled NAT44-ED forwarding")
	return nil
}

// configureInterfaces adds the missing roles first, then removes the
// unwanted ones. nat44_ed_del_interface removes only the named role from
// an interface that has both, and the whole interface from one that has
// one role, so removing inside then outside clears both, and a role that
// changes keeps NAT on the interface throughout. d.mu is held.
func (d *Driver) configureInterfaces(ctx context.Context, base Base) error {
	have, err := d.roles(ctx)
	if err != nil {
		return err
	}
	want := map[uint32]Interface{}
	for _, i := range base.Interfaces {
		want[i.SwIfIndex] = i
	}
	foreign := map[uint32]bool{}
	for _, idx := range base.ForeignInterfaces {
		foreign[idx] = true
	}

	var errs []error
	for _, idx := range slices.Sorted(maps.Keys(want)) {
		w, h := want[idx], have[idx]
		if w.Inside && !h.Inside {
			errs = append(errs, d.role(ctx, idx, true, true))
		}
		if w.Outside && !h.Outside {
			errs = append(errs, d.role(ctx, idx, false, true))
		}
	}
	for idx := range d.attached {
		if _, listed := want[idx]; listed || !haveAny(have, idx) {
			delete(d.attached, idx) // in the base now, or deleted with its roles
		}
	}
	for _, idx := range slices.Sorted(maps.Keys(have)) {
		if foreign[idx] || d.attached[idx] {
			continue
		}
		w, h := want[idx], have[idx]
		if h.Inside && !w.Inside {
			errs = append(errs, d.role(ctx, idx, true, false))
		}
		if h.Outside && !w.Outside {
			errs = append(errs, d.role(ctx, idx, false, false))
		}
	}
	return errors.Join(errs...)
}

// roles reads every interface's NAT roles (nat44_interface_dump).
func (d *Driver) roles(ctx context.Context) (map[uint32]Interface, error) {
	stream, err := d.rpc.Nat44InterfaceDump(ctx, &nat.Nat44InterfaceDump{})
	if err != nil {
		return nil, fmt.Errorf("nat44_interface_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("nat44_interface_dump: %w", err)
	}
	have := make(map[uint32]Interface, len(list))
	for _, i := range list {
		idx := uint32(i.SwIfIndex)
		have[idx] = Interface{SwIfIndex: idx, Inside: i.Flags&nat_types.NAT_IS_INSIDE != 0, Outside: i.Flags&nat_types.NAT_IS_OUTSIDE != 0}
	}
	return have, nil
}

func haveAny(have map[uint32]Interface, idx uint32) bool {
	_, ok := have[idx]
	return ok
}

// Attach gives interfaces their roles now, adding what they lack and
// removing nothing: it serves a pod being plumbed, whose interfaces need
// NAT before its first packet, while a Configure running at the same time
// may have read the pods before this one. Configure keeps these roles
// until a base lists the interface or VPP deletes it (taking its roles).
func (d *Driver) Attach(ctx context.Context, ifs []Interface, ids []Identity) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.enable(ctx); err != nil {
		return err
	}
	have, err := d.roles(ctx)
	if err != nil {
		return err
	}
	if d.attached == nil {
		d.attached = map[uint32]bool{}
	}
	var errs []error
	for _, i := range ifs {
		h := have[i.SwIfIndex]
		if i.Inside && !h.Inside {
			errs = append(errs, d.role(ctx, i.SwIfIndex, true, true))
		}
		if i.Outside && !h.Outside {
			errs = append(errs, d.role(ctx, i.SwIfIndex, false, true))
		}
		d.attached[i.SwIfIndex] = true
	}
	errs = append(errs, d.addIdentities(ctx, ids))
	return errors.Join(errs...)
}

// role adds or removes one role of an interface; removing what VPP no
// longer has (the interface was deleted meanwhile) is no error.
func (d *Driver) role(ctx context.Context, idx uint32, inside, add bool) error {
	name, flags := "outside", nat_types.NatConfigFlags(0)
	if inside {
		name, flags = "inside", nat_types.NAT_IS_INSIDE
	}
	_, err := d.rpc.Nat44InterfaceAddDelFeature(ctx, &nat.Nat44InterfaceAddDelFeature{IsAdd: add, Flags: flags,
		SwIfIndex: interface_types.InterfaceIndex(idx)})
	if !add && (isRetval(err, api.NO_SUCH_ENTRY) || isRetval(err, api.INVALID_SW_IF_INDEX)) {
		return nil
	}
	verb := verbOf(add, "setting")
	if err != nil {
		return fmt.Errorf("%s NAT44-ED role %s on sw_if_index %d: %w", verb, name, idx, err)
	}
	d.log.Info(verb+" NAT44-ED interface role", zap.Uint32("sw_if_index", idx), zap.String("role", name))
	return nil
}

// configurePool makes the twice-NAT pool exactly want, one address per
// nat44_add_del_address_range, adding before deleting. d.mu is held.
func (d *Driver) configurePool(ctx context.Context, want []netip.Addr) error {
	stream, err := d.rpc.Nat44AddressDump(ctx, &nat.Nat44AddressDump{})
	if err != nil {
		return fmt.Errorf("nat44_address_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return fmt.Errorf("nat44_address_dump: %w", err)
	}
	have := map[netip.Addr]bool{}
	for _, a := range list {
		if a.Flags&nat_types.NAT_IS_TWICE_NAT != 0 {
			have[netip.AddrFrom4(a.IPAddress)] = true
		}
	}
	wanted := map[netip.Addr]bool{}
	var errs []error
	for _, a := range want {
		wanted[a] = true
		if !have[a] {
			errs = append(errs, d.twiceNATAddress(ctx, a, true))
		}
	}
	for _, a := range slices.SortedFunc(maps.Keys(have), netip.Addr.Compare) {
		if !wanted[a] {
			errs = append(errs, d.twiceNATAddress(ctx, a, false))
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) twiceNATAddress(ctx context.Context, a netip.Addr, add bool) error {
	_, err := d.rpc.Nat44AddDelAddressRange(ctx, &nat.Nat44AddDelAddressRange{FirstIPAddress: ip4(a), LastIPAddress: ip4(a),
		VrfID: anyTable, IsAdd: add, Flags: nat_types.NAT_IS_TWICE_NAT})
	if !add && isRetval(err, api.NO_SUCH_ENTRY) {
		return nil
	}
	verb := verbOf(add, "adding")
	if err != nil {
		return fmt.Errorf("%s twice-NAT address %s: %w", verb, a, err)
	}
	d.log.Info(verb+" twice-NAT address", zap.Stringer("address", a))
	return nil
}

// verbOf names a write for logs and errors: added (in the caller's word)
// or removing.
func verbOf(add bool, adding string) string {
	if add {
		return adding
	}
	return "removing"
}
