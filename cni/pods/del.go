package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/cni"
	"github.com/kube-vpp/kube-vpp/cni/ipam"
	"github.com/kube-vpp/kube-vpp/vpp-plugins/interfaces"
)

// del serves DEL: routes first (so nothing points at a vanishing
// interface), then the VPP interfaces, the veth, the addresses. A container
// the manager does not know succeeds, as the CNI spec asks.
func (m *Manager) del(ctx context.Context, containerID string, pod *cni.PodRef) error {
	rec, ok := m.record(containerID, pod)
	if !ok {
		m.log.Debug("DEL for an unknown container", zap.String("container", shortID(containerID)))
		return nil
	}
	pl, err := plumbingOf(rec)
	if err != nil {
		m.log.Warn("no usable plumbing record; releasing the addresses only", zap.String("container", shortID(containerID)), zap.Error(err))
	} else if err := m.unplumb(ctx, rec, pl); err != nil {
		return err
	}
	if _, _, err := m.ipam.Release(rec.ContainerID); err != nil {
		return fmt.Errorf("pod %s/%s: releasing addresses: %w", rec.Namespace, rec.Pod, err)
	}
	m.log.Info("pod deleted", zap.String("pod", rec.Namespace+"/"+rec.Pod), zap.String("container", shortID(containerID)),
		zap.Stringers("ips", addrs(rec.IPs)))
	return nil
}

// unplumb removes a pod's network but not its allocation.
func (m *Manager) unplumb(ctx context.Context, rec ipam.Record, pl plumbing) error {
	if _, err := m.nodeNetwork(); err != nil {
		return err // VPP's state is unknown until the resync: kubelet retries DEL
	}
	pod := rec.Namespace + "/" + rec.Pod
	m.removeRoutes(ctx, rec)
	links, err := m.linksOf(ctx, rec)
	if err != nil {
		return &types.Error{Code: cni.CodeVPP, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
	}
	var errs []error
	for _, l := range links {
		if err := m.ifaces.DeletePod(ctx, l); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &types.Error{Code: cni.CodeVPP, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
	}
	m.mu.Lock()
	delete(m.links, rec.ContainerID)
	m.mu.Unlock()
	if pl.HostVeth != "" {
		if err := m.host.deleteVeth(ctx, pl.HostVeth); err != nil {
			return &types.Error{Code: cni.CodePodNetwork, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
	}
	if pl.Linux != "" && pl.Netns != "" {
		if err := m.host.remove(ctx, pl.Netns, pl.IfName); err != nil {
			return &types.Error{Code: cni.CodePodNetwork, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
	}
	if pl.Standalone {
		if err := m.host.removeNetns(pl.Netns); err != nil {
			m.log.Warn("removing a standalone pod's network namespace failed", zap.String("pod", pod), zap.Error(err))
		}
	}
	return nil
}

// linksOf returns the pod's VPP interfaces, from what this agent made or
// adopted, else from a dump (a repair after a failed resync).
func (m *Manager) linksOf(ctx context.Context, rec ipam.Record) ([]interfaces.PodLink, error) {
	m.mu.Lock()
	links, ok := m.links[rec.ContainerID]
	m.mu.Unlock()
	if ok {
		return links, nil
	}
	all, err := m.ifaces.PodLinks(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range []string{podTag(rec.ContainerID, rec.Namespace, rec.Pod), memifTag(rec.ContainerID, rec.Namespace, rec.Pod)} {
		if l, ok := all[t]; ok {
			links = append(links, l)
		}
	}
	return links, nil
}

// intact reports whether the pod's network is as plumb left it.
func (m *Manager) intact(ctx context.Context, rec ipam.Record, pl plumbing, node NodeNetwork) ([]interfaces.PodLink, net.HardwareAddr, bool) {
	links, cniErr := m.inspect(ctx, rec, pl, node)
	if cniErr != nil {
		return nil, nil, false
	}
	mac, _ := net.ParseMAC(pl.PodMAC)
	return links, mac, true
}

// inspect finds the first difference between the pod's network and what
// plumb makes; the error says what it is.
func (m *Manager) inspect(ctx context.Context, rec ipam.Record, pl plumbing, node NodeNetwork) ([]interfaces.PodLink, *types.Error) {
	pod := rec.Namespace + "/" + rec.Pod
	m.mu.Lock()
	links, ok := m.links[rec.ContainerID]
	m.mu.Unlock()
	vppErr := func(format string, args ...any) ([]interfaces.PodLink, *types.Error) {
		return nil, &types.Error{Code: cni.CodeVPP, Msg: fmt.Sprintf("pod %s: ", pod) + fmt.Sprintf(format, args...)}
	}
	if !ok || len(links) == 0 {
		return vppErr("VPP has no interface for container %s", shortID(rec.ContainerID))
	}
	for i, l := range links {
		cur, found, err := m.ifaces.VerifyPod(ctx, l)
		switch {
		case err != nil:
			return vppErr("%v", err)
		case !found:
			return vppErr("VPP interface %s (sw_if_index %d, %s) is gone", l.Name, l.SwIfIndex, l.Tag)
		case !cur.Up:
			return vppErr("VPP interface %s (sw_if_index %d) is admin down", l.Name, l.SwIfIndex)
		}
		links[i] = cur
	}
	for _, r := range hostRoutes(rec.IPs, links[0].SwIfIndex) {
		have, found := m.fib.Programmed(r.Table, r.Prefix)
		if !found || len(have.Paths) != 1 || have.Paths[0].SwIfIndex != links[0].SwIfIndex {
			return vppErr("VPP has no host route %s via %s", r.Prefix, links[0].Name)
		}
	}
	if pl.Linux != "" {
		if err := m.host.check(ctx, m.podConfig(rec, pl, node, links[0])); err != nil {
			return nil, &types.Error{Code: cni.CodePodNetwork, Msg: fmt.Sprintf("pod %s: %v", pod, err)}
		}
	}
	return links, nil
}

// check serves CHECK: the container must be known and its network intact.
func (m *Manager) check(ctx context.Context, req *cni.Request) error {
	rec, ok := m.record(req.ContainerID, podOf(req))
	if !ok {
		return cni.Errorf(types.ErrUnknownContainer, "container %s: kube-vpp has no network for it", shortID(req.ContainerID))
	}
	node, err := m.nodeNetwork()
	if err != nil {
		return err
	}
	pl, err := plumbingOf(rec)
	if err != nil {
		return err
	}
	if req.Netns != "" && pl.Netns != "" && req.Netns != pl.Netns {
		return cni.Errorf(types.ErrInvalidEnvironmentVariables, "pod %s/%s: CNI_NETNS %s, but the network was made in %s", rec.Namespace, rec.Pod, req.Netns, pl.Netns)
	}
	if _, cniErr := m.inspect(ctx, rec, pl, node); cniErr != nil {
		return cniErr
	}
	return nil
}

// gc serves GC: every allocation of a container kubelet no longer lists
// goes, as DEL would remove it. Standalone pods are not kubelet's.
func (m *Manager) gc(ctx context.Context, req *cni.Request) error {
	var conf struct {
		Valid *[]struct {
			ContainerID string `json:"containerID"`
			IfName      string `json:"ifname"`
		} `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(req.Config, &conf); err != nil {
		return cni.Errorf(types.ErrInvalidNetworkConfig, "GC: network configuration: %v", err)
	}
	if conf.Valid == nil {
		return cni.Errorf(types.ErrInvalidNetworkConfig, "GC: network configuration has no cni.dev/valid-attachments")
	}
	valid := map[string]bool{}
	for _, a := range *conf.Valid {
		valid[a.ContainerID] = true
	}
	var errs []error
	for _, rec := range m.ipam.Records() {
		if valid[rec.ContainerID] {
			continue
		}
		if pl, err := plumbingOf(rec); err == nil && pl.Standalone {
			continue
		}
		m.log.Info("GC releases a container kubelet no longer lists", zap.String("pod", rec.Namespace+"/"+rec.Pod),
			zap.String("container", shortID(rec.ContainerID)))
		errs = append(errs, m.delLocked(ctx, rec.ContainerID))
	}
	return errors.Join(errs...)
}

// delLocked is del under the same locks a DEL call takes.
func (m *Manager) delLocked(ctx context.Context, containerID string) error {
	m.ops.RLock()
	defer m.ops.RUnlock()
	unlock := m.locks.lock(containerID)
	defer unlock()
	return m.del(ctx, containerID, nil)
}
