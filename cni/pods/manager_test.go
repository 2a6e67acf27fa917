package pods

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// ipIn runs `ip -n <netns> args...` and returns its output.
func ipIn(t *testing.T, netnsPath string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", filepath.Base(netnsPath)}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", filepath.Base(netnsPath), args, err, out)
	}
	return string(out)
}

func TestAddDelTapAndVeth(t *testing.T) {
	for i, kind := range []Kind{KindTap, KindVeth} {
		t.Run(string(kind), func(t *testing.T) {
			e := newTestEnv(t, kind)
			ns := newNetns(t)
			id := containerID(200 + i)
			res, err := e.add(id, ns, "default", "web")
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			// First address of 10.244.0.0/24 after the network (.0) and the
			// gateway (.1) the node loopback holds.
			if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.244.0.2/32" || res.IPs[0].Gateway.String() != "10.244.0.1" {
				t.Fatalf("IPs = %v, want 10.244.0.2/32 via 10.244.0.1", res.IPs)
			}
			if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != "10.244.0.1" {
				t.Errorf("routes = %v, want default via 10.244.0.1", res.Routes)
			}
			if !reflect.DeepEqual(res.DNS.Nameservers, []string{"10.96.0.10"}) {
				t.Errorf("DNS = %+v, want the conflist's", res.DNS)
			}
			pod := res.Interfaces[*res.IPs[0].Interface]
			if pod.Name != "eth0" || pod.Sandbox != ns || pod.Mtu != 1400 {
				t.Errorf("pod interface = %+v, want eth0 in %s with MTU 1400", pod, ns)
			}
			if addr := ipIn(t, ns, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(addr, "inet 10.244.0.2/32") {
				t.Errorf("eth0 addresses: %s", addr)
			}
			if r := ipIn(t, ns, "route", "show", "default"); !strings.Contains(r, "default via 10.244.0.1 dev eth0") {
				t.Errorf("default route: %q", r)
			}
			links, err := e.ifaces.PodLinks(context.Background())
			if err != nil || len(links) != 1 {
				t.Fatalf("VPP pod interfaces = %v, %v; want one", links, err)
			}
			for tg, l := range links {
				if want := podTag(id, "default", "web"); tg != want || !l.Up {
					t.Errorf("VPP interface %+v, want tag %s and up", l, want)
				}
				if r, ok := e.m.fib.Programmed(0, netip.MustParsePrefix("10.244.0.2/32")); !ok || r.Paths[0].SwIfIndex != l.SwIfIndex {
					t.Errorf("host route = %v (%v), want via sw_if_index %d", r, ok, l.SwIfIndex)
				}
				// On an L2 link the pod reaches its gateway at VPP's MAC,
				// without ARP; a TUN link has no MAC at all.
				neigh := ipIn(t, ns, "neigh", "show", "10.244.0.1", "dev", "eth0")
				switch kind {
				case KindVeth:
					if len(l.MAC) != 6 || !strings.Contains(neigh, "lladdr "+l.MAC.String()+" PERMANENT") {
						t.Errorf("gateway neighbour %q, want VPP's MAC %s, permanent", neigh, l.MAC)
					}
				case KindTap:
					if l.MAC != nil || strings.TrimSpace(neigh) != "" {
						t.Errorf("TUN pod: MAC %s, neighbour %q; want neither", l.MAC, neigh)
					}
				}
			}

			// ADD again: the same answer and nothing written to VPP.
			writes := e.vpp.Sim.WriteCalls()
			again, err := e.add(id, ns, "default", "web")
			if err != nil || again.IPs[0].Address.String() != "10.244.0.2/32" {
				t.Fatalf("repeated ADD = %v, %v", again, err)
			}
			if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
				t.Errorf("repeated ADD wrote %d times to VPP, want 0", w)
			}
			if _, err := e.m.Serve(context.Background(), request("CHECK", id, ns, "default", "web")); err != nil {
				t.Errorf("CHECK of an intact pod: %v", err)
			}

			if _, err := e.m.Serve(context.Background(), request("DEL", id, ns, "default", "web")); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if links, _ := e.ifaces.PodLinks(context.Background()); len(links) != 0 {
				t.Errorf("VPP still has %v after DEL", links)
			}
			if _, ok := e.m.fib.Programmed(0, netip.MustParsePrefix("10.244.0.2/32")); ok {
				t.Error("host route left after DEL")
			}
			if out, _ := exec.Command("ip", "-n", filepath.Base(ns), "link", "show", "eth0").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
				t.Errorf("eth0 still in the pod after DEL: %s", out)
			}
			if len(e.m.ipam.Records()) != 0 {
				t.Errorf("allocations after DEL: %v", e.m.ipam.Records())
			}
			if _, err := e.m.Serve(context.Background(), request("DEL", id, ns, "default", "web")); err != nil {
				t.Errorf("second DEL: %v, want success", err)
			}
		})
	}
}

func TestCheckReportsWhatIsMissing(t *testing.T) {
	tests := []struct {
		name   string
		break_ []string // ip -n <ns> arguments that damage the pod
		want   string
	}{
		{name: "interface deleted", break_: []string{"link", "del", "eth0"}, want: "eth0"},
		{name: "address removed", break_: []string{"addr", "del", "10.244.0.2/32", "dev", "eth0"}, want: "10.244.0.2"},
		{name: "default route removed", break_: []string{"route", "del", "default"}, want: "default route"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, KindVeth)
			ns := newNetns(t)
			// A namespace is freed asynchronously: a fresh container ID
			// per case keeps the previous case's veth out of the way.
			id := containerID(100 + i)
			if _, err := e.add(id, ns, "default", "web"); err != nil {
				t.Fatal(err)
			}
			ipIn(t, ns, tt.break_...)
			_, err := e.m.Serve(context.Background(), request("CHECK", id, ns, "default", "web"))
			if err == nil || cniCode(err) != cni.CodePodNetwork || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CHECK = %v, want code %d naming %q", err, cni.CodePodNetwork, tt.want)
			}
			// A repeated ADD repairs the pod with the same address.
			res, err := e.add(id, ns, "default", "web")
			if err != nil || res.IPs[0].Address.String() != "10.244.0.2/32" {
				t.Fatalf("ADD after damage = %v, %v", res, err)
			}
			if _, err := e.m.Serve(context.Background(), request("CHECK", id, ns, "default", "web")); err != nil {
				t.Errorf("CHECK after repair: %v", err)
			}
		})
	}
}

func TestCheckUnknownContainer(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	_, err := e.m.Serve(context.Background(), request("CHECK", containerID(9), newNetns(t), "default", "web"))
	if cniCode(err) != types.ErrUnknownContainer {
		t.Fatalf("CHECK of an unknown container = %v, want code %d", err, types.ErrUnknownContainer)
	}
}

// TestBadInputChangesNothing: each refused ADD leaves VPP, the pod's
// namespace and the allocations exactly as they were.
func TestBadInputChangesNothing(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	first := newNetns(t)
	if _, err := e.add(containerID(0), first, "default", "first"); err != nil {
		t.Fatal(err)
	}
	e.cluster.addPod("default", "bad-kind", map[string]string{AnnotationInterface: "sriov"})
	e.cluster.addPod("default", "outside", map[string]string{AnnotationIP: "10.245.0.9"})
	e.cluster.addPod("default", "taken", map[string]string{AnnotationIP: "10.244.0.2"})
	e.cluster.addPod("default", "gateway", map[string]string{AnnotationIP: "10.244.0.1"})
	e.cluster.addPod("default", "garbage-ip", map[string]string{AnnotationIP: "ten.two"})
	e.cluster.addNamespace("pooled", map[string]string{AnnotationIPPool: "10.250.0.0/24"})
	tests := []struct {
		name   string
		req    *cni.Request
		code   uint
		substr string
	}{
		{"missing namespace", request("ADD", containerID(1), "/var/run/netns/kvpt-does-not-exist", "default", "x"), types.ErrInvalidNetNS, "kvpt-does-not-exist"},
		{"unknown interface kind", request("ADD", containerID(2), newNetns(t), "default", "bad-kind"), cni.CodeAnnotation, `kube-vpp.io/interface="sriov"`},
		{"fixed IP outside the node range", request("ADD", containerID(3), newNetns(t), "default", "outside"), cni.CodeIPAM, "10.245.0.9"},
		{"fixed IP taken", request("ADD", containerID(4), newNetns(t), "default", "taken"), cni.CodeIPAM, "default/first"},
		{"fixed IP is the gateway", request("ADD", containerID(5), newNetns(t), "default", "gateway"), cni.CodeIPAM, "10.244.0.1"},
		{"fixed IP not an address", request("ADD", containerID(6), newNetns(t), "default", "garbage-ip"), cni.CodeAnnotation, "kube-vpp.io/ip"},
		{"pool outside the node range", request("ADD", containerID(7), newNetns(t), "pooled", "p"), cni.CodeAnnotation, "10.250.0.0/24"},
		{"malformed conflist", func() *cni.Request {
			r := request("ADD", containerID(8), newNetns(t), "default", "x")
			r.Config = []byte(`{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni","mtu":-1}`)
			return r
		}(), types.ErrInvalidNetworkConfig, "mtu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writes, before := e.vpp.Sim.WriteCalls(), e.m.ipam.Records()
			_, err := e.m.Serve(context.Background(), tt.req)
			if cniCode(err) != tt.code || !strings.Contains(err.Error(), tt.substr) {
				t.Fatalf("ADD = %v, want code %d containing %q", err, tt.code, tt.substr)
			}
			if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
				t.Errorf("a refused ADD wrote %d times to VPP", w)
			}
			if after := e.m.ipam.Records(); !reflect.DeepEqual(before, after) {
				t.Errorf("allocations changed:\n before %v\n after  %v", before, after)
			}
			if tt.req.Netns != "" {
				if out, _ := exec.Command("ip", "-n", filepath.Base(tt.req.Netns), "link", "show", "eth0").CombinedOutput(); strings.Contains(string(out), "eth0@") {
					t.Errorf("a refused ADD left eth0 in the pod: %s", out)
				}
			}
		})
	}
	if _, err := e.m.Serve(context.Background(), request("CHECK", containerID(0), first, "default", "first")); err != nil {
		t.Errorf("the pod programmed before is no longer intact: %v", err)
	}
}

func TestFiftyConcurrentAdds(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	const n = 50
	nets := make([]string, n)
	for i := range nets {
		nets[i] = newNetns(t)
	}
	ips := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := e.add(containerID(i), nets[i], "default", "pod-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			errs[i] = err
			if err == nil {
				ips[i] = res.IPs[0].Address.IP.String()
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		if j, dup := seen[ips[i]]; dup {
			t.Fatalf("pods %d and %d both got %s", i, j, ips[i])
		}
		seen[ips[i]] = i
	}
	if got := len(e.m.ipam.Records()); got != n {
		t.Errorf("%d allocations recorded, want %d", got, n)
	}
	links, err := e.ifaces.PodLinks(context.Background())
	if err != nil || len(links) != n {
		t.Errorf("VPP has %d pod interfaces (%v), want %d", len(links), err, n)
	}
	// The state file on disk lists every allocation too.
	var state struct {
		Records []json.RawMessage `json:"records"`
	}
	data, err := os.ReadFile(filepath.Join(e.stateDir, StateFile))
	if err != nil || json.Unmarshal(data, &state) != nil || len(state.Records) != n {
		t.Errorf("state file has %d records (%v), want %d", len(state.Records), err, n)
	}
}

// TestPodsReachEachOtherThroughVPP evaluates a packet from one pod's
// interface to another pod's address in the simulator.
func TestPodsReachEachOtherThroughVPP(t *testing.T) {
	e := newTestEnv(t, KindTap)
	a, err := e.add(containerID(1), newNetns(t), "default", "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.add(containerID(2), newNetns(t), "default", "b")
	if err != nil {
		t.Fatal(err)
	}
	links, _ := e.ifaces.PodLinks(context.Background())
	la, lb := links[podTag(containerID(1), "default", "a")], links[podTag(containerID(2), "default", "b")]
	src, _ := netip.AddrFromSlice(a.IPs[0].Address.IP)
	dst, _ := netip.AddrFromSlice(b.IPs[0].Address.IP)
	got, err := e.vpp.Sim.Evaluate(sim.Packet{Ingress: la.SwIfIndex, Src: src.Unmap(), Dst: dst.Unmap(), Protocol: 6, SrcPort: 40000, DstPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != sim.Forwarded || got.Egress != lb.SwIfIndex {
		t.Errorf("a -> b: %+v, want forwarded out of b's interface (sw_if_index %d)", got, lb.SwIfIndex)
	}
	// An address of the node's range that no pod holds hits the blackhole
	// of... nothing here: the node routes are not part of this test, so it
	// has no route at all and is dropped.
	got, err = e.vpp.Sim.Evaluate(sim.Packet{Ingress: la.SwIfIndex, Src: src.Unmap(), Dst: netip.MustParseAddr("10.244.0.77"), Protocol: 17, SrcPort: 1, DstPort: 53})
	if err != nil || got.Verdict != sim.Dropped {
		t.Errorf("a -> unassigned address: %+v, %v; want dropped", got, err)
	}
}
