package status

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// startServer listens on a free loopback port and serves until the test ends
// or stop is called; stop returns what Serve returned.
func startServer(t *testing.T, m *Metrics, ready func() error) (base string, stop func() error) {
	t.Helper()
	s := NewServer("127.0.0.1:0", m, ready, zaptest.NewLogger(t))
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + s.Addr(), stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// readiness is a ready func whose answer the test sets.
type readiness struct {
	mu  sync.Mutex
	err error
}

func (r *readiness) set(err error) { r.mu.Lock(); r.err = err; r.mu.Unlock() }

func (r *readiness) check() error { r.mu.Lock(); defer r.mu.Unlock(); return r.err }

func TestProbes(t *testing.T) {
	notConnected := errors.New("VPP not connected: dial /run/vpp/api.sock: no such file")
	r := &readiness{err: notConnected}
	base, _ := startServer(t, NewMetrics(), r.check)

	steps := []struct {
		name     string
		ready    error
		path     string
		wantCode int
		wantBody string
	}{
		{"alive while not ready", notConnected, "/healthz", http.StatusOK, "ok"},
		{"not ready says why", notConnected, "/readyz", http.StatusServiceUnavailable, "VPP not connected: dial /run/vpp/api.sock: no such file"},
		{"ready", nil, "/readyz", http.StatusOK, "ok"},
		{"readiness lost", errors.New("initial sync pending"), "/readyz", http.StatusServiceUnavailable, "initial sync pending"},
		{"still alive", errors.New("initial sync pending"), "/healthz", http.StatusOK, "ok"},
		{"unknown path", nil, "/debug", http.StatusNotFound, ""},
	}
	for _, st := range steps {
		r.set(st.ready)
		code, body := get(t, base+st.path)
		if code != st.wantCode || (st.wantBody != "" && strings.TrimSpace(body) != st.wantBody) {
			t.Errorf("%s: GET %s = %d %q, want %d %q", st.name, st.path, code, body, st.wantCode, st.wantBody)
		}
	}
}

func TestProbesRefuseWrites(t *testing.T) {
	base, _ := startServer(t, NewMetrics(), nil)
	resp, err := http.Post(base+"/readyz", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz = %d, want 405", resp.StatusCode)
	}
}

func TestNilReadyMeansReady(t *testing.T) {
	base, _ := startServer(t, nil, nil)
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz = %d, want 200", code)
	}
	if code, _ := get(t, base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics without Metrics = %d, want 404", code)
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	base, _ := startServer(t, m, nil)

	m.SetVPPConnected(true)
	m.CountReconnect()
	m.CountVPPRestart()
	m.ObserveSync("nat44ed", 2*time.Millisecond, nil)
	m.ObserveSync("acl", time.Second, errors.New("acl_add_replace: -1"))
	m.CountError("invalid_annotation")
	m.CountAPICall("acl_dump", false)

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		"kube_vpp_vpp_connected 1",
		"kube_vpp_vpp_reconnects_total 1",
		"kube_vpp_vpp_restarts_detected_total 1",
		`kube_vpp_sync_total{driver="nat44ed",result="ok"} 1`,
		`kube_vpp_sync_total{driver="acl",result="error"} 1`,
		`kube_vpp_sync_duration_seconds_bucket{driver="nat44ed",le="0.0025"} 1`,
		`kube_vpp_sync_duration_seconds_count{driver="acl"} 1`,
		`kube_vpp_errors_total{kind="invalid_annotation"} 1`,
		`kube_vpp_vpp_api_calls_total{kind="read",message="acl_dump"} 1`,
		"go_goroutines",
		"process_start_time_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestShutdownOnCancel(t *testing.T) {
	base, stop := startServer(t, NewMetrics(), nil)
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("GET /healthz = %d before shutdown", code)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve after cancel = %v, want nil", err)
	}
	addr := strings.TrimPrefix(base, "http://")
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after shutdown", addr)
	}
}

func TestRun(t *testing.T) {
	t.Run("serves until cancelled", func(t *testing.T) {
		s := NewServer("127.0.0.1:0", nil, nil, zaptest.NewLogger(t))
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // Run must still listen, then stop cleanly.
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run with a done context = %v, want nil", err)
		}
	})
	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s := NewServer(ln.Addr().String(), nil, nil, zaptest.NewLogger(t))
		err = s.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Errorf("Run on a busy address = %v, want an error naming %s", err, ln.Addr())
		}
	})
	t.Run("serve before listen", func(t *testing.T) {
		s := NewServer("127.0.0.1:0", nil, nil, zaptest.NewLogger(t))
		if err := s.Serve(context.Background()); err == nil {
			t.Error("Serve before Listen = nil, want an error")
		}
	})
	t.Run("listen twice", func(t *testing.T) {
		s := NewServer("127.0.0.1:0", nil, nil, zaptest.NewLogger(t))
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		defer func() { _ = s.Serve(ctx) }() // closes the listener
		if err := s.Listen(); err == nil {
			t.Error("second Listen = nil, want an error")
		}
	})
}

func TestAddr(t *testing.T) {
	s := NewServer("127.0.0.1:0", nil, nil, zaptest.NewLogger(t))
	if got := s.Addr(); got != "127.0.0.1:0" {
		t.Errorf("Addr before Listen = %q, want the configured address", got)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer func() { _ = s.Serve(ctx) }()
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("Addr after Listen = %q, want 127.0.0.1 with the bound port", s.Addr())
	}
}
