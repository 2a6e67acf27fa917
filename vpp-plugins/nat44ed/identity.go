package nat44ed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/interface_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

func (i Identity) tag() string {
	return tag.New(KindIdentity, i.Addr.String()+"/"+strconv.Itoa(int(i.Protocol)))
}

// identities reads the identity mappings kube-vpp made, by tag.
func (d *Driver) identities(ctx context.Context) (map[string]Identity, error) {
	stream, err := d.rpc.Nat44IdentityMappingDump(ctx, &nat.Nat44IdentityMappingDump{})
	if err != nil {
		return nil, fmt.Errorf("nat44_identity_mapping_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("nat44_identity_mapping_dump: %w", err)
	}
	have := map[string]Identity{}
	for _, m := range list {
		if tag.Kind(m.Tag) != KindIdentity {
			continue
		}
		have[m.Tag] = Identity{Addr: netip.AddrFrom4(m.IPAddress), Protocol: m.Protocol}
	}
	return have, nil
}

// configureIdentities makes kube-vpp's identity mappings exactly want;
// d.mu is held.
func (d *Driver) configureIdentities(ctx context.Context, want []Identity) error {
	have, err := d.identities(ctx)
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	var errs []error
	for _, i := range want {
		t := i.tag()
		wanted[t] = true
		if _, ok := have[t]; !ok {
			errs = append(errs, d.identity(ctx, i, true))
		}
	}
	for t, i := range have {
		if !wanted[t] {
			errs = append(errs, d.identity(ctx, i, false))
		}
	}
	return errors.Join(errs...)
}

// addIdentities adds the identity mappings VPP lacks, removing none;
// d.mu is held.
func (d *Driver) addIdentities(ctx context.Context, ids []Identity) error {
	if len(ids) == 0 {
		return nil
	}
	have, err := d.identities(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, i := range ids {
		if _, ok := have[i.tag()]; !ok {
			errs = append(errs, d.identity(ctx, i, true))
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) identity(ctx context.Context, i Identity, add bool) error {
	if !i.Addr.Is4() {
		return fmt.Errorf("identity mapping %s/%d: not IPv4", i.Addr, i.Protocol)
	}
	_, err := d.rpc.Nat44AddDelIdentityMapping(ctx, &nat.Nat44AddDelIdentityMapping{IsAdd: add,
		IPAddress: ip4(i.Addr), Protocol: i.Protocol, SwIfIndex: interface_types.InterfaceIndex(^uint32(0)), Tag: i.tag()})
	if !add && isRetval(err, api.NO_SUCH_ENTRY) {
		return nil
	}
	verb := verbOf(add, "adding")
	if err != nil {
		return fmt.Errorf("%s identity mapping %s protocol %d: %w", verb, i.Addr, i.Protocol, err)
	}
	d.log.Info(verb+" identity mapping", zap.Stringer("address", i.Addr), zap.Uint8("protocol", i.Protocol))
	return nil
}
