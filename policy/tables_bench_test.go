package policy

import (
	"net/netip"
	"testing"
)

// BenchmarkPlace places benchInput's 1,000 pods as if all were on one node,
// with one service per app (its pod as backend, a ClusterIP and a NodePort).
func BenchmarkPlace(b *testing.B) {
	compiled := Compile(benchInput())
	in := PlaceInput{Rules: compiled.Pods, NodeAddresses: addrs("192.168.0.1")}
	sw := uint32(1)
	for key, pr := range compiled.Pods {
		in.Local = append(in.Local, LocalPod{Pod: key, SwIfIndexes: []uint32{sw}})
		sw++
		for _, ip := range pr.IPs {
			backend := []netip.AddrPort{netip.AddrPortFrom(ip, 80)}
			vip := netip.AddrFrom4([4]byte{10, 96, byte(sw >> 8), byte(sw)})
			in.Frontends = append(in.Frontends,
				Frontend{Addr: netip.AddrPortFrom(vip, 80), Protocol: uint8(TCP), Service: key, Backends: backend},
				Frontend{Addr: netip.AddrPortFrom(addrs("192.168.0.1")[0], uint16(30000+sw)), Protocol: uint8(TCP),
					Service: key, Backends: backend})
		}
	}
	var out Placement
	for b.Loop() {
		out = Place(in)
	}
	b.StopTimer()
	rules := 0
	for _, a := range out.Desired.ACLs {
		rules += len(a.Rules)
	}
	if len(out.Desired.Bindings) != len(in.Local)-1 { // coredns is selected by no policy
		b.Fatalf("%d bindings for %d pods", len(out.Desired.Bindings), len(in.Local))
	}
	b.ReportMetric(float64(len(out.Desired.ACLs)), "acls")
	b.ReportMetric(float64(rules), "rules")
}
