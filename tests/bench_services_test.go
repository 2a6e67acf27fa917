package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	nat "go.fd.io/govpp/binapi/nat44_ed"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/services"
	"github.com/kube-vpp/kube-vpp/services/healthcheck"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/nat44ed"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// The services benchmarks play node-a of the example cluster
// (examples/nodes.yaml): its InternalIP is the only NodePort address and
// its first pod address the twice-NAT address, as the agent derives them.
const (
	benchSvcNode      = "node-a"
	benchSvcNamespace = "bench"
	benchSvcChanges   = 200
	benchSvcEndpoints = 10
)

var (
	benchSvcNodeIP   = netip.MustParseAddr("192.168.10.11")
	benchSvcTwiceNAT = netip.MustParseAddr("10.244.0.1")
	benchSvcNodes    = []string{"node-a", "node-b", "node-c"}
)

// TestBenchServicesProxy drives services.Proxy with the real nat44ed and ip
// drivers over a vppapi.Client and the simulator's socket, at 1,000 and at
// 10,000 services: the first full sync, then 200 single-endpoint changes
// each programmed by the fast path (SetEndpointSlice + Apply). It prints
// the latency and VPP writes per change at both sizes; it asserts only
// that VPP ends up holding exactly what Kubernetes semantics ask for and
// that a change costs at most two writes per mapping it touches.
func TestBenchServicesProxy(t *testing.T) {
	benchEnabled(t)
	var figs []proxyFigures
	for _, n := range []int{1000, 10000} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			f := benchProxy(t, n)
			t.Logf("BENCH services proxy n=%-5d first full sync (Resync): %.2fs, %d mappings, %d VPP writes; handing the proxy the %d objects before it: %.2fs",
				f.services, f.fullSync.Seconds(), f.mappings, f.fullWrites, 2*f.services, f.load.Seconds())
			t.Logf("BENCH services proxy n=%-5d %d endpoint changes: per change %s = SetEndpointSlice %s + Apply %s; in the nat44ed driver and VPP %s, the proxy's own work %s; VPP writes per change min=%d mean=%.2f max=%d",
				f.services, len(f.change), quantiles(f.change), quantiles(f.set), quantiles(f.apply), quantiles(f.driver), quantiles(f.own),
				slices.Min(f.writes), mean(f.writes), slices.Max(f.writes))
			figs = append(figs, f)
		})
	}
	if len(figs) != 2 {
		return
	}
	a, b := figs[0], figs[1]
	ratio := func(x, y []time.Duration) float64 { return float64(rank(y, 50)) / float64(rank(x, 50)) }
	t.Logf("BENCH services proxy per-change n=%d vs n=%d: p50 %s vs %s (x%.2f), p99 %s vs %s; proxy's own work p50 %s vs %s (x%.2f); VPP writes per change max %d vs %d, mean %.2f vs %.2f",
		a.services, b.services, ms(rank(a.change, 50)), ms(rank(b.change, 50)), ratio(a.change, b.change),
		ms(rank(a.change, 99)), ms(rank(b.change, 99)), ms(rank(a.own, 50)), ms(rank(b.own, 50)), ratio(a.own, b.own),
		slices.Max(a.writes), slices.Max(b.writes), mean(a.writes), mean(b.writes))
}

// proxyFigures are one size's measurements.
type proxyFigures struct {
	services, mappings int
	load, fullSync     time.Duration
	fullWrites         int
	change, set, apply []time.Duration
	driver             []time.Duration // of apply: in the nat44ed driver, VPP round trips included
	own                []time.Duration // change less driver: the proxy's own work
	writes             []int
}

// timedNAT is the nat44ed driver with the time spent in Update added up,
// to tell the proxy's own work in Apply from the driver's and VPP's.
type timedNAT struct {
	*nat44ed.Driver
	spent time.Duration
}

func (n *timedNAT) Update(ctx context.Context, service string, mappings []nat44ed.Mapping) error {
	began := time.Now()
	defer func() { n.spent += time.Since(began) }()
	return n.Driver.Update(ctx, service, mappings)
}

func benchProxy(t *testing.T, n int) proxyFigures {
	ctx := t.Context()
	env := simtest.Start(t, sim.Options{NoHost: true, Interfaces: []sim.InterfaceSpec{benchUplink()}})
	log := zap.NewNop()
	uplink, found, err := interfaces.New(env.Client, log).Lookup(ctx, benchUplink().Name)
	if err != nil || !found {
		t.Fatalf("uplink %s: found %v, %v", benchUplink().Name, found, err)
	}
	driver := nat44ed.New(env.Client, log)
	if err := driver.Configure(ctx, nat44ed.Base{
		Interfaces:        []nat44ed.Interface{{SwIfIndex: uplink, Outside: true}},
		TwiceNATAddresses: []netip.Addr{benchSvcTwiceNAT},
	}); err != nil {
		t.Fatal(err)
	}
	health := healthcheck.New([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, log)
	t.Cleanup(func() { _ = health.Close() })
	timed := &timedNAT{Driver: driver}
	proxy := services.NewProxy(timed, ip.New(env.Client, log, ip.SourceServices), health, log)
	proxy.SetConfig(services.Config{Node: benchSvcNode, NodePortAddresses: []netip.Addr{benchSvcNodeIP}})

	c := newBenchCluster(n, freeTCPPorts(t, 2))
	svcs, objs := make([]*corev1.Service, n), make([]*discoveryv1.EndpointSlice, n)
	for i, s := range c.services {
		svcs[i], objs[i] = s.object(), s.slice()
	}
	f := proxyFigures{services: n, mappings: len(c.wantMappings())}
	// What the informers' initial lists hand the proxy, one object at a time.
	began := time.Now()
	for i := range n {
		proxy.SetService(svcs[i])
		proxy.SetEndpointSlice(objs[i])
	}
	f.load = time.Since(began)

	before := env.Writes()
	began = time.Now()
	problems, err := proxy.Resync(ctx)
	f.fullSync = time.Since(began)
	f.fullWrites = env.Writes() - before
	if err != nil || len(problems) > 0 {
		t.Fatalf("Resync: %v; problems %v", err, problems)
	}

	rng := rand.New(rand.NewPCG(4, 10000))
	for range benchSvcChanges {
		i, j := rng.IntN(n), rng.IntN(benchSvcEndpoints)
		s := &c.services[i]
		old := s.endpoints[j].addr
		s.endpoints[j].addr = c.newPodIP()
		// A new object, as an informer delivers: the proxy keeps the old one.
		objs[i] = s.slice()

		writes, spent := env.Writes(), timed.spent
		began := time.Now()
		proxy.SetEndpointSlice(objs[i])
		set := time.Now()
		problems, err := proxy.Apply(ctx)
		done := time.Now()
		w := env.Writes() - writes
		if err != nil || len(problems) > 0 {
			t.Fatalf("Apply after replacing %s by %s in %s: %v; problems %v", old, s.endpoints[j].addr, s.name, err, problems)
		}
		f.set, f.apply, f.change = append(f.set, set.Sub(began)), append(f.apply, done.Sub(set)), append(f.change, done.Sub(began))
		f.writes, f.driver = append(f.writes, w), append(f.driver, timed.spent-spent)
		f.own = append(f.own, done.Sub(began)-(timed.spent-spent))

		// Each mapping holding the endpoint changes one local: one add and
		// one delete (nat44_lb_static_mapping_add_del_local), never a resync.
		touched := s.mappingsWith(j)
		if w < 1 || w > 2*touched {
			t.Errorf("replacing one endpoint of %s (in %d of its mappings) took %d VPP writes; want 1..%d", s.name, touched, w, 2*touched)
		}
		checkProgrammed(t, driver.Programmed(benchSvcNamespace+"/"+s.name), s, old)
	}

	checkVPP(t, env.Client, c.wantMappings())
	checkHealth(t, c)
	return f
}

// checkProgrammed checks, from the driver's view, that the service's
// cluster IP mapping holds the endpoint's new address and no mapping the
// replaced one.
func checkProgrammed(t *testing.T, ms []nat44ed.Mapping, s *benchService, gone netip.Addr) {
	t.Helper()
	vip := netip.AddrPortFrom(s.clusterIP, 80)
	var sawVIP bool
	for _, m := range ms {
		for _, l := range m.Locals {
			if l.Addr.Addr() == gone {
				t.Errorf("%s: mapping %s still has the replaced endpoint %s", s.name, m.Key(), gone)
			}
		}
		if m.External == vip {
			sawVIP = true
			for _, e := range s.endpoints {
				if !slices.ContainsFunc(m.Locals, func(l nat44ed.Local) bool { return l.Addr == e.target() }) {
					t.Errorf("%s: mapping %s lacks endpoint %s", s.name, m.Key(), e.target())
				}
			}
		}
	}
	if !sawVIP {
		t.Errorf("%s: no mapping for the cluster IP %s", s.name, vip)
	}
}

// TestBenchServicesAgent starts the real agent binary over a manifests
// folder of 10,000 services with 10 endpoints each (and the example
// Nodes), against a simulator in this process, and prints the time from
// start to ready, to every mapping in VPP, and the agent's memory then.
func TestBenchServicesAgent(t *testing.T) {
	benchEnabled(t)
	const n = 10000
	dir := t.TempDir()
	copyExamples(t, dir, "nodes.yaml")
	c := newBenchCluster(n, freeTCPPorts(t, 2))
	sizes, err := c.writeManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := c.wantMappings()

	env := simtest.Start(t, sim.Options{NoHost: true, Interfaces: []sim.InterfaceSpec{benchUplink()}})
	nd := newNode(t)
	nd.apiSock = env.Path
	before := env.Writes()

	began := time.Now()
	agent := start(t, "kube-vpp-agent", nd.agentArgs(benchSvcNode, dir, "--health-check-addresses", "127.0.0.1")...)
	cl := ctl.NewClient(nd.ctlSock)
	eventually(t, 4*time.Minute, "the agent ready", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		st, err := cl.Status(ctx)
		return err == nil && st.Ready
	})
	ready := time.Since(began)
	memReady := procMemory(t, agent.cmd.Process.Pid)

	// Ready means one full sync succeeded; services the informers had not
	// handed to the proxy by then follow on the fast path. All is there
	// when VPP holds exactly the wanted mappings.
	adds := func() int {
		return env.Sim.Calls("nat44_add_del_lb_static_mapping") + env.Sim.Calls("nat44_add_del_static_mapping_v2")
	}
	var diffs []string
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if adds() >= len(want) {
			if diffs = mappingDiffs(want, vppMappings(t, env.Client)); len(diffs) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("VPP does not hold the wanted mappings after 4m: %s", strings.Join(diffs, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	programmed := time.Since(began)
	memAll := procMemory(t, agent.cmd.Process.Pid)
	writes := env.Writes() - before
	checkHealth(t, c)

	out := agent.out.String()
	if os.Getenv("KUBE_VPP_BENCH_LOG") != "" {
		t.Log(out)
	}
	loaded := "?"
	if at, _, ok := agentLog(out, "manifests loaded"); ok {
		loaded = fmt.Sprintf("%.2fs", at.Sub(began).Seconds())
	}
	first := "?"
	if _, f, ok := agentLog(out, "services synced"); ok {
		first = fmt.Sprintf("%v services, %v with mappings", f["services"], f["mapped"])
	}
	t.Logf("BENCH services agent: %d services x%d endpoints + 3 Nodes from manifests (%s)", n, benchSvcEndpoints, sizes)
	t.Logf("BENCH services agent: start to manifests loaded %s, to ready %.2fs (its first full sync had %s), to all %d mappings in VPP %.2fs; %d VPP writes",
		loaded, ready.Seconds(), first, len(want), programmed.Seconds(), writes)
	t.Logf("BENCH services agent memory: at ready VmRSS=%s VmHWM=%s; with every mapping programmed VmRSS=%s VmHWM=%s",
		memReady.rss, memReady.hwm, memAll.rss, memAll.hwm)
	agent.stop(t)
}

// agentLog finds the first line of the agent's console log with message
// msg, and returns its time and structured fields.
func agentLog(out, msg string) (time.Time, map[string]any, bool) {
	for _, l := range strings.Split(out, "\n") {
		cols := strings.Split(l, "\t") // time, level, [logger,] caller, message, fields
		i := slices.Index(cols, msg)
		if i < 0 {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", cols[0])
		fields := map[string]any{}
		if i+1 < len(cols) {
			_ = json.Unmarshal([]byte(cols[i+1]), &fields)
		}
		return at, fields, err == nil
	}
	return time.Time{}, nil, false
}

// benchUplink is node-a's uplink as the harness's vppsim gets it.
func benchUplink() sim.InterfaceSpec {
	return sim.InterfaceSpec{Name: "GigabitEthernet0/8/0", Addresses: []string{netip.PrefixFrom(benchSvcNodeIP, 24).String()}, Up: true}
}

// benchCluster is the synthetic cluster both benchmarks program: ClusterIP
// services of one TCP port (80 to targetPort 8080), each with one
// EndpointSlice of ten ready endpoints spread over the three example
// Nodes. Every tenth is a NodePort service (the first ones with
// externalTrafficPolicy Local and a healthCheckNodePort) and every
// twentieth has ClientIP affinity, for a realistic mix.
type benchCluster struct {
	services []benchService
	nextPod  netip.Addr // replacement endpoint addresses
}

type benchService struct {
	name      string
	clusterIP netip.Addr
	nodePort  int32 // 0: type ClusterIP
	local     bool  // externalTrafficPolicy Local
	hcPort    int32 // healthCheckNodePort of a Local one
	affinity  bool
	endpoints []benchEndpoint
}

type benchEndpoint struct {
	addr netip.Addr
	node string
}

// target is where the endpoint serves the service port.
func (e benchEndpoint) target() netip.AddrPort { return netip.AddrPortFrom(e.addr, 8080) }

func addrPlus(a netip.Addr, k int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(k)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// newBenchCluster makes n services; the first len(hcPorts) NodePort ones
// are externalTrafficPolicy Local with those health check ports.
func newBenchCluster(n int, hcPorts []int32) *benchCluster {
	c := &benchCluster{nextPod: netip.MustParseAddr("10.200.0.1")}
	vips, pods := netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("10.128.0.1")
	for i := range n {
		s := benchService{name: fmt.Sprint("svc-", i), clusterIP: addrPlus(vips, i), affinity: i%20 == 5}
		if i%10 == 0 {
			s.nodePort = int32(30000 + i/10)
			if k := i / 10; k < len(hcPorts) {
				s.local, s.hcPort = true, hcPorts[k]
			}
		}
		for j := range benchSvcEndpoints {
			s.endpoints = append(s.endpoints, benchEndpoint{addr: addrPlus(pods, i*16+j), node: benchSvcNodes[(i+j)%len(benchSvcNodes)]})
		}
		c.services = append(c.services, s)
	}
	return c
}

func (c *benchCluster) newPodIP() netip.Addr {
	a := c.nextPod
	c.nextPod = a.Next()
	return a
}

func (s benchService) object() *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: benchSvcNamespace},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  s.clusterIP.String(),
			ClusterIPs: []string{s.clusterIP.String()},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(8080), NodePort: s.nodePort}},
		},
	}
	if s.nodePort != 0 {
		svc.Spec.Type = corev1.ServiceTypeNodePort
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		if s.local {
			svc.Spec.ExternalTrafficPolicy, svc.Spec.HealthCheckNodePort = corev1.ServiceExternalTrafficPolicyLocal, s.hcPort
		}
	}
	if s.affinity {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	}
	return svc
}

func (s benchService) slice() *discoveryv1.EndpointSlice {
	yes, no := true, false
	name, port, proto := "http", int32(8080), corev1.ProtocolTCP
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: s.name + "-bench", Namespace: benchSvcNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: s.name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	for _, e := range s.endpoints {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.addr.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
			NodeName:   &e.node,
		})
	}
	return es
}

// writeYAML writes the service and its slice as the same objects as
// object and slice.
func (s benchService) writeYAML(svcs, eps io.Writer) {
	typ, extra := "ClusterIP", ""
	if s.nodePort != 0 {
		typ, extra = "NodePort", fmt.Sprintf(", nodePort: %d", s.nodePort)
	}
	fmt.Fprintf(svcs, "apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  type: %s\n  clusterIP: %s\n  clusterIPs: [%s]\n"+
		"  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080%s}]\n", s.name, benchSvcNamespace, typ, s.clusterIP, s.clusterIP, extra)
	switch {
	case s.local:
		fmt.Fprintf(svcs, "  externalTrafficPolicy: Local\n  healthCheckNodePort: %d\n", s.hcPort)
	case s.nodePort != 0:
		fmt.Fprintf(svcs, "  externalTrafficPolicy: Cluster\n")
	}
	if s.affinity {
		fmt.Fprintf(svcs, "  sessionAffinity: ClientIP\n")
	}
	fmt.Fprintf(svcs, "---\n")

	fmt.Fprintf(eps, "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: %s-bench\n  namespace: %s\n"+
		"  labels: {kubernetes.io/service-name: %s}\naddressType: IPv4\nports: [{name: http, port: 8080, protocol: TCP}]\nendpoints:\n",
		s.name, benchSvcNamespace, s.name)
	for _, e := range s.endpoints {
		fmt.Fprintf(eps, "- addresses: [%s]\n  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: %s\n", e.addr, e.node)
	}
	fmt.Fprintf(eps, "---\n")
}

// writeManifests writes services.yaml and endpointslices.yaml into dir and
// says how big they are.
func (c *benchCluster) writeManifests(dir string) (string, error) {
	var svcs, eps strings.Builder
	for _, s := range c.services {
		s.writeYAML(&svcs, &eps)
	}
	var sizes []string
	for _, f := range []struct{ name, data string }{{"services.yaml", svcs.String()}, {"endpointslices.yaml", eps.String()}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), 0o644); err != nil {
			return "", err
		}
		sizes = append(sizes, fmt.Sprintf("%s %.1f MB", f.name, float64(len(f.data))/1e6))
	}
	return strings.Join(sizes, ", "), nil
}

// wantMappings is what VPP must hold, from Kubernetes semantics: the
// cluster IP's port to every ready endpoint's target port; a NodePort on
// the node's address to every endpoint with externalTrafficPolicy
// Cluster, to this node's only with Local. Keys are "ip:port/proto".
func (c *benchCluster) wantMappings() map[string][]string {
	want := map[string][]string{}
	for _, s := range c.services {
		var all, local []string
		for _, e := range s.endpoints {
			all = append(all, e.target().String())
			if e.node == benchSvcNode {
				local = append(local, e.target().String())
			}
		}
		slices.Sort(all)
		slices.Sort(local)
		want[mappingKey(netip.AddrPortFrom(s.clusterIP, 80), 6)] = all
		if s.nodePort != 0 {
			np := all
			if s.local {
				np = local
			}
			want[mappingKey(netip.AddrPortFrom(benchSvcNodeIP, uint16(s.nodePort)), 6)] = np
		}
	}
	return want
}

// mappingsWith counts the service's mappings that hold endpoint j.
func (s benchService) mappingsWith(j int) int {
	n := 1 // the cluster IP's
	if s.nodePort != 0 && (!s.local || s.endpoints[j].node == benchSvcNode) {
		n++
	}
	return n
}

func mappingKey(a netip.AddrPort, proto uint8) string { return fmt.Sprintf("%s/%d", a, proto) }

// vppMappings dumps the static and load-balanced mappings VPP holds.
func vppMappings(t *testing.T, conn api.Connection) map[string][]string {
	t.Helper()
	ctx := t.Context()
	rpc := nat.NewServiceClient(conn)
	have := map[string][]string{}
	lbs, err := rpc.Nat44LbStaticMappingDump(ctx, &nat.Nat44LbStaticMappingDump{})
	if err != nil {
		t.Fatal(err)
	}
	lbList, err := vppapi.Collect(lbs.Recv)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range lbList {
		var locals []string
		for _, l := range m.Locals {
			locals = append(locals, netip.AddrPortFrom(netip.AddrFrom4(l.Addr), l.Port).String())
		}
		slices.Sort(locals)
		have[mappingKey(netip.AddrPortFrom(netip.AddrFrom4(m.ExternalAddr), m.ExternalPort), m.Protocol)] = locals
	}
	statics, err := rpc.Nat44StaticMappingDump(ctx, &nat.Nat44StaticMappingDump{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := vppapi.Collect(statics.Recv)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		local := netip.AddrPortFrom(netip.AddrFrom4(m.LocalIPAddress), m.LocalPort).String()
		have[mappingKey(netip.AddrPortFrom(netip.AddrFrom4(m.ExternalIPAddress), m.ExternalPort), m.Protocol)] = []string{local}
	}
	return have
}

// mappingDiffs lists (the first few) differences between the wanted and
// the held mappings.
func mappingDiffs(want, have map[string][]string) []string {
	var diffs []string
	for k, w := range want {
		if h, ok := have[k]; !ok {
			diffs = append(diffs, k+" missing")
		} else if !slices.Equal(w, h) {
			diffs = append(diffs, fmt.Sprintf("%s has %v, want %v", k, h, w))
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+" not wanted")
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	return diffs
}

// checkVPP fails the test unless VPP holds exactly the wanted mappings.
func checkVPP(t *testing.T, conn api.Connection, want map[string][]string) {
	t.Helper()
	if diffs := mappingDiffs(want, vppMappings(t, conn)); len(diffs) > 0 {
		t.Errorf("VPP's mappings differ from the wanted ones: %s", strings.Join(diffs, "; "))
	}
}

// checkHealth asks each healthCheckNodePort as a load balancer does: 200
// with the number of this node's ready endpoints while there are some
// (kube-proxy's service health server).
func checkHealth(t *testing.T, c *benchCluster) {
	t.Helper()
	for _, s := range c.services {
		if s.hcPort == 0 {
			continue
		}
		local := 0
		for _, e := range s.endpoints {
			if e.node == benchSvcNode {
				local++
			}
		}
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(int(s.hcPort)) + "/")
		if err != nil {
			t.Errorf("health check of %s: %v", s.name, err)
			continue
		}
		var body struct {
			LocalEndpoints int `json:"localEndpoints"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || body.LocalEndpoints != local {
			t.Errorf("health check of %s: status %d, localEndpoints %d (%v); want 200 and %d", s.name, resp.StatusCode, body.LocalEndpoints, err, local)
		}
	}
}

// freeTCPPorts returns k ports free on 127.0.0.1 right now, for health
// check listeners.
func freeTCPPorts(t *testing.T, k int) []int32 {
	t.Helper()
	var ports []int32
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, int32(l.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

// procMem is a process's resident set now and at its peak, as
// /proc/<pid>/status reports them.
type procMem struct{ rss, hwm string }

func procMemory(t *testing.T, pid int) procMem {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m procMem
	for _, l := range strings.Split(string(data), "\n") {
		field, value, _ := strings.Cut(l, ":")
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
		if err != nil {
			continue
		}
		switch field {
		case "VmRSS":
			m.rss = fmt.Sprintf("%.0fMB", float64(kb)/1024)
		case "VmHWM":
			m.hwm = fmt.Sprintf("%.0fMB", float64(kb)/1024)
		}
	}
	return m
}

// rank is the nearest-rank p-th percentile of d.
func rank(d []time.Duration, p int) time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[max((p*len(s)+99)/100, 1)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }

func quantiles(d []time.Duration) string {
	return fmt.Sprintf("p50=%s p99=%s", ms(rank(d, 50)), ms(rank(d, 99)))
}

func mean(v []int) float64 {
	sum := 0
	for _, x := range v {
		sum += x
	}
	return float64(sum) / float64(len(v))
}
