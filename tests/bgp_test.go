package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/binapi/vlib"
	"go.fd.io/govpp/core"
)

const (
	torASN  = 65000
	nodeASN = 64512
)

// bgpServices writes a LoadBalancer service served from every node
// (externalTrafficPolicy Cluster) and one served only where it has a ready
// endpoint (Local), with endpoints on the given nodes.
func bgpServices(localEndpointsOn ...string) string {
	var eps strings.Builder
	for i, n := range localEndpointsOn {
		fmt.Fprintf(&eps, "  - addresses: [\"10.244.%d.%d\"]\n    conditions: {ready: true}\n    nodeName: %s\n", nodeIndex(n), 20+i, n)
	}
	if eps.Len() == 0 {
		eps.WriteString("  []\n")
	}
	return `apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.10.11
  externalTrafficPolicy: Cluster
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
status:
  loadBalancer: {ingress: [{ip: 203.0.113.10}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-lb-local, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.20.12
  externalTrafficPolicy: Local
  healthCheckNodePort: 32000
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
status:
  loadBalancer: {ingress: [{ip: 203.0.113.11}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-lb-local-1
  namespace: default
  labels: {kubernetes.io/service-name: api-lb-local}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
` + eps.String()
}

func nodeIndex(name string) int { return int(name[len(name)-1] - 'a') }

type bgpNode struct {
	name  string
	ns    string
	node  node
	args  []string
	agent *proc
}

// startBGPCluster runs, for each node, a simulator and an agent inside the
// node's namespace, peering with the ToR(s) at .1 (and .2).
func startBGPCluster(t *testing.T, f *fabric, manifests string, tors []string, names ...string) map[string]*bgpNode {
	t.Helper()
	var peers strings.Builder
	for _, tor := range tors {
		fmt.Fprintf(&peers, "    - {address: %s, asn: %d, hold-time: 3s, keepalive: 1s}\n", tor, torASN)
	}
	out := map[string]*bgpNode{}
	for _, name := range names {
		n := newNode(t)
		cfg := filepath.Join(n.dir, "agent.yaml")
		yaml := fmt.Sprintf("bgp:\n  enabled: true\n  asn: %d\n  graceful-restart:\n    enabled: true\n    restart-time: 60s\n  peers:\n%s", nodeASN, peers.String())
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		start(t, "vppsim", "--socket", n.apiSock, "--interface", "GigabitEthernet0/8/0="+f.nodeIP(name)+"/24")
		bn := &bgpNode{name: name, ns: f.nodeNS(name), node: n, args: append(n.agentArgs(name, manifests), "--config", cfg)}
		bn.agent = startIn(t, bn.ns, "kube-vpp-agent", bn.args...)
		out[name] = bn
	}
	for _, bn := range out {
		bn.node.waitReady(t)
	}
	return out
}

// torConfig peers a ToR with the three nodes; with v6, also over IPv6 for
// the IPv6 unicast family.
func torConfig(routerID string, v6 bool, networks ...string) frrConfig {
	cfg := frrConfig{ASN: torASN, RouterID: routerID, Networks: networks, RestartTime: 60}
	for _, ip := range []string{"192.168.10.11", "192.168.10.12", "192.168.10.13"} {
		cfg.Neighbors = append(cfg.Neighbors, frrNeighbor{Address: ip, RemoteAS: nodeASN})
	}
	if v6 {
		for _, ip := range []string{"fd00:192:168:10::11", "fd00:192:168:10::12", "fd00:192:168:10::13"} {
			cfg.Neighbors = append(cfg.Neighbors, frrNeighbor{Address: ip, RemoteAS: nodeASN})
		}
	}
	return cfg
}

func waitRoute(t *testing.T, r *frr, prefix string, want ...string) {
	t.Helper()
	slices.Sort(want)
	var last []string
	eventually(t, 30*time.Second, fmt.Sprintf("%s via %v at the ToR", prefix, want), func() bool {
		last = r.routes(t, false)[prefix]
		return slices.Equal(last, want)
	})
}

// Three agents peer with two FRR ToRs: the ToR learns each node's pod range
// from that node, a LoadBalancer IP from every node as one ECMP route, and a
// Local-policy LoadBalancer IP only from nodes with a ready local endpoint;
// the nodes learn the ToRs' prefix as one multipath route in VPP; and an
// agent restart does not withdraw its routes (graceful restart).
func TestBGPWithFRR(t *testing.T) {
	f := newFabric(t, "node-a", "node-b", "node-c")
	tor := startFRR(t, f.torNS(), torConfig(torIP, true, "198.18.0.0/15"))
	tor2 := startFRR(t, f.addSecondToR(), torConfig(tor2IP, false, "198.18.0.0/15"))

	dir := t.TempDir()
	copyExamples(t, dir, "nodes.yaml", "namespaces.yaml")
	svcFile := filepath.Join(dir, "services.yaml")
	if err := os.WriteFile(svcFile, []byte(bgpServices("node-a", "node-b")), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := startBGPCluster(t, f, dir, []string{torIP, tor2IP, torIP6}, "node-a", "node-b", "node-c")
	tor.waitEstablished(t, 30*time.Second, "192.168.10.11", "192.168.10.12", "192.168.10.13")

	t.Run("pod ranges and service IPs at the ToR", func(t *testing.T) {
		waitRoute(t, tor, "10.244.0.0/24", "192.168.10.11")
		waitRoute(t, tor, "10.244.1.0/24", "192.168.10.12")
		waitRoute(t, tor, "10.244.2.0/24", "192.168.10.13")
		waitRoute(t, tor, "10.96.0.0/12", "192.168.10.11", "192.168.10.12", "192.168.10.13")
		waitRoute(t, tor, "203.0.113.10/32", "192.168.10.11", "192.168.10.12", "192.168.10.13")
		waitRoute(t, tor, "203.0.113.11/32", "192.168.10.11", "192.168.10.12")
	})

	t.Run("IPv6 pod range in the IPv6 family", func(t *testing.T) {
		tor.waitEstablished(t, 30*time.Second, "fd00:192:168:10::13")
		var last []string
		eventually(t, 30*time.Second, "fd00:10:244:2::/64 via node-c's IPv6 address", func() bool {
			last = tor.routes(t, true)["fd00:10:244:2::/64"]
			return slices.Equal(last, []string{"fd00:192:168:10::13"})
		})
	})

	t.Run("kube-vppctl show bgp", func(t *testing.T) {
		want := []string{"ASN 64512, router ID 192.168.10.12", "192.168.10.1 ", "192.168.10.2 ", "established",
			"10.244.1.0/24", "203.0.113.11/32", "load-balancer", "pod-cidr", "198.18.0.0/15"}
		var out string
		eventually(t, 30*time.Second, "show bgp listing peers, advertised and learned routes", func() bool {
			var code int
			out, code = run(t, 10*time.Second, "kube-vppctl", "--socket", nodes["node-b"].node.ctlSock, "show", "bgp")
			for _, w := range want {
				if code != 0 || !strings.Contains(out, w) {
					return false
				}
			}
			return true
		})
	})

	t.Run("ToR prefix in VPP as one multipath route", func(t *testing.T) {
		for _, name := range []string{"node-a", "node-c"} {
			n := nodes[name].node
			eventually(t, 30*time.Second, name+" VPP route 198.18.0.0/15 via both ToRs", func() bool {
				entry := fibEntry(n.vppctl(t, "show", "ip", "fib"), "198.18.0.0/15")
				return strings.Contains(entry, "via 192.168.10.1 ") && strings.Contains(entry, "via 192.168.10.2 ")
			})
		}
	})

	t.Run("Local policy follows the local endpoint", func(t *testing.T) {
		if err := os.WriteFile(svcFile, []byte(bgpServices("node-a")), 0o644); err != nil {
			t.Fatal(err)
		}
		waitRoute(t, tor, "203.0.113.11/32", "192.168.10.11")
		// The Cluster-policy address stays on every node.
		waitRoute(t, tor, "203.0.113.10/32", "192.168.10.11", "192.168.10.12", "192.168.10.13")
	})

	t.Run("withdrawn paths leave the multipath route, the last one the route", func(t *testing.T) {
		a := nodes["node-a"].node
		withdraw := func(r *frr) {
			r.vtysh(t, "bgpd", "configure terminal", fmt.Sprintf("router bgp %d", torASN), "address-family ipv4 unicast", "no network 198.18.0.0/15")
		}
		withdraw(tor2)
		eventually(t, 30*time.Second, "198.18.0.0/15 via the first ToR only", func() bool {
			entry := fibEntry(a.vppctl(t, "show", "ip", "fib"), "198.18.0.0/15")
			return strings.Contains(entry, "via 192.168.10.1 ") && !strings.Contains(entry, "via 192.168.10.2 ")
		})
		withdraw(tor)
		eventually(t, 30*time.Second, "198.18.0.0/15 gone from VPP", func() bool {
			return fibEntry(a.vppctl(t, "show", "ip", "fib"), "198.18.0.0/15") == ""
		})
	})

	t.Run("graceful restart keeps routes while an agent restarts", func(t *testing.T) {
		c := nodes["node-c"]
		c.agent.stop(t)
		// Routes stay at the ToR, marked stale, while node-c is away.
		time.Sleep(4 * time.Second) // longer than the 3s hold time
		paths := tor.bgpRoutes(t, false)["10.244.2.0/24"]
		if len(paths) == 0 || !paths[0].Stale {
			t.Fatalf("node-c's pod range at the ToR while its agent is down: %+v, want kept as stale", paths)
		}
		if got := tor.routes(t, false)["10.244.2.0/24"]; !slices.Equal(got, []string{"192.168.10.13"}) {
			t.Errorf("ToR forwarding for node-c's pods during the restart: %v", got)
		}
		// The node's VPP keeps what it was programmed with meanwhile.
		if entry := fibEntry(simCLI(t, c.node.apiSock, "show ip fib"), "10.244.1.0/24"); !strings.Contains(entry, "via 192.168.10.12") {
			t.Errorf("node-c's VPP lost its routes while its agent was down:\n%s", entry)
		}
		c.agent = startIn(t, c.ns, "kube-vpp-agent", c.args...)
		c.node.waitReady(t)
		eventually(t, 30*time.Second, "node-c's pod range refreshed (not stale)", func() bool {
			paths := tor.bgpRoutes(t, false)["10.244.2.0/24"]
			return len(paths) == 1 && !paths[0].Stale
		})
	})
}

// fibEntry returns the lines of one prefix's entry in `show ip fib` output.
func fibEntry(out, prefix string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, " ") {
			in = strings.HasPrefix(line, prefix)
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// simCLI asks a node's VPP directly, without its agent.
func simCLI(t *testing.T, socket, cmd string) string {
	t.Helper()
	conn, err := core.Connect(socketclient.NewVppClient(socket))
	if err != nil {
		t.Fatalf("connecting to %s: %v", socket, err)
	}
	defer conn.Disconnect()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply := &vlib.CliInbandReply{}
	if err := conn.Invoke(ctx, &vlib.CliInband{Cmd: cmd}, reply); err != nil {
		t.Fatalf("%s on %s: %v", cmd, socket, err)
	}
	return reply.Reply
}
