package interfaces

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/af_packet"
	"go.fd.io/govpp/binapi/ethernet_types"
	vppif "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/tapv2"
	"go.fd.io/govpp/binapi/vhost_user"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// PodKind is the kind of VPP interface that carries a pod's traffic.
type PodKind string

// The pod interface kinds.
const (
	// PodTap is a TUN-mode tap (tap_create_v3) whose host end VPP creates
	// inside the pod's network namespace: L3 only, so neither side needs ARP.
	PodTap PodKind = "tap"
	// PodAfPacket attaches VPP with af_packet to the host end of a veth pair
	// whose other end is in the pod; for nodes without /dev/vhost-net.
	PodAfPacket PodKind = "af_packet"
	// PodMemif is a memif on which VPP is master, listening on a per-pod socket.
	PodMemif PodKind = "memif"
	// PodVhostUser is a vhost-user interface for a VM pod.
	PodVhostUser PodKind = "vhost-user"
)

// PodInterface is a VPP interface the agent makes for a pod.
type PodInterface struct {
	// Tag names the pod and container (tag.New(kind, key)); it must be
	// owned and unique.
	Tag  string
	Kind PodKind
	// HostIfName is, for a tap, the device's name in the pod's namespace
	// (eth0); for af_packet, the host end of the veth that VPP attaches.
	HostIfName string
	// HostNamespace is the pod's network namespace (a path) for a tap.
	HostNamespace string
	// MTU is the host end's MTU for a tap; 0 leaves VPP's default.
	MTU uint32
	// SocketPath is the memif or vhost-user socket.
	SocketPath string
	// VhostServer makes VPP the vhost-user server (it creates the socket);
	// otherwise VPP connects to a socket the VM creates.
	VhostServer bool
	// Unnumbered is the interface whose addresses this one borrows (the
	// node loopback), so VPP can route to and answer from it without
	// spending pod addresses on VPP's side.
	Unnumbered uint32
}

// PodLink is a pod interface as VPP has it.
type PodLink struct {
	Tag       string
	Kind      PodKind
	SwIfIndex uint32
	Name      string // VPP's name: tun0, host-kvpa1b2c3, memif3/0, VirtualEthernet0/0/1
	MAC       net.HardwareAddr
	Up        bool
	// HostIfName, HostNamespace and SocketPath are as the kind reports
	// them (see PodInterface).
	HostIfName    string
	HostNamespace string
	SocketPath    string
	VhostServer   bool
	memifSocketID uint32
}

// CreatePod makes p in VPP: the device, its tag, its unnumbered binding
// and admin up. On failure whatever it made is removed again, so a failed
// create leaves VPP as it was.
func (d *Driver) CreatePod(ctx context.Context, p PodInterface) (PodLink, error) {
	if !tag.Owned(p.Tag) {
		return PodLink{}, fmt.Errorf("pod interface tag %q is not a kube-vpp tag", p.Tag)
	}
	link, err := d.createDevice(ctx, p)
	if err != nil {
		return PodLink{}, fmt.Errorf("pod interface %s: %w", p.Tag, err)
	}
	log := d.log.With(zap.String("tag", p.Tag), zap.Uint32("sw_if_index", link.SwIfIndex))
	undo := func(cause error) (PodLink, error) {
		if err := d.DeletePod(context.WithoutCancel(ctx), link); err != nil {
			log.Warn("removing a half-made pod interface failed", zap.Error(err))
		}
		return PodLink{}, fmt.Errorf("pod interface %s (sw_if_index %d): %w", p.Tag, link.SwIfIndex, cause)
	}
	swIf := interface_types.InterfaceIndex(link.SwIfIndex)
	if p.Kind != PodTap && p.Kind != PodVhostUser {
		// Only tap and vhost-user take a tag at creation.
		if _, err := d.rpc.SwInterfaceTagAddDel(ctx, &vppif.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: swIf, Tag: p.Tag}); err != nil {
			return undo(fmt.Errorf("sw_interface_tag_add_del: %w", err))
		}
	}
	if _, err := d.rpc.SwInterfaceSetUnnumbered(ctx, &vppif.SwInterfaceSetUnnumbered{
		SwIfIndex: interface_types.InterfaceIndex(p.Unnumbered), UnnumberedSwIfIndex: swIf, IsAdd: true,
	}); err != nil {
		return undo(fmt.Errorf("sw_interface_set_unnumbered to sw_if_index %d: %w", p.Unnumbered, err))
	}
	if _, err := d.rpc.SwInterfaceSetFlags(ctx, &vppif.SwInterfaceSetFlags{SwIfIndex: swIf, Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP}); err != nil {
		return undo(fmt.Errorf("sw_interface_set_flags: %w", err))
	}
	det, err := d.detailsOf(ctx, link.SwIfIndex)
	if err != nil {
		return undo(err)
	}
	link.Tag, link.Name, link.Up = p.Tag, det.InterfaceName, true
	if p.Kind != PodTap { // a TUN has no L2 address
		link.MAC = macOf(det.L2Address)
	}
	log.Info("created pod interface", zap.String("kind", string(p.Kind)), zap.String("name", link.Name))
	return link, nil
}

func (d *Driver) createDevice(ctx context.Context, p PodInterface) (PodLink, error) {
	link := PodLink{Kind: p.Kind, HostIfName: p.HostIfName, HostNamespace: p.HostNamespace, SocketPath: p.SocketPath, VhostServer: p.VhostServer}
	switch p.Kind {
	case PodTap:
		// host_namespace and host_if_name are string[64]: a longer value
		// would reach VPP cut short and name another namespace.
		if len(p.HostNamespace) > 63 || len(p.HostIfName) > 15 {
			return link, fmt.Errorf("tap %s in %s: namespace path (at most 63 bytes) or interface name (at most 15) too long for tap_create_v3", p.HostIfName, p.HostNamespace)
		}
		req := &tapv2.TapCreateV3{
			ID:           ^uint32(0),
			UseRandomMac: true,
			NumRxQueues:  1, NumTxQueues: 1, RxRingSz: 256, TxRingSz: 256,
			TapFlags:         tapv2.TAP_API_FLAG_TUN,
			HostNamespaceSet: true, HostNamespace: p.HostNamespace,
			HostIfNameSet: true, HostIfName: p.HostIfName,
			HostMtuSet: p.MTU != 0, HostMtuSize: p.MTU,
			Tag: p.Tag,
		}
		rep, err := d.tap.TapCreateV3(ctx, req)
		if err != nil {
			return link, fmt.Errorf("tap_create_v3 %s in %s: %w", p.HostIfName, p.HostNamespace, err)
		}
		link.SwIfIndex = uint32(rep.SwIfIndex)
	case PodAfPacket:
		rep, err := d.afp.AfPacketCreateV3(ctx, &af_packet.AfPacketCreateV3{
			Mode: af_packet.AF_PACKET_API_MODE_ETHERNET,
			// Without it VPP copies the request's (zero) hw_addr as the MAC.
			UseRandomHwAddr: true,
			HostIfName:      p.HostIfName,
			NumRxQueues:     1, NumTxQueues: 1,
			Flags: af_packet.AF_PACKET_API_FLAG_QDISC_BYPASS | af_packet.AF_PACKET_API_FLAG_CKSUM_GSO,
		})
		if err != nil {
			return link, fmt.Errorf("af_packet_create_v3 %s: %w", p.HostIfName, err)
		}
		link.SwIfIndex = uint32(rep.SwIfIndex)
	case PodMemif:
		return d.createMemif(ctx, p, link)
	case PodVhostUser:
		if err := os.MkdirAll(filepath.Dir(p.SocketPath), 0o755); err != nil {
			return link, fmt.Errorf("vhost-user socket folder: %w", err)
		}
		rep, err := d.vhost.CreateVhostUserIfV2(ctx, &vhost_user.CreateVhostUserIfV2{
			IsServer: p.VhostServer, SockFilename: p.SocketPath, Tag: p.Tag,
		})
		if err != nil {
			return link, fmt.Errorf("create_vhost_user_if_v2 %s: %w", p.SocketPath, err)
		}
		link.SwIfIndex = uint32(rep.SwIfIndex)
	default:
		return link, fmt.Errorf("unknown pod interface kind %q", p.Kind)
	}
	return link, nil
}

// createMemif registers the pod's socket file with VPP, then a master
// memif on it; VPP listens on the socket once the master exists.
func (d *Driver) createMemif(ctx context.Context, p PodInterface, link PodLink) (PodLink, error) {
	if err := os.MkdirAll(filepath.Dir(p.SocketPath), 0o755); err != nil {
		return link, fmt.Errorf("memif socket folder: %w", err)
	}
	sock, err := d.memif.MemifSocketFilenameAddDelV2(ctx, &memif.MemifSocketFilenameAddDelV2{
		IsAdd: true, SocketID: ^uint32(0), SocketFilename: p.SocketPath,
	})
	if err != nil {
		return link, fmt.Errorf("memif_socket_filename_add_del_v2 %s: %w", p.SocketPath, err)
	}
	rep, err := d.memif.MemifCreateV2(ctx, &memif.MemifCreateV2{
		Role: memif.MEMIF_ROLE_API_MASTER, Mode: memif.MEMIF_MODE_API_ETHERNET,
		SocketID: sock.SocketID, RxQueues: 1, TxQueues: 1, RingSize: 1024, BufferSize: 2048,
	})
	if err != nil {
		if _, delErr := d.memif.MemifSocketFilenameAddDelV2(ctx, &memif.MemifSocketFilenameAddDelV2{SocketID: sock.SocketID}); delErr != nil {
			d.log.Warn("removing a memif socket after a failed create failed", zap.Uint32("socket_id", sock.SocketID), zap.Error(delErr))
		}
		return link, fmt.Errorf("memif_create_v2 on %s: %w", p.SocketPath, err)
	}
	link.SwIfIndex, link.memifSocketID = uint32(rep.SwIfIndex), sock.SocketID
	return link, nil
}

// DeletePod removes a pod interface made by CreatePod (or found by
// PodLinks). An interface VPP no longer has is not an error.
func (d *Driver) DeletePod(ctx context.Context, l PodLink) error {
	swIf := interface_types.InterfaceIndex(l.SwIfIndex)
	var err error
	switch l.Kind {
	case PodTap:
		_, err = d.tap.TapDeleteV2(ctx, &tapv2.TapDeleteV2{SwIfIndex: swIf})
	case PodAfPacket:
		_, err = d.afp.AfPacketDelete(ctx, &af_packet.AfPacketDelete{HostIfName: l.HostIfName})
		if isRetval(err, api.SYSCALL_ERROR_1) { // af_packet_delete_if: no such host name
			err = nil
		}
	case PodMemif:
		if _, err = d.memif.MemifDelete(ctx, &memif.MemifDelete{SwIfIndex: swIf}); err == nil || gone(err) {
			_, err = d.memif.MemifSocketFilenameAddDelV2(ctx, &memif.MemifSocketFilenameAddDelV2{SocketID: l.memifSocketID})
			if isRetval(err, api.INVALID_ARGUMENT) { // memif_socket_filename_add_del: no such socket id
				err = nil
			}
		}
	case PodVhostUser:
		_, err = d.vhost.DeleteVhostUserIf(ctx, &vhost_user.DeleteVhostUserIf{SwIfIndex: swIf})
	default:
		return fmt.Errorf("pod interface %s: unknown kind %q", l.Tag, l.Kind)
	}
	if err != nil && !gone(err) {
		return fmt.Errorf("deleting pod interface %s (%s, sw_if_index %d): %w", l.Tag, l.Kind, l.SwIfIndex, err)
	}
	d.log.Info("deleted pod interface", zap.String("tag", l.Tag), zap.Uint32("sw_if_index", l.SwIfIndex),
		zap.String("kind", string(l.Kind)), zap.String("name", l.Name))
	return nil
}

// gone is true for VPP's answers meaning the object is already absent.
func gone(err error) bool {
	var rv api.VPPApiError
	if !errors.As(err, &rv) {
		return false
	}
	switch rv {
	case api.INVALID_SW_IF_INDEX, api.INVALID_INTERFACE, api.NO_SUCH_ENTRY:
		return true
	}
	return false
}

func isRetval(err error, want api.VPPApiError) bool {
	var rv api.VPPApiError
	return errors.As(err, &rv) && rv == want
}

func macOf(m ethernet_types.MacAddress) net.HardwareAddr {
	if m == (ethernet_types.MacAddress{}) {
		return nil
	}
	return net.HardwareAddr(m[:])
}

func (d *Driver) detailsOf(ctx context.Context, swIfIndex uint32) (*vppif.SwInterfaceDetails, error) {
	list, err := d.dumpOne(ctx, swIfIndex)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("sw_if_index %d: VPP lists no such interface", swIfIndex)
	}
	return list[0], nil
}
