package ipam

import (
	"net/netip"
	"slices"
)

// family is the address family of a pod range.
type family uint8

const (
	ipv4 family = iota
	ipv6
)

func familyOf(a netip.Addr) family {
	if a.Is4() {
		return ipv4
	}
	return ipv6
}

func (f family) String() string {
	if f == ipv4 {
		return "IPv4"
	}
	return "IPv6"
}

// Gateway returns the first host address of p: the pod gateway, which the
// node's VPP loopback holds (10.244.0.1 in 10.244.0.0/24, fd00::1 in fd00::/64).
// It returns the zero Addr for an invalid prefix.
func Gateway(p netip.Prefix) netip.Addr {
	if !p.IsValid() {
		return netip.Addr{}
	}
	return p.Masked().Addr().Next()
}

// lastAddr returns the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	last, _ := netip.AddrFromSlice(b)
	return last
}

// reservedReason says why a is never handed out from the node range r, or ""
// when it may be.
func reservedReason(r netip.Prefix, a netip.Addr) string {
	switch {
	case a == r.Masked().Addr():
		return "is the network address of this node's pod range " + r.String()
	case a == Gateway(r):
		return "is the pod gateway of this node's pod range " + r.String()
	case r.Addr().Is4() && a == lastAddr(r):
		return "is the broadcast address of this node's pod range " + r.String()
	}
	return ""
}

// intersect returns the part of p inside r. Two prefixes are either disjoint
// or one contains the other, so the intersection is a prefix or nothing.
func intersect(p, r netip.Prefix) (netip.Prefix, bool) {
	if !p.Overlaps(r) {
		return netip.Prefix{}, false
	}
	if p.Bits() >= r.Bits() {
		return p.Masked(), true
	}
	return r.Masked(), true
}

// span is an inclusive range of addresses of one family.
type span struct{ first, last netip.Addr }

func spanOf(p netip.Prefix) span { return span{p.Masked().Addr(), lastAddr(p)} }

// spans is a sorted list of disjoint, non-adjacent spans of one family: the
// addresses one pool draws from.
type spans []span

// spansOf returns the union of ps as sorted, merged spans.
func spansOf(ps []netip.Prefix) spans {
	s := make(spans, 0, len(ps))
	for _, p := range ps {
		s = append(s, spanOf(p))
	}
	slices.SortFunc(s, func(a, b span) int { return a.first.Compare(b.first) })
	merged := s[:0]
	for _, sp := range s {
		if n := len(merged); n > 0 {
			prev := &merged[n-1]
			if next := prev.last.Next(); !next.IsValid() || sp.first.Compare(next) <= 0 {
				if prev.last.Less(sp.last) {
					prev.last = sp.last
				}
				continue
			}
		}
		merged = append(merged, sp)
	}
	return merged
}

func (s spans) contains(a netip.Addr) bool {
	for _, sp := range s {
		if sp.first.Compare(a) <= 0 && a.Compare(sp.last) <= 0 {
			return true
		}
	}
	return false
}

// minus returns the addresses of s that are not in holes.
func (s spans) minus(holes spans) spans {
	var out spans
	for _, sp := range s {
		cur, done := sp.first, false
		for _, h := range holes {
			if h.last.Less(cur) || sp.last.Less(h.first) {
				continue
			}
			if cur.Less(h.first) {
				out = append(out, span{cur, h.first.Prev()})
			}
			if !h.last.Less(sp.last) {
				done = true
				break
			}
			cur = h.last.Next()
		}
		if !done {
			out = append(out, span{cur, sp.last})
		}
	}
	return out
}

// after returns the first address of s that follows a, wrapping around to
// the start of s. Stepping with after from any address visits every address
// of s once per cycle, which makes the allocation round-robin.
// s must not be empty.
func (s spans) after(a netip.Addr) netip.Addr {
	for _, sp := range s {
		if a.Less(sp.first) {
			return sp.first
		}
		if a.Less(sp.last) {
			return a.Next()
		}
	}
	return s[0].first
}
