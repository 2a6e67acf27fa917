package pods

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// namedNetns lists /var/run/netns, what `ip netns list` shows.
func namedNetns(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func hostLinkExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		t.Fatalf("looking up %s: %v", name, err)
	}
	return err == nil
}

// manifestPod is a pod of a manifests folder, on node-a, with its address
// in status.podIPs.
func manifestPod(name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name},
		Spec:       corev1.PodSpec{NodeName: "node-a"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

// forward evaluates a packet from the node loopback to dst and returns the
// sw_if_index it leaves by, or the verdict's reason when it is not forwarded.
func (e *testEnv) forward(dst string) (uint32, string) {
	e.t.Helper()
	res, err := e.vpp.Sim.Evaluate(sim.Packet{Ingress: e.node.Loopback, Src: netip.MustParseAddr("10.244.0.1"),
		Dst: netip.MustParseAddr(dst), Protocol: 6, SrcPort: 40000, DstPort: 80})
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Verdict != sim.Forwarded {
		return 0, string(res.Verdict) + ": " + res.Reason
	}
	return res.Egress, ""
}

// TestVirtualStandalone: with Config.Virtual, Standalone plumbs manifest
// pods in VPP only (interface of the pod's kind, unnumbered, host route) and
// leaves the host alone; restarts of the agent and of VPP keep the pods,
// ADD is refused, and pods leaving the folder are removed.
func TestVirtualStandalone(t *testing.T) {
	for _, kind := range []Kind{KindTap, KindVeth} {
		t.Run(string(kind), func(t *testing.T) {
			netnsBefore := namedNetns(t)
			e := newVirtualEnv(t, kind)
			e.cluster.addPod("demo", "fast", map[string]string{AnnotationInterface: "memif"})
			e.cluster.addPod("demo", "vm", map[string]string{AnnotationInterface: "vhost-user"})
			list := []*corev1.Pod{manifestPod("web", "10.244.0.10"), manifestPod("fast", "10.244.0.11"), manifestPod("vm", "10.244.0.12")}
			if problems := e.m.Standalone(context.Background(), "node-a", list); len(problems) != 0 {
				t.Fatalf("problems: %v", problems)
			}
			// The interface carrying each pod's address: the node's default
			// kind for web and fast (whose memif comes second), vhost-user for vm.
			primary := interfaces.PodTap
			if kind == KindVeth {
				primary = interfaces.PodAfPacket
			}
			wantKinds := map[string][]interfaces.PodKind{
				"web": {primary}, "fast": {primary, interfaces.PodMemif}, "vm": {interfaces.PodVhostUser},
			}
			byPod := map[string][]interfaces.PodLink{}
			for _, r := range e.m.ipam.Records() {
				pl, err := plumbingOf(r)
				if err != nil {
					t.Fatal(err)
				}
				if pl.Netns != "" || !pl.Standalone {
					t.Errorf("pod %s recorded with namespace %q, standalone %t; want none, true", r.Pod, pl.Netns, pl.Standalone)
				}
				byPod[r.Pod] = e.m.links[r.ContainerID]
			}
			for pod, kinds := range wantKinds {
				var got []interfaces.PodKind
				for _, l := range byPod[pod] {
					got = append(got, l.Kind)
				}
				if !slices.Equal(got, kinds) {
					t.Errorf("pod %s has interfaces %v, want %v", pod, got, kinds)
				}
			}
			for pod, ip := range map[string]string{"web": "10.244.0.10", "fast": "10.244.0.11"} {
				if egress, why := e.forward(ip); len(byPod[pod]) == 0 || egress != byPod[pod][0].SwIfIndex {
					t.Errorf("to %s (%s): egress %d (%s), want its interface %v", ip, pod, egress, why, byPod[pod])
				}
			}
			// VPP keeps a vhost-user link down until a guest connects, and
			// none does: the host route leads to a down interface.
			if _, why := e.forward("10.244.0.12"); len(byPod["vm"]) == 0 || !strings.Contains(why, byPod["vm"][0].Name+" for 10.244.0.12/32 is down") {
				t.Errorf("to 10.244.0.12 (vm): %q, want a drop at its down vhost-user interface %v", why, byPod["vm"])
			}
			if kind == KindVeth {
				for _, r := range e.m.ipam.Records() {
					if v := vethName(r.ContainerID, "eth0"); hostLinkExists(t, v) {
						t.Errorf("veth %s exists on the host", v)
					}
				}
			}
			for _, sock := range []string{podSocket(e.cfg.MemifDir, "demo", "fast", "memif.sock"), podSocket(e.cfg.VhostDir, "demo", "vm", "vhost-user.sock")} {
				if _, err := os.Stat(sock); err == nil {
					t.Errorf("socket %s exists on the host", sock)
				}
			}

			// An agent restart adopts the pods without writing to VPP.
			writes := e.vpp.Sim.WriteCalls()
			e.m = e.start()
			if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
				t.Errorf("restart wrote %d times to VPP, want 0", w)
			}
			// A VPP restart: the pods have no namespace, and are made again, not released.
			e.vpp.Restart()
			e.m.Invalidate()
			idx, err := e.ifaces.Sync(context.Background(), loopbackDesired())
			if err != nil {
				t.Fatal(err)
			}
			e.node.Loopback = idx[loopbackTag()]
			e.m = e.start()
			if n := len(e.m.ipam.Records()); n != 3 {
				t.Fatalf("allocations after a VPP restart: %d, want 3", n)
			}
			if egress, why := e.forward("10.244.0.10"); egress == 0 {
				t.Errorf("web not reachable after a VPP restart: %s", why)
			}

			_, err = e.add(containerID(900), "/var/run/netns/any", "demo", "cni")
			if cniCode(err) != cni.CodePodNetwork || !strings.Contains(err.Error(), "virtual") {
				t.Errorf("ADD in virtual mode = %v, want code %d saying why", err, cni.CodePodNetwork)
			}

			e.m.Standalone(context.Background(), "node-a", nil)
			if recs := e.m.ipam.Records(); len(recs) != 0 {
				t.Errorf("allocations after the pods left the folder: %v", recs)
			}
			if links, err := e.ifaces.PodLinks(context.Background()); err != nil || len(links) != 0 {
				t.Errorf("pod interfaces after the pods left the folder: %v (%v)", links, err)
			}
			for _, ip := range []string{"10.244.0.10", "10.244.0.11", "10.244.0.12"} {
				if e.hostRoute(ip) {
					t.Errorf("host route to %s left behind", ip)
				}
			}
			// Other tests may make namespaces meanwhile; standalone ones are kvpp-*.
			for _, n := range namedNetns(t) {
				if strings.HasPrefix(n, "kvpp-") && !slices.Contains(netnsBefore, n) {
					t.Errorf("namespace %s appeared", n)
				}
			}
		})
	}
}
