package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// TestGracefulStop follows RFC 4724 §4.2 on the router's side: when the
// session ends without a NOTIFICATION the router keeps our routes, marked
// stale, and a new speaker's UPDATEs refresh them; a Cease (non-graceful
// stop) makes it drop them at once.
func TestGracefulStop(t *testing.T) {
	tests := []struct {
		graceful  bool
		wantKept  bool
		restartGR bool // start a new speaker that re-advertises
	}{
		{graceful: true, wantKept: true, restartGR: true},
		{graceful: false, wantKept: false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("graceful=%v", tc.graceful), func(t *testing.T) {
			ctx := context.Background()
			r := startRouter(t, routerAddr(0), routerASN)
			r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, passive: true, gr: true})
			cfg := Config{
				ListenPort:      -1, // only dial out, so a second speaker can start at once
				GracefulRestart: GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
			}
			peer := r.speakerPeer()
			peer.GracefulRestart = true
			ads := []Advertisement{
				advert("10.244.3.0/24", "192.0.2.10", "pod-cidr"),
				advert("fd00:10:244:3::/64", "2001:db8::10", "pod-cidr"),
			}
			run := func() *testSpeaker {
				ts := startSpeaker(t, cfg)
				if err := ts.SyncPeers(ctx, []Peer{peer}); err != nil {
					t.Fatal(err)
				}
				if err := ts.SetAdvertisements(ctx, ads); err != nil {
					t.Fatal(err)
				}
				waitEstablished(t, ts, r)
				return ts
			}
			ts := run()
			waitRouterHolds(t, r, ads...)
			if gr := r.neighbor(speakerAddrV4).GetGracefulRestart(); !gr.GetEnabled() {
				t.Fatalf("graceful restart not negotiated: %+v", gr)
			}

			ts.Stop(tc.graceful)

			waitFor(t, "the router to notice the session end", func() (bool, string) {
				return !r.established(speakerAddrV4), "still established"
			})
			if !tc.wantKept {
				waitFor(t, "the router to drop our routes", func() (bool, string) {
					v4, v6 := r.learnedFrom(speakerAddrV4, api.Family_AFI_IP), r.learnedFrom(speakerAddrV4, api.Family_AFI_IP6)
					return len(v4)+len(v6) == 0, fmt.Sprintf("still holds %v %v", v4, v6)
				})
				return
			}
			wantStale := func(stale bool) func() (bool, string) {
				return func() (bool, string) {
					got := map[netip.Prefix]ribPath{}
					for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
						for p, rp := range r.learnedFrom(speakerAddrV4, afi) {
							got[p] = rp
						}
					}
					for _, a := range ads {
						rp, ok := got[a.Prefix]
						if !ok || rp.stale != stale || rp.nextHop != a.NextHop {
							return false, fmt.Sprintf("router holds %v", got)
						}
					}
					return len(got) == len(ads), fmt.Sprintf("router holds %v", got)
				}
			}
			// Marking stale writes the paths the router's ListPath reads
			// (see learnedFrom). ListPeer runs in GoBGP's loop, so once it
			// shows the peer restarting, the marking is done.
			waitFor(t, "the router to treat us as restarting", func() (bool, string) {
				return r.neighbor(speakerAddrV4).GetGracefulRestart().GetPeerRestarting(), "not restarting"
			})
			waitFor(t, "our routes kept as stale", wantStale(true))

			if tc.restartGR {
				ts2 := run()
				waitFor(t, "our routes refreshed by the new speaker", wantStale(false))
				ts2.Stop(true)
			}
		})
	}
}
