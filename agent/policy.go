package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/source"
	"github.com/kube-vpp/kube-vpp/policy"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

// policyEngine enforces NetworkPolicies with VPP ACLs: it compiles the
// cluster's policies, places the tables on this node's pod interfaces
// (policy.Place says where and why) and writes only what changed.
type policyEngine struct {
	acl     *acl.Driver
	changed chan struct{}
	log     *zap.Logger

	// syncMu serialises whole syncs (the reconcile loop's and a CNI ADD's),
	// so that an older placement is never written after a newer one.
	syncMu sync.Mutex
	// attaching are pods being plumbed: the pod manager does not list them
	// yet, and their Pod objects may not show their IPs yet.
	attaching map[string]attachment

	mu     sync.Mutex
	conn   uint64            // the VPP connection the ACLs were last synced on
	last   policy.Placement  // what VPP holds
	owners map[uint32]string // pod of each bound interface, for trace
	// viaServices: some local pod's egress is isolated, so its table opens
	// service frontends and must follow endpoint changes.
	viaServices atomic.Bool
	// firewalls is the generation of the service firewalls last placed.
	firewalls atomic.Uint64
}

// attachment is a pod being plumbed: its addresses and VPP interfaces.
type attachment struct {
	ips         []netip.Addr
	swIfIndexes []uint32
}

func newPolicyEngine(a *Agent) *policyEngine {
	return &policyEngine{acl: acl.New(a.vpp, a.log), changed: make(chan struct{}, 1), log: a.log.Named("policy"),
		attaching: map[string]attachment{}}
}

// attach places a pod being plumbed before its first packet: a pod that
// policies isolate must not start unrestricted until the next sync. An
// error fails the pod's ADD (fail closed).
func (p *policyEngine) attach(ctx context.Context, a *Agent, pod string, ips []netip.Addr, swIfIndexes []uint32) error {
	p.syncMu.Lock()
	p.attaching[pod] = attachment{ips: ips, swIfIndexes: swIfIndexes}
	p.syncMu.Unlock()
	if err := a.syncPolicy(ctx); err != nil {
		p.syncMu.Lock()
		delete(p.attaching, pod) // the ADD fails and undoes the pod
		p.syncMu.Unlock()
		return fmt.Errorf("pod %s: policy tables: %w", pod, err)
	}
	return nil
}

func (p *policyEngine) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// serviceChanged re-places after a service change only when a table
// depends on services: an egress table names VIPs, or the services'
// firewalls (generation fwGen) are not the ones placed. An
// endpoint change must not cost a compile of every policy.
func (p *policyEngine) serviceChanged(fwGen uint64) {
	if p.viaServices.Load() || p.firewalls.Load() != fwGen {
		p.poke()
	}
}

// watch marks policy dirty on any Pod, Namespace or NetworkPolicy change.
func (p *policyEngine) watch(src *source.Source) ([]cache.InformerSynced, error) {
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	var synced []cache.InformerSynced
	for _, inf := range []cache.SharedIndexInformer{
		src.Informers.Core().V1().Pods().Informer(),
		src.Informers.Core().V1().Namespaces().Informer(),
		src.Informers.Networking().V1().NetworkPolicies().Informer(),
	} {
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return nil, fmt.Errorf("watching policy inputs: %w", err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return synced, nil
}

// sync compiles and places every policy and writes the difference to VPP:
// everything when VPP is new to the engine, else only the ACLs and
// bindings that changed.
func (p *policyEngine) sync(ctx context.Context, a *Agent, self *corev1.Node) error {
	if self == nil || a.pods == nil {
		return nil
	}
	// Until the pod manager has reconciled with this VPP connection it
	// does not know the pods' interfaces: a placement now would unbind
	// them all (and a restarted agent would rewrite every table). The full
	// sync places them right after.
	if !a.pods.Synced() {
		return nil
	}
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	in, err := a.policyInput()
	if err != nil {
		return err
	}
	local := a.localPods()
	in.Pods, local = p.withAttaching(in.Pods, local)
	out := policy.Compile(in)
	for _, pr := range out.Problems {
		a.reportProblem("policy", "InvalidNetworkPolicy", "networkpolicy "+pr.Policy, pr.Error())
	}
	a.reportSCTPPorts(out)
	egress := false
	for _, lp := range local {
		egress = egress || out.Pods[lp.Pod].Egress.Isolated
	}
	p.viaServices.Store(egress)
	owners := map[uint32]string{}
	for _, lp := range local {
		for _, i := range lp.SwIfIndexes {
			owners[i] = lp.Pod
		}
	}
	fwGen, firewalls := a.serviceFirewalls()
	var uplinks []uint32
	if up := a.state.uplinkIndex(); up != ip.NoInterface {
		uplinks = []uint32{up}
	}
	place := policy.Place(policy.PlaceInput{
		Rules:         out.Pods,
		Local:         local,
		NodeAddresses: a.nodeAddresses(self),
		Frontends:     a.serviceFrontends(),
		Firewalls:     firewalls,
		Uplinks:       uplinks,
	})

	conn := a.connection()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != conn {
		if err := p.acl.Sync(ctx, place.Desired); err != nil {
			return fmt.Errorf("ACLs: %w", err)
		}
		p.conn, p.last, p.owners = conn, place, owners
		p.firewalls.Store(fwGen)
		return nil
	}
	acls, bindings := acl.Diff(p.last.Desired, place.Desired)
	if len(acls) == 0 && len(bindings) == 0 {
		p.last, p.owners = place, owners
		p.firewalls.Store(fwGen)
		return nil
	}
	if err := p.acl.Update(ctx, acls, bindings); err != nil {
		return fmt.Errorf("ACLs: %w", err)
	}
	p.last, p.owners = place, owners
	p.firewalls.Store(fwGen)
	p.log.Debug("policy tables updated", zap.Int("acls", len(acls)), zap.Int("bindings", len(bindings)))
	return nil
}

// reportSCTPPorts warns on every policy allowing SCTP by port: VPP's ACL
// plugin reads ports for TCP and UDP only (acl_fill_5tuple_l4_and_pkt_data),
// an SCTP packet matches as port 0, so such a rule allows nothing; an SCTP
// allow without ports opens SCTP from its peers.
func (a *Agent) reportSCTPPorts(out policy.Output) {
	seen := map[string]bool{}
	for _, pr := range out.Pods {
		for _, d := range []policy.Direction{pr.Ingress, pr.Egress} {
			for _, r := range d.Allow {
				if r.Protocol != policy.SCTP || r.Ports.Any() || seen[r.Policy] {
					continue
				}
				seen[r.Policy] = true
				a.reportProblem("policy", "SCTPPortsNotEnforced", "networkpolicy "+r.Policy,
					fmt.Sprintf("SCTP port %s cannot be enforced: VPP's ACLs read no SCTP ports, so the rule allows no SCTP; allow SCTP without ports to open it from these peers", r.Ports))
			}
		}
	}
}

// withAttaching adds the pods being plumbed: as local pods with their
// interfaces, and with their addresses on their Pod objects when those do
// not show them yet (Compile skips pods without an address). A pod the
// manager lists now is attached and leaves the set. p.syncMu is held.
func (p *policyEngine) withAttaching(pods []*corev1.Pod, local []policy.LocalPod) ([]*corev1.Pod, []policy.LocalPod) {
	if len(p.attaching) == 0 {
		return pods, local
	}
	for _, lp := range local {
		delete(p.attaching, lp.Pod)
	}
	out := slices.Clone(pods)
	for i, pod := range out {
		att, ok := p.attaching[pod.Namespace+"/"+pod.Name]
		if !ok {
			continue
		}
		local = append(local, policy.LocalPod{Pod: pod.Namespace + "/" + pod.Name, SwIfIndexes: att.swIfIndexes})
		if len(pod.Status.PodIPs) == 0 && pod.Status.PodIP == "" {
			c := pod.DeepCopy()
			for _, ip := range att.ips {
				c.Status.PodIPs = append(c.Status.PodIPs, corev1.PodIP{IP: ip.String()})
			}
			if len(att.ips) > 0 {
				c.Status.PodIP = att.ips[0].String()
			}
			out[i] = c
		}
	}
	return out, local
}

func (a *Agent) policyInput() (policy.Input, error) {
	var in policy.Input
	var err error
	if in.Pods, err = a.src.Pods().List(everything()); err != nil {
		return in, fmt.Errorf("listing pods: %w", err)
	}
	if in.Namespaces, err = a.src.Namespaces().List(everything()); err != nil {
		return in, fmt.Errorf("listing namespaces: %w", err)
	}
	if in.Policies, err = a.src.NetworkPolicies().List(everything()); err != nil {
		return in, fmt.Errorf("listing networkpolicies: %w", err)
	}
	return in, nil
}

// localPods are this node's plumbed pods with their VPP interfaces.
func (a *Agent) localPods() []policy.LocalPod {
	var out []policy.LocalPod
	for _, p := range a.pods.Pods() {
		lp := policy.LocalPod{Pod: p.Namespace + "/" + p.Name}
		for _, l := range p.Interfaces {
			lp.SwIfIndexes = append(lp.SwIfIndexes, l.SwIfIndex)
		}
		if len(lp.SwIfIndexes) > 0 {
			out = append(out, lp)
		}
	}
	return out
}

// nodeAddresses are the sources a pod always accepts (Kubernetes: traffic
// from the pod's node): the node's own addresses and its pod gateways,
// which are also the source of hairpinned and masqueraded connections.
func (a *Agent) nodeAddresses(self *corev1.Node) []netip.Addr {
	out := append(nodeIPs(self), podGateways(self)...)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// serviceFrontends are the programmed service frontends with their
// backends: egress tables open a VIP whose backends the policy allows.
func (a *Agent) serviceFrontends() []policy.Frontend {
	if a.svc == nil {
		return nil
	}
	var out []policy.Frontend
	for _, s := range a.svc.proxy.Services() {
		for _, f := range s.Frontends {
			if len(f.Backends) == 0 {
				continue
			}
			out = append(out, policy.Frontend{Addr: f.Address, Protocol: uint8(f.Protocol), Service: s.Service, Backends: f.Backends})
		}
	}
	return out
}

// serviceFirewalls are the service frontends kube-proxy would filter
// (source ranges; Local traffic policies without a local endpoint), and
// their generation.
func (a *Agent) serviceFirewalls() (uint64, []policy.Firewall) {
	if a.svc == nil {
		return 0, nil
	}
	gen, fws := a.svc.proxy.Firewalls()
	out := make([]policy.Firewall, len(fws))
	for i, f := range fws {
		out[i] = policy.Firewall{Addr: f.Address, Protocol: uint8(f.Protocol), Service: f.Service, Sources: f.Sources,
			Why: f.Why, OutsideOnly: f.OutsideOnly}
	}
	return gen, out
}

// firewallGeneration is the service firewalls' generation alone.
func (a *Agent) firewallGeneration() uint64 {
	if a.svc == nil {
		return 0
	}
	return a.svc.proxy.FirewallGeneration()
}

// Policies implements ctl.Backend: this node's pods with their tables.
func (a *Agent) Policies(context.Context) ([]ctl.PodPolicy, error) {
	if a.policy == nil {
		return nil, fmt.Errorf("policy enforcement is not running")
	}
	a.policy.mu.Lock()
	defer a.policy.mu.Unlock()
	var out []ctl.PodPolicy
	for pod, t := range a.policy.last.Tables {
		pp := ctl.PodPolicy{Pod: pod, Ingress: t.Ingress, Egress: t.Egress, Firewall: t.Firewall, Policies: t.Policies}
		if i, ok := a.policy.acl.Index(t.Firewall); ok && t.Firewall != "" {
			pp.FirewallACL = &i
		}
		if i, ok := a.policy.acl.Index(t.Ingress); ok && t.Ingress != "" {
			pp.IngressACL = &i
		}
		if i, ok := a.policy.acl.Index(t.Egress); ok && t.Egress != "" {
			pp.EgressACL = &i
		}
		out = append(out, pp)
	}
	slices.SortFunc(out, func(x, y ctl.PodPolicy) int { return strings.Compare(x.Pod, y.Pod) })
	return out, nil
}

// defaultDeny names whose isolation denied a packet that no rule matched
// on interface swIfIndex: the pod owning that interface's table in the
// node's direction (output: its ingress; input: its egress); p.mu is held.
func (p *policyEngine) defaultDeny(node string, swIfIndex uint32) string {
	pod, ok := p.owners[swIfIndex]
	if !ok {
		return "no rule matched: default deny"
	}
	t := p.last.Tables[pod]
	dir := "egress"
	if strings.Contains(node, "-out-") {
		dir = "ingress"
	}
	return fmt.Sprintf("default deny: %s of %s is isolated by %s", dir, pod, strings.Join(t.Policies, ", "))
}

// why names the origin of an ACL decision for kube-vppctl trace.
func (p *policyEngine) why(node string, swIfIndex uint32, tag string, rule int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rule < 0 {
		return p.defaultDeny(node, swIfIndex)
	}
	origins := p.last.Origins[tag]
	if rule >= len(origins) {
		return fmt.Sprintf("ACL %s rule %d", tag, rule)
	}
	o := origins[rule]
	switch {
	case o.Note != "":
		return o.Note
	case o.Policy != "":
		return fmt.Sprintf("networkpolicy %s %s[%d]", o.Policy, o.Direction, o.Index)
	}
	return fmt.Sprintf("ACL %s rule %d", tag, rule)
}
