package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// cniNode is an agent over an in-process simulator, with its CNI socket.
type cniNode struct {
	node
	env   *simtest.Env
	args  []string
	agent *proc
}

// cniPods are pods kubelet would call the CNI for; they have no nodeName,
// so the agent's standalone mode leaves them to the test's CNI calls.
const cniPods = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: fixed, namespace: default, annotations: {kube-vpp.io/ip: "10.244.0.50"}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: same-ip, namespace: default, annotations: {kube-vpp.io/ip: "10.244.0.50"}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: default, annotations: {kube-vpp.io/ip: "10.244.1.50"}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: odd-kind, namespace: default, annotations: {kube-vpp.io/interface: "sriov"}}
spec: {containers: [{name: c, image: x}]}
`

func startCNINode(t *testing.T, podInterface string) *cniNode {
	t.Helper()
	requireRootNetns(t)
	dir := t.TempDir()
	copyExamples(t, dir, "nodes.yaml", "namespaces.yaml")
	if err := os.WriteFile(filepath.Join(dir, "pods.yaml"), []byte(cniPods), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &cniNode{node: newNode(t)}
	n.env = simtest.Start(t, sim.Options{Interfaces: []sim.InterfaceSpec{{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true}}})
	n.apiSock = n.env.Path
	n.args = n.agentArgs("node-a", dir, "--pod-interface", podInterface)
	n.agent = start(t, "kube-vpp-agent", n.args...)
	n.waitReady(t)
	return n
}

func requireRootNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
}

// podNetns makes a network namespace standing in for a pod sandbox.
func podNetns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "kve-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/var/run/netns/" + name
}

// cniResult is the part of a CNI 1.1 result the tests read.
type cniResult struct {
	CNIVersion string `json:"cniVersion"`
	Interfaces []struct {
		Name    string `json:"name"`
		Sandbox string `json:"sandbox"`
	} `json:"interfaces"`
	IPs []struct {
		Address string `json:"address"`
		Gateway string `json:"gateway"`
	} `json:"ips"`
	Routes []struct {
		Dst string `json:"dst"`
		GW  string `json:"gw"`
	} `json:"routes"`
	// A CNI error has these instead.
	Code uint   `json:"code"`
	Msg  string `json:"msg"`
}

// cni invokes the plugin exactly as kubelet does: the command, container,
// namespace, interface, plugin path and pod in the environment, the
// network configuration on stdin.
func (n *cniNode) cni(t *testing.T, command, containerID, netns, pod, conf string) (cniResult, int) {
	t.Helper()
	if conf == "" {
		conf = fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni","agentSocket":%q,"dns":{"nameservers":["10.96.0.10"]}}`, n.cniSock)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kube-vpp-cni"))
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+netns, "CNI_IFNAME=eth0",
		"CNI_PATH="+bin, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME="+pod+";K8S_POD_INFRA_CONTAINER_ID="+containerID)
	cmd.Stdin = strings.NewReader(conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running kube-vpp-cni %s: %v", command, err)
	}
	var res cniResult
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("kube-vpp-cni %s printed %q (stderr %q): %v", command, stdout.String(), stderr.String(), err)
		}
	}
	return res, code
}

func ipNetns(t *testing.T, netns string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", filepath.Base(netns)}, args...)...).CombinedOutput()
	return string(out), err
}

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestCNIAddCheckDel(t *testing.T) {
	for _, kind := range []string{"tap", "veth"} {
		t.Run(kind, func(t *testing.T) {
			n := startCNINode(t, kind)
			ns := podNetns(t)
			id := newContainerID()

			res, code := n.cni(t, "ADD", id, ns, "web", "")
			if code != 0 || len(res.IPs) != 1 {
				t.Fatalf("ADD: exit %d, %+v", code, res)
			}
			// The first address of node-a's 10.244.0.0/24 after the network and
			// the gateway; the default route goes via the gateway VPP holds.
			if res.IPs[0].Address != "10.244.0.2/32" || res.IPs[0].Gateway != "10.244.0.1" {
				t.Errorf("ADD IPs = %+v, want 10.244.0.2/32 via 10.244.0.1", res.IPs)
			}
			out, err := ipNetns(t, ns, "-o", "addr", "show", "dev", "eth0")
			if err != nil || !strings.Contains(out, "inet 10.244.0.2/32") {
				t.Errorf("eth0 in the pod: %v: %s", err, out)
			}
			if out, err := ipNetns(t, ns, "route", "show", "default"); err != nil || !strings.Contains(out, "default via 10.244.0.1 dev eth0") {
				t.Errorf("pod default route: %v: %q", err, out)
			}
			if fib := n.vppctl(t, "show", "ip", "fib"); !strings.Contains(fib, "10.244.0.2/32") {
				t.Errorf("VPP has no host route for the pod:\n%s", fib)
			}
			if _, code := n.cni(t, "CHECK", id, ns, "web", ""); code != 0 {
				t.Errorf("CHECK of an intact pod: exit %d", code)
			}

			// An agent restart between ADD and DEL keeps the allocation and
			// writes nothing to VPP.
			before := n.env.Writes()
			n.agent.stop(t)
			n.agent = start(t, "kube-vpp-agent", n.args...)
			n.waitReady(t)
			if w := n.env.Writes() - before; w != 0 {
				t.Errorf("agent restart wrote %d times to VPP, want 0 (%v)", w, n.env.Sim.CallCounts())
			}
			again, code := n.cni(t, "ADD", id, ns, "web", "")
			if code != 0 || again.IPs[0].Address != "10.244.0.2/32" {
				t.Errorf("ADD after the restart: exit %d, %+v; want the same address", code, again)
			}
			if other, code := n.cni(t, "ADD", newContainerID(), podNetns(t), "other", ""); code != 0 || other.IPs[0].Address == "10.244.0.2/32" {
				t.Errorf("a new pod after the restart: exit %d, %+v; must not get the kept address", code, other)
			}

			// CHECK notices an interface deleted by hand.
			if out, err := ipNetns(t, ns, "link", "del", "eth0"); err != nil {
				t.Fatalf("deleting eth0: %v: %s", err, out)
			}
			if res, code := n.cni(t, "CHECK", id, ns, "web", ""); code == 0 || !strings.Contains(res.Msg, "eth0") {
				t.Errorf("CHECK after eth0 was deleted: exit %d, %+v; want an error naming eth0", code, res)
			}

			if _, code := n.cni(t, "DEL", id, ns, "web", ""); code != 0 {
				t.Fatalf("DEL: exit %d", code)
			}
			if out, err := ipNetns(t, ns, "link", "show", "eth0"); err == nil {
				t.Errorf("eth0 still in the pod after DEL: %s", out)
			}
			if fib := n.vppctl(t, "show", "ip", "fib"); strings.Contains(fib, "10.244.0.2/32") {
				t.Errorf("VPP keeps the pod's host route after DEL:\n%s", fib)
			}
			if _, code := n.cni(t, "DEL", id, ns, "web", ""); code != 0 {
				t.Errorf("a second DEL: exit %d, want success", code)
			}
		})
	}
}

// TestCNIPodsReachEachOtherThroughVPP: two pods plumbed by CNI calls; a
// packet from one pod's VPP interface to the other's address is forwarded
// out of the other's interface.
func TestCNIPodsReachEachOtherThroughVPP(t *testing.T) {
	n := startCNINode(t, "tap")
	a, codeA := n.cni(t, "ADD", newContainerID(), podNetns(t), "web", "")
	b, codeB := n.cni(t, "ADD", newContainerID(), podNetns(t), "fixed", "")
	if codeA != 0 || codeB != 0 {
		t.Fatalf("ADDs: exit %d %d (%+v %+v)", codeA, codeB, a, b)
	}
	if b.IPs[0].Address != "10.244.0.50/32" {
		t.Errorf("pod with kube-vpp.io/ip=10.244.0.50 got %s", b.IPs[0].Address)
	}
	src, dst := netip.MustParsePrefix(a.IPs[0].Address).Addr(), netip.MustParsePrefix(b.IPs[0].Address).Addr()
	ingress, egress := n.interfaceRoutedTo(t, src), n.interfaceRoutedTo(t, dst)
	got, err := n.env.Sim.Evaluate(sim.Packet{Ingress: ingress, Src: src, Dst: dst, Protocol: 6, SrcPort: 33000, DstPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != sim.Forwarded || got.Egress != egress {
		t.Errorf("pod a -> pod b: %+v; want forwarded out of sw_if_index %d", got, egress)
	}
	// An unassigned address of the node's range hits the node's blackhole.
	got, err = n.env.Sim.Evaluate(sim.Packet{Ingress: ingress, Src: src, Dst: netip.MustParseAddr("10.244.0.200"), Protocol: 6, SrcPort: 33000, DstPort: 80})
	if err != nil || got.Verdict != sim.Dropped {
		t.Errorf("pod a -> unassigned pod address: %+v, %v; want dropped", got, err)
	}
}

// interfaceRoutedTo finds the VPP interface of a pod address from its
// host route, as seen by a packet arriving on the uplink (sw_if_index 1:
// the first interface after local0).
func (n *cniNode) interfaceRoutedTo(t *testing.T, a netip.Addr) uint32 {
	t.Helper()
	got, err := n.env.Sim.Evaluate(sim.Packet{Ingress: 1, Src: netip.MustParseAddr("192.168.10.1"), Dst: a, Protocol: 17, SrcPort: 1, DstPort: 1})
	if err == nil && got.Verdict == sim.Forwarded {
		return got.Egress
	}
	t.Fatalf("no forwarding to %s: %+v, %v", a, got, err)
	return 0
}

// TestCNIBadInput: each bad call gets a CNI error with a clear message and
// changes nothing in VPP.
func TestCNIBadInput(t *testing.T) {
	n := startCNINode(t, "veth")
	if res, code := n.cni(t, "ADD", newContainerID(), podNetns(t), "fixed", ""); code != 0 {
		t.Fatalf("ADD of the pod holding 10.244.0.50: %d %+v", code, res)
	}
	tests := []struct {
		name, pod, netns, conf string
		code                   uint
		msgHas                 string
	}{
		{name: "malformed conflist", pod: "web", conf: `{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni","mtu":"big"`, code: 6, msgHas: "network config"},
		{name: "conflist without type", pod: "web", conf: `{"cniVersion":"1.1.0","name":"kube-vpp"}`, code: 7, msgHas: "type"},
		{name: "missing network namespace", pod: "web", netns: "/var/run/netns/kve-missing", code: 8, msgHas: "kve-missing"},
		{name: "unknown interface kind", pod: "odd-kind", code: 101, msgHas: "sriov"},
		{name: "fixed IP taken", pod: "same-ip", code: 100, msgHas: "default/fixed"},
		{name: "fixed IP outside the node range", pod: "elsewhere", code: 100, msgHas: "10.244.1.50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			netns := tt.netns
			if netns == "" {
				netns = podNetns(t)
			}
			before := n.env.Writes()
			res, code := n.cni(t, "ADD", newContainerID(), netns, tt.pod, tt.conf)
			if code == 0 || res.Code != tt.code || !strings.Contains(strings.ToLower(res.Msg), strings.ToLower(tt.msgHas)) {
				t.Fatalf("ADD: exit %d, code %d %q; want code %d mentioning %q", code, res.Code, res.Msg, tt.code, tt.msgHas)
			}
			if w := n.env.Writes() - before; w != 0 {
				t.Errorf("a refused ADD wrote %d times to VPP", w)
			}
		})
	}

	t.Run("garbage on the CNI socket", func(t *testing.T) {
		before := n.env.Writes()
		conn, err := net.Dial("unix", n.cniSock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte("\x00\x01garbage that is not HTTP\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		reply, _ := readAll(conn)
		if !strings.Contains(reply, "400") || !strings.Contains(reply, `"code"`) {
			t.Errorf("reply to garbage: %q; want an HTTP 400 carrying a CNI error", reply)
		}
		if w := n.env.Writes() - before; w != 0 {
			t.Errorf("garbage wrote %d times to VPP", w)
		}
		// The agent still serves.
		if _, code := n.cni(t, "CHECK", "0123456789ab0123456789ab", podNetns(t), "web", ""); code == 0 {
			t.Error("CHECK of an unknown container succeeded")
		}
	})
}

func readAll(c net.Conn) (string, error) {
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for {
		k, err := c.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			return b.String(), err
		}
	}
}

// TestCNIAgentUnreachable: with no agent on the socket the plugin retries
// briefly, then fails saying so.
func TestCNIAgentUnreachable(t *testing.T) {
	n := &cniNode{node: newNode(t)}
	res, code := n.cni(t, "ADD", newContainerID(), "/var/run/netns/none", "web", "")
	if code == 0 || res.Code != 11 || !strings.Contains(res.Msg, "agent not reachable at "+n.cniSock) {
		t.Errorf("ADD without an agent: exit %d, %+v", code, res)
	}
}
