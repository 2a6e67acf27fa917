package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The test cluster mirrors the upstream e2e netpol suite's: namespaces x, y
// and z, pods labelled pod=<name>, every pod serving the named ports
// serve-80-tcp, serve-81-tcp and serve-80-udp.

func namespace(name string, kv ...string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labelMap(kv...)}}
}

func labelMap(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type podOpt func(*corev1.Pod)

func newPod(key string, ips string, opts ...podOpt) *corev1.Pod {
	ns, name, _ := strings.Cut(key, "/")
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"pod": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
			{Name: "serve-80-tcp", ContainerPort: 80},
			{Name: "serve-81-tcp", ContainerPort: 81, Protocol: corev1.ProtocolTCP},
			{Name: "serve-80-udp", ContainerPort: 80, Protocol: corev1.ProtocolUDP},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if ips != "" {
		for i, ip := range strings.Split(ips, ",") {
			if i == 0 {
				p.Status.PodIP = ip
			}
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withLabels(kv ...string) podOpt {
	return func(p *corev1.Pod) { p.Labels = labelMap(kv...) }
}

func withPhase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func hostNetwork(p *corev1.Pod) { p.Spec.HostNetwork = true }

// withPort replaces the pod's ports by one named port.
func withPort(name string, proto corev1.Protocol, port int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: name, Protocol: proto, ContainerPort: port}}
	}
}

// Pod addresses chosen so that no two pods are sibling prefixes.
func cluster3() ([]*corev1.Namespace, []*corev1.Pod) {
	return []*corev1.Namespace{
			namespace("x", "ns", "x"), namespace("y", "ns", "y"), namespace("z", "ns", "z"),
		}, []*corev1.Pod{
			newPod("x/a", "10.0.1.10"), newPod("x/b", "10.0.1.20"), newPod("x/c", "10.0.1.30"),
			newPod("y/a", "10.0.2.10"), newPod("y/b", "10.0.2.20"), newPod("z/a", "10.0.3.10"),
		}
}

type policyOpt func(*networkingv1.NetworkPolicy)

func netpol(key string, sel metav1.LabelSelector, opts ...policyOpt) *networkingv1.NetworkPolicy {
	ns, name, _ := strings.Cut(key, "/")
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel},
	}
	for _, o := range opts {
		o(np)
	}
	return np
}

func all() metav1.LabelSelector { return metav1.LabelSelector{} }

func match(kv ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchLabels: labelMap(kv...)}
}

func types(ts ...networkingv1.PolicyType) policyOpt {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PolicyTypes = ts }
}

const (
	ingressType = networkingv1.PolicyTypeIngress
	egressType  = networkingv1.PolicyTypeEgress
)

type rule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func ingress(rs ...rule) policyOpt {
	return func(np *networkingv1.NetworkPolicy) {
		for _, r := range rs {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: r.peers, Ports: r.ports})
		}
	}
}

func egress(rs ...rule) policyOpt {
	return func(np *networkingv1.NetworkPolicy) {
		for _, r := range rs {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: r.peers, Ports: r.ports})
		}
	}
}

func peers(ps ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return ps }

func ports(ps ...networkingv1.NetworkPolicyPort) []networkingv1.NetworkPolicyPort { return ps }

func podPeer(kv ...string) networkingv1.NetworkPolicyPeer {
	s := match(kv...)
	return networkingv1.NetworkPolicyPeer{PodSelector: &s}
}

func nsPeer(kv ...string) networkingv1.NetworkPolicyPeer {
	s := match(kv...)
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &s}
}

func bothPeer(ns, pod metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &ns, PodSelector: &pod}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func proto(p corev1.Protocol) *corev1.Protocol { return &p }

func port(p corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
	v := intstr.FromInt32(n)
	return networkingv1.NetworkPolicyPort{Protocol: proto(p), Port: &v}
}

func portRange(p corev1.Protocol, first, last int32) networkingv1.NetworkPolicyPort {
	np := port(p, first)
	np.EndPort = &last
	return np
}

func namedPort(p corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	v := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: proto(p), Port: &v}
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// render writes a rule as "peers proto ports policy#index", peers "any"
// when empty.
func render(r Rule) string {
	ps := "any"
	if len(r.Peers) > 0 {
		strs := make([]string, len(r.Peers))
		for i, p := range r.Peers {
			strs[i] = p.String()
		}
		ps = strings.Join(strs, ",")
	}
	return fmt.Sprintf("%s %s %s %s#%d", ps, r.Protocol, r.Ports, r.Policy, r.Index)
}

// dir is the expected compiled direction: isolated, then the allows as
// render writes them, in order.
type dir struct {
	isolated bool
	allow    []string
}

func deny() dir                 { return dir{isolated: true} }
func allow(rules ...string) dir { return dir{isolated: true, allow: rules} }
func renderDir(d Direction) dir {
	out := dir{isolated: d.Isolated}
	for _, r := range d.Allow {
		out.allow = append(out.allow, render(r))
	}
	return out
}

// want is one pod's expected result; the zero value is "unrestricted".
type want struct {
	in, eg   dir
	policies []string
}

// checkPods compares out with wants; pods missing from wants must be
// present and unrestricted unless listed in absent.
func checkPods(t *testing.T, out Output, pods []*corev1.Pod, wants map[string]want, absent ...string) {
	t.Helper()
	for _, p := range pods {
		key := p.Namespace + "/" + p.Name
		got, ok := out.Pods[key]
		if slices.Contains(absent, key) {
			if ok {
				t.Errorf("%s: should not be a target, got %+v", key, got)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: missing from output", key)
			continue
		}
		w := wants[key]
		if g := renderDir(got.Ingress); !equalDir(g, w.in) {
			t.Errorf("%s ingress:\n got  %s\n want %s", key, showDir(g), showDir(w.in))
		}
		if g := renderDir(got.Egress); !equalDir(g, w.eg) {
			t.Errorf("%s egress:\n got  %s\n want %s", key, showDir(g), showDir(w.eg))
		}
		if !slices.Equal(got.Policies, w.policies) {
			t.Errorf("%s policies: got %q, want %q", key, got.Policies, w.policies)
		}
		if got.Pod != key {
			t.Errorf("%s: Pod field is %q", key, got.Pod)
		}
	}
	for key := range wants {
		if _, ok := out.Pods[key]; !ok {
			t.Errorf("%s: expected in output, missing", key)
		}
	}
}

func equalDir(a, b dir) bool { return a.isolated == b.isolated && slices.Equal(a.allow, b.allow) }

func showDir(d dir) string {
	if !d.isolated && len(d.allow) == 0 {
		return "unrestricted"
	}
	s := fmt.Sprintf("isolated=%v", d.isolated)
	for _, r := range d.allow {
		s += "\n      " + r
	}
	return s
}
