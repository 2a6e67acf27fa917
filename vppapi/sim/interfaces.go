package sim

import (
	"strings"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// tagMax is the longest tag VPP keeps: it zeroes the last of the 64 bytes.
const tagMax = 63

func (s *Sim) registerInterfaces(r *registry) {
	serve(r, s.swInterfaceDump, &interfaces.SwInterfaceDetails{})
	serve(r, s.swInterfaceSetFlags, &interfaces.SwInterfaceSetFlagsReply{})
	serve(r, s.swInterfaceAddDelAddress, &interfaces.SwInterfaceAddDelAddressReply{})
	serve(r, s.swInterfaceSetTable, &interfaces.SwInterfaceSetTableReply{})
	serve(r, s.swInterfaceGetTable, &interfaces.SwInterfaceGetTableReply{})
	serve(r, s.swInterfaceTagAddDel, &interfaces.SwInterfaceTagAddDelReply{})
	serve(r, s.createLoopback, &interfaces.CreateLoopbackReply{})
	serve(r, s.createLoopbackInstance, &interfaces.CreateLoopbackInstanceReply{})
	serve(r, s.deleteLoopback, &interfaces.DeleteLoopbackReply{})
}

// apiIface is VALIDATE_SW_IF_INDEX: the index must name a live interface.
func (s *Sim) apiIface(idx interface_types.InterfaceIndex) (*iface, int32) {
	ifc, ok := s.st.ifaces[uint32(idx)]
	if !ok {
		return nil, int32(api.INVALID_SW_IF_INDEX)
	}
	return ifc, 0
}

// swInterfaceDump follows vl_api_sw_interface_dump_t_handler: without a
// name filter, an index other than 0 and ~0 selects one interface (none if
// it doesn't exist); otherwise every interface is sent, filtered by a
// case-insensitive substring of its name when the filter is valid.
func (s *Sim) swInterfaceDump(m *interfaces.SwInterfaceDump) []api.Message {
	idx := uint32(m.SwIfIndex)
	if !m.NameFilterValid && idx != noIndex && idx != 0 {
		ifc, ok := s.st.ifaces[idx]
		if !ok {
			return nil
		}
		return []api.Message{s.ifaceDetails(ifc)}
	}
	filter := strings.ToLower(m.NameFilter)
	var out []api.Message
	for _, ifc := range s.st.sortedIfaces() {
		if m.NameFilterValid && !strings.Contains(strings.ToLower(ifc.name), filter) {
			continue
		}
		out = append(out, s.ifaceDetails(ifc))
	}
	return out
}

// ifaceDetails is send_sw_interface_details for a hardware interface.
func (s *Sim) ifaceDetails(ifc *iface) *interfaces.SwInterfaceDetails {
	d := &interfaces.SwInterfaceDetails{
		SwIfIndex:        interface_types.InterfaceIndex(ifc.index),
		SupSwIfIndex:     ifc.index,
		Type:             interface_types.IF_API_TYPE_HARDWARE,
		Mtu:              []uint32{ifc.mtu(), 0, 0, 0},
		InterfaceName:    ifc.name,
		InterfaceDevType: ifc.devType(),
		Tag:              ifc.tag,
	}
	if ifc.adminUp {
		d.Flags |= interface_types.IF_STATUS_API_FLAG_ADMIN_UP
	}
	// LINK_UP is the hardware flag alone: a tap's link is up while it is
	// admin down.
	if ifc.link() {
		d.Flags |= interface_types.IF_STATUS_API_FLAG_LINK_UP
	}
	if ifc.kind != ifLocal {
		d.LinkMtu = uint16(ifc.mtu())
	}
	// Only interfaces of the ethernet hardware class carry an L2 address.
	if ifc.kind != ifLocal && !ifc.l3Only {
		d.L2Address = ethernet_types.MacAddress(ifc.mac)
	}
	if ifc.kind == ifEthernet {
		d.LinkDuplex = interface_types.LINK_DUPLEX_API_FULL
		d.LinkSpeed = 10_000_000 // kbit/s, a 10G NIC
	}
	return d
}

// swInterfaceSetFlags only looks at the admin-up bit, as VPP does.
func (s *Sim) swInterfaceSetFlags(m *interfaces.SwInterfaceSetFlags) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	if rv == 0 {
		s.st.setAdmin(ifc, m.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0)
	}
	return []api.Message{&interfaces.SwInterfaceSetFlagsReply{Retval: rv}}
}

// swInterfaceAddDelAddress follows vl_api_sw_interface_add_del_address_t_handler;
// del_all removes every address and always succeeds.
func (s *Sim) swInterfaceAddDelAddress(m *interfaces.SwInterfaceAddDelAddress) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	if rv == 0 {
		if m.DelAll {
			s.st.delAllAddresses(ifc)
		} else {
			a := addr.ToAddr(m.Prefix.Address)
			rv = s.st.addDelAddress(ifc, a, int(m.Prefix.Len), !m.IsAdd)
		}
	}
	return []api.Message{&interfaces.SwInterfaceAddDelAddressReply{Retval: rv}}
}

func familyOf(isIPv6 bool) afi {
	if isIPv6 {
		return af6
	}
	return af4
}

func (s *Sim) swInterfaceSetTable(m *interfaces.SwInterfaceSetTable) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	if rv == 0 {
		rv = s.st.setTable(ifc, familyOf(m.IsIPv6), m.VrfID)
	}
	return []api.Message{&interfaces.SwInterfaceSetTableReply{Retval: rv}}
}

func (s *Sim) swInterfaceGetTable(m *interfaces.SwInterfaceGetTable) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	vrf := noIndex
	if rv == 0 {
		vrf = ifc.table[familyOf(m.IsIPv6)]
	}
	return []api.Message{&interfaces.SwInterfaceGetTableReply{Retval: rv, VrfID: vrf}}
}

// swInterfaceTagAddDel refuses an empty tag on add and keeps at most 63 bytes.
func (s *Sim) swInterfaceTagAddDel(m *interfaces.SwInterfaceTagAddDel) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	switch {
	case rv != 0:
	case !m.IsAdd:
		ifc.tag = ""
	case m.Tag == "" || m.Tag[0] == 0:
		rv = int32(api.INVALID_VALUE)
	default:
		tag := m.Tag
		if i := strings.IndexByte(tag, 0); i >= 0 {
			tag = tag[:i]
		}
		if len(tag) > tagMax {
			tag = tag[:tagMax]
		}
		ifc.tag = tag
	}
	return []api.Message{&interfaces.SwInterfaceTagAddDelReply{Retval: rv}}
}

func (s *Sim) createLoopback(m *interfaces.CreateLoopback) []api.Message {
	idx, rv := s.newLoopback(m.MacAddress, false, 0)
	return []api.Message{&interfaces.CreateLoopbackReply{Retval: rv, SwIfIndex: idx}}
}

func (s *Sim) createLoopbackInstance(m *interfaces.CreateLoopbackInstance) []api.Message {
	idx, rv := s.newLoopback(m.MacAddress, m.IsSpecified, m.UserInstance)
	return []api.Message{&interfaces.CreateLoopbackInstanceReply{Retval: rv, SwIfIndex: idx}}
}

// newLoopback answers ~0 as the index when creation fails, as VPP does.
func (s *Sim) newLoopback(mac ethernet_types.MacAddress, specified bool, inst uint32) (interface_types.InterfaceIndex, int32) {
	ifc, rv := s.st.createLoopback([6]byte(mac), specified, inst)
	if rv != 0 {
		return interface_types.InterfaceIndex(noIndex), rv
	}
	return interface_types.InterfaceIndex(ifc.index), 0
}

func (s *Sim) deleteLoopback(m *interfaces.DeleteLoopback) []api.Message {
	return []api.Message{&interfaces.DeleteLoopbackReply{Retval: s.st.deleteLoopback(uint32(m.SwIfIndex))}}
}
