package sim

import (
	"net/netip"
	"time"

	"go.fd.io/govpp/api"
)

// NAT44-ED state as snat_main keeps it (src/plugins/nat/nat44-ed/nat44_ed.h).
// FIB indexes are replaced by table ids: the simulator has one per table.
// What this model leaves to VPP alone: the FIB tables NAT creates and locks
// (fib_table_find_or_create_and_lock with the NAT sources) and the FIB
// entries it registers for pool addresses on outside interfaces.

// smFlags are NAT_SM_FLAG_* of a static mapping.
type smFlags uint32

const (
	smTwiceNAT smFlags = 1 << iota
	smSelfTwiceNAT
	smOut2InOnly
	smAddrOnly
	smIdentity
	smLB
	smSwitchAddress // bound to an interface's first address
	smExactAddress  // twice-NAT from the given pool address
)

// Default timeouts, nat_reset_timeouts (src/plugins/nat/lib/lib.h).
const (
	natUDPTimeout            = 300
	natTCPEstablishedTimeout = 7440
	natTCPTransitoryTimeout  = 240
	natICMPTimeout           = 60
	natDefaultSessions       = 63 * 1024 // nat44_plugin_enable
)

type natTimeouts struct{ udp, tcpEstablished, tcpTransitory, icmp uint32 }

// natConfig is nat44_config_t as the enable message gives it (rconfig).
type natConfig struct{ insideVRF, outsideVRF, sessions uint32 }

// smKey is a flow_hash key of a static mapping, in2out or out2in.
type smKey struct {
	addr  netip.Addr
	port  uint16
	vrf   uint32
	proto uint8
}

// natAddress is snat_address_t; vrf is ~0 when none was given.
type natAddress struct {
	addr netip.Addr
	vrf  uint32
}

// natInterface is snat_interface_t of the inside/outside feature.
type natInterface struct {
	swIfIndex       uint32
	inside, outside bool
}

// smLocal is nat44_lb_addr_port_t: a backend of a load-balanced mapping,
// or one VRF of an identity mapping (only vrf is used then). prefix is the
// running sum of probabilities that backend selection searches.
type smLocal struct {
	addr        netip.Addr
	port        uint16
	probability uint8
	vrf         uint32
	prefix      uint32
	// i2oVRF is the table of the in2out key VPP added for this local: 0
	// when the mapping was created, the local's own table when added later.
	// Deletes use it, so no key outlives its mapping; VPP deletes with the
	// local's own table and leaves a stale key when the two differ.
	i2oVRF uint32
}

// staticMapping is snat_static_mapping_t.
type staticMapping struct {
	flags        smFlags
	local        netip.Addr
	external     netip.Addr
	localPort    uint16
	externalPort uint16
	proto        uint8
	vrf          uint32     // table of a plain mapping
	poolAddr     netip.Addr // twice-NAT source when smExactAddress
	tag          string
	affinity     uint32 // seconds, load-balanced only
	locals       pool[*smLocal]

	// slot is the mapping's index in the pool; i2oKeys and o2iKeys are
	// the flow hash keys naming it, so that lookups and deletes cost what
	// VPP's hash does, not a scan of every mapping.
	slot             int
	i2oKeys, o2iKeys map[smKey]bool
}

// linkI2O and linkO2I enter m in a flow hash under k.
func (n *nat44State) linkI2O(k smKey, m *staticMapping) {
	n.unlink(n.db.i2o, k, false)
	n.db.i2o[k] = m
	if m.i2oKeys == nil {
		m.i2oKeys = map[smKey]bool{}
	}
	m.i2oKeys[k] = true
}

func (n *nat44State) linkO2I(k smKey, m *staticMapping) {
	n.unlink(n.db.o2i, k, true)
	n.db.o2i[k] = m
	if m.o2iKeys == nil {
		m.o2iKeys = map[smKey]bool{}
	}
	m.o2iKeys[k] = true
}

// unlink removes k from a flow hash and from the keys of the mapping it
// named.
func (n *nat44State) unlink(h map[smKey]*staticMapping, k smKey, o2i bool) {
	m := h[k]
	if m == nil {
		return
	}
	delete(h, k)
	if o2i {
		delete(m.o2iKeys, k)
	} else {
		delete(m.i2oKeys, k)
	}
}

func (m *staticMapping) is(f smFlags) bool { return m.flags&f != 0 }

// smResolve is snat_static_mapping_resolve_t: a mapping whose external
// address is an interface's first address.
type smResolve struct {
	local     netip.Addr
	localPort uint16
	extPort   uint16
	proto     uint8
	vrf       uint32
	swIfIndex uint32
	flags     smFlags
	poolAddr  netip.Addr
	tag       string
	resolved  bool
}

// natDB is everything nat44_plugin_disable frees.
type natDB struct {
	addresses, twiceNATAddresses []natAddress
	interfaces                   pool[*natInterface]
	outputInterfaces             pool[uint32]
	mappings                     pool[*staticMapping]
	toResolve                    []*smResolve
	o2i, i2o                     map[smKey]*staticMapping
	sessions                     natSessions // nat44ed_sessions.go
}

// nat44State is the NAT44-ED plugin's state; the zero value is a plugin
// that was never enabled.
type nat44State struct {
	enabled    bool
	forwarding bool
	cfg        natConfig
	// buckets and timeouts are set by enabling and survive disabling.
	buckets  uint32
	timeouts natTimeouts
	db       natDB
}

// pool mimics a VPP pool: indexes stay stable, iteration is by index and a
// freed slot is reused last-freed first.
type pool[T any] struct {
	slots []T
	used  []bool
	free  []int
}

func (p *pool[T]) put(v T) int {
	if n := len(p.free); n > 0 {
		i := p.free[n-1]
		p.free = p.free[:n-1]
		p.slots[i], p.used[i] = v, true
		return i
	}
	p.slots = append(p.slots, v)
	p.used = append(p.used, true)
	return len(p.slots) - 1
}

func (p *pool[T]) del(i int) {
	var zero T
	p.slots[i], p.used[i] = zero, false
	p.free = append(p.free, i)
}

func (p *pool[T]) len() int { return len(p.slots) - len(p.free) }

// all returns the live elements with their indexes, in index order.
func (p *pool[T]) all() ([]int, []T) {
	var idx []int
	var out []T
	for i, ok := range p.used {
		if ok {
			idx = append(idx, i)
			out = append(out, p.slots[i])
		}
	}
	return idx, out
}

// values returns the live elements in index order.
func (p *pool[T]) values() []T {
	_, out := p.all()
	return out
}

// next is pool_next_index: the first live index after i, or -1.
func (p *pool[T]) next(i int) int {
	for j := i + 1; j < len(p.used); j++ {
		if p.used[j] {
			return j
		}
	}
	return -1
}

func (p *pool[T]) live(i int) bool { return i >= 0 && i < len(p.used) && p.used[i] }

// enable is nat44_plugin_enable (without the connection-tracking and
// static-mapping-only modes, which the API handler refuses first).
func (n *nat44State) enable(c natConfig) int32 {
	if n.enabled {
		return int32(api.FEATURE_ALREADY_ENABLED)
	}
	if c.sessions == 0 {
		c.sessions = natDefaultSessions
	}
	n.forwarding = false
	n.buckets = natBihashBuckets(c.sessions)
	n.timeouts = natTimeouts{udp: natUDPTimeout, tcpEstablished: natTCPEstablishedTimeout,
		tcpTransitory: natTCPTransitoryTimeout, icmp: natICMPTimeout}
	n.db = natDB{o2i: map[smKey]*staticMapping{}, i2o: map[smKey]*staticMapping{}}
	n.cfg = c
	n.enabled = true
	return 0
}

// disable is nat44_plugin_disable: every mapping, address and interface
// goes. Deleting an identity mapping none of whose locals is in table 0
// fails inside VPP (nat44_ed_del_static_mappings passes m->vrf_id, which is
// 0 for identity mappings), which VPP reports as VNET_API_ERROR_BUG while
// still disabling.
func (n *nat44State) disable() int32 {
	if !n.enabled {
		return int32(api.FEATURE_ALREADY_DISABLED)
	}
	var rv int32
	for _, m := range n.db.mappings.values() {
		if !m.is(smIdentity) {
			continue
		}
		found := false
		for _, l := range m.locals.values() {
			found = found || l.vrf == 0
		}
		if !found {
			rv = int32(api.BUG)
		}
	}
	n.db = natDB{}
	n.cfg = natConfig{}
	n.forwarding = false
	n.enabled = false
	return rv
}

// natBihashBuckets is nat_calc_bihash_buckets, with its unsigned arithmetic.
func natBihashBuckets(elts uint32) uint32 {
	n := uint64(uint32(float64(elts) / 2.5))
	lower := uint64(1)
	for lower*2 < n {
		lower *= 2
	}
	upper := 2 * lower
	if upper-n < n-lower && upper <= 0xffffffff {
		return uint32(upper)
	}
	return uint32(lower)
}

func (n *nat44State) addressList(twiceNAT bool) *[]natAddress {
	if twiceNAT {
		return &n.db.twiceNATAddresses
	}
	return &n.db.addresses
}

// addAddress is nat44_ed_add_address.
func (n *nat44State) addAddress(a netip.Addr, vrf uint32, twiceNAT bool) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	list := n.addressList(twiceNAT)
	for _, x := range *list {
		if x.addr == a {
			return int32(api.VALUE_EXIST)
		}
	}
	*list = append(*list, natAddress{addr: a, vrf: vrf})
	return 0
}

// delAddress is nat44_ed_del_address; it has no enabled check, it frees
// the dynamic sessions translated to the address (static ones stay, in
// either pool), and vec_del1 moves the last address into the freed place.
func (n *nat44State) delAddress(a netip.Addr, twiceNAT bool, now time.Duration) int32 {
	list := n.addressList(twiceNAT)
	for i, x := range *list {
		if x.addr == a {
			n.deleteSessions(now, 0, func(s *natSession) bool { return !s.static && s.outside.Addr() == a })
			last := len(*list) - 1
			(*list)[i] = (*list)[last]
			*list = (*list)[:last]
			return 0
		}
	}
	return int32(api.NO_SUCH_ENTRY)
}

func (n *nat44State) findInterface(idx uint32) (int, *natInterface) {
	ids, ifs := n.db.interfaces.all()
	for k, i := range ifs {
		if i.swIfIndex == idx {
			return ids[k], i
		}
	}
	return -1, nil
}

func (n *nat44State) findOutputInterface(idx uint32) int {
	ids, ifs := n.db.outputInterfaces.all()
	for k, i := range ifs {
		if i == idx {
			return ids[k]
		}
	}
	return -1
}

// addInterface is nat44_ed_add_interface: the role the request names is
// added to what the interface already has; asking again is no error.
func (n *nat44State) addInterface(idx uint32, inside bool) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	if n.findOutputInterface(idx) >= 0 {
		return int32(api.VALUE_EXIST)
	}
	_, i := n.findInterface(idx)
	if i == nil {
		i = &natInterface{swIfIndex: idx}
		n.db.interfaces.put(i)
	}
	if inside {
		i.inside = true
	} else {
		i.outside = true
	}
	return 0
}

// delInterface is nat44_ed_del_interface: with both roles only the named
// one goes; with one role the interface goes whichever role was named.
func (n *nat44State) delInterface(idx uint32, inside bool) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	slot, i := n.findInterface(idx)
	if i == nil {
		return int32(api.NO_SUCH_ENTRY)
	}
	switch {
	case i.inside && i.outside && inside:
		i.inside = false
	case i.inside && i.outside:
		i.outside = false
	default:
		n.db.interfaces.del(slot)
	}
	return 0
}

// interfaceDeleted is nat44_ed_sw_interface_add_del on deletion: an
// interface that goes loses its roles (inside, then outside, which leaves
// nothing) and its output feature, so a new interface that reuses the
// index starts without NAT.
func (n *nat44State) interfaceDeleted(idx uint32) {
	if !n.enabled {
		return
	}
	if slot, i := n.findInterface(idx); i != nil {
		n.db.interfaces.del(slot)
	}
	if slot := n.findOutputInterface(idx); slot >= 0 {
		n.db.outputInterfaces.del(slot)
	}
}

// addOutputInterface is nat44_ed_add_output_interface.
func (n *nat44State) addOutputInterface(idx uint32) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	if _, i := n.findInterface(idx); i != nil || n.findOutputInterface(idx) >= 0 {
		return int32(api.VALUE_EXIST)
	}
	n.db.outputInterfaces.put(idx)
	return 0
}

// delOutputInterface is nat44_ed_del_output_interface.
func (n *nat44State) delOutputInterface(idx uint32) int32 {
	if !n.enabled {
		return int32(api.UNSUPPORTED)
	}
	slot := n.findOutputInterface(idx)
	if slot < 0 {
		return int32(api.NO_SUCH_ENTRY)
	}
	n.db.outputInterfaces.del(slot)
	return 0
}

// roles answers, for packet evaluation, whether NAT44-ED runs on an
// interface's input as inside or outside (an output-feature interface is
// both, on output).
func (n *nat44State) roles(idx uint32) (inside, outside, output bool) {
	if !n.enabled {
		return false, false, false
	}
	if _, i := n.findInterface(idx); i != nil {
		return i.inside, i.outside, false
	}
	return false, false, n.findOutputInterface(idx) >= 0
}

// matchOut2In is the by-external half of nat44_ed_sm_match: the exact
// key, then an address-only mapping.
func (n *nat44State) matchOut2In(addr netip.Addr, port uint16, proto uint8) *staticMapping {
	if m := n.db.o2i[smKey{addr: addr, port: port, proto: proto}]; m != nil {
		return m
	}
	return n.db.o2i[smKey{addr: addr}]
}

// matchIn2Out is the by-local half of nat44_ed_sm_match: in the packet's
// table, then the inside and the outside tables, each exact before
// address-only.
func (n *nat44State) matchIn2Out(addr netip.Addr, port uint16, vrf uint32, proto uint8) *staticMapping {
	tables := []uint32{vrf}
	if n.cfg.insideVRF != vrf {
		tables = append(tables, n.cfg.insideVRF)
	}
	if n.cfg.outsideVRF != vrf {
		tables = append(tables, n.cfg.outsideVRF)
	}
	for _, t := range tables {
		if m := n.db.i2o[smKey{addr: addr, port: port, vrf: t, proto: proto}]; m != nil {
			return m
		}
		if m := n.db.i2o[smKey{addr: addr, vrf: t}]; m != nil {
			return m
		}
	}
	return nil
}
