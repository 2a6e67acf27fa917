// Package pods plumbs pods into VPP: it serves the agent's side of CNI
// calls (ADD, DEL, CHECK, STATUS, GC), allocating each pod's addresses,
// making its VPP interface and host route, and configuring the pod's end
// in its network namespace. A restarted agent adopts what VPP already has.
package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/cni/ipam"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

// codePluginNotAvailable is the CNI spec's code 50 for STATUS: the plugin
// cannot serve ADD now.
const codePluginNotAvailable uint = 50

// StateFile is the allocation state's name inside Config.StateDir.
const StateFile = "ipam.json"

// Config is the node's pod networking settings.
type Config struct {
	StateDir string
	MemifDir string
	VhostDir string
	// DefaultKind is tap or veth: what pods get unless they ask otherwise.
	// A node without /dev/vhost-net cannot make taps, and pods asking for
	// one get veth there too.
	DefaultKind Kind
	MTU         int
	// Connection reports which VPP connection is current (it changes when
	// VPP reconnects or restarts); pods reconciled under another one wait
	// for the next Resync. Nil means one connection for the manager's life.
	Connection func() uint64
	// Virtual plumbs pods in VPP only, for an agent that runs offline next
	// to a simulator (kube-vppctl trace --manifests): Standalone allocates
	// their addresses and makes their VPP interfaces, unnumbered bindings
	// and host routes, but no network namespace, veth or configuration on
	// the host; their recorded namespace is "". CNI ADD is refused, and a
	// Resync never takes the missing namespace for a pod that is gone.
	Virtual bool
	// OnAttach, when set, is called with a pod ("namespace/name"), its
	// addresses and the sw_if_indexes of its VPP interfaces once they exist, are up and have
	// their host routes, before ADD or Standalone reports the pod plumbed;
	// likewise when a Resync or a repeated ADD makes them again (not for
	// interfaces a Resync adopts as they are). Its error fails the pod as
	// any other failure does, undoing what was made. It must not call the
	// Manager.
	OnAttach func(ctx context.Context, pod string, ips []netip.Addr, swIfIndexes []uint32) error
}

// Cluster is what the manager reads from and writes to Kubernetes.
type Cluster interface {
	// Pod returns the pod; a pod Kubernetes does not know is (nil, nil).
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	Namespaces() ([]*corev1.Namespace, error)
	// Annotate merges annotations into the pod's.
	Annotate(ctx context.Context, namespace, name string, annotations map[string]string) error
}

// NodeNetwork is this node's part of the pod network, from its Node object
// and the node loopback that holds the pod gateways.
type NodeNetwork struct {
	PodCIDRs []netip.Prefix
	// Loopback is the sw_if_index of the node loopback; pod interfaces are
	// unnumbered to it.
	Loopback uint32
}

// Manager serves CNI calls for one node. It implements cni.Handler.
type Manager struct {
	cfg     Config
	ifaces  *interfaces.Driver
	fib     *ip.Driver
	cluster Cluster
	log     *zap.Logger
	ipam    *ipam.Allocator
	host    hostSide

	// ops lets CNI calls run concurrently (read side) while a resync
	// rebuilds the picture of VPP (write side).
	ops   sync.RWMutex
	locks keyedLocks

	mu      sync.Mutex
	node    NodeNetwork
	hasNode bool
	synced  bool                            // a resync succeeded ...
	epoch   uint64                          // ... on this VPP connection (Config.Connection)
	links   map[string][]interfaces.PodLink // by container ID
}

// New opens the allocation state under cfg.StateDir. A state file that
// cannot be read is set aside and rebuilt from VPP at the first Resync.
func New(cfg Config, ifaces *interfaces.Driver, fib *ip.Driver, cluster Cluster, log *zap.Logger) (*Manager, error) {
	if cfg.DefaultKind != KindTap && cfg.DefaultKind != KindVeth {
		return nil, fmt.Errorf("default pod interface %q: want tap or veth", cfg.DefaultKind)
	}
	log = log.Named("pods")
	path := filepath.Join(cfg.StateDir, StateFile)
	alloc, err := ipam.Open(path, log)
	if err != nil {
		return nil, fmt.Errorf("IP allocation state: %w", err)
	}
	return &Manager{
		cfg: cfg, ifaces: ifaces, fib: fib, cluster: cluster, log: log, ipam: alloc,
		host: newHostSide(cfg.Virtual), links: map[string][]interfaces.PodLink{},
	}, nil
}

// SetNode gives the manager the node's pod ranges and loopback; until it
// is called CNI ADDs are refused as "try again later".
func (m *Manager) SetNode(n NodeNetwork) error {
	m.mu.Lock()
	same := m.hasNode && m.node.Loopback == n.Loopback && slices.Equal(m.node.PodCIDRs, n.PodCIDRs)
	m.mu.Unlock()
	if same {
		return nil
	}
	if err := m.ipam.SetRanges(n.PodCIDRs); err != nil {
		return fmt.Errorf("node pod CIDRs: %w", err)
	}
	for _, r := range m.ipam.OutsideRanges() {
		m.log.Warn("pod keeps addresses outside the node's pod ranges", zap.String("pod", r.Namespace+"/"+r.Pod),
			zap.String("container", shortID(r.ContainerID)), zap.Stringers("ips", addrs(r.IPs)))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.node, m.hasNode = n, true
	return nil
}

// Invalidate forgets what VPP was believed to hold (VPP reconnected); CNI
// calls wait for the next Resync.
func (m *Manager) Invalidate() {
	m.fib.Invalidate()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced = false
}

// Synced reports whether pods are reconciled with the VPP now connected.
func (m *Manager) Synced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncedLocked()
}

func (m *Manager) syncedLocked() bool { return m.synced && m.epoch == m.connection() }

func (m *Manager) connection() uint64 {
	if m.cfg.Connection == nil {
		return 0
	}
	return m.cfg.Connection()
}

func (m *Manager) nodeNetwork() (NodeNetwork, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.hasNode:
		return NodeNetwork{}, cni.Errorf(types.ErrTryAgainLater, "agent not ready: this node's pod CIDRs and loopback are not programmed yet")
	case !m.syncedLocked():
		return NodeNetwork{}, cni.Errorf(types.ErrTryAgainLater, "agent not ready: pod interfaces not yet reconciled with VPP")
	}
	return m.node, nil
}

// Serve implements cni.Handler.
func (m *Manager) Serve(ctx context.Context, req *cni.Request) (*types100.Result, error) {
	switch req.Command {
	case "STATUS":
		_, err := m.nodeNetwork()
		if err != nil {
			return nil, cni.Errorf(codePluginNotAvailable, "kube-vpp agent not ready: %v", cni.AsError(err).Msg)
		}
		return nil, nil
	case "GC":
		return nil, m.gc(ctx, req)
	case "ADD":
		if m.cfg.Virtual {
			return nil, cni.Errorf(cni.CodePodNetwork, "container %s: this agent plumbs virtual pods from manifests only (offline mode); CNI ADD is not served",
				shortID(req.ContainerID))
		}
	}
	conf, err := cni.ParseNetConf(req.Config)
	if err != nil {
		return nil, err
	}
	m.ops.RLock()
	defer m.ops.RUnlock()
	unlock := m.locks.lock(req.ContainerID)
	defer unlock()
	switch req.Command {
	case "ADD":
		return m.add(ctx, req, conf)
	case "DEL":
		return nil, m.del(ctx, req.ContainerID, podOf(req))
	case "CHECK":
		return nil, m.check(ctx, req)
	}
	return nil, cni.Errorf(types.ErrInvalidEnvironmentVariables, "unknown CNI command %q", req.Command)
}

// plumbing is what the manager stores with an allocation to undo, check
// and re-create a pod's network.
type plumbing struct {
	Kind      Kind `json:"kind"`
	MemifOnly bool `json:"memifOnly,omitempty"`
	// Linux is the kind of the pod's Linux interface (tap or veth), ""
	// when it has none (memif-only, vhost-user).
	Linux       Kind   `json:"linux,omitempty"`
	Netns       string `json:"netns,omitempty"` // "" for a virtual pod (Config.Virtual)
	IfName      string `json:"ifName"`
	MTU         int    `json:"mtu,omitempty"`
	HostVeth    string `json:"hostVeth,omitempty"`
	PodMAC      string `json:"podMAC,omitempty"` // the pod end of a veth
	MemifSocket string `json:"memifSocket,omitempty"`
	VhostSocket string `json:"vhostSocket,omitempty"`
	VhostServer bool   `json:"vhostServer,omitempty"`
	// Standalone pods were plumbed from a manifests folder; their network
	// namespace is the agent's to remove.
	Standalone bool `json:"standalone,omitempty"`
}

func plumbingOf(r ipam.Record) (plumbing, error) {
	var p plumbing
	if len(r.Extra) == 0 {
		return p, fmt.Errorf("container %s: no plumbing recorded", shortID(r.ContainerID))
	}
	if err := json.Unmarshal(r.Extra, &p); err != nil {
		return p, fmt.Errorf("container %s: plumbing record: %w", shortID(r.ContainerID), err)
	}
	return p, nil
}

// keyedLocks serialises calls for one container ID.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

func addrs(ips []netip.Addr) []fmt.Stringer {
	out := make([]fmt.Stringer, len(ips))
	for i, a := range ips {
		out[i] = a
	}
	return out
}

// codeOf maps an error from the allocator or the annotations to a CNI error.
func codeOf(err error) error {
	var ae *AnnotationError
	var addrErr *ipam.AddressError
	var poolErr *ipam.PoolError
	switch {
	case errors.As(err, &ae), errors.As(err, &poolErr):
		return &types.Error{Code: cni.CodeAnnotation, Msg: err.Error()}
	case errors.As(err, &addrErr), errors.Is(err, ipam.ErrExhausted):
		return &types.Error{Code: cni.CodeIPAM, Msg: err.Error()}
	}
	return err
}

// record finds the allocation of a container. Allocations rebuilt from
// VPP know only the short ID (12 characters) that fits in VPP's tag; such
// a record matches a full ID only for the same pod, when the call names one.
func (m *Manager) record(containerID string, pod *cni.PodRef) (ipam.Record, bool) {
	if rec, ok := m.ipam.Get(containerID); ok {
		return rec, true
	}
	short := shortID(containerID)
	if short == containerID {
		return ipam.Record{}, false
	}
	rec, ok := m.ipam.Get(short)
	if !ok || (pod != nil && (rec.Namespace != pod.Namespace || rec.Pod != pod.Name)) {
		return ipam.Record{}, false
	}
	return rec, true
}

// podOf is the pod a call names in CNI_ARGS, nil when it names none.
func podOf(req *cni.Request) *cni.PodRef {
	args, err := cni.ParseArgs(req.Args)
	if err != nil || args[cni.ArgPodNamespace] == "" || args[cni.ArgPodName] == "" {
		return nil
	}
	return &cni.PodRef{Namespace: args[cni.ArgPodNamespace], Name: args[cni.ArgPodName]}
}
