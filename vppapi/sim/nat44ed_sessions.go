package sim

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// NAT44-ED sessions and affinity records, as the per-thread session pool
// and flow_hash (src/plugins/nat/nat44-ed/nat44_ed.h) and nat_affinity
// (nat44_ed_affinity.c) keep them, on the simulator's clock.

// Advance moves the simulator's clock by d, so that NAT sessions and
// affinity records expire as they would after d of real time. The clock
// starts at zero and never goes back; a negative d is ignored.
func (s *Sim) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.clock += d
}

// natFlow is a flow_hash key (init_ed_k): both addresses and ports, the
// protocol and the table (VPP keys with the FIB index).
type natFlow struct {
	src, dst netip.AddrPort
	proto    uint8
	table    uint32
}

// natRewrite is what a packet matching one side of a session becomes.
type natRewrite struct {
	src, dst netip.AddrPort
	table    uint32 // the txfib rewrite: the table the lookup then uses
}

// natSession is snat_session_t reduced to what evaluation needs.
type natSession struct {
	i2o, o2i       natFlow
	i2oTo, o2iTo   natRewrite
	inside         netip.AddrPort // in2out.addr/port
	outside        netip.AddrPort // out2in.addr/port
	extHost        netip.AddrPort // the remote end
	extHostNAT     netip.AddrPort // twice-NAT source, when twiceNAT
	proto          uint8
	static         bool // SNAT_SESSION_FLAG_STATIC_MAPPING
	lb             bool // SNAT_SESSION_FLAG_LOAD_BALANCING
	twiceNAT       bool
	hairpin        bool
	lastHeard      time.Duration
	pkts           uint32 // total_pkts, counted by nat44_session_update_counters
	seenI2O, seen2 bool   // a packet seen each way: seen2 is o2i
	affinity       *natAffinity
}

// established stands for NAT44_ED_TCP_STATE_ESTABLISHED, which VPP reaches
// when SYN and ACK were seen both ways (nat44_set_tcp_session_state).
// Packets carry no TCP flags here, so a packet each way stands for the
// handshake.
func (s *natSession) established() bool { return s.seenI2O && s.seen2 }

// timeout is nat44_session_get_timeout with the default timeouts
// (NatSetTimeouts is not served).
func (n *nat44State) timeout(s *natSession) time.Duration {
	t := n.timeouts.udp
	switch s.proto {
	case 1, 58:
		t = n.timeouts.icmp
	case 6:
		t = n.timeouts.tcpTransitory
		if s.established() {
			t = n.timeouts.tcpEstablished
		}
	}
	return time.Duration(t) * time.Second
}

// affinityKey is make_affinity_kv: client address, service address, port
// and protocol.
type affinityKey struct {
	client, service netip.Addr
	port            uint16
	proto           uint8
}

// natAffinity is nat_affinity_t: the backend (a pool index into the
// mapping's locals), held by its sessions; sticky time starts counting
// when the last session goes (nat_affinity_unlock).
type natAffinity struct {
	key     affinityKey
	backend int
	refs    int
	sticky  time.Duration
	expire  time.Duration
}

// natSessions is every session and affinity record; the zero value is
// empty, and disabling the plugin drops it with the rest of natDB.
type natSessions struct {
	flows    map[natFlow]*natSession
	list     []*natSession // creation order, for the dumps
	affinity map[affinityKey]*natAffinity
}

func (t *natSessions) init() {
	if t.flows == nil {
		t.flows = map[natFlow]*natSession{}
		t.affinity = map[affinityKey]*natAffinity{}
	}
}

func (t *natSessions) add(s *natSession) {
	t.init()
	t.flows[s.i2o], t.flows[s.o2i] = s, s
	t.list = append(t.list, s)
}

// expire frees the sessions whose timeout passed. VPP frees an expired
// session only when it meets it again (on lookup or when reusing the
// oldest of the LRU list); the simulator frees it at its expiry time so
// that affinity expiry does not depend on unrelated traffic.
func (n *nat44State) expire(now time.Duration) {
	t := &n.db.sessions
	kept := t.list[:0]
	for _, s := range t.list {
		end := s.lastHeard + n.timeout(s)
		if now < end {
			kept = append(kept, s)
			continue
		}
		delete(t.flows, s.i2o)
		delete(t.flows, s.o2i)
		if a := s.affinity; a != nil {
			if a.refs--; a.refs == 0 {
				a.expire = end + a.sticky
			}
		}
	}
	clear(t.list[len(kept):])
	t.list = kept
	for k, a := range t.affinity {
		if a.refs == 0 && a.expire < now {
			delete(t.affinity, k)
		}
	}
}

// deleteSessions frees the sessions match selects, at most limit of them
// when limit > 0, as nat44_ed_free_session_data and nat_ed_session_delete
// do: both flow keys go, and an affinity record loses the session's
// reference (nat_affinity_unlock), its sticky time counting from now.
func (n *nat44State) deleteSessions(now time.Duration, limit int, match func(*natSession) bool) {
	t := &n.db.sessions
	kept, freed := t.list[:0], 0
	for _, s := range t.list {
		if (limit > 0 && freed == limit) || !match(s) {
			kept = append(kept, s)
			continue
		}
		freed++
		delete(t.flows, s.i2o)
		delete(t.flows, s.o2i)
		if a := s.affinity; a != nil {
			if a.refs--; a.refs == 0 {
				a.expire = now + a.sticky
			}
		}
	}
	clear(t.list[len(kept):])
	t.list = kept
}

// flushAffinity is nat_affinity_flush_service: the records of a deleted
// load-balanced mapping go, whatever sessions still hold them.
func (n *nat44State) flushAffinity(m *staticMapping) {
	for k := range n.db.sessions.affinity {
		if k.service == m.external && k.port == m.externalPort && k.proto == m.proto {
			delete(n.db.sessions.affinity, k)
		}
	}
}

// findAffinity is nat_affinity_find_and_lock.
func (n *nat44State) findAffinity(k affinityKey, now time.Duration) *natAffinity {
	a := n.db.sessions.affinity[k]
	if a == nil || (a.refs == 0 && a.expire < now) {
		return nil
	}
	return a
}

// addAffinity is nat_affinity_create_and_lock; the record's reference is
// the session's, taken when the session is made.
func (n *nat44State) addAffinity(k affinityKey, backend int, sticky uint32) *natAffinity {
	n.db.sessions.init()
	a := &natAffinity{key: k, backend: backend, sticky: time.Duration(sticky) * time.Second}
	n.db.sessions.affinity[k] = a
	return a
}

// pickLocal is the backend choice of snat_static_mapping_match: a number
// in 1..sum of probabilities, then the first local whose running sum
// reaches it. VPP draws the number with random_u32; the simulator uses the
// packet's flow hash, so a test run is reproducible and distinct flows
// still spread by the probabilities.
func pickLocal(m *staticMapping, hash uint32) (int, *smLocal) {
	ids, locals := m.locals.all()
	if len(locals) == 0 || locals[len(locals)-1].prefix == 0 {
		return -1, nil
	}
	r := 1 + hash%locals[len(locals)-1].prefix
	for k, l := range locals {
		if l.prefix >= r {
			return ids[k], l
		}
	}
	return -1, nil
}

// asU32 is ip4_address_t.as_u32 on a little-endian machine: the address
// bytes in network order read as a host integer, as VPP's offsets use it.
func asU32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.LittleEndian.Uint32(b[:])
}

// Ports VPP hands out: ED_USER_PORT_OFFSET up, on one thread.
const (
	natPortOffset = 1024
	natPortRange  = 65536 - natPortOffset
)

// freePort finds a port whose flow key (made by key) is unused. VPP
// tries the suggested port, then random ones
// (nat_ed_alloc_addr_and_port_with_snat_address, nat44_ed_alloc_i2o_port);
// the simulator probes upwards from the suggestion, or from the flow hash.
func (n *nat44State) freePort(key func(uint16) natFlow, suggest uint16, hash uint32) (uint16, bool) {
	start := uint32(suggest)
	if start < natPortOffset {
		start = natPortOffset + hash%natPortRange
	}
	for i := uint32(0); i < natPortRange; i++ {
		p := uint16(natPortOffset + (start-natPortOffset+i)%natPortRange)
		if n.db.sessions.flows[key(p)] == nil {
			return p, true
		}
	}
	return 0, false
}
