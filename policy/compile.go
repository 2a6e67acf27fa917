package policy

import (
	"encoding/binary"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// Compile computes, for every pod that can be a target, what the
// NetworkPolicies selecting it allow, with the networking.k8s.io/v1
// semantics: a pod no policy selects is not isolated; a selected pod is
// isolated in each direction some selecting policy covers, and may then
// exchange only what the union of those policies' rules allows.
//
// Invalid parts of a policy are returned as Problems and their rule is
// dropped; the policy keeps isolating its pods, so bad input never opens
// traffic.
//
// Pods with the same policies (and the same named ports) share their Allow
// slices; treat the output as read-only.
func Compile(in Input) Output {
	cl := newCluster(in)
	c := newCompiler(cl)

	type named struct {
		key string
		np  *networkingv1.NetworkPolicy
	}
	nps := make([]named, 0, len(in.Policies))
	for _, np := range in.Policies {
		if np != nil {
			nps = append(nps, named{np.Namespace + "/" + np.Name, np})
		}
	}
	// Name order makes problems and rule attribution independent of input order.
	slices.SortStableFunc(nps, func(a, b named) int { return strings.Compare(a.key, b.key) })

	selecting := map[*pod][]*compiled{}
	for i, np := range nps {
		p := c.compile(np.np)
		p.id = i
		for _, target := range cl.podsMatching(p.ns, p.selector) {
			if target.target {
				selecting[target] = append(selecting[target], p)
			}
		}
	}

	out := Output{Pods: make(map[string]PodRules, len(cl.pods)), Problems: c.problems}
	a := assembler{done: map[string]PodRules{}}
	for _, target := range cl.pods {
		if target.target {
			out.Pods[target.key] = a.podRules(target, selecting[target])
		}
	}
	return out
}

// assembler combines the policies selecting each pod. Many pods share the
// same policies (a namespace-wide default deny, one deployment's replicas),
// so the result is kept per set of policies and named-port resolution.
type assembler struct {
	done map[string]PodRules
	key  []byte
}

// podRules combines the policies selecting target, given in name order.
func (a *assembler) podRules(target *pod, policies []*compiled) PodRules {
	if len(policies) == 0 {
		return PodRules{Pod: target.key, IPs: target.ips}
	}
	// Resolve the named ingress ports first: with the policies they decide
	// the result, so they make the cache key (policies by their id: a name
	// given twice in the input may hold two specs).
	var named [][]uint16
	a.key = a.key[:0]
	for _, p := range policies {
		a.key = binary.AppendUvarint(a.key, uint64(p.id))
		if !p.ingress {
			continue
		}
		for _, n := range p.inNamed {
			ports := target.namedPort(n.name, n.proto)
			named = append(named, ports)
			a.key = binary.AppendUvarint(a.key, uint64(len(ports)))
			for _, port := range ports {
				a.key = binary.BigEndian.AppendUint16(a.key, port)
			}
		}
	}
	if pr, ok := a.done[string(a.key)]; ok {
		pr.Pod, pr.IPs = target.key, target.ips
		return pr
	}

	var pr PodRules
	var in, eg []Rule
	for _, p := range policies {
		pr.Policies = append(pr.Policies, p.key)
		if p.ingress {
			pr.Ingress.Isolated = true
			in = append(in, p.inFixed...)
			for _, n := range p.inNamed {
				for _, port := range named[0] {
					in = append(in, Rule{Peers: n.peers, Protocol: protocol(n.proto),
						Ports: PortRange{port, port}, Policy: p.key, Index: n.index})
				}
				named = named[1:]
			}
		}
		if p.egress {
			pr.Egress.Isolated = true
			eg = append(eg, p.out...)
		}
	}
	pr.Policies = slices.Compact(pr.Policies) // a policy listed twice in the input
	if len(in) > 0 {
		pr.Ingress.Allow = sortRules(in)
	}
	if len(eg) > 0 {
		pr.Egress.Allow = sortRules(eg)
	}
	a.done[string(a.key)] = pr
	pr.Pod, pr.IPs = target.key, target.ips
	return pr
}
