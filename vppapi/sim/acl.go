package sim

import (
	"net/netip"

	"go.fd.io/govpp/api"
	acl "go.fd.io/govpp/binapi/acl"
	"go.fd.io/govpp/binapi/acl_types"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/vppapi/addr"
)

// The ACL plugin's messages as vl_api_*_t_handler in
// src/plugins/acl/acl.c serve them (MACIP ACLs, the ethertype whitelist
// and the deprecated acl_interface_add_del are not served).

// ACL plugin version (acl.h ACL_PLUGIN_VERSION_MAJOR / _MINOR).
const (
	aclVersionMajor = 1
	aclVersionMinor = 4
)

func (s *Sim) registerACL(r *registry) {
	serve(r, s.aclPluginGetVersion, &acl.ACLPluginGetVersionReply{})
	serve(r, s.aclPluginControlPing, &acl.ACLPluginControlPingReply{})
	serve(r, s.aclAddReplace, &acl.ACLAddReplaceReply{})
	serve(r, s.aclDel, &acl.ACLDelReply{})
	serve(r, s.aclDump, &acl.ACLDetails{})
	serve(r, s.aclInterfaceSetACLList, &acl.ACLInterfaceSetACLListReply{})
	serve(r, s.aclInterfaceListDump, &acl.ACLInterfaceListDetails{})
}

func (s *Sim) aclPluginGetVersion(*acl.ACLPluginGetVersion) []api.Message {
	return []api.Message{&acl.ACLPluginGetVersionReply{Major: aclVersionMajor, Minor: aclVersionMinor}}
}

func (s *Sim) aclPluginControlPing(*acl.ACLPluginControlPing) []api.Message {
	return []api.Message{&acl.ACLPluginControlPingReply{VpePID: s.pid}}
}

// aclAddReplace is vl_api_acl_add_replace_t_handler and acl_add_list: the
// tag, then every rule, then the index to replace are checked before
// anything changes. The reply carries the requested index on failure.
func (s *Sim) aclAddReplace(m *acl.ACLAddReplace) []api.Message {
	idx, rv := m.ACLIndex, int32(0)
	tag := apiString(m.Tag)
	rules := make([]aclRule, 0, len(m.R))
	if len(tag) >= aclTagMax {
		rv = int32(api.INVALID_VALUE)
	}
	for _, ar := range m.R {
		if rv != 0 {
			break
		}
		var r aclRule
		r, rv = decodeACLRule(ar)
		rules = append(rules, r)
	}
	if rv == 0 {
		idx, rv = s.st.acl.addReplace(m.ACLIndex, tag, rules)
	}
	if rv == 0 {
		s.log.Info("acl added or replaced", zap.Uint32("acl_index", idx), zap.String("tag", tag), zap.Int("rules", len(rules)))
	}
	return []api.Message{&acl.ACLAddReplaceReply{ACLIndex: idx, Retval: rv}}
}

// decodeACLRule is acl_add_list's check and copy of one rule.
func decodeACLRule(ar acl_types.ACLRule) (aclRule, int32) {
	src, ok := aclPrefix(ar.SrcPrefix)
	if !ok {
		return aclRule{}, int32(api.INVALID_SRC_ADDRESS)
	}
	dst, ok := aclPrefix(ar.DstPrefix)
	if !ok {
		return aclRule{}, int32(api.INVALID_DST_ADDRESS)
	}
	if ar.SrcPrefix.Address.Af != ar.DstPrefix.Address.Af {
		return aclRule{}, int32(api.INVALID_SRC_ADDRESS)
	}
	if ar.SrcportOrIcmptypeFirst > ar.SrcportOrIcmptypeLast || ar.DstportOrIcmpcodeFirst > ar.DstportOrIcmpcodeLast {
		return aclRule{}, int32(api.INVALID_VALUE_2)
	}
	return aclRule{
		action: uint8(ar.IsPermit),
		src:    src, dst: dst,
		proto:     uint8(ar.Proto),
		sport:     [2]uint16{ar.SrcportOrIcmptypeFirst, ar.SrcportOrIcmptypeLast},
		dport:     [2]uint16{ar.DstportOrIcmpcodeFirst, ar.DstportOrIcmpcodeLast},
		flagsMask: ar.TCPFlagsMask, flagsValue: ar.TCPFlagsValue,
	}, 0
}

// aclPrefix is !acl_api_invalid_prefix: a known family, a length within
// it and no host bits set (ip_prefix_decode2, ip_prefix_validate).
func aclPrefix(p ip_types.Prefix) (netip.Prefix, bool) {
	if p.Address.Af != ip_types.ADDRESS_IP4 && p.Address.Af != ip_types.ADDRESS_IP6 {
		return netip.Prefix{}, false
	}
	pfx := addr.ToPrefix(p)
	if !pfx.IsValid() || pfx.Masked() != pfx {
		return netip.Prefix{}, false
	}
	return pfx, true
}

// encodeACLRule is copy_acl_rule_to_api_rule.
func encodeACLRule(r aclRule) acl_types.ACLRule {
	return acl_types.ACLRule{
		IsPermit:               acl_types.ACLAction(r.action),
		SrcPrefix:              addr.FromPrefix(r.src),
		DstPrefix:              addr.FromPrefix(r.dst),
		Proto:                  ip_types.IPProto(r.proto),
		SrcportOrIcmptypeFirst: r.sport[0], SrcportOrIcmptypeLast: r.sport[1],
		DstportOrIcmpcodeFirst: r.dport[0], DstportOrIcmpcodeLast: r.dport[1],
		TCPFlagsMask: r.flagsMask, TCPFlagsValue: r.flagsValue,
	}
}

func (s *Sim) aclDel(m *acl.ACLDel) []api.Message {
	rv := s.st.acl.del(m.ACLIndex)
	if rv == 0 {
		s.log.Info("acl deleted", zap.Uint32("acl_index", m.ACLIndex))
	}
	return []api.Message{&acl.ACLDelReply{Retval: rv}}
}

// aclDump is vl_api_acl_dump_t_handler: ~0 sends every ACL in index
// order; another index sends that ACL, or nothing.
func (s *Sim) aclDump(m *acl.ACLDump) []api.Message {
	details := func(idx uint32, l *aclList) api.Message {
		d := &acl.ACLDetails{ACLIndex: idx, Tag: l.tag, Count: uint32(len(l.rules)), R: make([]acl_types.ACLRule, len(l.rules))}
		for i, r := range l.rules {
			d.R[i] = encodeACLRule(r)
		}
		return d
	}
	if m.ACLIndex != noIndex {
		if l, ok := s.st.acl.get(m.ACLIndex); ok {
			return []api.Message{details(m.ACLIndex, l)}
		}
		return nil
	}
	var out []api.Message
	for idx, l := range s.st.acl.pool {
		if l != nil {
			out = append(out, details(uint32(idx), l))
		}
	}
	return out
}

// aclInterfaceSetACLList is vl_api_acl_interface_set_acl_list_t_handler.
func (s *Sim) aclInterfaceSetACLList(m *acl.ACLInterfaceSetACLList) []api.Message {
	ifc, rv := s.apiIface(m.SwIfIndex)
	if rv == 0 {
		rv = s.st.acl.setLists(ifc.index, m.Acls, int(m.NInput))
	}
	if rv == 0 {
		s.log.Info("acl lists set", zap.String("interface", ifc.name),
			zap.Uint32s("input", s.st.acl.list(ifc.index, true)), zap.Uint32s("output", s.st.acl.list(ifc.index, false)))
	}
	return []api.Message{&acl.ACLInterfaceSetACLListReply{Retval: rv}}
}

// aclInterfaceListDump is vl_api_acl_interface_list_dump_t_handler: ~0
// sends every interface, empty lists included; another index sends that
// interface, or nothing.
func (s *Sim) aclInterfaceListDump(m *acl.ACLInterfaceListDump) []api.Message {
	details := func(idx uint32) api.Message {
		in, out := s.st.acl.list(idx, true), s.st.acl.list(idx, false)
		acls := append(append(make([]uint32, 0, len(in)+len(out)), in...), out...)
		return &acl.ACLInterfaceListDetails{SwIfIndex: interface_types.InterfaceIndex(idx),
			Count: uint8(len(acls)), NInput: uint8(len(in)), Acls: acls}
	}
	if idx := uint32(m.SwIfIndex); idx != noIndex {
		if _, ok := s.st.ifaces[idx]; ok {
			return []api.Message{details(idx)}
		}
		return nil
	}
	var out []api.Message
	for _, ifc := range s.st.sortedIfaces() {
		out = append(out, details(ifc.index))
	}
	return out
}
