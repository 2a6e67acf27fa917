package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/nodenet"
	"github.com/kube-vpp/kube-vpp/cni/pods"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

// syncState is what readiness and `kube-vppctl status` report.
type syncState struct {
	mu       sync.Mutex
	syncs    int
	ok       bool // the last sync succeeded
	everOK   bool
	last     time.Time
	lastErr  error
	problems map[string]bool // problems already reported

	// What the last full sync computed, for learned-route updates between
	// full syncs.
	routes map[netip.Prefix]bool
	uplink uint32
}

func (s *syncState) setRouting(routes map[netip.Prefix]bool, uplink uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes, s.uplink = routes, uplink
}

func (s *syncState) nodeRoutes() map[netip.Prefix]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes
}

func (s *syncState) uplinkIndex() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uplink
}

func (s *syncState) record(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	s.last = time.Now()
	s.lastErr = err
	s.ok = err == nil
	if s.ok {
		s.everOK = true
	}
}

// ready is nil once VPP is connected and one full sync has succeeded since
// the agent started. A later failed sync does not unready the agent: VPP
// keeps forwarding what was programmed.
func (a *Agent) ready() error {
	if !a.vpp.Connected() {
		return errors.New("not connected to VPP")
	}
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	if !a.state.everOK {
		if a.state.lastErr != nil {
			return fmt.Errorf("first sync not done: %w", a.state.lastErr)
		}
		return errors.New("first sync not done")
	}
	return nil
}

// Status implements ctl.Backend.
func (a *Agent) Status(context.Context) ctl.StatusInfo {
	st := ctl.StatusInfo{VPPConnected: a.vpp.Connected()}
	if err := a.ready(); err != nil {
		st.Reason = err.Error()
	} else {
		st.Ready = true
	}
	a.state.mu.Lock()
	defer a.state.mu.Unlock()
	st.Syncs, st.LastSync = a.state.syncs, a.state.last
	if a.state.lastErr != nil {
		st.LastSyncError = a.state.lastErr.Error()
	}
	return st
}

// reconcileLoop re-programs VPP whenever Kubernetes objects change or VPP
// (re)connects. Bursts of triggers coalesce into one sync; a failed sync is
// retried with backoff until one succeeds or a new trigger arrives. Learned
// BGP routes are written as they change, without a full sync.
func (a *Agent) reconcileLoop(ctx context.Context, changed <-chan struct{}) error {
	const (
		settle     = 20 * time.Millisecond
		retryFirst = 500 * time.Millisecond
		retryMax   = 30 * time.Second
	)
	retry := time.NewTimer(0)
	<-retry.C
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	backoff := retryFirst
	// failed logs a failure and schedules a full sync with backoff; it
	// reports whether the loop is stopping instead (ctx is done).
	failed := func(msg string, err error) (stopping bool) {
		if ctx.Err() != nil {
			return true
		}
		a.log.Warn(msg, zap.Error(err), zap.Duration("retry_in", backoff))
		retry.Reset(backoff)
		backoff = min(backoff*2, retryMax)
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-a.vpp.Resync():
			// VPP is new or back. The pod manager sees the new connection
			// itself and re-reads VPP at this sync.
		case <-retry.C:
		case <-a.servicesChanged():
			// One service or endpoint change: only those services are
			// translated and programmed, not a full sync.
			if !a.vpp.Connected() {
				continue
			}
			err := a.svc.apply(ctx, a)
			if err == nil {
				// Egress tables open the VIPs whose backends they allow,
				// and the service firewalls follow the services.
				a.policy.serviceChanged(a.firewallGeneration())
				continue
			}
			if !errors.Is(err, errNeedFullSync) {
				if failed("applying service changes failed, will retry", err) {
					return nil
				}
				continue
			}
		case <-a.policy.changed:
			// Pods, namespaces or policies changed: only the ACLs and
			// bindings that differ are written.
			if !a.vpp.Connected() {
				continue
			}
			if err := a.syncPolicy(ctx); err != nil && failed("applying policy changes failed, will retry", err) {
				return nil
			}
			continue
		case <-a.routing.changed:
			if a.vpp.Connected() {
				if err := a.routing.applyLearned(ctx, a.state.nodeRoutes(), a.state.uplinkIndex()); err != nil {
					a.log.Warn("installing learned routes failed; a full sync follows", zap.Error(err))
					retry.Reset(0)
				}
			}
			continue
		case <-a.routing.adsChanged:
			// A Service or EndpointSlice change that can move an
			// announcement: BGP only, VPP is not involved.
			if err := a.routing.readvertise(ctx); err != nil && failed("updating BGP advertisements failed; a full sync follows", err) {
				return nil
			}
			continue
		case <-tick.C:
			if !a.routing.checkConverged(ctx) {
				continue
			}
		}
		// Let an informer burst land before computing the desired state.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(settle):
		}
		if !a.vpp.Connected() {
			continue // the client signals Resync once it is back
		}
		if err := a.syncOnce(ctx); err != nil {
			if failed("sync failed, will retry", err) {
				return nil
			}
			continue
		}
		backoff = retryFirst
	}
}

// syncOnce computes the desired state from the informers' caches and lets
// each driver converge VPP to it, in dependency order: interfaces exist
// before routes point at them.
func (a *Agent) syncOnce(ctx context.Context) (err error) {
	defer func() { a.state.record(err) }()

	nodes, err := a.src.Nodes().List(everything())
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	uplink := ip.NoInterface
	if name := a.cfg.Uplink.Interface; name != "" {
		idx, found, err := a.ifaces.Lookup(ctx, name)
		switch {
		case err != nil:
			return fmt.Errorf("looking up uplink %s: %w", name, err)
		case !found:
			a.reportProblem("config", "", "uplink "+name, fmt.Sprintf("uplink interface %q not found in VPP; next hops resolve through the FIB", name))
		default:
			uplink = idx
		}
	}
	out := nodenet.Translate(nodenet.Input{NodeName: a.cfg.Node.Name, Nodes: nodes, Uplink: uplink})
	for _, p := range out.Problems {
		a.reportProblem("node", "InvalidNodeNetwork", "node "+p.Node, p.Error())
	}
	nodeRoutes := map[netip.Prefix]bool{}
	for _, r := range out.FIB.Routes {
		nodeRoutes[r.Prefix] = true
	}
	a.state.setRouting(nodeRoutes, uplink)

	start := time.Now()
	idx, ifErr := a.ifaces.Sync(ctx, out.Interfaces)
	a.metrics.ObserveSync("interfaces", time.Since(start), ifErr)

	start = time.Now()
	fibErr := a.fib.Sync(ctx, out.FIB)
	a.metrics.ObserveSync("ip", time.Since(start), fibErr)

	start = time.Now()
	podErr := a.syncPods(ctx, selfNode(nodes, a.cfg.Node.Name), idx)
	a.metrics.ObserveSync("pods", time.Since(start), podErr)

	var svcErr error
	if a.svc != nil {
		start = time.Now()
		svcErr = a.svc.sync(ctx, a, selfNode(nodes, a.cfg.Node.Name), uplink)
		a.metrics.ObserveSync("services", time.Since(start), svcErr)
	}

	start = time.Now()
	polErr := a.syncPolicy(ctx)
	a.metrics.ObserveSync("policy", time.Since(start), polErr)

	start = time.Now()
	bgpErr := a.routing.sync(ctx, selfNode(nodes, a.cfg.Node.Name), nodes, nodeRoutes, uplink)
	a.metrics.ObserveSync("bgp", time.Since(start), bgpErr)

	return errors.Join(ifErr, fibErr, podErr, svcErr, polErr, bgpErr)
}

// syncPolicy brings the ACLs in line with the cluster's policies.
func (a *Agent) syncPolicy(ctx context.Context) error {
	nodes, err := a.src.Nodes().List(everything())
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	return a.policy.sync(ctx, a, selfNode(nodes, a.cfg.Node.Name))
}

// servicesChanged signals service changes; nil (never ready) when the
// service proxy is off.
func (a *Agent) servicesChanged() <-chan struct{} {
	if a.svc == nil {
		return nil
	}
	return a.svc.changed
}

func selfNode(nodes []*corev1.Node, name string) *corev1.Node {
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// syncPods gives the pod manager the node's network, reconciles the pods
// with VPP when VPP is new to the agent (start, reconnect) and, with a
// manifests folder, plumbs the folder's pods.
func (a *Agent) syncPods(ctx context.Context, self *corev1.Node, idx interfaces.Indexes) error {
	loop, ok := idx[nodenet.LoopbackTag]
	if self == nil || !ok {
		return nil // nodenet reported why; CNI ADDs answer "try again later"
	}
	n := pods.NodeNetwork{Loopback: loop}
	for _, c := range self.Spec.PodCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			n.PodCIDRs = append(n.PodCIDRs, p)
		}
	}
	if len(n.PodCIDRs) == 0 {
		return nil
	}
	if err := a.pods.SetNode(n); err != nil {
		a.reportProblem("node", "InvalidNodeNetwork", "node "+self.Name, err.Error())
		return nil
	}
	if !a.pods.Synced() {
		if err := a.pods.Resync(ctx); err != nil {
			return err
		}
	}
	if a.cfg.Kubernetes.Manifests == "" {
		return nil
	}
	if os.Geteuid() != 0 && !a.virtualPods {
		if a.firstReport("standalone pods need root") {
			a.log.Warn("not plumbing the folder's pods: network namespaces and pod interfaces need root")
		}
		return nil
	}
	list, err := a.src.Pods().List(everything())
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	for pod, err := range a.pods.Standalone(ctx, a.cfg.Node.Name, list) {
		a.reportProblem("pod", "PodNetworkFailed", "pod "+pod, err.Error())
	}
	return nil
}
