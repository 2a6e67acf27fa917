package services

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// endpoint is one endpoint of an EndpointSlice with its conditions
// resolved the way the API documents them (and kube-proxy reads them:
// pkg/proxy/endpointslicecache.go): ready nil is true, serving nil is
// true, terminating nil is false.
type endpoint struct {
	addr                        netip.Addr
	local                       bool
	ready, serving, terminating bool
	// zones and nodes are the endpoint's topology hints (hints.forZones,
	// hints.forNodes), set by the EndpointSlice controller for Services
	// with trafficDistribution or topology-mode Auto.
	zones, nodes []string
}

// slicePort is a usable port of an EndpointSlice.
type slicePort struct {
	name  string
	proto corev1.Protocol
	port  uint16
}

type sliceEndpoints struct {
	ports     []slicePort
	endpoints []endpoint
}

// port returns the number the slice carries for the service port named
// name with protocol proto: the target port, resolved per endpoint group,
// so a named targetPort can differ between slices.
func (s sliceEndpoints) port(name string, proto corev1.Protocol) (uint16, bool) {
	for _, p := range s.ports {
		if p.name == name && p.proto == proto {
			return p.port, true
		}
	}
	return 0, false
}

// serviceEndpoints are the usable EndpointSlices of one service.
type serviceEndpoints []sliceEndpoints

// readSlices keeps the IPv4 slices of svc (by the kubernetes.io/service-name
// label, in its namespace) and reads their ports and endpoints, reporting
// what cannot be used. Slices are read in name order so that which copy
// of a duplicated endpoint wins does not depend on the caller's order.
func readSlices(svc *corev1.Service, node string, in []*discoveryv1.EndpointSlice,
	problem func(field, reason string, err error)) serviceEndpoints {
	var mine []*discoveryv1.EndpointSlice
	for _, s := range in {
		if s != nil && s.Namespace == svc.Namespace && s.Labels[discoveryv1.LabelServiceName] == svc.Name &&
			s.AddressType == discoveryv1.AddressTypeIPv4 {
			mine = append(mine, s)
		}
	}
	slices.SortStableFunc(mine, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })

	out := make(serviceEndpoints, 0, len(mine))
	for _, s := range mine {
		var se sliceEndpoints
		for k, p := range s.Ports {
			if p.Port == nil || *p.Port == 0 {
				continue // a port for "all ports": nothing to map to
			}
			if *p.Port < 1 || *p.Port > 65535 {
				problem(fmt.Sprintf("EndpointSlice %s ports[%d].port", s.Name, k), ReasonInvalidPort,
					fmt.Errorf("port %d is outside 1..65535", *p.Port))
				continue
			}
			sp := slicePort{proto: corev1.ProtocolTCP, port: uint16(*p.Port)} // the API's defaults
			if p.Name != nil {
				sp.name = *p.Name
			}
			if p.Protocol != nil {
				sp.proto = *p.Protocol
			}
			se.ports = append(se.ports, sp)
		}
		if len(se.ports) == 0 {
			continue
		}
		for j, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			// kube-proxy uses an endpoint's first address only: the
			// others are the same endpoint's, of the same family.
			a, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || !a.Is4() {
				problem(fmt.Sprintf("EndpointSlice %s endpoints[%d].addresses[0]", s.Name, j), ReasonInvalidIP,
					fmt.Errorf("%q is not an IPv4 address", e.Addresses[0]))
				continue
			}
			c := e.Conditions
			ep := endpoint{
				addr:        a,
				local:       node != "" && e.NodeName != nil && *e.NodeName == node,
				ready:       c.Ready == nil || *c.Ready,
				serving:     c.Serving == nil || *c.Serving,
				terminating: c.Terminating != nil && *c.Terminating,
			}
			if h := e.Hints; h != nil {
				for _, z := range h.ForZones {
					ep.zones = append(ep.zones, z.Name)
				}
				for _, n := range h.ForNodes {
					ep.nodes = append(ep.nodes, n.Name)
				}
			}
			se.endpoints = append(se.endpoints, ep)
		}
		out = append(out, se)
	}
	return out
}

// backend is an endpoint with the port a service port reaches it on.
type backend struct {
	endpoint
	addr netip.AddrPort
}

// backends are the endpoints of the service port named name with protocol
// proto, without duplicates: an endpoint moving between slices shows in
// both for a while, and an IP reused by a new pod while the old one
// terminates shows twice; as kube-proxy does, the non-terminating copy wins.
func (se serviceEndpoints) backends(name string, proto corev1.Protocol) []backend {
	var out []backend
	at := map[netip.AddrPort]int{}
	for _, s := range se {
		port, ok := s.port(name, proto)
		if !ok {
			continue
		}
		for _, e := range s.endpoints {
			b := backend{e, netip.AddrPortFrom(e.addr, port)}
			if i, dup := at[b.addr]; dup {
				if !e.terminating {
					out[i] = b
				}
				continue
			}
			at[b.addr] = len(out)
			out = append(out, b)
		}
	}
	return out
}

// endpointSets are the backends a service port may use.
type endpointSets struct {
	cluster []netip.AddrPort // for the Cluster traffic policy
	local   []netip.AddrPort // for the Local traffic policy
	// any reports whether the service port has a usable endpoint anywhere
	// in the cluster (then an empty local set means "none on this node").
	anywhere bool
}

// categorize applies kube-proxy's choice (pkg/proxy/topology.go
// CategorizeEndpoints): the ready endpoints, or when none is ready, the
// ones still serving while terminating, so connections are not dropped
// during a rollout. The cluster set follows the topology hints when they
// allow (see topologyMode); the local set applies the same rule to the
// endpoints on this node alone, without hints.
func categorize(bs []backend, node, zone string) endpointSets {
	mode := topologyMode(bs, node, zone)
	// A mode other than none has a ready endpoint for this node or zone,
	// so the hints never leave the cluster set empty.
	cluster := usable(bs, func(b backend) bool { return mode.allows(b.endpoint, node, zone) })
	return endpointSets{
		cluster:  cluster,
		local:    usable(bs, func(b backend) bool { return b.local }),
		anywhere: len(cluster) > 0,
	}
}

// topology is how the cluster endpoints are narrowed by their hints.
type topology int

const (
	topologyNone topology = iota
	topologySameZone
	topologySameNode
)

// topologyMode is kube-proxy's topologyModeFromHints: same node when every
// ready endpoint has a node hint and one names this node (the
// PreferSameTrafficDistribution gate, on by default since Kubernetes 1.34),
// else same zone when every ready endpoint has a zone hint and one names
// this node's zone, else none: a hint that cannot be honoured here is
// ignored rather than leaving the node without endpoints.
func topologyMode(bs []backend, node, zone string) topology {
	anyReady, allNodes, forNode, allZones, forZone := false, true, false, true, false
	for _, b := range bs {
		if !b.ready {
			continue
		}
		anyReady = true
		if len(b.nodes) == 0 {
			allNodes = false
		} else if slices.Contains(b.nodes, node) {
			forNode = true
		}
		if len(b.zones) == 0 {
			allZones = false
		} else if slices.Contains(b.zones, zone) {
			forZone = true
		}
	}
	switch {
	case !anyReady:
		return topologyNone
	case allNodes && forNode && node != "":
		return topologySameNode
	case allZones && forZone && zone != "":
		return topologySameZone
	}
	return topologyNone
}

func (t topology) allows(e endpoint, node, zone string) bool {
	switch t {
	case topologySameNode:
		return slices.Contains(e.nodes, node)
	case topologySameZone:
		return slices.Contains(e.zones, zone)
	}
	return true
}

// usable returns the ready backends among those chosen by in, or the
// serving terminating ones when none is ready, sorted by address.
func usable(bs []backend, in func(backend) bool) []netip.AddrPort {
	var ready, fallback []netip.AddrPort
	for _, b := range bs {
		switch {
		case !in(b):
		case b.ready:
			ready = append(ready, b.addr)
		case b.serving && b.terminating:
			fallback = append(fallback, b.addr)
		}
	}
	if len(ready) == 0 {
		ready = fallback
	}
	slices.SortFunc(ready, netip.AddrPort.Compare)
	return ready
}

// localReady counts the distinct ready endpoint addresses on this node, as
// kube-proxy's health check does (pkg/proxy/endpoints.go
// LocalReadyEndpoints): terminating ones do not count, so a node whose
// endpoints are all going away fails its health check and the load
// balancer moves traffic elsewhere.
func (se serviceEndpoints) localReady() int {
	seen := map[netip.Addr]bool{}
	for _, s := range se {
		for _, e := range s.endpoints {
			if e.local && e.ready {
				seen[e.addr] = true
			}
		}
	}
	return len(seen)
}
