package behaviour

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/kube-vpp/kube-vpp/agent/offline"
)

// deliver follows one packet from node n (sent by local pod in, or
// arriving on the uplink when in is "") to the pod owning its destination
// after NAT, across to the other node when it leaves by the uplink. It
// reports whether the pod got it, and every node's evaluation.
func (c *netpolCluster) deliver(n *netpolNode, in string, src, dst netip.AddrPort, proto string) ([]leg, bool, error) {
	var legs []leg
	for hop := 0; ; hop++ {
		l, err := n.evaluate(in, src, dst, proto)
		if err != nil {
			return legs, false, err
		}
		legs = append(legs, l)
		if !l.forwarded() {
			return legs, false, nil
		}
		p, ok := c.pods[l.dst.Addr()]
		if !ok {
			return legs, false, fmt.Errorf("forwarded to %s, which is no pod's", l.dst)
		}
		if p.node == n.name {
			if want := n.ifaces[p.String()].Name; l.egress != want {
				return legs, false, fmt.Errorf("forwarded by %s, want %s, the interface of %s", l.egress, want, p)
			}
			return legs, true, nil
		}
		if l.egress != offline.Uplink || hop > 0 {
			return legs, false, fmt.Errorf("forwarded by %s toward %s on %s", l.egress, p, p.node)
		}
		n, in, src, dst = c.nodes[p.node], "", l.src, l.dst
	}
}

func legsReport(legs []leg) string {
	var parts []string
	for _, l := range legs {
		parts = append(parts, l.report())
	}
	return strings.Join(parts, "\n")
}

// stateful checks VPP's permit+reflect sessions as NetworkPolicy needs
// them (acl_fa_node_fn, src/plugins/acl/dataplane_node.c: a packet that
// matches a session passes without the rules being consulted; a session is
// added only by a permit+reflect rule that matched). The server x/a may
// not send anything of its own (egress denied), and accepts y/a and z/a
// only; y/a and z/a may only send to x/a; z/c accepts nothing. So:
//   - the reply of an allowed connection passes, through the session alone;
//   - after a denied connection, the reverse tuple is still denied;
//   - after z/c's allowed connection to a peer, a new connection from the
//     peer to z/c is still denied: a session opens its replies, not its
//     pod.
func (c *netpolCluster) stateful(t *testing.T) {
	onlyToXA := "{podSelector: " + podA + ", policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: " + podA + "}]}]}"
	c.write(t, []string{
		np("x", "server", "{podSelector: "+podA+", policyTypes: [Ingress, Egress], ingress: [{from: ["+
			"{namespaceSelector: "+nsY+", podSelector: "+podA+"}, {namespaceSelector: {matchLabels: {ns: z}}, podSelector: "+podA+"}]}]}"),
		np("y", "client", onlyToXA),
		np("z", "client", onlyToXA),
		np("z", "c-no-ingress", "{podSelector: {matchLabels: {pod: c}}, policyTypes: [Ingress]}"),
	}, nil, nil)
	c.waitApplied(t)

	pods := map[string]netpolPod{}
	for _, p := range netpolModel() {
		pods[p.String()] = p
	}
	all, tcp := []string{"tcp", "udp", "sctp"}, []string{"tcp"} // the services serve TCP only
	for _, tc := range []struct {
		from, to string
		service  bool // through the server's ClusterIP
		protos   []string
		allowed  bool
		// newBack: then the destination opens a connection of its own back
		// to the source's port 81, which the source's ingress denies.
		newBack bool
	}{
		{from: "y/a", to: "x/a", protos: all, allowed: true},                // both on node-a
		{from: "z/a", to: "x/a", protos: all, allowed: true},                // node-b to node-a
		{from: "y/a", to: "x/a", service: true, protos: tcp, allowed: true}, // DNAT, and back
		{from: "z/a", to: "x/a", service: true, protos: tcp, allowed: true},
		{from: "x/b", to: "x/a", protos: all},                // node-a, denied by x/a's ingress
		{from: "x/c", to: "x/a", protos: all},                // node-b, denied on node-a
		{from: "z/b", to: "x/a", service: true, protos: tcp}, // denied after DNAT
		{from: "x/a", to: "x/b", protos: all},                // the server's own connections are denied
		{from: "z/c", to: "y/c", protos: all, allowed: true, newBack: true},
		{from: "z/c", to: "x/c", protos: all, allowed: true, newBack: true}, // node-a to node-b
	} {
		for _, proto := range tc.protos {
			// Every connection starts with no session between the pods.
			c.sessionsOver()
			client, server := pods[tc.from], pods[tc.to]
			dst := netip.AddrPortFrom(server.ip, 80)
			if tc.service {
				dst = netip.AddrPortFrom(server.svc, 80)
			}
			name := fmt.Sprintf("%s -> %s %s/%s", client, server, dst, proto)
			src := netip.AddrPortFrom(client.ip, c.nextPort())
			legs, ok, err := c.deliver(c.nodes[client.node], client.String(), src, dst, proto)
			switch {
			case err != nil:
				t.Errorf("%s: %v\n%s", name, err, legsReport(legs))
				continue
			case ok != tc.allowed:
				t.Errorf("%s: %s, want %s\n%s", name, verdictWord(ok), verdictWord(tc.allowed), legsReport(legs))
				continue
			}
			// The reply: from the server's address as the server saw the
			// connection, to the client's address and port as they arrived.
			last := legs[len(legs)-1]
			from, to := last.dst, last.src
			if !ok {
				from, to = netip.AddrPortFrom(server.ip, 80), src
			}
			rlegs, rok, err := c.deliver(c.nodes[server.node], server.String(), from, to, proto)
			switch {
			case err != nil:
				t.Errorf("%s, reply %s -> %s: %v\n%s", name, from, to, err, legsReport(rlegs))
			case tc.allowed && !rok:
				t.Errorf("%s, reply %s -> %s: denied; the connection's session must pass it\n%s", name, from, to, legsReport(rlegs))
			case tc.allowed && rlegs[len(rlegs)-1].src != dst:
				t.Errorf("%s, reply %s -> %s: reaches the client from %s, want %s, the address it connected to\n%s",
					name, from, to, rlegs[len(rlegs)-1].src, dst, legsReport(rlegs))
			case !tc.allowed && rok:
				t.Errorf("%s, reverse tuple %s -> %s: allowed; a denied connection must open nothing\n%s", name, from, to, legsReport(rlegs))
			}
			if !tc.newBack {
				continue
			}
			from, to = netip.AddrPortFrom(server.ip, c.nextPort()), netip.AddrPortFrom(client.ip, 81)
			blegs, bok, err := c.deliver(c.nodes[server.node], server.String(), from, to, proto)
			switch {
			case err != nil:
				t.Errorf("%s, then a new connection %s -> %s: %v\n%s", name, from, to, err, legsReport(blegs))
			case bok && proto == "sctp":
				// Documented deviation (docs/policy.md): VPP's ACL plugin
				// reads no SCTP ports (acl_fill_5tuple_l4_and_pkt_data), so
				// a session keys on the addresses alone and any SCTP from
				// the peer matches the earlier association's reverse entry.
				t.Logf("%s, then a new SCTP association %s -> %s: allowed by the earlier session (known VPP limit: SCTP sessions carry no ports)", name, from, to)
			case bok:
				t.Errorf("%s, then a new connection %s -> %s: allowed; %s admits no ingress, and the earlier connection's session must open its replies only\n%s",
					name, from, to, client, legsReport(blegs))
			}
		}
	}
}
