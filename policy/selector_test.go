package policy

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// selectPods answers with the label index what evaluating the selectors on
// every pod would. Expected sets follow the label selector semantics
// (k8s.io/apimachinery labels.Requirement.Matches): In and Equals need the
// label with one of the values; NotIn and DoesNotExist also match pods
// without the label; the requirements of one selector are ANDed; a nil
// namespace selector means the policy's own namespace.
func TestSelectPods(t *testing.T) {
	in := Input{
		Namespaces: []*corev1.Namespace{namespace("x", "team", "a"), namespace("y", "team", "b"), namespace("z")},
		Pods: []*corev1.Pod{
			newPod("x/a", "10.0.1.10", withLabels("app", "web", "tier", "frontend")),
			newPod("x/b", "10.0.1.20", withLabels("app", "api", "tier", "backend")),
			newPod("x/c", "10.0.1.30", withLabels("app", "db")),
			newPod("x/h", "192.168.0.1", withLabels("app", "web"), hostNetwork),
			newPod("x/gone", "10.0.1.40", withLabels("app", "web"), withPhase(corev1.PodSucceeded)),
			newPod("y/a", "10.0.2.10", withLabels("app", "web", "tier", "frontend")),
			newPod("y/b", "10.0.2.20", withLabels("app", "api", "tier", "backend", "version", "v2")),
			newPod("z/a", "10.0.3.10", withLabels("app", "web")),
		},
	}
	expr := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	sel := func(ls metav1.LabelSelector) *metav1.LabelSelector { return &ls }
	exprs := func(rs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: rs}
	}
	cases := []struct {
		name          string
		podSel, nsSel *metav1.LabelSelector // nil: not given
		want          []string
	}{
		{name: "no selector: the namespace's pods", want: []string{"x/a", "x/b", "x/c", "x/h"}},
		{name: "empty selector", podSel: sel(all()), want: []string{"x/a", "x/b", "x/c", "x/h"}},
		{name: "equals", podSel: sel(match("app", "web")), want: []string{"x/a", "x/h"}},
		{name: "no pod has the value", podSel: sel(match("app", "cache"))},
		{name: "two labels", podSel: sel(match("app", "web", "tier", "frontend")), want: []string{"x/a"}},
		{name: "two labels no pod has together", podSel: sel(match("app", "web", "tier", "backend"))},
		{name: "in", podSel: exprs(expr("app", metav1.LabelSelectorOpIn, "web", "api")), want: []string{"x/a", "x/b", "x/h"}},
		{name: "in and not in, the label absent", podSel: exprs(
			expr("app", metav1.LabelSelectorOpIn, "web", "api"), expr("tier", metav1.LabelSelectorOpNotIn, "frontend")),
			want: []string{"x/b", "x/h"}},
		{name: "exists", podSel: exprs(expr("tier", metav1.LabelSelectorOpExists)), want: []string{"x/a", "x/b"}},
		{name: "does not exist", podSel: exprs(expr("tier", metav1.LabelSelectorOpDoesNotExist)), want: []string{"x/c", "x/h"}},
		{name: "equals and in on the same key", podSel: &metav1.LabelSelector{
			MatchLabels:      map[string]string{"app": "api"},
			MatchExpressions: []metav1.LabelSelectorRequirement{expr("app", metav1.LabelSelectorOpIn, "web", "api")}},
			want: []string{"x/b"}},
		{name: "namespaces with a label", nsSel: exprs(expr("team", metav1.LabelSelectorOpExists)), podSel: sel(match("app", "api")),
			want: []string{"x/b", "y/b"}},
		{name: "every namespace", nsSel: sel(all()), podSel: sel(match("app", "web")), want: []string{"x/a", "x/h", "y/a", "z/a"}},
		{name: "namespace by name", nsSel: sel(match(corev1.LabelMetadataName, "z")), want: []string{"z/a"}},
		{name: "namespace and pod", nsSel: exprs(expr("team", metav1.LabelSelectorOpIn, "b")), podSel: sel(match("version", "v2")),
			want: []string{"y/b"}},
		{name: "no namespace matches", nsSel: sel(match("team", "c")), podSel: sel(all())},
	}
	cl := newCluster(in)
	c := newCompiler(cl)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var podSel, nsSel *selector
			var err error
			if tc.podSel != nil {
				if podSel, err = c.selectors.parse(tc.podSel); err != nil {
					t.Fatal(err)
				}
			}
			if tc.nsSel != nil {
				if nsSel, err = c.selectors.parse(tc.nsSel); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, p := range cl.selectPods("x", podSel, nsSel) {
				got = append(got, p.key)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Equal selectors parse to one key, different ones to different keys.
func TestSelectorKey(t *testing.T) {
	expr := func(key string, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpIn, Values: values}
	}
	selectorKey := func(ls *metav1.LabelSelector) string { return string(appendSelectorKey(nil, ls)) }
	base := selectorKey(&metav1.LabelSelector{MatchLabels: map[string]string{"a": "1", "b": "2"}})
	if got := selectorKey(&metav1.LabelSelector{MatchLabels: map[string]string{"b": "2", "a": "1"}}); got != base {
		t.Errorf("same labels built in another order: key %q, want %q", got, base)
	}
	differ := map[string]*metav1.LabelSelector{
		"nil":              nil,
		"empty":            {},
		"other value":      {MatchLabels: map[string]string{"a": "1", "b": "3"}},
		"fewer labels":     {MatchLabels: map[string]string{"a": "1"}},
		"joined key":       {MatchLabels: map[string]string{"a": "1b", "": "2"}},
		"as expressions":   {MatchExpressions: []metav1.LabelSelectorRequirement{expr("a", "1"), expr("b", "2")}},
		"two values":       {MatchExpressions: []metav1.LabelSelectorRequirement{expr("a", "1", "2")}},
		"values split":     {MatchExpressions: []metav1.LabelSelectorRequirement{expr("a", "12")}},
		"other operator":   {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"1", "2"}}}},
		"expression after": {MatchLabels: map[string]string{"a": "1"}, MatchExpressions: []metav1.LabelSelectorRequirement{expr("b", "2")}},
	}
	seen := map[string]string{base: "base"}
	for name, ls := range differ {
		k := selectorKey(ls)
		if prev, ok := seen[k]; ok {
			t.Errorf("%s: same key as %s", name, prev)
		}
		seen[k] = name
	}
}

// What a peer selects is resolved once per Compile and shared; the same
// peer written in two namespaces still selects in each its own, and every
// invalid use is reported.
func TestCompileSharedPeers(t *testing.T) {
	nss, pods := cluster3()
	badSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pod", Operator: "Near"}}}
	out := Compile(Input{Pods: pods, Namespaces: nss, Policies: []*networkingv1.NetworkPolicy{
		netpol("x/p", match("pod", "a"),
			ingress(rule{peers: peers(podPeer("pod", "b"))}, rule{peers: peers(blockPeer("10.0.0.0/16", "10.0.1.0/24"))}),
			egress(rule{peers: peers(podPeer("pod", "b")), ports: ports(namedPort(tcp, "serve-81-tcp"))})),
		netpol("y/p", match("pod", "a"),
			ingress(rule{peers: peers(podPeer("pod", "b"))}, rule{peers: peers(blockPeer("10.0.0.0/16", "10.0.1.0/24"))}),
			egress(rule{peers: peers(podPeer("pod", "b")), ports: ports(namedPort(tcp, "serve-81-tcp"))})),
		netpol("z/p", all(),
			ingress(rule{peers: peers(blockPeer("10.0.0.0/16", "10.1.0.0/24"))}, rule{peers: peers(networkingv1.NetworkPolicyPeer{PodSelector: badSel})})),
		netpol("z/q", all(),
			ingress(rule{peers: peers(blockPeer("10.0.0.0/16", "10.1.0.0/24"))}, rule{peers: peers(networkingv1.NetworkPolicyPeer{PodSelector: badSel})})),
	}})
	// 10.0.0.0/16 without 10.0.1.0/24, as subtract halves it.
	block := "10.0.0.0/24,10.0.2.0/23,10.0.4.0/22,10.0.8.0/21,10.0.16.0/20,10.0.32.0/19,10.0.64.0/18,10.0.128.0/17"
	checkPods(t, out, pods, map[string]want{
		"x/a": {in: allow(block+" any any x/p#1", "10.0.1.20/32 any any x/p#0"),
			eg: allow("10.0.1.20/32 TCP 81 x/p#0"), policies: []string{"x/p"}},
		"y/a": {in: allow(block+" any any y/p#1", "10.0.2.20/32 any any y/p#0"),
			eg: allow("10.0.2.20/32 TCP 81 y/p#0"), policies: []string{"y/p"}},
		"z/a": {in: deny(), policies: []string{"z/p", "z/q"}},
	})
	var got []string
	for _, p := range out.Problems {
		got = append(got, p.Policy+" "+p.Field)
	}
	wantProblems := []string{
		"z/p spec.ingress[0].from[0].ipBlock.except[0]", "z/p spec.ingress[1].from[0].podSelector",
		"z/q spec.ingress[0].from[0].ipBlock.except[0]", "z/q spec.ingress[1].from[0].podSelector",
	}
	if !slices.Equal(got, wantProblems) {
		t.Errorf("problems %q, want %q", got, wantProblems)
	}
}
