package policy

import (
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Bad input is what the API server would reject
// (pkg/apis/networking/validation: ValidateNetworkPolicyPort,
// ValidateNetworkPolicyPeer, ValidateIPBlock, label selector validation).
// The rule holding it is dropped and reported; the policy's other rules
// still apply and its pods stay isolated.
func TestCompileProblems(t *testing.T) {
	bad := func(p networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyPort { return p }
	named := func(name string, end int32) networkingv1.NetworkPolicyPort {
		v := intstr.FromString(name)
		return networkingv1.NetworkPolicyPort{Port: &v, EndPort: &end}
	}
	badSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "pod", Operator: "Near", Values: []string{"b"}}}}
	ten := int32(10)
	goodRule := rule{peers: peers(podPeer("pod", "b"))}
	goodAllow := xb + " any any x/p#1"

	cases := []struct {
		name    string
		policy  *networkingv1.NetworkPolicy
		fields  []string // want problems, all in x/p
		wantA   want
		wantAll bool // wantA holds for every pod of x, not x/a only
	}{{
		name:   "invalid CIDR",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(blockPeer("10.0.0.0/33"))}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].ipBlock.cidr"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "missing CIDR",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(blockPeer(""))}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].ipBlock.cidr"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "except outside the CIDR",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(blockPeer("10.0.0.0/16", "10.0.1.0/24", "10.1.0.0/24"))}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].ipBlock.except[1]"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "except equal to the CIDR is not a strict subset",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(blockPeer("10.0.0.0/16", "10.0.0.0/16"))}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].ipBlock.except[0]"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "except of the other family",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(blockPeer("10.0.0.0/16", "fd00::/64"))}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].ipBlock.except[0]"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "invalid except",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(blockPeer("10.0.0.0/16", "10.0.1.0"))}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].ipBlock.except[0]"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "port 0",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(port(tcp, 0))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].port"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "port above 65535",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(port(tcp, 80), port(tcp, 70000))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[1].port"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "endPort below port",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(portRange(tcp, 8080, 8000))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].endPort"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "endPort above 65535",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(portRange(tcp, 8080, 65536))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].endPort"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "endPort without port",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(bad(networkingv1.NetworkPolicyPort{EndPort: &ten}))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].endPort"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "endPort with a named port",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(named("serve-80-tcp", 90))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].endPort"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "invalid port name",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(namedPort(tcp, "Serve_80"))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].port"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "unsupported protocol",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{ports: ports(port("ICMP", 80))}, goodRule)),
		fields: []string{"spec.ingress[0].ports[0].protocol"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name: "invalid podSelector in a peer",
		policy: netpol("x/p", match("pod", "a"), ingress(
			rule{peers: peers(networkingv1.NetworkPolicyPeer{PodSelector: badSel})}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].podSelector"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name: "invalid namespaceSelector in a peer",
		policy: netpol("x/p", match("pod", "a"), ingress(
			rule{peers: peers(networkingv1.NetworkPolicyPeer{NamespaceSelector: badSel})}, goodRule)),
		fields: []string{"spec.ingress[0].from[0].namespaceSelector"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name: "ipBlock with a selector in one peer",
		policy: netpol("x/p", match("pod", "a"), ingress(
			rule{peers: peers(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"},
				PodSelector: &metav1.LabelSelector{}})}, goodRule)),
		fields: []string{"spec.ingress[0].from[0]"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name:   "empty peer",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{peers: peers(networkingv1.NetworkPolicyPeer{})}, goodRule)),
		fields: []string{"spec.ingress[0].from[0]"},
		wantA:  want{in: allow(goodAllow)},
	}, {
		name: "bad egress rule dropped, the good one applies",
		policy: netpol("x/p", match("pod", "a"), types(egressType), egress(
			rule{peers: peers(blockPeer("300.0.0.0/8")), ports: ports(port(tcp, 80))},
			rule{ports: ports(port(udp, 53))})),
		fields: []string{"spec.egress[0].to[0].ipBlock.cidr"},
		wantA:  want{eg: allow("any UDP 53 x/p#1")},
	}, {
		name: "every rule bad: still isolated, nothing allowed",
		policy: netpol("x/p", match("pod", "a"), types(ingressType, egressType),
			ingress(rule{ports: ports(port(tcp, 0))}), egress(rule{peers: peers(networkingv1.NetworkPolicyPeer{})})),
		fields: []string{"spec.ingress[0].ports[0].port", "spec.egress[0].to[0]"},
		wantA:  want{in: deny(), eg: deny()},
	}, {
		name: "every error of a rule is reported",
		policy: netpol("x/p", match("pod", "a"), ingress(rule{
			peers: peers(blockPeer("10.0.0.0/16", "10.2.0.0/24")),
			ports: ports(port(tcp, 0), port("ICMP", 1)),
		})),
		fields: []string{"spec.ingress[0].ports[0].port", "spec.ingress[0].ports[1].protocol",
			"spec.ingress[0].from[0].ipBlock.except[0]"},
		wantA: want{in: deny()},
	}, {
		name: "invalid spec.podSelector isolates the whole namespace with no allows",
		policy: netpol("x/p", *badSel, types(ingressType, egressType),
			ingress(rule{}), egress(rule{})),
		fields:  []string{"spec.podSelector"},
		wantA:   want{in: deny(), eg: deny()},
		wantAll: true,
	}, {
		name: "unknown policyType covers both directions, rules of both apply",
		policy: netpol("x/p", match("pod", "a"), types(ingressType, "egress"),
			ingress(rule{peers: peers(podPeer("pod", "b"))}), egress(rule{ports: ports(port(udp, 53))})),
		fields: []string{"spec.policyTypes[1]"},
		wantA:  want{in: allow(xb + " any any x/p#0"), eg: allow("any UDP 53 x/p#0")},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nss, pods := cluster3()
			other := netpol("x/q", match("pod", "c"), ingress(rule{ports: ports(port(tcp, 80))}))
			out := Compile(Input{Pods: pods, Namespaces: nss, Policies: []*networkingv1.NetworkPolicy{c.policy, other}})
			var got []string
			for _, p := range out.Problems {
				if p.Policy != "x/p" {
					t.Errorf("problem blamed on %s: %v", p.Policy, p)
				}
				if p.Err == nil || !errors.Is(p, p.Err) {
					t.Errorf("problem without its error: %#v", p)
				}
				got = append(got, p.Field)
			}
			if !slices.Equal(got, c.fields) {
				t.Errorf("problem fields:\n got  %q\n want %q", got, c.fields)
			}
			c.wantA.policies = []string{"x/p"}
			wants := map[string]want{"x/a": c.wantA}
			if c.wantAll {
				wants["x/b"] = c.wantA
				// x/q still adds its allow to x/c.
				wants["x/c"] = want{in: allow("any TCP 80 x/q#0"), eg: c.wantA.eg, policies: []string{"x/p", "x/q"}}
			} else {
				// The other policy is untouched by this one's problems.
				wants["x/c"] = want{in: allow("any TCP 80 x/q#0"), policies: []string{"x/q"}}
			}
			checkPods(t, out, pods, wants)
		})
	}
}

func TestProblemError(t *testing.T) {
	nss, pods := cluster3()
	out := Compile(Input{Pods: pods, Namespaces: nss, Policies: []*networkingv1.NetworkPolicy{
		netpol("x/p", all(), ingress(rule{ports: ports(portRange(tcp, 90, 80))})),
	}})
	if len(out.Problems) != 1 {
		t.Fatalf("problems: %v", out.Problems)
	}
	const want = "networkpolicy x/p: spec.ingress[0].ports[0].endPort: 80 is less than port 90"
	if got := out.Problems[0].Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// Problems come in policy name order whatever the input order.
func TestProblemsOrder(t *testing.T) {
	nss, pods := cluster3()
	badPort := ingress(rule{ports: ports(port(corev1.ProtocolTCP, 0))})
	out := Compile(Input{Pods: pods, Namespaces: nss, Policies: []*networkingv1.NetworkPolicy{
		netpol("y/b", all(), badPort), netpol("x/z", all(), badPort), netpol("y/a", all(), badPort),
	}})
	var got []string
	for _, p := range out.Problems {
		got = append(got, p.Policy)
	}
	if want := []string{"x/z", "y/a", "y/b"}; !slices.Equal(got, want) {
		t.Errorf("problem order %q, want %q", got, want)
	}
}
