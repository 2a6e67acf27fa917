package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

func advert(prefix, nextHop, reason string) Advertisement {
	return Advertisement{Prefix: netip.MustParsePrefix(prefix), NextHop: netip.MustParseAddr(nextHop), Reason: reason}
}

// wantAtRouter is what a router should hold from the speaker: each
// advertisement with its next hop, origin IGP, not stale.
func wantAtRouter(ads ...Advertisement) (v4, v6 map[netip.Prefix]ribPath) {
	v4, v6 = map[netip.Prefix]ribPath{}, map[netip.Prefix]ribPath{}
	for _, a := range ads {
		rp := ribPath{nextHop: a.NextHop, igp: true}
		if a.Prefix.Addr().Is4() {
			v4[a.Prefix] = rp
		} else {
			v6[a.Prefix] = rp
		}
	}
	return v4, v6
}

func waitRouterHolds(t *testing.T, r *router, ads ...Advertisement) {
	t.Helper()
	wantV4, wantV6 := wantAtRouter(ads...)
	waitFor(t, "the router to hold the advertisements", func() (bool, string) {
		gotV4 := r.learnedFrom(speakerAddrV4, api.Family_AFI_IP)
		gotV6 := r.learnedFrom(speakerAddrV4, api.Family_AFI_IP6)
		return maps.Equal(gotV4, wantV4) && maps.Equal(gotV6, wantV6),
			fmt.Sprintf("v4 %v (want %v), v6 %v (want %v)", gotV4, wantV4, gotV6, wantV6)
	})
}

func receivedUpdates(r *router) uint64 {
	return r.neighbor(speakerAddrV4).GetState().GetMessages().GetReceived().GetUpdate()
}

func TestAdvertisementsReachPeer(t *testing.T) {
	ctx := context.Background()
	ts := startSpeaker(t, Config{})
	r := startRouter(t, routerAddr(0), routerASN)
	r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, passive: true})
	if err := ts.SyncPeers(ctx, []Peer{r.speakerPeer()}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, ts, r)

	pod4 := advert("10.244.1.0/24", "192.0.2.10", "pod-cidr")
	pod6 := advert("fd00:10:244:1::/64", "2001:db8::10", "pod-cidr")
	lb := advert("203.0.113.7/32", "192.0.2.10", "load-balancer")
	lb6 := advert("2001:db8:ffff::7/128", "2001:db8::10", "load-balancer")
	initial := []Advertisement{pod4, pod6, lb, lb6}
	if err := ts.SetAdvertisements(ctx, initial); err != nil {
		t.Fatal(err)
	}
	waitRouterHolds(t, r, initial...)

	st, err := ts.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSorted := []Advertisement{pod4, lb, lb6, pod6} // by address: IPv4 first, then 2001:db8:: before fd00::
	if fmt.Sprint(st.Advertised) != fmt.Sprint(wantSorted) {
		t.Errorf("status advertised = %v, want %v", st.Advertised, wantSorted)
	}
	if st.Peers[0].Advertised != 4 {
		t.Errorf("status: %d routes advertised to the peer, want 4", st.Peers[0].Advertised)
	}

	// Each step changes one route: the router must receive exactly one
	// UPDATE for it. A sentinel prefix added afterwards proves every UPDATE
	// the change caused has arrived (TCP keeps them in order).
	lbMoved := advert("203.0.113.7/32", "192.0.2.99", "load-balancer")
	steps := []struct {
		name string
		ads  []Advertisement
	}{
		{"withdraw one", []Advertisement{pod4, pod6, lb6}},
		{"add one", []Advertisement{pod4, pod6, lb6, lb}},
		{"move one to a new next hop", []Advertisement{pod4, pod6, lb6, lbMoved}},
		{"withdraw one IPv6", []Advertisement{pod4, pod6, lbMoved}},
	}
	for i, step := range steps {
		before := receivedUpdates(r)
		if err := ts.SetAdvertisements(ctx, step.ads); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		sentinel := advert(fmt.Sprintf("198.51.100.%d/32", i), "192.0.2.10", "sentinel")
		if err := ts.SetAdvertisements(ctx, append(step.ads, sentinel)); err != nil {
			t.Fatalf("%s: sentinel: %v", step.name, err)
		}
		waitRouterHolds(t, r, append(step.ads, sentinel)...)
		if got := receivedUpdates(r) - before; got != 2 {
			t.Errorf("%s: router received %d UPDATEs, want 1 for the change and 1 for the sentinel", step.name, got)
		}
		if err := ts.SetAdvertisements(ctx, step.ads); err != nil {
			t.Fatalf("%s: removing the sentinel: %v", step.name, err)
		}
		waitRouterHolds(t, r, step.ads...)
	}

	// A change of reason alone is not a BGP change.
	before := receivedUpdates(r)
	relabelled := pod4
	relabelled.Reason = "service-cidr"
	if err := ts.SetAdvertisements(ctx, []Advertisement{relabelled, pod6, lbMoved}); err != nil {
		t.Fatal(err)
	}
	st, _ = ts.Status(ctx)
	if st.Advertised[0].Reason != "service-cidr" {
		t.Errorf("status reason = %q, want %q", st.Advertised[0].Reason, "service-cidr")
	}
	if got := receivedUpdates(r) - before; got != 0 {
		t.Errorf("a reason change sent %d UPDATEs", got)
	}
}

func TestSetAdvertisementsRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	ts := startSpeaker(t, Config{ListenPort: -1})
	good := advert("10.0.0.0/24", "192.0.2.1", "pod-cidr")
	kept := advert("10.9.0.0/24", "192.0.2.1", "pod-cidr")
	if err := ts.SetAdvertisements(ctx, []Advertisement{kept}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		bad     Advertisement
		wantErr string
	}{
		{"host bits set", advert("10.1.0.1/24", "192.0.2.1", ""), "10.1.0.1/24: prefix: host bits set"},
		{"IPv4 prefix, IPv6 next hop", advert("10.2.0.0/24", "2001:db8::1", ""), "10.2.0.0/24: next hop 2001:db8::1"},
		{"IPv6 prefix, IPv4 next hop", advert("2001:db8:1::/64", "192.0.2.1", ""), "2001:db8:1::/64: next hop 192.0.2.1"},
		{"no next hop", Advertisement{Prefix: netip.MustParsePrefix("10.3.0.0/24")}, "10.3.0.0/24: next hop: must be set"},
		{"no prefix", Advertisement{NextHop: netip.MustParseAddr("192.0.2.1")}, "prefix: invalid"},
		{"mapped prefix", advert("::ffff:10.4.0.0/120", "2001:db8::1", ""), "IPv4-mapped"},
		// An existing prefix given an invalid value keeps its old one.
		{"existing prefix, bad next hop", advert("10.9.0.0/24", "2001:db8::1", ""), "10.9.0.0/24: next hop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ts.SetAdvertisements(ctx, []Advertisement{good, tc.bad})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
			st, err := ts.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []Advertisement{good}
			if tc.bad.Prefix == kept.Prefix {
				want = append(want, kept)
			}
			if fmt.Sprint(st.Advertised) != fmt.Sprint(want) {
				t.Errorf("advertised = %v, want the valid ones only: %v", st.Advertised, want)
			}
			// Back to the starting point.
			if err := ts.SetAdvertisements(ctx, []Advertisement{kept}); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("same prefix, two next hops", func(t *testing.T) {
		err := ts.SetAdvertisements(ctx, []Advertisement{good, advert("10.0.0.0/24", "192.0.2.2", "")})
		if err == nil || !strings.Contains(err.Error(), "10.0.0.0/24: listed with next hops") {
			t.Fatalf("error = %v", err)
		}
	})
}

// hostRoutes returns n /32 advertisements from 10.128.0.0 upwards.
func hostRoutes(n int) []Advertisement {
	out := make([]Advertisement, n)
	base := netip.MustParseAddr("10.128.0.0").As4()
	for i := range n {
		a := base
		a[2], a[3] = byte(i>>8), byte(i)
		a[1] += byte(i >> 16)
		out[i] = Advertisement{
			Prefix:  netip.PrefixFrom(netip.AddrFrom4(a), 32),
			NextHop: netip.MustParseAddr("192.0.2.10"),
			Reason:  "load-balancer",
		}
	}
	return out
}

// setupAdvertiseBench returns a speaker with an established session to a
// router that accepts everything.
func setupAdvertiseBench(tb testing.TB) (*testSpeaker, *router) {
	ts := startSpeaker(tb, Config{})
	r := startRouter(tb, routerAddr(0), routerASN)
	r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, passive: true})
	if err := ts.SyncPeers(context.Background(), []Peer{r.speakerPeer()}); err != nil {
		tb.Fatal(err)
	}
	waitEstablished(tb, ts, r)
	return ts, r
}

func waitRouterCount(tb testing.TB, r *router, n uint64) {
	deadline := time.Now().Add(waitTimeout)
	for {
		got := r.countV4()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("router holds %d IPv4 prefixes, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdvertiseManyHostRoutes advertises 10,000 /32s, then changes one:
// the change must cost one UPDATE, not a resend of the set.
func TestAdvertiseManyHostRoutes(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	ctx := context.Background()
	ts, r := setupAdvertiseBench(t)
	ads := hostRoutes(n)
	start := time.Now()
	if err := ts.SetAdvertisements(ctx, ads); err != nil {
		t.Fatal(err)
	}
	waitRouterCount(t, r, uint64(n))
	t.Logf("%d host routes at the peer in %s", n, time.Since(start))

	before := receivedUpdates(r)
	if err := ts.SetAdvertisements(ctx, ads[1:]); err != nil {
		t.Fatal(err)
	}
	waitRouterCount(t, r, uint64(n-1))
	sentinel := advert("198.51.100.1/32", "192.0.2.10", "sentinel")
	if err := ts.SetAdvertisements(ctx, append(ads[1:], sentinel)); err != nil {
		t.Fatal(err)
	}
	waitRouterCount(t, r, uint64(n))
	if got := receivedUpdates(r) - before; got != 2 {
		t.Errorf("one withdrawal and one sentinel among %d routes cost %d UPDATEs, want 2", n, got)
	}
}

// BenchmarkAdvertise10k measures the time from SetAdvertisements with
// 10,000 /32s until the peer's RIB holds all of them.
func BenchmarkAdvertise10k(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	ts, r := setupAdvertiseBench(b)
	ads := hostRoutes(n)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := ts.SetAdvertisements(ctx, ads); err != nil {
			b.Fatal(err)
		}
		waitRouterCount(b, r, n)
		total += time.Since(start)

		b.StopTimer()
		if err := ts.SetAdvertisements(ctx, nil); err != nil {
			b.Fatal(err)
		}
		waitRouterCount(b, r, 0)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/10k-routes")
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "routes/s")
}
