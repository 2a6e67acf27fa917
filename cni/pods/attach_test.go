package pods

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

// attachRecorder is a Config.OnAttach that records its calls, checks that
// the interfaces are up and routed when it runs, and fails for one pod.
type attachRecorder struct {
	e      *testEnv
	failOn string
	ips    map[string]string // pod -> its address, to check the host route

	mu    sync.Mutex
	calls map[string][]uint32
	errs  []string
}

func (a *attachRecorder) hook(ctx context.Context, pod string, ips []netip.Addr, swIfIndexes []uint32) error {
	links, err := a.e.ifaces.PodLinks(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[pod] = slices.Clone(swIfIndexes)
	if err != nil {
		a.errs = append(a.errs, err.Error())
	}
	if want, ok := a.ips[pod]; ok && !slices.Contains(ips, netip.MustParseAddr(want)) {
		a.errs = append(a.errs, fmt.Sprintf("%s: hook got addresses %v, want %s among them", pod, ips, want))
	}
	for _, idx := range swIfIndexes {
		up := false
		for _, l := range links {
			up = up || (l.SwIfIndex == idx && l.Up)
		}
		if !up {
			a.errs = append(a.errs, "sw_if_index not an up pod interface when the hook ran")
		}
	}
	if egress, why := a.e.forward(a.ips[pod]); len(swIfIndexes) == 0 || egress != swIfIndexes[0] {
		a.errs = append(a.errs, pod+": no host route when the hook ran: "+why)
	}
	if pod == a.failOn {
		return errors.New("no NAT role for you")
	}
	return nil
}

// hostRoute reports whether VPP has the pods' host route to addr (read back
// from VPP, not from the driver's cache).
func (e *testEnv) hostRoute(addr string) bool {
	e.t.Helper()
	routes, err := e.m.fib.Routes(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	want := netip.MustParsePrefix(addr + "/32")
	return slices.ContainsFunc(routes, func(r ip.Route) bool { return r.Prefix == want })
}

// linksOfPod is the sw_if_indexes of a pod's interfaces in VPP, primary first.
func (e *testEnv) linksOfPod(id, namespace, name string) []uint32 {
	e.t.Helper()
	links, err := e.ifaces.PodLinks(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []uint32
	for _, tag := range []string{podTag(id, namespace, name), memifTag(id, namespace, name)} {
		if l, ok := links[tag]; ok {
			out = append(out, l.SwIfIndex)
		}
	}
	return out
}

// TestOnAttachAdd: the hook gets each pod's VPP interfaces (a veth pod's
// af_packet; a memif pod's af_packet and memif) after they are up and
// routed; when it fails, ADD fails and leaves no interface, route, veth or
// allocation behind.
func TestOnAttachAdd(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	rec := &attachRecorder{e: e, failOn: "default/bad", calls: map[string][]uint32{},
		ips: map[string]string{"default/web": "10.244.0.2", "default/fast": "10.244.0.3", "default/bad": "10.244.0.4"}}
	e.cfg.OnAttach = rec.hook
	e.m = e.start()
	e.cluster.addPod("default", "fast", map[string]string{AnnotationInterface: "memif"})

	for i, pod := range []string{"web", "fast"} {
		id := containerID(1000 + i)
		if _, err := e.add(id, newNetns(t), "default", pod); err != nil {
			t.Fatalf("ADD %s: %v", pod, err)
		}
		want := e.linksOfPod(id, "default", pod)
		if got := rec.calls["default/"+pod]; len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("hook saw %v for %s, want its interfaces %v", got, pod, want)
		}
	}
	if n := len(rec.calls["default/fast"]); n != 2 {
		t.Errorf("hook saw %d interfaces of the memif pod, want 2", n)
	}

	id, ns := containerID(1002), newNetns(t)
	_, err := e.add(id, ns, "default", "bad")
	if cniCode(err) != cni.CodeVPP || !strings.Contains(err.Error(), "no NAT role for you") {
		t.Fatalf("ADD with a failing hook = %v, want code %d with the hook's error", err, cni.CodeVPP)
	}
	if rec.calls["default/bad"] == nil {
		t.Fatal("the hook was not called for default/bad")
	}
	if left := e.linksOfPod(id, "default", "bad"); len(left) != 0 {
		t.Errorf("VPP interfaces left behind: %v", left)
	}
	if _, ok := e.m.record(id, nil); ok {
		t.Error("allocation left behind")
	}
	if e.hostRoute("10.244.0.4") {
		t.Error("host route to 10.244.0.4 left behind")
	}
	if v := vethName(id, "eth0"); hostLinkExists(t, v) {
		t.Errorf("veth %s left behind", v)
	}
	if out := ipIn(t, ns, "-o", "link", "show"); strings.Contains(out, "eth0") {
		t.Errorf("pod end left in the namespace: %s", out)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, msg := range rec.errs {
		t.Error(msg)
	}
}

// TestOnAttachVirtualStandalone: the hook runs for virtual pods too; a pod
// it fails is reported by Standalone and leaves nothing in VPP.
func TestOnAttachVirtualStandalone(t *testing.T) {
	e := newVirtualEnv(t, KindTap)
	rec := &attachRecorder{e: e, failOn: "demo/bad", calls: map[string][]uint32{},
		ips: map[string]string{"demo/web": "10.244.0.10", "demo/bad": "10.244.0.11"}}
	e.cfg.OnAttach = rec.hook
	e.m = e.start()
	problems := e.m.Standalone(context.Background(), "node-a", []*corev1.Pod{manifestPod("web", "10.244.0.10"), manifestPod("bad", "10.244.0.11")})
	if len(problems) != 1 || problems["demo/bad"] == nil || !strings.Contains(problems["demo/bad"].Error(), "no NAT role for you") {
		t.Fatalf("problems = %v, want demo/bad with the hook's error", problems)
	}
	web := e.linksOfPod(e.m.standaloneID("demo", "web"), "demo", "web")
	if got := rec.calls["demo/web"]; len(web) != 1 || !slices.Equal(got, web) {
		t.Errorf("hook saw %v for demo/web, want %v", got, web)
	}
	if left := e.linksOfPod(e.m.standaloneID("demo", "bad"), "demo", "bad"); len(left) != 0 || rec.calls["demo/bad"] == nil {
		t.Errorf("demo/bad: interfaces left %v, hook saw %v", left, rec.calls["demo/bad"])
	}
	if recs := e.m.ipam.Records(); len(recs) != 1 || recs[0].Pod != "web" {
		t.Errorf("allocations = %v, want demo/web only", recs)
	}
	if e.hostRoute("10.244.0.11") {
		t.Error("host route to demo/bad left behind")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, msg := range rec.errs {
		t.Error(msg)
	}
}
