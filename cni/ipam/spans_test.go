package ipam

import (
	"net/netip"
	"testing"
)

func TestGateway(t *testing.T) {
	tests := []struct {
		prefix string
		want   string
	}{
		{"10.244.0.0/24", "10.244.0.1"},
		{"10.244.3.0/24", "10.244.3.1"},
		{"fd00::/64", "fd00::1"},
		{"fd00:10:244:1::/64", "fd00:10:244:1::1"},
	}
	for _, tt := range tests {
		if got := Gateway(netip.MustParsePrefix(tt.prefix)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("Gateway(%s) = %s, want %s", tt.prefix, got, tt.want)
		}
	}
	if got := Gateway(netip.Prefix{}); got.IsValid() {
		t.Errorf("Gateway(invalid) = %s, want the zero Addr", got)
	}
}

func TestReservedReason(t *testing.T) {
	v4 := netip.MustParsePrefix("10.244.0.0/29")
	v6 := netip.MustParsePrefix("fd00::/64")
	tests := []struct {
		r        netip.Prefix
		addr     string
		reserved bool
	}{
		{v4, "10.244.0.0", true},  // network
		{v4, "10.244.0.1", true},  // gateway
		{v4, "10.244.0.2", false}, // first pod address
		{v4, "10.244.0.6", false}, // last pod address
		{v4, "10.244.0.7", true},  // broadcast
		{v6, "fd00::", true},
		{v6, "fd00::1", true},
		{v6, "fd00::2", false},
		{v6, "fd00::ffff:ffff:ffff:ffff", false}, // IPv6 has no broadcast
	}
	for _, tt := range tests {
		got := reservedReason(tt.r, netip.MustParseAddr(tt.addr)) != ""
		if got != tt.reserved {
			t.Errorf("reservedReason(%s, %s) reserved = %v, want %v", tt.r, tt.addr, got, tt.reserved)
		}
	}
}

func TestSpansMinusAndAfter(t *testing.T) {
	// 10.0.0.0/28 without 10.0.0.4/30 and 10.0.0.12/31 leaves .0-.3, .8-.11, .14-.15.
	whole := spans{spanOf(netip.MustParsePrefix("10.0.0.0/28"))}
	holes := spansOf([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.12/31"),
		netip.MustParsePrefix("10.0.0.4/30"),
		netip.MustParsePrefix("10.0.0.4/31"), // nested in the previous one
	})
	set := whole.minus(holes)
	want := []string{"10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.8", "10.0.0.9",
		"10.0.0.10", "10.0.0.11", "10.0.0.14", "10.0.0.15"}
	// Walk one full cycle with after from the zero Addr, and once more to see the wrap.
	ip := netip.Addr{}
	for i := 0; i < 2*len(want); i++ {
		ip = set.after(ip)
		if exp := want[i%len(want)]; ip != netip.MustParseAddr(exp) {
			t.Fatalf("step %d: after = %s, want %s", i, ip, exp)
		}
	}
	for _, s := range []string{"10.0.0.4", "10.0.0.7", "10.0.0.12", "10.0.0.13"} {
		if set.contains(netip.MustParseAddr(s)) {
			t.Errorf("set contains %s, which is in a hole", s)
		}
	}
	// A hole covering everything leaves nothing.
	if got := whole.minus(spans{spanOf(netip.MustParsePrefix("10.0.0.0/24"))}); len(got) != 0 {
		t.Errorf("minus a covering hole = %v, want empty", got)
	}
}
