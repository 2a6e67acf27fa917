package sim

import (
	"fmt"
	"net/netip"
	"time"
)

// NAT44-ED in packet evaluation: the nodes VPP 25.10 enables on
// ip4-unicast for NAT interfaces (src/plugins/nat/nat44-ed/nat44_ed.c,
// nat44_ed_add_interface): nat-pre-in2out on an inside-only interface,
// nat-pre-out2in on an outside-only one, and nat44-ed-classify on one with
// both roles; they lead to nat44-ed-in2out / nat44-ed-out2in
// (nat44_ed_in2out.c, nat44_ed_out2in.c).
//
// Order facts for the ACL work (the VNET_FEATURE_INIT registrations in
// nat44_ed.c): on ip4-unicast every NAT node runs_after
// acl-plugin-in-ip4-fa, so input ACLs see a packet before DNAT (the
// service VIP); on ip4-output nat44-ed-in2out-output runs_before
// acl-plugin-out-ip4-fa, so output ACLs see it after translation (the
// chosen backend).
//
// What the agent will want: forwarding enabled
// (nat44_forwarding_enable_disable). Without it, out2in drops every packet
// matching no session and no mapping ("no translation"), and in2out
// translates (dynamic SNAT to the pool, which holds the service VIPs)
// every new flow whose destination resolves through an outside interface,
// pod-to-pod traffic included once pod interfaces are outside too.
// Pod interfaces must be inside AND outside: on an inside-only interface a
// packet to a load-balanced VIP takes in2out, whose hairpinning
// (nat44_ed_external_sm_lookup) rewrites to the mapping's local_addr,
// which a load-balanced mapping leaves 0.0.0.0; only out2in picks a local.
//
// Not modelled: the output feature (nat44-ed-in2out-output), ICMP error
// inner-packet translation, VRF tables (nat44 vrf routes), session limits,
// the txfib rewrite (the lookup stays in the ingress table) and TCP flags:
// the first packet of a TCP flow is taken for a SYN.

// natInput is the NAT44-ED feature on ip4-unicast.
func natInput(c *evalCtx) bool {
	n := &c.st.nat
	if c.af != af4 || !n.enabled {
		return true
	}
	inside, outside, _ := n.roles(c.ingress.index)
	if !inside && !outside {
		return true
	}
	now := c.st.clock
	n.expire(now)
	table := c.ingress.table[af4]
	switch {
	case inside && outside:
		if c.natClassify(table) {
			return c.out2in(table, now)
		}
		return c.in2out(table, now)
	case inside:
		c.step("nat-pre-in2out", "%s is inside", c.ingress.name)
		return c.in2out(table, now)
	}
	c.step("nat-pre-out2in", "%s is outside", c.ingress.name)
	return c.out2in(table, now)
}

// natKnown is !nat44_ed_is_unk_proto: TCP, UDP and ICMP carry ports (or
// an ICMP identifier) that NAT translates.
func natKnown(proto uint8) bool { return proto == 6 || proto == 17 || proto == 1 || proto == 58 }

func (c *evalCtx) natSrc() netip.AddrPort { return netip.AddrPortFrom(c.pkt.Src, c.pkt.SrcPort) }
func (c *evalCtx) natDst() netip.AddrPort { return netip.AddrPortFrom(c.pkt.Dst, c.pkt.DstPort) }

// natKey is the packet's flow_hash key; other protocols have no ports.
func (c *evalCtx) natKey(table uint32) natFlow {
	if !natKnown(c.pkt.Protocol) {
		return natFlow{src: netip.AddrPortFrom(c.pkt.Src, 0), dst: netip.AddrPortFrom(c.pkt.Dst, 0), proto: c.pkt.Protocol, table: table}
	}
	return natFlow{src: c.natSrc(), dst: c.natDst(), proto: c.pkt.Protocol, table: table}
}

// natClassify is nat44_ed_classify_node_fn_inline: true sends the packet
// to out2in. An existing session decides by which side it matches; then
// a destination in the address pool, then a static mapping whose local
// and external addresses differ, goes out2in.
func (c *evalCtx) natClassify(table uint32) bool {
	n := &c.st.nat
	const node = "nat44-ed-classify"
	if c.pkt.Protocol != 1 {
		k := c.natKey(table)
		if s := n.db.sessions.flows[k]; s != nil {
			o2i := k != s.i2o
			c.step(node, "session, %s side", map[bool]string{true: "out2in", false: "in2out"}[o2i])
			return o2i
		}
	}
	for _, a := range n.db.addresses {
		if a.addr == c.pkt.Dst {
			c.step(node, "%s is a pool address: out2in", c.pkt.Dst)
			return true
		}
	}
	m := n.db.o2i[smKey{addr: c.pkt.Dst}]
	if m == nil {
		m = n.db.o2i[smKey{addr: c.pkt.Dst, port: c.pkt.DstPort, proto: c.pkt.Protocol}]
	}
	if m != nil && m.local != m.external {
		c.step(node, "%s is a static mapping's external address: out2in", c.natDst())
		return true
	}
	c.step(node, "in2out")
	return false
}

// natApply rewrites the packet by one side of a session and refreshes it.
func (c *evalCtx) natApply(node string, s *natSession, to natRewrite, i2o bool, now time.Duration) bool {
	known := natKnown(c.pkt.Protocol)
	src, dst := c.natSrc(), c.natDst()
	newSrc, newDst := to.src, to.dst
	if !known { // addresses only; the packet keeps whatever ports it has
		newSrc, newDst = netip.AddrPortFrom(newSrc.Addr(), src.Port()), netip.AddrPortFrom(newDst.Addr(), dst.Port())
	}
	if newDst != dst {
		c.res.Translations = append(c.res.Translations, Translation{Node: node, Kind: "dnat", From: dst, To: newDst})
		c.pkt.Dst, c.pkt.DstPort = newDst.Addr(), newDst.Port()
	}
	if newSrc != src {
		c.res.Translations = append(c.res.Translations, Translation{Node: node, Kind: "snat", From: src, To: newSrc})
		c.pkt.Src, c.pkt.SrcPort = newSrc.Addr(), newSrc.Port()
	}
	s.lastHeard = now
	s.pkts++
	if i2o {
		s.seenI2O = true
	} else {
		s.seen2 = true
	}
	c.step(node, "%s -> %s translated to %s -> %s", src, dst, c.natSrc(), c.natDst())
	return true
}

// natSession looks the packet up in the flow hash and translates it by
// the side it matches; ok is false when there is no session.
func (c *evalCtx) natSession(node string, table uint32, out2in bool, now time.Duration) (cont, ok bool) {
	n := &c.st.nat
	k := c.natKey(table)
	s := n.db.sessions.flows[k]
	if s == nil {
		return false, false
	}
	switch {
	case !out2in && k == s.i2o, out2in && k == s.i2o && (s.twiceNAT || n.forwarding):
		return c.natApply(node, s, s.i2oTo, true, now), true
	case out2in && k == s.o2i, !out2in && k == s.o2i && s.hairpin:
		return c.natApply(node, s, s.o2iTo, false, now), true
	}
	c.step(node, "session side mismatch")
	return c.end(Dropped, "NAT44-ED translation failed (flow mismatch)"), true
}

// in2out is nat44-ed-in2out, fast path then slow path (slow_path_ed).
func (c *evalCtx) in2out(table uint32, now time.Duration) bool {
	const node = "nat44-ed-in2out"
	if cont, ok := c.natSession(node, table, false, now); ok {
		return cont
	}
	n := &c.st.nat
	if !natKnown(c.pkt.Protocol) {
		return c.in2outOther(table, now)
	}
	// nat44_ed_not_translate: translate a flow to a static mapping, or one
	// whose destination lies behind an outside interface.
	if n.matchOut2In(c.pkt.Dst, c.pkt.DstPort, c.pkt.Protocol) == nil {
		switch {
		case n.forwarding:
			c.step(node, "no session or mapping; forwarding: not translated")
			return true
		case c.ingressOwns(c.pkt.Dst):
			c.step(node, "to the interface's own address: not translated")
			return true
		case !c.behindOutside(c.pkt.Dst):
			c.step(node, "%s is not behind an outside interface: not translated", c.pkt.Dst)
			return true
		}
	}
	const slow = "nat44-ed-in2out-slowpath"
	src, dst := c.natSrc(), c.natDst()
	sm := n.matchIn2Out(c.pkt.Src, c.pkt.SrcPort, table, c.pkt.Protocol)
	if sm != nil && sm.is(smIdentity) {
		c.step(slow, "identity mapping: not translated")
		return true
	}
	s := &natSession{proto: c.pkt.Protocol, inside: src, extHost: dst, lastHeard: now}
	daddr := dst
	if hm := n.matchOut2In(c.pkt.Dst, c.pkt.DstPort, c.pkt.Protocol); hm != nil {
		if hm.is(smLB) {
			c.step(slow, "hairpinning to load-balanced mapping %s", dst)
			return c.end(Dropped, fmt.Sprintf("in2out to load-balanced mapping %s: VPP rewrites to the mapping's local_addr (0.0.0.0); "+
				"only out2in picks a local, so the ingress interface must also be outside", dst))
		}
		daddr = netip.AddrPortFrom(hm.local, smPort(hm, hm.localPort, c.pkt.DstPort))
		s.hairpin = true
	}
	outTable := n.cfg.outsideVRF // get_tx_fib_index without VRF tables
	if sm != nil {
		s.static = true
		s.outside = netip.AddrPortFrom(sm.external, smPort(sm, sm.externalPort, c.pkt.SrcPort))
	} else {
		a, ok := n.poolAddress(c.pkt.Src, table)
		var port uint16
		if ok {
			port, ok = n.freePort(func(p uint16) natFlow {
				return natFlow{src: daddr, dst: netip.AddrPortFrom(a, p), proto: s.proto, table: outTable}
			}, c.pkt.SrcPort, flowHash(c.pkt))
		}
		if !ok {
			c.step(slow, "no NAT pool address or port")
			return c.end(Dropped, "NAT44-ED out of ports: no pool address to translate "+src.String())
		}
		s.outside = netip.AddrPortFrom(a, port)
	}
	s.i2o = c.natKey(table)
	s.i2oTo = natRewrite{src: s.outside, dst: daddr, table: outTable}
	s.o2i = natFlow{src: daddr, dst: s.outside, proto: s.proto, table: outTable}
	s.o2iTo = natRewrite{src: dst, dst: src, table: table}
	n.db.sessions.add(s)
	return c.natApply(slow, s, s.i2oTo, true, now)
}

// smPort is a mapping's port, or the packet's for an address-only one.
func smPort(m *staticMapping, port, packet uint16) uint16 {
	if m.is(smAddrOnly) {
		return packet
	}
	return port
}

// in2outOther is nat44_ed_in2out_slowpath_unknown_proto: the source
// becomes the mapping's external address, or a pool address with no flow
// to this destination yet; with neither the packet is dropped.
func (c *evalCtx) in2outOther(table uint32, now time.Duration) bool {
	const node = "nat44-ed-in2out-slowpath"
	n := &c.st.nat
	outTable := n.cfg.outsideVRF
	var src netip.Addr
	if m := n.db.i2o[smKey{addr: c.pkt.Src, vrf: table, proto: c.pkt.Protocol}]; m != nil {
		src = m.external
	} else {
		for _, a := range n.db.addresses {
			k := natFlow{src: netip.AddrPortFrom(a.addr, 0), dst: netip.AddrPortFrom(c.pkt.Dst, 0), proto: c.pkt.Protocol, table: outTable}
			if n.db.sessions.flows[k] == nil {
				src = a.addr // the last free one, as VPP's loop leaves it
			}
		}
	}
	if !src.IsValid() {
		c.step(node, "protocol %d: no address to translate to", c.pkt.Protocol)
		return c.end(Dropped, fmt.Sprintf("NAT44-ED: no address to translate protocol %d from %s", c.pkt.Protocol, c.pkt.Src))
	}
	dst := c.pkt.Dst
	s := &natSession{proto: c.pkt.Protocol, lastHeard: now}
	if m := n.db.o2i[smKey{addr: c.pkt.Dst, proto: c.pkt.Protocol}]; m != nil {
		dst, s.hairpin = m.local, true
	} else if m := n.db.o2i[smKey{addr: c.pkt.Dst}]; m != nil {
		dst, s.hairpin = m.local, true
	}
	zero := func(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 0) }
	s.inside, s.outside, s.extHost = zero(c.pkt.Src), zero(src), zero(c.pkt.Dst)
	s.i2o = c.natKey(table)
	s.i2oTo = natRewrite{src: zero(src), dst: zero(dst), table: outTable}
	s.o2i = natFlow{src: zero(dst), dst: zero(src), proto: s.proto, table: outTable}
	s.o2iTo = natRewrite{src: zero(c.pkt.Dst), dst: zero(c.pkt.Src), table: table}
	n.db.sessions.add(s)
	return c.natApply(node, s, s.i2oTo, true, now)
}

// ingressOwns is is_interface_addr: the destination is an address of the
// interface the packet came in on.
func (c *evalCtx) ingressOwns(a netip.Addr) bool {
	for _, p := range c.ingress.addrs[af4] {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// behindOutside is is_destination_resolvable without VRF tables: the
// destination's /32 lookup in an outside interface's table resolves
// through an outside interface.
func (c *evalCtx) behindOutside(dst netip.Addr) bool {
	n := &c.st.nat
	outside := map[uint32]bool{}
	for _, i := range n.db.interfaces.values() {
		if i.outside {
			outside[i.swIfIndex] = true
		}
	}
	for idx := range outside {
		ifc, ok := c.st.ifaces[idx]
		if !ok {
			continue
		}
		if via, ok := c.st.resolvingInterface(ifc.table[af4], dst); ok && outside[via] {
			return true
		}
	}
	return false
}

// resolvingInterface is fib_entry_get_resolving_interface, following one
// level of recursion.
func (st *state) resolvingInterface(table uint32, dst netip.Addr) (uint32, bool) {
	for depth := 0; depth < 2; depth++ {
		r, ok := st.lookup(table, dst)
		if !ok || len(r.paths) == 0 {
			return 0, false
		}
		p := r.paths[0]
		switch p.kind {
		case pathAttached, pathAttachedNextHop:
			return p.swIfIndex, true
		case pathRecursive:
			table, dst = p.tableID, p.nextHop
			continue
		}
		return 0, false
	}
	return 0, false
}

// poolAddress is the address choice of nat_ed_alloc_addr_and_port (no
// output feature): from an offset hashed from the source, the last
// address of the packet's table, else the last of any table.
func (n *nat44State) poolAddress(src netip.Addr, table uint32) (netip.Addr, bool) {
	l := uint32(len(n.db.addresses))
	if l == 0 {
		return netip.Addr{}, false
	}
	s := asU32(src)
	off := (s + s>>8 + s>>16 + s>>24) % l
	var ja, ba netip.Addr
	for k := uint32(0); k < l; k++ {
		a := n.db.addresses[(off+k)%l]
		switch a.vrf {
		case table:
			ja = a.addr
		case noIndex:
			ba = a.addr
		}
	}
	if ja.IsValid() {
		return ja, true
	}
	return ba, ba.IsValid()
}

// out2in is nat44-ed-out2in, fast path then slow path: a session, else a
// static mapping by the destination makes one
// (create_session_for_static_mapping_ed); with neither the packet is
// dropped ("no translation") unless forwarding is on.
func (c *evalCtx) out2in(table uint32, now time.Duration) bool {
	const node = "nat44-ed-out2in"
	if cont, ok := c.natSession(node, table, true, now); ok {
		return cont
	}
	n := &c.st.nat
	const slow = "nat44-ed-out2in-slowpath"
	var m *staticMapping
	if natKnown(c.pkt.Protocol) {
		m = n.matchOut2In(c.pkt.Dst, c.pkt.DstPort, c.pkt.Protocol)
	} else {
		// nat44_ed_out2in_slowpath_unknown_proto looks up the protocol's
		// own key only: an address-only mapping (protocol 0) does not match.
		m = n.db.o2i[smKey{addr: c.pkt.Dst, proto: c.pkt.Protocol}]
	}
	var local netip.AddrPort
	var localTable uint32
	var aff *natAffinity
	if m != nil && !m.is(smIdentity) {
		local, localTable, aff = c.natBackend(m, now)
	}
	switch {
	case m == nil || (!local.IsValid() && !m.is(smIdentity)):
		if !n.forwarding {
			c.step(slow, "no session and no mapping for %s", c.natDst())
			return c.end(Dropped, "NAT44-ED out2in: no translation for "+c.natDst().String())
		}
		c.step(slow, "no session or mapping; forwarding: not translated")
		return true
	case m.is(smIdentity):
		c.step(slow, "identity mapping: not translated")
		return true
	}
	src, dst := c.natSrc(), c.natDst()
	s := &natSession{proto: c.pkt.Protocol, static: true, lb: m.is(smLB), inside: local, outside: dst, extHost: src,
		lastHeard: now, affinity: aff}
	s.o2i = c.natKey(table)
	s.o2iTo = natRewrite{src: src, dst: local, table: localTable}
	s.i2o = natFlow{src: local, dst: src, proto: s.proto, table: localTable}
	s.i2oTo = natRewrite{src: dst, dst: src, table: table}
	if !natKnown(s.proto) {
		s.i2o.src = netip.AddrPortFrom(local.Addr(), 0)
	}
	// Twice-NAT: always; self-twice-NAT: when the client is the backend.
	if natKnown(s.proto) && (m.is(smTwiceNAT) || (m.is(smSelfTwiceNAT) && c.pkt.Src == local.Addr())) {
		ext, ok := n.twiceNATSource(m, local, localTable, flowHash(c.pkt))
		if !ok {
			c.step(slow, "no twice-NAT address or port")
			if aff != nil && aff.refs == 0 {
				delete(n.db.sessions.affinity, aff.key)
			}
			return c.end(Dropped, "NAT44-ED out of ports: no twice-NAT pool address")
		}
		s.twiceNAT, s.extHostNAT = true, ext
		s.o2iTo.src = ext
		s.i2o.dst = ext
	}
	if aff != nil {
		aff.refs++
	}
	n.db.sessions.add(s)
	return c.natApply(slow, s, s.o2iTo, false, now)
}

// natBackend is the by-external half of snat_static_mapping_match: a plain
// mapping's local, or a load-balanced mapping's local kept by an affinity
// record or picked by probability (recording the choice when the mapping
// has affinity). An invalid address means no local could be picked.
func (c *evalCtx) natBackend(m *staticMapping, now time.Duration) (netip.AddrPort, uint32, *natAffinity) {
	n := &c.st.nat
	if !m.is(smLB) {
		return netip.AddrPortFrom(m.local, smPort(m, m.localPort, c.pkt.DstPort)), m.vrf, nil
	}
	key := affinityKey{client: c.pkt.Src, service: c.pkt.Dst, port: c.pkt.DstPort, proto: c.pkt.Protocol}
	if m.affinity != 0 {
		if a := n.findAffinity(key, now); a != nil && m.locals.live(a.backend) {
			l := m.locals.slots[a.backend]
			c.step("nat44-ed-out2in-slowpath", "affinity keeps %s on %s", c.pkt.Src, netip.AddrPortFrom(l.addr, l.port))
			return netip.AddrPortFrom(l.addr, l.port), l.vrf, a
		}
	}
	idx, l := pickLocal(m, flowHash(c.pkt))
	if l == nil {
		return netip.AddrPort{}, 0, nil
	}
	var a *natAffinity
	if m.affinity != 0 {
		a = n.addAffinity(key, idx, m.affinity)
	}
	return netip.AddrPortFrom(l.addr, l.port), l.vrf, a
}

// twiceNATSource is the source address and port of a twice-NAT session:
// the mapping's exact pool address when it is in the twice-NAT pool, else
// nat44_ed_alloc_i2o_addr_and_port over that pool.
func (n *nat44State) twiceNATSource(m *staticMapping, local netip.AddrPort, table uint32, hash uint32) (netip.AddrPort, bool) {
	pool := n.db.twiceNATAddresses
	var addr netip.Addr
	if m.is(smExactAddress) {
		for _, a := range pool {
			if a.addr == m.poolAddr {
				addr = a.addr
			}
		}
	}
	if !addr.IsValid() && len(pool) > 0 {
		off := int(asU32(local.Addr()) % uint32(len(pool)))
		var last, any natAddress
		found := false
		for k := 0; k < len(pool) && !found; k++ {
			a := pool[(off+k)%len(pool)]
			last = a
			switch a.vrf {
			case table:
				addr, found = a.addr, true
			case noIndex:
				any = a
			}
		}
		if !found && any.addr.IsValid() {
			// VPP allocates from the loop's last address, not the
			// any-table one it found (it passes a, not ga).
			addr = last.addr
		}
	}
	if !addr.IsValid() {
		return netip.AddrPort{}, false
	}
	port, ok := n.freePort(func(p uint16) natFlow {
		return natFlow{src: local, dst: netip.AddrPortFrom(addr, p), proto: m.proto, table: table}
	}, 0, hash)
	return netip.AddrPortFrom(addr, port), ok
}
