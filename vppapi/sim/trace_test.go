package sim

import (
	"net/netip"
	"strings"
	"testing"

	"go.fd.io/govpp/binapi/fib_types"
	"go.fd.io/govpp/binapi/tapv2"
)

func special(kind fib_types.FibPathType) fib_types.FibPath {
	return fib_types.FibPath{SwIfIndex: noIndex, Type: kind, Proto: fib_types.FIB_API_PATH_NH_PROTO_IP4}
}

// podNet builds a node the way kube-vpp wires pods: a gateway loopback
// holding 10.1.0.1/32, two pod interfaces unnumbered to it, a /32 route to
// each pod through its interface, and eth0 (192.168.10.5/24) as uplink.
// Pod interfaces are loopbacks here; TestEvaluateTaps uses real taps.
func podNet(t *testing.T, f *fixture, podA, podB uint32) {
	t.Helper()
	gw := f.loopback()
	f.address(gw, "10.1.0.1/32", true)
	f.setUp(eth0, true)
	f.address(eth0, "192.168.10.5/24", true)
	for _, p := range []struct {
		idx uint32
		ip  string
	}{{podA, "10.1.0.2"}, {podB, "10.1.0.3"}} {
		f.setUp(p.idx, true)
		if rv := f.setUnnumbered(p.idx, gw, true); rv != 0 {
			t.Fatalf("unnumbered %d: %d", p.idx, rv)
		}
		if rv := f.route(true, false, 0, p.ip+"/32", 0, via(p.ip, p.idx)); rv != 0 {
			t.Fatalf("route to %s: %d", p.ip, rv)
		}
	}
	for prefix, p := range map[string]fib_types.FibPath{
		"10.66.0.0/16": special(fib_types.FIB_API_PATH_TYPE_DROP),
		"10.77.0.0/16": special(fib_types.FIB_API_PATH_TYPE_ICMP_UNREACH),
	} {
		if rv := f.route(true, false, 0, prefix, 0, p); rv != 0 {
			t.Fatalf("route %s: %d", prefix, rv)
		}
	}
}

func tcp(ingress uint32, src, dst string) Packet {
	return Packet{Ingress: ingress, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: 6, SrcPort: 40000, DstPort: 80}
}

// TestEvaluate checks the walk of ip4-input, ip4-unicast, ip4-lookup and
// the DPOs against the programmed state.
func TestEvaluate(t *testing.T) {
	f := newFixture(t)
	podA, podB := f.loopback(), f.loopback()
	podNet(t, f, podA, podB)
	bare := f.loopback() // up, no address, not unnumbered
	down := f.loopback()
	f.address(down, "10.50.0.1/24", true)
	f.setUp(down, false)
	if rv := f.route(true, false, 0, "10.50.0.9/32", 0, via("10.50.0.9", down)); rv != 0 {
		t.Fatal(rv)
	}
	podBName := f.iface(podB).InterfaceName

	tests := []struct {
		name     string
		pkt      Packet
		want     Verdict
		egress   uint32
		nextHop  string
		reason   string // substring
		lastNode string
	}{
		{"pod to pod", tcp(podA, "10.1.0.2", "10.1.0.3"), Forwarded, podB, "10.1.0.3", "", "interface-output"},
		{"uplink to pod", tcp(eth0, "192.168.10.9", "10.1.0.2"), Forwarded, podA, "10.1.0.2", "", "interface-output"},
		{"pod to uplink subnet takes the glean", tcp(podA, "10.1.0.2", "192.168.10.7"), Forwarded, eth0, "192.168.10.7", "", "interface-output"},
		// ip4-local punts TCP: tcp_main_enable, which registers it, runs
		// only with the session layer enabled.
		{"TCP to the gateway address is punted", tcp(podA, "10.1.0.2", "10.1.0.1"), Dropped, 0, "", "10.1.0.1", "error-punt"},
		{"TCP to eth0's address is punted", tcp(podA, "10.1.0.2", "192.168.10.5"), Dropped, 0, "", "192.168.10.5", "error-punt"},
		{"no route", tcp(podA, "10.1.0.2", "8.8.8.8"), Dropped, 0, "", "no route", "ip4-drop"},
		{"drop route", tcp(podA, "10.1.0.2", "10.66.1.1"), Dropped, 0, "", "10.66.0.0/16", "ip4-drop"},
		{"unreachable route", tcp(podA, "10.1.0.2", "10.77.1.1"), Rejected, 0, "", "unreachable", "ip4-icmp-error"},
		{"egress down", tcp(podA, "10.1.0.2", "10.50.0.9"), Dropped, 0, "", "down", "ip4-drop"},
		{"ingress without IPv4", tcp(bare, "10.1.0.2", "10.1.0.3"), Dropped, 0, "", "not enabled", "ip4-not-enabled"},
		{"ingress down", tcp(down, "10.50.0.9", "10.1.0.3"), Dropped, 0, "", "down", "ip4-input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.sim.Evaluate(tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.want {
				t.Fatalf("verdict %q (%s), want %q; steps %+v", res.Verdict, res.Reason, tc.want, res.Steps)
			}
			if tc.want == Forwarded {
				if res.Egress != tc.egress || res.NextHop.String() != tc.nextHop {
					t.Errorf("egress %d via %s, want %d via %s", res.Egress, res.NextHop, tc.egress, tc.nextHop)
				}
			}
			if !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("reason %q, want it to mention %q", res.Reason, tc.reason)
			}
			if last := res.Steps[len(res.Steps)-1].Node; last != tc.lastNode {
				t.Errorf("last node %q, want %q; steps %+v", last, tc.lastNode, res.Steps)
			}
			if res.Packet != tc.pkt {
				t.Errorf("packet rewritten to %+v with no feature enabled", res.Packet)
			}
		})
	}
	if res, _ := f.sim.Evaluate(tcp(podA, "10.1.0.2", "10.1.0.3")); res.EgressName != podBName {
		t.Errorf("egress name %q, want %q", res.EgressName, podBName)
	}

	for _, bad := range []Packet{
		tcp(99, "10.1.0.2", "10.1.0.3"),
		{Ingress: podA, Src: netip.MustParseAddr("10.1.0.2"), Dst: netip.MustParseAddr("fd00::1")},
		{Ingress: podA, Dst: netip.MustParseAddr("10.1.0.3")},
	} {
		if _, err := f.sim.Evaluate(bad); err == nil {
			t.Errorf("Evaluate(%+v) succeeded, want an error", bad)
		}
	}
}

// TestEvaluateMultipathIsPerFlow: one flow always takes one path of an
// ECMP route, and different flows can take either (load-balance by flow hash).
func TestEvaluateMultipathIsPerFlow(t *testing.T) {
	f := newFixture(t)
	a, b := f.loopback(), f.loopback()
	f.address(a, "172.16.1.1/24", true)
	f.address(b, "172.16.2.1/24", true)
	f.setUp(eth0, true)
	f.address(eth0, "192.168.10.5/24", true)
	if rv := f.route(true, false, 0, "10.200.0.0/16", 0, via("172.16.1.2", a), via("172.16.2.2", b)); rv != 0 {
		t.Fatal(rv)
	}
	seen := map[uint32]bool{}
	for port := uint16(1000); port < 1064; port++ {
		p := Packet{Ingress: eth0, Src: netip.MustParseAddr("192.168.10.9"), Dst: netip.MustParseAddr("10.200.0.1"), Protocol: 17, SrcPort: port, DstPort: 53}
		first, _ := f.sim.Evaluate(p)
		again, _ := f.sim.Evaluate(p)
		if first.Verdict != Forwarded || first.Egress != again.Egress {
			t.Fatalf("flow %d: %+v then %+v", port, first, again)
		}
		seen[first.Egress] = true
	}
	if !seen[a] || !seen[b] {
		t.Errorf("64 flows used egresses %v, want both %d and %d", seen, a, b)
	}
}

// TestEvaluateTaps runs the pod-to-pod case over real taps.
func TestEvaluateTaps(t *testing.T) {
	requireNetAdmin(t)
	ns, _ := newNetns(t)
	tf := newTapFixture(t, Options{Interfaces: []InterfaceSpec{{Name: "eth0"}}})
	var pods [2]uint32
	for i, name := range []string{"eth0", "eth1"} {
		idx, rv := tf.create(&tapv2.TapCreateV3{ID: noIndex, UseRandomMac: true, HostIfNameSet: true, HostIfName: name,
			HostNamespaceSet: true, HostNamespace: ns})
		if rv != 0 {
			t.Fatalf("tap %s: %d", name, rv)
		}
		pods[i] = idx
	}
	podNet(t, tf.fixture, pods[0], pods[1])
	res, err := tf.sim.Evaluate(tcp(pods[0], "10.1.0.2", "10.1.0.3"))
	if err != nil || res.Verdict != Forwarded || res.Egress != pods[1] || res.EgressName != "tap1" {
		t.Errorf("pod to pod over taps: %+v (%v)", res, err)
	}
}

// TestEvaluateLocal follows ip4-local / ip6-local for packets to VPP's own
// addresses (ip4_local_inline, ip6_local_inline in src/vnet/ip/ip{4,6}_forward.c):
// the source check, then ICMP echo answered by the ping plugin's node, UDP
// to a port nobody registered answered with ICMP port unreachable
// (udp46_local_inline, src/vnet/udp/udp_local.c), TCP and other protocols
// punted (ip_lookup_init punts all but UDP and ICMP; TCP registers only
// with the session layer, src/vnet/tcp/tcp.c tcp_main_enable).
func TestEvaluateLocal(t *testing.T) {
	f := newFixture(t)
	podA, podB := f.loopback(), f.loopback()
	podNet(t, f, podA, podB)
	// 10.200.0.0/16 through a router on eth0's subnet: a recursive route
	// whose uRPF list is that of 192.168.10.0/24 (eth0).
	if rv := f.route(true, false, 0, "10.200.0.0/16", 0, via("192.168.10.1", noIndex)); rv != 0 {
		t.Fatal(rv)
	}
	f.address(eth0, "fd00:10::5/64", true)
	f.sim.mu.Lock()
	eth0LL := f.sim.st.ifaces[eth0].linkLocal().String()
	f.sim.mu.Unlock()

	pkt := func(ingress uint32, proto uint8, src, dst string) Packet {
		return Packet{Ingress: ingress, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: proto, SrcPort: 40000, DstPort: 53}
	}
	tests := []struct {
		name     string
		pkt      Packet
		want     Verdict
		reason   string // substring
		lastNode string
	}{
		{"ICMP echo from a pod to the gateway", pkt(podA, 1, "10.1.0.2", "10.1.0.1"), Local, "10.1.0.1", "ip4-icmp-echo-request"},
		{"ICMP echo from eth0's subnet", pkt(eth0, 1, "192.168.10.9", "192.168.10.5"), Local, "192.168.10.5", "ip4-icmp-echo-request"},
		{"ICMP echo from behind a recursive route", pkt(eth0, 1, "10.200.3.4", "192.168.10.5"), Local, "192.168.10.5", "ip4-icmp-echo-request"},
		{"UDP to a port nobody listens on", pkt(podA, 17, "10.1.0.2", "10.1.0.1"), Rejected, "UDP port 53", "ip4-icmp-error"},
		{"TCP is not registered", pkt(podA, 6, "10.1.0.2", "10.1.0.1"), Dropped, "TCP", "error-punt"},
		{"GRE is not registered", pkt(podA, 47, "10.1.0.2", "10.1.0.1"), Dropped, "protocol 47", "error-punt"},
		{"ICMP from a source with no route", pkt(eth0, 1, "8.8.8.8", "192.168.10.5"), Dropped, "source lookup miss", "ip4-drop"},
		{"UDP from a source behind a drop route", pkt(eth0, 17, "10.66.1.1", "192.168.10.5"), Dropped, "source lookup miss", "ip4-drop"},
		{"ICMP from VPP's own address", pkt(podA, 1, "10.1.0.1", "192.168.10.5"), Dropped, "spoofed", "ip4-drop"},

		{"ICMPv6 echo from eth0's subnet", pkt(eth0, 58, "fd00:10::9", "fd00:10::5"), Local, "fd00:10::5", "ip6-icmp-echo-request"},
		{"UDP over IPv6 to a port nobody listens on", pkt(eth0, 17, "fd00:10::9", "fd00:10::5"), Rejected, "UDP port 53", "ip6-icmp-error"},
		{"TCP over IPv6 is not registered", pkt(eth0, 6, "fd00:10::9", "fd00:10::5"), Dropped, "TCP", "error-punt"},
		{"UDP over IPv6 from a source with no route", pkt(eth0, 17, "fd99::1", "fd00:10::5"), Dropped, "source lookup miss", "ip6-drop"},
		// IPv6 skips the source check for ICMPv6 and for link-local sources,
		// and has no spoofed-local check: its own address fails the uRPF one.
		{"ICMPv6 from a source with no route", pkt(eth0, 58, "fd99::1", "fd00:10::5"), Local, "fd00:10::5", "ip6-icmp-echo-request"},
		{"UDP over IPv6 from a link-local source", pkt(eth0, 17, "fe80::9", "fd00:10::5"), Rejected, "UDP port 53", "ip6-icmp-error"},
		{"UDP over IPv6 from VPP's own address", pkt(eth0, 17, "fd00:10::5", "fd00:10::5"), Dropped, "source lookup miss", "ip6-drop"},
		{"UDP to eth0's link-local address from a link-local source", pkt(eth0, 17, "fe80::9", eth0LL), Rejected, "UDP port 53", "ip6-icmp-error"},
		{"UDP to eth0's link-local address from a global source", pkt(eth0, 17, "fd00:10::9", eth0LL), Dropped, "source lookup miss", "ip6-drop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.sim.Evaluate(tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tc.want {
				t.Fatalf("verdict %q (%s), want %q; steps %+v", res.Verdict, res.Reason, tc.want, res.Steps)
			}
			if !strings.Contains(res.Reason, tc.reason) {
				t.Errorf("reason %q, want it to mention %q", res.Reason, tc.reason)
			}
			if last := res.Steps[len(res.Steps)-1].Node; last != tc.lastNode {
				t.Errorf("last node %q, want %q; steps %+v", last, tc.lastNode, res.Steps)
			}
			receive := "ip4-receive"
			if tc.pkt.Dst.Is6() {
				receive = "ip6-receive"
			}
			if !hasStep(res.Steps, receive) {
				t.Errorf("no %s step: %+v", receive, res.Steps)
			}
			if res.Egress != 0 {
				t.Errorf("egress %d for a packet to VPP itself", res.Egress)
			}
		})
	}
}

func hasStep(steps []Step, node string) bool {
	for _, s := range steps {
		if s.Node == node {
			return true
		}
	}
	return false
}
