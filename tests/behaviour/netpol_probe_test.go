package behaviour

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/offline"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// leg is one node's evaluation of a packet.
type leg struct {
	node     string
	verdict  string
	egress   string
	src, dst netip.AddrPort // as the packet leaves
	line     string
	steps    []string
}

func (l leg) forwarded() bool { return l.verdict == "forwarded" }

func (l leg) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "      %s: %s", l.node, l.line)
	for _, s := range l.steps {
		fmt.Fprintf(&b, "\n        %s", s)
	}
	return b.String()
}

// trace is kube-vppctl trace of one connection: from is a local pod
// ("ns/name") or an address entering through the uplink.
func (n *netpolNode) trace(ctx context.Context, from string, to netip.AddrPort, proto string) (leg, error) {
	rep, err := n.c.Trace(ctx, ctl.TraceRequest{From: from, To: to.String(), Protocol: proto})
	if err != nil {
		return leg{}, fmt.Errorf("%s: trace %s -> %s/%s: %w", n.name, from, to, proto, err)
	}
	if len(rep.Packets) != 1 {
		return leg{}, fmt.Errorf("%s: trace %s -> %s/%s: %d packets, want 1", n.name, from, to, proto, len(rep.Packets))
	}
	p := rep.Packets[0]
	l := leg{node: n.name, verdict: p.Verdict, line: p.String(), dst: to}
	l.src, err = netip.ParseAddrPort(p.Source)
	if err != nil {
		return leg{}, fmt.Errorf("%s: trace source %q: %w", n.name, p.Source, err)
	}
	if p.Egress != nil {
		l.egress = p.Egress.Name
	}
	for _, tr := range p.Translations {
		ap, err := netip.ParseAddrPort(tr.To)
		if err != nil {
			return leg{}, fmt.Errorf("%s: trace translation %q: %w", n.name, tr.To, err)
		}
		if tr.Kind == "dnat" {
			l.dst = ap
		} else {
			l.src = ap
		}
	}
	for _, d := range p.Policy {
		l.steps = append(l.steps, fmt.Sprintf("policy %s on %d: %s, acl %q rule %d (%s)", d.Node, d.SwIfIndex, d.Action, d.ACL, d.Rule, d.Why))
	}
	for _, s := range p.Steps {
		l.steps = append(l.steps, s.Node+": "+s.Detail)
	}
	return l, nil
}

var protoNumbers = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132}

// evaluate asks the node's simulator itself about one packet: for what
// kube-vppctl trace does not take (SCTP, a chosen source port). in is the
// local pod sending, or "" for the uplink.
func (n *netpolNode) evaluate(in string, src, dst netip.AddrPort, proto string) (leg, error) {
	ingress, inName := n.uplink, "uplink"
	if in != "" {
		ifc, ok := n.ifaces[in]
		if !ok {
			return leg{}, fmt.Errorf("%s: pod %s is not local", n.name, in)
		}
		ingress, inName = ifc.SwIfIndex, ifc.Name
	}
	res, err := n.vpp.Sim.Evaluate(sim.Packet{Ingress: ingress, Src: src.Addr(), Dst: dst.Addr(), Protocol: protoNumbers[proto],
		SrcPort: src.Port(), DstPort: dst.Port()})
	if err != nil {
		return leg{}, fmt.Errorf("%s: evaluating %s -> %s/%s: %w", n.name, src, dst, proto, err)
	}
	l := leg{node: n.name, verdict: string(res.Verdict), egress: res.EgressName,
		src: netip.AddrPortFrom(res.Packet.Src, res.Packet.SrcPort), dst: netip.AddrPortFrom(res.Packet.Dst, res.Packet.DstPort)}
	l.line = fmt.Sprintf("%s -> %s/%s in %s: %s", src, dst, proto, inName, strings.ToUpper(l.verdict))
	if l.src != src || l.dst != dst {
		l.line += fmt.Sprintf(", leaves as %s -> %s", l.src, l.dst)
	}
	if l.forwarded() {
		l.line += ", out " + l.egress
	} else if res.Reason != "" {
		l.line += " (" + res.Reason + ")"
	}
	for _, a := range res.ACL {
		l.steps = append(l.steps, fmt.Sprintf("acl %s on %d: %s, acl %d %q rule %d session %v", a.Node, a.SwIfIndex, a.Action, a.ACLIndex, a.Tag, a.Rule, a.Session))
	}
	for _, s := range res.Steps {
		l.steps = append(l.steps, s.Node+": "+s.Detail)
	}
	return l, nil
}

// send is the first leg of a connection, on the source pod's node n:
// kube-vppctl trace for TCP and UDP; for SCTP, which it does not take,
// the node's simulator itself.
func (c *netpolCluster) send(ctx context.Context, n *netpolNode, from netpolPod, dst netip.AddrPort, proto string) (leg, error) {
	if proto != "sctp" {
		return n.trace(ctx, from.String(), dst, proto)
	}
	return n.evaluate(from.String(), netip.AddrPortFrom(from.ip, c.nextPort()), dst, proto)
}

// cell is one connection's fate across the nodes.
type cell struct {
	allowed bool
	problem string // forwarded, but not where it should go
	legs    []leg
	err     error
}

// connect sends a connection from a model pod to tg. The source's node
// decides its egress (and any DNAT). A packet it forwards to the other
// node is then evaluated in that node's simulator as it arrives on the
// uplink, with the tuple it left with, and that node decides the
// destination's ingress. A destination outside the cluster has no agent:
// leaving by the uplink is reaching it.
func (c *netpolCluster) connect(ctx context.Context, from netpolPod, tg target, proto string) cell {
	n := c.nodes[from.node]
	first, err := c.send(ctx, n, from, tg.addr, proto)
	if err != nil {
		return cell{err: err}
	}
	out := cell{legs: []leg{first}}
	if !first.forwarded() {
		return out
	}
	if first.dst != tg.reaches {
		out.problem = fmt.Sprintf("forwarded to %s, want %s", first.dst, tg.reaches)
		return out
	}
	if tg.backend == nil || tg.backend.node != from.node {
		if first.egress != offline.Uplink {
			out.problem = fmt.Sprintf("left by %s, want %s", first.egress, offline.Uplink)
			return out
		}
		if tg.backend == nil {
			out.allowed = true
			return out
		}
		n = c.nodes[tg.backend.node]
		second, err := n.evaluate("", first.src, first.dst, proto)
		if err != nil {
			return cell{err: err}
		}
		out.legs = append(out.legs, second)
		if !second.forwarded() {
			return out
		}
		first = second
	}
	if want := n.ifaces[tg.backend.String()].Name; first.egress != want {
		out.problem = fmt.Sprintf("left by %s, want %s (the interface of %s)", first.egress, want, tg.backend)
		return out
	}
	out.allowed = true
	return out
}
