package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const cluster = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: nginx}]}
status: {podIP: 10.1.0.5}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.1.0.5]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}}
`

func TestManifests(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), []byte(cluster), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var reported []error
	s, err := Manifests(ctx, dir, 0, zap.NewNop(), func(err error) { reported = append(reported, err) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// After Start the listers hold the folder, without waiting.
	tests := []struct {
		name string
		get  func() (metav1.Object, error)
	}{
		{"Namespace shop", func() (metav1.Object, error) { return s.Namespaces().Get("shop") }},
		{"Node node-1", func() (metav1.Object, error) { return s.Nodes().Get("node-1") }},
		{"Pod shop/web-0", func() (metav1.Object, error) { return s.Pods().Pods("shop").Get("web-0") }},
		{"Service shop/web", func() (metav1.Object, error) { return s.Services().Services("shop").Get("web") }},
		{"EndpointSlice shop/web-1", func() (metav1.Object, error) {
			return s.EndpointSlices().EndpointSlices("shop").Get("web-1")
		}},
		{"NetworkPolicy shop/deny", func() (metav1.Object, error) {
			return s.NetworkPolicies().NetworkPolicies("shop").Get("deny")
		}},
	}
	for _, tt := range tests {
		if _, err := tt.get(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if pod, err := s.Pods().Pods("shop").Get("web-0"); err == nil && pod.Status.PodIP != "10.1.0.5" {
		t.Errorf("pod IP %q, want the manifest's 10.1.0.5", pod.Status.PodIP)
	}

	// A change to the folder reaches the listers.
	changed := strings.Replace(cluster, "podIP: 10.1.0.5", "podIP: 10.1.0.6", 1)
	if err := os.WriteFile(filepath.Join(dir, ".tmp"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, ".tmp"), filepath.Join(dir, "cluster.yaml")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pod, err := s.Pods().Pods("shop").Get("web-0")
		if err == nil && pod.Status.PodIP == "10.1.0.6" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod after the change: %v, %v; want pod IP 10.1.0.6", pod, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	s.Shutdown() // returns once the informers and the watcher have stopped
	if len(reported) != 0 {
		t.Errorf("errors reported for valid manifests: %v", reported)
	}
}

func TestManifestsMissingFolder(t *testing.T) {
	if _, err := Manifests(t.Context(), filepath.Join(t.TempDir(), "absent"), 0, nil, nil); err == nil {
		t.Error("Manifests succeeded on a missing folder")
	}
}

func TestLive(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "kubeconfig")
	err := os.WriteFile(good, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Not in a cluster, whatever runs the test.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")

	tests := []struct {
		name       string
		kubeconfig string
		wantErr    string // "" for success
	}{
		{"kubeconfig", good, ""},
		{"missing kubeconfig", filepath.Join(dir, "absent"), "kubeconfig " + filepath.Join(dir, "absent")},
		{"in-cluster outside a cluster", "", "in-cluster config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Live(tt.kubeconfig, time.Minute)
			if tt.wantErr == "" {
				if err != nil || s.Client == nil || s.Informers == nil {
					t.Errorf("Live = %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Live = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
