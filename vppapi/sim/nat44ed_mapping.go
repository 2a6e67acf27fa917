package sim

import (
	"net/netip"
	"time"

	"go.fd.io/govpp/api"
)

// smRequest is what nat44_ed_add_static_mapping and
// nat44_ed_del_static_mapping take, after the API handler's conversion.
type smRequest struct {
	local, external netip.Addr
	localPort       uint16
	extPort         uint16
	proto           uint8
	vrf             uint32
	swIfIndex       uint32 // ~0 unless smSwitchAddress
	flags           smFlags
	poolAddr        netip.Addr
	tag             string
}

// validateSM is nat44_ed_validate_sm_input.
func validateSM(f smFlags) int32 {
	if f&smIdentity != 0 && f&smOut2InOnly != 0 {
		return int32(api.UNSUPPORTED) // identity NAT starts from inside only
	}
	if f&(smTwiceNAT|smSelfTwiceNAT) != 0 && f&(smAddrOnly|smIdentity) != 0 {
		return int32(api.UNSUPPORTED)
	}
	return 0
}

// firstIP4 is ip4_interface_first_address.
func (st *state) firstIP4(idx uint32) (netip.Addr, bool) {
	ifc, ok := st.ifaces[idx]
	if !ok || len(ifc.addrs[af4]) == 0 {
		return netip.Addr{}, false
	}
	return ifc.addrs[af4][0].Addr(), true
}

// findResolve is nat44_ed_get_resolve_record.
func (n *nat44State) findResolve(r smRequest) int {
	for i, rp := range n.db.toResolve {
		if rp.swIfIndex != r.swIfIndex || rp.vrf != r.vrf {
			continue
		}
		bothAddrOnly := rp.flags&smAddrOnly != 0 && r.flags&smAddrOnly != 0
		switch {
		case rp.flags&smIdentity != 0 && r.flags&smIdentity != 0:
			if !bothAddrOnly && (rp.extPort != r.extPort || rp.proto != r.proto) {
				continue
			}
		case rp.local == r.local:
			if !bothAddrOnly && (rp.localPort != r.localPort || rp.extPort != r.extPort || rp.proto != r.proto) {
				continue
			}
		default:
			continue
		}
		return i
	}
	return -1
}

func (n *nat44State) delResolve(i int) {
	last := len(n.db.toResolve) - 1
	n.db.toResolve[i] = n.db.toResolve[last] // vec_del1
	n.db.toResolve = n.db.toResolve[:last]
}

// addStaticMapping is nat44_ed_add_static_mapping; identity mappings come
// here too, with smIdentity and local = external.
func (s *Sim) addStaticMapping(r smRequest) int32 {
	n := &s.st.nat
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	if rv := validateSM(r.flags); rv != 0 {
		return rv
	}
	if r.flags&smSwitchAddress != 0 {
		if n.findResolve(r) >= 0 {
			return int32(api.VALUE_EXIST)
		}
		rp := &smResolve{local: r.local, localPort: r.localPort, extPort: r.extPort, proto: r.proto,
			vrf: r.vrf, swIfIndex: r.swIfIndex, flags: r.flags, poolAddr: r.poolAddr, tag: r.tag}
		n.db.toResolve = append(n.db.toResolve, rp)
		a, ok := s.st.firstIP4(r.swIfIndex)
		if !ok {
			return 0 // resolved when the interface gets an address
		}
		r.external, rp.resolved = a, true
	}
	rv := n.addStaticMappingInternal(r)
	if rv != 0 && r.flags&smSwitchAddress != 0 {
		if i := n.findResolve(r); i >= 0 {
			n.delResolve(i)
		}
	}
	return rv
}

// addStaticMappingInternal is nat44_ed_add_static_mapping_internal.
func (n *nat44State) addStaticMappingInternal(r smRequest) int32 {
	if r.flags&smAddrOnly != 0 {
		r.localPort, r.extPort, r.proto = 0, 0, 0
	}
	if r.flags&smIdentity != 0 {
		r.localPort, r.local = r.extPort, r.external
	}
	if m := n.db.o2i[smKey{addr: r.external, port: r.extPort, proto: r.proto}]; m != nil {
		// Only an identity mapping takes one more table for the same
		// address; the check is on the existing mapping's flags.
		if !m.is(smIdentity) {
			return int32(api.VALUE_EXIST)
		}
		for _, l := range m.locals.values() {
			if l.vrf == r.vrf {
				return int32(api.VALUE_EXIST)
			}
		}
		m.locals.put(&smLocal{vrf: r.vrf})
		n.linkI2O(smKey{addr: m.local, port: m.localPort, vrf: r.vrf, proto: m.proto}, m)
		return 0
	}
	vrf := r.vrf
	if vrf == noIndex {
		vrf = n.cfg.insideVRF // the default inside table
	}
	if r.flags&(smOut2InOnly|smIdentity) == 0 {
		if n.db.i2o[smKey{addr: r.local, port: r.localPort, vrf: vrf, proto: r.proto}] != nil {
			return int32(api.VALUE_EXIST)
		}
	}
	m := &staticMapping{flags: r.flags, local: r.local, external: r.external, poolAddr: r.poolAddr, tag: r.tag}
	if r.flags&smAddrOnly == 0 {
		m.localPort, m.externalPort, m.proto = r.localPort, r.extPort, r.proto
	}
	if r.flags&smIdentity != 0 {
		m.locals.put(&smLocal{vrf: vrf})
	} else {
		m.vrf = vrf
	}
	m.slot = n.db.mappings.put(m)
	if r.flags&smOut2InOnly == 0 {
		n.linkI2O(smKey{addr: m.local, port: m.localPort, vrf: vrf, proto: m.proto}, m)
	}
	n.linkO2I(smKey{addr: m.external, port: m.externalPort, proto: m.proto}, m)
	return 0
}

// delStaticMapping is nat44_ed_del_static_mapping.
func (s *Sim) delStaticMapping(r smRequest) int32 {
	n := &s.st.nat
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	if rv := validateSM(r.flags); rv != 0 {
		return rv
	}
	if r.flags&smSwitchAddress != 0 {
		i := n.findResolve(r)
		if i < 0 {
			return int32(api.NO_SUCH_ENTRY)
		}
		n.delResolve(i)
		a, ok := s.st.firstIP4(r.swIfIndex)
		if !ok {
			return 0
		}
		r.external = a
	}
	return n.delStaticMappingInternal(r, s.st.clock)
}

// delStaticMappingInternal is nat44_ed_del_static_mapping_internal. The
// mapping is found by its external side alone; the in2out key removed is
// the one the request names.
func (n *nat44State) delStaticMappingInternal(r smRequest, now time.Duration) int32 {
	if r.flags&smAddrOnly != 0 {
		r.localPort, r.extPort, r.proto = 0, 0, 0
	}
	if r.flags&smIdentity != 0 {
		r.localPort, r.local = r.extPort, r.external
	}
	slot, m := n.mappingByExternal(r.external, r.extPort, r.proto)
	if m == nil {
		return int32(api.NO_SUCH_ENTRY)
	}
	vrf := m.vrf
	if r.flags&smIdentity != 0 {
		want := r.vrf
		if want == noIndex {
			want = n.cfg.insideVRF
		}
		found := false
		ids, locals := m.locals.all()
		for k, l := range locals {
			if l.vrf == want {
				m.locals.del(ids[k])
				vrf, found = l.vrf, true
			}
		}
		if !found {
			return int32(api.NO_SUCH_ENTRY)
		}
	}
	if r.flags&smOut2InOnly == 0 {
		n.unlink(n.db.i2o, smKey{addr: r.local, port: r.localPort, vrf: vrf, proto: r.proto}, false)
	}
	n.delMappingSessions(m, vrf, r, now)
	// A load-balanced or identity mapping keeps its locals, and stays.
	if m.locals.len() == 0 {
		n.unlink(n.db.o2i, smKey{addr: r.external, port: r.extPort, proto: r.proto}, true)
		n.freeMapping(slot, m)
	}
	return 0
}

// delMappingSessions is nat_ed_static_mapping_del_sessions: the static,
// not load-balanced sessions of the mapping's local in its table; unless
// address-only, only the first one with the mapping's ports and the
// request's external side goes (VPP breaks out of its loop there).
func (n *nat44State) delMappingSessions(m *staticMapping, vrf uint32, r smRequest, now time.Duration) {
	addrOnly := r.flags&smAddrOnly != 0
	limit := 1
	if addrOnly {
		limit = 0
	}
	n.deleteSessions(now, limit, func(s *natSession) bool {
		if s.i2o.table != vrf || s.inside.Addr() != m.local || s.lb || !s.static {
			return false
		}
		return addrOnly || (s.outside == netip.AddrPortFrom(r.external, r.extPort) &&
			s.inside.Port() == m.localPort && s.proto == m.proto)
	})
}

// delLocalSessions deletes the load-balanced sessions whose inside end is
// the local, of any mapping, as nat44_ed_del_lb_static_mapping and
// nat44_ed_add_del_lb_static_mapping_local do.
func (n *nat44State) delLocalSessions(l *smLocal, now time.Duration) {
	local := netip.AddrPortFrom(l.addr, l.port)
	n.deleteSessions(now, 0, func(s *natSession) bool { return s.lb && s.inside == local })
}

// mappingByExternal is nat44_ed_sm_o2i_lookup in table 0 with the
// mapping's pool slot.
func (n *nat44State) mappingByExternal(a netip.Addr, port uint16, proto uint8) (int, *staticMapping) {
	m := n.db.o2i[smKey{addr: a, port: port, proto: proto}]
	if m == nil {
		return -1, nil
	}
	return m.slot, m
}

// freeMapping returns the mapping's slot to the pool. VPP can leave a flow
// hash entry naming the freed slot (when a delete names other keys than
// the add did); the simulator drops such entries instead.
func (n *nat44State) freeMapping(slot int, m *staticMapping) {
	n.db.mappings.del(slot)
	for k := range m.i2oKeys {
		if n.db.i2o[k] == m {
			delete(n.db.i2o, k)
		}
	}
	for k := range m.o2iKeys {
		if n.db.o2i[k] == m {
			delete(n.db.o2i, k)
		}
	}
	m.i2oKeys, m.o2iKeys = nil, nil
}

// lbRequest is what nat44_ed_add_lb_static_mapping takes.
type lbRequest struct {
	external netip.Addr
	extPort  uint16
	proto    uint8
	locals   []smLocal
	flags    smFlags
	tag      string
	affinity uint32
}

// addLBMapping is nat44_ed_add_lb_static_mapping. Unless out2in-only, the
// external address must be in the NAT address pool.
func (n *nat44State) addLBMapping(r lbRequest) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	if n.db.o2i[smKey{addr: r.external, port: r.extPort, proto: r.proto}] != nil {
		return int32(api.VALUE_EXIST)
	}
	if len(r.locals) < 2 {
		return int32(api.INVALID_VALUE)
	}
	if r.flags&smOut2InOnly == 0 {
		pooled := false
		for _, a := range n.db.addresses {
			pooled = pooled || a.addr == r.external
		}
		if !pooled {
			return int32(api.NO_SUCH_ENTRY)
		}
	}
	m := &staticMapping{flags: r.flags | smLB, external: r.external, externalPort: r.extPort,
		proto: r.proto, tag: r.tag, affinity: r.affinity}
	m.slot = n.db.mappings.put(m)
	n.linkO2I(smKey{addr: m.external, port: m.externalPort, proto: m.proto}, m)
	for _, l := range r.locals {
		if r.flags&smOut2InOnly == 0 {
			// Keyed in table 0 whatever the local's table, as VPP does here.
			n.linkI2O(smKey{addr: l.addr, port: l.port, proto: r.proto}, m)
		}
		m.locals.put(&l)
	}
	m.setPrefixes()
	return 0
}

// setPrefixes recomputes the running probability sums in pool order.
func (m *staticMapping) setPrefixes() {
	var sum uint32
	for _, l := range m.locals.values() {
		sum += uint32(l.probability)
		l.prefix = sum
	}
}

// delLBMapping is nat44_ed_del_lb_static_mapping; whether in2out keys go
// depends on the request's out2in-only flag, not the mapping's. The
// locals' sessions go, and the mapping's affinity records.
func (n *nat44State) delLBMapping(external netip.Addr, port uint16, proto uint8, flags smFlags, now time.Duration) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	slot, m := n.mappingByExternal(external, port, proto)
	if m == nil {
		return int32(api.NO_SUCH_ENTRY)
	}
	if !m.is(smLB) {
		return int32(api.INVALID_VALUE)
	}
	n.unlink(n.db.o2i, smKey{addr: m.external, port: m.externalPort, proto: m.proto}, true)
	for _, l := range m.locals.values() {
		if flags&smOut2InOnly == 0 {
			n.unlink(n.db.i2o, smKey{addr: l.addr, port: l.port, vrf: l.i2oVRF, proto: m.proto}, false)
		}
		n.delLocalSessions(l, now)
	}
	if m.affinity != 0 {
		n.flushAffinity(m)
	}
	n.freeMapping(slot, m)
	return 0
}

// addDelLBLocal is nat44_ed_add_del_lb_static_mapping_local: a mapping
// never goes below two locals (VNET_API_ERROR_UNSPECIFIED); a deleted
// local's sessions go with it.
func (n *nat44State) addDelLBLocal(external netip.Addr, port uint16, proto uint8, l smLocal, add bool, now time.Duration) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	_, m := n.mappingByExternal(external, port, proto)
	if m == nil {
		return int32(api.NO_SUCH_ENTRY)
	}
	if !m.is(smLB) {
		return int32(api.INVALID_VALUE)
	}
	match := -1
	ids, locals := m.locals.all()
	for k, x := range locals {
		if x.addr == l.addr && x.port == l.port && x.vrf == l.vrf {
			match = ids[k]
			break
		}
	}
	if add {
		if match >= 0 {
			return int32(api.VALUE_EXIST)
		}
		nl := &smLocal{addr: l.addr, port: l.port, probability: l.probability, vrf: l.vrf, i2oVRF: l.vrf}
		m.locals.put(nl)
		if !m.is(smOut2InOnly) {
			n.linkI2O(smKey{addr: l.addr, port: l.port, vrf: l.vrf, proto: proto}, m)
		}
	} else {
		if match < 0 {
			return int32(api.NO_SUCH_ENTRY)
		}
		if m.locals.len() < 3 {
			return int32(api.UNSPECIFIED)
		}
		if !m.is(smOut2InOnly) {
			n.unlink(n.db.i2o, smKey{addr: l.addr, port: l.port, vrf: m.locals.slots[match].i2oVRF, proto: proto}, false)
		}
		n.delLocalSessions(m.locals.slots[match], now)
		m.locals.del(match)
	}
	m.setPrefixes()
	return 0
}
