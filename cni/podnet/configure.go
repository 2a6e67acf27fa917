package podnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Configure brings the pod interface named cfg.IfName inside cfg.Netns to the
// state cfg describes: MTU, link up (and lo up), one host-prefix address per
// family, a link-scope route to each gateway and a default route via it, and
// on L2 links a permanent neighbour entry per gateway. It only changes what
// differs, so running it again on a configured pod changes nothing.
// Addresses and routes it does not manage are left alone.
func Configure(ctx context.Context, cfg Config) (Link, error) {
	fams, err := cfg.validate()
	if err != nil {
		return Link{}, err
	}
	h, err := openAt(ctx, cfg.Netns)
	if err != nil {
		return Link{}, fmt.Errorf("%s: %w", cfg.IfName, err)
	}
	defer h.Close()
	p := pod{h: h, cfg: cfg, fams: fams}
	l, err := p.configure(ctx)
	if err != nil {
		return Link{}, fmt.Errorf("%s in %s: %w", cfg.IfName, cfg.Netns, err)
	}
	return l, nil
}

// Check reports the first way the pod interface differs from cfg, or nil when
// it is configured as Configure would leave it.
func Check(ctx context.Context, cfg Config) error {
	fams, err := cfg.validate()
	if err != nil {
		return err
	}
	h, err := openAt(ctx, cfg.Netns)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.IfName, err)
	}
	defer h.Close()
	p := pod{h: h, cfg: cfg, fams: fams}
	if err := p.check(ctx); err != nil {
		return fmt.Errorf("%s in %s: %w", cfg.IfName, cfg.Netns, err)
	}
	return nil
}

// pod holds what Configure and Check share for one call.
type pod struct {
	h    *nsHandle
	cfg  Config
	fams []family
}

func (p pod) configure(ctx context.Context) (Link, error) {
	if err := p.ensureLoopbackUp(); err != nil {
		return Link{}, err
	}
	link, err := p.link()
	if err != nil {
		return Link{}, err
	}
	attrs := link.Attrs()
	if p.cfg.MTU != 0 && attrs.MTU != p.cfg.MTU {
		if err := p.h.LinkSetMTU(link, p.cfg.MTU); err != nil {
			return Link{}, fmt.Errorf("set MTU %d: %w", p.cfg.MTU, err)
		}
	}
	// Up before routes: IPv4 refuses a nexthop on a device that is down.
	if attrs.Flags&net.FlagUp == 0 {
		if err := p.h.LinkSetUp(link); err != nil {
			return Link{}, fmt.Errorf("set link up: %w", err)
		}
	}
	for _, f := range p.fams {
		if err := ctx.Err(); err != nil {
			return Link{}, err
		}
		if err := p.ensureAddr(link, f.addr); err != nil {
			return Link{}, err
		}
		if err := p.ensureRoutes(link, f.gw); err != nil {
			return Link{}, err
		}
		if p.cfg.GatewayMAC != nil {
			if err := p.ensureNeigh(link, f.gw); err != nil {
				return Link{}, err
			}
		}
	}
	// Read it back so the caller sees the MTU actually in force.
	link, err = p.link()
	if err != nil {
		return Link{}, err
	}
	attrs = link.Attrs()
	out := Link{Index: attrs.Index, MTU: attrs.MTU}
	if len(attrs.HardwareAddr) > 0 {
		out.MAC = append(net.HardwareAddr(nil), attrs.HardwareAddr...)
	}
	return out, nil
}

func (p pod) check(ctx context.Context) error {
	lo, err := linkByName(p.h.Handle, "lo")
	if err != nil {
		return err
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("link lo is down")
	}
	link, err := p.link()
	if err != nil {
		return err
	}
	attrs := link.Attrs()
	if attrs.Flags&net.FlagUp == 0 {
		return fmt.Errorf("link %s is down", p.cfg.IfName)
	}
	if p.cfg.MTU != 0 && attrs.MTU != p.cfg.MTU {
		return fmt.Errorf("MTU %d, want %d", attrs.MTU, p.cfg.MTU)
	}
	for _, f := range p.fams {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok, err := p.findAddr(link, f.addr); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("address %s missing", hostPrefix(f.addr))
		}
		routes, err := p.routes(link, f.gw)
		if err != nil {
			return err
		}
		if !hasGatewayRoute(routes, f.gw) {
			return fmt.Errorf("route %s dev %s scope link missing", hostPrefix(f.gw), p.cfg.IfName)
		}
		if !hasDefaultRoute(routes, f.gw) {
			return fmt.Errorf("default route via %s missing", f.gw)
		}
		if p.cfg.GatewayMAC != nil {
			if err := p.checkNeigh(link, f.gw); err != nil {
				return err
			}
		}
	}
	return nil
}

// link returns the pod interface and refuses a GatewayMAC on a link that has
// no L2 header to put it in.
func (p pod) link() (netlink.Link, error) {
	link, err := linkByName(p.h.Handle, p.cfg.IfName)
	if err != nil {
		return nil, err
	}
	if p.cfg.GatewayMAC != nil && len(link.Attrs().HardwareAddr) == 0 {
		return nil, fmt.Errorf("GatewayMAC %s given, but link %s (%s) has no L2 address", p.cfg.GatewayMAC, p.cfg.IfName, link.Type())
	}
	return link, nil
}

// ensureLoopbackUp raises lo, as kubelet expects of a CNI plugin.
func (p pod) ensureLoopbackUp() error {
	lo, err := linkByName(p.h.Handle, "lo")
	if err != nil {
		return err
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := p.h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set link lo up: %w", err)
	}
	return nil
}

// wantAddrFlags: no prefix route (the gateway route is the only on-link
// route), and for IPv6 no duplicate address detection so the address is
// usable at once instead of tentative for a second or more.
func wantAddrFlags(a netip.Addr) int {
	if a.Is6() {
		return unix.IFA_F_NOPREFIXROUTE | unix.IFA_F_NODAD
	}
	return unix.IFA_F_NOPREFIXROUTE
}

// findAddr looks for a as a host prefix on link. It also returns any entry
// with a's IP but another prefix length or unusable state, for removal.
func (p pod) findAddr(link netlink.Link, a netip.Addr) (stale []netlink.Addr, ok bool, err error) {
	addrs, err := dump(func() ([]netlink.Addr, error) { return p.h.AddrList(link, netFamily(a)) })
	if err != nil {
		return nil, false, fmt.Errorf("list addresses: %w", err)
	}
	for _, have := range addrs {
		if have.IPNet == nil || !have.IP.Equal(a.AsSlice()) {
			continue
		}
		ones, bits := have.Mask.Size()
		if ones == bits && bits == a.BitLen() && usable(have) {
			ok = true
			continue
		}
		stale = append(stale, have)
	}
	return stale, ok, nil
}

// usable tells whether an existing host-prefix address is as Configure would
// add it. IPv4 flags are not compared: the kernel keeps them on replace and a
// /32 never gets a prefix route anyway (fib_add_ifaddr).
func usable(a netlink.Addr) bool {
	if a.IP.To4() != nil {
		return true
	}
	if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
		return false
	}
	return a.Flags&unix.IFA_F_NOPREFIXROUTE != 0
}

func (p pod) ensureAddr(link netlink.Link, a netip.Addr) error {
	stale, ok, err := p.findAddr(link, a)
	if err != nil {
		return err
	}
	for _, s := range stale {
		if err := p.h.AddrDel(link, &s); err != nil {
			return fmt.Errorf("delete address %s: %w", s.IPNet, err)
		}
	}
	if ok {
		return nil
	}
	want := &netlink.Addr{IPNet: ipNet(hostPrefix(a)), Flags: wantAddrFlags(a)}
	if err := p.h.AddrAdd(link, want); err != nil {
		return fmt.Errorf("add address %s: %w", hostPrefix(a), err)
	}
	return nil
}

// routes lists the main-table routes of gw's family leaving through link.
func (p pod) routes(link netlink.Link, gw netip.Addr) ([]netlink.Route, error) {
	filter := &netlink.Route{LinkIndex: link.Attrs().Index}
	routes, err := dump(func() ([]netlink.Route, error) {
		return p.h.RouteListFiltered(netFamily(gw), filter, netlink.RT_FILTER_OIF)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return routes, nil
}

func (p pod) ensureRoutes(link netlink.Link, gw netip.Addr) error {
	routes, err := p.routes(link, gw)
	if err != nil {
		return err
	}
	index := link.Attrs().Index
	if !hasGatewayRoute(routes, gw) {
		r := &netlink.Route{LinkIndex: index, Dst: ipNet(hostPrefix(gw)), Scope: netlink.SCOPE_LINK}
		if err := p.h.RouteReplace(r); err != nil {
			return fmt.Errorf("add route %s dev %s scope link: %w", hostPrefix(gw), p.cfg.IfName, err)
		}
	}
	if !hasDefaultRoute(routes, gw) {
		// Replace, not add: a default route left by something else in the
		// pod's namespace is superseded rather than a reason to fail.
		r := &netlink.Route{LinkIndex: index, Dst: ipNet(netip.PrefixFrom(unspecified(gw), 0)), Gw: gw.AsSlice()}
		if err := p.h.RouteReplace(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
	}
	return nil
}

// hasGatewayRoute finds gw/32 (or /128) on-link, without a next hop. IPv6
// has no route scopes, so scope is compared for IPv4 only.
func hasGatewayRoute(routes []netlink.Route, gw netip.Addr) bool {
	for _, r := range routes {
		if r.Dst == nil || r.Gw != nil || len(r.MultiPath) > 0 || !r.Dst.IP.Equal(gw.AsSlice()) {
			continue
		}
		ones, bits := r.Dst.Mask.Size()
		if ones != bits {
			continue
		}
		if gw.Is4() && r.Scope != netlink.SCOPE_LINK {
			continue
		}
		return true
	}
	return false
}

// hasDefaultRoute finds a default route whose only next hop is gw. The
// library reports a default destination as nil or as a zero-length prefix.
func hasDefaultRoute(routes []netlink.Route, gw netip.Addr) bool {
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if len(r.MultiPath) == 0 && r.Gw.Equal(gw.AsSlice()) {
			return true
		}
	}
	return false
}

// neigh returns the neighbour entry for gw on link, if any.
func (p pod) neigh(link netlink.Link, gw netip.Addr) (*netlink.Neigh, error) {
	index := link.Attrs().Index
	neighs, err := dump(func() ([]netlink.Neigh, error) { return p.h.NeighList(index, netFamily(gw)) })
	if err != nil {
		return nil, fmt.Errorf("list neighbours: %w", err)
	}
	for i := range neighs {
		if neighs[i].LinkIndex == index && neighs[i].IP.Equal(gw.AsSlice()) {
			return &neighs[i], nil
		}
	}
	return nil, nil
}

func (p pod) checkNeigh(link netlink.Link, gw netip.Addr) error {
	n, err := p.neigh(link, gw)
	if err != nil {
		return err
	}
	switch {
	case n == nil:
		return fmt.Errorf("neighbour %s missing", gw)
	case n.State&netlink.NUD_PERMANENT == 0:
		return fmt.Errorf("neighbour %s is %s, want permanent", gw, neighState(n.State))
	case n.HardwareAddr.String() != p.cfg.GatewayMAC.String():
		return fmt.Errorf("neighbour %s is %s, want %s", gw, n.HardwareAddr, p.cfg.GatewayMAC)
	}
	return nil
}

// ensureNeigh pins gw to GatewayMAC so the pod never ARPs or solicits for its
// gateway: VPP's af_packet interface answers neither on its own.
func (p pod) ensureNeigh(link netlink.Link, gw netip.Addr) error {
	if p.checkNeigh(link, gw) == nil {
		return nil
	}
	n := &netlink.Neigh{
		LinkIndex:    link.Attrs().Index,
		Family:       netFamily(gw),
		State:        netlink.NUD_PERMANENT,
		IP:           gw.AsSlice(),
		HardwareAddr: p.cfg.GatewayMAC,
	}
	if err := p.h.NeighSet(n); err != nil {
		return fmt.Errorf("set neighbour %s lladdr %s: %w", gw, p.cfg.GatewayMAC, err)
	}
	return nil
}

func neighState(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "incomplete"}, {netlink.NUD_REACHABLE, "reachable"},
		{netlink.NUD_STALE, "stale"}, {netlink.NUD_DELAY, "delay"}, {netlink.NUD_PROBE, "probe"},
		{netlink.NUD_FAILED, "failed"}, {netlink.NUD_NOARP, "noarp"},
	}
	for _, n := range names {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return fmt.Sprintf("state %#x", s)
}

func netFamily(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func hostPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}

func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
