package pods

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PodStatus is one pod's network as `kube-vppctl show pods` shows it.
type PodStatus struct {
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	ContainerID string       `json:"containerID"`
	Kind        Kind         `json:"kind"`
	IPs         []netip.Addr `json:"ips"`
	Netns       string       `json:"netns,omitempty"`
	IfName      string       `json:"ifName,omitempty"`
	Interfaces  []LinkStatus `json:"interfaces"`
	Routes      []string     `json:"routes"` // VPP host routes, as programmed
	Standalone  bool         `json:"standalone,omitempty"`
}

// LinkStatus is one VPP interface of a pod.
type LinkStatus struct {
	Name      string `json:"name"`
	SwIfIndex uint32 `json:"swIfIndex"`
	Kind      string `json:"kind"`
	Tag       string `json:"tag"`
	Socket    string `json:"socket,omitempty"`
}

// Pods lists the pods this node plumbed, by namespace and name, from the
// allocations and what the manager knows VPP holds; it sends nothing to VPP.
func (m *Manager) Pods() []PodStatus {
	recs := m.ipam.Records()
	m.mu.Lock()
	links := make(map[string][]LinkStatus, len(m.links))
	for id, ls := range m.links {
		for _, l := range ls {
			links[id] = append(links[id], LinkStatus{Name: l.Name, SwIfIndex: l.SwIfIndex, Kind: string(l.Kind), Tag: l.Tag, Socket: l.SocketPath})
		}
	}
	m.mu.Unlock()
	out := make([]PodStatus, 0, len(recs))
	for _, r := range recs {
		pl, _ := plumbingOf(r)
		st := PodStatus{
			Namespace: r.Namespace, Name: r.Pod, ContainerID: r.ContainerID, Kind: pl.Kind, IPs: r.IPs,
			Netns: pl.Netns, IfName: pl.IfName, Interfaces: links[r.ContainerID], Standalone: pl.Standalone,
		}
		for _, a := range r.IPs {
			route, ok := m.fib.Programmed(0, netip.PrefixFrom(a, a.BitLen()))
			if !ok {
				continue
			}
			for _, p := range route.Paths {
				st.Routes = append(st.Routes, fmt.Sprintf("%s via %s %s", route.Prefix, p.NextHop, linkName(st.Interfaces, p.SwIfIndex)))
			}
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b PodStatus) int {
		return strings.Compare(a.Namespace+"/"+a.Name+"/"+a.ContainerID, b.Namespace+"/"+b.Name+"/"+b.ContainerID)
	})
	return out
}

func linkName(links []LinkStatus, swIfIndex uint32) string {
	for _, l := range links {
		if l.SwIfIndex == swIfIndex {
			return l.Name
		}
	}
	return fmt.Sprintf("sw_if_index %d", swIfIndex)
}
