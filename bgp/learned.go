package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"go.uber.org/zap"
)

// learnedTable holds the learned next-hop sets: those reported to
// onLearned, and the changes GoBGP announced since. GoBGP's watch goroutine
// writes the changes; the reporter goroutine moves them to reported.
type learnedTable struct {
	mu       sync.Mutex
	closed   bool
	pending  map[netip.Prefix][]netip.Addr
	reported map[netip.Prefix][]netip.Addr // never holds an empty set
	wake     chan struct{}
}

func newLearnedTable() *learnedTable {
	return &learnedTable{
		pending:  map[netip.Prefix][]netip.Addr{},
		reported: map[netip.Prefix][]netip.Addr{},
		wake:     make(chan struct{}, 1),
	}
}

// update records the new next-hop sets of some prefixes. It never blocks,
// as it runs on GoBGP's watch goroutine.
func (t *learnedTable) update(sets map[netip.Prefix][]netip.Addr) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for p, nhs := range sets {
		t.pending[p] = nhs
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// take moves the pending sets that differ from the reported ones into
// reported and returns them, sorted by prefix.
func (t *learnedTable) take() []LearnedRoute {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []LearnedRoute
	for p, nhs := range t.pending {
		if slices.Equal(t.reported[p], nhs) {
			continue
		}
		if len(nhs) == 0 {
			delete(t.reported, p)
		} else {
			t.reported[p] = nhs
		}
		out = append(out, LearnedRoute{Prefix: p, NextHops: slices.Clone(nhs)})
	}
	clear(t.pending)
	slices.SortFunc(out, func(a, b LearnedRoute) int { return prefixOrder(a.Prefix, b.Prefix) })
	return out
}

// close drops later updates: after Stop nothing is reported any more.
func (t *learnedTable) close() {
	t.mu.Lock()
	t.closed = true
	clear(t.pending)
	t.mu.Unlock()
}

// snapshot returns the reported routes, sorted by prefix.
func (t *learnedTable) snapshot() []LearnedRoute {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]LearnedRoute, 0, len(t.reported))
	for p, nhs := range t.reported {
		out = append(out, LearnedRoute{Prefix: p, NextHops: slices.Clone(nhs)})
	}
	slices.SortFunc(out, func(a, b LearnedRoute) int { return prefixOrder(a.Prefix, b.Prefix) })
	return out
}

// watchLearned subscribes to GoBGP's best-path events. With
// UseMultiplePaths, GoBGP sends for each destination whose multipath set
// changed the whole new set (the paths equal to the best in local
// preference, AS path length, origin and MED, all eBGP or all iBGP), or the
// withdrawn best when no path is left. The watch goroutine is GoBGP's; it
// ends when ctx is cancelled.
func (s *Speaker) watchLearned(ctx context.Context, srv *server.BgpServer) error {
	req := &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
		Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST}},
	}}
	return srv.WatchEvent(ctx, req, func(r *api.WatchEventResponse) {
		paths := r.GetTable().GetPaths()
		if len(paths) == 0 {
			return
		}
		sets, err := nextHopSets(paths)
		if err != nil {
			s.log.Warn("ignoring a BGP path GoBGP reported", zap.Error(err))
		}
		s.learned.update(sets)
	})
}

// reportLearned calls onLearned with the changes, one call at a time,
// until ctx is done.
func (s *Speaker) reportLearned(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.learned.wake:
		}
		if ctx.Err() != nil {
			return // both were ready; Stop wins
		}
		if routes := s.learned.take(); len(routes) > 0 {
			s.log.Debug("BGP learned routes changed", zap.Int("prefixes", len(routes)))
			s.onLearned(routes)
		}
	}
}

// nextHopSets groups one event's paths by prefix into sorted next-hop sets.
// Our own paths (no neighbour) and withdrawals add no next hop, so a
// prefix whose best is ours, or that is gone, gets an empty set.
func nextHopSets(paths []*api.Path) (map[netip.Prefix][]netip.Addr, error) {
	sets := make(map[netip.Prefix][]netip.Addr, len(paths))
	var errs error
	for _, p := range paths {
		prefix, nh, learned, err := learnedPath(p)
		if err != nil {
			errs = err
			continue
		}
		set := sets[prefix]
		if learned && !slices.Contains(set, nh) {
			set = append(set, nh)
		}
		sets[prefix] = set
	}
	for _, set := range sets {
		slices.SortFunc(set, netip.Addr.Compare)
	}
	return sets, errs
}

// learnedPath extracts a path's prefix and next hop; learned is false for
// withdrawals and for our own paths.
func learnedPath(p *api.Path) (prefix netip.Prefix, nh netip.Addr, learned bool, err error) {
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		return prefix, nh, false, fmt.Errorf("decoding NLRI: %w", err)
	}
	prefix, err = netip.ParsePrefix(nlri.String())
	if err != nil {
		return prefix, nh, false, fmt.Errorf("NLRI %q is not an IP prefix: %w", nlri.String(), err)
	}
	if p.IsWithdraw || !isPeerAddress(p.NeighborIp) {
		return prefix, nh, false, nil
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		return prefix, nh, false, fmt.Errorf("%s: decoding attributes: %w", prefix, err)
	}
	for _, a := range attrs {
		var raw net.IP
		switch a := a.(type) {
		case *bgp.PathAttributeNextHop:
			raw = a.Value
		case *bgp.PathAttributeMpReachNLRI:
			// The first next hop is the global one; a link-local one may
			// follow (RFC 2545 §3).
			raw = a.Nexthop
		default:
			continue
		}
		if addr, ok := netip.AddrFromSlice(raw); ok && !addr.IsUnspecified() {
			return prefix, addr.Unmap(), true, nil
		}
	}
	return prefix, nh, false, fmt.Errorf("%s from %s: no next hop", prefix, p.NeighborIp)
}

// isPeerAddress tells a learned path from ours: GoBGP gives our paths no
// neighbour, which it prints as "<nil>".
func isPeerAddress(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && !a.IsUnspecified()
}
