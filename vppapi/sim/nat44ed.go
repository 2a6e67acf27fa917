package sim

import (
	"net/netip"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
	"go.uber.org/zap"
)

// The NAT44-ED messages as vl_api_*_t_handler in
// src/plugins/nat/nat44-ed/nat44_ed_api.c serve them. The handlers check
// nothing about the plugin's state themselves: the "plugin disabled"
// answers (VNET_API_ERROR_UNSUPPORTED) come from the nat44_ed.c functions
// they call, and dumps simply find nothing while disabled.

// Maximum addresses one nat44_add_del_address_range adds. VPP has no limit;
// the simulator refuses larger ranges rather than hold millions of entries.
const maxNATRange = 1 << 16

func (s *Sim) registerNAT44ED(r *registry) {
	serve(r, s.nat44EdPluginEnableDisable, &nat.Nat44EdPluginEnableDisableReply{})
	serve(r, s.nat44ForwardingEnableDisable, &nat.Nat44ForwardingEnableDisableReply{})
	serve(r, s.nat44ShowRunningConfig, &nat.Nat44ShowRunningConfigReply{})
	serve(r, s.nat44InterfaceAddDelFeature, &nat.Nat44InterfaceAddDelFeatureReply{})
	serve(r, s.nat44InterfaceDump, &nat.Nat44InterfaceDetails{})
	serve(r, s.nat44EdAddDelOutputInterface, &nat.Nat44EdAddDelOutputInterfaceReply{})
	serve(r, s.nat44EdOutputInterfaceGet, &nat.Nat44EdOutputInterfaceGetReply{}, &nat.Nat44EdOutputInterfaceDetails{})
	serve(r, s.nat44AddDelAddressRange, &nat.Nat44AddDelAddressRangeReply{})
	serve(r, s.nat44AddressDump, &nat.Nat44AddressDetails{})
	serve(r, s.nat44AddDelStaticMappingV2, &nat.Nat44AddDelStaticMappingV2Reply{})
	serve(r, s.nat44StaticMappingDump, &nat.Nat44StaticMappingDetails{})
	serve(r, s.nat44AddDelIdentityMapping, &nat.Nat44AddDelIdentityMappingReply{})
	serve(r, s.nat44IdentityMappingDump, &nat.Nat44IdentityMappingDetails{})
	serve(r, s.nat44AddDelLbStaticMapping, &nat.Nat44AddDelLbStaticMappingReply{})
	serve(r, s.nat44LbStaticMappingAddDelLocal, &nat.Nat44LbStaticMappingAddDelLocalReply{})
	serve(r, s.nat44LbStaticMappingDump, &nat.Nat44LbStaticMappingDetails{})
	serve(r, s.nat44UserDump, &nat.Nat44UserDetails{})
	serve(r, s.nat44UserSessionV3Dump, &nat.Nat44UserSessionV3Details{})
}

func ip4(a ip_types.IP4Address) netip.Addr { return netip.AddrFrom4([4]byte(a)) }

func apiIP4(a netip.Addr) ip_types.IP4Address {
	if !a.IsValid() {
		return ip_types.IP4Address{}
	}
	return ip_types.IP4Address(a.As4())
}

// apiTag is what VPP keeps of a string[64] tag: up to the first NUL, and
// never the 64th byte, which the handlers zero.
func apiTag(t string) string { return truncate(apiString(t), tagMax) }

// nat44EdPluginEnableDisable refuses the endpoint-independent modes VPP
// dropped before looking at the plugin's state.
func (s *Sim) nat44EdPluginEnableDisable(m *nat.Nat44EdPluginEnableDisable) []api.Message {
	var rv int32
	switch {
	case m.Enable && m.Flags&(nat.NAT44_IS_STATIC_MAPPING_ONLY|nat.NAT44_IS_CONNECTION_TRACKING) != 0:
		rv = int32(api.UNSUPPORTED)
	case m.Enable:
		rv = s.st.nat.enable(natConfig{insideVRF: m.InsideVrf, outsideVRF: m.OutsideVrf, sessions: m.Sessions})
	default:
		rv = s.st.nat.disable()
	}
	if rv == 0 {
		s.log.Info("nat44-ed plugin", zap.Bool("enabled", m.Enable))
	}
	return []api.Message{&nat.Nat44EdPluginEnableDisableReply{Retval: rv}}
}

// nat44ForwardingEnableDisable is nat44_ed_forwarding_enable_disable: it
// sets the flag even while the plugin is disabled and never fails.
func (s *Sim) nat44ForwardingEnableDisable(m *nat.Nat44ForwardingEnableDisable) []api.Message {
	s.st.nat.forwarding = m.Enable
	return []api.Message{&nat.Nat44ForwardingEnableDisableReply{}}
}

func (s *Sim) nat44ShowRunningConfig(*nat.Nat44ShowRunningConfig) []api.Message {
	n := &s.st.nat
	return []api.Message{&nat.Nat44ShowRunningConfigReply{
		InsideVrf:          n.cfg.insideVRF,
		OutsideVrf:         n.cfg.outsideVRF,
		Sessions:           n.cfg.sessions,
		TranslationBuckets: n.buckets,
		ForwardingEnabled:  n.forwarding,
		Timeouts: nat_types.NatTimeouts{UDP: n.timeouts.udp, TCPEstablished: n.timeouts.tcpEstablished,
			TCPTransitory: n.timeouts.tcpTransitory, ICMP: n.timeouts.icmp},
		Flags: nat.NAT44_IS_ENDPOINT_DEPENDENT,
	}}
}

// nat44InterfaceAddDelFeature: NAT_IS_INSIDE selects inside, anything
// else outside; the index is validated first.
func (s *Sim) nat44InterfaceAddDelFeature(m *nat.Nat44InterfaceAddDelFeature) []api.Message {
	_, rv := s.apiIface(m.SwIfIndex)
	if rv == 0 {
		inside := m.Flags&nat_types.NAT_IS_INSIDE != 0
		if m.IsAdd {
			rv = s.st.nat.addInterface(uint32(m.SwIfIndex), inside)
		} else {
			rv = s.st.nat.delInterface(uint32(m.SwIfIndex), inside)
		}
	}
	return []api.Message{&nat.Nat44InterfaceAddDelFeatureReply{Retval: rv}}
}

func (s *Sim) nat44InterfaceDump(*nat.Nat44InterfaceDump) []api.Message {
	var out []api.Message
	for _, i := range s.st.nat.db.interfaces.values() {
		d := &nat.Nat44InterfaceDetails{SwIfIndex: interface_types.InterfaceIndex(i.swIfIndex)}
		if i.inside {
			d.Flags |= nat_types.NAT_IS_INSIDE
		}
		if i.outside {
			d.Flags |= nat_types.NAT_IS_OUTSIDE
		}
		out = append(out, d)
	}
	return out
}

func (s *Sim) nat44EdAddDelOutputInterface(m *nat.Nat44EdAddDelOutputInterface) []api.Message {
	_, rv := s.apiIface(m.SwIfIndex)
	if rv == 0 {
		if m.IsAdd {
			rv = s.st.nat.addOutputInterface(uint32(m.SwIfIndex))
		} else {
			rv = s.st.nat.delOutputInterface(uint32(m.SwIfIndex))
		}
	}
	return []api.Message{&nat.Nat44EdAddDelOutputInterfaceReply{Retval: rv}}
}

// nat44EdOutputInterfaceGet follows REPLY_AND_DETAILS_MACRO: details from
// the cursor's pool slot on, then the reply with cursor ~0; a cursor on a
// free slot with nothing after it is INVALID_VALUE. The simulator never
// needs to suspend, so it never answers EAGAIN.
func (s *Sim) nat44EdOutputInterfaceGet(m *nat.Nat44EdOutputInterfaceGet) []api.Message {
	p := &s.st.nat.db.outputInterfaces
	if p.len() == 0 {
		return []api.Message{&nat.Nat44EdOutputInterfaceGetReply{}}
	}
	var out []api.Message
	var rv int32
	cur := int(m.Cursor)
	if m.Cursor > uint32(len(p.used)) {
		cur = len(p.used)
	}
	if !p.live(cur) {
		if cur = p.next(cur); cur < 0 {
			rv = int32(api.INVALID_VALUE)
		}
	}
	for ; cur >= 0; cur = p.next(cur) {
		out = append(out, &nat.Nat44EdOutputInterfaceDetails{SwIfIndex: interface_types.InterfaceIndex(p.slots[cur])})
	}
	return append(out, &nat.Nat44EdOutputInterfaceGetReply{Retval: rv, Cursor: noIndex})
}

// nat44AddDelAddressRange adds or deletes first..last one by one and stops
// at the first failure, keeping what was done. The count is computed in
// 32-bit arithmetic as VPP does: last before first is an empty range.
func (s *Sim) nat44AddDelAddressRange(m *nat.Nat44AddDelAddressRange) []api.Message {
	first, last := ip4(m.FirstIPAddress), ip4(m.LastIPAddress)
	start, end := be32(first), be32(last)
	count := int32(end - start + 1)
	twice := m.Flags&nat_types.NAT_IS_TWICE_NAT != 0
	var rv int32
	if count > maxNATRange {
		rv = int32(api.INVALID_VALUE)
		count = 0
	}
	for i := int32(0); i < count && rv == 0; i++ {
		a := netip.AddrFrom4([4]byte{byte((start + uint32(i)) >> 24), byte((start + uint32(i)) >> 16),
			byte((start + uint32(i)) >> 8), byte(start + uint32(i))})
		if m.IsAdd {
			rv = s.st.nat.addAddress(a, m.VrfID, twice)
		} else {
			rv = s.st.nat.delAddress(a, twice, s.st.clock)
		}
	}
	return []api.Message{&nat.Nat44AddDelAddressRangeReply{Retval: rv}}
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// nat44AddressDump lists the pool, then the twice-NAT pool.
func (s *Sim) nat44AddressDump(*nat.Nat44AddressDump) []api.Message {
	var out []api.Message
	for k, list := range [][]natAddress{s.st.nat.db.addresses, s.st.nat.db.twiceNATAddresses} {
		for _, a := range list {
			d := &nat.Nat44AddressDetails{IPAddress: apiIP4(a.addr), VrfID: a.vrf}
			if k == 1 {
				d.Flags = nat_types.NAT_IS_TWICE_NAT
			}
			out = append(out, d)
		}
	}
	return out
}

// smFlagsOf converts the API's static mapping flags.
func smFlagsOf(f nat_types.NatConfigFlags) smFlags {
	var out smFlags
	for from, to := range map[nat_types.NatConfigFlags]smFlags{
		nat_types.NAT_IS_ADDR_ONLY: smAddrOnly, nat_types.NAT_IS_TWICE_NAT: smTwiceNAT,
		nat_types.NAT_IS_SELF_TWICE_NAT: smSelfTwiceNAT, nat_types.NAT_IS_OUT2IN_ONLY: smOut2InOnly,
	} {
		if f&from != 0 {
			out |= to
		}
	}
	return out
}

// apiFlagsOf is the reverse, as the dumps send them.
func apiFlagsOf(f smFlags) nat_types.NatConfigFlags {
	var out nat_types.NatConfigFlags
	if f&smSelfTwiceNAT != 0 {
		out |= nat_types.NAT_IS_SELF_TWICE_NAT
	}
	if f&smOut2InOnly != 0 {
		out |= nat_types.NAT_IS_OUT2IN_ONLY
	}
	if f&smTwiceNAT != 0 {
		out |= nat_types.NAT_IS_TWICE_NAT
	}
	if f&smAddrOnly != 0 {
		out |= nat_types.NAT_IS_ADDR_ONLY
	}
	return out
}

// nat44AddDelStaticMappingV2: any protocol number is accepted (VPP 25.10
// checks none); a non-zero pool address asks for exact twice-NAT source.
func (s *Sim) nat44AddDelStaticMappingV2(m *nat.Nat44AddDelStaticMappingV2) []api.Message {
	r := smRequest{local: ip4(m.LocalIPAddress), proto: m.Protocol, vrf: m.VrfID,
		swIfIndex: uint32(m.ExternalSwIfIndex), flags: smFlagsOf(m.Flags), poolAddr: ip4(m.PoolIPAddress)}
	if r.poolAddr.IsUnspecified() {
		r.poolAddr = netip.Addr{}
	} else {
		r.flags |= smExactAddress
	}
	if r.flags&smAddrOnly == 0 {
		r.localPort, r.extPort = m.LocalPort, m.ExternalPort
	}
	if r.swIfIndex != noIndex {
		r.flags |= smSwitchAddress
		r.external = netip.AddrFrom4([4]byte{})
	} else {
		r.external = ip4(m.ExternalIPAddress)
	}
	var rv int32
	if m.IsAdd {
		r.tag = apiTag(m.Tag)
		rv = s.addStaticMapping(r)
	} else {
		rv = s.delStaticMapping(r)
	}
	return []api.Message{&nat.Nat44AddDelStaticMappingV2Reply{Retval: rv}}
}

// nat44StaticMappingDump sends the mappings that are neither identity nor
// load-balanced, then the interface-bound records (resolved ones twice).
func (s *Sim) nat44StaticMappingDump(*nat.Nat44StaticMappingDump) []api.Message {
	var out []api.Message
	for _, m := range s.st.nat.db.mappings.values() {
		if m.is(smIdentity | smLB) {
			continue
		}
		d := &nat.Nat44StaticMappingDetails{Flags: apiFlagsOf(m.flags), LocalIPAddress: apiIP4(m.local),
			ExternalIPAddress: apiIP4(m.external), ExternalSwIfIndex: interface_types.InterfaceIndex(noIndex),
			VrfID: m.vrf, Tag: m.tag}
		if !m.is(smAddrOnly) {
			d.Protocol, d.ExternalPort, d.LocalPort = m.proto, m.externalPort, m.localPort
		}
		out = append(out, d)
	}
	for _, rp := range s.st.nat.db.toResolve {
		if rp.flags&smIdentity != 0 {
			continue
		}
		// send_nat44_static_map_resolve_details reports only these two flags.
		d := &nat.Nat44StaticMappingDetails{Flags: apiFlagsOf(rp.flags & (smTwiceNAT | smAddrOnly)),
			LocalIPAddress: apiIP4(rp.local), ExternalSwIfIndex: interface_types.InterfaceIndex(rp.swIfIndex),
			VrfID: rp.vrf, Tag: rp.tag}
		if rp.flags&smAddrOnly == 0 {
			d.Protocol, d.ExternalPort, d.LocalPort = rp.proto, rp.extPort, rp.localPort
		}
		out = append(out, d)
	}
	return out
}

// nat44AddDelIdentityMapping is a static mapping of an address (and port)
// to itself, with the identity flag.
func (s *Sim) nat44AddDelIdentityMapping(m *nat.Nat44AddDelIdentityMapping) []api.Message {
	r := smRequest{vrf: m.VrfID, swIfIndex: uint32(m.SwIfIndex), flags: smIdentity}
	if m.Flags&nat_types.NAT_IS_ADDR_ONLY != 0 {
		r.flags |= smAddrOnly
	} else {
		r.localPort, r.extPort, r.proto = m.Port, m.Port, m.Protocol
	}
	if r.swIfIndex != noIndex {
		r.flags |= smSwitchAddress
		r.local = netip.AddrFrom4([4]byte{})
	} else {
		r.local = ip4(m.IPAddress)
	}
	r.external = r.local
	var rv int32
	if m.IsAdd {
		r.tag = apiTag(m.Tag)
		rv = s.addStaticMapping(r)
	} else {
		rv = s.delStaticMapping(r)
	}
	return []api.Message{&nat.Nat44AddDelIdentityMappingReply{Retval: rv}}
}

// nat44IdentityMappingDump sends one record per table of each identity
// mapping, then the interface-bound identity records.
func (s *Sim) nat44IdentityMappingDump(*nat.Nat44IdentityMappingDump) []api.Message {
	var out []api.Message
	for _, m := range s.st.nat.db.mappings.values() {
		if !m.is(smIdentity) || m.is(smLB) {
			continue
		}
		for _, l := range m.locals.values() {
			d := &nat.Nat44IdentityMappingDetails{IPAddress: apiIP4(m.local), Port: m.localPort, Protocol: m.proto,
				SwIfIndex: interface_types.InterfaceIndex(noIndex), VrfID: l.vrf, Tag: m.tag}
			if m.is(smAddrOnly) {
				d.Flags = nat_types.NAT_IS_ADDR_ONLY
			}
			out = append(out, d)
		}
	}
	for _, rp := range s.st.nat.db.toResolve {
		if rp.flags&smIdentity == 0 {
			continue
		}
		d := &nat.Nat44IdentityMappingDetails{Port: rp.localPort, Protocol: rp.proto,
			SwIfIndex: interface_types.InterfaceIndex(rp.swIfIndex), VrfID: rp.vrf, Tag: rp.tag}
		if rp.flags&smAddrOnly != 0 {
			d.Flags = nat_types.NAT_IS_ADDR_ONLY
		}
		out = append(out, d)
	}
	return out
}

// nat44AddDelLbStaticMapping: twice-NAT wins over self-twice-NAT; the
// address-only flag has no meaning here.
func (s *Sim) nat44AddDelLbStaticMapping(m *nat.Nat44AddDelLbStaticMapping) []api.Message {
	var flags smFlags
	switch {
	case m.Flags&nat_types.NAT_IS_TWICE_NAT != 0:
		flags |= smTwiceNAT
	case m.Flags&nat_types.NAT_IS_SELF_TWICE_NAT != 0:
		flags |= smSelfTwiceNAT
	}
	if m.Flags&nat_types.NAT_IS_OUT2IN_ONLY != 0 {
		flags |= smOut2InOnly
	}
	ext := ip4(m.ExternalAddr)
	var rv int32
	if m.IsAdd {
		r := lbRequest{external: ext, extPort: m.ExternalPort, proto: m.Protocol, flags: flags,
			tag: apiTag(m.Tag), affinity: m.Affinity}
		for _, l := range m.Locals {
			r.locals = append(r.locals, smLocal{addr: ip4(l.Addr), port: l.Port, probability: l.Probability, vrf: l.VrfID})
		}
		rv = s.st.nat.addLBMapping(r)
	} else {
		rv = s.st.nat.delLBMapping(ext, m.ExternalPort, m.Protocol, flags, s.st.clock)
	}
	return []api.Message{&nat.Nat44AddDelLbStaticMappingReply{Retval: rv}}
}

func (s *Sim) nat44LbStaticMappingAddDelLocal(m *nat.Nat44LbStaticMappingAddDelLocal) []api.Message {
	l := smLocal{addr: ip4(m.Local.Addr), port: m.Local.Port, probability: m.Local.Probability, vrf: m.Local.VrfID}
	rv := s.st.nat.addDelLBLocal(ip4(m.ExternalAddr), m.ExternalPort, m.Protocol, l, m.IsAdd, s.st.clock)
	return []api.Message{&nat.Nat44LbStaticMappingAddDelLocalReply{Retval: rv}}
}

// nat44LbStaticMappingDump follows send_nat44_lb_static_mapping_details,
// which leaves the affinity field zero whatever the mapping has.
func (s *Sim) nat44LbStaticMappingDump(*nat.Nat44LbStaticMappingDump) []api.Message {
	var out []api.Message
	for _, m := range s.st.nat.db.mappings.values() {
		if !m.is(smLB) {
			continue
		}
		d := &nat.Nat44LbStaticMappingDetails{ExternalAddr: apiIP4(m.external), ExternalPort: m.externalPort,
			Protocol: m.proto, Flags: apiFlagsOf(m.flags &^ smAddrOnly), Tag: m.tag}
		for _, l := range m.locals.values() {
			d.Locals = append(d.Locals, nat.Nat44LbAddrPort{Addr: apiIP4(l.addr), Port: l.port,
				Probability: l.probability, VrfID: l.vrf})
		}
		d.LocalNum = uint32(len(d.Locals))
		out = append(out, d)
	}
	return out
}
