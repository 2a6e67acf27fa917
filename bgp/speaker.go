package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"go.uber.org/zap"
)

// ErrStopped is returned by a Speaker's methods once Stop was called.
var ErrStopped = errors.New("bgp speaker is stopped")

// ErrNotStarted is returned by a Speaker's methods before Start.
var ErrNotStarted = errors.New("bgp speaker is not started")

const (
	// defaultConnectRetry replaces GoBGP's 120 s (RFC 4271's suggestion for
	// core routers): a node agent should find its ToR again within seconds
	// after either side restarts.
	defaultConnectRetry = 5 * time.Second
	// maxRestartTime is the largest value of the 12-bit restart time field
	// of the graceful restart capability (RFC 4724 §3).
	maxRestartTime = 4095 * time.Second
)

// Speaker is the embedded BGP speaker. Its methods are safe for concurrent
// use; changes to peers and advertisements are serialised.
type Speaker struct {
	cfg       Config
	log       *zap.Logger
	onLearned func([]LearnedRoute)
	// connectRetry is how long GoBGP waits between dials to a peer.
	connectRetry time.Duration

	// mu serialises the operations that change GoBGP (start, stop, peers,
	// advertisements) and guards the fields below.
	mu         sync.Mutex
	state      lifecycle
	server     *server.BgpServer
	peers      map[netip.Addr]Peer
	advertised map[netip.Prefix]Advertisement

	learned  *learnedTable
	cancel   context.CancelFunc // stops the watch and the reporter
	wg       sync.WaitGroup     // the reporter goroutine
	stopDone chan struct{}      // closed when Stop has finished
}

type lifecycle int

const (
	stateCreated lifecycle = iota
	stateRunning
	stateStopped
)

// NewSpeaker returns a speaker for cfg. onLearned receives the learned
// routes whose equal-cost next-hop set changed; it is called from one
// goroutine at a time and must not call back into the Speaker's Stop.
func NewSpeaker(cfg Config, log *zap.Logger, onLearned func([]LearnedRoute)) *Speaker {
	if log == nil {
		log = zap.NewNop()
	}
	if onLearned == nil {
		onLearned = func([]LearnedRoute) {}
	}
	return &Speaker{
		cfg:          cfg,
		log:          log,
		onLearned:    onLearned,
		connectRetry: defaultConnectRetry,
		peers:        map[netip.Addr]Peer{},
		advertised:   map[netip.Prefix]Advertisement{},
		learned:      newLearnedTable(),
		stopDone:     make(chan struct{}),
	}
}

// validateConfig checks what GoBGP would otherwise refuse late or accept
// silently.
func validateConfig(cfg Config) error {
	if cfg.ASN == 0 {
		return errors.New("bgp config: asn: must not be 0")
	}
	if !cfg.RouterID.Is4() || cfg.RouterID.IsUnspecified() {
		// RFC 6286: the BGP identifier is a non-zero four-octet number.
		return fmt.Errorf("bgp config: router ID %q: must be a non-zero IPv4 address", cfg.RouterID)
	}
	if cfg.ListenPort < -1 || cfg.ListenPort > 65535 {
		return fmt.Errorf("bgp config: listen port %d: must be -1 (no listening), 0 (179) or a port number", cfg.ListenPort)
	}
	for _, a := range cfg.ListenAddresses {
		if !a.IsValid() {
			return errors.New("bgp config: listen addresses: contains an invalid address")
		}
	}
	if rt := cfg.GracefulRestart.RestartTime; rt < 0 || rt > maxRestartTime {
		return fmt.Errorf("bgp config: graceful restart time %s: must be between 0 and %s", rt, maxRestartTime)
	}
	return nil
}

// Start creates the GoBGP server, starts BGP (listening unless ListenPort
// is -1) and begins watching the RIB for learned routes. The speaker runs
// until Stop, whatever becomes of ctx.
func (s *Speaker) Start(ctx context.Context) error {
	if err := validateConfig(s.cfg); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return errors.New("bgp speaker is already started")
	case stateStopped:
		return ErrStopped
	}

	srv := server.NewBgpServer(server.LoggerOption(newGoBGPLogger(s.log.Named("gobgp"))))
	// GoBGP v3.37 has no way to end Serve: this goroutine outlives Stop,
	// parked on channels nothing writes to any more.
	go srv.Serve()

	listen := make([]string, 0, len(s.cfg.ListenAddresses))
	for _, a := range s.cfg.ListenAddresses {
		listen = append(listen, a.String())
	}
	global := &api.Global{
		Asn:             s.cfg.ASN,
		RouterId:        s.cfg.RouterID.String(),
		ListenPort:      s.cfg.ListenPort,
		ListenAddresses: listen,
		Families:        globalFamilies(),
		// Multipath makes GoBGP report every path equal to the best, which
		// is what the FIB installs as ECMP.
		UseMultiplePaths: true,
		GracefulRestart: &api.GracefulRestart{
			Enabled:     s.cfg.GracefulRestart.Enabled,
			RestartTime: uint32(s.cfg.GracefulRestart.RestartTime / time.Second),
		},
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		srv.Stop()
		return fmt.Errorf("starting BGP (asn %d, router ID %s, port %d): %w", s.cfg.ASN, s.cfg.RouterID, s.cfg.ListenPort, err)
	}

	watchCtx, cancel := context.WithCancel(context.Background())
	if err := s.watchLearned(watchCtx, srv); err != nil {
		cancel()
		srv.Stop()
		return fmt.Errorf("watching the BGP RIB: %w", err)
	}
	s.server, s.cancel, s.state = srv, cancel, stateRunning
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.reportLearned(watchCtx)
	}()
	s.log.Info("BGP speaker started",
		zap.Uint32("asn", s.cfg.ASN),
		zap.Stringer("router_id", s.cfg.RouterID),
		zap.Int32("listen_port", s.cfg.ListenPort),
		zap.Bool("graceful_restart", s.cfg.GracefulRestart.Enabled))
	return nil
}

// globalFamilies are the GoBGP global RIB families (indexes of GoBGP's
// AfiSafiType list: 0 is ipv4-unicast, 1 is ipv6-unicast).
func globalFamilies() []uint32 { return []uint32{0, 1} }

// Stop shuts the speaker down and waits for the goroutines it started. It
// stops reporting learned routes first, so a restarting agent keeps them in
// the FIB. With graceful, sessions that negotiated graceful restart are
// closed without a NOTIFICATION, so those peers keep our routes (marked
// stale) for the restart time; otherwise every peer gets a Cease and drops
// them. Stop is idempotent; a second call waits for the first to finish.
func (s *Speaker) Stop(graceful bool) {
	s.mu.Lock()
	prev := s.state
	s.state = stateStopped
	s.mu.Unlock()
	switch prev {
	case stateCreated:
		close(s.stopDone)
		return
	case stateStopped:
		<-s.stopDone
		return
	}
	defer close(s.stopDone)

	s.cancel()
	s.wg.Wait()
	s.learned.close()

	ctx, cancel := context.WithTimeout(context.Background(), gracefulCloseTimeout)
	defer cancel()
	kept := 0
	if graceful && s.cfg.GracefulRestart.Enabled {
		kept = s.closeGracefully(ctx)
	}
	if err := s.server.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		s.log.Warn("stopping BGP", zap.Error(err))
	}
	s.log.Info("BGP speaker stopped", zap.Bool("graceful", graceful), zap.Int("peers_keeping_routes", kept))
}

// Status reports the peers, the advertised routes and the learned routes.
func (s *Speaker) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	state, srv := s.state, s.server
	adv := s.advertisedList()
	descr := make(map[netip.Addr]string, len(s.peers))
	for a, p := range s.peers {
		descr[a] = p.Description
	}
	s.mu.Unlock()
	switch state {
	case stateCreated:
		return Status{}, ErrNotStarted
	case stateStopped:
		return Status{}, ErrStopped
	}

	st := Status{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID, Advertised: adv, Peers: []PeerStatus{}}
	var convErr error
	err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		ps, err := peerStatus(p, time.Now())
		if err != nil {
			convErr = errors.Join(convErr, err)
			return
		}
		ps.Description = descr[ps.Address]
		st.Peers = append(st.Peers, ps)
	})
	if err != nil {
		return Status{}, fmt.Errorf("listing BGP peers: %w", err)
	}
	if convErr != nil {
		return Status{}, convErr
	}
	slices.SortFunc(st.Peers, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	st.Learned = s.learned.snapshot()
	return st, nil
}

// peerStatus converts GoBGP's view of one neighbour.
func peerStatus(p *api.Peer, now time.Time) (PeerStatus, error) {
	addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
	if err != nil {
		return PeerStatus{}, fmt.Errorf("GoBGP reported peer %q: %w", p.GetConf().GetNeighborAddress(), err)
	}
	ps := PeerStatus{
		Address: addr.Unmap(),
		ASN:     p.GetConf().GetPeerAsn(),
		State:   sessionState(p.GetState().GetSessionState()),
	}
	if ps.State == "established" {
		if up := p.GetTimers().GetState().GetUptime(); up != nil && up.AsTime().Unix() > 0 {
			ps.Uptime = now.Sub(up.AsTime()).Truncate(time.Second)
		}
	}
	for _, af := range p.GetAfiSafis() {
		ps.Received += af.GetState().GetReceived()
		ps.Advertised += af.GetState().GetAdvertised()
	}
	return ps, nil
}

// sessionState names a GoBGP session state the way `show bgp` prints it.
func sessionState(st api.PeerState_SessionState) string {
	if st == api.PeerState_UNKNOWN {
		return "idle"
	}
	return strings.ToLower(st.String())
}

// prefixOrder orders prefixes by address, then length.
func prefixOrder(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// runningServer returns the GoBGP server, or why the speaker cannot act.
// Callers hold s.mu.
func (s *Speaker) runningServer() (*server.BgpServer, error) {
	switch s.state {
	case stateCreated:
		return nil, ErrNotStarted
	case stateStopped:
		return nil, ErrStopped
	}
	return s.server, nil
}
