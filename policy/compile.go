package policy

import (
	"slices"
	"strconv"
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
	c := &compiler{cluster: cl}

	nps := make([]*networkingv1.NetworkPolicy, 0, len(in.Policies))
	for _, np := range in.Policies {
		if np != nil {
			nps = append(nps, np)
		}
	}
	// Name order makes problems and rule attribution independent of input order.
	slices.SortStableFunc(nps, func(a, b *networkingv1.NetworkPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})

	selecting := map[*pod][]*compiled{}
	for _, np := range nps {
		p := c.compile(np)
		for _, target := range cl.byNS[p.ns] {
			if target.target && p.selector.Matches(target.labels) {
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
	key  strings.Builder
}

// podRules combines the policies selecting target, given in name order.
func (a *assembler) podRules(target *pod, policies []*compiled) PodRules {
	if len(policies) == 0 {
		return PodRules{Pod: target.key, IPs: target.ips}
	}
	// Resolve the named ingress ports first: with the policy names they
	// decide the result, so they make the cache key.
	named := make([][]uint16, 0)
	a.key.Reset()
	for _, p := range policies {
		a.key.WriteString(p.key)
		a.key.WriteByte(';')
		if !p.ingress {
			continue
		}
		for _, n := range p.inNamed {
			ports := target.namedPort(n.name, n.proto)
			named = append(named, ports)
			for _, port := range ports {
				a.key.WriteString(strconv.Itoa(int(port)))
				a.key.WriteByte(',')
			}
			a.key.WriteByte(';')
		}
	}
	key := a.key.String()
	if pr, ok := a.done[key]; ok {
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
	a.done[key] = pr
	pr.Pod, pr.IPs = target.key, target.ips
	return pr
}
