package interfaces

import (
	"context"
	"fmt"

	"go.fd.io/govpp/binapi/af_packet"
	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/tapv2"
	"go.fd.io/govpp/binapi/vhost_user"

	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// PodLinks lists every owned pod interface VPP has, by tag, with what its
// kind's dump reports (host name and namespace, socket). It only reads, so
// a restarted agent can adopt what it finds without writing to VPP.
// Interfaces of several kinds can share a pod; their tags differ.
func (d *Driver) PodLinks(ctx context.Context) (map[string]PodLink, error) {
	all, err := d.dump(ctx)
	if err != nil {
		return nil, err
	}
	byIndex := map[uint32]*vppif.SwInterfaceDetails{}
	for _, det := range all {
		if tag.Owned(det.Tag) && tag.Kind(det.Tag) != KindLoopback {
			byIndex[uint32(det.SwIfIndex)] = det
		}
	}
	out := map[string]PodLink{}
	add := func(idx uint32, fill func(*PodLink)) {
		det, ok := byIndex[idx]
		if !ok {
			return
		}
		l := PodLink{
			Tag: det.Tag, SwIfIndex: idx, Name: det.InterfaceName,
			Up: det.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0,
		}
		fill(&l)
		if l.Kind != PodTap {
			l.MAC = macOf(det.L2Address)
		}
		if prev, dup := out[l.Tag]; dup && prev.SwIfIndex < l.SwIfIndex {
			return // a twin from a crash between create and tag: the older one stands
		}
		out[l.Tag] = l
	}

	taps, err := d.tapDump(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range taps {
		add(t.SwIfIndex, func(l *PodLink) {
			l.Kind, l.HostIfName, l.HostNamespace = PodTap, t.HostIfName, t.HostNamespace
		})
	}
	afps, err := d.afPacketDump(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range afps {
		add(uint32(a.SwIfIndex), func(l *PodLink) { l.Kind, l.HostIfName = PodAfPacket, a.HostIfName })
	}
	memifs, sockets, err := d.memifDump(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range memifs {
		add(uint32(m.SwIfIndex), func(l *PodLink) {
			l.Kind, l.SocketPath, l.memifSocketID = PodMemif, sockets[m.SocketID], m.SocketID
		})
	}
	vhosts, err := d.vhostDump(ctx)
	if err != nil {
		return nil, err
	}
	for _, v := range vhosts {
		add(uint32(v.SwIfIndex), func(l *PodLink) {
			l.Kind, l.SocketPath, l.VhostServer = PodVhostUser, v.SockFilename, v.IsServer
		})
	}
	return out, nil
}

// VerifyPod reports whether VPP still has l's interface under l's tag,
// with its current admin state. It reads one interface only.
func (d *Driver) VerifyPod(ctx context.Context, l PodLink) (PodLink, bool, error) {
	list, err := d.dumpOne(ctx, l.SwIfIndex)
	if err != nil {
		return l, false, err
	}
	if len(list) == 0 || list[0].Tag != l.Tag {
		return l, false, nil
	}
	l.Up = list[0].Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0
	l.Name = list[0].InterfaceName
	return l, true, nil
}

// dumpOne asks VPP for one interface by index; the list is empty when VPP
// has none (sw_interface_dump sends nothing for an unknown index).
func (d *Driver) dumpOne(ctx context.Context, swIfIndex uint32) ([]*vppif.SwInterfaceDetails, error) {
	stream, err := d.rpc.SwInterfaceDump(ctx, &vppif.SwInterfaceDump{SwIfIndex: interface_types.InterfaceIndex(swIfIndex)})
	if err != nil {
		return nil, fmt.Errorf("sw_interface_dump %d: %w", swIfIndex, err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("sw_interface_dump %d: %w", swIfIndex, err)
	}
	return list, nil
}

func (d *Driver) tapDump(ctx context.Context) ([]*tapv2.SwInterfaceTapV2Details, error) {
	stream, err := d.tap.SwInterfaceTapV2Dump(ctx, &tapv2.SwInterfaceTapV2Dump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	if err != nil {
		return nil, fmt.Errorf("sw_interface_tap_v2_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("sw_interface_tap_v2_dump: %w", err)
	}
	return list, nil
}

func (d *Driver) afPacketDump(ctx context.Context) ([]*af_packet.AfPacketDetails, error) {
	stream, err := d.afp.AfPacketDump(ctx, &af_packet.AfPacketDump{})
	if err != nil {
		return nil, fmt.Errorf("af_packet_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("af_packet_dump: %w", err)
	}
	return list, nil
}

func (d *Driver) memifDump(ctx context.Context) ([]*memif.MemifDetails, map[uint32]string, error) {
	stream, err := d.memif.MemifDump(ctx, &memif.MemifDump{})
	if err != nil {
		return nil, nil, fmt.Errorf("memif_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, nil, fmt.Errorf("memif_dump: %w", err)
	}
	sstream, err := d.memif.MemifSocketFilenameDump(ctx, &memif.MemifSocketFilenameDump{})
	if err != nil {
		return nil, nil, fmt.Errorf("memif_socket_filename_dump: %w", err)
	}
	socks, err := vppapi.Collect(sstream.Recv)
	if err != nil {
		return nil, nil, fmt.Errorf("memif_socket_filename_dump: %w", err)
	}
	paths := make(map[uint32]string, len(socks))
	for _, s := range socks {
		paths[s.SocketID] = s.SocketFilename
	}
	return list, paths, nil
}

func (d *Driver) vhostDump(ctx context.Context) ([]*vhost_user.SwInterfaceVhostUserDetails, error) {
	stream, err := d.vhost.SwInterfaceVhostUserDump(ctx, &vhost_user.SwInterfaceVhostUserDump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	if err != nil {
		return nil, fmt.Errorf("sw_interface_vhost_user_dump: %w", err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("sw_interface_vhost_user_dump: %w", err)
	}
	return list, nil
}
