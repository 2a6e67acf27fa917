package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/cni/ipam"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/ip"
	"github.com/kube-vpp/kube-vpp/vppapi/tag"
)

// Resync reconciles the pods' networks with VPP when the agent starts and
// whenever VPP reconnects:
//   - a pod interface of a known container is adopted as it is;
//   - one VPP lost (VPP restarted) is made again while the pod's network
//     namespace exists; a container whose namespace is gone is released;
//   - an owned pod interface no allocation claims is removed;
//   - the host routes are synced from the allocations.
//
// With the allocation state file lost, the allocations are first rebuilt
// from VPP: each pod interface's tag names the container and pod, and the
// host routes through it give the addresses. On an agent restart with
// nothing changed, Resync only reads from VPP.
func (m *Manager) Resync(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	epoch := m.connection() // what is read below belongs to this connection
	m.mu.Lock()
	node, hasNode := m.node, m.hasNode
	m.synced = false
	m.mu.Unlock()
	if !hasNode {
		return errors.New("pods resync: the node network is not known yet")
	}

	found, err := m.ifaces.PodLinks(ctx)
	if err != nil {
		return fmt.Errorf("pods resync: %w", err)
	}
	if len(m.ipam.Records()) == 0 && len(found) > 0 {
		if err := m.rebuild(ctx, found); err != nil {
			return fmt.Errorf("pods resync: rebuilding allocations from VPP: %w", err)
		}
	}

	var (
		adopted  = map[string][]interfaces.PodLink{}
		claimed  = map[string]bool{}
		remake   []ipam.Record
		routes   []ip.Route
		errs     []error
		released int
	)
	for _, rec := range m.ipam.Records() {
		pl, err := plumbingOf(rec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		primary, ok := found[podTag(rec.ContainerID, rec.Namespace, rec.Pod)]
		links := []interfaces.PodLink{primary}
		if mt := memifTag(rec.ContainerID, rec.Namespace, rec.Pod); pl.Kind == KindMemif && !pl.MemifOnly {
			l, has := found[mt]
			ok = ok && has
			links = append(links, l)
		}
		if ok {
			for _, l := range links {
				claimed[l.Tag] = true
			}
			adopted[rec.ContainerID] = links
			routes = append(routes, hostRoutes(rec.IPs, primary.SwIfIndex)...)
			continue
		}
		if pl.Linux != "" && m.host.checkNetns(pl.Netns) != nil {
			m.log.Info("releasing a pod whose network namespace is gone", zap.String("pod", rec.Namespace+"/"+rec.Pod),
				zap.String("container", shortID(rec.ContainerID)), zap.String("netns", pl.Netns))
			if pl.HostVeth != "" {
				errs = append(errs, m.host.deleteVeth(ctx, pl.HostVeth))
			}
			if _, _, err := m.ipam.Release(rec.ContainerID); err != nil {
				errs = append(errs, err)
			}
			released++
			continue
		}
		remake = append(remake, rec)
	}

	// Routes first, so that no route is left pointing at an interface that
	// goes next.
	if err := m.fib.Sync(ctx, ip.Desired{Routes: routes}); err != nil {
		errs = append(errs, fmt.Errorf("pod host routes: %w", err))
	}
	for t, l := range found {
		if claimed[t] {
			continue
		}
		m.log.Info("removing a pod interface no allocation claims", zap.String("tag", t), zap.Uint32("sw_if_index", l.SwIfIndex))
		errs = append(errs, m.ifaces.DeletePod(ctx, l))
	}
	m.mu.Lock()
	m.links = adopted
	m.mu.Unlock()

	for _, rec := range remake {
		pl, _ := plumbingOf(rec)
		partial := []interfaces.PodLink{}
		for _, t := range []string{podTag(rec.ContainerID, rec.Namespace, rec.Pod), memifTag(rec.ContainerID, rec.Namespace, rec.Pod)} {
			if l, ok := found[t]; ok {
				partial = append(partial, l)
			}
		}
		for _, l := range partial {
			errs = append(errs, m.ifaces.DeletePod(ctx, l))
		}
		if pl.HostVeth != "" {
			errs = append(errs, m.host.deleteVeth(ctx, pl.HostVeth))
		}
		if _, _, err := m.plumb(ctx, rec, pl, node); err != nil {
			errs = append(errs, fmt.Errorf("re-making pod %s/%s: %w", rec.Namespace, rec.Pod, err))
			continue
		}
		m.log.Info("re-made a pod's network", zap.String("pod", rec.Namespace+"/"+rec.Pod), zap.String("container", shortID(rec.ContainerID)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pods resync: %w", err)
	}
	m.mu.Lock()
	m.synced, m.epoch = true, epoch
	m.mu.Unlock()
	m.log.Info("pods reconciled with VPP", zap.Int("adopted", len(adopted)), zap.Int("remade", len(remake)), zap.Int("released", released))
	return nil
}

// rebuild recovers allocations from VPP after the state file was lost:
// each pod interface's tag gives the container (its short ID) and the pod,
// the host routes through it the addresses.
func (m *Manager) rebuild(ctx context.Context, found map[string]interfaces.PodLink) error {
	routes, err := m.fib.Routes(ctx)
	if err != nil {
		return err
	}
	byIf := map[uint32][]netip.Addr{}
	for _, r := range routes {
		if len(r.Paths) == 1 && r.Prefix.IsSingleIP() {
			byIf[r.Paths[0].SwIfIndex] = append(byIf[r.Paths[0].SwIfIndex], r.Prefix.Addr())
		}
	}
	memifs := map[string]interfaces.PodLink{}
	for t, l := range found {
		if tag.Kind(t) == tagKindMemif {
			memifs[strings.TrimPrefix(t, tag.New(tagKindMemif, ""))] = l
		}
	}
	var errs []error
	for t, l := range found {
		if tag.Kind(t) != tagKindPod {
			continue
		}
		key := strings.TrimPrefix(t, tag.New(tagKindPod, ""))
		cid, pod, ok := strings.Cut(key, ":")
		ns, name, ok2 := strings.Cut(pod, "/")
		if !ok || !ok2 || tag.New(tagKindPod, key) != t {
			m.log.Warn("pod interface tag cannot be parsed (shortened?); it will be removed", zap.String("tag", t))
			continue
		}
		pl := plumbingFromLink(l)
		pl.MTU = m.cfg.MTU
		if mem, ok := memifs[key]; ok {
			pl.Kind, pl.MemifSocket = KindMemif, mem.SocketPath
		}
		extra, _ := json.Marshal(pl)
		rec := ipam.Record{ContainerID: cid, IfName: pl.IfName, Namespace: ns, Pod: name, IPs: byIf[l.SwIfIndex], Extra: extra}
		if err := m.ipam.Restore(rec); err != nil {
			errs = append(errs, fmt.Errorf("restoring pod %s/%s: %w", ns, name, err))
			continue
		}
		m.log.Info("recovered an allocation from VPP", zap.String("pod", ns+"/"+name), zap.String("container", cid),
			zap.Stringers("ips", addrs(rec.IPs)))
	}
	return errors.Join(errs...)
}

// plumbingFromLink reconstructs what plumb recorded from what VPP reports.
func plumbingFromLink(l interfaces.PodLink) plumbing {
	switch l.Kind {
	case interfaces.PodTap:
		return plumbing{Kind: KindTap, Linux: KindTap, Netns: l.HostNamespace, IfName: l.HostIfName}
	case interfaces.PodAfPacket:
		return plumbing{Kind: KindVeth, Linux: KindVeth, HostVeth: l.HostIfName, IfName: "eth0"}
	case interfaces.PodMemif:
		return plumbing{Kind: KindMemif, MemifOnly: true, MemifSocket: l.SocketPath}
	default:
		return plumbing{Kind: KindVhostUser, VhostSocket: l.SocketPath, VhostServer: l.VhostServer}
	}
}
