package pods

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// fakeCluster serves pods and namespaces from maps.
type fakeCluster struct {
	mu        sync.Mutex
	pods      map[string]*corev1.Pod
	ns        map[string]*corev1.Namespace
	annotated map[string]map[string]string
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{pods: map[string]*corev1.Pod{}, ns: map[string]*corev1.Namespace{}, annotated: map[string]map[string]string{}}
}

func (f *fakeCluster) addPod(namespace, name string, ann map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[namespace+"/"+name] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: ann}}
}

func (f *fakeCluster) addNamespace(name string, ann map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ns[name] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
}

func (f *fakeCluster) Pod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pods[namespace+"/"+name], nil
}

func (f *fakeCluster) Namespaces() ([]*corev1.Namespace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*corev1.Namespace, 0, len(f.ns))
	for _, n := range f.ns {
		out = append(out, n)
	}
	return out, nil
}

func (f *fakeCluster) Annotate(_ context.Context, namespace, name string, ann map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.annotated[namespace+"/"+name] = ann
	return nil
}

// testEnv is a simulator with the node loopback programmed and a manager
// reconciled with it.
type testEnv struct {
	t        *testing.T
	vpp      *simtest.Env
	ifaces   *interfaces.Driver
	cluster  *fakeCluster
	cfg      Config
	node     NodeNetwork
	m        *Manager
	stateDir string
}

var nodeRange = netip.MustParsePrefix("10.244.0.0/24")

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, taps and veths")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun to make taps")
	}
}

func newTestEnv(t *testing.T, kind Kind) *testEnv {
	t.Helper()
	requireRoot(t)
	return newEnv(t, kind, false)
}

// newVirtualEnv is a manager of virtual pods (Config.Virtual) next to a
// simulator that stays off the host (sim.Options.NoHost); it needs no root.
func newVirtualEnv(t *testing.T, kind Kind) *testEnv {
	t.Helper()
	return newEnv(t, kind, true)
}

func newEnv(t *testing.T, kind Kind, virtual bool) *testEnv {
	t.Helper()
	e := &testEnv{t: t, vpp: simtest.Start(t, sim.Options{NoHost: virtual}), cluster: newFakeCluster(), stateDir: t.TempDir()}
	e.ifaces = interfaces.New(e.vpp.Client, zaptest.NewLogger(t))
	idx, err := e.ifaces.Sync(context.Background(), loopbackDesired())
	if err != nil {
		t.Fatal(err)
	}
	e.node = NodeNetwork{PodCIDRs: []netip.Prefix{nodeRange}, Loopback: idx[loopbackTag()]}
	e.cfg = Config{StateDir: e.stateDir, MemifDir: filepath.Join(t.TempDir(), "memif"), VhostDir: filepath.Join(t.TempDir(), "vhost"), DefaultKind: kind, MTU: 1400, Virtual: virtual}
	e.m = e.start()
	return e
}

func loopbackTag() string { return tag.New(interfaces.KindLoopback, "node") }

// loopbackDesired is the node loopback holding the pod gateway.
func loopbackDesired() interfaces.Desired {
	return interfaces.Desired{Loopbacks: []interfaces.Loopback{{
		Tag: loopbackTag(), Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix("10.244.0.1/32")},
	}}}
}

// start runs a manager as a (re)started agent would: open state, learn the
// node, reconcile with VPP.
func (e *testEnv) start() *Manager {
	e.t.Helper()
	m, err := New(e.cfg, e.ifaces, ip.New(e.vpp.Client, zaptest.NewLogger(e.t), ip.SourcePods), e.cluster, zaptest.NewLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.SetNode(e.node); err != nil {
		e.t.Fatal(err)
	}
	if err := m.Resync(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// newNetns makes a network namespace that is removed when the test ends.
func newNetns(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	path, err := ensureNetns("kvpt-" + hex.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNetns(path) })
	return path
}

// deleteNetns removes a test namespace after deleting the veths in it.
// Deleting a veth end removes its host end at once, while the kernel tears
// a namespace down later: a later test whose container ID names the same
// host end would otherwise find the old one still there.
func deleteNetns(path string) {
	if h, err := netns.GetFromPath(path); err == nil {
		if nl, err := netlink.NewHandleAt(h); err == nil {
			links, _ := nl.LinkList()
			for _, l := range links {
				if l.Type() == "veth" {
					_ = nl.LinkDel(l)
				}
			}
			nl.Close()
		}
		_ = h.Close()
	}
	_ = removeNetns(path)
}

// containerID is a test container ID shaped like a runtime's: 64 hex
// digits that differ from the first character on.
func containerID(n int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("container-", n)))
	return hex.EncodeToString(sum[:])
}

const testConf = `{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni","dns":{"nameservers":["10.96.0.10"]}}`

func request(cmd, id, netns, namespace, pod string) *cni.Request {
	return &cni.Request{
		Command: cmd, ContainerID: id, Netns: netns, IfName: "eth0",
		Args:   fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s", namespace, pod),
		Config: []byte(testConf),
	}
}

func (e *testEnv) add(id, netns, namespace, pod string) (*types100.Result, error) {
	return e.m.Serve(context.Background(), request("ADD", id, netns, namespace, pod))
}

func cniCode(err error) uint {
	if e, ok := err.(*types.Error); ok {
		return e.Code
	}
	return 0
}
