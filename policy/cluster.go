package policy

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// pod is a pod as the compiler sees it.
type pod struct {
	key       string // namespace/name
	namespace string
	labels    labels.Set
	ips       []netip.Addr // sorted
	// target: the pod's own interface carries its traffic, so policies
	// apply to it. Host-network pods share the node's stack and are not.
	target bool
	spec   *corev1.PodSpec
	order  int // index in cluster.pods
}

// cluster indexes the pods that can be peers and the namespaces' labels.
type cluster struct {
	pods       []*pod              // every pod with an IP that is not terminated, by key
	byNS       map[string][]*pod   // the same, per namespace
	byLabel    map[podLabel][]*pod // the same, per namespace and label
	namespaces []string            // sorted names of every namespace seen (objects and pods)
	nsLabels   map[string]labels.Set
}

func newCluster(in Input) *cluster {
	c := &cluster{byNS: map[string][]*pod{}, byLabel: map[podLabel][]*pod{}, nsLabels: map[string]labels.Set{}}
	for _, ns := range in.Namespaces {
		if ns == nil {
			continue
		}
		set := make(labels.Set, len(ns.Labels)+1)
		for k, v := range ns.Labels {
			set[k] = v
		}
		// The API server always sets this label to the name; manifests
		// may not carry it, and selectors commonly rely on it.
		set[corev1.LabelMetadataName] = ns.Name
		c.nsLabels[ns.Name] = set
	}
	for _, p := range in.Pods {
		if p == nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			// A terminated pod sends and receives nothing and its IP may
			// already belong to another pod.
			continue
		}
		ips := podIPs(p)
		if len(ips) == 0 {
			continue
		}
		c.pods = append(c.pods, &pod{
			key:       p.Namespace + "/" + p.Name,
			namespace: p.Namespace,
			labels:    labels.Set(p.Labels),
			ips:       ips,
			target:    !p.Spec.HostNetwork,
			spec:      &p.Spec,
		})
	}
	slices.SortFunc(c.pods, func(a, b *pod) int { return strings.Compare(a.key, b.key) })
	for i, p := range c.pods {
		p.order = i
		c.byNS[p.namespace] = append(c.byNS[p.namespace], p)
		for k, v := range p.labels {
			l := podLabel{p.namespace, k, v}
			c.byLabel[l] = append(c.byLabel[l], p)
		}
		if _, ok := c.nsLabels[p.namespace]; !ok {
			// A pod's namespace without its object: only the name is known.
			c.nsLabels[p.namespace] = labels.Set{corev1.LabelMetadataName: p.namespace}
		}
	}
	for ns := range c.nsLabels {
		c.namespaces = append(c.namespaces, ns)
	}
	slices.Sort(c.namespaces)
	return c
}

// podIPs reads a pod's addresses from status.podIPs, or status.podIP when
// the list is empty; unparsable entries are skipped.
func podIPs(p *corev1.Pod) []netip.Addr {
	raw := make([]string, 0, 2)
	for _, ip := range p.Status.PodIPs {
		raw = append(raw, ip.IP)
	}
	if len(raw) == 0 && p.Status.PodIP != "" {
		raw = append(raw, p.Status.PodIP)
	}
	var ips []netip.Addr
	for _, s := range raw {
		// A zoned (link-local) address is no pod address.
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			ips = append(ips, a.Unmap())
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips)
}

// namedPort returns the ports of p's containers named name with protocol
// proto (sidecar init containers included: they serve like containers).
func (p *pod) namedPort(name string, proto corev1.Protocol) []uint16 {
	var out []uint16
	add := func(ports []corev1.ContainerPort) {
		for _, cp := range ports {
			cpProto := cp.Protocol
			if cpProto == "" {
				cpProto = corev1.ProtocolTCP
			}
			if cp.Name == name && cpProto == proto && cp.ContainerPort > 0 && cp.ContainerPort <= 65535 {
				out = append(out, uint16(cp.ContainerPort))
			}
		}
	}
	for _, c := range p.spec.Containers {
		add(c.Ports)
	}
	for _, c := range p.spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(c.Ports)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// selectPods returns the pods matching podSel (nil: any) in the namespaces
// matching nsSel, or in namespace ns when nsSel is nil. Treat the result as
// read-only.
func (c *cluster) selectPods(ns string, podSel, nsSel *selector) []*pod {
	if nsSel == nil {
		return c.podsMatching(ns, podSel)
	}
	var out []*pod
	for _, name := range c.namespaces {
		if nsSel.matches(c.nsLabels[name]) {
			out = append(out, c.podsMatching(name, podSel)...)
		}
	}
	return out
}
