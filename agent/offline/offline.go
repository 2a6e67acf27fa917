// Package offline runs one node's agent and a simulated VPP in the calling
// process over a folder of manifests, so that kube-vppctl can show what
// that node would program and trace packets through it without a cluster,
// a VPP or any change to the host.
package offline

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-vpp/kube-vpp/agent"
	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/agent/ctl"
	"github.com/kube-vpp/kube-vpp/agent/manifests"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
)

// Uplink is the name of the simulated node's uplink interface. It holds
// the node's IPv4 InternalIP, as a /24.
const Uplink = "uplink0"

// readyTimeout bounds the wait for the agent's first full sync.
const readyTimeout = 60 * time.Second

// Node is the node the agent plays.
type Node struct {
	Name       string
	InternalIP netip.Addr // IPv4; invalid when the Node has none
}

// PickNode finds name among the folder's Nodes, or with name "" the only
// or first (by name) one.
func PickNode(dir, name string) (Node, error) {
	objs, errs := manifests.LoadDir(dir)
	if len(objs) == 0 && len(errs) > 0 {
		return Node{}, fmt.Errorf("manifests %s: %w", dir, errors.Join(errs...))
	}
	var nodes []*corev1.Node
	for _, o := range objs {
		if n, ok := o.(*corev1.Node); ok {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return Node{}, fmt.Errorf("manifests %s: no Node; the agent plays one of the folder's Nodes", dir)
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	n := nodes[0]
	if name != "" {
		i := slices.IndexFunc(nodes, func(n *corev1.Node) bool { return n.Name == name })
		if i < 0 {
			var names []string
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			return Node{}, fmt.Errorf("manifests %s: no Node %q (there are: %s)", dir, name, strings.Join(names, ", "))
		}
		n = nodes[i]
	}
	out := Node{Name: n.Name}
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP && ip.Is4() {
			out.InternalIP = ip
			break
		}
	}
	return out, nil
}

// Options tune Run.
type Options struct {
	// Args are extra agent flags, e.g. --service-cidrs.
	Args []string
	// Log receives the agent's and the simulator's logs; nil discards them.
	Log *zap.Logger
}

// Run starts a simulator and the agent of node over the manifests in dir,
// waits for the agent's first full sync, and calls fn with a client of
// the agent's control socket. Everything is stopped and removed when fn
// returns.
func Run(ctx context.Context, dir string, node Node, opts Options, fn func(ctx context.Context, c *ctl.Client) error) error {
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	tmp, err := os.MkdirTemp("", "kube-vpp-offline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	spec := sim.InterfaceSpec{Name: Uplink, Up: true}
	if node.InternalIP.IsValid() {
		spec.Addresses = []string{netip.PrefixFrom(node.InternalIP, 24).String()}
	}
	s, err := sim.New(sim.Options{Logger: log.Named("vppsim"), NoHost: true, Interfaces: []sim.InterfaceSpec{spec}})
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	apiSock := filepath.Join(tmp, "api.sock")
	if err := s.Listen(apiSock); err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer s.Close()

	ctlSock := filepath.Join(tmp, "ctl.sock")
	args := append([]string{
		"--node", node.Name, "--manifests", dir, "--vpp-socket", apiSock, "--ctl-socket", ctlSock,
		"--cni-socket", filepath.Join(tmp, "cni.sock"), "--state-dir", filepath.Join(tmp, "state"),
		"--http-listen", "127.0.0.1:0", "--uplink-interface", Uplink, "--pod-interface", "tap",
		// Nothing on the host unless asked for: no proxy health server.
		"--healthz-bind-address=",
	}, opts.Args...)
	cfg, err := config.Load(args)
	if err != nil {
		return fmt.Errorf("agent configuration: %w", err)
	}
	cfg.Pods.MemifDir, cfg.Pods.VhostDir = filepath.Join(tmp, "memif"), filepath.Join(tmp, "vhost-user")

	actx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agent.New(cfg, log.Named("agent"), agent.VirtualPods()).Run(actx) }()
	defer func() {
		stop()
		<-done
	}()

	c := ctl.NewClient(ctlSock)
	if err := waitReady(ctx, c, done); err != nil {
		return err
	}
	return fn(ctx, c)
}

func waitReady(ctx context.Context, c *ctl.Client, done <-chan error) error {
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("agent stopped before it was ready: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		st, err := c.Status(ctx)
		if err != nil {
			last = err.Error()
			continue
		}
		if st.Ready {
			return nil
		}
		last = st.Reason
		if st.LastSyncError != "" {
			last = st.LastSyncError
		}
	}
	return fmt.Errorf("agent not ready after %s: %s", readyTimeout, last)
}
