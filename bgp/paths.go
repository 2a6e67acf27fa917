package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"go.uber.org/zap"
)

// SetAdvertisements makes the advertised routes exactly ads. It compares
// them with what is advertised and only adds, replaces or withdraws the
// differences, so its GoBGP and wire cost is O(changes). An invalid
// advertisement is left as it is (not added, changed or withdrawn) and
// reported in the error, which names its prefix; the others are applied.
func (s *Speaker) SetAdvertisements(ctx context.Context, ads []Advertisement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := s.runningServer()
	if err != nil {
		return err
	}

	var errs []error
	desired := make(map[netip.Prefix]Advertisement, len(ads))
	invalid := map[netip.Prefix]bool{}
	for _, a := range ads {
		if err := validateAdvertisement(a); err != nil {
			errs = append(errs, err)
			invalid[a.Prefix] = true
			continue
		}
		if prev, dup := desired[a.Prefix]; dup && prev.NextHop != a.NextHop {
			errs = append(errs, fmt.Errorf("bgp advertisement %s: listed with next hops %s and %s", a.Prefix, prev.NextHop, a.NextHop))
			invalid[a.Prefix] = true
			continue
		}
		desired[a.Prefix] = a
	}
	for p := range invalid {
		delete(desired, p)
	}

	// Collect the differences first, so that only they are sorted (for
	// stable errors and logs) and sent.
	var withdraws, adds []Advertisement
	for p, old := range s.advertised {
		if _, keep := desired[p]; !keep && !invalid[p] {
			withdraws = append(withdraws, old)
		}
	}
	for p, a := range desired {
		old, exists := s.advertised[p]
		switch {
		case !exists || old.NextHop != a.NextHop:
			adds = append(adds, a)
		case old.Reason != a.Reason:
			s.advertised[p] = a // the reason is not carried in BGP
		}
	}
	byPrefix := func(a, b Advertisement) int { return prefixOrder(a.Prefix, b.Prefix) }
	slices.SortFunc(withdraws, byPrefix)
	slices.SortFunc(adds, byPrefix)

	var added, withdrawn, changed int
	for _, old := range withdraws {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		path, err := apiPath(old, true)
		if err == nil {
			err = srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: path.Family, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp advertisement %s: withdrawing: %w", old.Prefix, err))
			continue
		}
		delete(s.advertised, old.Prefix)
		withdrawn++
	}
	for _, a := range adds {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		// Same prefix, same (local) source: GoBGP replaces the old path,
		// which peers see as an implicit withdraw.
		path, err := apiPath(a, false)
		if err == nil {
			_, err = srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp advertisement %s via %s: %w", a.Prefix, a.NextHop, err))
			continue
		}
		if _, exists := s.advertised[a.Prefix]; exists {
			changed++
		} else {
			added++
		}
		s.advertised[a.Prefix] = a
	}
	if added+withdrawn+changed > 0 {
		s.log.Info("BGP advertisements changed", zap.Int("added", added), zap.Int("withdrawn", withdrawn),
			zap.Int("next_hop_changed", changed), zap.Int("total", len(s.advertised)))
	}
	return errors.Join(errs...)
}

func validateAdvertisement(a Advertisement) error {
	p, nh := a.Prefix, a.NextHop
	switch {
	case !p.IsValid():
		return fmt.Errorf("bgp advertisement %s: prefix: invalid", p)
	case p.Addr().Is4In6():
		return fmt.Errorf("bgp advertisement %s: prefix: IPv4-mapped IPv6 is not routable; use the IPv4 form", p)
	case p.Masked() != p:
		return fmt.Errorf("bgp advertisement %s: prefix: host bits set (the network is %s)", p, p.Masked())
	case !nh.IsValid() || nh.IsUnspecified():
		return fmt.Errorf("bgp advertisement %s: next hop: must be set", p)
	case nh.Is4In6() || nh.Is4() != p.Addr().Is4():
		return fmt.Errorf("bgp advertisement %s: next hop %s: must be of the prefix's address family", p, nh)
	}
	return nil
}

// apiPath builds our path for a: origin IGP, the next hop in NEXT_HOP for
// IPv4 and in MP_REACH_NLRI for IPv6 (RFC 4760).
func apiPath(a Advertisement, withdraw bool) (*api.Path, error) {
	origin := bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)
	addr, bits := a.Prefix.Addr(), uint8(a.Prefix.Bits())
	if addr.Is4() {
		nlri := bgp.NewIPAddrPrefix(bits, addr.String())
		return apiutil.NewPath(nlri, withdraw, []bgp.PathAttributeInterface{
			origin, bgp.NewPathAttributeNextHop(a.NextHop.String()),
		}, time.Now())
	}
	nlri := bgp.NewIPv6AddrPrefix(bits, addr.String())
	return apiutil.NewPath(nlri, withdraw, []bgp.PathAttributeInterface{
		origin, bgp.NewPathAttributeMpReachNLRI(a.NextHop.String(), []bgp.AddrPrefixInterface{nlri}),
	}, time.Now())
}

// advertisedList returns the advertisements sorted by prefix. Callers hold
// s.mu.
func (s *Speaker) advertisedList() []Advertisement {
	out := make([]Advertisement, 0, len(s.advertised))
	for _, a := range s.advertised {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Advertisement) int { return prefixOrder(a.Prefix, b.Prefix) })
	return out
}
