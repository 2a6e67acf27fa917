// Package interfaces is the driver for VPP's interfaces: it makes the
// loopbacks kube-vpp owns match the desired state, by tag, and leaves every
// other interface alone. Pod
// interfaces (tap, af_packet, memif, vhost-user) are made and removed one
// pod at a time (CreatePod, DeletePod) and listed by PodLinks.
package interfaces

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/af_packet"
	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	vppip "go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/tapv2"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// KindLoopback is the tag kind of loopbacks this driver owns.
const KindLoopback = "loopback"

// Loopback is a loopback interface the agent wants.
type Loopback struct {
	// Tag identifies the interface (tag.New(KindLoopback, key)).
	Tag string
	// Addresses are the interface's addresses with their prefix length.
	Addresses []netip.Prefix
	// VRF is the IPv4 and IPv6 table the interface is bound to.
	VRF uint32
	Up  bool
}

// Desired is the whole set of interfaces this driver keeps.
type Desired struct {
	Loopbacks []Loopback
}

// Indexes maps each desired interface's tag to its sw_if_index after a Sync.
type Indexes map[string]uint32

// Driver is the only code that sends VPP's interface messages.
type Driver struct {
	rpc   vppif.RPCService
	ip    vppip.RPCService
	tap   tapv2.RPCService
	afp   af_packet.RPCService
	memif memif.RPCService
	vhost vhost_user.RPCService
	log   *zap.Logger
}

// New returns a driver sending on conn.
func New(conn api.Connection, log *zap.Logger) *Driver {
	return &Driver{
		rpc: vppif.NewServiceClient(conn), ip: vppip.NewServiceClient(conn),
		tap: tapv2.NewServiceClient(conn), afp: af_packet.NewServiceClient(conn),
		memif: memif.NewServiceClient(conn), vhost: vhost_user.NewServiceClient(conn),
		log: log.Named("interfaces"),
	}
}

// Messages lists every message the driver sends or expects, for the
// compatibility check at connect.
func Messages() []api.Message {
	return []api.Message{
		&vppif.SwInterfaceDump{}, &vppif.SwInterfaceDetails{},
		&vppif.CreateLoopback{}, &vppif.CreateLoopbackReply{},
		&vppif.DeleteLoopback{}, &vppif.DeleteLoopbackReply{},
		&vppif.SwInterfaceTagAddDel{}, &vppif.SwInterfaceTagAddDelReply{},
		&vppif.SwInterfaceSetFlags{}, &vppif.SwInterfaceSetFlagsReply{},
		&vppif.SwInterfaceSetTable{}, &vppif.SwInterfaceSetTableReply{},
		&vppif.SwInterfaceGetTable{}, &vppif.SwInterfaceGetTableReply{},
		&vppif.SwInterfaceAddDelAddress{}, &vppif.SwInterfaceAddDelAddressReply{},
		&vppip.IPAddressDump{}, &vppip.IPAddressDetails{},
		&vppif.SwInterfaceSetUnnumbered{}, &vppif.SwInterfaceSetUnnumberedReply{},
		&tapv2.TapCreateV3{}, &tapv2.TapCreateV3Reply{},
		&tapv2.TapDeleteV2{}, &tapv2.TapDeleteV2Reply{},
		&tapv2.SwInterfaceTapV2Dump{}, &tapv2.SwInterfaceTapV2Details{},
		&af_packet.AfPacketCreateV3{}, &af_packet.AfPacketCreateV3Reply{},
		&af_packet.AfPacketDelete{}, &af_packet.AfPacketDeleteReply{},
		&af_packet.AfPacketDump{}, &af_packet.AfPacketDetails{},
		&memif.MemifSocketFilenameAddDelV2{}, &memif.MemifSocketFilenameAddDelV2Reply{},
		&memif.MemifSocketFilenameDump{}, &memif.MemifSocketFilenameDetails{},
		&memif.MemifCreateV2{}, &memif.MemifCreateV2Reply{},
		&memif.MemifDelete{}, &memif.MemifDeleteReply{},
		&memif.MemifDump{}, &memif.MemifDetails{},
		&vhost_user.CreateVhostUserIfV2{}, &vhost_user.CreateVhostUserIfV2Reply{},
		&vhost_user.DeleteVhostUserIf{}, &vhost_user.DeleteVhostUserIfReply{},
		&vhost_user.SwInterfaceVhostUserDump{}, &vhost_user.SwInterfaceVhostUserDetails{},
	}
}

// Sync makes VPP's owned interfaces equal want: it creates what is missing,
// corrects tables, addresses and admin state of what exists, and deletes
// owned interfaces nobody wants. Interfaces without a kube-vpp tag are never
// touched. An error on one interface does not stop the others; all are
// returned joined, each naming its tag.
func (d *Driver) Sync(ctx context.Context, want Desired) (Indexes, error) {
	current, err := d.dump(ctx)
	if err != nil {
		return nil, err
	}
	owned, extra := ownedByTag(current)
	var errs []error
	for _, dup := range extra {
		// A crash between create and tag can leave a twin; it is ours to remove.
		errs = append(errs, d.delete(ctx, dup))
	}

	idx := Indexes{}
	wanted := map[string]bool{}
	for _, lo := range sorted(want.Loopbacks) {
		wanted[lo.Tag] = true
		i, err := d.syncLoopback(ctx, lo, owned[lo.Tag])
		if err != nil {
			errs = append(errs, fmt.Errorf("loopback %s: %w", lo.Tag, err))
			continue
		}
		idx[lo.Tag] = i
	}
	for t, det := range owned {
		if !wanted[t] {
			errs = append(errs, d.delete(ctx, det))
		}
	}
	return idx, errors.Join(errs...)
}

func sorted(l []Loopback) []Loopback {
	out := slices.Clone(l)
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

func ownedByTag(list []*vppif.SwInterfaceDetails) (owned map[string]*vppif.SwInterfaceDetails, extra []*vppif.SwInterfaceDetails) {
	owned = map[string]*vppif.SwInterfaceDetails{}
	for _, det := range list {
		// Pod interfaces have their own lifecycle (CNI calls, PodLinks).
		if tag.Kind(det.Tag) != KindLoopback {
			continue
		}
		if prev, dup := owned[det.Tag]; dup {
			if det.SwIfIndex < prev.SwIfIndex {
				owned[det.Tag], det = det, prev
			}
			extra = append(extra, det)
			continue
		}
		owned[det.Tag] = det
	}
	return owned, extra
}

func (d *Driver) syncLoopback(ctx context.Context, lo Loopback, have *vppif.SwInterfaceDetails) (uint32, error) {
	var (
		swIf    interface_types.InterfaceIndex
		created bool
	)
	if have == nil {
		rep, err := d.rpc.CreateLoopback(ctx, &vppif.CreateLoopback{})
		if err != nil {
			return 0, fmt.Errorf("create_loopback: %w", err)
		}
		swIf, created = rep.SwIfIndex, true
		// VPP's create_loopback takes no tag; until the tag lands a crash
		// would orphan this interface, which is why Sync removes twins.
		if _, err := d.rpc.SwInterfaceTagAddDel(ctx, &vppif.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: swIf, Tag: lo.Tag}); err != nil {
			return 0, fmt.Errorf("tagging sw_if_index %d: %w", swIf, err)
		}
		d.log.Info("created loopback", zap.String("tag", lo.Tag), zap.Uint32("sw_if_index", uint32(swIf)))
	} else {
		swIf = have.SwIfIndex
	}
	if err := d.syncL3(ctx, swIf, lo.Tag, lo.VRF, lo.Addresses, created); err != nil {
		return 0, err
	}
	isUp := have != nil && have.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0
	if lo.Up != isUp {
		var flags interface_types.IfStatusFlags
		if lo.Up {
			flags = interface_types.IF_STATUS_API_FLAG_ADMIN_UP
		}
		if _, err := d.rpc.SwInterfaceSetFlags(ctx, &vppif.SwInterfaceSetFlags{SwIfIndex: swIf, Flags: flags}); err != nil {
			return 0, fmt.Errorf("sw_interface_set_flags: %w", err)
		}
		d.log.Info("set admin state", zap.String("tag", lo.Tag), zap.Uint32("sw_if_index", uint32(swIf)), zap.Bool("up", lo.Up))
	}
	return uint32(swIf), nil
}

func (d *Driver) delete(ctx context.Context, det *vppif.SwInterfaceDetails) error {
	if _, err := d.rpc.DeleteLoopback(ctx, &vppif.DeleteLoopback{SwIfIndex: det.SwIfIndex}); err != nil {
		return fmt.Errorf("deleting %s (sw_if_index %d, %s): %w", det.InterfaceName, det.SwIfIndex, det.Tag, err)
	}
	d.log.Info("deleted interface", zap.String("tag", det.Tag), zap.Uint32("sw_if_index", uint32(det.SwIfIndex)),
		zap.String("name", det.InterfaceName))
	return nil
}

func (d *Driver) dump(ctx context.Context) ([]*vppif.SwInterfaceDetails, error) {
	stream, err := d.rpc.SwInterfaceDump(ctx, &vppif.SwInterfaceDump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	if err != nil {
		return nil, fmt.Errorf("sw_interface_dump: %w", err)
	}
	out, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("sw_interface_dump: %w", err)
	}
	return out, nil
}

// Lookup finds an interface by its VPP name (for example the uplink
// GigabitEthernet0/8/0), owned or not; found is false when VPP has none.
func (d *Driver) Lookup(ctx context.Context, name string) (swIfIndex uint32, found bool, err error) {
	stream, err := d.rpc.SwInterfaceDump(ctx, &vppif.SwInterfaceDump{
		SwIfIndex: ^interface_types.InterfaceIndex(0), NameFilterValid: true, NameFilter: name,
	})
	if err != nil {
		return 0, false, fmt.Errorf("sw_interface_dump %q: %w", name, err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return 0, false, fmt.Errorf("sw_interface_dump %q: %w", name, err)
	}
	for _, det := range list {
		// VPP's name filter matches substrings; only the exact name counts.
		if det.InterfaceName == name {
			return uint32(det.SwIfIndex), true, nil
		}
	}
	return 0, false, nil
}
