package acl

import (
	"errors"
	"fmt"
	"net/netip"

	"go.fd.io/govpp/binapi/acl_types"
	"go.fd.io/govpp/binapi/ip_types"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// maxListLen is the most ACLs one interface's two lists may hold together:
// acl_interface_set_acl_list carries their count in a u8.
const maxListLen = 255

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

func (r Rule) String() string {
	return fmt.Sprintf("%s %s:%s -> %s:%s proto %d", r.Action, r.Src, r.SrcPorts, r.Dst, r.DstPorts, r.Protocol)
}

// Validate checks a against what acl_add_replace accepts (acl.c:
// acl_add_list, acl_api_invalid_prefix) and what kube-vpp owns: a table tag
// VPP can store, and per rule a known action, two prefixes of one family
// without host bits, and port ranges with first <= last (VPP checks those
// whatever the protocol). Errors name the tag and the rule's index.
func (a ACL) Validate() error {
	if tag.Kind(a.Tag) != KindTable {
		return fmt.Errorf("acl %q: tag is not a kube-vpp %q tag", a.Tag, KindTable)
	}
	if len(a.Tag) > tag.MaxLen {
		// VPP needs a NUL within its 64 bytes, else INVALID_VALUE.
		return fmt.Errorf("acl %q: tag is %d bytes, VPP stores at most %d", a.Tag, len(a.Tag), tag.MaxLen)
	}
	var errs []error
	for i, r := range a.Rules {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("acl %q: rule %d (%s): %w", a.Tag, i, r, err))
		}
	}
	return errors.Join(errs...)
}

func (r Rule) validate() error {
	if r.Action > PermitReflect {
		return fmt.Errorf("action %d is not deny, permit or permit+reflect", uint8(r.Action))
	}
	if err := validPrefix("src", r.Src); err != nil {
		return err
	}
	if err := validPrefix("dst", r.Dst); err != nil {
		return err
	}
	if r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		return errors.New("src and dst prefixes are of different families")
	}
	if r.SrcPorts.First > r.SrcPorts.Last {
		return fmt.Errorf("src ports: first %d > last %d", r.SrcPorts.First, r.SrcPorts.Last)
	}
	if r.DstPorts.First > r.DstPorts.Last {
		return fmt.Errorf("dst ports: first %d > last %d", r.DstPorts.First, r.DstPorts.Last)
	}
	return nil
}

func validPrefix(field string, p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("%s prefix is missing or invalid", field)
	case p.Addr().Is4In6():
		// VPP would take it as IPv4 with a length beyond 32.
		return fmt.Errorf("%s prefix %s is IPv4-mapped IPv6; write it as IPv4", field, p)
	case p.Masked() != p:
		return fmt.Errorf("%s prefix %s has host bits set (want %s)", field, p, p.Masked())
	}
	return nil
}

// validateBinding checks what can be checked of b without VPP: a real
// interface index, no ACL twice in one direction (VPP refuses the list
// with ENTRY_ALREADY_EXISTS), and room in the u8 count.
func validateBinding(b Binding) error {
	if b.SwIfIndex == noIndex {
		// ~0 asks acl_interface_list_dump for every interface.
		return errors.New("sw_if_index ~0 is no interface")
	}
	for _, dir := range []struct {
		name string
		tags []string
	}{{"input", b.Input}, {"output", b.Output}} {
		seen := map[string]bool{}
		for _, t := range dir.tags {
			if seen[t] {
				return fmt.Errorf("sw_if_index %d: %s list names acl %q twice", b.SwIfIndex, dir.name, t)
			}
			seen[t] = true
		}
	}
	if n := len(b.Input) + len(b.Output); n > maxListLen {
		return fmt.Errorf("sw_if_index %d: %d ACLs, VPP takes at most %d per interface", b.SwIfIndex, n, maxListLen)
	}
	return nil
}

// encodeRules is rules in acl_types form: TCP flags mask and value 0, so
// flags never prevent a match (single_rule_match_5tuple).
func encodeRules(rules []Rule) []acl_types.ACLRule {
	out := make([]acl_types.ACLRule, len(rules))
	for i, r := range rules {
		out[i] = acl_types.ACLRule{
			IsPermit:               acl_types.ACLAction(r.Action),
			SrcPrefix:              addr.FromPrefix(r.Src),
			DstPrefix:              addr.FromPrefix(r.Dst),
			Proto:                  ip_types.IPProto(r.Protocol),
			SrcportOrIcmptypeFirst: r.SrcPorts.First, SrcportOrIcmptypeLast: r.SrcPorts.Last,
			DstportOrIcmpcodeFirst: r.DstPorts.First, DstportOrIcmpcodeLast: r.DstPorts.Last,
		}
	}
	return out
}

// decodeRules reads rules from acl_details. ok is false when a rule holds
// something kube-vpp never writes (TCP flags, an unknown action): such an
// ACL differs from every wanted one and is replaced.
func decodeRules(in []acl_types.ACLRule) (_ []Rule, ok bool) {
	out := make([]Rule, len(in))
	for i, r := range in {
		if r.TCPFlagsMask != 0 || r.TCPFlagsValue != 0 || Action(r.IsPermit) > PermitReflect {
			return nil, false
		}
		out[i] = Rule{
			Action:   Action(r.IsPermit),
			Src:      addr.ToPrefix(r.SrcPrefix),
			Dst:      addr.ToPrefix(r.DstPrefix),
			Protocol: uint8(r.Proto),
			SrcPorts: PortRange{r.SrcportOrIcmptypeFirst, r.SrcportOrIcmptypeLast},
			DstPorts: PortRange{r.DstportOrIcmpcodeFirst, r.DstportOrIcmpcodeLast},
		}
	}
	return out, true
}
