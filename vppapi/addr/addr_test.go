package addr

import (
	"net/netip"
	"testing"

	"go.fd.io/govpp/binapi/ip_types"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"10.244.1.0/24", "10.244.1.7/24", "0.0.0.0/0", "fd00:10:244:2::/64", "fd00::1/128", "::/0"} {
		p := netip.MustParsePrefix(s)
		v := FromPrefix(p)
		wantAF := ip_types.ADDRESS_IP4
		if p.Addr().Is6() {
			wantAF = ip_types.ADDRESS_IP6
		}
		if v.Address.Af != wantAF || int(v.Len) != p.Bits() {
			t.Errorf("%s: af %v len %d", s, v.Address.Af, v.Len)
		}
		if got := ToPrefix(v); got != p {
			t.Errorf("%s came back as %s", s, got)
		}
		if got := ToInterfaceAddress(FromInterfaceAddress(p)); got != p {
			t.Errorf("interface address %s came back as %s", s, got)
		}
		// govpp's own string form must agree with ours.
		if v.String() != p.String() {
			t.Errorf("govpp prints %s as %s", s, v.String())
		}
	}
	if got := ToAddr(FromAddr(netip.MustParseAddr("::ffff:10.0.0.1"))); got != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("IPv4-mapped address became %s, want plain IPv4", got)
	}
}
