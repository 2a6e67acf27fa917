package sim

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"go.fd.io/govpp/api"
	fibapi "go.fd.io/govpp/binapi/fib"
	"go.fd.io/govpp/binapi/fib_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip"
	"go.fd.io/govpp/binapi/ip_types"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// noPathsInRoute is VPP's NO_PATHS_IN_ROUTE (-52); govpp still calls this
// code by its old name.
const noPathsInRoute = int32(api.PREFIX_MATCHES_NEXT_HOP)

func (s *Sim) registerIP(r *registry) {
	serve(r, s.ipTableAddDel, &ip.IPTableAddDelReply{})
	serve(r, s.ipTableDump, &ip.IPTableDetails{})
	serve(r, s.ipRouteAddDel, &ip.IPRouteAddDelReply{})
	serve(r, s.ipRouteAddDelV2, &ip.IPRouteAddDelV2Reply{})
	serve(r, s.ipRouteDump, &ip.IPRouteDetails{})
	serve(r, s.ipRouteV2Dump, &ip.IPRouteV2Details{})
	serve(r, s.ipAddressDump, &ip.IPAddressDetails{})
	serve(r, s.fibSourceAdd, &fibapi.FibSourceAddReply{})
	serve(r, s.fibSourceDump, &fibapi.FibSourceDetails{})
}

// ipTableAddDel follows ip_table_create and ip_table_delete: table 0 is
// left alone; adding an existing table only takes the API's lock again
// (the name stays); deleting drops the API's lock, and the table goes when
// no interface holds it; deleting a missing table is fine.
func (s *Sim) ipTableAddDel(m *ip.IPTableAddDel) []api.Message {
	af, id := familyOf(m.Table.IsIP6), m.Table.TableID
	if id != 0 {
		t, ok := s.st.fib.table(af, id)
		switch {
		case m.IsAdd && !ok:
			t = s.st.fib.createTable(af, id, strings.TrimRight(m.Table.Name, "\x00"))
			t.apiLock = true
		case m.IsAdd:
			t.apiLock = true
		case ok:
			t.apiLock = false
			if !t.locked() {
				s.st.fib.destroyTable(t)
			}
		}
	}
	return []api.Message{&ip.IPTableAddDelReply{}}
}

// ipTableDump lists IPv4 then IPv6 tables, each by fib index.
func (s *Sim) ipTableDump(*ip.IPTableDump) []api.Message {
	var out []api.Message
	for _, af := range []afi{af4, af6} {
		for _, t := range s.st.fib.sortedTables(af) {
			out = append(out, &ip.IPTableDetails{Table: ip.IPTable{TableID: t.id, IsIP6: af == af6, Name: t.name}})
		}
	}
	return out
}

func (f *fib) sortedTables(af afi) []*fibTable {
	out := make([]*fibTable, 0, len(f.tables[af]))
	for _, t := range f.tables[af] {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *fibTable) int { return cmp.Compare(a.index, b.index) })
	return out
}

func (s *Sim) ipRouteAddDel(m *ip.IPRouteAddDel) []api.Message {
	stats, rv := s.routeAddDel(m.IsAdd, m.IsMultipath, m.Route.TableID, m.Route.Prefix, m.Route.Paths, 0)
	return []api.Message{&ip.IPRouteAddDelReply{Retval: rv, StatsIndex: stats}}
}

func (s *Sim) ipRouteAddDelV2(m *ip.IPRouteAddDelV2) []api.Message {
	stats, rv := s.routeAddDel(m.IsAdd, m.IsMultipath, m.Route.TableID, m.Route.Prefix, m.Route.Paths, m.Route.Src)
	return []api.Message{&ip.IPRouteAddDelV2Reply{Retval: rv, StatsIndex: stats}}
}

// rpath is a decoded API path before fib_table_route_path_fixup and
// fib_path_create turn it into a path.
type rpath struct {
	proto                  afi
	swIfIndex              uint32
	nextHop                netip.Addr // zero address when unset
	tableID                uint32
	weight, preference     uint8
	local, drop, deag      bool
	icmpUnreach, icmpProhb bool
}

// routeAddDel follows ip_route_add_del_t_handler and fib_api_route_add_del;
// src 0 means the API source. It answers the entry's stats index on add.
func (s *Sim) routeAddDel(isAdd, multipath bool, tableID uint32, pfx ip_types.Prefix, apaths []fib_types.FibPath, src uint8) (uint32, int32) {
	dst := addr.ToAddr(pfx.Address)
	af, bits := afOf(dst), int(pfx.Len)
	t, ok := s.st.fib.table(af, tableID)
	if !ok {
		return noIndex, int32(api.NO_SUCH_FIB)
	}
	var eflags entryFlags
	rpaths := make([]rpath, 0, len(apaths))
	for _, ap := range apaths {
		rp, rv := s.st.decodePath(ap)
		if rv != 0 {
			return noIndex, rv
		}
		if rp.local && rp.swIfIndex == noIndex {
			eflags |= flagConnected | flagLocal
		}
		rpaths = append(rpaths, rp)
	}
	if src == 0 {
		src = srcAPI
	} else if _, known := s.st.fib.source(src); !known {
		// VPP trusts the id and indexes its source table with it; refuse
		// an id fib_source_add never gave out instead.
		return noIndex, int32(api.INVALID_VALUE)
	}
	if bits > af.bits() { // fib_prefix_validate
		return noIndex, int32(api.INVALID_PREFIX_LENGTH)
	}
	prefix := netip.PrefixFrom(dst, bits)
	if (multipath || isAdd) && len(rpaths) == 0 {
		return noIndex, noPathsInRoute
	}
	paths := make([]path, len(rpaths))
	for i := range rpaths {
		fixupPath(prefix, &eflags, &rpaths[i])
		paths[i] = rpaths[i].create()
	}
	var e *fibEntry
	switch {
	case multipath && isAdd:
		e = s.st.fib.pathAdd(t, prefix, src, eflags, paths)
	case multipath:
		s.st.fib.pathRemove(t, prefix, src, paths)
	case isAdd:
		e = s.st.fib.update(t, prefix, src, eflags, paths)
	default:
		s.st.fib.remove(t, prefix, src)
	}
	if e == nil {
		return noIndex, 0
	}
	return e.stats, 0
}

// decodePath is fib_api_path_decode for the path types the simulator models.
func (st *state) decodePath(in fib_types.FibPath) (rpath, int32) {
	r := rpath{weight: max(in.Weight, 1), preference: in.Preference, swIfIndex: in.SwIfIndex}
	switch in.Proto {
	case fib_types.FIB_API_PATH_NH_PROTO_IP4:
		r.proto = af4
	case fib_types.FIB_API_PATH_NH_PROTO_IP6:
		r.proto = af6
	case fib_types.FIB_API_PATH_NH_PROTO_MPLS, fib_types.FIB_API_PATH_NH_PROTO_ETHERNET, fib_types.FIB_API_PATH_NH_PROTO_BIER:
		return r, int32(api.UNIMPLEMENTED) // simulator: no MPLS, L2 or BIER paths
	default:
		return r, int32(api.UNSPECIFIED) // fib_api_path_nh_proto_to_dpo answers -1
	}
	if in.NLabels != 0 {
		return r, int32(api.UNIMPLEMENTED) // simulator: no label stacks
	}
	switch in.Type {
	case fib_types.FIB_API_PATH_TYPE_DROP:
		r.drop = true
	case fib_types.FIB_API_PATH_TYPE_LOCAL:
		r.local = true
	case fib_types.FIB_API_PATH_TYPE_ICMP_UNREACH:
		r.icmpUnreach = true
	case fib_types.FIB_API_PATH_TYPE_ICMP_PROHIBIT:
		r.icmpProhb = true
	case fib_types.FIB_API_PATH_TYPE_CLASSIFY:
		return r, int32(api.NO_SUCH_TABLE) // no classify table exists here
	case fib_types.FIB_API_PATH_TYPE_NORMAL:
		return r, st.decodeNormalPath(in, &r)
	case fib_types.FIB_API_PATH_TYPE_UDP_ENCAP, fib_types.FIB_API_PATH_TYPE_BIER_IMP,
		fib_types.FIB_API_PATH_TYPE_SOURCE_LOOKUP, fib_types.FIB_API_PATH_TYPE_DVR,
		fib_types.FIB_API_PATH_TYPE_INTERFACE_RX:
		return r, int32(api.UNIMPLEMENTED) // simulator: not modelled
	default:
		return r, int32(api.INVALID_VALUE) // simulator: VPP would read garbage
	}
	return r, 0
}

// decodeNormalPath: a next hop with an interface is attached, without one
// it recurses (or, with no address, looks up) in the path's table, which
// must exist.
func (st *state) decodeNormalPath(in fib_types.FibPath, r *rpath) int32 {
	if in.RpfID != 0 && in.RpfID != noIndex {
		return int32(api.UNIMPLEMENTED) // simulator: no multicast RPF paths
	}
	if r.proto == af4 {
		r.nextHop = netip.AddrFrom4(in.Nh.Address.GetIP4())
	} else {
		r.nextHop = netip.AddrFrom16(in.Nh.Address.GetIP6())
	}
	if r.swIfIndex == noIndex {
		if _, ok := st.fib.table(r.proto, in.TableID); !ok {
			return int32(api.NO_SUCH_FIB)
		}
		r.tableID = in.TableID
		r.deag = r.nextHop.IsUnspecified()
		return 0
	}
	if _, ok := st.ifaces[r.swIfIndex]; !ok {
		return int32(api.NO_MATCHING_INTERFACE)
	}
	return 0
}

// fixupPath is fib_table_route_path_fixup: a recursion through the route's
// own address drops, an interface path of a host route gets the host as
// next hop, and local entries make local paths (and the other way round).
func fixupPath(pfx netip.Prefix, eflags *entryFlags, r *rpath) {
	nhSet := r.nextHop.IsValid() && !r.nextHop.IsUnspecified()
	if nhSet && r.swIfIndex == noIndex && r.nextHop == pfx.Addr() {
		r.drop = true
	}
	if !r.local && pfx.IsSingleIP() && !nhSet && r.swIfIndex != noIndex {
		r.nextHop = pfx.Addr()
	}
	if *eflags&flagDrop != 0 {
		r.drop = true
	}
	if *eflags&flagLocal != 0 {
		r.local = true
	}
	if r.local {
		*eflags |= flagLocal
		if r.swIfIndex != noIndex {
			*eflags |= flagConnected
		}
	}
}

// create is fib_path_create's choice of path type.
func (r rpath) create() path {
	p := path{proto: r.proto, weight: r.weight, preference: r.preference, swIfIndex: noIndex}
	nhSet := r.nextHop.IsValid() && !r.nextHop.IsUnspecified()
	switch {
	case r.local:
		p.kind, p.swIfIndex = pathReceive, r.swIfIndex
		if nhSet {
			p.nextHop = r.nextHop
		}
	case r.deag:
		p.kind, p.tableID = pathDeag, r.tableID
	case r.icmpUnreach, r.icmpProhb, r.drop:
		p.kind = pathSpecial
		switch {
		case r.icmpProhb:
			p.action = actICMPProhibit
		case r.icmpUnreach:
			p.action = actICMPUnreach
		}
	case r.swIfIndex != noIndex && nhSet:
		p.kind, p.swIfIndex, p.nextHop = pathAttachedNextHop, r.swIfIndex, r.nextHop
	case r.swIfIndex != noIndex:
		p.kind, p.swIfIndex = pathAttached, r.swIfIndex
	case nhSet:
		p.kind, p.nextHop, p.tableID = pathRecursive, r.nextHop, r.tableID
	default:
		p.kind = pathSpecial
	}
	return p
}

// encodePath is fib_path_encode followed by fib_api_path_encode.
func encodePath(p path) fib_types.FibPath {
	out := fib_types.FibPath{
		SwIfIndex:  noIndex,
		Weight:     p.weight,
		Preference: p.preference,
		Proto:      fib_types.FIB_API_PATH_NH_PROTO_IP4,
		Type:       fib_types.FIB_API_PATH_TYPE_NORMAL,
	}
	if p.proto == af6 {
		out.Proto = fib_types.FIB_API_PATH_NH_PROTO_IP6
	}
	switch p.kind {
	case pathReceive:
		out.Type, out.SwIfIndex = fib_types.FIB_API_PATH_TYPE_LOCAL, p.swIfIndex
	case pathAttached, pathAttachedNextHop:
		out.SwIfIndex = p.swIfIndex
	case pathRecursive, pathDeag:
		out.TableID = p.tableID
	case pathSpecial:
		switch p.action {
		case actICMPUnreach:
			out.Type = fib_types.FIB_API_PATH_TYPE_ICMP_UNREACH
		case actICMPProhibit:
			out.Type = fib_types.FIB_API_PATH_TYPE_ICMP_PROHIBIT
		default:
			out.Type = fib_types.FIB_API_PATH_TYPE_DROP
		}
	}
	if p.nextHop.IsValid() {
		if p.proto == af6 {
			out.Nh.Address.SetIP6(ip_types.IP6Address(p.nextHop.As16()))
		} else {
			out.Nh.Address.SetIP4(ip_types.IP4Address(p.nextHop.Unmap().As4()))
		}
	}
	return out
}

// routeDump lists a table's entries with their best source's paths; a
// missing table gives an empty dump.
func (s *Sim) routeDump(table ip.IPTable, src uint8, emit func(t *fibTable, e *fibEntry, best uint8, paths []fib_types.FibPath)) {
	t, ok := s.st.fib.table(familyOf(table.IsIP6), table.TableID)
	if !ok {
		return
	}
	for _, e := range s.st.fib.walk(t, src) {
		best, c := s.st.fib.best(e)
		paths := make([]fib_types.FibPath, len(c.paths))
		for i, p := range c.paths {
			paths[i] = encodePath(p)
		}
		emit(t, e, best, paths)
	}
}

func (s *Sim) ipRouteDump(m *ip.IPRouteDump) []api.Message {
	var out []api.Message
	s.routeDump(m.Table, 0, func(t *fibTable, e *fibEntry, _ uint8, paths []fib_types.FibPath) {
		out = append(out, &ip.IPRouteDetails{Route: ip.IPRoute{
			TableID: t.id, StatsIndex: e.stats, Prefix: addr.FromPrefix(e.prefix), NPaths: uint8(len(paths)), Paths: paths,
		}})
	})
	return out
}

// ipRouteV2Dump also reports each entry's best source and, when src is not
// zero, lists only the entries that source is best for.
func (s *Sim) ipRouteV2Dump(m *ip.IPRouteV2Dump) []api.Message {
	var out []api.Message
	s.routeDump(m.Table, m.Src, func(t *fibTable, e *fibEntry, best uint8, paths []fib_types.FibPath) {
		out = append(out, &ip.IPRouteV2Details{Route: ip.IPRouteV2{
			TableID: t.id, StatsIndex: e.stats, Prefix: addr.FromPrefix(e.prefix), NPaths: uint8(len(paths)), Src: best, Paths: paths,
		}})
	})
	return out
}

// ipAddressDump lists one family's addresses of an interface in the order
// they were added; an invalid index gives an empty dump.
func (s *Sim) ipAddressDump(m *ip.IPAddressDump) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	if rv != 0 {
		return nil
	}
	var out []api.Message
	for _, p := range ifc.addrs[familyOf(m.IsIPv6)] {
		out = append(out, &ip.IPAddressDetails{
			SwIfIndex: interface_types.InterfaceIndex(ifc.index),
			Prefix:    addr.FromInterfaceAddress(p),
		})
	}
	return out
}

func (s *Sim) fibSourceAdd(m *fibapi.FibSourceAdd) []api.Message {
	id := s.st.fib.allocateSource(strings.TrimRight(m.Src.Name, "\x00"), m.Src.Priority)
	return []api.Message{&fibapi.FibSourceAddReply{ID: id}}
}

// fibSourceDump lists every registered source by id, built-ins first.
func (s *Sim) fibSourceDump(*fibapi.FibSourceDump) []api.Message {
	out := make([]api.Message, 0, len(s.st.fib.sources))
	for _, src := range s.st.fib.sources {
		out = append(out, &fibapi.FibSourceDetails{Src: fibapi.FibSource{Priority: src.class, ID: src.id, Name: src.name}})
	}
	return out
}
