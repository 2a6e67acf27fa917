package sim

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
)

// afi is an address family, used as an index into per-family state.
type afi uint8

const (
	af4 afi = iota
	af6
)

// afOf is the family of an address as the API carried it: an IPv4-mapped
// IPv6 address is IPv6, as in VPP.
func afOf(a netip.Addr) afi {
	if a.Is4() {
		return af4
	}
	return af6
}

func (a afi) bits() int {
	if a == af6 {
		return 128
	}
	return 32
}

func (a afi) String() string {
	if a == af6 {
		return "ip6"
	}
	return "ip4"
}

const noIndex = ^uint32(0)

// FIB sources numbered as VPP's fib_source_t (src/vnet/fib/fib_source.h).
const (
	srcInvalid      uint8 = 0
	srcSpecial      uint8 = 1
	srcInterface    uint8 = 4
	srcAPI          uint8 = 8
	srcDefaultRoute uint8 = 20
	// firstDynamicSource is FIB_SOURCE_LAST+1, where fib_source_allocate starts.
	firstDynamicSource = 22
)

// fibSource is one registered source. Priority is class then slot, lower
// is better; the slot makes sources sharing a class distinct, as in
// fib_source_reg_init.
type fibSource struct {
	id    uint8
	name  string
	class uint8
	slot  uint8
}

func (s fibSource) prio() uint16 { return uint16(s.class)<<8 | uint16(s.slot) }

// builtinSources lists VPP's sources by id with their priority classes
// (FIB_SOURCES and foreach_fib_source in fib_source.h).
func builtinSources() []fibSource {
	spec := []struct {
		name  string
		class uint8
	}{
		{"invalid", 0xff}, {"special", 0x00}, {"classify", 0x01}, {"proxy", 0x02},
		{"interface", 0x03}, {"SR", 0x10}, {"BIER", 0x20}, {"6RD", 0x30},
		{"API", 0x80}, {"CLI", 0x81}, {"LISP", 0x90}, {"MAP", 0xa0}, {"DHCP", 0xb0},
		{"IPv6-proxy-nd", 0xc0}, {"IPv6-nd", 0xc1}, {"adjacency", 0xd0}, {"mpls", 0xe0},
		{"attached_export", 0xf0}, {"recursive-resolution", 0xfb}, {"urpf-exempt", 0xfc},
		{"default-route", 0xfd}, {"interpose", 0xfe},
	}
	out := make([]fibSource, len(spec))
	for i, s := range spec {
		out[i] = fibSource{id: uint8(i), name: s.name, class: s.class}
	}
	return out
}

// pathKind follows fib_path_type_t; its order is the sort order of paths.
type pathKind uint8

const (
	pathAttachedNextHop pathKind = iota
	pathAttached
	pathRecursive
	pathSpecial
	pathExclusive
	pathDeag
	pathReceive
)

// specialAction is what a special path does with a packet.
type specialAction uint8

const (
	actDrop specialAction = iota
	actICMPUnreach
	actICMPProhibit
)

// path is one way out of a FIB entry.
type path struct {
	kind       pathKind
	proto      afi        // next-hop protocol
	swIfIndex  uint32     // noIndex when the path names no interface
	nextHop    netip.Addr // invalid when the path has none
	tableID    uint32     // the table a recursive or deag path looks up in
	weight     uint8
	preference uint8
	action     specialAction // for pathSpecial
	// usable is filled by lookup: the path can forward right now.
	usable bool
}

// keyCompare orders paths of the same preference as fib_path_cmp_i does; 0
// means the same path (weight and preference don't make paths differ).
func keyCompare(p, q path) int {
	if c := cmp.Compare(p.kind, q.kind); c != 0 {
		return c
	}
	if c := cmp.Compare(p.proto, q.proto); c != 0 {
		return c
	}
	switch p.kind {
	case pathAttachedNextHop:
		if c := p.nextHop.Compare(q.nextHop); c != 0 {
			return c
		}
		return cmp.Compare(p.swIfIndex, q.swIfIndex)
	case pathAttached:
		return cmp.Compare(p.swIfIndex, q.swIfIndex)
	case pathRecursive:
		if c := p.nextHop.Compare(q.nextHop); c != 0 {
			return c
		}
		return cmp.Compare(p.tableID, q.tableID)
	case pathDeag:
		return cmp.Compare(p.tableID, q.tableID)
	}
	return 0
}

// comparePaths is fib_path_cmp_for_sort: best preference first.
func comparePaths(p, q path) int {
	if c := cmp.Compare(p.preference, q.preference); c != 0 {
		return c
	}
	return keyCompare(p, q)
}

type entryFlags uint8

const (
	flagConnected entryFlags = 1 << iota
	flagAttached
	flagLocal
	flagDrop
)

// contribution is what one source says about a prefix.
type contribution struct {
	flags entryFlags
	paths []path
}

// fibEntry is one prefix in a table with every source's contribution.
type fibEntry struct {
	prefix netip.Prefix // as first installed: VPP keeps the host bits
	stats  uint32
	srcs   map[uint8]*contribution
}

type fibTable struct {
	af    afi
	id    uint32
	index uint32 // fib_index
	name  string
	// Locks as fib_table_lock keeps them: the API holds at most one, each
	// bound interface one; table 0 is never destroyed.
	apiLock bool
	ifLocks int
	entries map[netip.Prefix]*fibEntry // keyed by the masked prefix
}

func (t *fibTable) locked() bool { return t.id == 0 || t.apiLock || t.ifLocks > 0 }

// fib holds the tables of both families and the source registry.
type fib struct {
	tables    [2]map[uint32]*fibTable
	freeIndex [2][]uint32
	nextIndex [2]uint32
	sources   []fibSource
	slots     [256]uint8
	nextStats uint32
}

func newFIB() *fib {
	f := &fib{sources: builtinSources()}
	for _, s := range f.sources {
		f.slots[s.class]++
	}
	for af := range f.tables {
		f.tables[af] = map[uint32]*fibTable{}
	}
	f.createTable(af4, 0, "")
	f.createTable(af6, 0, "")
	return f
}

func (f *fib) table(af afi, id uint32) (*fibTable, bool) {
	t, ok := f.tables[af][id]
	return t, ok
}

func (f *fib) source(id uint8) (fibSource, bool) {
	if int(id) >= len(f.sources) || id == srcInvalid {
		return fibSource{}, false
	}
	return f.sources[id], true
}

// allocateSource is fib_source_allocate: every call gets a new id, names
// are not checked, and once the ids run out it answers the invalid source.
func (f *fib) allocateSource(name string, class uint8) uint8 {
	if len(f.sources) >= 255 {
		return srcInvalid
	}
	s := fibSource{id: uint8(len(f.sources)), name: name, class: class, slot: f.slots[class]}
	f.slots[class]++
	f.sources = append(f.sources, s)
	return s.id
}

// createTable makes a table with VPP's special entries (ip4_fib_hash_load_specials,
// ip6_fib_hash_load_specials) and its default name.
func (f *fib) createTable(af afi, id uint32, name string) *fibTable {
	idx := f.nextIndex[af]
	if n := len(f.freeIndex[af]); n > 0 {
		idx = f.freeIndex[af][n-1]
		f.freeIndex[af] = f.freeIndex[af][:n-1]
	} else {
		f.nextIndex[af]++
	}
	if name == "" {
		name = "ipv4-VRF:" + strconv.FormatUint(uint64(id), 10)
		if af == af6 {
			name = "ipv6-VRF:" + strconv.FormatUint(uint64(id), 10)
		}
	}
	t := &fibTable{af: af, id: id, index: idx, name: name, entries: map[netip.Prefix]*fibEntry{}}
	f.tables[af][id] = t
	drop := flagDrop
	if af == af4 {
		f.special(t, netip.MustParsePrefix("0.0.0.0/0"), srcDefaultRoute, drop)
		f.special(t, netip.MustParsePrefix("0.0.0.0/32"), srcDefaultRoute, drop)
		f.special(t, netip.MustParsePrefix("240.0.0.0/4"), srcSpecial, drop)
		f.special(t, netip.MustParsePrefix("224.0.0.0/4"), srcSpecial, drop)
		f.special(t, netip.MustParsePrefix("255.255.255.255/32"), srcDefaultRoute, drop)
	} else {
		f.special(t, netip.MustParsePrefix("::/0"), srcDefaultRoute, drop)
		// All link-local goes to the link-local lookup (an exclusive DPO).
		f.update(t, netip.MustParsePrefix("fe80::/10"), srcSpecial, 0,
			[]path{{kind: pathExclusive, proto: af6, swIfIndex: noIndex, weight: 1}})
	}
	return t
}

// destroyTable drops a table whose last lock went, with whatever it held.
func (f *fib) destroyTable(t *fibTable) {
	delete(f.tables[t.af], t.id)
	f.freeIndex[t.af] = append(f.freeIndex[t.af], t.index)
}

// special is fib_table_entry_special_add: one special path.
func (f *fib) special(t *fibTable, pfx netip.Prefix, src uint8, flags entryFlags) {
	f.update(t, pfx, src, flags, []path{{kind: pathSpecial, proto: t.af, swIfIndex: noIndex, weight: 1, action: actDrop}})
}

func (f *fib) entry(t *fibTable, pfx netip.Prefix, create bool) *fibEntry {
	key := pfx.Masked()
	e, ok := t.entries[key]
	if !ok && create {
		f.nextStats++
		e = &fibEntry{prefix: pfx, stats: f.nextStats, srcs: map[uint8]*contribution{}}
		t.entries[key] = e
	}
	return e
}

// update is fib_table_entry_update: the source's paths become exactly these.
func (f *fib) update(t *fibTable, pfx netip.Prefix, src uint8, flags entryFlags, paths []path) *fibEntry {
	e := f.entry(t, pfx, true)
	sorted := slices.Clone(paths)
	slices.SortStableFunc(sorted, comparePaths)
	e.srcs[src] = &contribution{flags: flags, paths: sorted}
	return e
}

// pathAdd is fib_table_entry_path_add2: paths equal to one already there
// (fib_path_cmp) are not added again.
func (f *fib) pathAdd(t *fibTable, pfx netip.Prefix, src uint8, flags entryFlags, paths []path) *fibEntry {
	e := f.entry(t, pfx, true)
	c, ok := e.srcs[src]
	if !ok {
		return f.update(t, pfx, src, flags, paths)
	}
	orig := c.paths
	merged := slices.Clone(orig)
	for _, p := range paths {
		if !slices.ContainsFunc(orig, func(o path) bool { return keyCompare(o, p) == 0 }) {
			merged = append(merged, p)
		}
	}
	slices.SortStableFunc(merged, comparePaths)
	c.paths, c.flags = merged, c.flags|flags
	return e
}

// pathRemove is fib_table_entry_path_remove2: removing from an entry or a
// source that isn't there is allowed; the last path takes the source with it.
func (f *fib) pathRemove(t *fibTable, pfx netip.Prefix, src uint8, paths []path) {
	e := f.entry(t, pfx, false)
	if e == nil {
		return
	}
	c, ok := e.srcs[src]
	if !ok {
		return
	}
	for _, p := range paths {
		if i := slices.IndexFunc(c.paths, func(o path) bool { return keyCompare(o, p) == 0 }); i >= 0 {
			c.paths = slices.Delete(c.paths, i, i+1)
		}
	}
	if len(c.paths) == 0 {
		f.remove(t, pfx, src)
	}
}

// remove is fib_table_entry_delete for one source; deleting what isn't
// there is a no-op, and an entry goes with its last source.
func (f *fib) remove(t *fibTable, pfx netip.Prefix, src uint8) {
	key := pfx.Masked()
	e, ok := t.entries[key]
	if !ok {
		return
	}
	delete(e.srcs, src)
	if len(e.srcs) == 0 {
		delete(t.entries, key)
	}
}

// best returns the contributing source: the one with the best priority.
func (f *fib) best(e *fibEntry) (uint8, *contribution) {
	var (
		bestID  uint8
		bestC   *contribution
		bestPri uint32 = 1 << 17
	)
	for id, c := range e.srcs {
		s, _ := f.source(id)
		if p := uint32(s.prio()); p < bestPri || p == bestPri && id < bestID {
			bestID, bestC, bestPri = id, c, p
		}
	}
	return bestID, bestC
}

// walk returns a table's entries in a stable order (address, then length),
// only those whose best source is src when src is not zero, as
// fib_table_walk_w_src does.
func (f *fib) walk(t *fibTable, src uint8) []*fibEntry {
	out := make([]*fibEntry, 0, len(t.entries))
	for _, e := range t.entries {
		if src != 0 {
			if id, _ := f.best(e); id != src {
				continue
			}
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *fibEntry) int {
		if c := a.prefix.Masked().Addr().Compare(b.prefix.Masked().Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.prefix.Bits(), b.prefix.Bits())
	})
	return out
}

// route is what a lookup finds: the matching entry's best contribution.
type route struct {
	tableID uint32
	prefix  netip.Prefix // masked
	source  uint8
	flags   entryFlags
	paths   []path // each with usable set
}

// lookup is the longest-prefix match ip4-lookup/ip6-lookup does in a table
// (an IPv4-mapped destination is looked up as IPv4). Every table holds a
// default entry, so it fails only for a missing table or an invalid
// address. Callers hold Sim.mu.
func (st *state) lookup(tableID uint32, dst netip.Addr) (route, bool) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return route{}, false
	}
	af := afOf(dst)
	t, ok := st.fib.table(af, tableID)
	if !ok {
		return route{}, false
	}
	for bits := af.bits(); bits >= 0; bits-- {
		key := netip.PrefixFrom(dst, bits).Masked()
		if e, ok := t.entries[key]; ok {
			return st.routeOf(t, e), true
		}
	}
	return route{}, false
}

// routeOf is an entry's forwarding: its best source's paths, marked usable or not.
func (st *state) routeOf(t *fibTable, e *fibEntry) route {
	src, c := st.fib.best(e)
	r := route{tableID: t.id, prefix: e.prefix.Masked(), source: src, flags: c.flags, paths: slices.Clone(c.paths)}
	for i := range r.paths {
		r.paths[i].usable = st.pathUsable(r.paths[i])
	}
	return r
}

// pathUsable says whether a path resolves now: interface paths need their
// interface up (VPP keeps such paths but stops forwarding on them), table
// paths need their table. Resolving a recursive next hop is the caller's
// second lookup.
func (st *state) pathUsable(p path) bool {
	switch p.kind {
	case pathAttached, pathAttachedNextHop:
		ifc, ok := st.ifaces[p.swIfIndex]
		return ok && ifc.up()
	case pathRecursive, pathDeag:
		_, ok := st.fib.table(p.proto, p.tableID)
		return ok
	}
	return true
}

// pickPath chooses the path a flow takes: among the usable paths of the
// best preference, spread by weight on the flow hash, so one flow always
// takes the same path. With no usable path the packet is dropped, as VPP's
// load-balance does for an unresolved path list.
func (r route) pickPath(flowHash uint32) path {
	var cands []path
	for _, p := range r.paths { // sorted best preference first
		if !p.usable {
			continue
		}
		if len(cands) > 0 && p.preference != cands[0].preference {
			break
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return path{kind: pathSpecial, proto: afOf(r.prefix.Addr()), action: actDrop, swIfIndex: noIndex, weight: 1}
	}
	var total uint32
	for _, p := range cands {
		total += uint32(max(p.weight, 1))
	}
	n := flowHash % total
	for _, p := range cands {
		w := uint32(max(p.weight, 1))
		if n < w {
			return p
		}
		n -= w
	}
	return cands[len(cands)-1]
}
