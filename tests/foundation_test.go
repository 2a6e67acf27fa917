package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vppif "go.fd.io/govpp/binapi/interface"

	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

const uplinkSpec = "GigabitEthernet0/8/0=192.168.10.11/24"

// What node-a of examples/ must have in VPP (examples/README.md): its pod
// gateway on the node loopback, a blackhole for its own pod range, and the
// other nodes' pod ranges via their InternalIPs.
func checkNodeA(t *testing.T, n node) {
	t.Helper()
	addrs := n.vppctl(t, "show", "interface", "address")
	if !strings.Contains(addrs, "10.244.0.1/32") {
		t.Errorf("node loopback address 10.244.0.1/32 missing:\n%s", addrs)
	}
	fib := n.vppctl(t, "show", "ip", "fib")
	for _, want := range []string{"10.244.1.0/24", "via 192.168.10.12", "10.244.2.0/24", "via 192.168.10.13", "10.244.0.0/24"} {
		if !strings.Contains(fib, want) {
			t.Errorf("show ip fib lacks %q:\n%s", want, fib)
		}
	}
	fib6 := n.vppctl(t, "show", "ip6", "fib")
	if !strings.Contains(fib6, "fd00:10:244:2::/64") || !strings.Contains(fib6, "via fd00:192:168:10::13") {
		t.Errorf("show ip6 fib lacks node-c's IPv6 pod range:\n%s", fib6)
	}
}

func TestAgentProgramsNodeFromManifests(t *testing.T) {
	n := newNode(t)
	start(t, "vppsim", "--socket", n.apiSock, "--interface", uplinkSpec)
	start(t, "kube-vpp-agent", n.agentArgs("node-a", examplesDir(t))...)
	n.waitReady(t)
	checkNodeA(t, n)

	out, code := run(t, 10*time.Second, "kube-vppctl", "--socket", n.ctlSock, "version")
	if code != 0 || !strings.Contains(out, "25.10-release") || !strings.Contains(out, "agent:") {
		t.Errorf("kube-vppctl version (exit %d):\n%s", code, out)
	}
}

// Killing VPP must not stop the agent: it reconnects to the new VPP, notices
// the restart and programs everything again.
func TestAgentReprogramsAfterVPPRestart(t *testing.T) {
	n := newNode(t)
	vpp := start(t, "vppsim", "--socket", n.apiSock, "--interface", uplinkSpec)
	agent := start(t, "kube-vpp-agent", n.agentArgs("node-a", examplesDir(t))...)
	n.waitReady(t)

	vpp.kill(9)
	start(t, "vppsim", "--socket", n.apiSock, "--interface", uplinkSpec)
	eventually(t, 30*time.Second, "routes back in the restarted VPP", func() bool {
		out, code := run(t, 10*time.Second, "kube-vppctl", "--socket", n.ctlSock, "vppctl", "--", "show", "ip", "fib")
		return code == 0 && strings.Contains(out, "via 192.168.10.12")
	})
	checkNodeA(t, n)
	if log := agent.out.String(); !strings.Contains(log, "reconnected to VPP") || !strings.Contains(log, `"vpp_restarted": true`) {
		t.Errorf("agent log does not report the VPP restart:\n%s", log)
	}
}

// A VPP whose message table disagrees with the binary must be refused before
// anything is programmed: exit status 1, naming the message.
func TestAgentRefusesIncompatibleVPP(t *testing.T) {
	n := newNode(t)
	start(t, "vppsim", "--socket", n.apiSock, "--corrupt-crc", "ip_route_add_del_v2")
	agent := start(t, "kube-vpp-agent", n.agentArgs("node-a", examplesDir(t))...)
	if code := agent.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("agent exited %d against an incompatible VPP, want 1", code)
	}
	out := agent.out.String()
	for _, want := range []string{"ip_route_add_del_v2", "25.10-release", "incompatible"} {
		if !strings.Contains(out, want) {
			t.Errorf("agent output does not mention %q:\n%s", want, out)
		}
	}
}

func TestAgentRejectsInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--node", "node-a", "--manifests", dir, "--vpp-socket", filepath.Join(dir, "api.sock"), "--ctl-socket", filepath.Join(dir, "ctl.sock")}
	tests := []struct {
		args    []string
		env     string
		wantKey string
	}{
		{args: []string{"--service-cidrs", "10.96.0.0/33"}, wantKey: "network.service-cidrs"},
		{args: []string{"--log-level", "loud"}, wantKey: "log.level"},
		{args: []string{"--http-listen", "127.0.0.1:70000"}, wantKey: "http.listen"},
		{env: "KUBE_VPP_VPP_HEALTH_INTERVAL=-1s", wantKey: "vpp.health-interval"},
		{args: []string{"--kubeconfig", "/nonexistent"}, wantKey: "kubernetes"},
		{args: []string{"--bgp"}, wantKey: "bgp.asn"},
		{args: []string{"--bgp", "--bgp-asn", "4294967296"}, wantKey: "bgp.asn"},
		{args: []string{"--bgp", "--bgp-asn", "64512"}, env: `KUBE_VPP_BGP_PEERS=[{"address":"192.168.10.300","asn":65000}]`, wantKey: "bgp.peers[0].address"},
		{args: []string{"--bgp", "--bgp-asn", "64512"}, env: `KUBE_VPP_BGP_PEERS=[{"address":"192.168.10.1","asn":0}]`, wantKey: "bgp.peers[0].asn"},
		{args: []string{"--bgp", "--bgp-asn", "64512"}, env: `KUBE_VPP_BGP_PEERS=[{"address":"192.168.10.1"}]`, wantKey: "bgp.peers[0].asn"},
	}
	for _, tt := range tests {
		t.Run(tt.wantKey+" "+strings.Join(tt.args, " ")+" "+tt.env, func(t *testing.T) {
			if tt.env != "" {
				k, v, _ := strings.Cut(tt.env, "=")
				t.Setenv(k, v)
			}
			out, code := run(t, 10*time.Second, "kube-vpp-agent", append(append([]string{}, base...), tt.args...)...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; output:\n%s", code, out)
			}
			if !strings.Contains(out, tt.wantKey) {
				t.Errorf("output does not name %s:\n%s", tt.wantKey, out)
			}
		})
	}
	out, code := run(t, 10*time.Second, "kube-vpp-agent", "--help")
	if code != 0 || !strings.Contains(out, "--vpp-socket") || !strings.Contains(out, "--manifests") {
		t.Errorf("--help (exit %d) does not list the options:\n%s", code, out)
	}
}

// A manifest that does not parse is reported with its file and line; the
// other manifests still load and are programmed.
func TestBrokenManifestReportedOthersLoad(t *testing.T) {
	dir := t.TempDir()
	copyExamples(t, dir, "nodes.yaml", "namespaces.yaml")
	// Line 7 holds a tab where YAML forbids one.
	broken := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: good-one\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n\tname: broken\n"
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newNode(t)
	start(t, "vppsim", "--socket", n.apiSock, "--interface", uplinkSpec)
	agent := start(t, "kube-vpp-agent", n.agentArgs("node-a", dir)...)
	n.waitReady(t)
	checkNodeA(t, n)
	eventually(t, 10*time.Second, "the broken manifest reported with file and line", func() bool {
		out := agent.out.String()
		return strings.Contains(out, `broken.yaml", "line": 9`) && strings.Contains(out, `"errors": 1`)
	})
}

// An agent restart on an unchanged cluster issues zero VPP writes, and never
// touches objects it did not create.
func TestAgentRestartWritesNothing(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: []sim.InterfaceSpec{
		{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true},
	}})
	ctx := context.Background()
	rpc := vppif.NewServiceClient(env.Client)
	foreign, err := rpc.CreateLoopback(ctx, &vppif.CreateLoopback{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.SwInterfaceTagAddDel(ctx, &vppif.SwInterfaceTagAddDel{IsAdd: true, SwIfIndex: foreign.SwIfIndex, Tag: "operator:mgmt"}); err != nil {
		t.Fatal(err)
	}

	n := newNode(t)
	n.apiSock = env.Path
	agent := start(t, "kube-vpp-agent", n.agentArgs("node-a", examplesDir(t))...)
	n.waitReady(t)
	afterFirst := env.Writes()
	agent.stop(t)
	if w := env.Writes(); w != afterFirst {
		t.Errorf("stopping the agent wrote %d times to VPP, want 0 (it must leave the dataplane as is)", w-afterFirst)
	}

	start(t, "kube-vpp-agent", n.agentArgs("node-a", examplesDir(t))...)
	n.waitReady(t)
	if w := env.Writes(); w != afterFirst {
		t.Errorf("restarted agent on an unchanged cluster issued %d write calls, want 0 (%v)", w-afterFirst, env.Sim.CallCounts())
	}
	det, err := rpc.SwInterfaceDump(ctx, &vppif.SwInterfaceDump{SwIfIndex: foreign.SwIfIndex})
	if err != nil {
		t.Fatal(err)
	}
	d, err := det.Recv()
	if err != nil || d.Tag != "operator:mgmt" {
		t.Errorf("foreign loopback after two agents: %+v, %v", d, err)
	}
}
