package policy

import (
	"cmp"
	"net/netip"
	"slices"
)

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func comparePrefixLists(a, b []netip.Prefix) int {
	// Rules of one policy share their peer slice; skip the element walk then.
	if len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) {
		return 0
	}
	return slices.CompareFunc(a, b, comparePrefixes)
}

// hostPrefix is the single-address prefix of a.
func hostPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}

// normalize returns the canonical form of the union of ps: sorted, disjoint
// and with sibling halves merged, so that equal address sets give equal lists
// (and equal table hashes). It reuses ps' backing array.
func normalize(ps []netip.Prefix) []netip.Prefix {
	for i, p := range ps {
		ps[i] = p.Masked()
	}
	slices.SortFunc(ps, comparePrefixes)
	// Sorted by address then length, a prefix covering others comes right
	// before them, so comparing with the last one kept drops all covered ones.
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
		for n := len(out); n >= 2; n = len(out) {
			parent, ok := siblings(out[n-2], out[n-1])
			if !ok {
				break
			}
			out = append(out[:n-2], parent)
		}
	}
	return out
}

// siblings returns the parent of a and b when they are its two halves.
func siblings(a, b netip.Prefix) (netip.Prefix, bool) {
	if a.Bits() != b.Bits() || a.Bits() == 0 || a.Addr().Is4() != b.Addr().Is4() || a == b {
		return netip.Prefix{}, false
	}
	pa, _ := a.Addr().Prefix(a.Bits() - 1)
	pb, _ := b.Addr().Prefix(b.Bits() - 1)
	return pa, pa == pb
}

// subtract returns p without the addresses of except, as sorted disjoint
// prefixes: p is halved until each half is either clear of every except
// (kept) or inside one (dropped).
func subtract(p netip.Prefix, except []netip.Prefix) []netip.Prefix {
	var overlapping []netip.Prefix
	for _, e := range except {
		if e.Bits() <= p.Bits() && e.Contains(p.Addr()) {
			return nil
		}
		if e.Overlaps(p) {
			overlapping = append(overlapping, e)
		}
	}
	if len(overlapping) == 0 {
		return []netip.Prefix{p}
	}
	lo, hi := halves(p)
	return append(subtract(lo, overlapping), subtract(hi, overlapping)...)
}

// halves splits p (shorter than a host prefix) into its two halves.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
	bits := p.Bits()
	b := p.Addr().As16()
	if p.Addr().Is4() {
		bits += 96 // an IPv4 address sits in the last 4 bytes of As16
	}
	b[bits/8] |= 0x80 >> (bits % 8)
	hiAddr := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		hiAddr = hiAddr.Unmap()
	}
	return netip.PrefixFrom(p.Addr(), p.Bits()+1), netip.PrefixFrom(hiAddr, p.Bits()+1)
}
