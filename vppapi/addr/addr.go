// Package addr converts between Go's net/netip values and VPP's ip_types,
// which carry addresses as a family plus a 16-byte union.
package addr

import (
	"net/netip"

	"go.fd.io/govpp/binapi/ip_types"
)

// FromAddr returns VPP's form of a.
func FromAddr(a netip.Addr) ip_types.Address {
	var out ip_types.Address
	if a.Is4() || a.Is4In6() {
		out.Af = ip_types.ADDRESS_IP4
		out.Un.SetIP4(ip_types.IP4Address(a.Unmap().As4()))
		return out
	}
	out.Af = ip_types.ADDRESS_IP6
	out.Un.SetIP6(ip_types.IP6Address(a.As16()))
	return out
}

// ToAddr returns the netip form of a VPP address.
func ToAddr(a ip_types.Address) netip.Addr {
	if a.Af == ip_types.ADDRESS_IP6 {
		return netip.AddrFrom16(a.Un.GetIP6())
	}
	return netip.AddrFrom4(a.Un.GetIP4())
}

// FromPrefix returns VPP's form of p, keeping host bits (interface addresses
// need them).
func FromPrefix(p netip.Prefix) ip_types.Prefix {
	return ip_types.Prefix{Address: FromAddr(p.Addr()), Len: uint8(p.Bits())}
}

// ToPrefix returns the netip form of a VPP prefix.
func ToPrefix(p ip_types.Prefix) netip.Prefix {
	return netip.PrefixFrom(ToAddr(p.Address), int(p.Len))
}

// FromInterfaceAddress returns VPP's address_with_prefix for an interface address.
func FromInterfaceAddress(p netip.Prefix) ip_types.AddressWithPrefix {
	return ip_types.AddressWithPrefix(FromPrefix(p))
}

// ToInterfaceAddress returns the netip form of an interface address.
func ToInterfaceAddress(p ip_types.AddressWithPrefix) netip.Prefix {
	return ToPrefix(ip_types.Prefix(p))
}
