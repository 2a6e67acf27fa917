package healthcheck

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Expected answers are kube-proxy's (pkg/proxy/healthcheck/proxy_health.go):
// healthy until the first update and while no queued change is older than
// the timeout; /healthz also needs an eligible node; a healthy answer
// reports lastUpdated as now.
func TestProxyHealth(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	deleting := node.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	draining := node.DeepCopy()
	draining.Spec.Taints = []corev1.Taint{{Key: ToBeDeletedTaint, Effect: corev1.TaintEffectNoSchedule}}
	otherTaint := node.DeepCopy()
	otherTaint.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule}}

	type step func(h *ProxyHealth, clock *time.Time)
	queue := func(h *ProxyHealth, _ *time.Time) { h.QueuedUpdate() }
	update := func(h *ProxyHealth, _ *time.Time) { h.Updated(h.Begin()) }
	wait := func(d time.Duration) step { return func(_ *ProxyHealth, c *time.Time) { *c = c.Add(d) } }
	// A pass that began before a change came: the change waits on.
	raced := func(h *ProxyHealth, c *time.Time) {
		m := h.Begin()
		*c = c.Add(time.Second)
		h.QueuedUpdate()
		h.Updated(m)
	}
	tests := []struct {
		name           string
		node           *corev1.Node
		steps          []step
		healthz, livez int
		eligible       bool
		status         bool // the IPv4 proxier's status is reported
	}{
		{"starting: never updated", node, nil, 200, 200, true, false},
		{"starting, changes waiting long", node, []step{queue, wait(time.Hour)}, 200, 200, true, false},
		{"updated", node, []step{update}, 200, 200, true, true},
		{"a change waiting less than the timeout", node, []step{update, queue, wait(59 * time.Second)}, 200, 200, true, true},
		{"a change waiting past the timeout", node, []step{update, queue, wait(61 * time.Second)}, 503, 503, true, true},
		{"the oldest change counts", node, []step{update, queue, wait(40 * time.Second), queue, wait(21 * time.Second)}, 503, 503, true, true},
		{"caught up again", node, []step{update, queue, wait(61 * time.Second), update}, 200, 200, true, true},
		{"a change during the pass waits on", node, []step{update, raced, wait(60 * time.Second)}, 503, 503, true, true},
		{"node unknown", nil, []step{update}, 503, 200, false, true},
		{"node being deleted", deleting, []step{update}, 503, 200, false, true},
		{"node to be removed by the autoscaler", draining, []step{update}, 503, 200, false, true},
		{"another taint", otherTaint, []step{update}, 200, 200, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := t0
			h := NewProxyHealth(DefaultProxyHealthTimeout, func() *corev1.Node { return tt.node }, func() time.Time { return clock })
			for _, s := range tt.steps {
				s(h, &clock)
			}
			for _, c := range []struct {
				path string
				code int
			}{{"/healthz", tt.healthz}, {"/livez", tt.livez}} {
				rec := httptest.NewRecorder()
				h.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
				if rec.Code != c.code {
					t.Errorf("%s: %d, want %d", c.path, rec.Code, c.code)
				}
				if ct, nosniff := rec.Header().Get("Content-Type"), rec.Header().Get("X-Content-Type-Options"); ct != "application/json" || nosniff != "nosniff" {
					t.Errorf("%s: Content-Type %q, X-Content-Type-Options %q", c.path, ct, nosniff)
				}
				var body map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("%s: body %q: %v", c.path, rec.Body, err)
				}
				// "healthy" is the proxy's own health, /livez's answer;
				// node eligibility is apart.
				if body["healthy"] != (tt.livez == 200) {
					t.Errorf("%s: healthy %v in %s, want %v", c.path, body["healthy"], rec.Body, tt.livez == 200)
				}
				if body["currentTime"] != clock.Format(time.RFC3339Nano) {
					t.Errorf("%s: currentTime %v, want %s", c.path, body["currentTime"], clock.Format(time.RFC3339Nano))
				}
				if c.code == 200 && body["lastUpdated"] != clock.Format(time.RFC3339Nano) {
					t.Errorf("%s: lastUpdated %v, want now when healthy", c.path, body["lastUpdated"])
				}
				eligible, shown := body["nodeEligible"]
				if (c.path == "/healthz") != shown || shown && eligible != tt.eligible {
					t.Errorf("%s: nodeEligible %v (shown %v), want %v on /healthz only", c.path, eligible, shown, tt.eligible)
				}
				status, _ := body["status"].(map[string]any)
				if _, ok := status["IPv4"]; ok != tt.status {
					t.Errorf("%s: status %v, want IPv4 reported %v", c.path, body["status"], tt.status)
				}
			}
		})
	}
}

func TestProxyHealthServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	h := NewProxyHealth(DefaultProxyHealthTimeout, func() *corev1.Node { return &corev1.Node{} }, nil)
	// The port is taken: Serve says so at once.
	if err := h.Serve(context.Background(), addr); err == nil {
		t.Fatal("Serve on a taken port returned no error")
	}
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, addr) }()
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}
