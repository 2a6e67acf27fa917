package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ToBeDeletedTaint marks a node the cluster autoscaler is about to remove;
// kube-proxy reports such a node unhealthy so that load balancers drain it.
const ToBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// DefaultProxyHealthTimeout is how long an update may wait to be programmed
// before the proxy counts as unhealthy: kube-proxy's 2 × its 30s sync period.
const DefaultProxyHealthTimeout = 60 * time.Second

// ProxyHealth is kube-proxy's own health server (its --healthz-bind-address,
// port 10256 by default). Cloud load balancers of externalTrafficPolicy
// Cluster Services probe /healthz on every node, so a replacement must
// answer it. /healthz is 200 while service changes reach the dataplane in
// time and the node is not going away, 503 otherwise; /livez leaves the node
// out. The bodies are kube-proxy's JSON (pkg/proxy/healthcheck/proxy_health.go).
type ProxyHealth struct {
	timeout time.Duration
	now     func() time.Time
	node    func() *corev1.Node

	mu sync.Mutex
	// lastUpdated is the last time programming caught up; oldestQueued
	// the first change not programmed since, zero when none waits.
	lastUpdated, oldestQueued time.Time
	queued                    uint64 // changes recorded so far
}

// Mark is where a programming pass started: the changes it can include.
type Mark struct {
	queued uint64
	at     time.Time
}

// NewProxyHealth returns a health server that reports unhealthy once a
// change has waited longer than timeout. node returns this node's Node
// (nil when unknown), now the time; nil means time.Now.
func NewProxyHealth(timeout time.Duration, node func() *corev1.Node, now func() time.Time) *ProxyHealth {
	if now == nil {
		now = time.Now
	}
	return &ProxyHealth{timeout: timeout, node: node, now: now}
}

// QueuedUpdate records a Service or EndpointSlice change not yet
// programmed; the oldest one counts.
func (h *ProxyHealth) QueuedUpdate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queued++
	if h.oldestQueued.IsZero() {
		h.oldestQueued = h.now()
	}
}

// Begin marks the start of a programming pass, to hand to Updated.
func (h *ProxyHealth) Begin() Mark {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Mark{queued: h.queued, at: h.now()}
}

// Updated records that a pass begun at m programmed every change queued
// before m. A change queued since waits on; it counts from m's time, no
// later than it came.
func (h *ProxyHealth) Updated(m Mark) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastUpdated = h.now()
	if h.queued == m.queued {
		h.oldestQueued = time.Time{}
	} else {
		h.oldestQueued = m.at
	}
}

// proxierHealth and proxyHealth are kube-proxy's JSON, field for field.
type proxierHealth struct {
	LastUpdated time.Time `json:"lastUpdated"`
	Healthy     bool      `json:"healthy"`
}

type proxyHealth struct {
	LastUpdated  time.Time                `json:"lastUpdated"`
	CurrentTime  time.Time                `json:"currentTime"`
	NodeEligible *bool                    `json:"nodeEligible,omitempty"`
	Healthy      bool                     `json:"healthy"`
	Status       map[string]proxierHealth `json:"status,omitempty"`
}

// health is the proxy's state now. As kube-proxy, the proxy is healthy
// until it first programmed anything, and while no change has waited past
// the timeout. The agent proxies IPv4 only.
func (h *ProxyHealth) health() proxyHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	out := proxyHealth{Healthy: true, CurrentTime: now, LastUpdated: h.lastUpdated, Status: map[string]proxierHealth{}}
	if h.lastUpdated.IsZero() {
		return out
	}
	healthy := h.oldestQueued.IsZero() || now.Sub(h.oldestQueued) < h.timeout
	out.Healthy = healthy
	out.Status[string(corev1.IPv4Protocol)] = proxierHealth{LastUpdated: h.lastUpdated, Healthy: healthy}
	return out
}

// nodeEligible: the node is known, not being deleted and not about to be
// removed by the cluster autoscaler.
func (h *ProxyHealth) nodeEligible() bool {
	n := h.node()
	if n == nil || n.DeletionTimestamp != nil {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Key == ToBeDeletedTaint {
			return false
		}
	}
	return true
}

// Handler serves /healthz and /livez.
func (h *ProxyHealth) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := h.health()
		eligible := h.nodeEligible()
		st.NodeEligible = &eligible
		h.write(w, st, st.Healthy && eligible)
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		st := h.health()
		h.write(w, st, st.Healthy)
	})
	return mux
}

func (h *ProxyHealth) write(w http.ResponseWriter, st proxyHealth, healthy bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if healthy {
		// kube-proxy reports a healthy proxy as just updated, as its
		// older releases did.
		st.LastUpdated = h.now()
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	body, _ := json.Marshal(st)
	_, _ = w.Write(body)
}

// Serve listens on addr and answers until ctx ends. A listen error is
// returned at once, so the caller can report it and try again.
func (h *ProxyHealth) Serve(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy health server on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h.Handler(), ReadHeaderTimeout: readHeaderTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		_ = srv.Close()
	}()
	err = srv.Serve(l)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("proxy health server on %s: %w", addr, err)
}
