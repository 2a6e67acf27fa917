package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

// bgpServices are a ClusterIP service and an externalTrafficPolicy Local
// LoadBalancer on 203.0.113.10, with their endpoints: web's on node-a
// (webHere) or node-b, lb's on node-a when lbHere.
func bgpServices(webHere, lbHere bool) string {
	// An endpoint here or on node-b, with an address of that node's range.
	endpoint := func(here bool, host int) string {
		if here {
			return fmt.Sprintf("{addresses: [10.244.0.%d], nodeName: node-a}", host)
		}
		return fmt.Sprintf("{addresses: [10.244.1.%d], nodeName: node-b}", host)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20], ports: [{port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080, protocol: TCP}]
endpoints: [%s]
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.30
  clusterIPs: [10.96.0.30]
  externalTrafficPolicy: Local
  healthCheckNodePort: 0
  ports: [{port: 80, protocol: TCP, nodePort: 30080}]
status: {loadBalancer: {ingress: [{ip: 203.0.113.10}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: lb-1, namespace: default, labels: {kubernetes.io/service-name: lb}}
addressType: IPv4
ports: [{port: 8080, protocol: TCP}]
endpoints: [%s]
`, endpoint(webHere, 11), endpoint(lbHere, 12))
}

// With BGP on, a service change runs no full sync: an endpoint change of a
// ClusterIP service reaches NAT alone, and a change that moves an
// announcement (the local endpoint of an externalTrafficPolicy Local LB)
// runs the advertisement pass alone.
func TestServiceChangesSkipFullSyncWithBGP(t *testing.T) {
	t.Setenv("KUBE_VPP_BGP_LISTEN_PORT", "-1")
	env := simtest.Start(t, sim.Options{NoHost: true, Interfaces: []sim.InterfaceSpec{
		{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true}}})
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("nodes.yaml", nodes)
	write("services.yaml", bgpServices(true, false))
	cfg, err := config.Load([]string{"--healthz-bind-address=", "--node", "node-a", "--manifests", dir, "--vpp-socket", env.Path,
		"--ctl-socket", filepath.Join(dir, "ctl.sock"), "--http-listen", "127.0.0.1:0", "--uplink-interface", "GigabitEthernet0/8/0",
		"--cni-socket", filepath.Join(dir, "cni.sock"), "--state-dir", filepath.Join(dir, "state"),
		"--bgp", "--bgp-asn", "64512"})
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, zaptest.NewLogger(t), VirtualPods())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	backend := func(svc string) string {
		list, _ := a.Services(ctx)
		for _, s := range list {
			if s.Service == svc && len(s.Frontends) > 0 && len(s.Frontends[0].Backends) > 0 {
				return s.Frontends[0].Backends[0].String()
			}
		}
		return ""
	}
	advertised := func(prefix string) bool {
		st, err := a.BGP(ctx)
		if err != nil {
			return false
		}
		return slices.ContainsFunc(st.Advertised, func(ad bgp.Advertisement) bool { return ad.Prefix.String() == prefix })
	}
	fullSyncs := func() float64 {
		return counter(t, a, "kube_vpp_sync_total", map[string]string{"driver": "bgp"})
	}

	eventually("ready with the first backends", func() bool { return a.ready() == nil && backend("default/web") == "10.244.0.11:8080" })
	eventually("the speaker running", func() bool { _, err := a.BGP(ctx); return err == nil })
	if advertised("203.0.113.10/32") {
		t.Fatal("203.0.113.10/32 advertised with no local endpoint (externalTrafficPolicy Local)")
	}
	// Start-up triggers (VPP connected, first informer events) may still
	// queue a full sync: count from when none ran for half a second.
	before := fullSyncs()
	for settled := time.Now(); time.Since(settled) < 500*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if n := fullSyncs(); n != before {
			before, settled = n, time.Now()
		}
	}

	write("services.yaml", bgpServices(false, false))
	eventually("web's endpoint moved to node-b", func() bool { return backend("default/web") == "10.244.1.11:8080" })
	write("services.yaml", bgpServices(false, true))
	eventually("203.0.113.10/32 advertised once lb has a local endpoint", func() bool { return advertised("203.0.113.10/32") })
	write("services.yaml", bgpServices(false, false))
	eventually("203.0.113.10/32 withdrawn again", func() bool { return !advertised("203.0.113.10/32") })

	if got := fullSyncs(); got != before {
		t.Errorf("service changes ran %v full syncs, want none", got-before)
	}
}
