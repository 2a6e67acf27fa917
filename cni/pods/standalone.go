package pods

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/vishvananda/netns"

	"github.com/kube-vpp/kube-vpp/cni"
)

// netnsDir is where named network namespaces live (ip netns).
const netnsDir = "/var/run/netns"

// standaloneConf is the network configuration standalone pods are added
// with, as if from the deployed conflist.
const standaloneConf = `{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni"}`

// Standalone plumbs the pods of a manifests folder as if kubelet had
// called the CNI for them: each pod scheduled on this node (and not on the
// host network, not finished) gets a network namespace of its own, named
// after it, and the interface its annotations ask for, with status.podIPs
// as its fixed addresses when the manifest gives them. Pods that left the
// folder are deleted as DEL would. It returns one error per pod that could
// not be plumbed, each naming the pod; the others are plumbed regardless.
func (m *Manager) Standalone(ctx context.Context, nodeName string, pods []*corev1.Pod) map[string]error {
	problems := map[string]error{}
	want := map[string]*corev1.Pod{}
	for _, p := range pods {
		if p.Spec.NodeName != nodeName || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		want[m.standaloneID(p.Namespace, p.Name)] = p
	}
	for _, rec := range m.ipam.Records() {
		pl, err := plumbingOf(rec)
		if err != nil || !pl.Standalone || want[rec.ContainerID] != nil {
			continue
		}
		if err := m.delLocked(ctx, rec.ContainerID); err != nil {
			problems[rec.Namespace+"/"+rec.Pod] = err
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p := want[id]
		if _, ok := m.ipam.Get(id); ok {
			continue
		}
		if err := m.addStandalone(ctx, id, p); err != nil {
			problems[p.Namespace+"/"+p.Name] = err
		}
	}
	return problems
}

func (m *Manager) addStandalone(ctx context.Context, id string, p *corev1.Pod) error {
	var fixed []netip.Addr
	for _, s := range p.Status.PodIPs {
		a, err := netip.ParseAddr(s.IP)
		if err != nil {
			return fmt.Errorf("pod %s/%s: status.podIPs: %q is not an IP address", p.Namespace, p.Name, s.IP)
		}
		fixed = append(fixed, a)
	}
	if len(fixed) == 0 && p.Status.PodIP != "" {
		a, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			return fmt.Errorf("pod %s/%s: status.podIP: %q is not an IP address", p.Namespace, p.Name, p.Status.PodIP)
		}
		fixed = append(fixed, a)
	}
	req := &cni.Request{
		Command: "ADD", ContainerID: id, Netns: m.host.standaloneNetns(id), IfName: "eth0",
		Args:   fmt.Sprintf("%s=%s;%s=%s", cni.ArgPodNamespace, p.Namespace, cni.ArgPodName, p.Name),
		Config: []byte(standaloneConf),
	}
	conf, err := cni.ParseNetConf(req.Config)
	if err != nil {
		return err
	}
	m.ops.RLock()
	defer m.ops.RUnlock()
	unlock := m.locks.lock(id)
	defer unlock()
	_, err = m.addWith(ctx, req, conf, addOptions{fixed: fixed, standalone: true})
	return err
}

// standaloneID is a stable container ID for a manifest pod, shaped like a
// runtime's (64 hex digits), so that a restarted agent finds its pods again.
// The state folder salts it: agents of several simulated nodes on one host
// (tests, demos) get distinct IDs, and so distinct namespaces and veths.
func (m *Manager) standaloneID(namespace, name string) string {
	sum := sha256.Sum256([]byte("kube-vpp-standalone/" + m.cfg.StateDir + "/" + namespace + "/" + name))
	return hex.EncodeToString(sum[:])
}

// ensureNetns returns the path of the named network namespace, creating
// it when missing.
func ensureNetns(name string) (string, error) {
	path := filepath.Join(netnsDir, name)
	if h, err := netns.GetFromPath(path); err == nil {
		_ = h.Close()
		return path, nil
	}
	// netns.NewNamed moves the calling thread into the new namespace; the
	// thread is put back, or discarded (left locked) if that fails.
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return "", fmt.Errorf("reading this thread's network namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if setErr := netns.Set(orig); setErr != nil {
		return "", fmt.Errorf("returning from network namespace %s: %w", name, setErr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return "", fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	_ = h.Close()
	return path, nil
}

// removeNetns deletes a named network namespace the agent made; one that
// is already gone is fine.
func removeNetns(path string) error {
	if path == "" || filepath.Dir(path) != netnsDir {
		return nil
	}
	if err := netns.DeleteNamed(filepath.Base(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting network namespace %s: %w", path, err)
	}
	return nil
}
