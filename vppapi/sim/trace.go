package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
)

// Packet is the header of a packet arriving on a VPP interface.
type Packet struct {
	Ingress  uint32 // sw_if_index it arrives on
	Src, Dst netip.Addr
	// Protocol is the IP protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6. An
	// ICMP or ICMPv6 packet is taken to be an echo request.
	Protocol         uint8
	SrcPort, DstPort uint16
}

// Verdict is what becomes of an evaluated packet.
type Verdict string

const (
	// Forwarded packets leave through an egress interface.
	Forwarded Verdict = "forwarded"
	// Dropped packets go to an error-drop node.
	Dropped Verdict = "dropped"
	// Local packets are delivered to VPP itself and answered by it: an
	// ICMP echo request to one of its addresses.
	Local Verdict = "local"
	// Rejected packets are answered with an ICMP error or a reset, by a
	// feature or by VPP's own stack (a UDP port nobody listens on).
	Rejected Verdict = "rejected"
)

// Step is one graph node the packet went through.
type Step struct {
	Node   string // VPP's node name, e.g. ip4-lookup
	Detail string
}

// Result is the outcome of Evaluate.
type Result struct {
	Verdict    Verdict
	Packet     Packet // as it leaves: features may rewrite it
	Egress     uint32 // sw_if_index, for Forwarded
	EgressName string
	NextHop    netip.Addr
	Reason     string // why it was dropped, rejected or delivered
	Steps      []Step
	// Translations are the rewrites NAT applied, in the order applied.
	Translations []Translation
	// ACL is what each ACL node on the way decided, in the order passed.
	ACL []ACLMatch
}

// Translation is one address and port rewrite of a packet.
type Translation struct {
	Node     string // the VPP node that rewrote, e.g. nat44-ed-out2in-slowpath
	Kind     string // "dnat" (destination rewritten) or "snat" (source)
	From, To netip.AddrPort
}

// evalCtx is one packet's walk through the graph.
type evalCtx struct {
	st      *state
	af      afi
	pkt     Packet
	ingress *iface
	egress  *iface
	nextHop netip.Addr
	res     Result
}

func (c *evalCtx) step(node, format string, args ...any) {
	c.res.Steps = append(c.res.Steps, Step{Node: node, Detail: fmt.Sprintf(format, args...)})
}

// end sets a final verdict; nodes return false after calling it.
func (c *evalCtx) end(v Verdict, reason string) bool {
	c.res.Verdict, c.res.Reason = v, reason
	return false
}

// featureNode is one node of a feature arc: it may rewrite c.pkt, end the
// walk (return false after c.end) or pass the packet on (return true).
type featureNode struct {
	name string
	run  func(c *evalCtx) bool
}

// featureArc is an ordered feature arc. VPP orders features by their
// runs_before/runs_after constraints; the simulator keeps the resulting
// order explicitly.
type featureArc struct {
	name  string
	nodes []featureNode
}

func (a featureArc) walk(c *evalCtx) bool {
	for _, n := range a.nodes {
		if !n.run(c) {
			return false
		}
	}
	return true
}

// inputArc is ip4-unicast / ip6-unicast. VPP's order on it is
// ip4-not-enabled (only where IP is off), the ACL input nodes
// (acl-plugin-in-ip4-fa), the NAT44-ED out2in/in2out nodes, and ip4-lookup
// as the arc's end node; later features go between not-enabled and lookup.
func inputArc(af afi) featureArc {
	return featureArc{name: af.String() + "-unicast", nodes: []featureNode{
		{name: af.String() + "-not-enabled", run: notEnabled},
		{name: aclNodeName(af, true), run: aclInput}, // acl_eval.go
		{name: "nat44-ed", run: natInput},            // runs_after acl-plugin-in-ip4-fa, nat44_ed_eval.go
	}}
}

// outputArc is ip4-output / ip6-output, walked after the rewrite; its end
// node is interface-output. nat44-ed-in2out-output (not modelled) would
// run before acl-plugin-out-ip4-fa, which runs_before interface-output.
func outputArc(af afi) featureArc {
	return featureArc{name: af.String() + "-output", nodes: []featureNode{
		{name: aclNodeName(af, false), run: aclOutput}, // acl_eval.go
	}}
}

// Evaluate follows a packet through the simulated graph: input checks, the
// unicast input arc, the FIB lookup in the ingress interface's table, the
// output arc and the egress interface. It fails only for invalid input.
func (s *Sim) Evaluate(p Packet) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.evaluate(p)
}

func (st *state) evaluate(p Packet) (Result, error) {
	p.Src, p.Dst = p.Src.Unmap(), p.Dst.Unmap()
	if !p.Src.IsValid() || !p.Dst.IsValid() {
		return Result{}, errors.New("packet: source and destination addresses are required")
	}
	if p.Src.Is4() != p.Dst.Is4() {
		return Result{}, fmt.Errorf("packet: source %s and destination %s are of different families", p.Src, p.Dst)
	}
	ingress, ok := st.ifaces[p.Ingress]
	if !ok {
		return Result{}, fmt.Errorf("packet: ingress sw_if_index %d does not exist", p.Ingress)
	}
	c := &evalCtx{st: st, af: afOf(p.Dst), pkt: p, ingress: ingress}
	c.run()
	c.res.Packet = c.pkt
	return c.res, nil
}

func (c *evalCtx) run() {
	input := c.af.String() + "-input"
	if !c.ingress.up() {
		c.step(input, "%s is down", c.ingress.name)
		c.end(Dropped, fmt.Sprintf("ingress interface %s is down", c.ingress.name))
		return
	}
	c.step(input, "%s -> %s on %s", c.pkt.Src, c.pkt.Dst, c.ingress.name)
	if !inputArc(c.af).walk(c) {
		return
	}
	if !c.lookup(c.ingress.table[c.af], 0) {
		return
	}
	if !outputArc(c.af).walk(c) {
		return
	}
	c.step("interface-output", "%s", c.egress.name)
	c.res.Verdict = Forwarded
	c.res.Egress, c.res.EgressName, c.res.NextHop = c.egress.index, c.egress.name, c.nextHop
}

// notEnabled is ip4-not-enabled / ip6-not-enabled: the feature VPP keeps on
// interfaces without IP enabled, dropping everything.
func notEnabled(c *evalCtx) bool {
	if c.st.ipEnabled(c.ingress, c.af) {
		return true
	}
	node := c.af.String() + "-not-enabled"
	c.step(node, "%s has no %s address and is not unnumbered", c.ingress.name, c.af)
	return c.end(Dropped, fmt.Sprintf("%s not enabled on %s", c.af, c.ingress.name))
}

// maxChain bounds recursive and table-to-table lookups, as VPP's recursion
// loop detection would.
const maxChain = 8

// lookup is ip4-lookup / ip6-lookup and the DPO the chosen path leads to.
// It returns true when the packet has an egress and next hop to go on with.
func (c *evalCtx) lookup(tableID uint32, depth int) bool {
	node := c.af.String() + "-lookup"
	if depth > maxChain {
		c.step(node, "lookup chain deeper than %d", maxChain)
		return c.end(Dropped, "recursion loop")
	}
	r, ok := c.st.lookup(tableID, c.pkt.Dst)
	if !ok {
		c.step(node, "no table %d", tableID)
		return c.end(Dropped, fmt.Sprintf("%s table %d does not exist", c.af, tableID))
	}
	p := r.pickPath(flowHash(c.pkt))
	c.step(node, "fib %d %s via %s", tableID, r.prefix, describePath(c.st, p))
	switch p.kind {
	case pathReceive:
		return c.local(tableID, false, fmt.Sprintf("%s is an address of this node (%s)", c.pkt.Dst, r.prefix))
	case pathDeag:
		return c.lookup(p.tableID, depth+1)
	case pathExclusive:
		return c.linkLocal()
	case pathRecursive:
		return c.resolve(p.tableID, p.nextHop, depth)
	case pathAttached, pathAttachedNextHop:
		return c.rewrite(p.swIfIndex, p.nextHop)
	}
	return c.special(r, p)
}

// special handles the drop, unreachable and prohibit DPOs, and explains a
// route whose interface paths are all down.
func (c *evalCtx) special(r route, p path) bool {
	switch p.action {
	// ip_null_dpo.c: the ip4-null / ip6-null node answers with an ICMP
	// error to the sender (host unreachable, or administratively
	// prohibited) through ip4-icmp-error.
	case actICMPUnreach:
		c.step(c.af.String()+"-null", "send ICMP unreachable")
		c.step(c.af.String()+"-icmp-error", "destination unreachable (host) to %s", c.pkt.Src)
		return c.end(Rejected, fmt.Sprintf("%s is unreachable: ICMP destination unreachable sent", r.prefix))
	case actICMPProhibit:
		c.step(c.af.String()+"-null", "send ICMP prohibited")
		c.step(c.af.String()+"-icmp-error", "administratively prohibited to %s", c.pkt.Src)
		return c.end(Rejected, fmt.Sprintf("%s is prohibited: ICMP administratively prohibited sent", r.prefix))
	}
	c.step(c.af.String()+"-drop", "")
	for _, q := range r.paths {
		if q.kind == pathAttached || q.kind == pathAttachedNextHop {
			name := fmt.Sprintf("sw_if_index %d", q.swIfIndex)
			if ifc, ok := c.st.ifaces[q.swIfIndex]; ok {
				name = ifc.name
			}
			return c.end(Dropped, fmt.Sprintf("egress interface %s for %s is down", name, r.prefix))
		}
	}
	if r.prefix.Bits() == 0 {
		return c.end(Dropped, fmt.Sprintf("no route to %s", c.pkt.Dst))
	}
	return c.end(Dropped, fmt.Sprintf("%s is a drop route", r.prefix))
}

// resolve follows a recursive path: the next hop is looked up in its table,
// and the packet takes the path that resolves it.
func (c *evalCtx) resolve(tableID uint32, via netip.Addr, depth int) bool {
	if depth >= maxChain {
		return c.end(Dropped, "recursion loop")
	}
	r, ok := c.st.lookup(tableID, via)
	if !ok {
		return c.end(Dropped, fmt.Sprintf("next hop %s: %s table %d does not exist", via, c.af, tableID))
	}
	p := r.pickPath(flowHash(c.pkt))
	c.step("lookup-"+c.af.String()+"-dst", "resolve %s: %s via %s", via, r.prefix, describePath(c.st, p))
	switch p.kind {
	case pathRecursive:
		return c.resolve(p.tableID, p.nextHop, depth+1)
	case pathAttached:
		return c.rewrite(p.swIfIndex, via)
	case pathAttachedNextHop:
		return c.rewrite(p.swIfIndex, p.nextHop)
	case pathReceive:
		return c.end(Dropped, fmt.Sprintf("next hop %s is a local address", via))
	}
	return c.special(r, p)
}

// rewrite is ip4-rewrite: the egress must be up; a glean (no next hop)
// sends to the destination itself, as once its neighbour is resolved.
func (c *evalCtx) rewrite(swIfIndex uint32, nh netip.Addr) bool {
	egress, ok := c.st.ifaces[swIfIndex]
	if !ok || !egress.up() {
		c.step(c.af.String()+"-drop", "")
		return c.end(Dropped, fmt.Sprintf("egress interface sw_if_index %d is down or gone", swIfIndex))
	}
	if !nh.IsValid() || nh.IsUnspecified() {
		nh = c.pkt.Dst
	}
	c.egress, c.nextHop = egress, nh
	c.step(c.af.String()+"-rewrite", "%s via %s", egress.name, nh)
	return true
}

// linkLocal is ip6-link-local: fe80::/10 is looked up per interface; the
// simulator knows only the ingress interface's own link-local address.
func (c *evalCtx) linkLocal() bool {
	c.step("ip6-link-local", "on %s", c.ingress.name)
	if c.pkt.Dst == c.ingress.linkLocal() {
		return c.local(0, true, fmt.Sprintf("%s is the link-local address of %s", c.pkt.Dst, c.ingress.name))
	}
	return c.end(Dropped, fmt.Sprintf("no link-local neighbour %s on %s", c.pkt.Dst, c.ingress.name))
}

// IP protocols ip4-local and ip6-local dispatch on.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// local is ip4-receive / ip6-receive, the receive DPO's node, which runs
// ip4-local's code (ip4_local_inline, ip6_local_inline in
// src/vnet/ip/ip{4,6}_forward.c): a source check, then the next node by IP
// protocol (local_next_by_ip_protocol). ip_lookup_init sends ICMP to
// ip4-icmp-input and UDP to ip4-udp-lookup and punts every other protocol;
// TCP is registered only by tcp_main_enable (src/vnet/tcp/tcp.c), which
// runs when the session layer is enabled, and the simulator never enables
// it. tableID is the table the destination was found in (the source is
// looked up there too); linkLocal says it was the interface's link-local one.
func (c *evalCtx) local(tableID uint32, linkLocal bool, why string) bool {
	af := c.af.String()
	c.step(af+"-receive", "%s", why)
	if reason := c.sourceCheck(tableID, linkLocal); reason != "" {
		c.step(af+"-drop", "%s", reason)
		return c.end(Dropped, fmt.Sprintf("%s: %s", why, reason))
	}
	icmp := uint8(protoICMP)
	if c.af == af6 {
		icmp = protoICMPv6
	}
	switch c.pkt.Protocol {
	case icmp:
		// The ping plugin registers echo request with ip4_icmp_register_type
		// (icmp6_register_type); that node turns the packet into the reply.
		c.step(af+"-icmp-input", "echo request")
		c.step(af+"-icmp-echo-request", "reply to %s", c.pkt.Src)
		return c.end(Local, fmt.Sprintf("%s; VPP answers the echo request", why))
	case protoUDP:
		// udp46_local_inline (src/vnet/udp/udp_local.c): no node registered
		// for the port, unknown ports not punted, unreachables not disabled.
		c.step(af+"-udp-lookup", "UDP: src-port %d dst-port %d (no listener)", c.pkt.SrcPort, c.pkt.DstPort)
		c.step(af+"-icmp-error", "destination unreachable, port unreachable")
		return c.end(Rejected, fmt.Sprintf("%s; no listener for UDP port %d in %s-udp-lookup: VPP answers ICMP port unreachable",
			why, c.pkt.DstPort, af))
	}
	c.step(af+"-punt", "protocol %d", c.pkt.Protocol)
	c.step("error-punt", "unknown ip protocol")
	if c.pkt.Protocol == protoTCP {
		return c.end(Dropped, fmt.Sprintf("%s; TCP is not registered in %s-local (the session layer is not enabled): punted and dropped", why, af))
	}
	return c.end(Dropped, fmt.Sprintf("%s; IP protocol %d is not registered in %s-local: punted and dropped", why, c.pkt.Protocol, af))
}

// sourceCheck is ip4_local_check_src and ip6-local's loose uRPF check; it
// returns why the packet is dropped, "" when it passes. IPv4 drops a source
// that is one of VPP's own addresses, then one with no route that names an
// interface (broadcasts excepted); IPv6 checks only the latter, and not for
// ICMPv6 or link-local sources. Packets NAT translated skip the check
// (ip4_local_classify's IP_LOCAL_PACKET_TYPE_NAT).
func (c *evalCtx) sourceCheck(tableID uint32, linkLocal bool) string {
	if c.af == af4 && len(c.res.Translations) > 0 {
		return ""
	}
	if c.af == af6 && (c.pkt.Protocol == protoICMPv6 || c.pkt.Src.IsLinkLocalUnicast()) {
		return ""
	}
	if linkLocal {
		// The link-local table holds only link-local prefixes.
		return fmt.Sprintf("ip6 source lookup miss: no route to %s", c.pkt.Src)
	}
	r, ok := c.st.lookup(tableID, c.pkt.Src)
	if !ok {
		return fmt.Sprintf("%s source lookup miss: %s table %d does not exist", c.af, c.af, tableID)
	}
	if c.af == af4 && len(r.paths) > 0 && r.pickPath(0).kind == pathReceive {
		return fmt.Sprintf("ip4 spoofed local-address packet: source %s is an address of this node", c.pkt.Src)
	}
	if !c.st.urpfNonEmpty(r, 0) && c.pkt.Dst != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Sprintf("%s source lookup miss: the route to %s (%s) names no interface", c.af, c.pkt.Src, r.prefix)
	}
	return ""
}

// urpfNonEmpty says whether a route's uRPF list has an interface:
// fib_path_contribute_urpf adds the interface of every attached path,
// resolved or not, and a recursive path's via entry's list; special,
// receive and table lookup paths add none.
func (st *state) urpfNonEmpty(r route, depth int) bool {
	for _, p := range r.paths {
		switch p.kind {
		case pathAttached, pathAttachedNextHop:
			return true
		case pathRecursive:
			if depth >= maxChain {
				continue
			}
			if via, ok := st.lookup(p.tableID, p.nextHop); ok && st.urpfNonEmpty(via, depth+1) {
				return true
			}
		}
	}
	return false
}

func describePath(st *state, p path) string {
	name := func(idx uint32) string {
		if ifc, ok := st.ifaces[idx]; ok {
			return ifc.name
		}
		return fmt.Sprintf("sw_if_index:%d", idx)
	}
	switch p.kind {
	case pathReceive:
		return "receive"
	case pathAttached:
		return "glean " + name(p.swIfIndex)
	case pathAttachedNextHop:
		return fmt.Sprintf("%s %s", p.nextHop, name(p.swIfIndex))
	case pathRecursive:
		return fmt.Sprintf("recursive %s table %d", p.nextHop, p.tableID)
	case pathDeag:
		return fmt.Sprintf("lookup in table %d", p.tableID)
	case pathExclusive:
		return "ip6-link-local"
	}
	switch p.action {
	case actICMPUnreach:
		return "unreachable"
	case actICMPProhibit:
		return "prohibit"
	}
	return "drop"
}

// flowHash hashes the 5-tuple, the fields of VPP's default flow hash
// (src dst sport dport proto), so one flow always takes the same path.
func flowHash(p Packet) uint32 {
	h := fnv.New32a()
	h.Write(p.Src.AsSlice())
	h.Write(p.Dst.AsSlice())
	var b [5]byte
	binary.BigEndian.PutUint16(b[0:], p.SrcPort)
	binary.BigEndian.PutUint16(b[2:], p.DstPort)
	b[4] = p.Protocol
	h.Write(b[:])
	return h.Sum32()
}
