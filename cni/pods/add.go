package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/cni/ipam"
	"github.com/kube-vpp/kube-vpp/cni/podnet"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
)

// add serves ADD. The same container ID again returns the same result
// when its network is intact, and repairs it when not. Any failure undoes
// what this call made: the allocation, the VPP objects and the veth.
func (m *Manager) add(ctx context.Context, req *cni.Request, conf *cni.NetConf) (*types100.Result, error) {
	return m.addWith(ctx, req, conf, addOptions{})
}

// addOptions are what a standalone pod adds to an ADD.
type addOptions struct {
	fixed      []netip.Addr // used when the pod's annotations fix none
	standalone bool
}

func (m *Manager) addWith(ctx context.Context, req *cni.Request, conf *cni.NetConf, extra addOptions) (*types100.Result, error) {
	start := time.Now()
	ref, err := req.Pod()
	if err != nil {
		return nil, err
	}
	pod := ref.String()
	if !extra.standalone { // a standalone pod's namespace is made below, once recorded
		if req.Netns == "" {
			return nil, cni.Errorf(types.ErrInvalidNetNS, "pod %s: CNI_NETNS is empty", pod)
		}
		if err := m.host.checkNetns(req.Netns); err != nil {
			return nil, cni.Errorf(types.ErrInvalidNetNS, "pod %s: %v", pod, err)
		}
	}
	node, err := m.nodeNetwork()
	if err != nil {
		return nil, err
	}
	if rec, ok := m.record(req.ContainerID, &ref); ok {
		return m.readd(ctx, rec, node, conf)
	}

	opts, err := m.podOptions(ctx, ref)
	if err != nil {
		return nil, codeOf(err)
	}
	if err := m.refreshPool(ctx, ref.Namespace); err != nil {
		return nil, codeOf(err)
	}
	if len(opts.Fixed) == 0 {
		opts.Fixed = extra.fixed
	}
	pl := m.plan(req, ref, opts)
	pl.Standalone = extra.standalone
	if conf.MTU > 0 {
		pl.MTU = conf.MTU
	}
	plJSON, err := json.Marshal(pl)
	if err != nil {
		return nil, err
	}
	rec, err := m.ipam.Allocate(ipam.Request{
		ContainerID: req.ContainerID, IfName: req.IfName, Namespace: ref.Namespace, Pod: ref.Name,
		Fixed: opts.Fixed, Extra: plJSON,
	})
	if err != nil {
		return nil, codeOf(fmt.Errorf("pod %s: %w", pod, err))
	}
	if extra.standalone {
		if err := m.host.ensureNetns(req.Netns); err != nil {
			if _, _, relErr := m.ipam.Release(req.ContainerID); relErr != nil {
				m.log.Error("releasing the addresses of a failed ADD failed", zap.String("pod", pod), zap.Error(relErr))
			}
			return nil, &types.Error{Code: cni.CodePodNetwork, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
	}
	links, podMAC, err := m.plumb(ctx, rec, pl, node)
	if err == nil && podMAC != nil {
		pl.PodMAC = podMAC.String()
		if err = m.saveExtra(rec.ContainerID, pl); err != nil {
			if unErr := m.unplumb(ctx, rec, pl); unErr != nil {
				m.log.Error("undoing a pod whose record could not be saved failed", zap.String("pod", pod), zap.Error(unErr))
			}
		}
	}
	if err != nil {
		if _, _, relErr := m.ipam.Release(req.ContainerID); relErr != nil {
			m.log.Error("releasing the addresses of a failed ADD failed", zap.String("pod", pod), zap.Error(relErr))
		}
		if extra.standalone {
			if rmErr := m.host.removeNetns(req.Netns); rmErr != nil {
				m.log.Warn("removing the network namespace of a failed standalone pod failed", zap.String("pod", pod), zap.Error(rmErr))
			}
		}
		return nil, err
	}
	m.annotate(ctx, ref.Namespace, ref.Name, pl)
	m.log.Info("pod added", zap.String("pod", pod), zap.String("container", shortID(req.ContainerID)),
		zap.String("kind", string(pl.Kind)), zap.Stringers("ips", addrs(rec.IPs)),
		zap.Uint32("sw_if_index", links[0].SwIfIndex), zap.Duration("took", time.Since(start)))
	return m.result(rec, pl, links, podMAC, node, conf), nil
}

// readd answers a repeated ADD: unchanged when VPP and the pod still have
// everything, re-plumbed (same addresses) when something is gone.
func (m *Manager) readd(ctx context.Context, rec ipam.Record, node NodeNetwork, conf *cni.NetConf) (*types100.Result, error) {
	pl, err := plumbingOf(rec)
	if err != nil {
		return nil, err
	}
	if links, podMAC, ok := m.intact(ctx, rec, pl, node); ok {
		return m.result(rec, pl, links, podMAC, node, conf), nil
	}
	m.log.Info("repeated ADD finds the pod's network incomplete; re-plumbing",
		zap.String("pod", rec.Namespace+"/"+rec.Pod), zap.String("container", shortID(rec.ContainerID)))
	if err := m.unplumb(ctx, rec, pl); err != nil {
		return nil, err
	}
	links, podMAC, err := m.plumb(ctx, rec, pl, node)
	if err != nil {
		return nil, err
	}
	if podMAC != nil && podMAC.String() != pl.PodMAC {
		pl.PodMAC = podMAC.String()
		if err := m.saveExtra(rec.ContainerID, pl); err != nil {
			return nil, err
		}
	}
	return m.result(rec, pl, links, podMAC, node, conf), nil
}

func (m *Manager) saveExtra(containerID string, pl plumbing) error {
	extra, err := json.Marshal(pl)
	if err != nil {
		return err
	}
	if err := m.ipam.SetExtra(containerID, extra); err != nil {
		return fmt.Errorf("container %s: recording its plumbing: %w", shortID(containerID), err)
	}
	return nil
}

// podOptions reads the pod's annotations. A pod Kubernetes does not know
// (a runtime test, a race with the informer that the API read also lost)
// gets the node's defaults.
func (m *Manager) podOptions(ctx context.Context, ref cni.PodRef) (Options, error) {
	p, err := m.cluster.Pod(ctx, ref.Namespace, ref.Name)
	if err != nil {
		return Options{}, cni.Errorf(types.ErrTryAgainLater, "pod %s: reading it from Kubernetes: %v", ref, err)
	}
	if p == nil {
		m.log.Debug("pod unknown to Kubernetes; node defaults apply", zap.String("pod", ref.String()))
		return Options{VhostServer: true}, nil
	}
	return ParseOptions(ref.String(), p.Annotations)
}

// refreshPool gives the allocator every namespace's pool before a pod of
// namespace draws; a namespace with a malformed pool fails its own pods only.
func (m *Manager) refreshPool(ctx context.Context, namespace string) error {
	nss, err := m.cluster.Namespaces()
	if err != nil {
		return cni.Errorf(types.ErrTryAgainLater, "listing namespaces: %v", err)
	}
	pools := map[string][]netip.Prefix{}
	var own error
	for _, ns := range nss {
		pool, ok, err := ParsePool(ns.Name, ns.Annotations)
		switch {
		case err != nil && ns.Name == namespace:
			own = err
		case err != nil:
			m.log.Debug("ignoring a malformed pool", zap.String("namespace", ns.Name), zap.Error(err))
		case ok:
			pools[ns.Name] = pool
		}
	}
	if own != nil {
		return own
	}
	// A pool this node cannot serve (it lies in another node's range, or
	// overlaps another namespace's) fails only its own namespace's pods.
	for {
		err := m.ipam.SetPools(pools)
		var pe *ipam.PoolError
		if err == nil || !errors.As(err, &pe) || pe.Namespace == namespace || pools[pe.Namespace] == nil {
			return err
		}
		m.log.Debug("pool not usable on this node", zap.String("namespace", pe.Namespace), zap.Error(err))
		delete(pools, pe.Namespace)
	}
}

// plan decides the pod's interfaces from its options and the node.
func (m *Manager) plan(req *cni.Request, ref cni.PodRef, opts Options) plumbing {
	kind := opts.Kind
	if kind == "" || kind == KindTap {
		kind = m.cfg.DefaultKind // veth on nodes without /dev/vhost-net
	}
	pl := plumbing{Kind: kind, Netns: req.Netns, IfName: req.IfName, MemifOnly: opts.MemifOnly, MTU: m.cfg.MTU}
	switch kind {
	case KindTap, KindVeth:
		pl.Linux = kind
	case KindMemif:
		pl.MemifSocket = podSocket(m.cfg.MemifDir, ref.Namespace, ref.Name, "memif.sock")
		if !opts.MemifOnly {
			pl.Linux = m.cfg.DefaultKind // the pod's ordinary traffic
		}
	case KindVhostUser:
		pl.VhostSocket = podSocket(m.cfg.VhostDir, ref.Namespace, ref.Name, "vhost-user.sock")
		pl.VhostServer = opts.VhostServer
	}
	if pl.Linux == KindVeth {
		pl.HostVeth = vethName(req.ContainerID, req.IfName)
	}
	return pl
}

// plumb makes the pod's VPP interfaces, its pod-side configuration and its
// host routes. links[0] carries the pod's addresses. On error it undoes
// what it made.
func (m *Manager) plumb(ctx context.Context, rec ipam.Record, pl plumbing, node NodeNetwork) (links []interfaces.PodLink, podMAC net.HardwareAddr, err error) {
	pod := rec.Namespace + "/" + rec.Pod
	defer func() {
		if err == nil {
			return
		}
		for _, l := range links {
			if delErr := m.ifaces.DeletePod(context.WithoutCancel(ctx), l); delErr != nil {
				m.log.Error("undoing a pod interface failed", zap.String("pod", pod), zap.String("tag", l.Tag), zap.Error(delErr))
			}
		}
		if pl.HostVeth != "" {
			if delErr := m.host.deleteVeth(context.WithoutCancel(ctx), pl.HostVeth); delErr != nil {
				m.log.Error("undoing a veth failed", zap.String("pod", pod), zap.String("veth", pl.HostVeth), zap.Error(delErr))
			}
		}
	}()
	mk := func(p interfaces.PodInterface) error {
		p.Unnumbered = node.Loopback
		l, err := m.ifaces.CreatePod(ctx, p)
		if err != nil {
			return &types.Error{Code: cni.CodeVPP, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
		links = append(links, l)
		return nil
	}
	primaryTag := podTag(rec.ContainerID, rec.Namespace, rec.Pod)
	switch pl.Linux {
	case KindTap:
		err = mk(interfaces.PodInterface{Tag: primaryTag, Kind: interfaces.PodTap, HostIfName: pl.IfName, HostNamespace: pl.Netns, MTU: uint32(pl.MTU)})
	case KindVeth:
		podMAC, err = m.host.createVeth(ctx, pl.Netns, pl.IfName, pl.HostVeth, pl.MTU)
		if err != nil {
			return nil, nil, &types.Error{Code: cni.CodePodNetwork, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
		err = mk(interfaces.PodInterface{Tag: primaryTag, Kind: interfaces.PodAfPacket, HostIfName: pl.HostVeth})
	}
	if err != nil {
		return links, nil, err
	}
	switch {
	case pl.Kind == KindMemif:
		t := memifTag(rec.ContainerID, rec.Namespace, rec.Pod)
		if pl.MemifOnly {
			t = primaryTag
		}
		err = mk(interfaces.PodInterface{Tag: t, Kind: interfaces.PodMemif, SocketPath: pl.MemifSocket})
	case pl.Kind == KindVhostUser:
		err = mk(interfaces.PodInterface{Tag: primaryTag, Kind: interfaces.PodVhostUser, SocketPath: pl.VhostSocket, VhostServer: pl.VhostServer})
	}
	if err != nil {
		return links, nil, err
	}
	if pl.Linux != "" {
		cfg := m.podConfig(rec, pl, node, links[0])
		if err = m.host.configure(ctx, cfg); err != nil {
			return links, nil, &types.Error{Code: cni.CodePodNetwork, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
	}
	if err = m.fib.Update(ctx, hostRoutes(rec.IPs, links[0].SwIfIndex)); err != nil {
		err = &types.Error{Code: cni.CodeVPP, Msg: fmt.Sprintf("pod %s: host routes: %v", pod, err)}
		m.removeRoutes(ctx, rec)
		return links, nil, err
	}
	if err = m.attach(ctx, pod, rec.IPs, links); err != nil {
		m.removeRoutes(ctx, rec)
		return links, nil, err
	}
	m.mu.Lock()
	m.links[rec.ContainerID] = links
	m.mu.Unlock()
	return links, podMAC, nil
}

// attach runs Config.OnAttach on the pod's interfaces.
func (m *Manager) attach(ctx context.Context, pod string, ips []netip.Addr, links []interfaces.PodLink) error {
	if m.cfg.OnAttach == nil {
		return nil
	}
	idx := make([]uint32, len(links))
	for i, l := range links {
		idx[i] = l.SwIfIndex
	}
	if err := m.cfg.OnAttach(ctx, pod, ips, idx); err != nil {
		return &types.Error{Code: cni.CodeVPP, Msg: fmt.Sprintf("pod %s: attaching its interfaces %v: %v", pod, idx, err)}
	}
	return nil
}

// podConfig is the pod side of link: its addresses as host prefixes, the
// node's gateway per family, and for an L2 link a permanent neighbour entry
// for the gateway at VPP's MAC.
func (m *Manager) podConfig(rec ipam.Record, pl plumbing, node NodeNetwork, link interfaces.PodLink) podnet.Config {
	cfg := podnet.Config{Netns: pl.Netns, IfName: pl.IfName, Addresses: rec.IPs, MTU: pl.MTU}
	for _, a := range rec.IPs {
		cfg.Gateways = append(cfg.Gateways, gatewayFor(node, a))
	}
	if link.Kind == interfaces.PodAfPacket {
		cfg.GatewayMAC = link.MAC
	}
	return cfg
}

// gatewayFor is the pod gateway of a's family: the first host address of
// the node's range of that family, which the node loopback holds.
func gatewayFor(node NodeNetwork, a netip.Addr) netip.Addr {
	for _, p := range node.PodCIDRs {
		if p.Addr().Is4() == a.Is4() {
			return ipam.Gateway(p)
		}
	}
	return netip.Addr{}
}

func hostRoutes(ips []netip.Addr, swIfIndex uint32) []ip.Route {
	out := make([]ip.Route, 0, len(ips))
	for _, a := range ips {
		out = append(out, ip.Route{
			Prefix: netip.PrefixFrom(a, a.BitLen()),
			Paths:  []ip.Path{{Type: ip.Forward, NextHop: a, SwIfIndex: swIfIndex, Weight: 1}},
		})
	}
	return out
}

func (m *Manager) removeRoutes(ctx context.Context, rec ipam.Record) {
	del := hostRoutes(rec.IPs, 0)
	for i := range del {
		del[i].Paths = nil
	}
	if err := m.fib.Update(context.WithoutCancel(ctx), del); err != nil && !errors.Is(err, ip.ErrNotSynced) {
		m.log.Error("removing pod host routes failed", zap.String("pod", rec.Namespace+"/"+rec.Pod), zap.Error(err))
	}
}

// annotate tells the pod where its memif or vhost-user socket is. It is
// best effort: the CNI result carries the path too.
func (m *Manager) annotate(ctx context.Context, namespace, name string, pl plumbing) {
	ann := map[string]string{}
	if pl.MemifSocket != "" {
		ann[AnnotationMemifSocket] = pl.MemifSocket
	}
	if pl.VhostSocket != "" {
		ann[AnnotationVhostUserSocket] = pl.VhostSocket
	}
	if len(ann) == 0 {
		return
	}
	if err := m.cluster.Annotate(ctx, namespace, name, ann); err != nil {
		m.log.Warn("annotating pod with its socket failed", zap.String("pod", namespace+"/"+name), zap.Error(err))
	}
}

// result renders the CNI result: the pod's interfaces (a veth's host end,
// the pod's link in its sandbox, a memif or vhost-user socket), its
// addresses as host prefixes with their gateway, default routes and DNS.
func (m *Manager) result(rec ipam.Record, pl plumbing, links []interfaces.PodLink, podMAC net.HardwareAddr, node NodeNetwork, conf *cni.NetConf) *types100.Result {
	res := &types100.Result{CNIVersion: "1.1.0", DNS: conf.DNS}
	podIf := -1
	if pl.HostVeth != "" {
		// The host end of the veth; VPP's af_packet interface on it has a MAC of its own.
		res.Interfaces = append(res.Interfaces, &types100.Interface{Name: pl.HostVeth})
	}
	if pl.Linux != "" {
		podIf = len(res.Interfaces)
		in := &types100.Interface{Name: pl.IfName, Sandbox: pl.Netns, Mtu: pl.MTU}
		if podMAC != nil {
			in.Mac = podMAC.String()
		}
		res.Interfaces = append(res.Interfaces, in)
	}
	for _, l := range links {
		if l.Kind == interfaces.PodMemif || l.Kind == interfaces.PodVhostUser {
			if podIf < 0 {
				podIf = len(res.Interfaces)
			}
			res.Interfaces = append(res.Interfaces, &types100.Interface{Name: l.Name, Mac: l.MAC.String(), SocketPath: l.SocketPath})
		}
	}
	for _, a := range rec.IPs {
		gw := gatewayFor(node, a)
		res.IPs = append(res.IPs, &types100.IPConfig{
			Interface: types100.Int(podIf),
			Address:   net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())},
			Gateway:   gw.AsSlice(),
		})
		dst := net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if a.Is6() {
			dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		res.Routes = append(res.Routes, &types.Route{Dst: dst, GW: gw.AsSlice()})
	}
	return res
}
