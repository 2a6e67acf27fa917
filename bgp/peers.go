package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
)

// Limits from the BGP RFCs, checked before GoBGP sees a peer.
const (
	// RFC 4271 §4.2: the hold time is 0 or at least 3 seconds, in 16 bits.
	minHoldTime = 3 * time.Second
	maxHoldTime = 65535 * time.Second
	// Linux refuses TCP MD5 keys longer than TCP_MD5SIG_MAXKEYLEN.
	maxPasswordLen = 80
	// gtsmTTL is what RFC 5082 §3 has a directly connected peer send and
	// expect: 255, i.e. no router in between.
	gtsmTTL = 255
)

// SyncPeers makes the speaker's neighbours exactly peers, keyed by address:
// it adds the new ones, updates the changed ones (GoBGP resets a session
// when a setting carried in OPEN or the transport changes) and deletes the
// ones no longer listed. An invalid peer is left as it is and reported in
// the error, which names every failed peer's address; the others are
// applied.
func (s *Speaker) SyncPeers(ctx context.Context, peers []Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := s.runningServer()
	if err != nil {
		return err
	}

	var errs []error
	desired := make(map[netip.Addr]Peer, len(peers))
	invalid := map[netip.Addr]bool{}
	for _, p := range peers {
		p.Address = p.Address.Unmap()
		if err := validatePeer(p); err != nil {
			errs = append(errs, err)
			invalid[p.Address] = true
			continue
		}
		if prev, dup := desired[p.Address]; dup && prev != p {
			errs = append(errs, fmt.Errorf("bgp peer %s: listed twice with different settings", p.Address))
			invalid[p.Address] = true
			continue
		}
		desired[p.Address] = p
	}
	for a := range invalid {
		delete(desired, a)
	}

	for _, addr := range sortedAddrs(s.peers) {
		if _, keep := desired[addr]; keep || invalid[addr] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()})
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp peer %s: deleting: %w", addr, err))
			continue
		}
		delete(s.peers, addr)
		s.log.Info("BGP peer deleted", zap.Stringer("peer", addr))
	}

	for _, addr := range sortedAddrs(desired) {
		p := desired[addr]
		old, exists := s.peers[addr]
		if exists && sameSession(old, p) {
			// GoBGP would reset the session even for a new description;
			// the description is only shown in Status, which reads ours.
			s.peers[addr] = p
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		conf := s.apiPeer(p)
		verb, done := "adding", "BGP peer added"
		if exists {
			verb, done = "updating", "BGP peer updated"
			_, err = srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: conf})
		} else {
			err = srv.AddPeer(ctx, &api.AddPeerRequest{Peer: conf})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp peer %s: %s: %w", addr, verb, err))
			continue
		}
		s.peers[addr] = p
		s.log.Info(done, zap.Stringer("peer", addr), zap.Uint32("asn", p.ASN), zap.String("description", p.Description))
	}
	return errors.Join(errs...)
}

// sameSession reports whether a and b differ at most in description.
func sameSession(a, b Peer) bool {
	a.Description = b.Description
	return a == b
}

// validatePeer rejects what GoBGP would refuse or silently misread.
func validatePeer(p Peer) error {
	if !p.Address.IsValid() || p.Address.IsUnspecified() {
		return fmt.Errorf("bgp peer %q: address: must be a unicast IP address", p.Address)
	}
	field := func(name, why string) error { return fmt.Errorf("bgp peer %s: %s: %s", p.Address, name, why) }
	switch {
	case p.ASN == 0:
		return field("asn", "must not be 0")
	case len(p.Password) > maxPasswordLen:
		return field("password", fmt.Sprintf("longer than %d bytes", maxPasswordLen))
	case p.TTLSecurity && p.EBGPMultihopTTL > 0:
		return field("ttl-security", "cannot be combined with ebgp-multihop (RFC 5082 is for directly connected peers)")
	case p.HoldTime != 0 && (p.HoldTime < minHoldTime || p.HoldTime > maxHoldTime):
		return field("hold-time", fmt.Sprintf("%s: must be 0 (default 90s) or between %s and %s", p.HoldTime, minHoldTime, maxHoldTime))
	case p.HoldTime%time.Second != 0 || p.Keepalive%time.Second != 0:
		return field("hold-time/keepalive", "BGP carries whole seconds")
	case p.Keepalive < 0 || (p.Keepalive > 0 && p.Keepalive > holdTimeOrDefault(p.HoldTime)):
		return field("keepalive", fmt.Sprintf("%s: must not exceed the hold time", p.Keepalive))
	}
	return nil
}

func holdTimeOrDefault(h time.Duration) time.Duration {
	if h == 0 {
		return 90 * time.Second
	}
	return h
}

// apiPeer maps a Peer to GoBGP's neighbour configuration. Zero values are
// GoBGP's defaults: port 179, hold time 90 s, keepalive a third of it.
func (s *Speaker) apiPeer(p Peer) *api.Peer {
	gr := s.cfg.GracefulRestart.Enabled && p.GracefulRestart
	conf := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
			Description:     p.Description,
		},
		Transport: &api.Transport{
			RemotePort:  uint32(p.Port),
			PassiveMode: p.Passive,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(p.HoldTime / time.Second),
			KeepaliveInterval: uint64(p.Keepalive / time.Second),
			ConnectRetry:      uint64(max(s.connectRetry/time.Second, 1)),
		}},
		GracefulRestart: &api.GracefulRestart{
			Enabled:     gr,
			RestartTime: uint32(s.cfg.GracefulRestart.RestartTime / time.Second),
		},
	}
	if p.EBGPMultihopTTL > 0 {
		conf.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultihopTTL)}
	}
	if p.TTLSecurity {
		conf.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: gtsmTTL}
	}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		conf.AfiSafis = append(conf.AfiSafis, &api.AfiSafi{
			Config: &api.AfiSafiConfig{
				Family:  &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
				Enabled: true,
			},
			// Per-family graceful restart: without it GoBGP advertises the
			// capability with no families, and peers keep nothing.
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: gr}},
		})
	}
	return conf
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
