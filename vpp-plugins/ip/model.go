// Package ip is the driver for VPP's FIB: the tables and routes kube-vpp
// owns. Routes are owned through a FIB source of kube-vpp's own, registered
// by name, so a dump filtered by that source returns exactly our routes and
// routes from any other source are never touched.
package ip

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PathType says what a path does with a packet.
type PathType uint8

const (
	// Forward sends to a next hop and/or out of an interface.
	Forward PathType = iota
	// Drop discards (a blackhole route).
	Drop
	// Local delivers to VPP itself.
	Local
	// Unreachable answers ICMP destination unreachable.
	Unreachable
	// Prohibit answers ICMP administratively prohibited.
	Prohibit
)

func (t PathType) String() string {
	switch t {
	case Forward:
		return "via"
	case Drop:
		return "drop"
	case Local:
		return "local"
	case Unreachable:
		return "unreachable"
	case Prohibit:
		return "prohibit"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// NoInterface is VPP's ~0 sw_if_index: resolve the next hop recursively.
const NoInterface = ^uint32(0)

// Path is one way out of a route. Several paths make an ECMP route; VPP
// spreads flows over them by weight.
type Path struct {
	Type       PathType
	NextHop    netip.Addr // invalid for attached, drop and local paths
	SwIfIndex  uint32     // NoInterface to resolve NextHop through the FIB
	Weight     uint8      // 0 means 1, as VPP treats it
	Preference uint8
}

// normal returns the path as VPP reports it back, so desired and dumped
// paths compare equal when they mean the same.
func (p Path) normal() Path {
	if p.Weight == 0 {
		p.Weight = 1
	}
	if p.Type != Forward {
		p.NextHop, p.SwIfIndex = netip.Addr{}, NoInterface
	}
	return p
}

func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Type.String())
	if p.NextHop.IsValid() {
		b.WriteString(" " + p.NextHop.String())
	}
	if p.SwIfIndex != NoInterface && p.Type == Forward {
		fmt.Fprintf(&b, " sw_if_index %d", p.SwIfIndex)
	}
	if p.Weight > 1 {
		fmt.Fprintf(&b, " weight %d", p.Weight)
	}
	return b.String()
}

// Route is a prefix in a table with its paths.
type Route struct {
	Table  uint32
	Prefix netip.Prefix
	Paths  []Path
}

func (r Route) key() routeKey { return routeKey{r.Table, r.Prefix.Masked()} }

// samePaths reports whether two path sets are equal regardless of order.
func samePaths(a, b []Path) bool {
	if len(a) != len(b) {
		return false
	}
	na, nb := normalPaths(a), normalPaths(b)
	return slices.Equal(na, nb)
}

func normalPaths(ps []Path) []Path {
	out := make([]Path, len(ps))
	for i, p := range ps {
		out[i] = p.normal()
	}
	slices.SortFunc(out, func(x, y Path) int { return strings.Compare(x.sortKey(), y.sortKey()) })
	return out
}

func (p Path) sortKey() string {
	return fmt.Sprintf("%d|%s|%d|%d|%d", p.Type, p.NextHop, p.SwIfIndex, p.Weight, p.Preference)
}

type routeKey struct {
	table  uint32
	prefix netip.Prefix
}

func (k routeKey) String() string { return fmt.Sprintf("%s (table %d)", k.prefix, k.table) }

// Table is a FIB table the agent needs. Table 0 of each family always exists
// and is never created or deleted.
type Table struct {
	ID   uint32
	IPv6 bool
	// Name is the table's tag, made with TableTag: a driver creates and
	// deletes only the tables tagged with its source.
	Name string
}

type tableKey struct {
	id   uint32
	ipv6 bool
}

// Desired is the whole FIB state this driver keeps.
type Desired struct {
	Tables []Table
	Routes []Route
}

// Validate checks what VPP would refuse or silently alter, so that one bad
// route is reported by name instead of failing the whole sync at VPP.
func (r Route) Validate() error {
	if !r.Prefix.IsValid() {
		return fmt.Errorf("route in table %d: invalid prefix", r.Table)
	}
	if len(r.Paths) == 0 {
		return fmt.Errorf("route %s (table %d): no paths", r.Prefix, r.Table)
	}
	if len(r.Paths) > 255 {
		return fmt.Errorf("route %s (table %d): %d paths, VPP takes at most 255", r.Prefix, r.Table, len(r.Paths))
	}
	for _, p := range r.Paths {
		if p.Type == Forward && !p.NextHop.IsValid() && p.SwIfIndex == NoInterface {
			return fmt.Errorf("route %s (table %d): path has neither next hop nor interface", r.Prefix, r.Table)
		}
		if p.NextHop.IsValid() && p.NextHop.Is4() != r.Prefix.Addr().Is4() {
			return fmt.Errorf("route %s (table %d): next hop %s is of the other address family", r.Prefix, r.Table, p.NextHop)
		}
	}
	return nil
}
