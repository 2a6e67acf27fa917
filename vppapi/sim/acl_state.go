package sim

import (
	"net/netip"
	"slices"
	"time"

	"go.fd.io/govpp/api"
)

// The ACL plugin's state as src/plugins/acl/acl.c keeps it: the ACL pool
// (am->acls), the per-interface input and output lists
// (input/output_acl_vec_by_sw_if_index) and the reflexive sessions
// (session_inlines.h). Facts and their sources: /work/notes/acl-facts.md.

// ACL actions (acl_types.api vl_api_acl_action_t). VPP stores any u8: the
// datapath drops on 0, adds a session on 2 and passes on anything else.
const (
	aclDeny          = 0
	aclPermit        = 1
	aclPermitReflect = 2
)

// aclTagMax is sizeof(acl_list_t.tag): a tag must leave room for its NUL.
const aclTagMax = 64

// aclRule is acl_rule_t.
type aclRule struct {
	action   uint8
	src, dst netip.Prefix // same family, host bits clear (acl_add_list checks both)
	proto    uint8
	// sport and dport are first..last; ICMP type and code ranges for ICMP.
	sport, dport          [2]uint16
	flagsMask, flagsValue uint8
}

// aclList is acl_list_t.
type aclList struct {
	tag   string
	rules []aclRule
}

// aclState is the ACL plugin's part of the simulated VPP.
type aclState struct {
	pool []*aclList // am->acls; nil marks a free index
	free []uint32   // the pool's free indexes, reused last freed first
	in   map[uint32][]uint32
	out  map[uint32][]uint32
	sess aclSessions
}

func (a *aclState) get(idx uint32) (*aclList, bool) {
	if idx >= uint32(len(a.pool)) || a.pool[idx] == nil {
		return nil, false
	}
	return a.pool[idx], true
}

// list is the interface's input or output list; empty means the feature
// is off in that direction.
func (a *aclState) list(swIfIndex uint32, input bool) []uint32 {
	if input {
		return a.in[swIfIndex]
	}
	return a.out[swIfIndex]
}

// addReplace is the part of acl_add_list after the rule checks: a replace
// needs a live index; a new ACL takes the pool's next index.
func (a *aclState) addReplace(idx uint32, tag string, rules []aclRule) (uint32, int32) {
	if idx != noIndex {
		l, ok := a.get(idx)
		if !ok {
			return idx, int32(api.NO_SUCH_ENTRY)
		}
		// Sessions stay: reclassify_sessions is off by default.
		l.tag, l.rules = tag, rules
		return idx, 0
	}
	l := &aclList{tag: tag, rules: rules}
	if n := len(a.free); n > 0 {
		idx = a.free[n-1]
		a.free = a.free[:n-1]
		a.pool[idx] = l
		return idx, 0
	}
	a.pool = append(a.pool, l)
	return uint32(len(a.pool) - 1), 0
}

// del is acl_del_list: an ACL in an interface list cannot go.
func (a *aclState) del(idx uint32) int32 {
	if _, ok := a.get(idx); !ok {
		return int32(api.NO_SUCH_ENTRY)
	}
	if a.usedBy(a.in, idx) {
		return int32(api.ACL_IN_USE_INBOUND)
	}
	if a.usedBy(a.out, idx) {
		return int32(api.ACL_IN_USE_OUTBOUND)
	}
	a.pool[idx] = nil
	a.free = append(a.free, idx)
	return 0
}

func (a *aclState) usedBy(lists map[uint32][]uint32, idx uint32) bool {
	for _, l := range lists {
		if slices.Contains(l, idx) {
			return true
		}
	}
	return false
}

// setLists is the body of vl_api_acl_interface_set_acl_list_t_handler:
// every index must be a live ACL; the first nInput are the input list, the
// rest the output list. The output list is set first, and VPP combines the
// two results with C's ||, so a failure of either answers 1.
func (a *aclState) setLists(swIfIndex uint32, acls []uint32, nInput int) int32 {
	for _, idx := range acls {
		if _, ok := a.get(idx); !ok {
			return int32(api.NO_SUCH_ENTRY)
		}
	}
	nInput = min(nInput, len(acls))
	mayClear := true
	if a.setList(swIfIndex, false, acls[nInput:], &mayClear) != 0 {
		return 1
	}
	if a.setList(swIfIndex, true, acls[:nInput], &mayClear) != 0 {
		return 1
	}
	return 0
}

// setList is acl_interface_set_inout_acl_list: no ACL twice in one list;
// a change in the set of ACLs clears the interface's sessions (once per
// request: may_clear_sessions), since reclassify_sessions is off.
func (a *aclState) setList(swIfIndex uint32, input bool, list []uint32, mayClear *bool) int32 {
	seen := map[uint32]bool{}
	for _, idx := range list {
		if seen[idx] {
			return int32(api.ENTRY_ALREADY_EXISTS)
		}
		seen[idx] = true
	}
	lists := &a.out
	if input {
		lists = &a.in
	}
	old := (*lists)[swIfIndex]
	changed := len(old) != len(seen)
	for _, idx := range old {
		changed = changed || !seen[idx]
	}
	if changed && *mayClear {
		a.sess.clearInterface(swIfIndex)
		*mayClear = false
	}
	if len(list) == 0 {
		delete(*lists, swIfIndex)
		return 0
	}
	if *lists == nil {
		*lists = map[uint32][]uint32{}
	}
	(*lists)[swIfIndex] = slices.Clone(list)
	return 0
}

// interfaceDeleted is acl_sw_interface_add_del on deletion: the
// interface's sessions go and both its lists are reset.
func (a *aclState) interfaceDeleted(swIfIndex uint32) {
	a.sess.clearInterface(swIfIndex)
	delete(a.in, swIfIndex)
	delete(a.out, swIfIndex)
}

// match is the lookup over an interface's list: the first rule, in list
// then rule order, that matches (single_acl_match_5tuple).
func (a *aclState) match(list []uint32, k aclKey, tcpFlags uint8) (aclIdx uint32, rule int, r aclRule, ok bool) {
	for _, idx := range list {
		l, live := a.get(idx)
		if !live {
			continue
		}
		for i, r := range l.rules {
			if r.matches(k, tcpFlags) {
				return idx, i, r, true
			}
		}
	}
	return noIndex, -1, aclRule{}, false
}

// matches is single_rule_match_5tuple. Prefixes hold no host bits, so
// Contains is fa_acl_match_ip4_addr / fa_acl_match_ip6_addr.
func (r aclRule) matches(k aclKey, tcpFlags uint8) bool {
	if r.src.Addr().Is4() != k.src.Is4() || !r.dst.Contains(k.dst) || !r.src.Contains(k.src) {
		return false
	}
	if r.proto == 0 {
		return true
	}
	if k.proto != r.proto ||
		k.sport < r.sport[0] || k.sport > r.sport[1] ||
		k.dport < r.dport[0] || k.dport > r.dport[1] {
		return false
	}
	return k.proto != protoTCP || tcpFlags&r.flagsMask == r.flagsValue
}

// ACL session timeouts (acl.h, set by acl_init).
const (
	aclUDPIdle      = 600 * time.Second // UDP and every protocol but TCP
	aclTCPIdle      = 24 * time.Hour    // established TCP
	aclTCPTransient = 120 * time.Second
)

// aclKey is fa_5tuple_t as a session hash key: addresses, ports (ICMP type
// and code; 0 for protocols other than TCP, UDP and ICMP), protocol, the
// node's direction and the interface. VPP keys on the low 16 bits of
// sw_if_index and drops a packet whose session belongs to another
// interface; the simulator keys on the whole index.
type aclKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	input        bool
	swIfIndex    uint32
}

// aclSession is fa_session_t reduced to what evaluation needs.
type aclSession struct {
	fwd, rev   aclKey
	reflected  bool // rev is in the table (reverse_session_add_del_ip4)
	lastActive time.Duration
	// seen says a packet matched the forward / the reverse key: VPP's
	// tcp_flags_seen per direction. Packets carry no TCP flags here, so a
	// packet each way stands for SYN and ACK seen both ways.
	seen [2]bool
	// The rule that made the session, for traces; VPP does not keep it.
	acl  uint32
	tag  string
	rule int
}

// timeout is fa_session_get_timeout with the default timeouts.
func (s *aclSession) timeout() time.Duration {
	if s.fwd.proto != protoTCP {
		return aclUDPIdle
	}
	if s.seen[0] && s.seen[1] {
		return aclTCPIdle
	}
	return aclTCPTransient
}

// aclSessions is the session table; the zero value is empty.
type aclSessions struct {
	keys map[aclKey]*aclSession
	list []*aclSession // creation order
}

// add is acl_fa_add_session: the forward key, and the reverse one when the
// protocol has a reply (reverse_l4_u64_slowpath_valid).
func (t *aclSessions) add(s *aclSession, af afi) {
	if t.keys == nil {
		t.keys = map[aclKey]*aclSession{}
	}
	t.keys[s.fwd] = s
	if rev, ok := s.fwd.reverse(af); ok {
		s.rev, s.reflected = rev, true
		t.keys[rev] = s
	}
	t.list = append(t.list, s)
}

// expire drops sessions idle for their timeout. VPP's cleaner checks
// every half timeout, so it frees a session between one and one and a
// half timeouts after its last packet; the simulator frees it at the
// earliest of those times.
func (t *aclSessions) expire(now time.Duration) {
	t.drop(func(s *aclSession) bool { return now >= s.lastActive+s.timeout() })
}

// clearInterface is ACL_FA_CLEANER_DELETE_BY_SW_IF_INDEX: every session
// of the interface, both directions.
func (t *aclSessions) clearInterface(swIfIndex uint32) {
	t.drop(func(s *aclSession) bool { return s.fwd.swIfIndex == swIfIndex })
}

func (t *aclSessions) drop(match func(*aclSession) bool) {
	kept := t.list[:0]
	for _, s := range t.list {
		if !match(s) {
			kept = append(kept, s)
			continue
		}
		delete(t.keys, s.fwd)
		if s.reflected {
			delete(t.keys, s.rev)
		}
	}
	clear(t.list[len(kept):])
	t.list = kept
}

// icmpReplyType is icmp4_invmap / icmp6_invmap: the request types that
// make a reverse entry, and the reply type it expects.
func icmpReplyType(af afi, request uint16) (uint16, bool) {
	if af == af6 {
		switch request {
		case 128, 139: // echo request, node information request
			return request + 1, true
		}
		return 0, false
	}
	switch request {
	case 8: // echo request
		return 0, true
	case 13, 15, 17: // timestamp, information, address mask request
		return request + 1, true
	}
	return 0, false
}

// reverse is the reverse entry's key: addresses and ports swapped and the
// direction flipped (reverse_l4_u64_fastpath); for ICMP the reply type
// with the code kept, and none for other ICMP types.
func (k aclKey) reverse(af afi) (aclKey, bool) {
	r := aclKey{src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, proto: k.proto, input: !k.input, swIfIndex: k.swIfIndex}
	if k.proto != icmpProto(af) {
		return r, true
	}
	reply, ok := icmpReplyType(af, k.sport)
	r.sport, r.dport = reply, k.dport
	return r, ok
}

func icmpProto(af afi) uint8 {
	if af == af6 {
		return protoICMPv6
	}
	return protoICMP
}
