package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-vpp/kube-vpp/agent/source"
	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

// routing runs the embedded BGP speaker: it keeps peers and advertisements
// in line with the cluster and installs learned routes in VPP through the
// BGP FIB source. All methods but onLearned run on the reconcile goroutine.
type routing struct {
	a   *Agent
	fib *ip.Driver
	log *zap.Logger

	// speaker is read by the control server too, hence atomic.
	speaker  atomic.Pointer[bgp.Speaker]
	identity string // "asn/router-id" the speaker runs with
	started  time.Time

	// Learned routes arrive from the speaker's goroutine.
	mu      sync.Mutex
	learned map[netip.Prefix]bgp.LearnedRoute
	pending map[netip.Prefix]bool
	lastNew time.Time
	changed chan struct{}

	// adsChanged signals a Service or EndpointSlice change that can move
	// an announcement; other service changes never reach BGP.
	adsChanged chan struct{}

	// converged is set once the peers had time to send us their routes
	// after a start: only then may a full sync remove learned routes that
	// a previous agent installed (graceful restart keeps them meanwhile).
	converged bool
}

func newRouting(a *Agent) *routing {
	return &routing{
		a:       a,
		fib:     ip.New(a.vpp, a.log, ip.SourceBGP),
		log:     a.log.Named("bgp"),
		learned: map[netip.Prefix]bgp.LearnedRoute{},
		pending: map[netip.Prefix]bool{},
		changed: make(chan struct{}, 1),

		adsChanged: make(chan struct{}, 1),
	}
}

// watch follows the Services and EndpointSlices that can change this
// node's announcements: those with LB ingress IPs or externalIPs, and the
// endpoints of such Services under externalTrafficPolicy Local. At 10,000
// services most changes are endpoint churn of ClusterIPs: they cost BGP
// nothing.
func (r *routing) watch(src *source.Source) ([]cache.InformerSynced, error) {
	svcs := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.serviceChanged(o, nil) },
		UpdateFunc: func(old, o any) { r.serviceChanged(old, o) },
		DeleteFunc: func(o any) { r.serviceChanged(deleted(o), nil) },
	}
	lister := src.Services()
	slice := func(o any) {
		es, ok := o.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		svc, err := lister.Services(es.Namespace).Get(es.Labels[discoveryv1.LabelServiceName])
		// A slice whose Service is not known yet: the Service's own add
		// recomputes with the slices then cached.
		if err == nil && bgp.AdvertisementsFollowEndpoints(svc) {
			r.pokeAds()
		}
	}
	eps := cache.ResourceEventHandlerFuncs{
		AddFunc: slice,
		// A relabelled slice leaves one Service for another.
		UpdateFunc: func(old, o any) { slice(old); slice(o) },
		DeleteFunc: func(o any) { slice(deleted(o)) },
	}
	sr, err := src.Informers.Core().V1().Services().Informer().AddEventHandler(svcs)
	if err != nil {
		return nil, fmt.Errorf("watching services for BGP: %w", err)
	}
	er, err := src.Informers.Discovery().V1().EndpointSlices().Informer().AddEventHandler(eps)
	if err != nil {
		return nil, fmt.Errorf("watching endpointslices for BGP: %w", err)
	}
	return []cache.InformerSynced{sr.HasSynced, er.HasSynced}, nil
}

// serviceChanged pokes the advertisement pass when the Service before or
// after the change announces anything.
func (r *routing) serviceChanged(old, cur any) {
	for _, o := range []any{old, cur} {
		if svc, ok := o.(*corev1.Service); ok && bgp.ServiceAdvertises(svc) {
			r.pokeAds()
			return
		}
	}
}

func (r *routing) pokeAds() {
	select {
	case r.adsChanged <- struct{}{}:
	default:
	}
}

// onLearned is the speaker's callback: it records the new next-hop sets and
// wakes the reconcile loop, which writes them to VPP.
func (r *routing) onLearned(routes []bgp.LearnedRoute) {
	r.mu.Lock()
	for _, lr := range routes {
		if len(lr.NextHops) == 0 {
			delete(r.learned, lr.Prefix)
		} else {
			r.learned[lr.Prefix] = lr
		}
		r.pending[lr.Prefix] = true
	}
	r.lastNew = time.Now()
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// sync brings the speaker and the BGP routes in VPP in line with the
// cluster. nodeRoutes are the prefixes the node translation programs:
// learned routes never override them.
func (r *routing) sync(ctx context.Context, self *corev1.Node, nodes []*corev1.Node, nodeRoutes map[netip.Prefix]bool, uplink uint32) error {
	cfg := r.a.cfg.BGP
	if !cfg.Enabled {
		// BGP off: routes a previous configuration learned must go.
		return r.fib.Sync(ctx, ip.Desired{})
	}
	if self == nil {
		return errors.New("BGP: this node is not among the known nodes")
	}
	if err := r.ensureSpeaker(ctx, self); err != nil {
		return err
	}
	peers := append([]bgp.Peer(nil), cfg.Peers...)
	if cfg.NodeMesh {
		peers = append(peers, bgp.MeshPeers(self, nodes, cfg.ASN, bgp.Peer{GracefulRestart: cfg.GracefulRestart.Enabled})...)
	}
	var errs []error
	sp := r.speaker.Load()
	if err := sp.SyncPeers(ctx, peers); err != nil {
		errs = append(errs, fmt.Errorf("BGP peers: %w", err))
	}
	if err := r.advertise(ctx, self); err != nil {
		errs = append(errs, err)
	}
	if r.converged {
		errs = append(errs, r.fib.Sync(ctx, ip.Desired{Routes: r.learnedRoutes(nodeRoutes, uplink, nil)}))
	}
	return errors.Join(errs...)
}

func (r *routing) ensureSpeaker(ctx context.Context, self *corev1.Node) error {
	cfg := r.a.cfg.BGP
	asn, routerID, problems := bgp.LocalSpeaker(self, cfg.ASN, cfg.RouterID)
	for _, p := range problems {
		r.a.reportProblem("bgp", "BGPNotAdvertised", p.Object, p.Error())
	}
	if asn == 0 || !routerID.IsValid() {
		return fmt.Errorf("BGP: node %s has no usable ASN and router ID", self.Name)
	}
	id := fmt.Sprintf("%d/%s", asn, routerID)
	old := r.speaker.Load()
	if old != nil && r.identity == id {
		return nil
	}
	if old != nil {
		r.log.Info("BGP identity changed, restarting the speaker", zap.String("from", r.identity), zap.String("to", id))
		old.Stop(true)
		r.speaker.Store(nil)
	}
	sp := bgp.NewSpeaker(bgp.Config{
		ASN: asn, RouterID: routerID, ListenPort: cfg.ListenPort,
		GracefulRestart: bgp.GracefulRestart{Enabled: cfg.GracefulRestart.Enabled, RestartTime: cfg.GracefulRestart.RestartTime},
	}, r.log, r.onLearned)
	if err := sp.Start(ctx); err != nil {
		return fmt.Errorf("starting BGP speaker: %w", err)
	}
	r.speaker.Store(sp)
	r.identity, r.started = id, time.Now()
	r.converged = !cfg.GracefulRestart.Enabled
	r.log.Info("BGP speaker started", zap.Uint32("asn", asn), zap.Stringer("router_id", routerID))
	return nil
}

// readvertise is the pass after a Service or EndpointSlice change: it
// recomputes the announcements only, without touching VPP. Before the
// speaker runs, the full sync that starts it announces.
func (r *routing) readvertise(ctx context.Context) error {
	if !r.a.cfg.BGP.Enabled || r.speaker.Load() == nil {
		return nil
	}
	self, err := r.a.src.Nodes().Get(r.a.cfg.Node.Name)
	if err != nil {
		return fmt.Errorf("BGP: node %s: %w", r.a.cfg.Node.Name, err)
	}
	return r.advertise(ctx, self)
}

// advertise hands the speaker what this node announces now.
func (r *routing) advertise(ctx context.Context, self *corev1.Node) error {
	ads, problems, err := r.advertisements(self)
	if err != nil {
		return err
	}
	for _, p := range problems {
		r.a.reportProblem("bgp", "BGPNotAdvertised", p.Object, p.Error())
	}
	if err := r.speaker.Load().SetAdvertisements(ctx, ads); err != nil {
		return fmt.Errorf("BGP advertisements: %w", err)
	}
	return nil
}

func (r *routing) advertisements(self *corev1.Node) ([]bgp.Advertisement, []bgp.Problem, error) {
	cfg := r.a.cfg
	svcs, err := r.a.src.Services().List(everything())
	if err != nil {
		return nil, nil, fmt.Errorf("listing services: %w", err)
	}
	slices, err := r.a.src.EndpointSlices().List(everything())
	if err != nil {
		return nil, nil, fmt.Errorf("listing endpoint slices: %w", err)
	}
	ads, problems := bgp.Advertisements(bgp.AdvertiseInput{
		Node: self, Services: svcs, EndpointSlices: slices,
		ServiceCIDRs: cfg.Network.ServiceCIDRs, ExternalIPCIDRs: cfg.Network.ExternalIPCIDRs,
		NextHopV4: cfg.BGP.NextHopV4, NextHopV6: cfg.BGP.NextHopV6,
		PodCIDRs: cfg.BGP.Advertise.PodCIDRs, ServiceCIDRRanges: cfg.BGP.Advertise.ServiceCIDRs,
		LoadBalancerIPs: cfg.BGP.Advertise.LoadBalancerIPs, ExternalIPs: cfg.BGP.Advertise.ExternalIPs,
	})
	return ads, problems, nil
}

// learnedRoutes turns learned next-hop sets into FIB routes. With only set,
// it converts just those prefixes, and a prefix no longer learned becomes a
// route without paths (a delete). Prefixes the node translation owns are
// left to it.
func (r *routing) learnedRoutes(nodeRoutes map[netip.Prefix]bool, uplink uint32, only map[netip.Prefix]bool) []ip.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ip.Route
	add := func(p netip.Prefix) {
		if nodeRoutes[p] {
			return
		}
		route := ip.Route{Prefix: p}
		for _, nh := range r.learned[p].NextHops {
			route.Paths = append(route.Paths, ip.Path{NextHop: nh, SwIfIndex: uplink})
		}
		if only == nil && len(route.Paths) == 0 {
			return
		}
		out = append(out, route)
	}
	if only != nil {
		for p := range only {
			add(p)
		}
	} else {
		for p := range r.learned {
			add(p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out
}

// applyLearned writes the learned changes since the last call: O(changes).
func (r *routing) applyLearned(ctx context.Context, nodeRoutes map[netip.Prefix]bool, uplink uint32) error {
	r.mu.Lock()
	pending := r.pending
	r.pending = map[netip.Prefix]bool{}
	r.mu.Unlock()
	if !r.converged || len(pending) == 0 {
		return nil // the next full sync includes them
	}
	err := r.fib.Update(ctx, r.learnedRoutes(nodeRoutes, uplink, pending))
	if errors.Is(err, ip.ErrNotSynced) {
		return nil
	}
	return err
}

// checkConverged reports whether the speaker just became converged: all
// peers have had a quiet second after their last update, or the graceful
// restart time ran out.
func (r *routing) checkConverged(ctx context.Context) bool {
	sp := r.speaker.Load()
	if r.converged || sp == nil {
		return false
	}
	st, err := sp.Status(ctx)
	if err != nil {
		return false
	}
	r.mu.Lock()
	quiet := time.Since(r.lastNew) > time.Second
	r.mu.Unlock()
	up := len(st.Peers) > 0
	for _, p := range st.Peers {
		if p.State != "established" {
			up = false
		}
	}
	if (up && quiet && time.Since(r.started) > time.Second) || time.Since(r.started) > r.a.cfg.BGP.GracefulRestart.RestartTime {
		r.converged = true
		r.log.Info("BGP converged; learned routes are now owned in full", zap.Duration("after", time.Since(r.started)))
		return true
	}
	return false
}

// stop shuts the speaker down, gracefully when configured so that peers
// keep our routes while the agent restarts.
func (r *routing) stop() {
	if sp := r.speaker.Swap(nil); sp != nil {
		sp.Stop(r.a.cfg.BGP.GracefulRestart.Enabled)
	}
}

// status implements the BGP part of the control API.
func (r *routing) status(ctx context.Context) (bgp.Status, error) {
	sp := r.speaker.Load()
	if sp == nil {
		return bgp.Status{}, errors.New("BGP is not running on this agent")
	}
	return sp.Status(ctx)
}
