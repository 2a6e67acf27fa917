package bgp

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
)

const (
	// gracefulCloseTimeout bounds how long Stop waits for sessions to go
	// down after closing their connections.
	gracefulCloseTimeout = 3 * time.Second
	gracefulClosePoll    = 10 * time.Millisecond
)

// closeGracefully ends the established sessions of peers with graceful
// restart on, without sending a NOTIFICATION, and returns how many it
// ended. (For a peer that did not negotiate it, the outcome is the same as
// a Cease: it drops our routes.)
//
// GoBGP v3.37's StopBgp sends every peer a Cease, which makes it drop our
// routes at once (RFC 4724 §4 keeps them only when the session ends without
// a NOTIFICATION; the later StopBgpRequest.AllowGracefulRestart does not
// exist in v3.37). So the connections are shut down underneath GoBGP, as a
// crash or a process exit would: each peer sees the TCP session end, marks
// our routes stale and keeps them for the restart time. GoBGP sees a read
// error, moves the session to idle, where it refuses new connections for
// five seconds, so the StopBgp that follows finds no established session to
// send a Cease on.
func (s *Speaker) closeGracefully(ctx context.Context) int {
	s.mu.Lock()
	grPeers := map[netip.Addr]Peer{}
	for a, p := range s.peers {
		if p.GracefulRestart {
			grPeers[a] = p
		}
	}
	s.mu.Unlock()
	established, err := s.establishedPeers(ctx)
	if err != nil {
		s.log.Warn("graceful stop: listing peers; peers will drop our routes", zap.Error(err))
		return 0
	}
	targets := map[netip.Addr]Peer{}
	for a := range established {
		if p, ok := grPeers[a]; ok {
			targets[a] = p
		}
	}
	if len(targets) == 0 {
		return 0
	}

	listenPort := uint16(179)
	if s.cfg.ListenPort > 0 {
		listenPort = uint16(s.cfg.ListenPort)
	}
	isSession := func(local, remote netip.AddrPort) bool {
		p, ok := targets[remote.Addr()]
		if !ok {
			return false
		}
		peerPort := p.Port
		if peerPort == 0 {
			peerPort = 179
		}
		// We dialled the peer's port, or the peer dialled our listen port.
		return remote.Port() == peerPort || (s.cfg.ListenPort >= 0 && local.Port() == listenPort)
	}
	n, err := shutdownTCP(isSession)
	if err != nil || n == 0 {
		s.log.Warn("graceful stop: could not close the BGP connections; peers will drop our routes",
			zap.Error(err), zap.Int("sessions", len(targets)))
		return 0
	}

	// Wait until GoBGP noticed, so that StopBgp sends no Cease.
	for {
		up, err := s.establishedPeers(ctx)
		remaining := 0
		for a := range targets {
			if up[a] {
				remaining++
			}
		}
		if err != nil || remaining == 0 {
			break
		}
		select {
		case <-ctx.Done():
			s.log.Warn("graceful stop: sessions still up; they get a Cease", zap.Int("sessions", remaining))
			return n
		case <-time.After(gracefulClosePoll):
		}
	}
	return n
}

// establishedPeers returns the addresses of the established sessions.
func (s *Speaker) establishedPeers(ctx context.Context) (map[netip.Addr]bool, error) {
	up := map[netip.Addr]bool{}
	err := s.server.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() != api.PeerState_ESTABLISHED {
			return
		}
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
			up[a.Unmap()] = true
		}
	})
	return up, err
}
