package nodenet

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

func node(name string, cidrs []string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: cidrs}}
	for _, a := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return n
}

func TestTranslate(t *testing.T) {
	const uplink = 1
	pfx := netip.MustParsePrefix
	via := func(a string) []ip.Path { return []ip.Path{{NextHop: netip.MustParseAddr(a), SwIfIndex: uplink}} }
	drop := []ip.Path{{Type: ip.Drop}}

	tests := []struct {
		name       string
		nodes      []*corev1.Node
		wantAddrs  []string
		wantRoutes map[string][]ip.Path
		wantProbs  []string // substrings, one per problem
	}{
		{
			name: "three nodes",
			nodes: []*corev1.Node{
				node("a", []string{"10.244.0.0/24"}, "192.168.10.11"),
				node("b", []string{"10.244.1.0/24"}, "192.168.10.12"),
				node("c", []string{"10.244.2.0/24", "fd00:10:244:2::/64"}, "192.168.10.13", "fd00:192:168:10::13"),
			},
			wantAddrs: []string{"10.244.0.1/32"},
			wantRoutes: map[string][]ip.Path{
				"10.244.0.0/24":      drop,
				"10.244.1.0/24":      via("192.168.10.12"),
				"10.244.2.0/24":      via("192.168.10.13"),
				"fd00:10:244:2::/64": via("fd00:192:168:10::13"),
			},
		},
		{
			name: "dual-stack self, legacy podCIDR on a peer",
			nodes: []*corev1.Node{
				node("a", []string{"10.244.0.0/24", "fd00:10:244::/64"}, "192.168.10.11"),
				{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"},
					Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.10.12"}}}},
			},
			wantAddrs: []string{"10.244.0.1/32", "fd00:10:244::1/128"},
			wantRoutes: map[string][]ip.Path{
				"10.244.0.0/24":    drop,
				"fd00:10:244::/64": drop,
				"10.244.1.0/24":    via("192.168.10.12"),
			},
		},
		{
			name: "bad fields are reported per node and skipped",
			nodes: []*corev1.Node{
				node("a", []string{"10.244.0.0/24"}, "192.168.10.11"),
				node("b", []string{"10.244.1.0/33"}, "192.168.10.12"),
				node("c", []string{"10.244.2.7/24"}, "192.168.10.13"),
				node("d", []string{"fd00:10:244:3::/64"}, "192.168.10.14"),
				node("e", []string{"10.244.4.0/24"}, "192.168.10.15"),
			},
			wantAddrs: []string{"10.244.0.1/32"},
			wantRoutes: map[string][]ip.Path{
				"10.244.0.0/24": drop,
				"10.244.4.0/24": via("192.168.10.15"),
			},
			wantProbs: []string{"node b: spec.podCIDRs", "node c: spec.podCIDRs: \"10.244.2.7/24\" has host bits", "node d: status.addresses"},
		},
		{
			name:      "this node missing",
			nodes:     []*corev1.Node{node("b", []string{"10.244.1.0/24"}, "192.168.10.12")},
			wantProbs: []string{"node a: metadata.name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Translate(Input{NodeName: "a", Nodes: tt.nodes, Uplink: uplink})
			if len(out.Problems) != len(tt.wantProbs) {
				t.Fatalf("problems = %v, want %d", out.Problems, len(tt.wantProbs))
			}
			for i, p := range out.Problems {
				if !strings.Contains(p.Error(), tt.wantProbs[i]) {
					t.Errorf("problem %d = %q, want it to contain %q", i, p.Error(), tt.wantProbs[i])
				}
			}
			if tt.wantAddrs == nil {
				if len(out.Interfaces.Loopbacks) != 0 || len(out.FIB.Routes) != 0 {
					t.Fatalf("programmed state without knowing this node: %+v", out)
				}
				return
			}
			if len(out.Interfaces.Loopbacks) != 1 {
				t.Fatalf("loopbacks = %+v, want the node loopback", out.Interfaces.Loopbacks)
			}
			lo := out.Interfaces.Loopbacks[0]
			if lo.Tag != "kube-vpp:loopback:node" || !lo.Up {
				t.Errorf("loopback = %+v", lo)
			}
			var got []string
			for _, a := range lo.Addresses {
				got = append(got, a.String())
			}
			if strings.Join(got, ",") != strings.Join(tt.wantAddrs, ",") {
				t.Errorf("loopback addresses = %v, want %v", got, tt.wantAddrs)
			}
			if len(out.FIB.Routes) != len(tt.wantRoutes) {
				t.Errorf("routes = %+v, want %d", out.FIB.Routes, len(tt.wantRoutes))
			}
			for _, r := range out.FIB.Routes {
				want, ok := tt.wantRoutes[r.Prefix.String()]
				if !ok {
					t.Errorf("unexpected route %s", r.Prefix)
					continue
				}
				if r.Table != 0 || len(r.Paths) != len(want) || r.Paths[0] != want[0] {
					t.Errorf("route %s = %+v, want paths %+v in table 0", r.Prefix, r, want)
				}
				if r.Prefix != pfx(r.Prefix.String()) {
					t.Errorf("route prefix %s not canonical", r.Prefix)
				}
			}
		})
	}
}
