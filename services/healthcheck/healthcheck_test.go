package healthcheck

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// freePorts finds n ports free on 127.0.0.1 by binding :0 and releasing them.
func freePorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var ls []net.Listener
	var ports []uint16
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

func addr(port uint16) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))) }

// probeClient opens a fresh connection per request so that a closed listener shows.
func probeClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

type body struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s: %v", url, err)
	}
	return resp, string(b)
}

func assertRefused(t *testing.T, port uint16) {
	t.Helper()
	conn, err := net.Dial("tcp", addr(port))
	if err == nil {
		conn.Close()
		t.Fatalf("port %d: connection accepted, want refused", port)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("port %d: dial error %v, want connection refused", port, err)
	}
}

// TestResponse checks the answer byte for byte against kube-proxy's
// (pkg/proxy/healthcheck/service_health.go, hcHandler.ServeHTTP): 200 with ≥1 local
// endpoint, 503 with none, the same headers on both, the count in the weight header, and
// the tab-indented JSON body without a trailing newline, on any path.
func TestResponse(t *testing.T) {
	tests := []struct {
		name       string
		svc        Service
		path       string
		wantStatus int
		wantWeight string
		wantBody   string
	}{
		{
			name:       "three local endpoints",
			svc:        Service{Namespace: "default", Name: "web", LocalEndpoints: 3},
			path:       "/healthz",
			wantStatus: http.StatusOK,
			wantWeight: "3",
			wantBody:   "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 3,\n\t\"serviceProxyHealthy\": true\n}",
		},
		{
			name:       "one local endpoint, any path",
			svc:        Service{Namespace: "shop", Name: "cart", LocalEndpoints: 1},
			path:       "/some/other/path",
			wantStatus: http.StatusOK,
			wantWeight: "1",
			wantBody:   "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"cart\"\n\t},\n\t\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}",
		},
		{
			name:       "no local endpoints",
			svc:        Service{Namespace: "default", Name: "web", LocalEndpoints: 0},
			path:       "/",
			wantStatus: http.StatusServiceUnavailable,
			wantWeight: "0",
			wantBody:   "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 0,\n\t\"serviceProxyHealthy\": true\n}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePorts(t, 1)[0]
			s := New([]netip.Addr{loopback}, zaptest.NewLogger(t))
			defer s.Close()
			if err := s.Sync(map[uint16]Service{port: tt.svc}); err != nil {
				t.Fatalf("Sync: %v", err)
			}

			resp, got := get(t, probeClient(), "http://"+addr(port)+tt.path)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			for header, want := range map[string]string{
				"Content-Type":                     "application/json",
				"X-Content-Type-Options":           "nosniff",
				"X-Load-Balancing-Endpoint-Weight": tt.wantWeight,
			} {
				if v := resp.Header.Get(header); v != want {
					t.Errorf("header %s = %q, want %q", header, v, want)
				}
			}
			if got != tt.wantBody {
				t.Errorf("body =\n%q\nwant\n%q", got, tt.wantBody)
			}
		})
	}
}

// probe is what a port must answer after a step; status 0 means connection refused.
type probe struct {
	status int
	svc    Service
}

// portZero stands for the literal port 0 in a step, other keys index the free ports.
const portZero = -1

type step struct {
	taken     []int           // ports bound by another listener before Sync
	want      map[int]Service // argument to Sync
	wantErr   [][]string      // one entry per failed port: substrings its error must hold
	wantPorts map[int]Service // Ports() afterwards
	probes    map[int]probe
}

func TestSync(t *testing.T) {
	a := func(n int) Service { return Service{Namespace: "default", Name: "a", LocalEndpoints: n} }
	b := func(n int) Service { return Service{Namespace: "prod", Name: "b", LocalEndpoints: n} }

	tests := []struct {
		name  string
		bind  []netip.Addr // default 127.0.0.1
		steps []step
	}{
		{
			name: "two services, one with and one without local endpoints",
			steps: []step{{
				want:      map[int]Service{0: a(2), 1: b(0)},
				wantPorts: map[int]Service{0: a(2), 1: b(0)},
				probes:    map[int]probe{0: {200, a(2)}, 1: {503, b(0)}},
			}},
		},
		{
			name: "count change is visible to the next request",
			steps: []step{
				{want: map[int]Service{0: a(0)}, wantPorts: map[int]Service{0: a(0)}, probes: map[int]probe{0: {503, a(0)}}},
				{want: map[int]Service{0: a(2)}, wantPorts: map[int]Service{0: a(2)}, probes: map[int]probe{0: {200, a(2)}}},
				{want: map[int]Service{0: a(0)}, wantPorts: map[int]Service{0: a(0)}, probes: map[int]probe{0: {503, a(0)}}},
			},
		},
		{
			name: "removed port refuses connections, the other keeps serving",
			steps: []step{
				{want: map[int]Service{0: a(1), 1: b(1)}, probes: map[int]probe{0: {200, a(1)}, 1: {200, b(1)}}},
				{
					want:      map[int]Service{1: b(1)},
					wantPorts: map[int]Service{1: b(1)},
					probes:    map[int]probe{0: {}, 1: {200, b(1)}},
				},
			},
		},
		{
			name: "empty sync closes every port",
			steps: []step{
				{want: map[int]Service{0: a(1), 1: b(1)}, probes: map[int]probe{0: {200, a(1)}, 1: {200, b(1)}}},
				{want: map[int]Service{}, wantPorts: map[int]Service{}, probes: map[int]probe{0: {}, 1: {}}},
			},
		},
		{
			name: "port taken by another listener fails alone",
			steps: []step{{
				taken:     []int{0},
				want:      map[int]Service{0: a(1), 1: b(1)},
				wantErr:   [][]string{{"default/a", "port %d", "address already in use"}},
				wantPorts: map[int]Service{1: b(1)},
				probes:    map[int]probe{1: {200, b(1)}},
			}},
		},
		{
			name: "port handed to another service keeps its listener",
			steps: []step{
				{want: map[int]Service{0: a(1)}, probes: map[int]probe{0: {200, a(1)}}},
				{want: map[int]Service{0: b(3)}, wantPorts: map[int]Service{0: b(3)}, probes: map[int]probe{0: {200, b(3)}}},
			},
		},
		{
			name: "invalid entries are reported, valid ones served",
			steps: []step{{
				want: map[int]Service{
					portZero: a(1),
					0:        {Namespace: "", Name: "x", LocalEndpoints: 1},
					1:        b(1),
					2:        {Namespace: "default", Name: "neg", LocalEndpoints: -1},
				},
				wantErr: [][]string{
					{"default/a", "healthCheckNodePort is 0"},
					{"port %d", "empty namespace or name"},
					{"default/neg", "port %d", "LocalEndpoints is negative"},
				},
				wantPorts: map[int]Service{1: b(1)},
				probes:    map[int]probe{0: {}, 1: {200, b(1)}, 2: {}},
			}},
		},
		{
			name: "invalid update leaves the port as it was",
			steps: []step{
				{want: map[int]Service{0: a(2)}, probes: map[int]probe{0: {200, a(2)}}},
				{
					want:      map[int]Service{0: a(-1)},
					wantErr:   [][]string{{"default/a", "port %d", "LocalEndpoints is negative"}},
					wantPorts: map[int]Service{0: a(2)},
					probes:    map[int]probe{0: {200, a(2)}},
				},
			},
		},
		{
			// Binding the same address twice makes the second listen fail: the port must
			// then not be half served on the first.
			name: "a port is served on every bind address or not at all",
			bind: []netip.Addr{loopback, loopback},
			steps: []step{{
				want:      map[int]Service{0: a(1)},
				wantErr:   [][]string{{"default/a", "port %d", "address already in use"}},
				wantPorts: map[int]Service{},
				probes:    map[int]probe{0: {}},
			}},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports := freePorts(t, 3)
			portOf := func(i int) uint16 {
				if i == portZero {
					return 0
				}
				return ports[i]
			}
			bind := tt.bind
			if bind == nil {
				bind = []netip.Addr{loopback}
			}
			s := New(bind, zaptest.NewLogger(t))
			defer s.Close()
			client := probeClient()

			for i, st := range tt.steps {
				for _, idx := range st.taken {
					l, err := net.Listen("tcp", addr(portOf(idx)))
					if err != nil {
						t.Fatalf("step %d: occupy port: %v", i, err)
					}
					defer l.Close()
				}

				want := make(map[uint16]Service, len(st.want))
				for idx, svc := range st.want {
					want[portOf(idx)] = svc
				}
				err := s.Sync(want)
				checkErr(t, i, err, st.wantErr, portOf)

				if st.wantPorts != nil {
					wantPorts := make(map[uint16]Service, len(st.wantPorts))
					for idx, svc := range st.wantPorts {
						wantPorts[portOf(idx)] = svc
					}
					if got := s.Ports(); !equalPorts(got, wantPorts) {
						t.Errorf("step %d: Ports() = %v, want %v", i, got, wantPorts)
					}
				}

				for idx, p := range st.probes {
					port := portOf(idx)
					if p.status == 0 {
						assertRefused(t, port)
						continue
					}
					resp, raw := get(t, client, "http://"+addr(port)+"/")
					if resp.StatusCode != p.status {
						t.Errorf("step %d port %d: status %d, want %d", i, port, resp.StatusCode, p.status)
					}
					var got body
					if err := json.Unmarshal([]byte(raw), &got); err != nil {
						t.Fatalf("step %d port %d: body %q: %v", i, port, raw, err)
					}
					if got.Service.Namespace != p.svc.Namespace || got.Service.Name != p.svc.Name ||
						got.LocalEndpoints != p.svc.LocalEndpoints {
						t.Errorf("step %d port %d: body %+v, want service %s with %d local endpoints",
							i, port, got, p.svc, p.svc.LocalEndpoints)
					}
				}
			}
		})
	}
}

// checkErr wants one joined error line per failed port, each holding its substrings
// (a "%d" in a substring is the port of that entry, found by trying each test port).
func checkErr(t *testing.T, step int, err error, want [][]string, portOf func(int) uint16) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("step %d: Sync: %v", step, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("step %d: Sync returned no error, want %d", step, len(want))
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("step %d: Sync error has %d lines, want %d:\n%v", step, len(lines), len(want), err)
	}
	for _, subs := range want {
		if !anyLineMatches(lines, subs, portOf) {
			t.Errorf("step %d: no error line holds all of %q:\n%v", step, subs, err)
		}
	}
}

func anyLineMatches(lines []string, subs []string, portOf func(int) uint16) bool {
	for _, line := range lines {
		for idx := range 3 {
			ok := true
			for _, sub := range subs {
				if strings.Contains(sub, "%d") {
					sub = strings.ReplaceAll(sub, "%d", strconv.Itoa(int(portOf(idx))))
				}
				if !strings.Contains(line, sub) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

func equalPorts(a, b map[uint16]Service) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestUpdateKeepsConnection shows that a count update does not reopen the listener: a
// kept-alive probe connection survives it (closing the server would close it too).
func TestUpdateKeepsConnection(t *testing.T) {
	port := freePorts(t, 1)[0]
	s := New([]netip.Addr{loopback}, zaptest.NewLogger(t))
	defer s.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	steps := []struct {
		endpoints  int
		wantStatus int
		wantReused bool
	}{
		{endpoints: 0, wantStatus: 503, wantReused: false},
		{endpoints: 4, wantStatus: 200, wantReused: true},
		{endpoints: 1, wantStatus: 200, wantReused: true},
	}
	for i, st := range steps {
		svc := Service{Namespace: "default", Name: "web", LocalEndpoints: st.endpoints}
		if err := s.Sync(map[uint16]Service{port: svc}); err != nil {
			t.Fatalf("step %d: Sync: %v", i, err)
		}
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		req, err := http.NewRequest(http.MethodGet, "http://"+addr(port)+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("step %d: GET: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.wantStatus {
			t.Errorf("step %d: status %d, want %d", i, resp.StatusCode, st.wantStatus)
		}
		if w := resp.Header.Get("X-Load-Balancing-Endpoint-Weight"); w != strconv.Itoa(st.endpoints) {
			t.Errorf("step %d: weight %q, want %d", i, w, st.endpoints)
		}
		if reused != st.wantReused {
			t.Errorf("step %d: connection reused = %v, want %v", i, reused, st.wantReused)
		}
	}
}

func TestClose(t *testing.T) {
	ports := freePorts(t, 2)
	s := New([]netip.Addr{loopback}, zaptest.NewLogger(t))
	want := map[uint16]Service{
		ports[0]: {Namespace: "default", Name: "a", LocalEndpoints: 1},
		ports[1]: {Namespace: "default", Name: "b", LocalEndpoints: 0},
	}
	if err := s.Sync(want); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for _, port := range ports {
		assertRefused(t, port)
	}
	if got := s.Ports(); len(got) != 0 {
		t.Errorf("Ports() after Close = %v, want none", got)
	}
	if err := s.Sync(want); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close = %v, want ErrClosed", err)
	}
	for _, port := range ports {
		assertRefused(t, port)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
