package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// pathFixture describes a path as GoBGP's watch reports it.
type pathFixture struct {
	prefix, nextHop, neighbor string
	withdraw                  bool
}

func (f pathFixture) build(t *testing.T) *api.Path {
	var p *api.Path
	if prefix := netip.MustParsePrefix(f.prefix); prefix.Addr().Is6() {
		// IPv6 carries its next hop in MP_REACH_NLRI, a global one first
		// and optionally a link-local one (RFC 2545 §3).
		nlri := bgp.NewIPv6AddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		mp := bgp.NewPathAttributeMpReachNLRI(f.nextHop, []bgp.AddrPrefixInterface{nlri})
		mp.LinkLocalNexthop = net.ParseIP("fe80::1")
		var err error
		p, err = apiutil.NewPath(nlri, f.withdraw, []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), mp}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
	} else {
		p = routerPath(t, f.prefix, f.nextHop, f.withdraw)
	}
	p.NeighborIp = f.neighbor
	return p
}

// waitLearned waits until the last set onLearned reported for prefix is
// want (nil: reported withdrawn, i.e. an empty set).
func waitLearned(t *testing.T, ts *testSpeaker, prefix string, want []netip.Addr) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to be learned via %v", prefix, want), func() (bool, string) {
		got, reported := ts.learned.nextHops(prefix)
		return reported && slices.Equal(got, want), fmt.Sprintf("last reported %v (reported: %v)", got, reported)
	})
}

func TestLearnedRoutesECMP(t *testing.T) {
	ctx := context.Background()
	ts := startSpeaker(t, Config{})
	// Two ToRs of one AS announce the same prefix with equal attributes;
	// only their next hops differ. BGP multipath treats them as equal cost.
	tor1 := startRouter(t, routerAddr(0), routerASN)
	tor2 := startRouter(t, routerAddr(1), routerASN)
	for _, r := range []*router{tor1, tor2} {
		r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, passive: true})
	}
	if err := ts.SyncPeers(ctx, []Peer{tor1.speakerPeer(), tor2.speakerPeer()}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, ts, tor1, tor2)

	// Our own advertisement must never come back as a learned route.
	own := advert("10.244.7.0/24", "192.0.2.10", "pod-cidr")
	if err := ts.SetAdvertisements(ctx, []Advertisement{own}); err != nil {
		t.Fatal(err)
	}
	waitRouterHolds(t, tor1, own)

	const prefix = "10.99.0.0/24"
	nh1, nh2 := tor1.addr.String(), tor2.addr.String()
	tor1.announce(prefix, nh1)
	waitLearned(t, ts, prefix, addrs(nh1))
	tor2.announce(prefix, nh2)
	waitLearned(t, ts, prefix, addrs(nh1, nh2))

	st, err := ts.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantLearned := []LearnedRoute{{Prefix: netip.MustParsePrefix(prefix), NextHops: addrs(nh1, nh2)}}
	if fmt.Sprint(st.Learned) != fmt.Sprint(wantLearned) {
		t.Errorf("status learned = %v, want %v", st.Learned, wantLearned)
	}
	for _, p := range st.Peers {
		if p.Received != 1 {
			t.Errorf("status: %d routes received from %s, want 1", p.Received, p.Address)
		}
	}

	tor2.withdraw(prefix, nh2)
	waitLearned(t, ts, prefix, addrs(nh1))
	tor1.withdraw(prefix, nh1)
	waitLearned(t, ts, prefix, nil)

	// A longer AS path is not equal cost: only the best path is used, and
	// the other takes over when the best goes.
	const longer = "10.97.0.0/24"
	tor2.announce(longer, nh2, 65099)
	waitLearned(t, ts, longer, addrs(nh2))
	tor1.announce(longer, nh1)
	waitLearned(t, ts, longer, addrs(nh1))
	tor1.withdraw(longer, nh1)
	waitLearned(t, ts, longer, addrs(nh2))
	tor2.withdraw(longer, nh2)
	waitLearned(t, ts, longer, nil)

	st, _ = ts.Status(ctx)
	if len(st.Learned) != 0 {
		t.Errorf("status learned = %v after the last withdrawal", st.Learned)
	}
	if _, reported := ts.learned.nextHops(own.Prefix.String()); reported {
		t.Errorf("our own advertisement %s was reported as learned", own.Prefix)
	}
	ts.learned.check(t)
}

func TestLearnedRoutesFollowSessions(t *testing.T) {
	ctx := context.Background()
	ts := startSpeaker(t, Config{})
	tor1 := startRouter(t, routerAddr(0), routerASN)
	tor2 := startRouter(t, routerAddr(1), routerASN)
	for _, r := range []*router{tor1, tor2} {
		r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, passive: true})
	}
	if err := ts.SyncPeers(ctx, []Peer{tor1.speakerPeer(), tor2.speakerPeer()}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, ts, tor1, tor2)
	const prefix = "10.98.0.0/16"
	tor1.announce(prefix, tor1.addr.String())
	tor2.announce(prefix, tor2.addr.String())
	waitLearned(t, ts, prefix, addrs(tor1.addr.String(), tor2.addr.String()))

	// Deleting a peer drops what it taught us.
	if err := ts.SyncPeers(ctx, []Peer{tor1.speakerPeer()}); err != nil {
		t.Fatal(err)
	}
	waitLearned(t, ts, prefix, addrs(tor1.addr.String()))
	ts.learned.check(t)
}

func TestNextHopSets(t *testing.T) {
	mk := func(prefix, nextHop, neighbor string, withdraw bool) pathFixture {
		return pathFixture{prefix, nextHop, neighbor, withdraw}
	}
	tests := []struct {
		name  string
		paths []pathFixture
		want  map[string][]string
	}{
		{
			name:  "two peers, one prefix",
			paths: []pathFixture{mk("10.0.0.0/24", "127.0.0.3", "127.0.0.3", false), mk("10.0.0.0/24", "127.0.0.2", "127.0.0.2", false)},
			want:  map[string][]string{"10.0.0.0/24": {"127.0.0.2", "127.0.0.3"}},
		},
		{
			name:  "withdrawn best: empty set",
			paths: []pathFixture{mk("10.0.0.0/24", "127.0.0.2", "127.0.0.2", true)},
			want:  map[string][]string{"10.0.0.0/24": {}},
		},
		{
			// GoBGP gives local paths no neighbour and prints it "<nil>".
			name:  "our own path: empty set",
			paths: []pathFixture{mk("10.0.0.0/24", "192.0.2.1", "<nil>", false)},
			want:  map[string][]string{"10.0.0.0/24": {}},
		},
		{
			name:  "same next hop twice",
			paths: []pathFixture{mk("10.0.0.0/24", "127.0.0.2", "127.0.0.2", false), mk("10.0.0.0/24", "127.0.0.2", "127.0.0.4", false)},
			want:  map[string][]string{"10.0.0.0/24": {"127.0.0.2"}},
		},
		{
			name:  "IPv6: the global next hop",
			paths: []pathFixture{mk("2001:db8:5::/64", "2001:db8::2", "2001:db8::2", false)},
			want:  map[string][]string{"2001:db8:5::/64": {"2001:db8::2"}},
		},
		{
			name:  "two prefixes",
			paths: []pathFixture{mk("10.0.0.0/24", "127.0.0.2", "127.0.0.2", false), mk("10.1.0.0/24", "127.0.0.3", "127.0.0.3", false)},
			want:  map[string][]string{"10.0.0.0/24": {"127.0.0.2"}, "10.1.0.0/24": {"127.0.0.3"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var paths []*api.Path
			for _, f := range tc.paths {
				paths = append(paths, f.build(t))
			}
			got, err := nextHopSets(paths)
			if err != nil {
				t.Fatal(err)
			}
			want := map[netip.Prefix][]netip.Addr{}
			for p, nhs := range tc.want {
				want[netip.MustParsePrefix(p)] = addrs(nhs...)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("nextHopSets = %v, want %v", got, want)
			}
		})
	}
}

func TestLearnedTableReportsChangesOnly(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.0/24")
	q := netip.MustParsePrefix("10.1.0.0/24")
	lt := newLearnedTable()
	steps := []struct {
		name   string
		update map[netip.Prefix][]netip.Addr
		want   []LearnedRoute
	}{
		{"first learned", map[netip.Prefix][]netip.Addr{p: addrs("127.0.0.2")}, []LearnedRoute{{p, addrs("127.0.0.2")}}},
		{"same set again", map[netip.Prefix][]netip.Addr{p: addrs("127.0.0.2")}, nil},
		{"never-learned prefix withdrawn", map[netip.Prefix][]netip.Addr{q: {}}, nil},
		{"second next hop", map[netip.Prefix][]netip.Addr{p: addrs("127.0.0.2", "127.0.0.3")}, []LearnedRoute{{p, addrs("127.0.0.2", "127.0.0.3")}}},
		{"withdrawn", map[netip.Prefix][]netip.Addr{p: {}}, []LearnedRoute{{p, []netip.Addr{}}}},
	}
	for _, step := range steps {
		lt.update(step.update)
		got := lt.take()
		if fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Errorf("%s: take = %v, want %v", step.name, got, step.want)
		}
	}
	lt.close()
	lt.update(map[netip.Prefix][]netip.Addr{p: addrs("127.0.0.2")})
	if got := lt.take(); got != nil {
		t.Errorf("after close: take = %v, want nothing", got)
	}
}
