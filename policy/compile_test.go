package policy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
)

// compileCase runs Compile on the e2e-like cluster (cluster3), with pods
// replaced or added by pods, and namespaces replaced when namespaces is set.
type compileCase struct {
	name       string
	pods       []*corev1.Pod // replace the cluster3 pod of the same key, or add
	namespaces []*corev1.Namespace
	noNS       bool // no Namespace objects at all
	policies   []*networkingv1.NetworkPolicy
	want       map[string]want
	absent     []string // pods that must not be targets
}

func (c compileCase) input() Input {
	nss, base := cluster3()
	if c.namespaces != nil {
		nss = c.namespaces
	}
	if c.noNS {
		nss = nil
	}
	pods := append([]*corev1.Pod(nil), base...)
	for _, p := range c.pods {
		replaced := false
		for i, b := range pods {
			if b.Namespace == p.Namespace && b.Name == p.Name {
				pods[i], replaced = p, true
			}
		}
		if !replaced {
			pods = append(pods, p)
		}
	}
	return Input{Pods: pods, Namespaces: nss, Policies: c.policies}
}

func runCompileCases(t *testing.T, cases []compileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.input()
			out := Compile(in)
			for _, p := range out.Problems {
				t.Errorf("unexpected problem: %v", p)
			}
			checkPods(t, out, in.Pods, c.want, c.absent...)
		})
	}
}

var (
	xa = "10.0.1.10/32"
	xb = "10.0.1.20/32"
	xc = "10.0.1.30/32"
	ya = "10.0.2.10/32"
	yb = "10.0.2.20/32"
	za = "10.0.3.10/32"
)

func join(ss ...string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// Isolation and policyTypes: networking/v1 NetworkPolicySpec docs — a pod
// is isolated in a direction only when a selecting policy covers it;
// policyTypes defaults to Ingress plus Egress when egress rules exist.
func TestCompileIsolation(t *testing.T) {
	inX := []string{"x/deny"}
	runCompileCases(t, []compileCase{{
		name: "no policy: every pod unrestricted",
	}, {
		name:     "default-deny ingress isolates the namespace's pods for ingress only",
		policies: []*networkingv1.NetworkPolicy{netpol("x/deny", all())},
		want: map[string]want{
			"x/a": {in: deny(), policies: inX}, "x/b": {in: deny(), policies: inX}, "x/c": {in: deny(), policies: inX},
		},
	}, {
		name:     "default-deny egress needs policyTypes Egress",
		policies: []*networkingv1.NetworkPolicy{netpol("x/deny", all(), types(egressType))},
		want: map[string]want{
			"x/a": {eg: deny(), policies: inX}, "x/b": {eg: deny(), policies: inX}, "x/c": {eg: deny(), policies: inX},
		},
	}, {
		name:     "default-deny both directions",
		policies: []*networkingv1.NetworkPolicy{netpol("x/deny", all(), types(ingressType, egressType))},
		want: map[string]want{
			"x/a": {in: deny(), eg: deny(), policies: inX},
			"x/b": {in: deny(), eg: deny(), policies: inX},
			"x/c": {in: deny(), eg: deny(), policies: inX},
		},
	}, {
		name: "unset policyTypes: egress rules add Egress, Ingress is always there",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"),
			egress(rule{ports: ports(port(tcp, 53))}))},
		want: map[string]want{"x/a": {in: deny(), eg: allow("any TCP 53 x/p#0"), policies: []string{"x/p"}}},
	}, {
		name: "policyTypes Egress only: ingress rules ignored, ingress open",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			ingress(rule{}))},
		want: map[string]want{"x/a": {eg: deny(), policies: []string{"x/p"}}},
	}, {
		name: "policyTypes Ingress only: egress rules ignored, egress open",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(ingressType),
			egress(rule{}))},
		want: map[string]want{"x/a": {in: deny(), policies: []string{"x/p"}}},
	}, {
		name:     "a policy selects pods of its own namespace only",
		policies: []*networkingv1.NetworkPolicy{netpol("y/p", match("pod", "a"))},
		want:     map[string]want{"y/a": {in: deny(), policies: []string{"y/p"}}},
	}, {
		name: "a relabelled pod is selected by its new labels",
		pods: []*corev1.Pod{newPod("x/a", "10.0.1.10", withLabels("target", "isolated"))},
		policies: []*networkingv1.NetworkPolicy{
			netpol("x/p", match("target", "isolated")), netpol("x/q", match("pod", "a")),
		},
		want: map[string]want{"x/a": {in: deny(), policies: []string{"x/p"}}},
	}, {
		name: "pods without IP or terminated are neither targets nor peers",
		pods: []*corev1.Pod{
			newPod("x/noip", ""),
			newPod("x/done", "10.0.1.40", withPhase(corev1.PodSucceeded)),
			newPod("x/failed", "10.0.1.50", withPhase(corev1.PodFailed)),
		},
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", all(), ingress(rule{peers: peers(podPeer())}))},
		want: map[string]want{
			"x/a": {in: allow(join(xa, xb, xc) + " any any x/p#0"), policies: []string{"x/p"}},
			"x/b": {in: allow(join(xa, xb, xc) + " any any x/p#0"), policies: []string{"x/p"}},
			"x/c": {in: allow(join(xa, xb, xc) + " any any x/p#0"), policies: []string{"x/p"}},
		},
		absent: []string{"x/noip", "x/done", "x/failed"},
	}, {
		name:     "host-network pods are peers by their IP but never targets",
		pods:     []*corev1.Pod{newPod("x/host", "192.168.1.5", hostNetwork)},
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", all(), ingress(rule{peers: peers(podPeer())}))},
		want: map[string]want{
			"x/a": {in: allow(join(xa, xb, xc, "192.168.1.5/32") + " any any x/p#0"), policies: []string{"x/p"}},
			"x/b": {in: allow(join(xa, xb, xc, "192.168.1.5/32") + " any any x/p#0"), policies: []string{"x/p"}},
			"x/c": {in: allow(join(xa, xb, xc, "192.168.1.5/32") + " any any x/p#0"), policies: []string{"x/p"}},
		},
		absent: []string{"x/host"},
	}})
}

// Peers: networking/v1 NetworkPolicyPeer docs, and the e2e netpol cases
// "based on PodSelector", "NamespaceSelector", "PodSelector and
// NamespaceSelector", "PodSelector or NamespaceSelector".
func TestCompilePeers(t *testing.T) {
	onA := func(rules ...string) map[string]want {
		return map[string]want{"x/a": {in: allow(rules...), policies: []string{"x/p"}}}
	}
	fromA := func(ps ...networkingv1.NetworkPolicyPeer) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), ingress(rule{peers: ps}))}
	}
	notInX := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"x"},
	}}}
	runCompileCases(t, []compileCase{{
		name:     "allow-all rule: no peers, no ports",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), ingress(rule{}))},
		want:     onA("any any any x/p#0"),
	}, {
		name:     "podSelector peer: pods of the policy's namespace only",
		policies: fromA(podPeer("pod", "b")),
		want:     onA(xb + " any any x/p#0"),
	}, {
		name: "matchExpressions select targets and peers",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p",
			metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "pod", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			ingress(rule{peers: peers(networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "pod", Operator: metav1.LabelSelectorOpIn, Values: []string{"c"}}}}})}))},
		want: map[string]want{
			"x/a": {in: allow(xc + " any any x/p#0"), policies: []string{"x/p"}},
			"x/b": {in: allow(xc + " any any x/p#0"), policies: []string{"x/p"}},
		},
	}, {
		name:     "empty podSelector peer: every pod of the policy's namespace",
		policies: fromA(podPeer()),
		want:     onA(join(xa, xb, xc) + " any any x/p#0"),
	}, {
		name:     "namespaceSelector peer: every pod of matching namespaces",
		policies: fromA(nsPeer("ns", "y")),
		want:     onA(join(ya, yb) + " any any x/p#0"),
	}, {
		name:     "empty namespaceSelector peer: every pod of every namespace",
		policies: fromA(nsPeer()),
		want:     onA(join(xa, xb, xc, ya, yb, za) + " any any x/p#0"),
	}, {
		name:     "both selectors in one peer: matching pods in matching namespaces",
		pods:     []*corev1.Pod{newPod("z/b", "10.0.3.20")},
		policies: fromA(bothPeer(notInX, match("pod", "b"))),
		want:     onA(join(yb, "10.0.3.20/32") + " any any x/p#0"),
	}, {
		name:     "separate peers are ORed",
		policies: fromA(nsPeer("ns", "y"), podPeer("pod", "b")),
		want:     onA(join(xb, ya, yb) + " any any x/p#0"),
	}, {
		name:       "a relabelled namespace is selected by its new labels",
		namespaces: []*corev1.Namespace{namespace("x"), namespace("y", "ns2", "updated"), namespace("z", "ns", "y")},
		policies:   fromA(nsPeer("ns2", "updated")),
		want:       onA(join(ya, yb) + " any any x/p#0"),
	}, {
		name:     "a relabelled pod is a peer by its new labels",
		pods:     []*corev1.Pod{newPod("x/b", "10.0.1.20", withLabels("pod", "b", "pod2", "updated"))},
		policies: fromA(podPeer("pod", "b", "pod2", "updated")),
		want:     onA(xb + " any any x/p#0"),
	}, {
		name:     "namespaces without objects match on their name label",
		noNS:     true,
		policies: fromA(nsPeer(corev1.LabelMetadataName, "y")),
		want:     onA(join(ya, yb) + " any any x/p#0"),
	}, {
		name:     "peers selecting nothing allow nothing, they do not mean anywhere",
		policies: fromA(podPeer("pod", "nobody")),
		want:     map[string]want{"x/a": {in: deny(), policies: []string{"x/p"}}},
	}, {
		name:     "dual-stack pods are peers by both addresses",
		pods:     []*corev1.Pod{newPod("y/a", "10.0.2.10,fd00::2:10")},
		policies: fromA(nsPeer("ns", "y")),
		want:     onA(join(ya, yb, "fd00::2:10/128") + " any any x/p#0"),
	}, {
		name:     "ipBlock: the CIDR",
		policies: fromA(blockPeer("192.168.0.0/16")),
		want:     onA("192.168.0.0/16 any any x/p#0"),
	}, {
		name:     "ipBlock host bits are ignored",
		policies: fromA(blockPeer("192.168.7.1/16")),
		want:     onA("192.168.0.0/16 any any x/p#0"),
	}, {
		// 10.0.0.0/16 without 10.0.1.0/24, halved down to the except.
		name:     "ipBlock except: the CIDR minus the excepts as disjoint prefixes",
		policies: fromA(blockPeer("10.0.0.0/16", "10.0.1.0/24")),
		want: onA(join("10.0.0.0/24", "10.0.2.0/23", "10.0.4.0/22", "10.0.8.0/21", "10.0.16.0/20",
			"10.0.32.0/19", "10.0.64.0/18", "10.0.128.0/17") + " any any x/p#0"),
	}, {
		name:     "ipBlock with two excepts",
		policies: fromA(blockPeer("10.0.0.0/24", "10.0.0.0/25", "10.0.0.192/26")),
		want:     onA("10.0.0.128/26 any any x/p#0"),
	}, {
		name:     "IPv6 ipBlock with except",
		policies: fromA(blockPeer("2001:db8::/32", "2001:db8::/33")),
		want:     onA("2001:db8:8000::/33 any any x/p#0"),
	}, {
		name:     "a pod excepted from one peer and selected by another is allowed",
		policies: fromA(blockPeer("10.0.1.0/24", xb), podPeer("pod", "b")),
		want:     onA("10.0.1.0/24 any any x/p#0"),
	}})
}

// Ports: networking/v1 NetworkPolicyPort docs (protocol defaults to TCP;
// no port = all ports of the protocol; endPort range; named ports are
// looked up on the pod) and the e2e cases "on one named port", "endPort",
// "any port ... on a specific protocol".
func TestCompilePorts(t *testing.T) {
	onA := func(rules ...string) map[string]want {
		return map[string]want{"x/a": {in: allow(rules...), policies: []string{"x/p"}}}
	}
	portsOnA := func(ps ...networkingv1.NetworkPolicyPort) []*networkingv1.NetworkPolicy {
		return []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), ingress(rule{ports: ps}))}
	}
	p80 := intstr.FromInt32(80)
	runCompileCases(t, []compileCase{{
		name:     "numbered ports of TCP, UDP and SCTP, ordered by protocol",
		policies: portsOnA(port(sctp, 81), port(udp, 53), port(tcp, 80)),
		want:     onA("any TCP 80 x/p#0", "any UDP 53 x/p#0", "any SCTP 81 x/p#0"),
	}, {
		name:     "protocol defaults to TCP",
		policies: portsOnA(networkingv1.NetworkPolicyPort{Port: &p80}),
		want:     onA("any TCP 80 x/p#0"),
	}, {
		name:     "protocol without port: all ports of that protocol",
		policies: portsOnA(networkingv1.NetworkPolicyPort{Protocol: proto(udp)}),
		want:     onA("any UDP any x/p#0"),
	}, {
		name:     "endPort: the inclusive range",
		policies: portsOnA(portRange(tcp, 8000, 8080)),
		want:     onA("any TCP 8000-8080 x/p#0"),
	}, {
		name:     "named port matches the container port of that name and protocol",
		policies: portsOnA(namedPort(udp, "serve-80-udp"), namedPort(udp, "serve-80-tcp")),
		want:     onA("any UDP 80 x/p#0"),
	}, {
		name: "named ingress port resolves on each target pod",
		pods: []*corev1.Pod{
			newPod("x/b", "10.0.1.20", withPort("serve-80-tcp", tcp, 8080)),
			newPod("x/c", "10.0.1.30", withPort("other", tcp, 80)),
		},
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", all(),
			ingress(rule{peers: peers(nsPeer("ns", "y")), ports: ports(namedPort(tcp, "serve-80-tcp"))}))},
		want: map[string]want{
			"x/a": {in: allow(join(ya, yb) + " TCP 80 x/p#0"), policies: []string{"x/p"}},
			"x/b": {in: allow(join(ya, yb) + " TCP 8080 x/p#0"), policies: []string{"x/p"}},
			"x/c": {in: deny(), policies: []string{"x/p"}},
		},
	}, {
		name: "named egress port without peers resolves on every destination pod",
		pods: []*corev1.Pod{
			newPod("y/b", "10.0.2.20", withPort("serve-80-tcp", tcp, 8080)),
			newPod("z/a", "10.0.3.10", withPort("web", tcp, 80)),
		},
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			egress(rule{ports: ports(namedPort(tcp, "serve-80-tcp"))}))},
		want: map[string]want{"x/a": {eg: allow(
			join(xa, xb, xc, ya)+" TCP 80 x/p#0",
			yb+" TCP 8080 x/p#0",
		), policies: []string{"x/p"}}},
	}, {
		name: "named egress port with selector peers: the selected pods only",
		pods: []*corev1.Pod{newPod("y/b", "10.0.2.20", withPort("serve-80-tcp", tcp, 8080))},
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			egress(rule{peers: peers(nsPeer("ns", "y")), ports: ports(namedPort(tcp, "serve-80-tcp"))}))},
		want: map[string]want{"x/a": {eg: allow(ya+" TCP 80 x/p#0", yb+" TCP 8080 x/p#0"), policies: []string{"x/p"}}},
	}, {
		name: "named egress port with an ipBlock: pods inside the block only",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			egress(rule{peers: peers(blockPeer("10.0.2.0/24", yb)), ports: ports(namedPort(tcp, "serve-80-tcp"))}))},
		want: map[string]want{"x/a": {eg: allow(ya + " TCP 80 x/p#0"), policies: []string{"x/p"}}},
	}, {
		name: "numbered and named ports in one egress rule",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			egress(rule{peers: peers(nsPeer("ns", "y")), ports: ports(port(tcp, 443), namedPort(tcp, "serve-81-tcp"))}))},
		want: map[string]want{"x/a": {eg: allow(
			join(ya, yb)+" TCP 81 x/p#0",
			join(ya, yb)+" TCP 443 x/p#0",
		), policies: []string{"x/p"}}},
	}, {
		name: "egress to a CIDR on a port",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			egress(rule{peers: peers(blockPeer("8.8.8.8/32")), ports: ports(port(udp, 53), port(tcp, 53))}))},
		want: map[string]want{"x/a": {eg: allow("8.8.8.8/32 TCP 53 x/p#0", "8.8.8.8/32 UDP 53 x/p#0"), policies: []string{"x/p"}}},
	}, {
		name: "egress peers selecting nothing allow nothing",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), types(egressType),
			egress(rule{peers: peers(nsPeer("ns", "none")), ports: ports(port(tcp, 80))},
				rule{peers: peers(nsPeer("ns", "none"))}))},
		want: map[string]want{"x/a": {eg: deny(), policies: []string{"x/p"}}},
	}})
}

// Several policies: their allows add up (NetworkPolicySpec.ingress docs:
// "combined additively"); e2e "multiple, stacked policies", "allow-all
// policy taking precedence", "IP overlapping both IPBlock.CIDR and
// IPBlock.Except is allowed".
func TestCompileSeveralPolicies(t *testing.T) {
	runCompileCases(t, []compileCase{{
		name: "union of allows; each policy isolates the directions it covers",
		policies: []*networkingv1.NetworkPolicy{
			netpol("x/q", all(), types(egressType), egress(rule{peers: peers(nsPeer("ns", "y"))})),
			netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(podPeer("pod", "b")), ports: ports(port(tcp, 80))})),
		},
		want: map[string]want{
			"x/a": {in: allow(xb + " TCP 80 x/p#0"), eg: allow(join(ya, yb) + " any any x/q#0"), policies: []string{"x/p", "x/q"}},
			"x/b": {eg: allow(join(ya, yb) + " any any x/q#0"), policies: []string{"x/q"}},
			"x/c": {eg: allow(join(ya, yb) + " any any x/q#0"), policies: []string{"x/q"}},
		},
	}, {
		name: "the same allow from two policies is kept once, from the first by name",
		policies: []*networkingv1.NetworkPolicy{
			netpol("x/b-pol", match("pod", "a"), ingress(
				rule{peers: peers(podPeer("pod", "b")), ports: ports(port(tcp, 81))},
				rule{peers: peers(podPeer("pod", "b")), ports: ports(port(tcp, 80))})),
			netpol("x/a-pol", match("pod", "a"), ingress(rule{peers: peers(podPeer("pod", "b")), ports: ports(port(tcp, 80))})),
		},
		want: map[string]want{"x/a": {
			in:       allow(xb+" TCP 80 x/a-pol#0", xb+" TCP 81 x/b-pol#0"),
			policies: []string{"x/a-pol", "x/b-pol"},
		}},
	}, {
		name: "an allow-all policy next to a port policy",
		policies: []*networkingv1.NetworkPolicy{
			netpol("x/allow-80", all(), ingress(rule{ports: ports(port(tcp, 80))})),
			netpol("x/allow-all", all(), ingress(rule{})),
		},
		want: map[string]want{
			"x/a": {in: allow("any any any x/allow-all#0", "any TCP 80 x/allow-80#0"), policies: []string{"x/allow-80", "x/allow-all"}},
			"x/b": {in: allow("any any any x/allow-all#0", "any TCP 80 x/allow-80#0"), policies: []string{"x/allow-80", "x/allow-all"}},
			"x/c": {in: allow("any any any x/allow-all#0", "any TCP 80 x/allow-80#0"), policies: []string{"x/allow-80", "x/allow-all"}},
		},
	}, {
		// 10.0.1.0/24 without 10.0.1.20 (x/b), and x/b from the other policy.
		name: "an address excepted by one policy and allowed by another",
		policies: []*networkingv1.NetworkPolicy{
			netpol("x/p1", match("pod", "a"), egress(rule{peers: peers(blockPeer("10.0.1.0/24", xb))})),
			netpol("x/p2", match("pod", "a"), egress(rule{peers: peers(blockPeer(xb))})),
		},
		want: map[string]want{"x/a": {
			in: deny(),
			eg: allow(
				join("10.0.1.0/28", "10.0.1.16/30", "10.0.1.21/32", "10.0.1.22/31", "10.0.1.24/29",
					"10.0.1.32/27", "10.0.1.64/26", "10.0.1.128/25")+" any any x/p1#0",
				xb+" any any x/p2#0",
			),
			policies: []string{"x/p1", "x/p2"},
		}},
	}, {
		name: "allows are ordered by peers, protocol, ports whatever the rule order",
		policies: []*networkingv1.NetworkPolicy{netpol("x/p", match("pod", "a"), ingress(
			rule{peers: peers(nsPeer("ns", "y")), ports: ports(port(tcp, 443))},
			rule{peers: peers(podPeer("pod", "b")), ports: ports(port(udp, 53))},
			rule{peers: peers(podPeer("pod", "b")), ports: ports(port(tcp, 80))},
			rule{ports: ports(portRange(tcp, 8080, 8090))},
		))},
		want: map[string]want{"x/a": {in: allow(
			"any TCP 8080-8090 x/p#3",
			xb+" TCP 80 x/p#2",
			xb+" UDP 53 x/p#1",
			join(ya, yb)+" TCP 443 x/p#0",
		), policies: []string{"x/p"}}},
	}})
}
