package tests

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/api"
	vppacl "go.fd.io/govpp/binapi/acl"
	"go.fd.io/govpp/binapi/interface_types"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kube-vpp/kube-vpp/policy"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/acl"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

const (
	polBenchRuns     = 5  // of Compile and of Place on the whole cluster
	polBenchRelabels = 50 // single pod label changes
	polBenchChurn    = 20 // pods added, then as many removed
)

// TestBenchPolicy plays the agent's policy engine (agent/policy.go) on
// node-a of a cluster of 1,000 pods and 1,000 NetworkPolicies
// (newPolBenchCluster), with the real acl driver over the simulator's
// socket and a tap per local pod. It prints
// the compile and placement times, the tables and rules, the first full
// Sync, and the end-to-end cost of one pod relabelled, added or removed:
// Compile + Place + acl.Diff + Driver.Update, as the engine runs them. It
// asserts only correctness: VPP holds exactly the placed ACLs and lists,
// in sync means zero writes, and a relabelled pod's table changes.
func TestBenchPolicy(t *testing.T) {
	benchEnabled(t)
	ctx := t.Context()
	env := simtest.Start(t, sim.Options{NoHost: true, Interfaces: []sim.InterfaceSpec{benchUplink()}})
	log := zap.NewNop()
	ifs := interfaces.New(env.Client, log)
	uplink, found, err := ifs.Lookup(ctx, benchUplink().Name)
	if err != nil || !found {
		t.Fatalf("uplink %s: found %v, %v", benchUplink().Name, found, err)
	}
	c := newPolBenchCluster()
	b := &polBench{t: t, env: env, c: c, ifs: ifs, uplink: uplink, acl: acl.New(env.Client, log), links: map[string]interfaces.PodLink{}}

	began := time.Now()
	for _, key := range slices.Sorted(maps.Keys(c.local)) {
		b.plumb(key)
	}
	plumbed := time.Since(began)

	in := c.input()
	var out policy.Output
	var compiles, places []time.Duration
	for range polBenchRuns {
		began := time.Now()
		out = policy.Compile(in)
		compiles = append(compiles, time.Since(began))
	}
	if len(out.Problems) > 0 {
		t.Fatalf("the benchmark's policies are valid, yet: %v", out.Problems)
	}
	pin := c.placeInput(out.Pods)
	var placed policy.Placement
	for range polBenchRuns {
		began := time.Now()
		placed = policy.Place(pin)
		places = append(places, time.Since(began))
	}
	shape := tableShape(placed.Desired)
	pods, local, frontends := len(c.pods), len(c.local), len(pin.Frontends)

	calls := newACLCalls(env)
	began = time.Now()
	if err := b.acl.Sync(ctx, placed.Desired); err != nil {
		t.Fatalf("first full Sync: %v", err)
	}
	fullSync, full := time.Since(began), calls.since(env)
	inVPP := checkACLState(t, env.Client, placed.Desired)
	// Design principle 1: in sync means zero operations.
	calls = newACLCalls(env)
	if err := b.acl.Sync(ctx, placed.Desired); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	again := calls.since(env)
	if again.writes != 0 {
		t.Errorf("a second Sync of the same placement wrote %d times to VPP, want 0", again.writes)
	}
	b.last = placed

	rng := rand.New(rand.NewPCG(5, 1))
	var relabel, added, removed polBenchSteps
	for i := range polBenchRelabels {
		key := c.randomLocal(rng)
		was := b.last.Tables[key]
		what := c.relabel(key, i%2 == 0)
		relabel.add(b.step())
		// Both changes alter the set of policies selecting the pod for
		// ingress, each with its own allows: its ingress table is another.
		if now := b.last.Tables[key]; now.Ingress == was.Ingress {
			t.Errorf("pod %s %s: its ingress table stayed %s", key, what, now.Ingress)
		}
		b.checkBound(key)
	}
	for range polBenchChurn {
		key := c.addPod(rng)
		b.plumb(key)
		added.add(b.step())
		// Every namespace denies ingress by default: a new pod is isolated.
		if b.last.Tables[key].Ingress == "" {
			t.Errorf("added pod %s has no ingress table", key)
		}
		b.checkBound(key)
	}
	for range polBenchChurn {
		key := c.randomLocal(rng)
		link := b.links[key]
		c.removePod(key)
		removed.add(b.step())
		b.checkLists(link.SwIfIndex, acl.Binding{SwIfIndex: link.SwIfIndex})
		if err := ifs.DeletePod(ctx, link); err != nil {
			t.Fatal(err)
		}
		delete(b.links, key)
	}
	checkACLState(t, env.Client, b.last.Desired)

	t.Logf("BENCH policy cluster: %d pods (%d on %s with a tap each, plumbed in %.2fs), %d namespaces, %d NetworkPolicies, %d service frontends",
		pods, local, polBenchNode, plumbed.Seconds(), len(c.namespaces), len(c.policies), frontends)
	t.Logf("BENCH policy Compile: p50=%s over %d runs; Place: p50=%s over %d runs", ms(rank(compiles, 50)), polBenchRuns, ms(rank(places, 50)), polBenchRuns)
	t.Logf("BENCH policy tables: %d distinct ACLs (%d ingress, %d egress), %d rules in all (largest ACL %d), %d interfaces bound; VPP holds %d kube-vpp ACLs",
		len(placed.Desired.ACLs), shape.ingress, shape.egress, shape.rules, shape.largest, len(placed.Desired.Bindings), inVPP)
	t.Logf("BENCH policy first full Sync: %.2fs, %d VPP writes (%d acl_add_replace, %d acl_interface_set_acl_list, %d acl_del); a second Sync: %d writes",
		fullSync.Seconds(), full.writes, full.adds, full.lists, full.dels, again.writes)
	for _, s := range []struct {
		what  string
		steps polBenchSteps
	}{{"pod relabelled", relabel}, {"pod added", added}, {"pod removed", removed}} {
		t.Logf("BENCH policy %s x%d: end to end %s = Compile %s + Place %s + Diff %s + Update %s; VPP writes per change min=%d mean=%.1f max=%d (mean %.1f acl_add_replace, %.1f acl_interface_set_acl_list, %.1f acl_del)",
			s.what, len(s.steps.total), quantiles(s.steps.total), quantiles(s.steps.compile), quantiles(s.steps.place),
			quantiles(s.steps.diff), quantiles(s.steps.update), slices.Min(s.steps.writes), mean(s.steps.writes),
			slices.Max(s.steps.writes), mean(s.steps.adds), mean(s.steps.lists), mean(s.steps.dels))
	}
}

// polBench is the policy engine's loop, run by hand: the cluster, what
// VPP holds as of the last step, and the local pods' interfaces.
type polBench struct {
	t      *testing.T
	env    *simtest.Env
	c      *polBenchCluster
	ifs    *interfaces.Driver
	uplink uint32
	acl    *acl.Driver
	last   policy.Placement
	links  map[string]interfaces.PodLink
}

// plumb makes the local pod's tap as the CNI path does (the tap borrows
// the uplink's address, as pod taps borrow the node loopback's).
func (b *polBench) plumb(key string) {
	b.t.Helper()
	l, err := b.ifs.CreatePod(b.t.Context(), interfaces.PodInterface{
		Tag: tag.New("pod", key), Kind: interfaces.PodTap, HostIfName: "eth0",
		HostNamespace: "/var/run/netns/" + strings.ReplaceAll(key, "/", "-"), Unnumbered: b.uplink,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	b.links[key] = l
	b.c.local[key] = l.SwIfIndex
}

// aclCalls counts the simulator's write requests, in all and of the ACL
// messages.
type aclCalls struct{ writes, adds, lists, dels int }

func newACLCalls(env *simtest.Env) aclCalls {
	return aclCalls{env.Writes(), env.Sim.Calls("acl_add_replace"), env.Sim.Calls("acl_interface_set_acl_list"), env.Sim.Calls("acl_del")}
}

// since is what was sent after c was counted.
func (c aclCalls) since(env *simtest.Env) aclCalls {
	now := newACLCalls(env)
	return aclCalls{now.writes - c.writes, now.adds - c.adds, now.lists - c.lists, now.dels - c.dels}
}

// polBenchStep is one change's cost.
type polBenchStep struct {
	compile, place, diff, update time.Duration
	calls                        aclCalls
}

type polBenchSteps struct {
	total, compile, place, diff, update []time.Duration
	writes, adds, lists, dels           []int
}

func (s *polBenchSteps) add(x polBenchStep) {
	s.total = append(s.total, x.compile+x.place+x.diff+x.update)
	s.compile, s.place = append(s.compile, x.compile), append(s.place, x.place)
	s.diff, s.update = append(s.diff, x.diff), append(s.update, x.update)
	s.writes, s.adds = append(s.writes, x.calls.writes), append(s.adds, x.calls.adds)
	s.lists, s.dels = append(s.lists, x.calls.lists), append(s.dels, x.calls.dels)
}

// step does what policyEngine.sync does on a connection already synced:
// compile everything, place it, and give the driver the difference. What
// the informers' listers hand it (the cluster's objects, the local pods,
// the service frontends) is gathered first and not timed.
func (b *polBench) step() polBenchStep {
	b.t.Helper()
	in := b.c.input()
	var s polBenchStep
	began := time.Now()
	out := policy.Compile(in)
	s.compile = time.Since(began)
	if len(out.Problems) > 0 {
		b.t.Fatalf("problems: %v", out.Problems)
	}
	pin := b.c.placeInput(out.Pods)
	began = time.Now()
	placed := policy.Place(pin)
	s.place = time.Since(began)
	began = time.Now()
	acls, bindings := acl.Diff(b.last.Desired, placed.Desired)
	s.diff = time.Since(began)
	calls := newACLCalls(b.env)
	if len(acls) > 0 || len(bindings) > 0 {
		began = time.Now()
		if err := b.acl.Update(b.t.Context(), acls, bindings); err != nil {
			b.t.Fatalf("Update: %v", err)
		}
		s.update = time.Since(began)
	}
	s.calls = calls.since(b.env)
	b.last = placed
	return s
}

// checkBound fails unless VPP holds the local pod's placed lists on its tap.
func (b *polBench) checkBound(key string) {
	b.t.Helper()
	sw := b.c.local[key]
	want := acl.Binding{SwIfIndex: sw}
	for _, bd := range b.last.Desired.Bindings {
		if bd.SwIfIndex == sw {
			want = bd
		}
	}
	b.checkLists(sw, want)
}

// checkLists reads one interface's lists and the ACLs in them from VPP
// and compares their tags with want.
func (b *polBench) checkLists(sw uint32, want acl.Binding) {
	b.t.Helper()
	ctx := b.t.Context()
	rpc := vppacl.NewServiceClient(b.env.Client)
	stream, err := rpc.ACLInterfaceListDump(ctx, &vppacl.ACLInterfaceListDump{SwIfIndex: interface_types.InterfaceIndex(sw)})
	if err != nil {
		b.t.Fatal(err)
	}
	list, err := vppapi.Collect(stream.Recv)
	if err != nil || len(list) != 1 {
		b.t.Fatalf("acl_interface_list_dump of sw_if_index %d: %d answers, %v", sw, len(list), err)
	}
	tags := map[uint32]string{}
	for _, idx := range list[0].Acls {
		s, err := rpc.ACLDump(ctx, &vppacl.ACLDump{ACLIndex: idx})
		if err != nil {
			b.t.Fatal(err)
		}
		d, err := vppapi.Collect(s.Recv)
		if err != nil || len(d) != 1 {
			b.t.Fatalf("acl_dump %d: %d answers, %v", idx, len(d), err)
		}
		tags[idx] = d[0].Tag
	}
	in, out := listTags(list[0], tags)
	if !slices.Equal(in, want.Input) || !slices.Equal(out, want.Output) {
		b.t.Errorf("sw_if_index %d holds input %q output %q, want input %q output %q", sw, in, out, want.Input, want.Output)
	}
}

// listTags are the tags of the kube-vpp ACLs in an interface's input and
// output lists (acl_interface_list_details: n_input entries, then output).
func listTags(l *vppacl.ACLInterfaceListDetails, tags map[uint32]string) (in, out []string) {
	for i, idx := range l.Acls {
		tg, ok := tags[idx]
		if !ok || tag.Kind(tg) != acl.KindTable {
			continue
		}
		if i < int(l.NInput) {
			in = append(in, tg)
		} else {
			out = append(out, tg)
		}
	}
	return in, out
}

// aclShape sums up a placement's ACLs.
type aclShape struct{ ingress, egress, rules, largest int }

func tableShape(d acl.Desired) aclShape {
	var s aclShape
	for _, a := range d.ACLs {
		if strings.HasPrefix(a.Tag, tag.New(acl.KindTable, policy.Ingress)) {
			s.ingress++
		} else {
			s.egress++
		}
		s.rules += len(a.Rules)
		s.largest = max(s.largest, len(a.Rules))
	}
	return s
}

// checkACLState fails unless VPP holds exactly want's ACLs (one per tag,
// with its number of rules) and every interface holds exactly its
// binding's kube-vpp ACLs; it returns how many kube-vpp ACLs VPP holds.
func checkACLState(t *testing.T, conn api.Connection, want acl.Desired) int {
	t.Helper()
	ctx := t.Context()
	rpc := vppacl.NewServiceClient(conn)
	stream, err := rpc.ACLDump(ctx, &vppacl.ACLDump{ACLIndex: ^uint32(0)})
	if err != nil {
		t.Fatal(err)
	}
	dump, err := vppapi.Collect(stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	wantRules := map[string]int{}
	for _, a := range want.ACLs {
		wantRules[a.Tag] = len(a.Rules)
	}
	var diffs []string
	tags, held := map[uint32]string{}, map[string]bool{}
	for _, d := range dump {
		tags[d.ACLIndex] = d.Tag
		if tag.Kind(d.Tag) != acl.KindTable {
			continue
		}
		n, ok := wantRules[d.Tag]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("acl %d %s not wanted", d.ACLIndex, d.Tag))
		case held[d.Tag]:
			diffs = append(diffs, fmt.Sprintf("acl %d %s held twice", d.ACLIndex, d.Tag))
		case int(d.Count) != n || len(d.R) != n:
			diffs = append(diffs, fmt.Sprintf("acl %d %s has %d rules, want %d", d.ACLIndex, d.Tag, len(d.R), n))
		}
		held[d.Tag] = true
	}
	for tg := range wantRules {
		if !held[tg] {
			diffs = append(diffs, tg+" missing")
		}
	}
	lstream, err := rpc.ACLInterfaceListDump(ctx, &vppacl.ACLInterfaceListDump{SwIfIndex: ^interface_types.InterfaceIndex(0)})
	if err != nil {
		t.Fatal(err)
	}
	lists, err := vppapi.Collect(lstream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	bound := map[uint32]acl.Binding{}
	for _, bd := range want.Bindings {
		bound[bd.SwIfIndex] = bd
	}
	for _, l := range lists {
		sw := uint32(l.SwIfIndex)
		in, out := listTags(l, tags)
		w := bound[sw]
		delete(bound, sw)
		if !slices.Equal(in, w.Input) || !slices.Equal(out, w.Output) {
			diffs = append(diffs, fmt.Sprintf("sw_if_index %d holds input %q output %q, want %q %q", sw, in, out, w.Input, w.Output))
		}
	}
	for sw := range bound {
		diffs = append(diffs, fmt.Sprintf("sw_if_index %d bound but absent", sw))
	}
	slices.Sort(diffs)
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("and %d more", len(diffs)-5))
	}
	if len(diffs) > 0 {
		t.Errorf("VPP's ACLs differ from the placement: %s", strings.Join(diffs, "; "))
	}
	return len(held)
}

// The cluster. node-a (this node, the services benchmarks' node: uplink
// 192.168.10.11, pod CIDR 10.244.0.0/23) runs about half of the pods,
// node-b and node-c the rest. Pods get their node's next address in the
// order they were scheduled, which is shuffled, so one app's pods are
// scattered over the address space as in a cluster that has lived a while.
const (
	polBenchNode       = "node-a"
	polBenchNamespaces = 20 // of 50 pods and 50 policies each
)

func polBenchNodeAddresses() []netip.Addr {
	return []netip.Addr{benchSvcNodeIP, netip.MustParseAddr("10.244.0.1")}
}

// polBenchCluster is 20 namespaces of 10 apps x 5 replicas (1,000 pods;
// plus DNS, monitoring and ingress controller pods), 50 NetworkPolicies
// per namespace, and a service per app.
type polBenchCluster struct {
	namespaces []*corev1.Namespace
	pods       map[string]*corev1.Pod // by "namespace/name"
	policies   []*networkingv1.NetworkPolicy
	local      map[string]uint32     // node-a's pods: their tap's sw_if_index
	next       map[string]netip.Addr // each node's next free pod address
	added      int
}

// polBenchApp is one app of every namespace: its tier and the container
// ports it names. Canary (v2) replicas of an app with an "http" port
// serve it 100 higher, so a named port resolves per pod.
type polBenchApp struct {
	name, tier string
	http       int32
	ports      []corev1.ContainerPort
}

func polBenchApps() []polBenchApp {
	tcp := func(name string, p int32) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: p, Protocol: corev1.ProtocolTCP}
	}
	backend := func(name string, k int32, more ...corev1.ContainerPort) polBenchApp {
		return polBenchApp{name, "backend", 8000 + k, append([]corev1.ContainerPort{tcp("grpc", 9000+k), tcp("metrics", 9102)}, more...)}
	}
	return []polBenchApp{
		{"web", "frontend", 8080, []corev1.ContainerPort{tcp("metrics", 9102)}},
		backend("api", 0), backend("auth", 1), backend("cart", 2), backend("search", 3), backend("orders", 4),
		backend("payments", 5, corev1.ContainerPort{Name: "sigtran", ContainerPort: 2905, Protocol: corev1.ProtocolSCTP}),
		backend("catalog", 6, corev1.ContainerPort{Name: "statsd", ContainerPort: 8125, Protocol: corev1.ProtocolUDP}),
		{"redis", "cache", 0, []corev1.ContainerPort{tcp("redis", 6379), tcp("cluster", 16379), tcp("metrics", 9121)}},
		{"postgres", "db", 0, []corev1.ContainerPort{tcp("postgres", 5432), tcp("metrics", 9187)}},
	}
}

func newPolBenchCluster() *polBenchCluster {
	c := &polBenchCluster{pods: map[string]*corev1.Pod{}, local: map[string]uint32{}, next: map[string]netip.Addr{
		"node-a": netip.MustParseAddr("10.244.0.2"), "node-b": netip.MustParseAddr("10.244.2.2"), "node-c": netip.MustParseAddr("10.244.4.2"),
	}}
	envs := []string{"prod", "staging", "dev"}
	for _, sys := range []struct{ ns, name, k, v string }{
		{"kube-system", "coredns-0", "k8s-app", "kube-dns"}, {"kube-system", "coredns-1", "k8s-app", "kube-dns"},
		{"monitoring", "prometheus-0", "app", "prometheus"},
		{"ingress-nginx", "controller-0", "app.kubernetes.io/name", "ingress-nginx"},
		{"ingress-nginx", "controller-1", "app.kubernetes.io/name", "ingress-nginx"},
	} {
		if len(c.namespaces) == 0 || c.namespaces[len(c.namespaces)-1].Name != sys.ns {
			c.namespaces = append(c.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sys.ns}})
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: sys.ns, Name: sys.name, Labels: map[string]string{sys.k: sys.v}}}
		c.schedule(p, "node-b")
	}
	apps := polBenchApps()
	var workload []*corev1.Pod
	for n := range polBenchNamespaces {
		ns, team, env := fmt.Sprintf("ns%02d", n), fmt.Sprintf("team%d", n%5), envs[n%3]
		c.namespaces = append(c.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"team": team, "env": env}}})
		c.policies = append(c.policies, polBenchPolicies(ns, team, env, apps)...)
		for _, app := range apps {
			for r := range 5 {
				workload = append(workload, polBenchPod(ns, fmt.Sprintf("%s-%d", app.name, r), app, team, r == 4))
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(workload), func(i, j int) { workload[i], workload[j] = workload[j], workload[i] })
	for i, p := range workload {
		node := []string{polBenchNode, "node-b", polBenchNode, "node-c"}[i%4]
		c.schedule(p, node)
	}
	return c
}

// polBenchPod is a running pod of app; the platform team runs the data stores.
func polBenchPod(ns, name string, app polBenchApp, team string, canary bool) *corev1.Pod {
	version, http := "v1", app.http
	if canary {
		version, http = "v2", http+100
	}
	if app.tier == "cache" || app.tier == "db" {
		team = "platform"
	}
	var ports []corev1.ContainerPort
	if app.http != 0 {
		ports = append(ports, corev1.ContainerPort{Name: "http", ContainerPort: http, Protocol: corev1.ProtocolTCP})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{"app": app.name, "tier": app.tier, "team": team, "version": version}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app.name, Ports: append(ports, app.ports...)}}},
	}
}

// schedule runs p on node with the node's next address.
func (c *polBenchCluster) schedule(p *corev1.Pod, node string) {
	ip := c.next[node]
	c.next[node] = ip.Next()
	p.Spec.NodeName = node
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip.String(), PodIPs: []corev1.PodIP{{IP: ip.String()}}}
	key := p.Namespace + "/" + p.Name
	c.pods[key] = p
	if node == polBenchNode {
		c.local[key] = 0
	}
}

// input is what the engine's listers hand Compile.
func (c *polBenchCluster) input() policy.Input {
	return policy.Input{Pods: slices.Collect(maps.Values(c.pods)), Namespaces: c.namespaces, Policies: c.policies}
}

// placeInput is the rest of what the engine hands Place: the local pods'
// interfaces, the node's addresses and every service frontend.
func (c *polBenchCluster) placeInput(rules map[string]policy.PodRules) policy.PlaceInput {
	in := policy.PlaceInput{Rules: rules, NodeAddresses: polBenchNodeAddresses(), Frontends: c.frontends()}
	for key, sw := range c.local {
		in.Local = append(in.Local, policy.LocalPod{Pod: key, SwIfIndexes: []uint32{sw}})
	}
	return in
}

// frontends are a ClusterIP service per app of each namespace (port 80
// to "http", or the data store's own port) selecting the app's pods, a
// NodePort for each web, and cluster DNS: 222 frontends.
func (c *polBenchCluster) frontends() []policy.Frontend {
	byApp := map[string][]*corev1.Pod{}
	for _, p := range c.pods {
		byApp[p.Namespace+"/"+p.Labels["app"]] = append(byApp[p.Namespace+"/"+p.Labels["app"]], p)
	}
	// The EndpointSlice controller's targetPort resolution: the pod's port
	// of that name.
	target := func(p *corev1.Pod, name string) (netip.AddrPort, bool) {
		for _, cp := range p.Spec.Containers[0].Ports {
			if cp.Name == name {
				return netip.AddrPortFrom(netip.MustParseAddr(p.Status.PodIP), uint16(cp.ContainerPort)), true
			}
		}
		return netip.AddrPort{}, false
	}
	tcp := uint8(policy.TCP)
	var out []policy.Frontend
	for n := range polBenchNamespaces {
		for a, app := range polBenchApps() {
			svc := fmt.Sprintf("ns%02d/%s", n, app.name)
			port, name := uint16(80), "http"
			if app.http == 0 {
				port, name = uint16(app.ports[0].ContainerPort), app.ports[0].Name
			}
			var backends []netip.AddrPort
			for _, p := range byApp[svc] {
				if t, ok := target(p, name); ok {
					backends = append(backends, t)
				}
			}
			vip := netip.AddrFrom4([4]byte{10, 96, byte(n + 1), byte(10 + a)})
			out = append(out, policy.Frontend{Addr: netip.AddrPortFrom(vip, port), Protocol: tcp, Service: svc, Backends: backends})
			if app.tier == "frontend" {
				out = append(out, policy.Frontend{Addr: netip.AddrPortFrom(benchSvcNodeIP, uint16(30000+n)), Protocol: tcp, Service: svc, Backends: backends})
			}
		}
	}
	var dns []netip.AddrPort
	for _, p := range byApp["kube-system/"] {
		dns = append(dns, netip.AddrPortFrom(netip.MustParseAddr(p.Status.PodIP), 53))
	}
	vip := netip.AddrPortFrom(netip.MustParseAddr("10.96.0.10"), 53)
	return append(out, policy.Frontend{Addr: vip, Protocol: uint8(policy.UDP), Service: "kube-system/kube-dns", Backends: dns},
		policy.Frontend{Addr: vip, Protocol: tcp, Service: "kube-system/kube-dns", Backends: dns})
}

// randomLocal picks one of node-a's pods.
func (c *polBenchCluster) randomLocal(rng *rand.Rand) string {
	keys := slices.Sorted(maps.Keys(c.local))
	return keys[rng.IntN(len(keys))]
}

// relabel changes one label of the pod as kubectl label would (a new
// object): its version (a canary promoted or demoted) or its tier.
func (c *polBenchCluster) relabel(key string, version bool) string {
	p := c.pods[key].DeepCopy()
	k, from := "tier", p.Labels["tier"]
	to := map[bool]string{true: "backend", false: "frontend"}[from == "frontend"]
	if version {
		k, from = "version", p.Labels["version"]
		to = map[bool]string{true: "v2", false: "v1"}[from == "v1"]
	}
	p.Labels[k] = to
	c.pods[key] = p
	return fmt.Sprintf("relabelled %s=%s to %s", k, from, to)
}

// addPod schedules a new v1 replica of a random app on node-a.
func (c *polBenchCluster) addPod(rng *rand.Rand) string {
	n, apps := rng.IntN(polBenchNamespaces), polBenchApps()
	app := apps[rng.IntN(len(apps))]
	c.added++
	p := polBenchPod(fmt.Sprintf("ns%02d", n), fmt.Sprintf("%s-new%d", app.name, c.added), app, fmt.Sprintf("team%d", n%5), false)
	c.schedule(p, polBenchNode)
	return p.Namespace + "/" + p.Name
}

func (c *polBenchCluster) removePod(key string) {
	delete(c.pods, key)
	delete(c.local, key)
}

// polBenchPolicies are one namespace's 50 NetworkPolicies: ten for the
// whole namespace or a tier (default deny, DNS, monitoring, the ingress
// controller and the internet to the frontends, syslog, ...) and four per
// app (its ingress, its egress, its canary's cross-environment access and
// one for its own kind of traffic: SCTP, UDP, replication, partners).
func polBenchPolicies(ns, team, env string, apps []polBenchApp) []*networkingv1.NetworkPolicy {
	all, frontend, backend := &metav1.LabelSelector{}, labelSel("tier", "frontend"), labelSel("tier", "backend")
	in, eg := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	both := append(slices.Clone(in), eg...)
	tcp, udp, sctp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP
	internet := blockPeer("0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
	out := []*networkingv1.NetworkPolicy{
		netpol(ns, "default-deny-ingress", all, in, nil, nil),
		netpol(ns, "allow-dns", all, eg, nil, []polRule{
			{[]networkingv1.NetworkPolicyPeer{nsPeer(labelSel(corev1.LabelMetadataName, "kube-system"), labelSel("k8s-app", "kube-dns"))},
				[]networkingv1.NetworkPolicyPort{portNum(udp, 53), portNum(tcp, 53)}}}),
		netpol(ns, "allow-prometheus", all, in, []polRule{polAllow(nsPeer(labelSel(corev1.LabelMetadataName, "monitoring"), labelSel("app", "prometheus")), portName(tcp, "metrics"))}, nil),
		netpol(ns, "frontend-from-ingress", frontend, in, []polRule{
			polAllow(nsPeer(labelSel(corev1.LabelMetadataName, "ingress-nginx"), labelSel("app.kubernetes.io/name", "ingress-nginx")), portName(tcp, "http")),
			polAllow(internet, portNum(tcp, 443))}, nil),
		netpol(ns, "frontend-from-other-teams", frontend, in, []polRule{polAllow(nsPeer(labelExpr("team", metav1.LabelSelectorOpNotIn, team), nil), portName(tcp, "http"))}, nil),
		netpol(ns, "backend-from-frontend", backend, in, []polRule{polAllow(podPeer(frontend), portName(tcp, "http"))}, nil),
		netpol(ns, "backend-to-internet", backend, eg, nil, []polRule{polAllow(blockPeer("0.0.0.0/0", "10.0.0.0/8", "192.168.0.0/16"), portNum(tcp, 443))}),
		netpol(ns, "quarantine", labelSel("quarantine", "true"), both, nil, nil),
		netpol(ns, "allow-syslog", all, eg, nil, []polRule{{[]networkingv1.NetworkPolicyPeer{blockPeer("192.168.20.0/24")},
			[]networkingv1.NetworkPolicyPort{portNum(udp, 514), portNum(tcp, 6514)}}}),
	}
	if env == "prod" {
		out = append(out, netpol(ns, "default-deny-egress", all, eg, nil, nil))
	} else {
		out = append(out, netpol(ns, "allow-same-namespace", all, in, []polRule{{peers: []networkingv1.NetworkPolicyPeer{podPeer(all)}}}, nil))
	}
	for i, app := range apps {
		self := labelSel("app", app.name)
		next := labelSel("app", apps[(i+1)%len(apps)].name)
		var ingress, egress, extra []polRule
		extraTypes := in
		switch app.tier {
		case "frontend":
			ingress = []polRule{polAllow(nsPeer(labelSel("team", team), nil), portName(tcp, "http"))}
			egress = []polRule{polAllow(podPeer(backend), portName(tcp, "http"))}
			extra = []polRule{polAllow(blockPeer("203.0.113.0/24"), portNum(tcp, 8443))}
		case "backend":
			ingress = []polRule{polAllow(nsPeer(labelSel("team", team), backend), portName(tcp, "grpc")), polAllow(podPeer(next), portRange(tcp, 8000, 8010))}
			egress = []polRule{
				{[]networkingv1.NetworkPolicyPeer{podPeer(labelExpr("tier", metav1.LabelSelectorOpIn, "cache", "db"))},
					[]networkingv1.NetworkPolicyPort{portNum(tcp, 6379), portNum(tcp, 5432)}},
				polAllow(blockPeer("172.16.0.0/12", "172.16.5.0/24", "172.16.200.0/21"), portNum(tcp, 443)),
				polAllow(nsPeer(labelSel("team", team), self), portName(tcp, "grpc")),
			}
			extra, extraTypes = []polRule{polAllow(nsPeer(labelSel(corev1.LabelMetadataName, "monitoring"), nil), portNum(udp, 8125))}, eg
			if app.name == "payments" {
				extra, extraTypes = []polRule{polAllow(blockPeer("198.51.100.0/24"), portName(sctp, "sigtran"))}, both
				egress = append(egress, polAllow(blockPeer("192.0.2.0/24"), portNum(sctp, 2905)))
			}
		case "cache":
			ingress = []polRule{polAllow(podPeer(backend), portName(tcp, "redis"))}
			egress = []polRule{polAllow(podPeer(self), portName(tcp, "cluster"))}
			extra = []polRule{polAllow(podPeer(self), portName(tcp, "cluster"))}
		case "db":
			ingress = []polRule{polAllow(podPeer(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"backend"}},
				{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web", "search"}}}}), portNum(tcp, 5432))}
			egress = []polRule{polAllow(blockPeer("10.250.0.0/16"), portRange(tcp, 9000, 9100))}
			extra = []polRule{polAllow(nsPeer(labelExpr("env", metav1.LabelSelectorOpIn, "prod"), self), portName(tcp, "postgres"))}
		}
		canary := []polRule{{[]networkingv1.NetworkPolicyPeer{nsPeer(labelExpr("env", metav1.LabelSelectorOpIn, "staging", "dev"), self)},
			[]networkingv1.NetworkPolicyPort{portRange(tcp, 9000, 9100), portNum(udp, 8125)}}}
		out = append(out,
			netpol(ns, app.name+"-ingress", self, in, ingress, nil),
			netpol(ns, app.name+"-egress", self, eg, nil, egress),
			netpol(ns, app.name+"-canary", labelSel("app", app.name, "version", "v2"), in, canary, nil),
			netpol(ns, app.name+"-extra", self, extraTypes, extra, extra))
	}
	return out
}

// polRule is one ingress or egress rule: its peers and ports.
type polRule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func polAllow(peer networkingv1.NetworkPolicyPeer, port networkingv1.NetworkPolicyPort) polRule {
	return polRule{[]networkingv1.NetworkPolicyPeer{peer}, []networkingv1.NetworkPolicyPort{port}}
}

// netpol makes a policy; the rules of a direction types leave out are dropped.
func netpol(ns, name string, pods *metav1.LabelSelector, types []networkingv1.PolicyType, in, eg []polRule) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: *pods, PolicyTypes: types}}
	if slices.Contains(types, networkingv1.PolicyTypeIngress) {
		for _, r := range in {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: r.peers, Ports: r.ports})
		}
	}
	if slices.Contains(types, networkingv1.PolicyTypeEgress) {
		for _, r := range eg {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: r.peers, Ports: r.ports})
		}
	}
	return np
}

// labelSel matches the label pairs kv.
func labelSel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func labelExpr(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func podPeer(pods *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: pods}
}

// nsPeer selects pods in the namespaces nss selects; nil pods is all of them.
func nsPeer(nss, pods *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: nss, PodSelector: pods}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func portNum(proto corev1.Protocol, port int32) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(port)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func portRange(proto corev1.Protocol, first, last int32) networkingv1.NetworkPolicyPort {
	np := portNum(proto, first)
	np.EndPort = &last
	return np
}

func portName(proto corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}
