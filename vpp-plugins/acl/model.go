// Package acl is the driver of VPP's ACL plugin: tagged ACLs and the
// per-interface input and output lists that use them.
package acl

import (
	"fmt"
	"net/netip"
)

// KindTable is the tag kind of kube-vpp's ACLs.
const KindTable = "acl"

// Action is what a matching rule does (acl_types.api is_permit).
type Action uint8

// Actions.
const (
	Deny Action = iota
	Permit
	// PermitReflect permits and creates a session on the interface and
	// direction it matched in, so that the reply passes the opposite
	// direction of that interface before any list is read.
	PermitReflect
)

func (a Action) String() string {
	switch a {
	case Deny:
		return "deny"
	case Permit:
		return "permit"
	case PermitReflect:
		return "permit+reflect"
	}
	return fmt.Sprintf("action-%d", uint8(a))
}

// MarshalText writes the action's name, for JSON.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// PortRange is an inclusive port range; {0, 65535} is any port.
type PortRange struct {
	First uint16 `json:"first"`
	Last  uint16 `json:"last"`
}

// AnyPort is every port.
var AnyPort = PortRange{0, 65535}

// Rule is one ACL rule. Src and Dst are prefixes of one family; Protocol
// 0 is any protocol (ports are then ignored by VPP).
type Rule struct {
	Action   Action       `json:"action"`
	Src      netip.Prefix `json:"src"`
	Dst      netip.Prefix `json:"dst"`
	Protocol uint8        `json:"protocol"`
	SrcPorts PortRange    `json:"srcPorts"`
	DstPorts PortRange    `json:"dstPorts"`
}

// ACL is one ACL kube-vpp owns, identified by its tag
// (tag.New(KindTable, <content hash>)): the same tag means the same rules,
// so identical tables are one ACL in VPP.
type ACL struct {
	Tag   string `json:"tag"`
	Rules []Rule `json:"rules"`
}

// Binding is the whole ACL list of one interface, by tag, in order. An
// empty direction has no ACL node: everything passes it.
type Binding struct {
	SwIfIndex uint32   `json:"swIfIndex"`
	Input     []string `json:"input,omitempty"`
	Output    []string `json:"output,omitempty"`
}

// Desired is the ACL state kube-vpp wants: the ACLs and the lists of the
// interfaces it binds. Interfaces not listed keep no kube-vpp ACL.
type Desired struct {
	ACLs     []ACL
	Bindings []Binding
}
