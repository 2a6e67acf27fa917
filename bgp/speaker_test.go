package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
)

func TestSessionEstablished(t *testing.T) {
	tests := []struct {
		name           string
		speakerPassive bool // the router dials
		routerPassive  bool // the speaker dials
	}{
		{name: "speaker active", routerPassive: true},
		{name: "speaker passive", speakerPassive: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startSpeaker(t, Config{})
			r := startRouter(t, routerAddr(0), routerASN)
			r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, port: ts.port, passive: tc.routerPassive})
			peer := r.speakerPeer()
			peer.Passive = tc.speakerPassive
			if err := ts.SyncPeers(context.Background(), []Peer{peer}); err != nil {
				t.Fatal(err)
			}
			waitEstablished(t, ts, r)

			st, err := ts.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Peers) != 1 {
				t.Fatalf("status has %d peers, want 1: %+v", len(st.Peers), st.Peers)
			}
			got := st.Peers[0]
			want := PeerStatus{Address: r.addr, ASN: routerASN, State: "established", Description: peer.Description}
			got.Uptime = 0 // whole seconds since establishment: 0 or 1 here
			if got != want {
				t.Errorf("peer status = %+v, want %+v", got, want)
			}
			if st.ASN != speakerASN || st.RouterID != netip.MustParseAddr("10.255.0.1") {
				t.Errorf("status identity = %d %s", st.ASN, st.RouterID)
			}
		})
	}
}

func TestSessionStateNames(t *testing.T) {
	// RFC 4271 §8.2.2 names the FSM states; `show bgp` prints them in
	// lower case. GoBGP reports UNKNOWN for a neighbour it has not started.
	for st, want := range map[api.PeerState_SessionState]string{
		api.PeerState_UNKNOWN:     "idle",
		api.PeerState_IDLE:        "idle",
		api.PeerState_CONNECT:     "connect",
		api.PeerState_ACTIVE:      "active",
		api.PeerState_OPENSENT:    "opensent",
		api.PeerState_OPENCONFIRM: "openconfirm",
		api.PeerState_ESTABLISHED: "established",
	} {
		if got := sessionState(st); got != want {
			t.Errorf("sessionState(%s) = %q, want %q", st, got, want)
		}
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	good := Config{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"asn 0", func(c *Config) { c.ASN = 0 }, "asn"},
		{"router ID unset", func(c *Config) { c.RouterID = netip.Addr{} }, "router ID"},
		{"router ID IPv6", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, "router ID"},
		{"router ID zero", func(c *Config) { c.RouterID = netip.IPv4Unspecified() }, "router ID"},
		{"listen port", func(c *Config) { c.ListenPort = -2 }, "listen port"},
		{"restart time over 12 bits", func(c *Config) { c.GracefulRestart.RestartTime = 4096 * time.Second }, "graceful restart time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mutate(&cfg)
			s := NewSpeaker(cfg, zap.NewNop(), nil)
			err := s.Start(context.Background())
			if err == nil {
				s.Stop(false)
				t.Fatal("Start accepted the config")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not name %q", err, tc.wantErr)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := NewSpeaker(Config{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1}, nil, nil)
	if _, err := s.Status(ctx); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Status before Start: %v, want ErrNotStarted", err)
	}
	if err := s.SyncPeers(ctx, nil); !errors.Is(err, ErrNotStarted) {
		t.Errorf("SyncPeers before Start: %v, want ErrNotStarted", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err == nil {
		t.Error("second Start succeeded")
	}
	s.Stop(true)
	s.Stop(false) // idempotent
	if err := s.SetAdvertisements(ctx, nil); !errors.Is(err, ErrStopped) {
		t.Errorf("SetAdvertisements after Stop: %v, want ErrStopped", err)
	}
	if err := s.Start(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v, want ErrStopped", err)
	}
}

// TestStopReleasesGoroutines checks that Stop leaves only GoBGP's Serve
// goroutine behind, which GoBGP v3.37 cannot end.
func TestStopReleasesGoroutines(t *testing.T) {
	r := startRouter(t, routerAddr(0), routerASN)
	r.addNeighbor(routerNeighbor{addr: speakerAddrV4, asn: speakerASN, passive: true})
	before := settledGoroutines()

	s := NewSpeaker(Config{ASN: speakerASN, RouterID: netip.MustParseAddr("10.255.0.1"), ListenPort: -1}, nil, nil)
	s.connectRetry = time.Second
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncPeers(context.Background(), []Peer{r.speakerPeer()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session", func() (bool, string) { return r.established(speakerAddrV4), "not established" })
	s.Stop(false)

	const serveGoroutine = 1
	waitFor(t, "goroutines to end", func() (bool, string) {
		n := runtime.NumGoroutine()
		return n <= before+serveGoroutine, goroutineReport(before, n)
	})
}

// settledGoroutines returns the goroutine count once it stopped moving.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func goroutineReport(before, now int) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return fmt.Sprintf("%d goroutines before, %d now; stacks:\n%s", before, now, buf)
}
