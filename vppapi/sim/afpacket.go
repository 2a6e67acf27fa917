package sim

import (
	"cmp"
	"slices"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/af_packet"
	"go.fd.io/govpp/binapi/interface_types"
	"go.uber.org/zap"
)

// afPacketDev is one host interface as af_packet.c keeps it (af_packet_if_t).
type afPacketDev struct {
	instance   uint32 // dev_instance, the pool slot dumps walk in
	swIfIndex  uint32
	hostIfName string
	host       hostInterface
	ipMode     bool
}

// afPacketState is af_packet_main: the devices by sw_if_index, and pool
// slots to reuse.
type afPacketState struct {
	byIndex       map[uint32]*afPacketDev
	freeInstances []uint32
	nextInstance  uint32
}

func (a *afPacketState) byHostName(name string) (*afPacketDev, bool) {
	for _, dev := range a.byIndex {
		if dev.hostIfName == name {
			return dev, true
		}
	}
	return nil, false
}

func (s *Sim) registerAfPacket(r *registry) {
	serve(r, s.afPacketCreateV3, &af_packet.AfPacketCreateV3Reply{})
	serve(r, s.afPacketDelete, &af_packet.AfPacketDeleteReply{})
	serve(r, s.afPacketDump, &af_packet.AfPacketDetails{})
}

// afPacketCreateV3 is vl_api_af_packet_create_v3_t_handler with
// af_packet_create_if. The reply's index is the existing interface's for a
// duplicate, ~0 for a bad mode and 0 for other failures, as VPP answers.
func (s *Sim) afPacketCreateV3(m *af_packet.AfPacketCreateV3) []api.Message {
	reply := func(rv int32, idx uint32) []api.Message {
		return []api.Message{&af_packet.AfPacketCreateV3Reply{Retval: rv, SwIfIndex: interface_types.InterfaceIndex(idx)}}
	}
	var ipMode bool
	switch m.Mode {
	case af_packet.AF_PACKET_API_MODE_ETHERNET:
	case af_packet.AF_PACKET_API_MODE_IP:
		ipMode = true
	default:
		return reply(int32(api.INVALID_VALUE), noIndex)
	}
	name := apiString(m.HostIfName)
	st := &s.st.afPackets
	if dev, dup := st.byHostName(name); dup {
		return reply(int32(api.IF_ALREADY_EXISTS), dev.swIfIndex)
	}
	// Under NoHost the host interface is taken as present and up; with no
	// Linux index, admin state changes reach no host link.
	var host hostInterface
	var herr *hostErr
	if !s.noHost {
		host, herr = bindHostInterface(name)
	}
	if herr != nil {
		s.log.Info("af_packet_create_v3 failed", zap.String("host_if_name", name), zap.Int32("retval", herr.rv), zap.Error(herr))
		return reply(herr.rv, 0)
	}
	ifc := s.st.newIface("host-"+name, ifAfPacket) // format_af_packet_device_name
	ifc.linkUp = true                              // LINK_UP at creation
	if ipMode {
		ifc.l3Only = true
	} else {
		ifc.mac = [6]byte(m.HwAddr)
		if m.UseRandomHwAddr {
			ifc.mac = generateMAC()
		}
	}
	inst := st.nextInstance
	if n := len(st.freeInstances); n > 0 {
		inst, st.freeInstances = st.freeInstances[n-1], st.freeInstances[:n-1]
	} else {
		st.nextInstance++
	}
	st.byIndex[ifc.index] = &afPacketDev{instance: inst, swIfIndex: ifc.index, hostIfName: name, host: host, ipMode: ipMode}
	s.log.Info("af_packet interface created", zap.String("interface", ifc.name), zap.Uint32("sw_if_index", ifc.index))
	return reply(0, ifc.index)
}

// afPacketDelete is af_packet_delete_if: by host name; an unknown one is
// SYSCALL_ERROR_1. The Linux interface stays as it is.
func (s *Sim) afPacketDelete(m *af_packet.AfPacketDelete) []api.Message {
	name := apiString(m.HostIfName)
	st := &s.st.afPackets
	dev, ok := st.byHostName(name)
	if !ok {
		return []api.Message{&af_packet.AfPacketDeleteReply{Retval: int32(api.SYSCALL_ERROR_1)}}
	}
	ifc := s.st.ifaces[dev.swIfIndex]
	ifc.linkUp = false
	s.st.deleteIface(ifc)
	delete(st.byIndex, dev.swIfIndex)
	st.freeInstances = append(st.freeInstances, dev.instance)
	s.log.Info("af_packet interface deleted", zap.String("interface", ifc.name))
	return []api.Message{&af_packet.AfPacketDeleteReply{}}
}

// afPacketDump lists the devices in pool order.
func (s *Sim) afPacketDump(*af_packet.AfPacketDump) []api.Message {
	devs := make([]*afPacketDev, 0, len(s.st.afPackets.byIndex))
	for _, dev := range s.st.afPackets.byIndex {
		devs = append(devs, dev)
	}
	slices.SortFunc(devs, func(a, b *afPacketDev) int { return cmp.Compare(a.instance, b.instance) })
	out := make([]api.Message, 0, len(devs))
	for _, dev := range devs {
		out = append(out, &af_packet.AfPacketDetails{SwIfIndex: interface_types.InterfaceIndex(dev.swIfIndex), HostIfName: dev.hostIfName})
	}
	return out
}

// afPacketAdminUpDown is af_packet_interface_admin_up_down: the hardware
// link follows the admin state and so does the Linux interface, except for
// a bridge. A NoHost interface has no Linux index (0) to follow.
func (st *state) afPacketAdminUpDown(ifc *iface, up bool) {
	dev, ok := st.afPackets.byIndex[ifc.index]
	if !ok || dev.host.isBridge {
		return
	}
	ifc.linkUp = up
	if dev.host.index > 0 {
		_ = setHostLinkState(dev.host.index, up) // VPP ignores the result
	}
}
