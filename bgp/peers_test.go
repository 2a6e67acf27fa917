package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// gobgpPeer is the part of GoBGP's neighbour configuration a Peer maps to.
type gobgpPeer struct {
	asn             uint32
	port            uint32
	password        string
	description     string
	passive         bool
	multihop        bool
	multihopTTL     uint32
	ttlSecurity     bool
	ttlMin          uint32
	hold, keepalive uint64
	gr              bool
	restartTime     uint32
	families        string // enabled AFI-SAFIs, with "+gr" when per-family GR is on
}

// configuredPeers reads back what GoBGP holds for the speaker's neighbours.
func configuredPeers(t *testing.T, s *Speaker) map[netip.Addr]gobgpPeer {
	t.Helper()
	out := map[netip.Addr]gobgpPeer{}
	err := s.server.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		g := gobgpPeer{
			asn:         p.Conf.PeerAsn,
			port:        p.Transport.RemotePort,
			password:    p.Conf.AuthPassword,
			description: p.Conf.Description,
			passive:     p.Transport.PassiveMode,
			multihop:    p.EbgpMultihop.Enabled,
			multihopTTL: p.EbgpMultihop.MultihopTtl,
			ttlSecurity: p.TtlSecurity.Enabled,
			ttlMin:      p.TtlSecurity.TtlMin,
			hold:        p.Timers.Config.HoldTime,
			keepalive:   p.Timers.Config.KeepaliveInterval,
			gr:          p.GracefulRestart.Enabled,
			restartTime: p.GracefulRestart.RestartTime,
		}
		var fams []string
		for _, af := range p.AfiSafis {
			if !af.Config.Enabled {
				continue
			}
			f := strings.ToLower(af.Config.Family.Afi.String())
			if af.MpGracefulRestart.GetConfig().GetEnabled() {
				f += "+gr"
			}
			fams = append(fams, f)
		}
		g.families = strings.Join(fams, ",")
		out[netip.MustParseAddr(p.Conf.NeighborAddress)] = g
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSyncPeers(t *testing.T) {
	ctx := context.Background()
	ts := startSpeaker(t, Config{
		ListenPort:      -1,
		GracefulRestart: GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
	})
	// Nothing listens at these addresses: this test is about configuration.
	tor := Peer{
		Address: netip.MustParseAddr("127.0.0.20"), ASN: 65010, Password: "s3cret",
		TTLSecurity: true, GracefulRestart: true, Passive: true, Description: "tor-a",
	}
	remote := Peer{
		Address: netip.MustParseAddr("127.0.0.21"), ASN: 65020, Port: 1179, EBGPMultihopTTL: 3,
		HoldTime: 30 * time.Second, Keepalive: 10 * time.Second, Passive: true,
	}
	v6 := Peer{Address: netip.MustParseAddr("::1"), ASN: 64512, Passive: true, GracefulRestart: true}

	// Zero values leave GoBGP's defaults: port 179 (0 here), hold 90 s,
	// keepalive a third of the hold time.
	wantTor := gobgpPeer{asn: 65010, password: "s3cret", description: "tor-a", passive: true,
		ttlSecurity: true, ttlMin: 255, hold: 90, keepalive: 30, gr: true, restartTime: 120,
		families: "afi_ip+gr,afi_ip6+gr"}
	wantRemote := gobgpPeer{asn: 65020, port: 1179, passive: true, multihop: true, multihopTTL: 3,
		hold: 30, keepalive: 10, restartTime: 120, families: "afi_ip,afi_ip6"}
	wantV6 := gobgpPeer{asn: 64512, passive: true, hold: 90, keepalive: 30, gr: true, restartTime: 120,
		families: "afi_ip+gr,afi_ip6+gr"}

	torChanged := tor
	torChanged.Description = "tor-a (rack 3)"
	torChanged.HoldTime, torChanged.Keepalive = 9*time.Second, 3*time.Second
	wantTorChanged := wantTor
	wantTorChanged.description, wantTorChanged.hold, wantTorChanged.keepalive = "tor-a (rack 3)", 9, 3

	torRenamed := torChanged
	torRenamed.Description = "tor-a (rack 4)"

	steps := []struct {
		name  string
		peers []Peer
		want  map[netip.Addr]gobgpPeer
	}{
		{"add", []Peer{tor, remote, v6}, map[netip.Addr]gobgpPeer{tor.Address: wantTor, remote.Address: wantRemote, v6.Address: wantV6}},
		{"unchanged", []Peer{v6, remote, tor}, map[netip.Addr]gobgpPeer{tor.Address: wantTor, remote.Address: wantRemote, v6.Address: wantV6}},
		{"update one", []Peer{torChanged, remote, v6}, map[netip.Addr]gobgpPeer{tor.Address: wantTorChanged, remote.Address: wantRemote, v6.Address: wantV6}},
		// A new description alone is kept by the speaker for Status, as
		// GoBGP would reset the session to take it.
		{"description only", []Peer{torRenamed}, map[netip.Addr]gobgpPeer{tor.Address: wantTorChanged}},
		{"delete two", []Peer{torChanged}, map[netip.Addr]gobgpPeer{tor.Address: wantTorChanged}},
		{"delete all", nil, map[netip.Addr]gobgpPeer{}},
	}
	for _, step := range steps {
		if err := ts.SyncPeers(ctx, step.peers); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := configuredPeers(t, ts.Speaker)
		if fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Errorf("%s: GoBGP holds\n%+v\nwant\n%+v", step.name, got, step.want)
		}
		st, err := ts.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var descr []string
		for _, p := range step.peers {
			descr = append(descr, p.Address.String()+"="+p.Description)
		}
		var gotDescr []string
		for _, p := range st.Peers {
			gotDescr = append(gotDescr, p.Address.String()+"="+p.Description)
		}
		slices.Sort(descr)
		descr = slices.Compact(descr)
		if !slices.Equal(gotDescr, descr) {
			t.Errorf("%s: status peers %v, want %v", step.name, gotDescr, descr)
		}
	}
}

func TestSyncPeersRejectsInvalidPeers(t *testing.T) {
	ctx := context.Background()
	ts := startSpeaker(t, Config{ListenPort: -1})
	good := Peer{Address: netip.MustParseAddr("127.0.0.30"), ASN: 65010, Passive: true}
	existing := Peer{Address: netip.MustParseAddr("127.0.0.31"), ASN: 65010, Passive: true}
	if err := ts.SyncPeers(ctx, []Peer{existing}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		bad     Peer
		wantErr string
	}{
		{"asn 0", Peer{Address: netip.MustParseAddr("127.0.0.40"), Passive: true}, "bgp peer 127.0.0.40: asn"},
		{"no address", Peer{ASN: 65010}, "address"},
		{"multihop with GTSM", Peer{Address: netip.MustParseAddr("127.0.0.41"), ASN: 65010, EBGPMultihopTTL: 2, TTLSecurity: true}, "bgp peer 127.0.0.41: ttl-security"},
		{"hold time 2s", Peer{Address: netip.MustParseAddr("127.0.0.42"), ASN: 65010, HoldTime: 2 * time.Second}, "bgp peer 127.0.0.42: hold-time"},
		{"keepalive over hold time", Peer{Address: netip.MustParseAddr("127.0.0.43"), ASN: 65010, HoldTime: 9 * time.Second, Keepalive: 10 * time.Second}, "bgp peer 127.0.0.43: keepalive"},
		{"fractional seconds", Peer{Address: netip.MustParseAddr("127.0.0.44"), ASN: 65010, HoldTime: 3500 * time.Millisecond}, "bgp peer 127.0.0.44: hold-time/keepalive"},
		{"password too long", Peer{Address: netip.MustParseAddr("127.0.0.45"), ASN: 65010, Password: strings.Repeat("x", 81)}, "bgp peer 127.0.0.45: password"},
		// An existing peer given a bad value keeps its old configuration.
		{"existing peer, asn 0", Peer{Address: existing.Address, Passive: true}, "bgp peer 127.0.0.31: asn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ts.SyncPeers(ctx, []Peer{good, tc.bad})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
			got := configuredPeers(t, ts.Speaker)
			if _, ok := got[good.Address]; !ok {
				t.Errorf("the valid peer was not applied: %v", got)
			}
			// The existing peer is no longer listed, so it goes, unless the
			// invalid entry was its own.
			want := 1
			if tc.bad.Address == existing.Address {
				want = 2
			}
			if len(got) != want {
				t.Errorf("GoBGP holds %v; want the valid peer, plus %s only if it was the invalid one", got, existing.Address)
			}
			if err := ts.SyncPeers(ctx, []Peer{existing}); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("same address twice", func(t *testing.T) {
		if err := ts.SyncPeers(ctx, []Peer{good, good}); err != nil {
			t.Errorf("identical duplicates: %v", err)
		}
		other := good
		other.ASN = 65011
		err := ts.SyncPeers(ctx, []Peer{good, other})
		if err == nil || !strings.Contains(err.Error(), "bgp peer 127.0.0.30: listed twice") {
			t.Fatalf("error = %v", err)
		}
		if got := configuredPeers(t, ts.Speaker); got[good.Address].asn != good.ASN {
			t.Errorf("the peer listed twice changed: %+v", got[good.Address])
		}
	})
}
