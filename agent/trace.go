package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/services"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vppapi"
)

// Traced connections take source ports from Linux's ephemeral range
// (32768-60999), one after the other across traces, so that a new trace
// is a new connection rather than a packet of an earlier trace's session.
const (
	traceFirstPort = 32768
	tracePorts     = 60999 - traceFirstPort + 1
)

// Services implements ctl.Backend.
func (a *Agent) Services(context.Context) ([]services.Status, error) {
	if a.svc == nil {
		return nil, errors.New("the service proxy is off (services.enabled is false)")
	}
	list := a.svc.proxy.Services()
	for i := range list {
		list[i].Mappings = a.svc.nat.Programmed(list[i].Service)
	}
	return list, nil
}

// Events implements ctl.Backend.
func (a *Agent) Events(context.Context) []ctl.EventInfo {
	if a.events == nil {
		return nil
	}
	return a.events.list()
}

// Trace implements ctl.Backend: it evaluates req.Count connections from
// req.From through VPP's graph and reports each packet's path.
func (a *Agent) Trace(ctx context.Context, req ctl.TraceRequest) (ctl.TraceReply, error) {
	if err := req.Validate(); err != nil {
		return ctl.TraceReply{}, err
	}
	src, in, err := a.traceSource(req.From)
	if err != nil {
		return ctl.TraceReply{}, err
	}
	dst := netip.MustParseAddrPort(req.To)
	if src.Is4() != dst.Addr().Is4() {
		return ctl.TraceReply{}, fmt.Errorf("from %s to %s: address families differ", src, dst.Addr())
	}
	proto := uint8(6)
	if req.Protocol == "udp" {
		proto = 17
	}
	count := max(req.Count, 1)
	rep := ctl.TraceReply{From: req.From, To: req.To, Protocol: req.Protocol}
	for range count {
		sport := uint16(traceFirstPort + (a.tracePort.Add(1)-1)%tracePorts)
		ev, err := a.vpp.Evaluate(ctx, vppapi.Probe{Ingress: in.SwIfIndex, Src: src, Dst: dst.Addr(), Protocol: proto,
			SrcPort: sport, DstPort: dst.Port()})
		if err != nil {
			return ctl.TraceReply{}, err
		}
		tp := tracePacket(in, netip.AddrPortFrom(src, sport), dst, ev)
		for _, d := range ev.ACL {
			tp.Policy = append(tp.Policy, ctl.TracePolicy{Node: d.Node, SwIfIndex: d.SwIfIndex, Action: d.Action,
				Session: d.Session, ACL: d.Tag, Rule: d.Rule, Why: a.policy.why(d.Node, d.SwIfIndex, d.Tag, d.Rule)})
		}
		rep.Packets = append(rep.Packets, tp)
	}
	return rep, nil
}

func tracePacket(in ctl.TraceInterface, src, dst netip.AddrPort, ev vppapi.Evaluation) ctl.TracePacket {
	p := ctl.TracePacket{Ingress: in, Source: src.String(), Destination: dst.String(), Verdict: ev.Verdict,
		Reason: ev.Reason, Translations: []ctl.TraceTranslation{}, Steps: []ctl.TraceStep{}}
	for _, t := range ev.Translations {
		p.Translations = append(p.Translations, ctl.TraceTranslation{Kind: t.Kind, From: t.From.String(), To: t.To.String(), Node: t.Node})
	}
	for _, s := range ev.Steps {
		p.Steps = append(p.Steps, ctl.TraceStep{Node: s.Node, Detail: s.Detail})
	}
	if ev.Verdict == "forwarded" {
		p.Egress = &ctl.TraceInterface{SwIfIndex: ev.Egress, Name: ev.EgressName}
		if ev.NextHop.IsValid() {
			p.NextHop = ev.NextHop.String()
		}
	}
	return p
}

// traceSource resolves a trace's --from: a pod of this node sends from its
// interface; another address comes in through the uplink.
func (a *Agent) traceSource(from string) (netip.Addr, ctl.TraceInterface, error) {
	ns, name, isPod := strings.Cut(from, "/")
	var addr netip.Addr
	if !isPod {
		addr = netip.MustParseAddr(from) // Validate checked it
	}
	if a.pods != nil {
		for _, p := range a.pods.Pods() {
			if len(p.Interfaces) == 0 {
				continue
			}
			l := p.Interfaces[0]
			in := ctl.TraceInterface{SwIfIndex: l.SwIfIndex, Name: l.Name}
			for _, ip := range p.IPs {
				if isPod && p.Namespace == ns && p.Name == name && ip.Is4() {
					return ip, in, nil
				}
				if !isPod && ip == addr {
					return ip, in, nil
				}
			}
		}
	}
	if isPod {
		return netip.Addr{}, ctl.TraceInterface{}, a.podElsewhere(ns, name)
	}
	up := a.state.uplinkIndex()
	if up == ip.NoInterface {
		return netip.Addr{}, ctl.TraceInterface{}, fmt.Errorf("%s is no pod of this node and no uplink is configured (uplink.interface) for outside clients", addr)
	}
	return addr, ctl.TraceInterface{SwIfIndex: up, Name: a.cfg.Uplink.Interface}, nil
}

func (a *Agent) podElsewhere(ns, name string) error {
	if a.src != nil {
		p, err := a.src.Pods().Pods(ns).Get(name)
		switch {
		case err == nil && p.Spec.NodeName != "" && p.Spec.NodeName != a.cfg.Node.Name:
			return fmt.Errorf("pod %s/%s runs on node %s, not on %s: trace from that node's agent (or kube-vppctl trace --manifests DIR --node %s)",
				ns, name, p.Spec.NodeName, a.cfg.Node.Name, p.Spec.NodeName)
		case err == nil:
			return fmt.Errorf("pod %s/%s has no network on this node yet", ns, name)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("pod %s/%s: %w", ns, name, err)
		}
	}
	return fmt.Errorf("pod %s/%s not found", ns, name)
}
