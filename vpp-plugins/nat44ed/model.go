package nat44ed

import (
	"fmt"
	"net/netip"
	"strings"
)

// KindService is the tag kind of service mappings.
const KindService = "svc"

// Protocol is the IP protocol a mapping serves. NAT44-ED load-balanced
// mappings serve TCP and UDP only.
type Protocol uint8

// Protocols a service mapping may have.
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// MarshalText writes tcp or udp, for JSON.
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (p *Protocol) UnmarshalText(b []byte) error {
	switch string(b) {
	case "tcp":
		*p = TCP
	case "udp":
		*p = UDP
	default:
		return fmt.Errorf("protocol %q: want tcp or udp", b)
	}
	return nil
}

// Local is one backend of a mapping.
type Local struct {
	Addr netip.AddrPort `json:"addr"`
	// Probability is the local's weight: VPP picks a local with chance
	// probability/sum over the mapping's locals. 0 is refused.
	Probability uint8 `json:"probability"`
}

// Mapping is one out2in-only static mapping from External to one of
// Locals. With one local it is a plain static mapping
// (nat44_add_del_static_mapping_v2); with two or more a load-balanced one
// (nat44_add_del_lb_static_mapping), which VPP refuses for fewer.
// Out2in-only: a backend's own connections are not rewritten to the
// service address, and the external address need not be in the pool.
type Mapping struct {
	// Tag names the owner (tag.New(KindService, ...)); mappings whose tag
	// is not kube-vpp's are never touched. It also carries what VPP's
	// dumps do not report back (the affinity timeout), so a mapping whose
	// tag differs is replaced.
	Tag      string         `json:"tag"`
	External netip.AddrPort `json:"external"`
	Protocol Protocol       `json:"protocol"`
	Locals   []Local        `json:"locals"`
	// Affinity is the ClientIP session affinity timeout in seconds, 0 for
	// none. It needs two or more locals.
	Affinity uint32 `json:"affinity,omitempty"`
	// TwiceNAT rewrites the source of every client to a twice-NAT pool
	// address, so a backend on another node replies through this node
	// (kube-proxy's masquerade for externalTrafficPolicy Cluster).
	TwiceNAT bool `json:"twiceNAT,omitempty"`
	// SelfTwiceNAT rewrites the source of a client that the mapping sends
	// to itself (a pod reaching itself through its service) to a twice-NAT
	// pool address, so the reply comes back through VPP.
	SelfTwiceNAT bool `json:"selfTwiceNAT,omitempty"`
}

// Key identifies a mapping in VPP: its external address, port and protocol.
type Key struct {
	External netip.AddrPort
	Protocol Protocol
}

// Key returns the mapping's identity in VPP.
func (m Mapping) Key() Key { return Key{m.External, m.Protocol} }

func (k Key) String() string { return k.External.String() + "/" + k.Protocol.String() }

// Validate checks what VPP would refuse, so a bad mapping is reported
// with its tag before any message is sent.
func (m Mapping) Validate() error {
	var errs []string
	if !m.External.Addr().Is4() {
		errs = append(errs, fmt.Sprintf("external %s is not IPv4", m.External))
	}
	if m.Protocol != TCP && m.Protocol != UDP {
		errs = append(errs, fmt.Sprintf("protocol %d: NAT44-ED serves tcp and udp only", m.Protocol))
	}
	if m.TwiceNAT && m.SelfTwiceNAT {
		errs = append(errs, "twice-NAT and self-twice-NAT exclude each other")
	}
	if len(m.Locals) == 0 {
		errs = append(errs, "no locals")
	}
	if m.Affinity != 0 && len(m.Locals) < 2 {
		errs = append(errs, "affinity needs two or more locals")
	}
	seen := map[netip.AddrPort]bool{}
	for _, l := range m.Locals {
		switch {
		case !l.Addr.Addr().Is4():
			errs = append(errs, fmt.Sprintf("local %s is not IPv4", l.Addr))
		case l.Probability == 0:
			errs = append(errs, fmt.Sprintf("local %s has probability 0", l.Addr))
		case seen[l.Addr]:
			errs = append(errs, fmt.Sprintf("local %s twice", l.Addr))
		}
		seen[l.Addr] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("mapping %s (%s): %s", m.Key(), m.Tag, strings.Join(errs, "; "))
	}
	return nil
}

// Interface is a NAT role on one VPP interface. Pod interfaces are inside
// and outside (see Desired); the uplink is outside.
type Interface struct {
	SwIfIndex       uint32
	Inside, Outside bool
}

// Base is the NAT44-ED configuration every mapping depends on.
type Base struct {
	// Interfaces with their roles; interfaces not listed have no NAT
	// feature set by kube-vpp (features it set earlier are removed).
	//
	// Pod interfaces must be inside AND outside: on an inside-only
	// interface a packet to a load-balanced VIP takes in2out, whose
	// hairpinning rewrites to the mapping's local_addr, which a
	// load-balanced mapping leaves 0.0.0.0 (nat44_ed_in2out.c); with both
	// roles nat44-ed-classify sends it out2in, which picks a local.
	Interfaces []Interface
	// TwiceNATAddresses is the twice-NAT pool, the source of hairpinned
	// connections: a node-local address that routes back to VPP.
	TwiceNATAddresses []netip.Addr
	// Identities are the identity mappings of local pod addresses; those
	// kube-vpp made and no longer wants are removed.
	Identities []Identity
	// ForeignInterfaces are interfaces whose NAT roles someone else (an
	// operator) sets. NAT roles carry no tag, so kube-vpp takes every role
	// on every other interface as its own: roles on an interface neither
	// listed in Interfaces nor here are removed.
	ForeignInterfaces []uint32
}

// Validate checks the base for what cannot be programmed as one state:
// an interface listed twice or both in Interfaces and ForeignInterfaces,
// a twice-NAT address that is not IPv4 or is listed twice.
func (b Base) Validate() error {
	var errs []string
	foreign := map[uint32]bool{}
	for _, idx := range b.ForeignInterfaces {
		foreign[idx] = true
	}
	seen := map[uint32]bool{}
	for _, i := range b.Interfaces {
		switch {
		case seen[i.SwIfIndex]:
			errs = append(errs, fmt.Sprintf("interfaces: sw_if_index %d listed twice", i.SwIfIndex))
		case foreign[i.SwIfIndex]:
			errs = append(errs, fmt.Sprintf("interfaces: sw_if_index %d is also a foreign interface", i.SwIfIndex))
		}
		seen[i.SwIfIndex] = true
	}
	addrs := map[netip.Addr]bool{}
	for _, a := range b.TwiceNATAddresses {
		switch {
		case !a.Is4() || a.IsUnspecified():
			errs = append(errs, fmt.Sprintf("twice-NAT address %s is not a usable IPv4 address", a))
		case addrs[a]:
			errs = append(errs, fmt.Sprintf("twice-NAT address %s listed twice", a))
		}
		addrs[a] = true
	}
	if len(errs) > 0 {
		return fmt.Errorf("NAT44-ED base: %s", strings.Join(errs, "; "))
	}
	return nil
}

// KindIdentity is the tag kind of the identity mappings of pod addresses.
const KindIdentity = "pod-id"

// Identity is an identity mapping: Protocol traffic from Addr leaves
// untranslated. VPP's in2out translates protocols other than TCP, UDP and
// ICMP even with forwarding on (nat44_ed_in2out_slowpath_unknown_proto
// runs before any forwarding check) and drops them when no static mapping
// names the source and the pool is empty, so SCTP from a pod would never
// leave it; an identity mapping of the pod's address for SCTP is the
// static mapping that lookup finds, with the pod's own address as
// "external".
type Identity struct {
	Addr     netip.Addr
	Protocol uint8
}
