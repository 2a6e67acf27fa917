package nat44ed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// noInterface is ~0: a mapping with an external address, not one bound
// to an interface's address.
const noInterface = interface_types.InterfaceIndex(^uint32(0))

// shape is what VPP holds of a mapping beyond the Mapping type: its flags
// and whether anything of it is in a table other than 0. kube-vpp
// programs every mapping out2in-only, in table 0.
type shape struct {
	flags      nat_types.NatConfigFlags
	otherTable bool
}

func shapeOf(m Mapping) shape { return shape{flags: flagsOf(m)} }

// flagsOf is what kube-vpp sends for m: out2in-only, so the backend's own
// connections keep their source and the external address needs no pool
// (nat44_ed_add_lb_static_mapping checks the pool only otherwise).
func flagsOf(m Mapping) nat_types.NatConfigFlags {
	f := nat_types.NAT_IS_OUT2IN_ONLY
	if m.TwiceNAT {
		f |= nat_types.NAT_IS_TWICE_NAT
	}
	if m.SelfTwiceNAT {
		f |= nat_types.NAT_IS_SELF_TWICE_NAT
	}
	return f
}

// same reports whether VPP holding e is VPP holding want. A plain
// mapping's local has no probability.
func (e *entry) same(want Mapping) bool {
	have := e.m
	if e.shape != shapeOf(want) || have.Tag != want.Tag || have.Affinity != want.Affinity ||
		have.TwiceNAT != want.TwiceNAT || have.SelfTwiceNAT != want.SelfTwiceNAT || len(have.Locals) != len(want.Locals) {
		return false
	}
	if len(want.Locals) == 1 {
		return have.Locals[0].Addr == want.Locals[0].Addr
	}
	hl := probabilities(have.Locals)
	for _, l := range want.Locals {
		if p, ok := hl[l.Addr]; !ok || p != l.Probability {
			return false
		}
	}
	return true
}

// localsOnly reports whether e becomes want by adding and deleting
// locals: both load-balanced, with the same tag, affinity and flags.
func (e *entry) localsOnly(want Mapping) bool {
	have := e.m
	return e.shape == shapeOf(want) && len(have.Locals) >= 2 && len(want.Locals) >= 2 &&
		have.Tag == want.Tag && have.Affinity == want.Affinity &&
		have.TwiceNAT == want.TwiceNAT && have.SelfTwiceNAT == want.SelfTwiceNAT
}

func probabilities(ls []Local) map[netip.AddrPort]uint8 {
	out := make(map[netip.AddrPort]uint8, len(ls))
	for _, l := range ls {
		out[l.Addr] = l.Probability
	}
	return out
}

// dump reads VPP's static and load-balanced mappings: those tagged
// KindService are kube-vpp's; of the others only the key and tag are
// kept, to name them when they are in the way. Interface-bound records
// (external_sw_if_index set) are never kube-vpp's and are skipped.
func (d *Driver) dump(ctx context.Context) (have map[Key]*entry, foreign map[Key]string, _ error) {
	have, foreign = map[Key]*entry{}, map[Key]string{}
	add := func(e *entry) {
		k := e.m.Key()
		if tag.Kind(e.m.Tag) != KindService {
			foreign[k] = e.m.Tag
			return
		}
		have[k] = e
	}
	statics, err := d.rpc.Nat44StaticMappingDump(ctx, &nat.Nat44StaticMappingDump{})
	if err != nil {
		return nil, nil, fmt.Errorf("nat44_static_mapping_dump: %w", err)
	}
	list, err := vppapi.Collect(statics.Recv)
	if err != nil {
		return nil, nil, fmt.Errorf("nat44_static_mapping_dump: %w", err)
	}
	for _, s := range list {
		if s.ExternalSwIfIndex != noInterface {
			continue
		}
		add(&entry{m: Mapping{
			Tag:      s.Tag,
			External: netip.AddrPortFrom(netip.AddrFrom4(s.ExternalIPAddress), s.ExternalPort),
			Protocol: Protocol(s.Protocol),
			Locals:   []Local{{Addr: netip.AddrPortFrom(netip.AddrFrom4(s.LocalIPAddress), s.LocalPort)}},
			TwiceNAT: s.Flags&nat_types.NAT_IS_TWICE_NAT != 0, SelfTwiceNAT: s.Flags&nat_types.NAT_IS_SELF_TWICE_NAT != 0,
		}, shape: shape{flags: s.Flags, otherTable: s.VrfID != 0}})
	}
	lbs, err := d.rpc.Nat44LbStaticMappingDump(ctx, &nat.Nat44LbStaticMappingDump{})
	if err != nil {
		return nil, nil, fmt.Errorf("nat44_lb_static_mapping_dump: %w", err)
	}
	lbList, err := vppapi.Collect(lbs.Recv)
	if err != nil {
		return nil, nil, fmt.Errorf("nat44_lb_static_mapping_dump: %w", err)
	}
	for _, s := range lbList {
		// send_nat44_lb_static_mapping_details leaves affinity 0: Sync
		// takes it from the wanted mapping when the tags agree.
		e := &entry{m: Mapping{
			Tag:      s.Tag,
			External: netip.AddrPortFrom(netip.AddrFrom4(s.ExternalAddr), s.ExternalPort),
			Protocol: Protocol(s.Protocol),
			TwiceNAT: s.Flags&nat_types.NAT_IS_TWICE_NAT != 0, SelfTwiceNAT: s.Flags&nat_types.NAT_IS_SELF_TWICE_NAT != 0,
		}, shape: shape{flags: s.Flags}}
		for _, l := range s.Locals {
			e.m.Locals = append(e.m.Locals, Local{Addr: netip.AddrPortFrom(netip.AddrFrom4(l.Addr), l.Port), Probability: l.Probability})
			e.shape.otherTable = e.shape.otherTable || l.VrfID != 0
		}
		add(e)
	}
	return have, foreign, nil
}

// add programs m for service; d.mu is held.
func (d *Driver) add(ctx context.Context, service string, m Mapping) error {
	var err error
	if len(m.Locals) == 1 {
		_, err = d.rpc.Nat44AddDelStaticMappingV2(ctx, staticMessage(m, flagsOf(m), true))
	} else {
		msg := &nat.Nat44AddDelLbStaticMapping{IsAdd: true, Flags: flagsOf(m), ExternalAddr: ip4(m.External.Addr()),
			ExternalPort: m.External.Port(), Protocol: uint8(m.Protocol), Affinity: m.Affinity, Tag: m.Tag,
			LocalNum: uint32(len(m.Locals))}
		for _, l := range m.Locals {
			msg.Locals = append(msg.Locals, apiLocal(l))
		}
		_, err = d.rpc.Nat44AddDelLbStaticMapping(ctx, msg)
	}
	if err != nil {
		return fmt.Errorf("service %s: adding mapping %s (%s): %w", service, m.Key(), m.Tag, err)
	}
	e := &entry{m: m, shape: shapeOf(m)}
	d.have[m.Key()] = e
	d.own(e, service)
	d.log.Info("added mapping", zap.String("service", service), zap.Stringer("mapping", m.Key()),
		zap.String("tag", m.Tag), zap.Int("locals", len(m.Locals)))
	d.log.Debug("mapping locals", zap.Stringer("mapping", m.Key()), zap.Stringers("locals", localAddrs(m.Locals)))
	return nil
}

// remove deletes e from VPP, with the flags VPP holds it with; a mapping
// VPP no longer has is gone just as well. d.mu is held.
func (d *Driver) remove(ctx context.Context, e *entry) error {
	var err error
	m := e.m
	if len(m.Locals) == 1 {
		_, err = d.rpc.Nat44AddDelStaticMappingV2(ctx, staticMessage(m, e.shape.flags, false))
	} else {
		_, err = d.rpc.Nat44AddDelLbStaticMapping(ctx, &nat.Nat44AddDelLbStaticMapping{Flags: e.shape.flags,
			ExternalAddr: ip4(m.External.Addr()), ExternalPort: m.External.Port(), Protocol: uint8(m.Protocol)})
	}
	if err != nil && !isRetval(err, api.NO_SUCH_ENTRY) {
		return fmt.Errorf("service %s: deleting mapping %s (%s): %w", orStale(e.service), m.Key(), m.Tag, err)
	}
	d.forget(e)
	d.log.Info("removed mapping", zap.String("service", e.service), zap.Stringer("mapping", m.Key()), zap.String("tag", m.Tag))
	return nil
}

// updateLocals turns the load-balanced mapping e into want with
// nat44_lb_static_mapping_add_del_local: new locals first, then changed
// probabilities (delete and add again), then the locals that go, since
// VPP refuses to leave fewer than two. Sessions of the locals that stay
// are untouched. When a probability changes on a two-local mapping no
// local can be deleted, and the mapping is replaced instead. After each
// write e follows what VPP holds. d.mu is held.
func (d *Driver) updateLocals(ctx context.Context, service string, e *entry, want Mapping) error {
	have := probabilities(e.m.Locals)
	wantP := probabilities(want.Locals)
	var added, changed, gone []Local
	for _, l := range want.Locals {
		p, ok := have[l.Addr]
		switch {
		case !ok:
			added = append(added, l)
		case p != l.Probability:
			changed = append(changed, l)
		}
	}
	for _, l := range e.m.Locals {
		if _, ok := wantP[l.Addr]; !ok {
			gone = append(gone, l)
		}
	}
	if len(changed) > 0 && len(e.m.Locals)+len(added) < 3 {
		if err := d.remove(ctx, e); err != nil {
			return err
		}
		return d.add(ctx, service, want)
	}
	d.own(e, service)
	fail := func(err error, verb string, l Local) error {
		return fmt.Errorf("service %s: mapping %s (%s): %s local %s: %w", service, want.Key(), want.Tag, verb, l.Addr, err)
	}
	for _, l := range added {
		if err := d.local(ctx, e, l, true); err != nil {
			return fail(err, "adding", l)
		}
	}
	for _, l := range changed {
		old := Local{Addr: l.Addr, Probability: have[l.Addr]}
		if err := d.local(ctx, e, old, false); err != nil {
			return fail(err, "deleting (for a new probability)", l)
		}
		if err := d.local(ctx, e, l, true); err != nil {
			return fail(err, "adding (with a new probability)", l)
		}
	}
	for _, l := range gone {
		if err := d.local(ctx, e, l, false); err != nil {
			return fail(err, "deleting", l)
		}
	}
	e.m = want.clone()
	d.log.Info("updated mapping locals", zap.String("service", service), zap.Stringer("mapping", want.Key()),
		zap.String("tag", want.Tag), zap.Stringers("added", localAddrs(added)),
		zap.Stringers("reweighted", localAddrs(changed)), zap.Stringers("removed", localAddrs(gone)))
	return nil
}

// local adds or deletes one local of e's mapping and records it in e.
func (d *Driver) local(ctx context.Context, e *entry, l Local, add bool) error {
	_, err := d.rpc.Nat44LbStaticMappingAddDelLocal(ctx, &nat.Nat44LbStaticMappingAddDelLocal{IsAdd: add,
		ExternalAddr: ip4(e.m.External.Addr()), ExternalPort: e.m.External.Port(), Protocol: uint8(e.m.Protocol),
		Local: apiLocal(l)})
	if err != nil {
		return err
	}
	e.m.Locals = slices.DeleteFunc(e.m.Locals, func(x Local) bool { return x.Addr == l.Addr })
	if add {
		e.m.Locals = append(e.m.Locals, l)
	}
	return nil
}

func staticMessage(m Mapping, flags nat_types.NatConfigFlags, add bool) *nat.Nat44AddDelStaticMappingV2 {
	msg := &nat.Nat44AddDelStaticMappingV2{IsAdd: add, Flags: flags,
		LocalIPAddress: ip4(m.Locals[0].Addr.Addr()), LocalPort: m.Locals[0].Addr.Port(),
		ExternalIPAddress: ip4(m.External.Addr()), ExternalPort: m.External.Port(),
		Protocol: uint8(m.Protocol), ExternalSwIfIndex: noInterface}
	if add {
		msg.Tag = m.Tag
	}
	return msg
}

func apiLocal(l Local) nat.Nat44LbAddrPort {
	return nat.Nat44LbAddrPort{Addr: ip4(l.Addr.Addr()), Port: l.Addr.Port(), Probability: l.Probability}
}

func ip4(a netip.Addr) ip_types.IP4Address { return ip_types.IP4Address(a.As4()) }

func localAddrs(ls []Local) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ls))
	for i, l := range ls {
		out[i] = l.Addr
	}
	return out
}

func isRetval(err error, want api.VPPApiError) bool {
	var rv api.VPPApiError
	return errors.As(err, &rv) && rv == want
}

func orStale(service string) string {
	if service == "" {
		return "(none)"
	}
	return service
}
