// Package podnet configures the pod's side of a pod network link: the
// addresses, routes and neighbour entries inside the pod's network namespace,
// and, in veth mode, the veth pair whose host end VPP attaches with af_packet.
//
// The calling goroutine's thread never changes namespace: netlink sockets for
// a pod's namespace are opened by a short-lived goroutine of their own and
// then used from anywhere.
package podnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Linux limits interface names to IFNAMSIZ-1 bytes (include/uapi/linux/if.h).
const maxIfNameLen = 15

// MTU bounds: IPv4's minimum (RFC 791) and the largest the kernel takes.
const (
	minMTU     = 68
	maxMTU     = 65535
	minMTUIPv6 = 1280 // below it the kernel disables IPv6 on the link (RFC 8200)
)

var (
	// ErrNetnsNotFound reports a namespace path that does not exist.
	ErrNetnsNotFound = errors.New("no such file")
	// ErrNotNetns reports a path that exists but is not a network namespace.
	ErrNotNetns = errors.New("not a network namespace")
	// ErrLinkNotFound reports a missing pod or host interface.
	ErrLinkNotFound = errors.New("not found")
)

// Config is the desired state of a pod's interface inside its namespace.
type Config struct {
	// Netns is the path of the pod's network namespace, e.g. /var/run/netns/x
	// or /proc/<pid>/ns/net.
	Netns string
	// IfName is the pod interface, usually eth0.
	IfName string
	// Addresses are the pod IPs, at most one per family. Each is installed as
	// a host prefix (/32, /128) without a prefix route.
	Addresses []netip.Addr
	// Gateways holds the next hop per family; its families must be exactly
	// those of Addresses.
	Gateways []netip.Addr
	// MTU of the pod interface; 0 leaves it as it is.
	MTU int
	// GatewayMAC is the L2 address every gateway resolves to on an L2 link
	// (veth mode: the MAC of VPP's af_packet interface). Nil for a TUN link,
	// which has no L2 header.
	GatewayMAC net.HardwareAddr
}

// Link describes the pod interface after Configure.
type Link struct {
	Index int
	// MAC is nil for an L3 (TUN) link.
	MAC net.HardwareAddr
	MTU int
}

// family is one family's addressing: the pod address and its gateway.
type family struct {
	addr netip.Addr
	gw   netip.Addr
}

// validate checks cfg before anything is touched and pairs each address with
// the gateway of its family.
func (cfg Config) validate() ([]family, error) {
	if cfg.Netns == "" {
		return nil, fmt.Errorf("pod interface %q: Netns is empty", cfg.IfName)
	}
	where := fmt.Sprintf("pod interface %q in %s", cfg.IfName, cfg.Netns)
	if err := validIfName(cfg.IfName); err != nil {
		return nil, fmt.Errorf("%s: IfName: %w", where, err)
	}
	if len(cfg.Addresses) == 0 {
		return nil, fmt.Errorf("%s: Addresses is empty", where)
	}
	addrs, err := byFamily(cfg.Addresses)
	if err != nil {
		return nil, fmt.Errorf("%s: Addresses: %w", where, err)
	}
	gws, err := byFamily(cfg.Gateways)
	if err != nil {
		return nil, fmt.Errorf("%s: Gateways: %w", where, err)
	}
	var fams []family
	for _, v6 := range []bool{false, true} {
		a, haveAddr := addrs[v6]
		g, haveGW := gws[v6]
		switch {
		case haveAddr && !haveGW:
			return nil, fmt.Errorf("%s: Gateways: no %s gateway for address %s", where, familyName(v6), a)
		case !haveAddr && haveGW:
			return nil, fmt.Errorf("%s: Gateways: %s gateway %s has no %s address", where, familyName(v6), g, familyName(v6))
		case !haveAddr:
			continue
		case a == g:
			return nil, fmt.Errorf("%s: Gateways: gateway %s is the pod's own address", where, g)
		}
		fams = append(fams, family{addr: a, gw: g})
	}
	if cfg.MTU != 0 {
		if cfg.MTU < minMTU || cfg.MTU > maxMTU {
			return nil, fmt.Errorf("%s: MTU %d outside %d..%d", where, cfg.MTU, minMTU, maxMTU)
		}
		if _, v6 := addrs[true]; v6 && cfg.MTU < minMTUIPv6 {
			return nil, fmt.Errorf("%s: MTU %d is below IPv6's minimum %d", where, cfg.MTU, minMTUIPv6)
		}
	}
	if cfg.GatewayMAC != nil {
		if err := validMAC(cfg.GatewayMAC); err != nil {
			return nil, fmt.Errorf("%s: GatewayMAC: %w", where, err)
		}
	}
	return fams, nil
}

// byFamily keys addrs by "is IPv6", refusing a second address of one family.
func byFamily(addrs []netip.Addr) (map[bool]netip.Addr, error) {
	out := make(map[bool]netip.Addr, 2)
	for _, a := range addrs {
		switch {
		case !a.IsValid():
			return nil, errors.New("invalid (zero) address")
		case a.Zone() != "":
			return nil, fmt.Errorf("%s: zoned address", a)
		case a.Is4In6():
			return nil, fmt.Errorf("%s: IPv4-mapped IPv6 address, give the IPv4 form", a)
		case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
			return nil, fmt.Errorf("%s: not a unicast address", a)
		}
		v6 := a.Is6()
		if prev, dup := out[v6]; dup {
			return nil, fmt.Errorf("%s and %s: more than one %s address", prev, a, familyName(v6))
		}
		out[v6] = a
	}
	return out, nil
}

func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// validIfName follows the kernel's dev_valid_name (net/core/dev.c).
func validIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("%q is longer than %d bytes", name, maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid name", name)
	case strings.ContainsAny(name, "/:\x00") || strings.ContainsFunc(name, isSpace):
		return fmt.Errorf("%q contains '/', ':' or white space", name)
	}
	return nil
}

// isSpace matches the kernel's isspace() for ASCII.
func isSpace(r rune) bool {
	return r == ' ' || (r >= '\t' && r <= '\r')
}

func validMAC(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("%s: want a 6-byte Ethernet address", mac)
	}
	if mac[0]&1 != 0 {
		return fmt.Errorf("%s: multicast address", mac)
	}
	if string(mac) == string(make([]byte, 6)) {
		return fmt.Errorf("%s: all-zero address", mac)
	}
	return nil
}

func validMTU(mtu int) error {
	if mtu != 0 && (mtu < minMTU || mtu > maxMTU) {
		return fmt.Errorf("MTU %d outside %d..%d", mtu, minMTU, maxMTU)
	}
	return nil
}
