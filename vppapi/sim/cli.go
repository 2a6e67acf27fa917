package sim

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// cliCmd is a node of the debug CLI's command tree. Nodes without run or
// subs are VPP commands the simulator doesn't implement; they are listed
// so that abbreviations are ambiguous exactly where VPP's are.
type cliCmd struct {
	name string
	subs []*cliCmd
	run  func(args string) (string, error)
}

// cliTree builds the command tree. The placeholder names are VPP 25.10's
// own first words at each level (the VLIB_CLI_COMMAND paths).
func (s *Sim) cliTree() *cliCmd {
	show := &cliCmd{name: "show", subs: []*cliCmd{
		{name: "version", run: s.cliShowVersion},
		{name: "interface", run: s.cliShowInterface},
		{name: "ip", subs: []*cliCmd{{name: "fib", run: func(a string) (string, error) { return s.cliShowFIB(af4, a) }}}},
		{name: "ip6", subs: []*cliCmd{{name: "fib", run: func(a string) (string, error) { return s.cliShowFIB(af6, a) }}}},
	}}
	placeholders(show.subs[2], "container local mfib neighbor neighbor-config neighbor-stats neighbor-watcher neighbors pmtu punt session source-and-port-range-check table")
	placeholders(show.subs[3], "addresses connection-tracker hbh interface local mfib neighbor neighbor-sorted neighbors pd prefixes punt table")
	placeholders(show, "abf acl-plugin adj api app arp auto-sdl bfd bier bihash bond bpf bridge-domain buffer buffers cdp "+
		"classify cli cli-sessions clock cnat cpu crypto cryptodev det44 device dhcp dhcp6 dhcpv6 dma dns dpdk dpo dslite "+
		"errors event-logger features fib files flow flowprobe frame-queue gdb geneve gpe graph gre gtpu hardware-interfaces "+
		"hash http igmp ikev2 ila inacl init-function ioam ioam-trace ip4 ip4-full-reassembly ip4-sv-reassembly "+
		"ip6-full-reassembly ip6-ll ip6-sv-reassembly ipip ipsec l2 l2fib l2patch l2tpv3 l2xcrw l3xc lacp lb lcp lisp lldp "+
		"load-balance load-balance-map logging lookup-dpo macro mactime map mc memif memory mfib mode mpls nat nat44 nat64 "+
		"nat66 node npt66 nsh nsim one outacl packet-generator pcap pci perfmon physmem plugins pnat policer pot pppoe punt "+
		"pvti qos quic replicate runtime segment-manager session sflow snort sr statistics stn svs sw_scheduler syslog tap "+
		"tcp teib terminal threads trace tun udp udp-ping unix vhost-user virtio vlib vmxnet3 vrrp vxlan vxlan-gpe wireguard")
	// Not VPP's: packet evaluation for kube-vppctl trace (vppapi.EvaluateCommand).
	sim := &cliCmd{name: "kube-vpp-sim", subs: []*cliCmd{{name: "evaluate", run: s.cliEvaluate}}}
	root := &cliCmd{subs: []*cliCmd{show, sim}}
	placeholders(root, "abf adjacency adl api app arping auto-sdl bfd bier binary-api bond buffer bvi cdp classify clear cnat "+
		"configure create debug define delete det44 device dhcp6 disable dns dslite echo enable event-logger exec exit "+
		"fateshare flowprobe gpe history hsi http igmp ikev2 ila interface ip ip6 ipfix ipsec l2 l2fib l3xc lb lcp lisp "+
		"loopback mactime map memory-trace monitor mpls nat nat44 nat64 nat66 nsim oddbuf one p2p_ethernet packet-generator "+
		"pcap perfmon ping pipe policer prom punt pvti q qos quic quit renumber restart sample save session set sflow snort "+
		"sr srp stn suspend svs tcp test test-url-handler tls trace tracenode udp undefine vrrp wait wireguard zap")
	return root
}

func placeholders(c *cliCmd, names string) {
	for _, n := range strings.Fields(names) {
		c.subs = append(c.subs, &cliCmd{name: n})
	}
}

// cli runs one debug CLI command. As vlib_cli_input does, a failed command
// prints its error and answers -1.
func (s *Sim) cli(cmd string) (string, int32) {
	out, err := s.cliTree().dispatch("", cmd)
	if err != nil {
		return out + err.Error() + "\n", -1
	}
	return out, 0
}

// dispatch is vlib_cli_dispatch_sub_commands: the next word selects a sub
// command by unique prefix (an exact name wins over longer ones); a node
// whose sub commands don't match runs its own function on the rest.
func (c *cliCmd) dispatch(path, input string) (string, error) {
	input = strings.TrimLeft(input, " \t")
	word, rest := cutWord(input)
	sub := c.match(word)
	if sub == nil {
		if path == "" {
			return "", fmt.Errorf("unknown input `%s'", unformatError(input))
		}
		return "", fmt.Errorf("%s: unknown input `%s'", path, unformatError(input))
	}
	subPath := strings.TrimSpace(path + " " + sub.name)
	var err error
	if len(sub.subs) > 0 {
		var out string
		if out, err = sub.dispatch(subPath, rest); err == nil {
			return out, nil
		}
	}
	switch {
	case sub.run != nil:
		out, runErr := sub.run(strings.TrimSpace(rest))
		if runErr != nil {
			return out, fmt.Errorf("%s: %w", subPath, runErr)
		}
		return out, nil
	case err != nil:
		return "", err
	}
	return "", fmt.Errorf("%s: not available in the VPP simulator", subPath)
}

func (c *cliCmd) match(word string) *cliCmd {
	if word == "" {
		return nil
	}
	var found []*cliCmd
	for _, sub := range c.subs {
		if sub.name == word {
			return sub
		}
		if strings.HasPrefix(sub.name, word) {
			found = append(found, sub)
		}
	}
	if len(found) != 1 {
		return nil
	}
	return found[0]
}

// cutWord splits off the command word: letters, digits, '-' and '_'.
func cutWord(s string) (string, string) {
	i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// unformatError is format_unformat_error: at most 30 bytes of the input.
func unformatError(s string) string {
	if len(s) > 30 {
		return s[:30] + "..."
	}
	return strings.TrimRight(s, " \t\r\n")
}

// cliShowVersion prints VPP's vpe_version_string, or the verbose block.
func (s *Sim) cliShowVersion(args string) (string, error) {
	date := s.started.UTC().Format("2006-01-02T15:04:05")
	if !slices.Contains(strings.Fields(args), "verbose") {
		return fmt.Sprintf("vpp v%s built by root on vppsim at %s\n", Version, date), nil
	}
	var b strings.Builder
	for _, kv := range [][2]string{
		{"Version:", "v" + Version}, {"Compiled by:", "root"}, {"Compile host:", "vppsim"},
		{"Compile date:", date}, {"Compile location:", "/simulator"}, {"Compiler:", "none (simulated)"},
		{"Current PID:", strconv.FormatUint(uint64(s.pid), 10)},
	} {
		fmt.Fprintf(&b, "%-25s %s\n", kv[0], kv[1])
	}
	return b.String(), nil
}

// cliShowInterface is show_sw_interfaces: the interface table, or with
// "address" each interface's L3 addresses.
func (s *Sim) cliShowInterface(args string) (string, error) {
	var (
		picked             []*iface
		addrs, tag, detail bool
	)
	for _, tok := range strings.Fields(args) {
		if ifc, ok := s.st.ifaceByName(tok); ok {
			picked = append(picked, ifc)
			continue
		}
		switch tok {
		case "address", "addr":
			addrs = true
		case "tag":
			tag = true
		case "features", "feat", "vtr", "verbose":
			detail = true
		default:
			n, err := strconv.ParseUint(tok, 10, 32)
			if err != nil {
				return "", fmt.Errorf("unknown input `%s'", unformatError(tok))
			}
			ifc, ok := s.st.ifaces[uint32(n)]
			if !ok {
				return "", fmt.Errorf("unknown interface index `%d'", n)
			}
			picked = append(picked, ifc)
		}
	}
	if (tag || detail) && len(picked) == 0 {
		return "", errors.New("Interface not specified...")
	}
	switch {
	case tag:
		ifc := picked[len(picked)-1]
		t := ifc.tag
		if t == "" {
			t = "(none)"
		}
		return fmt.Sprintf("%s: %s\n", ifc.name, t), nil
	case detail:
		return "", errors.New("features and tag-rewrite are not available in the VPP simulator")
	}
	if len(picked) == 0 {
		picked = s.st.sortedIfaces()
		slices.SortStableFunc(picked, func(a, b *iface) int { return strings.Compare(a.name, b.name) })
	}
	var b strings.Builder
	if addrs {
		for _, ifc := range picked {
			s.writeIfaceAddresses(&b, ifc)
		}
		return b.String(), nil
	}
	b.WriteString(center("Name", 32) + center("Idx", 5) + center("State", 10) +
		center("MTU (L3/IP4/IP6/MPLS)", 21) + center("Counter", 16) + center("Count", 16) + "\n")
	for _, ifc := range picked {
		state := "down"
		if ifc.adminUp {
			state = "up"
		}
		b.WriteString(left(ifc.name, 32) + center(strconv.FormatUint(uint64(ifc.index), 10), 5) +
			center(state, 10) + center(fmt.Sprintf("%d/0/0/0", ifc.mtu()), 21) + "\n")
	}
	return b.String(), nil
}

func (s *Sim) writeIfaceAddresses(b *strings.Builder, ifc *iface) {
	state := "dn"
	if ifc.adminUp {
		state = "up"
	}
	// An unnumbered interface names its lender (which may be gone, as in
	// VPP's dangling binding) and lists the addresses it borrows.
	if ifc.unnumbered {
		lender := fmt.Sprintf("sw_if_index:%d", ifc.unnumberedOf)
		if l, ok := s.st.ifaces[ifc.unnumberedOf]; ok {
			lender = l.name
		}
		fmt.Fprintf(b, "%s (%s): \n  unnumbered, use %s\n", ifc.name, state, lender)
	} else {
		fmt.Fprintf(b, "%s (%s):\n", ifc.name, state)
	}
	for _, af := range []afi{af4, af6} {
		t, _ := s.st.fib.table(af, ifc.table[af])
		for _, p := range s.st.usedAddresses(ifc, af) {
			if t != nil && t.id != 0 {
				fmt.Fprintf(b, "  L3 %s ip%c table-id %d fib-idx %d\n", p, "46"[af], t.id, t.index)
			} else {
				fmt.Fprintf(b, "  L3 %s\n", p)
			}
		}
	}
}

// cliShowFIB is ip4_show_fib / ip6_show_fib: each table's header and its
// entries by prefix, with the forwarding the best source gives. Words it
// doesn't know end the options, as in VPP.
func (s *Sim) cliShowFIB(af afi, args string) (string, error) {
	tableID, summary := int64(-1), false
	var match netip.Prefix
	toks := strings.Fields(args)
	for i := 0; i < len(toks); i++ {
		switch tok := toks[i]; {
		case tok == "brief" || tok == "summary" || tok == "sum":
			summary = true
		case tok == "table" && i+1 < len(toks):
			n, err := strconv.ParseUint(toks[i+1], 10, 32)
			if err != nil {
				i = len(toks)
				continue
			}
			tableID, i = int64(n), i+1
		default:
			p, err := netip.ParsePrefix(tok)
			if err != nil {
				a, aerr := netip.ParseAddr(tok)
				if aerr != nil || afOf(a) != af {
					i = len(toks)
					continue
				}
				p = netip.PrefixFrom(a, af.bits())
			}
			match = p
		}
	}
	var b strings.Builder
	for _, t := range s.st.fib.sortedTables(af) {
		if tableID >= 0 && uint32(tableID) != t.id {
			continue
		}
		s.writeTableHeader(&b, t)
		entries := s.st.fib.walk(t, 0)
		if summary {
			b.WriteString(center("Prefix length", 20) + center("Count", 16) + "\n")
			counts := map[int]int{}
			for _, e := range entries {
				counts[e.prefix.Bits()]++
			}
			for l := 0; l <= af.bits(); l++ {
				if counts[l] > 0 {
					fmt.Fprintf(&b, "%20d%16d\n", l, counts[l])
				}
			}
			continue
		}
		if match.IsValid() {
			entries = nil
			if r, ok := s.st.lookup(t.id, match.Addr()); ok && r.prefix.Bits() <= match.Bits() {
				entries = []*fibEntry{t.entries[r.prefix]}
			}
		}
		for _, e := range entries {
			s.writeEntry(&b, t, e)
		}
	}
	return b.String(), nil
}

func (s *Sim) writeTableHeader(b *strings.Builder, t *fibTable) {
	var locks strings.Builder
	if t.ifLocks > 0 {
		fmt.Fprintf(&locks, "interface:%d, ", t.ifLocks)
	}
	if t.apiLock {
		locks.WriteString("API:1, ")
	}
	if t.id == 0 {
		locks.WriteString("default-route:1, ")
	}
	fmt.Fprintf(b, "%s, fib_index:%d, flow hash:[src dst sport dport proto flowlabel ] epoch:0 flags:none locks:[%s]\n",
		t.name, t.index, locks.String())
}

func (s *Sim) writeEntry(b *strings.Builder, t *fibTable, e *fibEntry) {
	var fwd []path
	for _, p := range s.st.routeOf(t, e).paths {
		if p.usable && (len(fwd) == 0 || p.preference == fwd[0].preference) {
			fwd = append(fwd, p)
		}
	}
	if len(fwd) == 0 {
		fwd = []path{{kind: pathSpecial, proto: t.af}}
	}
	fmt.Fprintf(b, "%s\n  unicast-%s-chain\n  [@0]: dpo-load-balance: [proto:%s index:%d buckets:%d uRPF:%d to:[0:0]]\n",
		e.prefix.Masked(), t.af, t.af, e.stats, len(fwd), e.stats)
	for i, p := range fwd {
		fmt.Fprintf(b, "    [@%d]: %s\n", i, s.formatPath(t.af, e.prefix.Masked(), p))
	}
}

func (s *Sim) formatPath(af afi, pfx netip.Prefix, p path) string {
	ifName := func(idx uint32) string {
		if ifc, ok := s.st.ifaces[idx]; ok {
			return ifc.name
		}
		return fmt.Sprintf("sw_if_index:%d", idx)
	}
	ver := "ipv4"
	if af == af6 {
		ver = "ipv6"
	}
	switch p.kind {
	case pathReceive:
		if p.swIfIndex == noIndex {
			return "dpo-receive"
		}
		return fmt.Sprintf("dpo-receive: %s on %s", p.nextHop, ifName(p.swIfIndex))
	case pathAttached:
		return fmt.Sprintf("%s-glean: [src:%s] %s", ver, pfx, ifName(p.swIfIndex))
	case pathAttachedNextHop:
		return fmt.Sprintf("%s via %s %s", ver, p.nextHop, ifName(p.swIfIndex))
	case pathRecursive:
		return fmt.Sprintf("recursive via %s in %s-VRF:%d", p.nextHop, ver, p.tableID)
	case pathDeag:
		return fmt.Sprintf("dst-address,unicast lookup in %s-VRF:%d", ver, p.tableID)
	case pathExclusive:
		return "ip6-link-local"
	}
	switch p.action {
	case actICMPUnreach:
		return "dpo-" + af.String() + "-icmp-unreachable"
	case actICMPProhibit:
		return "dpo-" + af.String() + "-icmp-prohibited"
	}
	return "dpo-drop " + af.String()
}

// center and left are clib format's %=Ns and %-Ns: padded, or cut to width.
func center(s string, w int) string {
	if len(s) >= w {
		return s[:w]
	}
	n := w - len(s)
	return strings.Repeat(" ", n-n/2) + s + strings.Repeat(" ", n/2)
}

func left(s string, w int) string {
	if len(s) >= w {
		return s[:w]
	}
	return s + strings.Repeat(" ", w-len(s))
}
