package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-vpp/kube-vpp/agent/source"
	"github.com/kube-vpp/kube-vpp/services"
	"github.com/kube-vpp/kube-vpp/services/healthcheck"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
)

// serviceProxy runs the service proxy: informer events feed the proxy,
// the reconcile loop applies the services that changed, and a full sync
// (VPP new or back) programs them all.
type serviceProxy struct {
	nat     *nat44ed.Driver
	fib     *ip.Driver
	health  *healthcheck.Servers
	proxy   *services.Proxy
	changed chan struct{}
	log     *zap.Logger
	// proxyHealth is kube-proxy's own /healthz: healthy while changes
	// reach VPP in time.
	proxyHealth *healthcheck.ProxyHealth

	mu   sync.Mutex
	conn uint64 // the VPP connection the proxy last synced on
}

func newServiceProxy(a *Agent) *serviceProxy {
	s := &serviceProxy{
		nat:     nat44ed.New(a.vpp, a.log),
		fib:     ip.New(a.vpp, a.log, ip.SourceServices),
		health:  healthcheck.New(a.cfg.Services.HealthCheckAddresses, a.log),
		changed: make(chan struct{}, 1),
		log:     a.log.Named("services"),
	}
	s.proxy = services.NewProxy(s.nat, s.fib, s.health, a.log)
	s.proxyHealth = healthcheck.NewProxyHealth(healthcheck.DefaultProxyHealthTimeout, a.selfNode, nil)
	return s
}

// poke wakes the reconcile loop for a service change, which waits to be
// programmed from now on.
func (s *serviceProxy) poke() {
	s.proxyHealth.QueuedUpdate()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// watch feeds the proxy from the Service and EndpointSlice informers; it
// returns the handlers' HasSynced, true once each has been handed its
// informer's initial objects.
func (s *serviceProxy) watch(src *source.Source) ([]cache.InformerSynced, error) {
	svcs := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.setService(o) },
		UpdateFunc: func(_, o any) { s.setService(o) },
		DeleteFunc: func(o any) {
			if svc, ok := deleted(o).(*corev1.Service); ok {
				s.proxy.DeleteService(svc.Namespace, svc.Name)
				s.poke()
			}
		},
	}
	eps := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.setSlice(o) },
		UpdateFunc: func(_, o any) { s.setSlice(o) },
		DeleteFunc: func(o any) {
			if es, ok := deleted(o).(*discoveryv1.EndpointSlice); ok {
				s.proxy.DeleteEndpointSlice(es)
				s.poke()
			}
		},
	}
	sr, err := src.Informers.Core().V1().Services().Informer().AddEventHandler(svcs)
	if err != nil {
		return nil, fmt.Errorf("watching services: %w", err)
	}
	er, err := src.Informers.Discovery().V1().EndpointSlices().Informer().AddEventHandler(eps)
	if err != nil {
		return nil, fmt.Errorf("watching endpointslices: %w", err)
	}
	return []cache.InformerSynced{sr.HasSynced, er.HasSynced}, nil
}

// deleted is the object of a delete notification, which may come as a
// tombstone when the watch missed the delete itself.
func deleted(o any) any {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return o
}

func (s *serviceProxy) setService(o any) {
	if svc, ok := o.(*corev1.Service); ok {
		s.proxy.SetService(svc)
		s.poke()
	}
}

func (s *serviceProxy) setSlice(o any) {
	if es, ok := o.(*discoveryv1.EndpointSlice); ok {
		s.proxy.SetEndpointSlice(es)
		s.poke()
	}
}

// nodePortAddresses are the node's IPv4 InternalIP and ExternalIP
// addresses inside the configured CIDRs (all of them without any).
func nodePortAddresses(self *corev1.Node, cidrs []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, a := range nodeIPs(self) {
		if a.Is4() && (len(cidrs) == 0 || slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(a) })) {
			out = append(out, a)
		}
	}
	return out
}

// natBase is the NAT44-ED base configuration: every pod interface inside
// and outside, the uplink outside, and the node's IPv4 pod gateway (held
// by the node loopback, routed back to this node by every other one) as
// the twice-NAT address of hairpin and externalTrafficPolicy Cluster.
func (a *Agent) natBase(self *corev1.Node, uplink uint32) nat44ed.Base {
	var base nat44ed.Base
	if uplink != ip.NoInterface {
		base.Interfaces = append(base.Interfaces, nat44ed.Interface{SwIfIndex: uplink, Outside: true})
	}
	if a.pods != nil {
		for _, p := range a.pods.Pods() {
			for _, l := range p.Interfaces {
				base.Interfaces = append(base.Interfaces, nat44ed.Interface{SwIfIndex: l.SwIfIndex, Inside: true, Outside: true})
			}
		}
	}
	if a.pods != nil {
		for _, p := range a.pods.Pods() {
			base.Identities = append(base.Identities, podIdentities(p.IPs)...)
		}
	}
	for _, gw := range podGateways(self) {
		if gw.Is4() {
			base.TwiceNATAddresses = []netip.Addr{gw}
			break
		}
	}
	return base
}

// sync brings the service proxy in line: the NAT base, then every service
// when VPP is new to the proxy, else only the services that changed.
func (s *serviceProxy) sync(ctx context.Context, a *Agent, self *corev1.Node, uplink uint32) error {
	if self == nil {
		return nil // nodenet reported why
	}
	if err := s.nat.Configure(ctx, a.natBase(self, uplink)); err != nil {
		return fmt.Errorf("NAT44-ED configuration: %w", err)
	}
	s.proxy.SetConfig(services.Config{
		Node:              a.cfg.Node.Name,
		NodePortAddresses: nodePortAddresses(self, a.cfg.Services.NodePortAddresses),
		ExternalIPCIDRs:   a.cfg.Network.ExternalIPCIDRs,
		Zone:              self.Labels[corev1.LabelTopologyZone],
	})
	conn := a.connection()
	s.mu.Lock()
	fresh := s.conn != conn || !s.proxy.Synced()
	s.mu.Unlock()
	var problems []services.ServiceProblem
	var err error
	mark := s.proxyHealth.Begin()
	defer func() {
		if err == nil {
			s.proxyHealth.Updated(mark)
		}
	}()
	if fresh {
		problems, err = s.proxy.Resync(ctx)
		if err == nil {
			s.mu.Lock()
			s.conn = conn
			s.mu.Unlock()
		}
	} else {
		problems, err = s.proxy.Apply(ctx)
	}
	a.reportServiceProblems(problems)
	return err
}

// apply programs the services that changed since the last sync; it is the
// fast path of one endpoint change. It returns errNeedFullSync when the
// proxy has not synced on the current VPP connection.
func (s *serviceProxy) apply(ctx context.Context, a *Agent) error {
	s.mu.Lock()
	ok := s.conn == a.connection() && s.proxy.Synced()
	s.mu.Unlock()
	if !ok {
		return errNeedFullSync
	}
	mark := s.proxyHealth.Begin()
	problems, err := s.proxy.Apply(ctx)
	a.reportServiceProblems(problems)
	if err == nil {
		s.proxyHealth.Updated(mark)
	}
	return err
}

// selfNode is this node's Node from the cache, nil when unknown.
func (a *Agent) selfNode() *corev1.Node {
	if a.src == nil {
		return nil
	}
	n, err := a.src.Nodes().Get(a.cfg.Node.Name)
	if err != nil {
		return nil
	}
	return n
}

// serveProxyHealth serves kube-proxy's /healthz and /livez on addr until
// ctx ends. A port it cannot bind is a Warning Event on the Node, as
// kube-proxy's FailedToStartProxierHealthcheck, and is tried again.
func (s *serviceProxy) serveProxyHealth(ctx context.Context, a *Agent, addr string) {
	const retry = 5 * time.Second
	for {
		err := s.proxyHealth.Serve(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		a.reportProblem("node", "FailedToStartProxierHealthcheck", "node "+a.cfg.Node.Name,
			fmt.Sprintf("%v; trying again in %s", err, retry))
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}

var errNeedFullSync = errors.New("services need a full sync first")

func (a *Agent) reportServiceProblems(problems []services.ServiceProblem) {
	for _, p := range problems {
		reason := p.Reason
		if reason == "" {
			reason = "InvalidService"
		}
		a.reportProblem("service", reason, "service "+p.Service, p.Problem.Error())
	}
}

// connection is the number of the current VPP connection, 0 when none.
func (a *Agent) connection() uint64 {
	info, err := a.vpp.Info()
	if err != nil {
		return 0
	}
	return info.Connection
}

func (s *serviceProxy) close() {
	if err := s.health.Close(); err != nil {
		s.log.Warn("closing health check servers", zap.Error(err))
	}
}

// sctp is the one protocol beyond TCP, UDP and ICMP pods commonly use;
// without an identity mapping NAT44-ED drops it (nat44ed.Identity).
const sctp = 132

// podIdentities are the identity mappings a pod's IPv4 addresses need.
func podIdentities(ips []netip.Addr) []nat44ed.Identity {
	var out []nat44ed.Identity
	for _, ip := range ips {
		if ip.Is4() {
			out = append(out, nat44ed.Identity{Addr: ip, Protocol: sctp})
		}
	}
	return out
}

// attachPod is the pod manager's hook for a new pod's VPP interfaces: they
// get their NAT44-ED roles and their policy tables before the pod's first
// packet, not at the next sync.
func (a *Agent) attachPod(ctx context.Context, pod string, ips []netip.Addr, swIfIndexes []uint32) error {
	if err := a.attachNAT(ctx, pod, ips, swIfIndexes); err != nil {
		return err
	}
	return a.policy.attach(ctx, a, pod, ips, swIfIndexes)
}

// attachNAT gives a new pod's interfaces their NAT44-ED roles and its
// addresses their identity mappings.
func (a *Agent) attachNAT(ctx context.Context, pod string, ips []netip.Addr, swIfIndexes []uint32) error {
	if a.svc == nil {
		return nil
	}
	ifs := make([]nat44ed.Interface, 0, len(swIfIndexes))
	for _, i := range swIfIndexes {
		ifs = append(ifs, nat44ed.Interface{SwIfIndex: i, Inside: true, Outside: true})
	}
	if err := a.svc.nat.Attach(ctx, ifs, podIdentities(ips)); err != nil {
		return fmt.Errorf("pod %s: NAT44-ED roles: %w", pod, err)
	}
	return nil
}
