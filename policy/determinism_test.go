package policy

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Same input in any order, same output.
func TestCompileDeterministic(t *testing.T) {
	nss, pods := cluster3()
	pods = append(pods,
		newPod("y/c", "10.0.2.30", withPort("serve-80-tcp", tcp, 8080)),
		newPod("z/b", "10.0.3.20,fd00::3:20"))
	policies := []*networkingv1.NetworkPolicy{
		netpol("x/p", all(), egress(rule{ports: ports(namedPort(tcp, "serve-80-tcp"), port(udp, 53))})),
		netpol("x/q", match("pod", "a"), ingress(
			rule{peers: peers(nsPeer(), blockPeer("10.0.0.0/8", "10.0.2.0/24")), ports: ports(namedPort(tcp, "serve-81-tcp"))},
			rule{peers: peers(podPeer("pod", "b"))})),
		netpol("x/r", match("pod", "a"), ingress(rule{peers: peers(podPeer("pod", "b"))}),
			egress(rule{peers: peers(blockPeer("10.0.0.0/16")), ports: ports(namedPort(tcp, "serve-80-tcp"))})),
		netpol("y/p", all(), ingress(rule{ports: ports(port(tcp, 0))})),
		netpol("y/q", all(), ingress(rule{peers: peers(blockPeer("bad"))})),
	}
	want := Compile(Input{Pods: pods, Namespaces: nss, Policies: policies})
	if len(want.Problems) != 2 {
		t.Fatalf("problems: %v", want.Problems)
	}
	for i := range 20 {
		p, n, np := slices.Clone(pods), slices.Clone(nss), slices.Clone(policies)
		// Rotate and reverse differently each round.
		p = append(p[i%len(p):], p[:i%len(p)]...)
		np = append(np[i%len(np):], np[:i%len(np)]...)
		if i%2 == 1 {
			slices.Reverse(p)
			slices.Reverse(n)
			slices.Reverse(np)
		}
		got := Compile(Input{Pods: p, Namespaces: n, Policies: np})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: output differs with input order", i)
		}
	}
}

// A target's addresses come from status.podIPs, falling back to
// status.podIP, sorted IPv4 first.
func TestCompilePodIPs(t *testing.T) {
	only := newPod("x/old", "")
	only.Status.PodIP = "10.0.1.40"
	out := Compile(Input{Pods: []*corev1.Pod{
		newPod("x/dual", "fd00::1:50,10.0.1.50"), only,
		newPod("x/bad", "not-an-ip"),
	}})
	cases := map[string][]netip.Addr{
		"x/dual": {netip.MustParseAddr("10.0.1.50"), netip.MustParseAddr("fd00::1:50")},
		"x/old":  {netip.MustParseAddr("10.0.1.40")},
	}
	for key, want := range cases {
		if got := out.Pods[key].IPs; !slices.Equal(got, want) {
			t.Errorf("%s IPs %v, want %v", key, got, want)
		}
	}
	if _, ok := out.Pods["x/bad"]; ok {
		t.Errorf("x/bad has no usable IP but is a target")
	}
}

// Nil entries are skipped, not dereferenced.
func TestCompileNilEntries(t *testing.T) {
	out := Compile(Input{
		Pods:       []*corev1.Pod{nil, newPod("x/a", "10.0.1.10")},
		Namespaces: []*corev1.Namespace{nil},
		Policies:   []*networkingv1.NetworkPolicy{nil, netpol("x/p", all())},
	})
	if !out.Pods["x/a"].Ingress.Isolated {
		t.Errorf("x/a not isolated by x/p: %+v", out.Pods["x/a"])
	}
}
