package pods

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRestartAdoptsWithoutWrites: a new manager over the same state and VPP
// (an agent restart) adopts every pod, writes nothing to VPP, keeps every
// allocation, and DEL after the restart still removes everything.
func TestRestartAdoptsWithoutWrites(t *testing.T) {
	for _, kind := range []Kind{KindTap, KindVeth} {
		t.Run(string(kind), func(t *testing.T) {
			e := newTestEnv(t, kind)
			nets := []string{newNetns(t), newNetns(t)}
			for i, ns := range nets {
				if _, err := e.add(containerID(300+i), ns, "default", "p"+string(rune('0'+i))); err != nil {
					t.Fatal(err)
				}
			}
			before := e.m.ipam.Records()
			writes := e.vpp.Sim.WriteCalls()
			e.m = e.start()
			if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
				t.Errorf("restart wrote %d times to VPP, want 0: %v", w, e.vpp.Sim.CallCounts())
			}
			if after := e.m.ipam.Records(); len(after) != len(before) {
				t.Fatalf("allocations after restart: %v, before: %v", after, before)
			}
			if _, err := e.m.Serve(context.Background(), request("CHECK", containerID(300), nets[0], "default", "p0")); err != nil {
				t.Errorf("CHECK after restart: %v", err)
			}
			if _, err := e.m.Serve(context.Background(), request("DEL", containerID(300), nets[0], "default", "p0")); err != nil {
				t.Fatalf("DEL after restart: %v", err)
			}
			links, _ := e.ifaces.PodLinks(context.Background())
			if len(links) != 1 {
				t.Errorf("VPP pod interfaces after one DEL: %v, want one left", links)
			}
		})
	}
}

// TestStateFileLostRebuildsFromVPP: without the state file, the restarted
// agent recovers each allocation from the pod interface's tag and host
// route, so the addresses are not handed out twice and DEL (with the full
// container ID) still works.
func TestStateFileLostRebuildsFromVPP(t *testing.T) {
	e := newTestEnv(t, KindTap)
	ns := newNetns(t)
	if _, err := e.add(containerID(400), ns, "default", "web"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.stateDir, StateFile)); err != nil {
		t.Fatal(err)
	}
	writes := e.vpp.Sim.WriteCalls()
	e.m = e.start()
	if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
		t.Errorf("recovery wrote %d times to VPP, want 0", w)
	}
	recs := e.m.ipam.Records()
	if len(recs) != 1 || recs[0].Namespace != "default" || recs[0].Pod != "web" || len(recs[0].IPs) != 1 || recs[0].IPs[0] != netip.MustParseAddr("10.244.0.2") {
		t.Fatalf("recovered allocations: %+v, want default/web with 10.244.0.2", recs)
	}
	next, err := e.add(containerID(401), newNetns(t), "default", "other")
	if err != nil || next.IPs[0].Address.IP.String() == "10.244.0.2" {
		t.Fatalf("next ADD = %v, %v: must not reuse the recovered address", next, err)
	}
	if _, err := e.m.Serve(context.Background(), request("DEL", containerID(400), ns, "default", "web")); err != nil {
		t.Fatalf("DEL with the full container ID: %v", err)
	}
	if _, ok := e.m.record(containerID(400), nil); ok {
		t.Error("the recovered allocation survived DEL")
	}
}

// TestVPPRestartRemakesPods: VPP restarted (its taps died with it): the
// resync makes each pod's interface and route again, with the same address,
// in the namespace that still exists.
func TestVPPRestartRemakesPods(t *testing.T) {
	e := newTestEnv(t, KindTap)
	ns := newNetns(t)
	if _, err := e.add(containerID(500), ns, "default", "web"); err != nil {
		t.Fatal(err)
	}
	e.vpp.Restart()
	e.m.Invalidate()
	// The agent re-programs the node loopback first, then the pods.
	e2 := *e
	idx, err := e.ifaces.Sync(context.Background(), loopbackDesired())
	if err != nil {
		t.Fatal(err)
	}
	e2.node.Loopback = idx[loopbackTag()]
	if err := e.m.SetNode(e2.node); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Resync(context.Background()); err != nil {
		t.Fatalf("resync after VPP restart: %v", err)
	}
	if _, err := e.m.Serve(context.Background(), request("CHECK", containerID(500), ns, "default", "web")); err != nil {
		t.Errorf("CHECK after VPP restart: %v", err)
	}
	if out := ipIn(t, ns, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.244.0.2/32") {
		t.Errorf("pod address after VPP restart: %s", out)
	}
}

// TestResyncReleasesPodsWhoseNamespaceIsGone and removes VPP interfaces
// no allocation claims.
func TestResyncReleasesGonePods(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	gone := newNetns(t)
	if _, err := e.add(containerID(600), gone, "default", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := removeNetns(gone); err != nil {
		t.Fatal(err)
	}
	e.vpp.Restart() // the pod's interface must be re-made: its namespace decides
	e.m.Invalidate()
	idx, err := e.ifaces.Sync(context.Background(), loopbackDesired())
	if err != nil {
		t.Fatal(err)
	}
	e.node.Loopback = idx[loopbackTag()]
	e.m = e.start()
	if recs := e.m.ipam.Records(); len(recs) != 0 {
		t.Errorf("allocations of a pod whose namespace is gone: %v", recs)
	}
}

func TestStandalonePlumbsManifestPods(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	pod := func(name, node, ip string, phase corev1.PodPhase) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name}, Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase, PodIP: ip}}
		if ip != "" {
			p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
		}
		return p
	}
	list := []*corev1.Pod{
		pod("mine", "node-a", "10.244.0.10", corev1.PodRunning),
		pod("elsewhere", "node-b", "10.244.1.10", corev1.PodRunning),
		pod("done", "node-a", "", corev1.PodSucceeded),
		pod("wrong-ip", "node-a", "10.99.0.1", corev1.PodRunning),
	}
	t.Cleanup(func() {
		for _, r := range e.m.ipam.Records() {
			if pl, err := plumbingOf(r); err == nil {
				_ = removeNetns(pl.Netns)
			}
		}
	})
	problems := e.m.Standalone(context.Background(), "node-a", list)
	if len(problems) != 1 || problems["demo/wrong-ip"] == nil || !strings.Contains(problems["demo/wrong-ip"].Error(), "10.99.0.1") {
		t.Errorf("problems = %v, want only demo/wrong-ip, naming its address", problems)
	}
	recs := e.m.ipam.Records()
	if len(recs) != 1 || recs[0].Pod != "mine" || recs[0].IPs[0] != netip.MustParseAddr("10.244.0.10") {
		t.Fatalf("allocations = %+v, want demo/mine at status.podIP 10.244.0.10", recs)
	}
	pl, _ := plumbingOf(recs[0])
	if out := ipIn(t, pl.Netns, "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "10.244.0.10/32") {
		t.Errorf("standalone pod's eth0: %s", out)
	}
	// Unchanged folder: nothing written. Pod gone from the folder: deleted.
	writes := e.vpp.Sim.WriteCalls()
	e.m.Standalone(context.Background(), "node-a", list[:1])
	if w := e.vpp.Sim.WriteCalls() - writes; w != 0 {
		t.Errorf("an unchanged folder wrote %d times", w)
	}
	e.m.Standalone(context.Background(), "node-a", nil)
	if recs := e.m.ipam.Records(); len(recs) != 0 {
		t.Errorf("allocations after the pod left the folder: %v", recs)
	}
	if _, err := os.Stat(pl.Netns); !os.IsNotExist(err) {
		t.Errorf("the standalone pod's namespace %s is still there: %v", pl.Netns, err)
	}
}

// TestNewVPPConnectionWaitsForResync: pods reconciled under one VPP
// connection are not served under the next until a Resync re-reads VPP.
func TestNewVPPConnectionWaitsForResync(t *testing.T) {
	e := newTestEnv(t, KindVeth)
	var conn atomic.Uint64
	conn.Store(1)
	e.cfg.Connection = conn.Load
	e.m = e.start()
	ns := newNetns(t)
	if _, err := e.add(containerID(700), ns, "default", "web"); err != nil {
		t.Fatal(err)
	}
	conn.Store(2) // the agent's VPP client reconnected
	if e.m.Synced() {
		t.Error("Synced under a new connection before any Resync")
	}
	if _, err := e.add(containerID(701), newNetns(t), "default", "other"); cniCode(err) != 11 {
		t.Errorf("ADD before the resync = %v, want code 11 (try again later)", err)
	}
	if err := e.m.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Serve(context.Background(), request("CHECK", containerID(700), ns, "default", "web")); err != nil {
		t.Errorf("CHECK after the resync: %v", err)
	}
}
