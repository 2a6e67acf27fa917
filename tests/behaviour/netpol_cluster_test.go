package behaviour

// The cluster of the NetworkPolicy behaviour tests, modelled on the
// upstream e2e netpol suite (kubernetes test/e2e/network/netpol): three
// namespaces x, y, z (labels ns=<name> and kubernetes.io/metadata.name),
// pods a, b, c in each (label pod=<name>), each serving TCP, UDP and SCTP
// on ports 80 and 81 through ports named serve-80-tcp and so on, with one
// ClusterIP service per pod. Two agents run over the same manifests, each
// with its own simulated VPP: node-a and node-b. Addresses:
//
//	node-a  192.168.10.11, pods 10.244.0.0/24     node-b  192.168.10.12, pods 10.244.1.0/24
//	pod <ns>/<p>   10.244.<node>.<10*ns+p>  (x=1 y=2 z=3, a=1 b=2 c=3)
//	service s-<p>  10.96.1.<10*ns+p>: 80 -> 80, 9081 -> 81
//	kube-system/coredns 10.244.1.53 (node-b), service kube-dns 10.96.0.10:53 UDP and TCP
//	zz-sentinel/probe-a, zz-sentinel/probe-b: the pods whose policy tells a write was applied

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/agent"
	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/manifests"
	"github.com/kube-vpp/kube-vpp/agent/offline"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// netpolPod is a pod of the model.
type netpolPod struct {
	ns, name, node string
	ip, svc        netip.Addr // svc: its ClusterIP, invalid for none
	// altPort is the number behind the extra port name "http-alt" (0: the
	// pod has none), so that one name means different ports per pod.
	altPort int
}

func (p netpolPod) String() string { return p.ns + "/" + p.name }

const (
	nodeA = "node-a"
	nodeB = "node-b"
)

// nodeIP is a node's InternalIP.
func nodeIP(node string) string {
	if node == nodeB {
		return "192.168.10.12"
	}
	return "192.168.10.11"
}

// onNodeB are the model pods node-b runs, one per namespace.
func onNodeB(ns, pod string) bool {
	return ns+"/"+pod == "x/c" || ns+"/"+pod == "y/b" || ns+"/"+pod == "z/a"
}

// netpolModel is x/a .. z/c, in that order.
func netpolModel() []netpolPod {
	var out []netpolPod
	for i, ns := range []string{"x", "y", "z"} {
		for j, name := range []string{"a", "b", "c"} {
			host, node := byte(0), nodeA
			if onNodeB(ns, name) {
				host, node = 1, nodeB
			}
			n := byte(10*(i+1) + j + 1)
			p := netpolPod{ns: ns, name: name, node: node,
				ip: netip.AddrFrom4([4]byte{10, 244, host, n}), svc: netip.AddrFrom4([4]byte{10, 96, 1, n})}
			switch p.String() {
			case "x/a":
				p.altPort = 80
			case "x/b":
				p.altPort = 81
			}
			out = append(out, p)
		}
	}
	return out
}

var (
	corednsPod = netpolPod{ns: "kube-system", name: "coredns", node: nodeB, ip: netip.MustParseAddr("10.244.1.53")}
	kubeDNSVIP = netip.MustParseAddr("10.96.0.10")
)

// sentinels are the pods whose policy, renamed at each write, shows that
// an agent applied the write.
var sentinels = []netpolPod{
	{ns: "zz-sentinel", name: "probe-a", node: nodeA, ip: netip.MustParseAddr("10.244.0.250")},
	{ns: "zz-sentinel", name: "probe-b", node: nodeB, ip: netip.MustParseAddr("10.244.1.250")},
}

// svcPort is the service port that reaches a pod's port.
func svcPort(podPort uint16) uint16 {
	if podPort == 81 {
		return 9081
	}
	return podPort
}

// labels are extra labels of a state, by "ns/pod" or namespace name.
type labels map[string]map[string]string

func flowMap(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, strconv.Quote(k)+": "+strconv.Quote(m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func merged(base map[string]string, extra map[string]string) map[string]string {
	out := maps.Clone(base)
	maps.Copy(out, extra)
	return out
}

func podYAML(p netpolPod, lbl map[string]string, ports string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %q, namespace: %q, labels: %s}
spec:
  nodeName: %s
  containers:%s
status: {phase: Running, podIP: %s, podIPs: [{ip: %s}]}
---
`, p.name, p.ns, flowMap(lbl), p.node, ports, p.ip, p.ip)
}

// servingPorts are upstream's ports: serve-<port>-<protocol> for TCP, UDP
// and SCTP on 80 and 81, here one container per port number.
func servingPorts(p netpolPod) string {
	var b strings.Builder
	for _, port := range []int{80, 81} {
		fmt.Fprintf(&b, "\n  - name: cont-%d\n    image: agnhost\n    ports:", port)
		for _, proto := range []string{"TCP", "UDP", "SCTP"} {
			fmt.Fprintf(&b, "\n    - {name: serve-%d-%s, containerPort: %d, protocol: %s}", port, strings.ToLower(proto), port, proto)
		}
		if p.altPort == port {
			fmt.Fprintf(&b, "\n    - {name: http-alt, containerPort: %d, protocol: TCP}", port)
		}
	}
	return b.String()
}

func serviceYAML(ns, name string, ip netip.Addr, selector map[string]string, ports, slicePorts string, backend netpolPod) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %q, namespace: %q}
spec:
  type: ClusterIP
  clusterIP: %s
  clusterIPs: [%s]
  selector: %s
  ports: %s
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: "%s-1", namespace: %q, labels: {kubernetes.io/service-name: %q}}
addressType: IPv4
ports: %s
endpoints:
- {addresses: [%s], nodeName: %s, conditions: {ready: true, serving: true, terminating: false}}
---
`, name, ns, ip, ip, flowMap(selector), ports, name, ns, name, slicePorts, backend.ip, backend.node)
}

// clusterYAML is the cluster with podLabels and nsLabels added to the
// model's own labels; the sentinel pods, last, are labelled sentinel.
func netpolClusterYAML(podLabels, nsLabels labels, sentinel string) string {
	var b strings.Builder
	for _, n := range []string{nodeA, nodeB} {
		cidr := "10.244.0.0/24"
		if n == nodeB {
			cidr = "10.244.1.0/24"
		}
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Node\nmetadata: {name: %s}\nspec: {podCIDR: %s, podCIDRs: [%s]}\nstatus:\n  addresses:\n  - {type: InternalIP, address: %s}\n---\n",
			n, cidr, cidr, nodeIP(n))
	}
	for _, ns := range []string{"x", "y", "z", "kube-system", "zz-sentinel"} {
		lbl := merged(map[string]string{"ns": ns, "kubernetes.io/metadata.name": ns}, nsLabels[ns])
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %q, labels: %s}\n---\n", ns, flowMap(lbl))
	}
	for _, p := range netpolModel() {
		b.WriteString(podYAML(p, merged(map[string]string{"pod": p.name}, podLabels[p.String()]), servingPorts(p)))
		b.WriteString(serviceYAML(p.ns, "s-"+p.name, p.svc, map[string]string{"pod": p.name},
			"[{name: http, protocol: TCP, port: 80, targetPort: 80}, {name: alt, protocol: TCP, port: 9081, targetPort: 81}]",
			"[{name: http, protocol: TCP, port: 80}, {name: alt, protocol: TCP, port: 81}]", p))
	}
	b.WriteString(podYAML(corednsPod, map[string]string{"k8s-app": "kube-dns"},
		"\n  - name: coredns\n    image: coredns\n    ports:\n    - {name: dns, containerPort: 53, protocol: UDP}\n    - {name: dns-tcp, containerPort: 53, protocol: TCP}"))
	b.WriteString(serviceYAML("kube-system", "kube-dns", kubeDNSVIP, map[string]string{"k8s-app": "kube-dns"},
		"[{name: dns, protocol: UDP, port: 53, targetPort: 53}, {name: dns-tcp, protocol: TCP, port: 53, targetPort: 53}]",
		"[{name: dns, protocol: UDP, port: 53}, {name: dns-tcp, protocol: TCP, port: 53}]", corednsPod))
	for _, p := range sentinels {
		b.WriteString(podYAML(p, map[string]string{"sentinel": sentinel}, "\n  - {name: c, image: pause}"))
	}
	return b.String()
}

// np is a NetworkPolicy manifest; spec is YAML (flow style reads best).
// Names are quoted here and in the cluster: YAML 1.1, which the manifests
// loader reads, takes a bare y for true.
func np(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: %q, namespace: %q}\nspec: %s\n---\n", name, ns, spec)
}

// netpolNode is one node: its agent, its simulated VPP and its pods'
// interfaces.
type netpolNode struct {
	name   string
	c      *ctl.Client
	vpp    *simtest.Env
	uplink uint32
	ifaces map[string]ctl.TraceInterface // "ns/pod" -> its VPP interface
}

// netpolCluster is the two agents over one manifests folder.
type netpolCluster struct {
	dir   string
	nodes map[string]*netpolNode
	gen   int // the sentinel policy's generation
	// podGen is the generation that last changed pod labels: the sentinel
	// pods' label. It changes only then, since a pod change costs the
	// agents a full sync.
	podGen    int
	podLabels string
	pods      map[netip.Addr]netpolPod
	// sport numbers the connections the tests evaluate in the simulators
	// themselves, from firstSimPort: below kube-vppctl trace's ports
	// (32768 and up), so that neither meets the other's sessions.
	sport atomic.Uint32
}

const firstSimPort = 20000

// startNetpolCluster writes the model with no policy and starts both
// agents.
func startNetpolCluster(t *testing.T) *netpolCluster {
	t.Helper()
	c := &netpolCluster{dir: t.TempDir(), nodes: map[string]*netpolNode{}, pods: map[netip.Addr]netpolPod{}}
	for _, p := range append(netpolModel(), corednsPod) {
		c.pods[p.ip] = p
	}
	c.write(t, nil, nil, nil)
	for _, name := range []string{nodeA, nodeB} {
		c.nodes[name] = startNetpolNode(t, c.dir, name)
	}
	c.waitApplied(t)
	return c
}

func startNetpolNode(t *testing.T, dir, name string) *netpolNode {
	t.Helper()
	vpp := simtest.Start(t, sim.Options{NoHost: true, Interfaces: []sim.InterfaceSpec{
		{Name: offline.Uplink, Addresses: []string{nodeIP(name) + "/24"}, Up: true}}})
	run := t.TempDir()
	ctlSock := filepath.Join(run, "ctl.sock")
	cfg, err := config.Load([]string{"--healthz-bind-address=", "--node", name, "--manifests", dir, "--vpp-socket", vpp.Path,
		"--ctl-socket", ctlSock, "--cni-socket", filepath.Join(run, "cni.sock"), "--state-dir", filepath.Join(run, "state"),
		"--http-listen", "127.0.0.1:0", "--uplink-interface", offline.Uplink, "--pod-interface", "tap"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Pods.MemifDir, cfg.Pods.VhostDir = filepath.Join(run, "memif"), filepath.Join(run, "vhost")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.New(cfg, zaptest.NewLogger(t).Named(name), agent.VirtualPods()).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", name, err)
		}
	})
	n := &netpolNode{name: name, c: ctl.NewClient(ctlSock), vpp: vpp, ifaces: map[string]ctl.TraceInterface{}}
	want := map[string]netip.Addr{}
	for _, p := range append(append(netpolModel(), corednsPod), sentinels...) {
		if p.node == name {
			want[p.String()] = p.ip
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := n.c.Status(ctx)
		if err == nil && st.Ready {
			list, err := n.c.Pods(ctx)
			if err != nil {
				t.Fatalf("%s: pods: %v", name, err)
			}
			for _, p := range list {
				key := p.Namespace + "/" + p.Name
				if ip, ok := want[key]; ok && len(p.Interfaces) > 0 && slices.Contains(p.IPs, ip) {
					n.ifaces[key] = ctl.TraceInterface{SwIfIndex: p.Interfaces[0].SwIfIndex, Name: p.Interfaces[0].Name}
				}
			}
			if len(n.ifaces) == len(want) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: agent not ready with its %d pods plumbed (%d are): %+v %v", name, len(want), len(n.ifaces), st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A packet from outside the node enters through the uplink: the trace
	// names its interface.
	rep, err := n.c.Trace(ctx, ctl.TraceRequest{From: "198.51.100.7", To: "192.0.2.1:80", Protocol: "tcp"})
	if err != nil {
		t.Fatalf("%s: finding the uplink: %v", name, err)
	}
	n.uplink = rep.Packets[0].Ingress.SwIfIndex
	return n
}

// write puts the cluster and the policies in the folder, with a sentinel
// policy of a new generation.
func (c *netpolCluster) write(t *testing.T, policies []string, podLabels, nsLabels labels) {
	t.Helper()
	c.gen++
	if key := fmt.Sprint(podLabels); c.podGen == 0 || key != c.podLabels {
		c.podGen, c.podLabels = c.gen, key
	}
	sentinel := fmt.Sprintf("gen-%d", c.podGen)
	write(t, c.dir, "cluster.yaml", netpolClusterYAML(podLabels, nsLabels, sentinel))
	write(t, c.dir, "policies.yaml", strings.Join(policies, "")+
		np("zz-sentinel", c.sentinelPolicy(), "{podSelector: {matchLabels: {sentinel: "+sentinel+"}}, policyTypes: [Ingress]}"))
	// The agents would log a rejected manifest and go on without it.
	if _, errs := manifests.LoadDir(c.dir); len(errs) > 0 {
		t.Fatalf("manifests rejected: %v", errors.Join(errs...))
	}
}

func (c *netpolCluster) sentinelPolicy() string { return fmt.Sprintf("gen-%d", c.gen) }

// waitApplied waits until both agents show their sentinel pod under the
// current generation's policy alone. The manifests store applies a
// folder's creates and updates in file order (cluster.yaml, the sentinel
// pods last, then policies.yaml, the sentinel policy last) and its deletes
// after them, by kind, namespace and name: the previous sentinel policy,
// in zz-sentinel, goes last. Each informer delivers in order, so once the
// sentinel pod shows the new policy alone, the agent has seen every
// policy of the write, and its tables are in VPP. When a write changes
// pod labels, the sentinel pods' label changes too and the policy selects
// the new one: then the pods' informer is known to be through as well.
// Namespaces come through their own informer, earlier in the file; should
// one trail, probeAll looks again.
func (c *netpolCluster) waitApplied(t *testing.T) {
	t.Helper()
	name := c.sentinelPolicy()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range c.nodes {
		for {
			list, err := n.c.Policies(context.Background())
			shown := sentinelPolicies(list)
			if err == nil && slices.Equal(shown, []string{name}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sentinel policy %s never applied alone (shown: %v, error: %v); all: %+v", n.name, name, shown, err, list)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// sentinelPolicies are the sentinel policies the sentinel pods show.
func sentinelPolicies(list []ctl.PodPolicy) []string {
	var out []string
	for _, pp := range list {
		if !strings.HasPrefix(pp.Pod, "zz-sentinel/") {
			continue
		}
		for _, p := range pp.Policies {
			name := p[strings.LastIndex(p, "/")+1:]
			if strings.HasPrefix(name, "gen-") && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// nextPort is a fresh source port for a connection evaluated directly in
// a simulator.
func (c *netpolCluster) nextPort() uint16 {
	return uint16(firstSimPort + c.sport.Add(1) - 1)
}
