package sim

import (
	"net/netip"
	"time"

	"go.fd.io/govpp/api"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"
)

// The session dumps of src/plugins/nat/nat44-ed/nat44_ed_api.c, from the
// simulator's session table (one thread: VPP's per_thread_data has one
// entry to walk).

// natUser is snat_user_t as nat_ed_user_create_helper builds it: an inside
// address in a table, with its sessions counted.
type natUser struct {
	addr            netip.Addr
	table           uint32
	sessions, stats uint32
}

// nat44UserDump is vl_api_nat44_user_dump_t_handler: one record per inside
// address and table, in the order the session pool first names them,
// counting static and dynamic sessions apart. It has no enabled check; a
// disabled plugin has no sessions.
func (s *Sim) nat44UserDump(*nat.Nat44UserDump) []api.Message {
	type key struct {
		addr  netip.Addr
		table uint32
	}
	var users []*natUser
	seen := map[key]*natUser{}
	for _, ses := range s.st.nat.db.sessions.list {
		k := key{ses.inside.Addr(), ses.i2o.table}
		u := seen[k]
		if u == nil {
			u = &natUser{addr: k.addr, table: k.table}
			seen[k] = u
			users = append(users, u)
		}
		if ses.static {
			u.stats++
		} else {
			u.sessions++
		}
	}
	out := make([]api.Message, 0, len(users))
	for _, u := range users {
		out = append(out, &nat.Nat44UserDetails{VrfID: u.table, IPAddress: apiIP4(u.addr),
			Nsessions: u.sessions, Nstaticsessions: u.stats})
	}
	return out
}

// nat44UserSessionV3Dump is vl_api_nat44_user_session_v3_dump_t_handler:
// every session whose inside address is the one asked, in any table (the
// handler resolves vrf_id but matches on the address alone), reported by
// send_nat44_user_session_v3_details. Times are in seconds of the
// simulator's clock, as VPP's are of vlib_time_now; total_bytes stays 0
// since evaluated packets have no length.
func (s *Sim) nat44UserSessionV3Dump(m *nat.Nat44UserSessionV3Dump) []api.Message {
	n := &s.st.nat
	want := ip4(m.IPAddress)
	now := s.st.clock
	var out []api.Message
	for _, ses := range n.db.sessions.list {
		if ses.inside.Addr() != want {
			continue
		}
		d := &nat.Nat44UserSessionV3Details{
			OutsideIPAddress: apiIP4(ses.outside.Addr()), OutsidePort: ses.outside.Port(),
			InsideIPAddress: apiIP4(ses.inside.Addr()), InsidePort: ses.inside.Port(),
			Protocol: uint16(ses.proto), Flags: nat_types.NAT_IS_EXT_HOST_VALID,
			LastHeard: seconds(ses.lastHeard), TimeSinceLastHeard: sinceSeconds(now, ses.lastHeard),
			TotalPkts:      ses.pkts,
			ExtHostAddress: apiIP4(ses.extHost.Addr()), ExtHostPort: ses.extHost.Port(),
			IsTimedOut: now >= ses.lastHeard+n.timeout(ses),
		}
		if ses.static {
			d.Flags |= nat_types.NAT_IS_STATIC
		}
		if ses.twiceNAT {
			d.Flags |= nat_types.NAT_IS_TWICE_NAT
			d.ExtHostNatAddress, d.ExtHostNatPort = apiIP4(ses.extHostNAT.Addr()), ses.extHostNAT.Port()
		}
		out = append(out, d)
	}
	return out
}

// seconds is (u64) of a vlib time: whole seconds.
func seconds(d time.Duration) uint64 { return uint64(d / time.Second) }

// sinceSeconds is (u64) (now - last_heard) with now already truncated to
// whole seconds, as the handler computes it; never below zero.
func sinceSeconds(now, last time.Duration) uint64 {
	diff := (now/time.Second)*time.Second - last
	if diff < 0 {
		return 0
	}
	return seconds(diff)
}
