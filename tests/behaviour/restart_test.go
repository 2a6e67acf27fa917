package behaviour

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/agent"
	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/offline"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// startAgent runs node-a's agent in this process over dir against the
// simulator at apiSock until the returned stop is called. run holds its
// sockets and state; a restarted agent gets the same one, as the
// DaemonSet's hostPath gives it.
func startAgent(t *testing.T, dir, run, apiSock string) (*ctl.Client, func()) {
	t.Helper()
	ctlSock := filepath.Join(run, "ctl.sock")
	cfg, err := config.Load([]string{"--healthz-bind-address=", "--node", "node-a", "--manifests", dir, "--vpp-socket", apiSock,
		"--ctl-socket", ctlSock, "--cni-socket", filepath.Join(run, "cni.sock"), "--state-dir", filepath.Join(run, "state"),
		"--http-listen", "127.0.0.1:0", "--uplink-interface", offline.Uplink, "--pod-interface", "tap",
		"--health-check-addresses", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pods.MemifDir, cfg.Pods.VhostDir = filepath.Join(run, "memif"), filepath.Join(run, "vhost")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.New(cfg, zaptest.NewLogger(t), agent.VirtualPods()).Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	c := ctl.NewClient(ctlSock)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.Status(context.Background())
		if err == nil && st.Ready {
			return c, stop
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("agent not ready: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Services stay up through restarts: a restarted agent on an unchanged
// cluster writes nothing to VPP, and a restarted VPP gets every mapping
// back.
func TestServicesThroughRestarts(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "cluster.yaml", clusterYAML)
	write(t, dir, "services.yaml", fmt.Sprintf(servicesYAML, freePort(t), freePort(t)))
	write(t, dir, "web-slices.yaml", webSlices(true))
	write(t, dir, "slices.yaml", otherSlices())
	vpp := simtest.Start(t, sim.Options{NoHost: true, Interfaces: []sim.InterfaceSpec{
		{Name: offline.Uplink, Addresses: []string{"192.168.10.11/24"}, Up: true}}})

	web := map[string]bool{"10.244.0.11:8080": true, "10.244.0.12:8080": true, "10.244.1.11:8080": true}
	trace := func(c *ctl.Client, to string) (ctl.TracePacket, string) {
		rep, err := c.Trace(context.Background(), ctl.TraceRequest{From: "default/client", To: to, Protocol: "tcp"})
		if err != nil {
			return ctl.TracePacket{}, err.Error()
		}
		return rep.Packets[0], rep.Packets[0].String()
	}
	served := func(c *ctl.Client) (bool, string) {
		p, got := trace(c, "10.96.0.20:80")
		return p.Verdict == "forwarded" && web[dnat(p)], got
	}
	rejected := func(c *ctl.Client) (bool, string) {
		p, got := trace(c, "10.96.0.50:80")
		return p.Verdict == "rejected", got
	}
	// default/client is inside lbfw's source ranges; 198.51.100.200 is not.
	firewalled := func(c *ctl.Client) (bool, string) {
		rep, err := c.Trace(context.Background(), ctl.TraceRequest{From: "198.51.100.200", To: "198.18.0.11:80", Protocol: "tcp"})
		if err != nil {
			return false, err.Error()
		}
		p := rep.Packets[0]
		return p.Verdict == "dropped" && dnat(p) == "", p.String()
	}

	run := t.TempDir()
	c, stop := startAgent(t, dir, run, vpp.Path)
	if ok, got := served(c); !ok {
		t.Fatalf("before any restart: %s", got)
	}
	stop()
	// Traces create NAT sessions (writes of the dataplane, not of the
	// agent): count from here.
	before := vpp.Writes()
	c, stop = startAgent(t, dir, run, vpp.Path)
	defer func() { stop() }()
	if w := vpp.Writes() - before; w != 0 {
		t.Errorf("restarted agent on an unchanged cluster wrote %d times to VPP, want 0: %v", w, vpp.Sim.CallCounts())
	}
	if ok, got := served(c); !ok {
		t.Errorf("after an agent restart: %s", got)
	}
	if ok, got := firewalled(c); !ok {
		t.Errorf("after an agent restart, a client outside lbfw's source ranges: %s, want dropped", got)
	}

	// Mappings come back before reject routes (one sync programs NAT
	// first), so wait for both.
	vpp.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, got := served(c)
		rej, gotRej := rejected(c)
		fw, gotFw := firewalled(c)
		if ok && rej && fw {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a VPP restart: web service %s, want forwarded; no-endpoint service %s, want rejected (reject routes back); "+
				"client outside lbfw's source ranges %s, want dropped (firewall back)", got, gotRej, gotFw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
