package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// This file holds the test fixtures: a plain GoBGP server standing in for a
// ToR switch, the speaker under test, and polling helpers. Everything runs
// on loopback: the speaker on 127.0.0.1, routers on 127.0.0.2 and up (Linux
// routes all of 127/8 to lo), each on its own port.

const (
	speakerASN    = 64512
	routerASN     = 65010
	waitTimeout   = 30 * time.Second
	pollInterval  = 20 * time.Millisecond
	speakerAddrV4 = "127.0.0.1"
)

// freePort returns a TCP port that was free on addr a moment ago.
func freePort(t testing.TB, addr string) int32 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// waitFor polls cond until it holds, failing the test after waitTimeout
// with cond's last explanation.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(pollInterval)
	}
}

// router is a plain GoBGP server acting as the speaker's peer.
type router struct {
	t    testing.TB
	addr netip.Addr
	port int32
	asn  uint32
	srv  *server.BgpServer

	// states are the neighbours' session states, from GoBGP's peer
	// events. GoBGP v3.37 writes a neighbour's graceful restart state
	// while it handles an OPEN without the lock ListPeer reads it under
	// (fsm.go opensent), so polling ListPeer while a GR session comes up
	// is a data race inside GoBGP; the events are sent after it.
	mu     sync.Mutex
	states map[string]api.PeerState_SessionState
}

// startRouter starts a GoBGP server listening on addr. Like the speaker it
// enables multipath: GoBGP v3.37 keeps that setting in a process-wide
// variable, which the last server started decides.
func startRouter(t testing.TB, addr string, asn uint32) *router {
	t.Helper()
	r := &router{t: t, addr: netip.MustParseAddr(addr), port: freePort(t, addr), asn: asn,
		states: map[string]api.PeerState_SessionState{}}
	r.srv = server.NewBgpServer(server.LoggerOption(newGoBGPLogger(zap.NewNop())))
	go r.srv.Serve()
	err := r.srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn:              asn,
		RouterId:         addr,
		ListenPort:       r.port,
		ListenAddresses:  []string{addr},
		Families:         globalFamilies(),
		UseMultiplePaths: true,
	}})
	if err != nil {
		t.Fatalf("starting router %s: %v", addr, err)
	}
	watch, stopWatch := context.WithCancel(context.Background())
	err = r.srv.WatchEvent(watch, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(resp *api.WatchEventResponse) {
		if ev := resp.GetPeer(); ev != nil && ev.GetType() == api.WatchEventResponse_PeerEvent_STATE {
			st := ev.GetPeer().GetState()
			r.mu.Lock()
			r.states[st.GetNeighborAddress()] = st.GetSessionState()
			r.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("router %s: watching peers: %v", addr, err)
	}
	t.Cleanup(func() {
		stopWatch()
		r.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
	})
	return r
}

type routerNeighbor struct {
	addr    string
	asn     uint32
	port    int32 // where the neighbour listens; 0 for 179
	passive bool
	gr      bool // graceful restart helper
}

func (r *router) addNeighbor(n routerNeighbor) {
	r.t.Helper()
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: n.addr, PeerAsn: n.asn},
		Transport: &api.Transport{LocalAddress: r.addr.String(), RemotePort: uint32(n.port), PassiveMode: n.passive},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
	}
	if n.gr {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
	}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: n.gr}},
		})
	}
	if err := r.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		r.t.Fatalf("router %s: adding neighbour %s: %v", r.addr, n.addr, err)
	}
}

// routerPath builds the router's own IPv4 path for prefix via nextHop;
// asPath, if any, is what the router's own AS will be prepended to.
func routerPath(t testing.TB, prefix, nextHop string, withdraw bool, asPath ...uint32) *api.Path {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), bgp.NewPathAttributeNextHop(nextHop)}
	if len(asPath) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{
			bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, asPath),
		}))
	}
	path, err := apiutil.NewPath(bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()), withdraw, attrs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func (r *router) announce(prefix, nextHop string, asPath ...uint32) {
	r.t.Helper()
	if _, err := r.srv.AddPath(context.Background(), &api.AddPathRequest{
		TableType: api.TableType_GLOBAL, Path: routerPath(r.t, prefix, nextHop, false, asPath...),
	}); err != nil {
		r.t.Fatalf("router %s: announcing %s: %v", r.addr, prefix, err)
	}
}

func (r *router) withdraw(prefix, nextHop string) {
	r.t.Helper()
	path := routerPath(r.t, prefix, nextHop, true)
	if err := r.srv.DeletePath(context.Background(), &api.DeletePathRequest{
		TableType: api.TableType_GLOBAL, Family: path.Family, Path: path,
	}); err != nil {
		r.t.Fatalf("router %s: withdrawing %s: %v", r.addr, prefix, err)
	}
}

// ribPath is what the router holds for one prefix learned from a neighbour.
type ribPath struct {
	nextHop netip.Addr
	stale   bool
	igp     bool // origin IGP
}

// learnedFrom returns the router's global RIB paths of family that came
// from neighbor.
func (r *router) learnedFrom(neighbor string, afi api.Family_Afi) map[netip.Prefix]ribPath {
	r.t.Helper()
	out := map[netip.Prefix]ribPath{}
	err := r.srv.ListPath(context.Background(), &api.ListPathRequest{
		TableType: api.TableType_GLOBAL,
		Family:    &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
	}, func(d *api.Destination) {
		for _, p := range d.Paths {
			if p.NeighborIp != neighbor {
				continue
			}
			prefix, nh, ok, err := learnedPath(p)
			if err != nil || !ok {
				r.t.Errorf("router %s: path %v: learned=%v err=%v", r.addr, d.Prefix, ok, err)
				continue
			}
			rp := ribPath{nextHop: nh, stale: p.Stale}
			attrs, _ := apiutil.GetNativePathAttributes(p)
			for _, a := range attrs {
				if o, isOrigin := a.(*bgp.PathAttributeOrigin); isOrigin {
					rp.igp = o.Value == bgp.BGP_ORIGIN_ATTR_TYPE_IGP
				}
			}
			out[prefix] = rp
		}
	})
	if err != nil {
		r.t.Fatalf("router %s: listing paths: %v", r.addr, err)
	}
	// GoBGP v3.37's ListPath converts paths after leaving its server loop,
	// and the loop writes some in place (marking them stale): a data race
	// inside GoBGP. Any later loop operation orders those reads before the
	// loop's next writes.
	if _, err := r.srv.GetBgp(context.Background(), &api.GetBgpRequest{}); err != nil {
		r.t.Fatalf("router %s: %v", r.addr, err)
	}
	return out
}

// countV4 returns how many IPv4 destinations the router's global RIB holds.
func (r *router) countV4() uint64 {
	r.t.Helper()
	tbl, err := r.srv.GetTable(context.Background(), &api.GetTableRequest{
		TableType: api.TableType_GLOBAL,
		Family:    &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	})
	if err != nil {
		r.t.Fatalf("router %s: table: %v", r.addr, err)
	}
	return tbl.NumDestination
}

// neighbor returns the router's view of one neighbour.
func (r *router) neighbor(addr string) *api.Peer {
	r.t.Helper()
	var out *api.Peer
	err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: addr}, func(p *api.Peer) { out = p })
	if err != nil || out == nil {
		r.t.Fatalf("router %s: neighbour %s: %v", r.addr, addr, err)
	}
	return out
}

func (r *router) established(addr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[addr] == api.PeerState_ESTABLISHED
}

// speakerPeer is how the speaker sees r.
func (r *router) speakerPeer() Peer {
	return Peer{Address: r.addr, ASN: r.asn, Port: uint16(r.port), Description: "router " + r.addr.String()}
}

// testSpeaker is a started speaker on 127.0.0.1 with its logs and learned
// routes recorded.
type testSpeaker struct {
	*Speaker
	port    int32
	logs    *observer.ObservedLogs
	learned *learnedRecorder
}

func startSpeaker(t testing.TB, cfg Config) *testSpeaker {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	ts := &testSpeaker{logs: logs, learned: newLearnedRecorder()}
	if cfg.ASN == 0 {
		cfg.ASN = speakerASN
	}
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = netip.MustParseAddr("10.255.0.1")
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = freePort(t, speakerAddrV4)
	}
	if cfg.ListenAddresses == nil {
		cfg.ListenAddresses = []netip.Addr{netip.MustParseAddr(speakerAddrV4)}
	}
	ts.port = cfg.ListenPort
	ts.Speaker = NewSpeaker(cfg, zap.New(core), ts.learned.record)
	ts.connectRetry = time.Second
	if err := ts.Start(context.Background()); err != nil {
		t.Fatalf("starting speaker: %v", err)
	}
	t.Cleanup(func() {
		ts.Stop(false)
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("speaker log: %s %s %v", e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return ts
}

// peerState returns the speaker's status for addr ("" if unknown).
func (ts *testSpeaker) peerState(t testing.TB, addr netip.Addr) string {
	t.Helper()
	st, err := ts.Status(context.Background())
	if err != nil {
		t.Fatalf("speaker status: %v", err)
	}
	for _, p := range st.Peers {
		if p.Address == addr {
			return p.State
		}
	}
	return ""
}

// waitEstablished waits until both the speaker and each router see their
// session established.
//
// The speaker's status is read only once GoBGP has logged the session up
// (in its server loop, after the FSM's OPEN handling: see router.states
// for the race polling earlier would meet).
func waitEstablished(t testing.TB, ts *testSpeaker, routers ...*router) {
	t.Helper()
	for _, r := range routers {
		waitFor(t, fmt.Sprintf("session with %s", r.addr), func() (bool, string) {
			if ts.logs.FilterMessage("Peer Up").FilterField(zap.String("key", r.addr.String())).Len() == 0 {
				return false, "speaker has not logged the session up"
			}
			s := ts.peerState(t, r.addr)
			return s == "established" && r.established(speakerAddrV4), "speaker sees " + s
		})
	}
}

// learnedRecorder keeps the latest next-hop set per prefix from onLearned
// and checks the callback's contract.
type learnedRecorder struct {
	mu       sync.Mutex
	routes   map[netip.Prefix][]netip.Addr
	calls    int
	problems []string
	inFlight atomic.Int32
}

func newLearnedRecorder() *learnedRecorder {
	return &learnedRecorder{routes: map[netip.Prefix][]netip.Addr{}}
}

func (r *learnedRecorder) record(routes []LearnedRoute) {
	if r.inFlight.Add(1) > 1 {
		r.problem("onLearned called concurrently with itself")
	}
	defer r.inFlight.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for i, lr := range routes {
		if i > 0 && prefixOrder(routes[i-1].Prefix, lr.Prefix) >= 0 {
			r.problems = append(r.problems, "routes not sorted or repeated: "+fmt.Sprint(routes))
		}
		r.routes[lr.Prefix] = lr.NextHops
	}
}

func (r *learnedRecorder) problem(s string) {
	r.mu.Lock()
	r.problems = append(r.problems, s)
	r.mu.Unlock()
}

// nextHops returns the last set reported for prefix and whether it was
// ever reported.
func (r *learnedRecorder) nextHops(prefix string) ([]netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	nhs, ok := r.routes[netip.MustParsePrefix(prefix)]
	return nhs, ok
}

func (r *learnedRecorder) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
}

// addrs parses addresses for expectations.
func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// routerAddr returns the n-th router address, 127.0.0.(n+2).
func routerAddr(n int) string { return "127.0.0." + strconv.Itoa(n+2) }
