package policy

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchInput is 1,000 pods in 50 namespaces and 1,000 policies: per
// namespace, 20 apps of one pod each and 20 policies, each selecting one app
// and allowing it from the next app (named port), from a team's namespaces,
// and egress to DNS, to the next app and to a CIDR with an except.
func benchInput() Input {
	var in Input
	for n := range 50 {
		ns := fmt.Sprintf("ns%02d", n)
		in.Namespaces = append(in.Namespaces, namespace(ns, "team", fmt.Sprintf("t%d", n%5)))
		for a := range 20 {
			app := fmt.Sprintf("app%02d", a)
			ip := fmt.Sprintf("10.%d.%d.%d", 1+n/50, n%50, 10+a)
			in.Pods = append(in.Pods, newPod(ns+"/"+app, ip, withLabels("app", app, "tier", fmt.Sprint(a%3))))
			next := fmt.Sprintf("app%02d", (a+1)%20)
			in.Policies = append(in.Policies, netpol(ns+"/allow-"+app, match("app", app),
				types(ingressType, egressType),
				ingress(
					rule{peers: peers(podPeer("app", next)), ports: ports(namedPort(tcp, "serve-80-tcp"))},
					rule{peers: peers(bothPeer(metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", a%5)}},
						match("tier", fmt.Sprint(a%3)))), ports: ports(port(tcp, 8080), portRange(tcp, 9000, 9100))},
				),
				egress(
					rule{peers: peers(nsPeer(corev1.LabelMetadataName, "kube-system")), ports: ports(port(udp, 53), port(tcp, 53))},
					rule{peers: peers(podPeer("app", next)), ports: ports(namedPort(tcp, "serve-80-tcp"))},
					rule{peers: peers(blockPeer("172.16.0.0/12", "172.16.5.0/24"))},
				)))
		}
	}
	in.Pods = append(in.Pods, newPod("kube-system/coredns", "10.0.0.53", withLabels("k8s-app", "kube-dns")))
	return in
}

func BenchmarkCompile(b *testing.B) {
	in := benchInput()
	var out Output
	for b.Loop() {
		out = Compile(in)
	}
	b.StopTimer()
	if len(out.Problems) > 0 {
		b.Fatalf("problems: %v", out.Problems)
	}
	allows, tables := 0, map[string]bool{}
	for _, pr := range out.Pods {
		for _, d := range []Direction{pr.Ingress, pr.Egress} {
			if d.Isolated {
				allows += len(d.Allow)
				tables[d.Hash()] = true
			}
		}
	}
	b.ReportMetric(float64(allows), "allows")
	b.ReportMetric(float64(len(tables)), "tables")
}
