package tests

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// benchEnabled gates the end-to-end benchmarks: they take a minute and
// print figures instead of asserting on timing. `make bench` sets it.
func benchEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("KUBE_VPP_BENCH") == "" {
		t.Skip("end-to-end benchmark: set KUBE_VPP_BENCH=1 (make bench) to run it")
	}
}

// TestBenchBGPAdvertise10kServices measures, end to end, how long it takes
// from starting an agent over a cluster of 10,000 LoadBalancer services
// until the FRR ToR has installed all 10,000 host routes.
func TestBenchBGPAdvertise10kServices(t *testing.T) {
	benchEnabled(t)
	const services = 10000
	f := newFabric(t, "node-a")
	tor := startFRR(t, f.torNS(), torConfig(torIP, false))

	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(examplesDir(t), "nodes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nodes.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeServices(dir, services); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	startBGPCluster(t, f, dir, []string{torIP}, "node-a")
	ready := time.Since(began)
	var have int
	eventually(t, 5*time.Minute, "all service routes at the ToR", func() bool {
		have = 0
		for p := range tor.routes(t, false) {
			if strings.HasPrefix(p, "100.6") && strings.HasSuffix(p, "/32") {
				have++
			}
		}
		return have == services
	})
	total := time.Since(began)
	t.Logf("BENCH bgp-advertise: %d service host routes; agent ready %.2fs; all at FRR after %.2fs (%.0f routes/s end to end)",
		services, ready.Seconds(), total.Seconds(), float64(services)/total.Seconds())
}

// writeServices writes n LoadBalancer services with ingress IPs from
// 100.64.0.0/10 and externalTrafficPolicy Cluster, so no endpoints are needed.
func writeServices(dir string, n int) error {
	var sb strings.Builder
	ingress := netip.MustParseAddr("100.64.0.1")
	cluster := netip.MustParseAddr("10.100.0.1")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "apiVersion: v1\nkind: Service\nmetadata: {name: lb-%d, namespace: default}\nspec:\n"+
			"  type: LoadBalancer\n  clusterIP: %s\n  externalTrafficPolicy: Cluster\n  ports: [{port: 80, protocol: TCP}]\n"+
			"status:\n  loadBalancer: {ingress: [{ip: %s}]}\n---\n", i, cluster, ingress)
		ingress, cluster = ingress.Next(), cluster.Next()
	}
	return os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(sb.String()), 0o644)
}
