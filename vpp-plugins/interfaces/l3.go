package interfaces

import (
	"context"
	"fmt"
	"net/netip"

	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	vppip "go.fd.io/govpp/binapi/ip"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// syncL3 binds the interface to vrf and makes its addresses equal want.
// VPP refuses to move an interface with addresses to another table, so a
// table change first removes the addresses and then re-adds them.
func (d *Driver) syncL3(ctx context.Context, swIf interface_types.InterfaceIndex, tg string, vrf uint32, want []netip.Prefix, fresh bool) error {
	log := d.log.With(zap.String("tag", tg), zap.Uint32("sw_if_index", uint32(swIf)))
	var have []netip.Prefix
	if !fresh {
		var err error
		if have, err = d.addresses(ctx, swIf); err != nil {
			return err
		}
	}
	for _, ipv6 := range []bool{false, true} {
		cur := uint32(0)
		if !fresh {
			rep, err := d.rpc.SwInterfaceGetTable(ctx, &vppif.SwInterfaceGetTable{SwIfIndex: swIf, IsIPv6: ipv6})
			if err != nil {
				return fmt.Errorf("sw_interface_get_table: %w", err)
			}
			cur = rep.VrfID
		}
		if cur == vrf {
			continue
		}
		if len(have) > 0 {
			if _, err := d.rpc.SwInterfaceAddDelAddress(ctx, &vppif.SwInterfaceAddDelAddress{SwIfIndex: swIf, DelAll: true}); err != nil {
				return fmt.Errorf("clearing addresses before a table change: %w", err)
			}
			have = nil
		}
		if _, err := d.rpc.SwInterfaceSetTable(ctx, &vppif.SwInterfaceSetTable{SwIfIndex: swIf, IsIPv6: ipv6, VrfID: vrf}); err != nil {
			return fmt.Errorf("sw_interface_set_table (ipv6=%v) to %d: %w", ipv6, vrf, err)
		}
		log.Info("bound to table", zap.Uint32("vrf", vrf), zap.Bool("ipv6", ipv6))
	}

	wantSet := map[netip.Prefix]bool{}
	for _, p := range want {
		wantSet[p] = true
	}
	haveSet := map[netip.Prefix]bool{}
	for _, p := range have {
		haveSet[p] = true
		if !wantSet[p] {
			if err := d.setAddress(ctx, swIf, p, false); err != nil {
				return err
			}
			log.Info("removed address", zap.Stringer("address", p))
		}
	}
	for _, p := range want {
		if !haveSet[p] {
			if err := d.setAddress(ctx, swIf, p, true); err != nil {
				return err
			}
			log.Info("added address", zap.Stringer("address", p))
		}
	}
	return nil
}

func (d *Driver) setAddress(ctx context.Context, swIf interface_types.InterfaceIndex, p netip.Prefix, add bool) error {
	_, err := d.rpc.SwInterfaceAddDelAddress(ctx, &vppif.SwInterfaceAddDelAddress{
		SwIfIndex: swIf, IsAdd: add, Prefix: addr.FromInterfaceAddress(p),
	})
	if err != nil {
		verb := "adding"
		if !add {
			verb = "removing"
		}
		return fmt.Errorf("%s address %s: %w", verb, p, err)
	}
	return nil
}

// addresses lists the interface's IPv4 and IPv6 addresses.
func (d *Driver) addresses(ctx context.Context, swIf interface_types.InterfaceIndex) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, ipv6 := range []bool{false, true} {
		stream, err := d.ip.IPAddressDump(ctx, &vppip.IPAddressDump{SwIfIndex: swIf, IsIPv6: ipv6})
		if err != nil {
			return nil, fmt.Errorf("ip_address_dump: %w", err)
		}
		list, err := vppapi.Collect(stream.Recv)
		if err != nil {
			return nil, fmt.Errorf("ip_address_dump: %w", err)
		}
		for _, det := range list {
			out = append(out, addr.ToInterfaceAddress(det.Prefix))
		}
	}
	return out, nil
}
