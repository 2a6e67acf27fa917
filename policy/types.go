// Package policy compiles networking.k8s.io/v1 NetworkPolicies into what
// each pod may send and receive, as IP prefixes, protocols and port ranges.
//
// It is pure: Compile reads Pods, Namespaces and NetworkPolicies and returns
// per-pod allow lists in a deterministic order. Place (tables.go) turns
// them into VPP ACL tables and says on which interface and direction each
// is bound, and why.
package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Input is everything the compiler reads. Nil entries are ignored.
type Input struct {
	// Pods of every node. Pods without an IP are neither peers nor targets.
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
	Policies   []*networkingv1.NetworkPolicy
}

// Protocol is an IP protocol number; 0 matches any protocol.
type Protocol uint8

// The protocols a NetworkPolicy port can name.
const (
	AnyProtocol Protocol = 0
	TCP         Protocol = 6
	UDP         Protocol = 17
	SCTP        Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case AnyProtocol:
		return "any"
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// PortRange is an inclusive range of ports; the zero value matches any port.
type PortRange struct{ First, Last uint16 }

// Any reports whether r matches every port.
func (r PortRange) Any() bool { return r == PortRange{} }

func (r PortRange) String() string {
	switch {
	case r.Any():
		return "any"
	case r.First == r.Last:
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Rule is one allow: traffic to or from Peers with Protocol on Ports.
// Rules of different pods may share the Peers slice; treat it as read-only.
type Rule struct {
	// Peers is the other end: the sources for ingress, the destinations for
	// egress. Disjoint, sorted, and aggregated into the fewest prefixes.
	// Empty means anywhere.
	Peers    []netip.Prefix
	Protocol Protocol
	// Ports are on the target pod for ingress, on the destination for egress.
	Ports PortRange
	// Policy ("namespace/name") and Index (of its ingress or egress rule)
	// name where the allow comes from; when several policies give the same
	// allow, the first by name is kept.
	Policy string
	Index  int
}

// Direction is what a pod may receive (ingress) or send (egress).
type Direction struct {
	// Isolated is set when a policy selecting the pod covers this direction:
	// then everything not in Allow is denied.
	Isolated bool
	// Allow is the union of the selecting policies' allows, sorted by
	// (peers, protocol, ports) without duplicates.
	Allow []Rule
}

// Hash is a stable content hash of d's allow list, ignoring where the allows
// come from (Policy, Index) and their order, so that pods whose lists allow
// the same traffic can share one table. Isolation is not part of it: a
// direction that is not isolated needs no table.
func (d Direction) Hash() string {
	sum := allowSum(d.Allow)
	return hex.EncodeToString(sum[:])
}

// allowSum is Hash's 128 bits. The allows are hashed in compareAllow order
// without duplicates, which is how Compile already gives them; other lists
// are sorted in a copy first.
func allowSum(allow []Rule) [16]byte {
	if !isCanonical(allow) {
		allow = slices.Clone(allow)
		slices.SortFunc(allow, compareAllow)
		allow = slices.CompactFunc(allow, sameAllow)
	}
	size := 0
	for _, r := range allow {
		size += 9 + len(r.Peers)*prefixSize
	}
	// Each allow: protocol, ports, the number of peers, then the peers in
	// a fixed size, so that no two lists encode alike.
	buf := make([]byte, 0, size)
	for _, r := range allow {
		buf = append(buf, byte(r.Protocol))
		buf = binary.BigEndian.AppendUint16(buf, r.Ports.First)
		buf = binary.BigEndian.AppendUint16(buf, r.Ports.Last)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(r.Peers)))
		for _, p := range r.Peers {
			buf = appendPrefix(buf, p)
		}
	}
	full := sha256.Sum256(buf)
	// 128 bits keep collisions out of reach and leave room in a 64-byte tag.
	return [16]byte(full[:16])
}

// isCanonical reports whether allow is strictly increasing in compareAllow.
func isCanonical(allow []Rule) bool {
	for i := 1; i < len(allow); i++ {
		if compareAllow(allow[i-1], allow[i]) >= 0 {
			return false
		}
	}
	return true
}

// PodRules is the compiled policy of one pod.
type PodRules struct {
	Pod             string // "namespace/name"
	IPs             []netip.Addr
	Ingress, Egress Direction
	Policies        []string // policies selecting the pod, sorted
}

// Problem is a part of a NetworkPolicy the compiler could not use. The rule
// holding it is dropped; the policy still isolates the pods it selects.
type Problem struct {
	Policy string // "namespace/name"
	Field  string // e.g. spec.ingress[0].from[1].ipBlock.except[0]
	Err    error
}

func (p Problem) Error() string {
	return fmt.Sprintf("networkpolicy %s: %s: %v", p.Policy, p.Field, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// Output is the compiled policy of every pod that can be a target: pods
// with an IP, not on the host network and not terminated. Problems are in
// policy name order, then field order.
type Output struct {
	Pods     map[string]PodRules
	Problems []Problem
}

// compareAllow orders rules by what they allow: (peers, protocol, ports).
func compareAllow(a, b Rule) int {
	if c := comparePrefixLists(a.Peers, b.Peers); c != 0 {
		return c
	}
	return cmp.Or(
		cmp.Compare(a.Protocol, b.Protocol),
		cmp.Compare(a.Ports.First, b.Ports.First),
		cmp.Compare(a.Ports.Last, b.Ports.Last),
	)
}

// compareRules orders rules by (peers, protocol, ports, policy, index).
func compareRules(a, b Rule) int {
	if c := compareAllow(a, b); c != 0 {
		return c
	}
	return cmp.Or(
		strings.Compare(a.Policy, b.Policy),
		cmp.Compare(a.Index, b.Index),
	)
}

// sameAllow reports whether a and b allow the same traffic.
func sameAllow(a, b Rule) bool {
	return a.Protocol == b.Protocol && a.Ports == b.Ports && comparePrefixLists(a.Peers, b.Peers) == 0
}

// sortRules sorts rules and keeps, of rules allowing the same traffic, the
// one from the first policy by name.
func sortRules(rules []Rule) []Rule {
	slices.SortFunc(rules, compareRules)
	return slices.CompactFunc(rules, sameAllow)
}
