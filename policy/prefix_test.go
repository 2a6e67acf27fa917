package policy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	cases := []struct {
		name     string
		in, want []string
	}{
		{"empty", nil, nil},
		{"duplicates kept once", []string{"10.0.0.1/32", "10.0.0.1/32"}, []string{"10.0.0.1/32"}},
		{"covered prefixes dropped", []string{"10.1.0.0/16", "10.0.0.0/8", "10.2.3.4/32"}, []string{"10.0.0.0/8"}},
		{"sibling halves merged", []string{"10.0.0.128/25", "10.0.0.0/25"}, []string{"10.0.0.0/24"}},
		{"merges cascade", []string{"10.0.0.2/32", "10.0.0.0/31", "10.0.0.3/32"}, []string{"10.0.0.0/30"}},
		{"adjacent but not siblings stay apart", []string{"10.0.0.2/32", "10.0.0.1/32"}, []string{"10.0.0.1/32", "10.0.0.2/32"}},
		{"IPv4 before IPv6", []string{"fd00::1/128", "10.0.0.1/32"}, []string{"10.0.0.1/32", "fd00::1/128"}},
		{"two halves make everything", []string{"128.0.0.0/1", "0.0.0.0/1"}, []string{"0.0.0.0/0"}},
		{"families never merge", []string{"::/0", "0.0.0.0/0"}, []string{"0.0.0.0/0", "::/0"}},
		{"host bits masked", []string{"10.0.0.5/24"}, []string{"10.0.0.0/24"}},
		{"IPv6 siblings merged", []string{"fd00::1/128", "fd00::/128"}, []string{"fd00::/127"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := normalize(prefixes(c.in...))
			if !slices.Equal(got, prefixes(c.want...)) {
				t.Errorf("normalize(%v) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestSubtract(t *testing.T) {
	cases := []struct {
		name   string
		cidr   string
		except []string
		want   []string
	}{
		{"no except", "10.0.0.0/8", nil, []string{"10.0.0.0/8"}},
		{"except elsewhere", "10.0.0.0/8", []string{"11.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{"except covering all", "10.0.0.0/24", []string{"10.0.0.0/16"}, nil},
		{"one address out of four", "10.0.0.0/30", []string{"10.0.0.1/32"}, []string{"10.0.0.0/32", "10.0.0.2/31"}},
		{"everything but 10/8", "0.0.0.0/0", []string{"10.0.0.0/8"}, []string{
			"0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"}},
		{"IPv6", "::/126", []string{"::2/127"}, []string{"::/127"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := subtract(netip.MustParsePrefix(c.cidr), prefixes(c.except...))
			if !slices.Equal(got, prefixes(c.want...)) {
				t.Errorf("subtract(%s, %v) = %v, want %v", c.cidr, c.except, got, c.want)
			}
		})
	}
}

// Against a brute force over one /24: the results cover exactly the right
// addresses, are sorted and disjoint, and normalize leaves no siblings.
func TestPrefixSetsExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := netip.MustParseAddr("10.0.0.0")
	random := func() netip.Prefix {
		bits := 24 + rng.IntN(9)
		a := base.As4()
		a[3] = byte(rng.IntN(256))
		p, _ := netip.AddrFrom4(a).Prefix(bits)
		return p
	}
	inAny := func(ps []netip.Prefix, a netip.Addr) bool {
		return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	check := func(t *testing.T, got []netip.Prefix, member func(netip.Addr) bool) {
		t.Helper()
		for i := range 256 {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			if inAny(got, a) != member(a) {
				t.Fatalf("%v: %s membership %v, want %v", got, a, inAny(got, a), member(a))
			}
		}
		for i := 1; i < len(got); i++ {
			if comparePrefixes(got[i-1], got[i]) >= 0 || got[i-1].Overlaps(got[i]) {
				t.Fatalf("%v: not sorted and disjoint at %d", got, i)
			}
		}
	}
	for range 500 {
		set := make([]netip.Prefix, 1+rng.IntN(6))
		for i := range set {
			set[i] = random()
		}
		orig := slices.Clone(set)
		got := normalize(set)
		check(t, got, func(a netip.Addr) bool { return inAny(orig, a) })
		for i := 1; i < len(got); i++ {
			if _, ok := siblings(got[i-1], got[i]); ok {
				t.Fatalf("normalize(%v) = %v: siblings left at %d", orig, got, i)
			}
		}

		cidr := netip.MustParsePrefix("10.0.0.0/24")
		got = subtract(cidr, orig)
		check(t, got, func(a netip.Addr) bool { return !inAny(orig, a) })
	}
}
