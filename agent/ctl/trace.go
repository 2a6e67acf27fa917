package ctl

import (
	"fmt"
	"net/netip"
	"strings"
)

// TraceRequest asks the agent to evaluate packets through VPP's graph.
type TraceRequest struct {
	// From is "namespace/pod" (a pod of this node) or an IPv4 address; an
	// address that is no local pod's comes in through the uplink.
	From string `json:"from"`
	// To is the destination, "ip:port".
	To string `json:"to"`
	// Protocol is "tcp" or "udp".
	Protocol string `json:"protocol"`
	// Count is the number of connections traced, each from its own source
	// port (1 when 0).
	Count int `json:"count,omitempty"`
}

// MaxTraceCount bounds TraceRequest.Count.
const MaxTraceCount = 10000

// Validate checks the request's fields.
func (r TraceRequest) Validate() error {
	if r.From == "" {
		return fmt.Errorf("from: empty; give namespace/pod or an IP address")
	}
	if !strings.Contains(r.From, "/") {
		if _, err := netip.ParseAddr(r.From); err != nil {
			return fmt.Errorf("from %q: neither namespace/pod nor an IP address", r.From)
		}
	}
	if _, err := netip.ParseAddrPort(r.To); err != nil {
		return fmt.Errorf("to %q: not ip:port: %v", r.To, err)
	}
	if r.Protocol != "tcp" && r.Protocol != "udp" {
		return fmt.Errorf("protocol %q: must be tcp or udp", r.Protocol)
	}
	if r.Count < 0 || r.Count > MaxTraceCount {
		return fmt.Errorf("count %d: must be 1 to %d", r.Count, MaxTraceCount)
	}
	return nil
}

// ParseDestination splits "ip:port/proto" as kube-vppctl takes it.
func ParseDestination(s string) (to, proto string, err error) {
	addr, proto, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("%q: want ip:port/tcp or ip:port/udp", s)
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return "", "", fmt.Errorf("%q: protocol %q is not tcp or udp", s, proto)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("%q: %v", s, err)
	}
	return ap.String(), proto, nil
}

// TraceReply is the answer to a trace: one result per packet. Its JSON
// field names are stable (docs/services.md lists them).
type TraceReply struct {
	From     string        `json:"from"`
	To       string        `json:"to"`
	Protocol string        `json:"protocol"`
	Packets  []TracePacket `json:"packets"`
}

// TracePacket is one packet's path.
type TracePacket struct {
	Ingress      TraceInterface     `json:"ingress"`
	Source       string             `json:"source"`      // ip:port as sent
	Destination  string             `json:"destination"` // ip:port as sent
	Verdict      string             `json:"verdict"`     // forwarded, dropped, rejected or local
	Translations []TraceTranslation `json:"translations"`
	// Egress is where a forwarded packet leaves, with its next hop.
	Egress  *TraceInterface `json:"egress,omitempty"`
	NextHop string          `json:"nextHop,omitempty"`
	// Reason says why a packet was dropped, rejected or delivered locally.
	Reason string `json:"reason,omitempty"`
	// Policy lists the ACL decisions on the path, with the NetworkPolicy
	// behind each.
	Policy []TracePolicy `json:"policy,omitempty"`
	Steps  []TraceStep   `json:"steps"`
}

// TracePolicy is one ACL node's decision on a packet.
type TracePolicy struct {
	Node      string `json:"node"` // acl-plugin-in-ip4-fa or acl-plugin-out-ip4-fa
	SwIfIndex uint32 `json:"swIfIndex"`
	Action    string `json:"action"` // permit, permit+reflect or deny
	// Session is true when a reflexive session passed the packet (the
	// rule is the one that created it).
	Session bool   `json:"session,omitempty"`
	ACL     string `json:"acl,omitempty"` // the ACL's tag
	Rule    int    `json:"rule"`          // index in the ACL; -1: no rule matched
	// Why names the origin: "networkpolicy ns/name ingress[i]", "node",
	// "service ns/name", or "no rule matched: default deny".
	Why string `json:"why"`
}

// TraceInterface names a VPP interface.
type TraceInterface struct {
	SwIfIndex uint32 `json:"swIfIndex"`
	Name      string `json:"name"`
}

// TraceTranslation is one NAT rewrite.
type TraceTranslation struct {
	Kind string `json:"kind"` // dnat or snat
	From string `json:"from"`
	To   string `json:"to"`
	Node string `json:"node"` // the VPP node that rewrote
}

// TraceStep is one VPP graph node the packet went through.
type TraceStep struct {
	Node   string `json:"node"`
	Detail string `json:"detail"`
}

// String is the one-line form kube-vppctl prints.
func (p TracePacket) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s -> %s in %s: %s", p.Source, p.Destination, p.Ingress.Name, strings.ToUpper(p.Verdict))
	for _, t := range p.Translations {
		fmt.Fprintf(&b, ", %s to %s", strings.ToUpper(t.Kind), t.To)
	}
	if p.Egress != nil {
		fmt.Fprintf(&b, ", out %s", p.Egress.Name)
		if p.NextHop != "" {
			fmt.Fprintf(&b, " via %s", p.NextHop)
		}
	}
	for _, d := range p.Policy {
		if d.Action == "deny" || d.Rule < 0 {
			fmt.Fprintf(&b, ", denied by %s", d.Why)
		}
	}
	if p.Reason != "" && p.Verdict != "forwarded" {
		fmt.Fprintf(&b, " (%s)", p.Reason)
	}
	return b.String()
}
