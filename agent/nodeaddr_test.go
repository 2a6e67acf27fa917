package agent

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNodeAddresses(t *testing.T) {
	n := &corev1.Node{
		Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.0.0/24", "fd00:10:244::/64", "bad"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "192.168.10.11"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.50"},
			{Type: corev1.NodeInternalIP, Address: "fd00::11"},
			{Type: corev1.NodeInternalIP, Address: "192.168.10.11"}, // listed twice
			{Type: corev1.NodeHostName, Address: "node-a"},
			{Type: corev1.NodeInternalDNS, Address: "10.9.9.9"}, // not an address NodePorts serve
		}},
	}
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct {
		name  string
		cidrs []netip.Prefix
		want  []netip.Addr
	}{
		// kube-proxy's nodePortAddresses: the node's IPv4 addresses (NAT44),
		// all of them without CIDRs, else those inside.
		{"all", nil, addrs("192.168.10.11", "203.0.113.50")},
		{"filtered", []netip.Prefix{netip.MustParsePrefix("192.168.10.0/24")}, addrs("192.168.10.11")},
		{"none match", []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}, nil},
	}
	for _, tt := range tests {
		if got := nodePortAddresses(n, tt.cidrs); !slices.Equal(got, tt.want) {
			t.Errorf("%s: nodePortAddresses = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Always-allowed policy sources: node addresses and pod gateways.
	want := addrs("10.244.0.1", "192.168.10.11", "203.0.113.50", "fd00::11", "fd00:10:244::1")
	if got := (&Agent{}).nodeAddresses(n); !slices.Equal(got, want) {
		t.Errorf("nodeAddresses = %v, want %v", got, want)
	}
	if nodePortAddresses(nil, nil) != nil || podGateways(nil) != nil {
		t.Error("a missing node has addresses")
	}
}
