package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-vpp/kube-vpp/agent/config"
	"github.com/kube-vpp/kube-vpp/vppapi"
	"github.com/kube-vpp/kube-vpp/vppapi/sim"
	"github.com/kube-vpp/kube-vpp/vppapi/sim/simtest"
)

const nodes = `apiVersion: v1
kind: Node
metadata: {name: node-a}
spec: {podCIDRs: [10.244.0.0/24]}
status: {addresses: [{type: InternalIP, address: 192.168.10.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
spec: {podCIDRs: [10.244.1.7/24]}
status: {addresses: [{type: InternalIP, address: 192.168.10.12}]}
`

func startAgent(t *testing.T, apiSock string, extra ...string) (*Agent, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nodes.yaml"), []byte(nodes), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(append([]string{"--healthz-bind-address=", "--node", "node-a", "--manifests", dir, "--vpp-socket", apiSock,
		"--ctl-socket", filepath.Join(dir, "ctl.sock"), "--http-listen", "127.0.0.1:0", "--uplink-interface", "GigabitEthernet0/8/0",
		"--cni-socket", filepath.Join(dir, "cni.sock"), "--state-dir", filepath.Join(dir, "state")}, extra...))
	if err != nil {
		t.Fatal(err)
	}
	a := New(cfg, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		done <- a.Run(ctx)
	}()
	// The agent logs to t until it returns: the test waits for that.
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return a, done
}

func counter(t *testing.T, a *Agent, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := a.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
			n++
		}
	}
	return n == len(labels)
}

// A node whose pod range is unusable is reported once, as a log line, a
// metric and a Warning Event on that Node; the rest is programmed and the
// agent becomes ready.
func TestAgentReportsBadNodeAndBecomesReady(t *testing.T) {
	env := simtest.Start(t, sim.Options{Interfaces: []sim.InterfaceSpec{{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true}}})
	a, done := startAgent(t, env.Path)

	deadline := time.Now().Add(20 * time.Second)
	for a.ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready: %v", a.ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := counter(t, a, "kube_vpp_sync_total", map[string]string{"driver": "ip", "result": "ok"}); got < 1 {
		t.Errorf("no successful ip sync counted (%v)", got)
	}
	if got := counter(t, a, "kube_vpp_errors_total", map[string]string{"kind": "node"}); got != 1 {
		t.Errorf("node errors counted %v times, want once for node-b", got)
	}
	var found bool
	for !found && time.Now().Before(deadline) {
		evs, err := a.src.Client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == "node-b" && e.Type == "Warning" &&
				strings.Contains(e.Message, "spec.podCIDRs") {
				found = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !found {
		t.Error("no Warning Event on node-b naming spec.podCIDRs")
	}
	st := a.Status(context.Background())
	if !st.Ready || !st.VPPConnected || st.Syncs < 1 {
		t.Errorf("status = %+v", st)
	}
	select {
	case err := <-done:
		t.Fatalf("agent stopped early: %v", err)
	default:
	}
}

func TestAgentRefusesIncompatibleVPP(t *testing.T) {
	env := simtest.Start(t, sim.Options{CorruptCRC: []string{"sw_interface_dump"}})
	_, done := startAgent(t, env.Path)
	select {
	case err := <-done:
		var inc *vppapi.IncompatibleError
		if !errors.As(err, &inc) || !strings.Contains(err.Error(), "sw_interface_dump") {
			t.Fatalf("Run returned %v, want an incompatibility naming sw_interface_dump", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent kept running against an incompatible VPP")
	}
}

// kube-proxy's health port taken by something else: the agent runs on,
// says so with a Warning Event on its Node, and tries again.
func TestAgentReportsProxyHealthPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := simtest.Start(t, sim.Options{Interfaces: []sim.InterfaceSpec{{Name: "GigabitEthernet0/8/0", Addresses: []string{"192.168.10.11/24"}, Up: true}}})
	a, done := startAgent(t, env.Path, "--healthz-bind-address", l.Addr().String())
	deadline := time.Now().Add(20 * time.Second)
	for a.ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready: %v", a.ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		evs, err := a.src.Client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := slices.ContainsFunc(evs.Items, func(e corev1.Event) bool {
			return e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == "node-a" && e.Reason == "FailedToStartProxierHealthcheck" &&
				strings.Contains(e.Message, l.Addr().String())
		})
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no FailedToStartProxierHealthcheck Event on node-a naming the address")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("agent stopped: %v", err)
	default:
	}
}
