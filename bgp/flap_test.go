package bgp

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// TestPeerFlaps flaps sessions 50 times and checks that the speaker
// neither crashes nor leaks goroutines, and that every session and the
// ECMP set come back.
//
// GoBGP holds a session in idle for a fixed 5 s after it goes down (its
// holdtimeIdle), so one flap takes about 7 s: the 50 flaps are spread over
// 10 routers flapping 5 times each, in parallel. All routers announce the
// same prefix, so the learned next-hop set shrinks and grows throughout.
func TestPeerFlaps(t *testing.T) {
	routers, flapsEach := 10, 5
	if testing.Short() {
		routers, flapsEach = 3, 2
	}
	ctx := context.Background()
	ts := startSpeaker(t, Config{})
	const prefix = "10.77.0.0/24"
	var rs []*router
	var peers []Peer
	var allNextHops []string
	for i := range routers {
		r := startRouter(t, routerAddr(i), routerASN)
		// The router dials and the speaker only listens, so the two never
		// collide on reconnection.
		r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, port: ts.port})
		r.announce(prefix, r.addr.String())
		p := r.speakerPeer()
		p.Passive = true
		rs, peers = append(rs, r), append(peers, p)
		allNextHops = append(allNextHops, r.addr.String())
	}
	if err := ts.SyncPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, ts, rs...)
	waitLearned(t, ts, prefix, addrs(allNextHops...))
	before := settledGoroutines()

	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range flapsEach {
				if err := flapOnce(ctx, ts, r); err != nil {
					errs[i] = fmt.Errorf("router %s, flap %d: %w", r.addr, n+1, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	waitEstablished(t, ts, rs...)
	waitLearned(t, ts, prefix, addrs(allNextHops...))
	// A margin for goroutines that come and go with timers (GoBGP's
	// deferral and keepalive helpers); a leak per flap would exceed it.
	const margin = 5
	waitFor(t, "goroutines back to their count before the flaps", func() (bool, string) {
		n := runtime.NumGoroutine()
		return n <= before+margin, goroutineReport(before, n)
	})
	t.Logf("%d flaps; goroutines: %d before, %d after", routers*flapsEach, before, runtime.NumGoroutine())
	ts.learned.check(t)
}

// flapOnce takes the router's session down (an administrative shutdown,
// which sends the speaker a Cease), brings it back and waits until both
// sides are established again.
func flapOnce(ctx context.Context, ts *testSpeaker, r *router) error {
	if err := r.srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: speakerAddrV4}); err != nil {
		return err
	}
	if err := pollUntil(func() bool { return speakerState(ctx, ts, r) != "established" }); err != nil {
		return fmt.Errorf("session did not go down: %w", err)
	}
	if err := r.srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: speakerAddrV4}); err != nil {
		return err
	}
	err := pollUntil(func() bool {
		if speakerState(ctx, ts, r) != "established" {
			return false
		}
		var up bool
		r.srv.ListPeer(ctx, &api.ListPeerRequest{Address: speakerAddrV4}, func(p *api.Peer) {
			up = p.GetState().GetSessionState() == api.PeerState_ESTABLISHED
		})
		return up
	})
	if err != nil {
		return fmt.Errorf("session did not come back: %w", err)
	}
	return nil
}

func speakerState(ctx context.Context, ts *testSpeaker, r *router) string {
	st, err := ts.Status(ctx)
	if err != nil {
		return err.Error()
	}
	i := slices.IndexFunc(st.Peers, func(p PeerStatus) bool { return p.Address == r.addr })
	if i < 0 {
		return "missing"
	}
	return st.Peers[i].State
}

// pollUntil is waitFor for goroutines other than the test's.
func pollUntil(cond func() bool) error {
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", waitTimeout)
		}
		time.Sleep(pollInterval)
	}
	return nil
}
