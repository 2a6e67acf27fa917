package nat44ed

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.fd.io/govpp/binapi/nat_types"

	"github.com/kube-vpp/kube-vpp/vppapi"
)

// Session is one NAT44-ED session as nat44_user_session_v3_details
// reports it. For a service connection Inside is the backend, Outside
// the service address and External the client.
type Session struct {
	// Inside is the inside end (VPP's in2out side).
	Inside netip.AddrPort
	// Outside is what the inside end is translated to (the out2in side).
	Outside netip.AddrPort
	// External is the remote end.
	External netip.AddrPort
	// ExternalNAT is the address External is rewritten to toward Inside,
	// for a twice-NAT session; the zero value otherwise.
	ExternalNAT netip.AddrPort
	Protocol    Protocol
	// Static: made by a static or load-balanced mapping.
	Static   bool
	TwiceNAT bool
	// LastHeard is VPP's clock (time since VPP started, whole seconds)
	// at the session's last packet.
	LastHeard      time.Duration
	SinceLastHeard time.Duration
	Packets        uint32
	Bytes          uint64
	// TimedOut: the session's timeout passed; VPP frees it when it meets it again.
	TimedOut bool
}

// Sessions reads every NAT44-ED session: the users (inside addresses) with
// nat44_user_dump, then each user's sessions with
// nat44_user_session_v3_dump. That dump matches on the address alone, in
// any table, so an address that is a user in two tables is asked once.
func (d *Driver) Sessions(ctx context.Context) ([]Session, error) {
	stream, err := d.rpc.Nat44UserDump(ctx, &nat.Nat44UserDump{})
	if err != nil {
		return nil, fmt.Errorf("nat44_user_dump: %w", err)
	}
	users, err := vppapi.Collect(stream.Recv)
	if err != nil {
		return nil, fmt.Errorf("nat44_user_dump: %w", err)
	}
	var out []Session
	asked := map[netip.Addr]bool{}
	for _, u := range users {
		a := netip.AddrFrom4(u.IPAddress)
		if asked[a] {
			continue
		}
		asked[a] = true
		ss, err := d.rpc.Nat44UserSessionV3Dump(ctx, &nat.Nat44UserSessionV3Dump{IPAddress: u.IPAddress, VrfID: u.VrfID})
		if err != nil {
			return out, fmt.Errorf("nat44_user_session_v3_dump %s: %w", a, err)
		}
		list, err := vppapi.Collect(ss.Recv)
		if err != nil {
			return out, fmt.Errorf("nat44_user_session_v3_dump %s: %w", a, err)
		}
		for _, s := range list {
			out = append(out, sessionOf(s))
		}
	}
	return out, nil
}

func sessionOf(s *nat.Nat44UserSessionV3Details) Session {
	out := Session{
		Inside:         netip.AddrPortFrom(netip.AddrFrom4(s.InsideIPAddress), s.InsidePort),
		Outside:        netip.AddrPortFrom(netip.AddrFrom4(s.OutsideIPAddress), s.OutsidePort),
		External:       netip.AddrPortFrom(netip.AddrFrom4(s.ExtHostAddress), s.ExtHostPort),
		Protocol:       Protocol(s.Protocol),
		Static:         s.Flags&nat_types.NAT_IS_STATIC != 0,
		TwiceNAT:       s.Flags&nat_types.NAT_IS_TWICE_NAT != 0,
		LastHeard:      time.Duration(s.LastHeard) * time.Second,
		SinceLastHeard: time.Duration(s.TimeSinceLastHeard) * time.Second,
		Packets:        s.TotalPkts,
		Bytes:          s.TotalBytes,
		TimedOut:       s.IsTimedOut,
	}
	if out.TwiceNAT {
		out.ExternalNAT = netip.AddrPortFrom(netip.AddrFrom4(s.ExtHostNatAddress), s.ExtHostNatPort)
	}
	return out
}
