package sim

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"go.fd.io/govpp/api"
)

type ifKind uint8

const (
	ifLocal ifKind = iota // local0
	ifEthernet
	ifLoopback
	ifTap       // tap_create_v3 (virtio device class), TAP or TUN mode
	ifAfPacket  // af_packet_create_v3, "host-<ifname>"
	ifMemif     // memif_create_v2, "memif<socket_id>/<id>"
	ifVhostUser // create_vhost_user_if_v2, "VirtualEthernet0/0/<n>"
)

// maxLoopbackInstance is LOOPBACK_MAX_INSTANCE (src/vnet/ethernet/interface.c).
const maxLoopbackInstance = 16 * 1024

// defaultMTU is the L3 MTU VPP gives ethernet interfaces.
const defaultMTU = 9000

// iface is one software interface.
type iface struct {
	index    uint32
	name     string
	kind     ifKind
	mac      [6]byte
	adminUp  bool
	tag      string
	instance uint32            // loopback instance
	table    [2]uint32         // bound table id per family
	addrs    [2][]netip.Prefix // in the order added, as VPP lists them
	ip6LL    netip.Addr        // link-local set through the API

	// linkUp is the hardware link flag of the device kinds whose link the
	// device code drives (tap, af_packet, memif, vhost-user); NICs and
	// loopbacks follow the admin state instead.
	linkUp bool
	// l3Only marks a device without an ethernet hardware class (TUN taps,
	// af_packet in IP mode): no L2 address.
	l3Only bool
	// l3MTU overrides defaultMTU when not zero (TUN: the host MTU or 1500).
	l3MTU uint32
	// unnumbered and unnumberedOf are VNET_SW_INTERFACE_FLAG_UNNUMBERED and
	// unnumbered_sw_if_index: the interface uses the addresses of another.
	unnumbered   bool
	unnumberedOf uint32
}

// link is the hardware LINK_UP flag sw_interface_details reports.
func (i *iface) link() bool {
	switch i.kind {
	case ifLocal:
		return false
	case ifEthernet, ifLoopback:
		return i.adminUp
	}
	return i.linkUp
}

// up is vnet_sw_interface_is_up: admin up and link up.
func (i *iface) up() bool { return i.adminUp && i.link() }

// devType is the name of the interface's VNET_DEVICE_CLASS.
func (i *iface) devType() string {
	switch i.kind {
	case ifLocal:
		return "local"
	case ifLoopback:
		return "Loopback"
	case ifTap:
		return "virtio" // virtio_device_class, src/vnet/devices/virtio/device.c
	case ifAfPacket:
		return "af-packet" // af_packet_device_class, src/plugins/af_packet/device.c
	case ifMemif:
		return "memif"
	case ifVhostUser:
		return "vhost-user"
	}
	return "dpdk"
}

func (i *iface) mtu() uint32 {
	switch {
	case i.kind == ifLocal:
		return 0
	case i.l3MTU != 0:
		return i.l3MTU
	}
	return defaultMTU
}

// linkLocal is the interface's IPv6 link-local address: the one set through
// the API, else the EUI-64 one VPP derives once IPv6 is enabled by an address.
func (i *iface) linkLocal() netip.Addr {
	if i.ip6LL.IsValid() {
		return i.ip6LL
	}
	if len(i.addrs[af6]) == 0 {
		return netip.Addr{}
	}
	m := i.mac
	return netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 8: m[0] ^ 0x02, 9: m[1], 10: m[2], 11: 0xff, 12: 0xfe, 13: m[3], 14: m[4], 15: m[5]})
}

// routeKey names one FIB entry.
type routeKey struct {
	af    afi
	table uint32
	key   netip.Prefix // masked
}

type ifRoute struct {
	prefix netip.Prefix
	flags  entryFlags
	paths  []path
}

// state is everything the simulated VPP keeps. Handlers reach it with Sim.mu held.
type state struct {
	ifaces      map[uint32]*iface
	freeIfIndex []uint32 // reused last-freed first, as VPP's pools do
	nextIfIndex uint32
	loopbacks   map[uint32]bool // loopback instances in use
	fib         *fib
	// ifRoutes is what the interface source last installed.
	ifRoutes map[routeKey]ifRoute

	// Per-device state of the pod-facing and host interface kinds.
	taps      tapState
	afPackets afPacketState
	memif     memifState
	vhost     vhostState

	nat nat44State
	acl aclState
	// clock is the simulated time since start; Sim.Advance moves it.
	clock time.Duration
}

func newState() *state {
	st := &state{ifaces: map[uint32]*iface{}, loopbacks: map[uint32]bool{}, fib: newFIB(), ifRoutes: map[routeKey]ifRoute{},
		taps:      tapState{byIndex: map[uint32]*tapDev{}, ids: map[uint32]bool{}},
		afPackets: afPacketState{byIndex: map[uint32]*afPacketDev{}},
	}
	st.newIface("local0", ifLocal)
	return st
}

// release frees the host resources VPP's process holds (tap file
// descriptors, listening sockets); a dying VPP drops them all.
func (st *state) release() {
	st.releaseTaps()
	st.releaseMemif()
	st.releaseVhost()
}

func (st *state) newIface(name string, kind ifKind) *iface {
	idx := st.nextIfIndex
	if n := len(st.freeIfIndex); n > 0 {
		idx = st.freeIfIndex[n-1]
		st.freeIfIndex = st.freeIfIndex[:n-1]
	} else {
		st.nextIfIndex++
	}
	ifc := &iface{index: idx, name: name, kind: kind, unnumberedOf: noIndex}
	st.ifaces[idx] = ifc
	return ifc
}

// sortedIfaces returns the interfaces by index.
func (st *state) sortedIfaces() []*iface {
	out := make([]*iface, 0, len(st.ifaces))
	for _, ifc := range st.ifaces {
		out = append(out, ifc)
	}
	slices.SortFunc(out, func(a, b *iface) int { return cmp.Compare(a.index, b.index) })
	return out
}

func (st *state) ifaceByName(name string) (*iface, bool) {
	for _, ifc := range st.ifaces {
		if ifc.name == name {
			return ifc, true
		}
	}
	return nil, false
}

// addStartupInterface creates a NIC as startup.conf would, with its
// addresses and admin state.
func (st *state) addStartupInterface(spec InterfaceSpec) error {
	if spec.Name == "" {
		return errors.New("name is empty")
	}
	if _, dup := st.ifaceByName(spec.Name); dup {
		return errors.New("name is already used")
	}
	prefixes := make([]netip.Prefix, 0, len(spec.Addresses))
	for _, a := range spec.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("address %q: %w", a, err)
		}
		prefixes = append(prefixes, p)
	}
	ifc := st.newIface(spec.Name, ifEthernet)
	ifc.mac = [6]byte{0x02, 0xfe, 0, 0, byte(ifc.index >> 8), byte(ifc.index)}
	for _, p := range prefixes {
		if rv := st.addDelAddress(ifc, p.Addr(), p.Bits(), false); rv != 0 {
			return fmt.Errorf("address %s: %w", p, api.VPPApiError(rv))
		}
	}
	st.setAdmin(ifc, spec.Up)
	return nil
}

// createLoopback is vnet_create_loopback_interface.
func (st *state) createLoopback(mac [6]byte, specified bool, want uint32) (*iface, int32) {
	inst := want
	if specified {
		if want >= maxLoopbackInstance || st.loopbacks[want] {
			return nil, int32(api.INVALID_REGISTRATION)
		}
	} else {
		inst = 0
		for st.loopbacks[inst] {
			inst++
		}
		if inst >= maxLoopbackInstance {
			return nil, int32(api.INVALID_REGISTRATION)
		}
	}
	st.loopbacks[inst] = true
	ifc := st.newIface(fmt.Sprintf("loop%d", inst), ifLoopback)
	ifc.instance = inst
	if mac == ([6]byte{}) {
		mac = [6]byte{0xde, 0xad, 0, 0, 0, byte(inst)}
	}
	ifc.mac = mac
	return ifc, 0
}

// deleteLoopback is vnet_delete_loopback_interface: only loopbacks go this way.
func (st *state) deleteLoopback(idx uint32) int32 {
	ifc, ok := st.ifaces[idx]
	if !ok || ifc.kind != ifLoopback || !st.loopbacks[ifc.instance] {
		return int32(api.INVALID_SW_IF_INDEX)
	}
	delete(st.loopbacks, ifc.instance)
	st.deleteIface(ifc)
	return 0
}

// deleteIface removes an interface the way ip4/ip6_sw_interface_add_del do:
// its own unnumbered binding, its addresses, then back to table 0; paths of
// other routes through it stay, unresolved. Interfaces unnumbered to it keep
// their binding, which then names a missing interface, as in VPP.
func (st *state) deleteIface(ifc *iface) {
	st.nat.interfaceDeleted(ifc.index) // nat44_ed_sw_interface_add_del
	st.acl.interfaceDeleted(ifc.index) // acl_sw_interface_add_del
	st.updateUnnumbered(ifc, noIndex, false)
	st.delAllAddresses(ifc)
	for _, af := range []afi{af4, af6} {
		if t, ok := st.fib.table(af, 0); ok {
			st.bindTable(ifc, af, t)
		}
	}
	delete(st.ifaces, ifc.index)
	st.freeIfIndex = append(st.freeIfIndex, ifc.index)
	st.syncInterfaceRoutes()
}

// setAdmin is vnet_sw_interface_set_flags; devices with an admin_up_down
// function (af_packet) follow it.
func (st *state) setAdmin(ifc *iface, up bool) {
	ifc.adminUp = up
	if ifc.kind == ifAfPacket {
		st.afPacketAdminUpDown(ifc, up)
	}
	st.syncInterfaceRoutes()
}

// addDelAddress is ip4_add_del_interface_address / ip6_add_del_interface_address.
func (st *state) addDelAddress(ifc *iface, addr netip.Addr, bits int, del bool) int32 {
	if ifc.kind == ifLocal { // vnet_sw_interface_supports_addressing
		return int32(api.UNSUPPORTED)
	}
	af := afOf(addr)
	if af == af6 && addr.IsLinkLocalUnicast() {
		return st.addDelLinkLocal(ifc, addr, bits, del)
	}
	if del {
		owner, i := st.findAddress(af, ifc.table[af], addr)
		if owner != ifc {
			return int32(api.ADDRESS_NOT_FOUND_FOR_INTERFACE)
		}
		ifc.addrs[af] = slices.Delete(ifc.addrs[af], i, i+1)
		st.syncInterfaceRoutes()
		return 0
	}
	// VPP indexes its mask table with the length before checking it; refuse
	// what ip_interface_address_add would refuse instead of reading past it.
	if bits > af.bits() {
		return int32(api.ADDRESS_LENGTH_MISMATCH)
	}
	if st.conflicts(ifc, addr, bits) {
		if af == af6 {
			return int32(api.DUPLICATE_IF_ADDRESS)
		}
		return int32(api.ADDRESS_IN_USE)
	}
	if bits == 0 {
		return int32(api.ADDRESS_LENGTH_MISMATCH)
	}
	ifc.addrs[af] = append(ifc.addrs[af], netip.PrefixFrom(addr, bits))
	st.syncInterfaceRoutes()
	return 0
}

// addDelLinkLocal is the link-local branch of ip6_add_del_interface_address.
func (st *state) addDelLinkLocal(ifc *iface, addr netip.Addr, bits int, del bool) int32 {
	if bits != 128 {
		return int32(api.ADDRESS_LENGTH_MISMATCH)
	}
	if !del {
		ifc.ip6LL = addr
		return 0
	}
	if addr == ifc.linkLocal() {
		return int32(api.ADDRESS_NOT_DELETABLE)
	}
	return int32(api.ADDRESS_NOT_FOUND_FOR_INTERFACE)
}

// conflicts is the overlap check VPP runs before adding an address: no
// two overlapping prefixes in one table, except several addresses of one
// prefix on the same interface.
func (st *state) conflicts(ifc *iface, addr netip.Addr, bits int) bool {
	af := afOf(addr)
	for _, other := range st.ifaces {
		if other.table[af] != ifc.table[af] {
			continue
		}
		for _, x := range other.addrs[af] {
			overlap := netip.PrefixFrom(x.Addr(), x.Bits()).Masked().Contains(addr) ||
				netip.PrefixFrom(addr, bits).Masked().Contains(x.Addr())
			if !overlap {
				continue
			}
			if other == ifc && x.Bits() == bits && x.Addr() != addr {
				continue
			}
			return true
		}
	}
	return false
}

// findAddress finds an address by value in a table, whatever its length,
// as ip_interface_address_find does.
func (st *state) findAddress(af afi, table uint32, addr netip.Addr) (*iface, int) {
	for _, ifc := range st.ifaces {
		if ifc.table[af] != table {
			continue
		}
		for i, x := range ifc.addrs[af] {
			if x.Addr() == addr {
				return ifc, i
			}
		}
	}
	return nil, -1
}

// delAllAddresses is ip_del_all_interface_addresses.
func (st *state) delAllAddresses(ifc *iface) {
	for _, af := range []afi{af4, af6} {
		for _, p := range slices.Clone(ifc.addrs[af]) {
			st.addDelAddress(ifc, p.Addr(), p.Bits(), true)
		}
	}
}

// setTable is ip_table_bind.
func (st *state) setTable(ifc *iface, af afi, tableID uint32) int32 {
	t, ok := st.fib.table(af, tableID)
	if !ok {
		return int32(api.NO_SUCH_FIB)
	}
	if len(ifc.addrs[af]) > 0 {
		return int32(api.ADDRESS_FOUND_FOR_INTERFACE)
	}
	st.bindTable(ifc, af, t)
	return 0
}

// bindTable is fib_table_bind: the interface holds a lock on a non-zero
// table, and a table whose last lock goes is destroyed.
func (st *state) bindTable(ifc *iface, af afi, t *fibTable) {
	if ifc.table[af] == t.id {
		return
	}
	if t.id != 0 {
		t.ifLocks++
	}
	if old, ok := st.fib.table(af, ifc.table[af]); ok && old.id != 0 {
		old.ifLocks--
		if !old.locked() {
			st.fib.destroyTable(old)
		}
	}
	ifc.table[af] = t.id
}

// interfaceRoutes computes the routes the interface source installs for
// the addresses of admin-up interfaces (ip4_add_interface_routes,
// ip6_add_interface_routes): a local /32 or /128 for each address, then per
// prefix and interface a glean for the subnet and, for IPv4, drops for the
// network and broadcast addresses (/30 and shorter) or an attached route
// to the peer (/31).
func (st *state) interfaceRoutes() map[routeKey]ifRoute {
	want := map[routeKey]ifRoute{}
	put := func(af afi, table uint32, pfx netip.Prefix, flags entryFlags, p path) {
		k := routeKey{af: af, table: table, key: pfx.Masked()}
		if _, ok := want[k]; !ok {
			p.proto, p.weight = af, 1
			want[k] = ifRoute{prefix: pfx, flags: flags, paths: []path{p}}
		}
	}
	ifaces := st.sortedIfaces()
	for _, ifc := range ifaces {
		if !ifc.adminUp {
			continue
		}
		for af, addrs := range ifc.addrs {
			for _, a := range addrs {
				host := netip.PrefixFrom(a.Addr(), afi(af).bits())
				put(afi(af), ifc.table[af], host, flagConnected|flagLocal,
					path{kind: pathReceive, swIfIndex: ifc.index, nextHop: a.Addr()})
			}
		}
	}
	for _, ifc := range ifaces {
		if !ifc.adminUp {
			continue
		}
		seen := map[netip.Prefix]bool{}
		for af, addrs := range ifc.addrs {
			for _, a := range addrs {
				if a.Bits() == afi(af).bits() || seen[a.Masked()] {
					continue
				}
				seen[a.Masked()] = true
				st.prefixRoutes(afi(af), ifc, a, put)
			}
		}
	}
	return want
}

func (st *state) prefixRoutes(af afi, ifc *iface, a netip.Prefix, put func(afi, uint32, netip.Prefix, entryFlags, path)) {
	table := ifc.table[af]
	glean := path{kind: pathAttached, swIfIndex: ifc.index}
	if af == af6 {
		put(af, table, a.Masked(), flagConnected|flagAttached, glean)
		return
	}
	// IPv4 installs the glean with the address's host bits kept.
	put(af, table, a, flagConnected|flagAttached, glean)
	drop := path{kind: pathSpecial, swIfIndex: noIndex, action: actDrop}
	addr := a.Addr().As4()
	network := a.Masked().Addr()
	switch {
	case a.Bits() <= 30:
		var bcast [4]byte
		mask := netip.PrefixFrom(netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff}), a.Bits()).Masked().Addr().As4()
		for i := range bcast {
			bcast[i] = addr[i] | ^mask[i]
		}
		if network != a.Addr() {
			put(af, table, netip.PrefixFrom(network, 32), flagDrop, drop)
		}
		if b := netip.AddrFrom4(bcast); b != a.Addr() {
			put(af, table, netip.PrefixFrom(b, 32), flagDrop, drop)
		}
	case a.Bits() == 31:
		peer := addr
		peer[3] ^= 1
		nh := netip.AddrFrom4(peer)
		put(af, table, netip.PrefixFrom(nh, 32), flagAttached,
			path{kind: pathAttachedNextHop, swIfIndex: ifc.index, nextHop: nh})
	}
}

// syncInterfaceRoutes brings the interface source's contributions in line
// with the interfaces; it runs after every interface change.
func (st *state) syncInterfaceRoutes() {
	want := st.interfaceRoutes()
	for k, r := range st.ifRoutes {
		if _, keep := want[k]; keep {
			continue
		}
		if t, ok := st.fib.table(k.af, k.table); ok {
			st.fib.remove(t, r.prefix, srcInterface)
		}
	}
	for k, r := range want {
		if t, ok := st.fib.table(k.af, k.table); ok {
			st.fib.update(t, r.prefix, srcInterface, r.flags, r.paths)
		}
	}
	st.ifRoutes = want
}
