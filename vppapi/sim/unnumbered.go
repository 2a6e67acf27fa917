package sim

import (
	"net/netip"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
)

func (s *Sim) registerUnnumbered(r *registry) {
	serve(r, s.swInterfaceSetUnnumbered, &interfaces.SwInterfaceSetUnnumberedReply{})
	serve(r, s.ipUnnumberedDump, &ip.IPUnnumberedDetails{})
}

// swInterfaceSetUnnumbered is vl_api_sw_interface_set_unnumbered_t_handler.
// The message names are backwards: unnumbered_sw_if_index borrows the
// addresses of sw_if_index. The borrower must exist (INVALID_SW_IF_INDEX);
// the lender only when binding (INVALID_SW_IF_INDEX_2). Binding an
// interface to itself is not refused.
func (s *Sim) swInterfaceSetUnnumbered(m *interfaces.SwInterfaceSetUnnumbered) []api.Message {
	reply := func(rv int32) []api.Message {
		return []api.Message{&interfaces.SwInterfaceSetUnnumberedReply{Retval: rv}}
	}
	borrower, ok := s.st.ifaces[uint32(m.UnnumberedSwIfIndex)]
	if !ok {
		return reply(int32(api.INVALID_SW_IF_INDEX))
	}
	if _, ok := s.st.ifaces[uint32(m.SwIfIndex)]; m.IsAdd && !ok {
		return reply(int32(api.INVALID_SW_IF_INDEX_2))
	}
	return reply(s.st.updateUnnumbered(borrower, uint32(m.SwIfIndex), m.IsAdd))
}

// updateUnnumbered is vnet_sw_interface_update_unnumbered: binding needs
// both interfaces in the same tables (vnet_sw_interface_check_table_same,
// else UNEXPECTED_INTF_STATE) and may move an existing binding; unbinding an
// interface that isn't unnumbered does nothing. The interface source adds no
// routes for borrowed addresses, so the FIB is untouched.
func (st *state) updateUnnumbered(ifc *iface, lender uint32, enable bool) int32 {
	if !enable {
		if ifc.unnumbered {
			ifc.unnumbered, ifc.unnumberedOf = false, noIndex
		}
		return 0
	}
	if other, ok := st.ifaces[lender]; ok && other.table != ifc.table {
		return int32(api.UNEXPECTED_INTF_STATE)
	}
	ifc.unnumbered, ifc.unnumberedOf = true, lender
	return 0
}

// ipUnnumberedDump is vl_api_ip_unnumbered_dump_t_handler: one interface
// (nothing when it isn't unnumbered or doesn't exist) or all of them.
func (s *Sim) ipUnnumberedDump(m *ip.IPUnnumberedDump) []api.Message {
	details := func(ifc *iface) *ip.IPUnnumberedDetails {
		return &ip.IPUnnumberedDetails{
			SwIfIndex:   interface_types.InterfaceIndex(ifc.index),
			IPSwIfIndex: interface_types.InterfaceIndex(ifc.unnumberedOf),
		}
	}
	if idx := uint32(m.SwIfIndex); idx != noIndex {
		ifc, ok := s.st.ifaces[idx]
		if !ok || !ifc.unnumbered {
			return nil
		}
		return []api.Message{details(ifc)}
	}
	var out []api.Message
	for _, ifc := range s.st.sortedIfaces() {
		if ifc.unnumbered {
			out = append(out, details(ifc))
		}
	}
	return out
}

// usedAddresses is foreach_ip_interface_address honouring unnumbered: an
// unnumbered interface uses the addresses of its lender (none when the
// lender is gone).
func (st *state) usedAddresses(ifc *iface, af afi) []netip.Prefix {
	if !ifc.unnumbered {
		return ifc.addrs[af]
	}
	if lender, ok := st.ifaces[ifc.unnumberedOf]; ok {
		return lender.addrs[af]
	}
	return nil
}

// ipEnabled says whether ip4-input/ip6-input accept packets on the
// interface (ip4_sw_interface_enable_disable's count is not zero): an
// address, an unnumbered binding, or for IPv6 a link-local address.
func (st *state) ipEnabled(ifc *iface, af afi) bool {
	if ifc.unnumbered || len(ifc.addrs[af]) > 0 {
		return true
	}
	return af == af6 && ifc.ip6LL.IsValid()
}
