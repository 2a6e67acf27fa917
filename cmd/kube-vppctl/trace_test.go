package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kube-vpp/kube-vpp/agent/ctl"
)

// Offline traces over the example cluster, as node-a (the first Node).
// Expected from the examples: kube-dns (10.96.0.10:53/udp) has one
// endpoint, default/dns-1 at 10.244.0.53:53 on node-a; default/empty has
// none.
func TestTraceOffline(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// offline adds --manifests with the example cluster.
		offline bool
		code    int
		want    []string // in the output
	}{
		{"kube-dns over UDP", []string{"--from", "frontend/web-1", "--to", "10.96.0.10:53/udp"}, true, 0,
			[]string{"FORWARDED, DNAT to 10.244.0.53:53"}},
		{"no endpoints", []string{"--from", "backend/db-1", "--to", "10.96.0.100:80/tcp"}, true, 0,
			[]string{"REJECTED"}},
		{"a pod of another node", []string{"--from", "frontend/web-2", "--to", "10.96.0.10:53/udp"}, true, 1,
			[]string{"runs on node node-c"}},
		{"unknown node", []string{"--node", "node-x", "--from", "1.2.3.4", "--to", "10.96.0.10:53/udp"}, true, 1,
			[]string{`no Node "node-x"`}},
		{"bad destination", []string{"--from", "1.2.3.4", "--to", "10.96.0.10:53"}, true, 2, []string{"ip:port/tcp"}},
		{"bad protocol", []string{"--from", "1.2.3.4", "--to", "10.96.0.10:53/sctp"}, true, 2, []string{"sctp"}},
		{"bad output", []string{"-o", "yaml", "--from", "1.2.3.4", "--to", "10.96.0.10:53/udp"}, true, 2, []string{"yaml"}},
		{"node without manifests", []string{"--node", "node-a", "--from", "1.2.3.4", "--to", "10.96.0.10:53/udp"}, false, 2,
			[]string{"--node needs --manifests"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"trace"}, tt.args...)
			if tt.offline {
				args = append(args, "--manifests", "../../examples")
			}
			var out, errOut bytes.Buffer
			code := run(args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, all)
			}
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output does not mention %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestTraceOfflineJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"trace", "--manifests", "../../examples", "--from", "198.51.100.7", "--to", "203.0.113.10:80/tcp",
		"--count", "3", "-o", "json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep ctl.TraceReply
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Packets) != 3 {
		t.Fatalf("%d packets, want 3", len(rep.Packets))
	}
	// frontend/web-lb: LoadBalancer 203.0.113.10:80 -> web pods on 8080,
	// externalTrafficPolicy Cluster: DNAT then SNAT to node-a's 10.244.0.1.
	for _, p := range rep.Packets {
		if p.Verdict != "forwarded" || p.Ingress.Name != "uplink0" || len(p.Translations) != 2 ||
			p.Translations[0].Kind != "dnat" || !strings.HasSuffix(p.Translations[0].To, ":8080") ||
			p.Translations[1].Kind != "snat" || !strings.HasPrefix(p.Translations[1].To, "10.244.0.1:") || p.Egress == nil {
			t.Errorf("packet %+v", p)
		}
	}
}
