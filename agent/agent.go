// Package agent wires kube-vpp's node agent: configuration, the Kubernetes
// source, the VPP connection, the drivers, the reconcile loop and the status
// and control servers.
package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"go.fd.io/govpp/api"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/source"
	"github.com/kube-vpp/kube-vpp/agent/status"
	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/cni/pods"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi"
)

// Version is the agent's release.
const Version = "0.1.0-dev"

// Agent is one node's kube-vpp agent.
type Agent struct {
	cfg     *config.Config
	log     *zap.Logger
	metrics *status.Metrics
	vpp     *vppapi.Client
	ifaces  *interfaces.Driver
	fib     *ip.Driver
	podFIB  *ip.Driver
	pods    *pods.Manager
	routing *routing
	svc     *serviceProxy // nil when services.enabled is false
	policy  *policyEngine
	src     *source.Source
	events  *eventSink
	state   syncState

	virtualPods bool
	tracePort   atomic.Uint64 // traced connections so far
}

// Messages lists every VPP message the agent uses; all are checked against
// VPP's message table at connect.
func Messages() []api.Message {
	var all []api.Message
	all = append(all, vppapi.CoreMessages()...)
	all = append(all, interfaces.Messages()...)
	all = append(all, ip.Messages()...)
	all = append(all, nat44ed.Messages()...)
	all = append(all, acl.Messages()...)
	return all
}

// Option changes how New builds an agent.
type Option func(*Agent)

// VirtualPods plumbs the manifests folder's pods in VPP only: no network
// namespace, no Linux side. For offline evaluation (package offline).
func VirtualPods() Option { return func(a *Agent) { a.virtualPods = true } }

// New builds an agent from a validated configuration.
func New(cfg *config.Config, log *zap.Logger, opts ...Option) *Agent {
	a := &Agent{cfg: cfg, log: log.With(zap.String("node", cfg.Node.Name)), metrics: status.NewMetrics()}
	for _, o := range opts {
		o(a)
	}
	a.state.problems = map[string]bool{}
	a.vpp = vppapi.New(vppapi.Options{
		Socket:         cfg.VPP.Socket,
		BackoffInitial: cfg.VPP.ConnectBackoffInitial,
		BackoffMax:     cfg.VPP.ConnectBackoffMax,
		HealthInterval: cfg.VPP.HealthInterval,
		ReplyTimeout:   cfg.VPP.ReplyTimeout,
		Messages:       Messages(),
		Logger:         a.log.Named("vpp"),
		Observer:       vppObserver{a.metrics},
	})
	a.ifaces = interfaces.New(a.vpp, a.log)
	a.fib = ip.New(a.vpp, a.log, ip.SourceNode)
	a.podFIB = ip.New(a.vpp, a.log, ip.SourcePods)
	a.routing = newRouting(a)
	if cfg.Services.Enabled {
		a.svc = newServiceProxy(a)
	}
	a.policy = newPolicyEngine(a)
	a.state.uplink = ip.NoInterface
	return a
}

// Run runs the agent until ctx ends. It returns a *vppapi.IncompatibleError
// when VPP's API does not match this binary, and any error that keeps the
// agent from serving (a socket it cannot bind, a Kubernetes source it cannot
// reach).
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	src, err := a.openSource(ctx)
	if err != nil {
		return err
	}
	a.src = src
	a.events = newEventSink(src.Client, a.cfg.Node.Name)
	defer a.events.shutdown()

	p := a.cfg.Pods
	a.pods, err = pods.New(pods.Config{
		StateDir: p.StateDir, MemifDir: p.MemifDir, VhostDir: p.VhostDir, MTU: p.MTU,
		DefaultKind: podDefaultKind(p, a.log),
		Virtual:     a.virtualPods,
		OnAttach:    a.attachPod,
		Connection: func() uint64 {
			info, err := a.vpp.Info()
			if err != nil {
				return 0 // not connected: no connection is current
			}
			return info.Connection
		},
	}, a.ifaces, a.podFIB, cluster{src: src, manifests: a.cfg.Kubernetes.Manifests != "", log: a.log}, a.log)
	if err != nil {
		return err
	}

	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	watched := []cache.SharedIndexInformer{src.Informers.Core().V1().Nodes().Informer()}
	if a.cfg.Kubernetes.Manifests != "" {
		// Standalone: the folder's pods are plumbed as kubelet would.
		watched = append(watched, src.Informers.Core().V1().Pods().Informer())
	}
	// The first sync waits for every handler to have seen the caches'
	// initial objects (HasSynced), not only for the caches to fill:
	// a service proxy resync that ran before its handlers had delivered
	// every EndpointSlice would remove the mappings of the rest.
	var regs []cache.InformerSynced
	for _, inf := range watched {
		reg, err := inf.AddEventHandler(handler)
		if err != nil {
			return fmt.Errorf("watching kubernetes objects: %w", err)
		}
		regs = append(regs, reg.HasSynced)
	}
	if a.svc != nil {
		svcRegs, err := a.svc.watch(src)
		if err != nil {
			return err
		}
		regs = append(regs, svcRegs...)
		defer a.svc.close()
	}
	if a.cfg.BGP.Enabled {
		bgpRegs, err := a.routing.watch(src)
		if err != nil {
			return err
		}
		regs = append(regs, bgpRegs...)
	}
	polRegs, err := a.policy.watch(src)
	if err != nil {
		return err
	}
	regs = append(regs, polRegs...)

	statusSrv := status.NewServer(a.cfg.HTTP.Listen, a.metrics, a.ready, a.log)
	if err := statusSrv.Listen(); err != nil {
		return fmt.Errorf("status server: %w", err)
	}
	ctlSrv := ctl.NewServer(a.cfg.Ctl.Socket, a, a.log)
	if err := ctlSrv.Listen(); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	cniSrv := cni.NewServer(a.cfg.Pods.CNISocket, a.pods, a.log)
	if err := cniSrv.Listen(); err != nil {
		return fmt.Errorf("CNI socket: %w", err)
	}
	a.log.Info("agent starting", zap.String("version", Version), zap.String("vpp_socket", a.cfg.VPP.Socket),
		zap.String("status_addr", statusSrv.Addr()), zap.String("ctl_socket", a.cfg.Ctl.Socket),
		zap.String("cni_socket", a.cfg.Pods.CNISocket))

	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel(err)
	}
	wg.Go(func() { fail(a.vpp.Run(ctx)) })
	wg.Go(func() { fail(statusSrv.Serve(ctx)) })
	wg.Go(func() { fail(ctlSrv.Serve(ctx)) })
	wg.Go(func() { fail(cniSrv.Serve(ctx)) })
	if a.svc != nil && a.cfg.Services.HealthzBindAddress != "" {
		wg.Go(func() { a.svc.serveProxyHealth(ctx, a, a.cfg.Services.HealthzBindAddress) })
	}
	wg.Go(func() {
		if err := src.Start(ctx); err != nil {
			fail(fmt.Errorf("kubernetes source: %w", err))
			return
		}
		if !cache.WaitForCacheSync(ctx.Done(), regs...) {
			return // ctx ended
		}
		a.log.Info("kubernetes caches synced")
		poke()
		fail(a.reconcileLoop(ctx, changed))
	})
	wg.Wait()
	a.routing.stop()
	src.Shutdown()
	return firstErr
}

func (a *Agent) openSource(ctx context.Context) (*source.Source, error) {
	k := a.cfg.Kubernetes
	if k.Manifests != "" {
		onError := func(err error) { a.metrics.CountError("manifest") }
		src, err := source.Manifests(ctx, k.Manifests, k.ResyncPeriod, a.log.Named("manifests"), onError)
		if err != nil {
			return nil, fmt.Errorf("manifests folder %s: %w", k.Manifests, err)
		}
		return src, nil
	}
	src, err := source.Live(k.Kubeconfig, k.ResyncPeriod)
	if err != nil {
		return nil, fmt.Errorf("kubernetes API: %w", err)
	}
	return src, nil
}

// Version implements ctl.Backend.
func (a *Agent) Version(context.Context) ctl.VersionInfo {
	v := ctl.VersionInfo{Agent: Version, BuiltForVPP: vppapi.BuiltFor}
	if info, err := a.vpp.Info(); err == nil {
		v.VPPConnected, v.VPP, v.VPPBuildDate, v.VPPPID = true, info.Version, info.BuildDate, info.PID
	}
	return v
}

// BGP implements ctl.Backend.
func (a *Agent) BGP(ctx context.Context) (bgp.Status, error) { return a.routing.status(ctx) }

// Pods implements ctl.Backend.
func (a *Agent) Pods(context.Context) ([]pods.PodStatus, error) {
	if a.pods == nil {
		return nil, errors.New("pod networking is not running yet")
	}
	return a.pods.Pods(), nil
}

// CLI implements ctl.Backend.
func (a *Agent) CLI(ctx context.Context, cmd string) (string, error) { return a.vpp.CLI(ctx, cmd) }

func everything() labels.Selector { return labels.Everything() }

// reportProblem logs a problem with an object once, counts it under kind
// and, when the object is a Service, a Pod, a Node or a NetworkPolicy
// ("service ns/name", "pod ns/name", "node name", "networkpolicy ns/name"),
// records it as a Warning Event with reason on that object.
func (a *Agent) reportProblem(kind, reason, object, msg string) {
	if !a.firstReport(object + ": " + msg) {
		return
	}
	a.metrics.CountError(kind)
	a.log.Warn("ignoring bad data", zap.String("kind", kind), zap.String("object", object), zap.String("problem", msg))
	if ref := objectRef(object); ref != nil {
		a.events.warn(ref, reason, msg)
	}
}

func objectRef(object string) *corev1.ObjectReference {
	kind, name, _ := strings.Cut(object, " ")
	switch kind {
	case "service":
		ns, n, ok := strings.Cut(name, "/")
		if ok {
			return &corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: ns, Name: n}
		}
	case "pod":
		ns, n, ok := strings.Cut(name, "/")
		if ok {
			return &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: n}
		}
	case "node":
		if name != "" {
			return &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: name}
		}
	case "networkpolicy":
		ns, n, ok := strings.Cut(name, "/")
		if ok {
			return &corev1.ObjectReference{Kind: "NetworkPolicy", APIVersion: "networking.k8s.io/v1", Namespace: ns, Name: n}
		}
	}
	return nil
}

// firstReport is true the first time key is reported, so that a problem
// that persists across syncs is logged once.
func (a *Agent) firstReport(key string) bool {
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	if a.state.problems[key] {
		return false
	}
	a.state.problems[key] = true
	return true
}
