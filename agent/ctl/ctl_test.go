package ctl

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/kube-vpp/kube-vpp/bgp"
	"github.com/kube-vpp/kube-vpp/cni/pods"
	"github.com/kube-vpp/kube-vpp/services"
)

type fakeBackend struct{ cmds []string }

func (f *fakeBackend) Version(context.Context) VersionInfo {
	return VersionInfo{Agent: "test", BuiltForVPP: "25.10-release", VPPConnected: true, VPP: "25.10-release"}
}

func (f *fakeBackend) Status(context.Context) StatusInfo {
	return StatusInfo{Ready: false, Reason: "waiting for the first sync", VPPConnected: true}
}

func (f *fakeBackend) BGP(context.Context) (bgp.Status, error) {
	return bgp.Status{ASN: 64512, Peers: []bgp.PeerStatus{{Address: netip.MustParseAddr("192.168.10.1"), ASN: 65000, State: "established"}}}, nil
}

func (f *fakeBackend) Pods(context.Context) ([]pods.PodStatus, error) {
	return []pods.PodStatus{{Namespace: "default", Name: "web", Kind: pods.KindTap, IPs: []netip.Addr{netip.MustParseAddr("10.244.0.2")}}}, nil
}

func (f *fakeBackend) CLI(_ context.Context, cmd string) (string, error) {
	f.cmds = append(f.cmds, cmd)
	if cmd == "fail" {
		return "", errors.New("not connected to VPP")
	}
	return "answer to " + cmd, nil
}

func (f *fakeBackend) Services(context.Context) ([]services.Status, error) {
	return []services.Status{{Service: "default/web", Problems: []string{"spec.externalIPs[0]: not allowed"}}}, nil
}

// Trace answers as an agent whose backend 10.244.0.7:8080 serves everything.
func (f *fakeBackend) Trace(_ context.Context, req TraceRequest) (TraceReply, error) {
	if req.From == "default/elsewhere" {
		return TraceReply{}, errors.New("pod default/elsewhere runs on node node-b")
	}
	rep := TraceReply{From: req.From, To: req.To, Protocol: req.Protocol}
	for range max(req.Count, 1) {
		rep.Packets = append(rep.Packets, TracePacket{Verdict: "forwarded",
			Translations: []TraceTranslation{{Kind: "dnat", From: req.To, To: "10.244.0.7:8080"}}})
	}
	return rep, nil
}

func (f *fakeBackend) Policies(context.Context) ([]PodPolicy, error) {
	return []PodPolicy{{Pod: "default/web", Ingress: "kube-vpp:acl:in-1", Policies: []string{"default/deny"}}}, nil
}

func (f *fakeBackend) Events(context.Context) []EventInfo {
	return []EventInfo{{Type: "Warning", Kind: "Service", Object: "default/web", Reason: "ExternalIPNotAllowed"}}
}

func startServer(t *testing.T) (*Client, *fakeBackend, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "ctl.sock")
	b := &fakeBackend{}
	s := NewServer(path, b, zap.NewNop())
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return NewClient(path), b, path
}

func TestVersionAndCLI(t *testing.T) {
	c, b, path := startServer(t)
	ctx := context.Background()
	v, err := c.Version(ctx)
	if err != nil || v.VPP != "25.10-release" || !v.VPPConnected {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Ready || st.Reason != "waiting for the first sync" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	b2, err := c.BGP(ctx)
	if err != nil || b2.ASN != 64512 || len(b2.Peers) != 1 || b2.Peers[0].Address.String() != "192.168.10.1" {
		t.Fatalf("BGP = %+v, %v", b2, err)
	}
	pl, err := c.Pods(ctx)
	if err != nil || len(pl) != 1 || pl[0].Name != "web" || pl[0].IPs[0].String() != "10.244.0.2" {
		t.Fatalf("Pods = %+v, %v", pl, err)
	}
	out, err := c.CLI(ctx, "show interface")
	if err != nil || out != "answer to show interface" {
		t.Fatalf("CLI = %q, %v", out, err)
	}
	if _, err := c.CLI(ctx, "fail"); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("failed CLI returned %v, want the backend's error", err)
	}
	if _, err := c.CLI(ctx, strings.Repeat("x", MaxCommand+1)); err == nil {
		t.Fatal("oversized command accepted")
	}
	if len(b.cmds) != 2 {
		t.Errorf("backend saw %v, want the two valid commands only", b.cmds)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 0600 (root only)", perm)
	}
}

func TestAgentNotRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	_, err := NewClient(path).Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "agent not reachable at "+path) {
		t.Fatalf("error = %v, want it to say the agent is not reachable at the path", err)
	}
}

func TestTrace(t *testing.T) {
	c, _, _ := startServer(t)
	ctx := context.Background()
	rep, err := c.Trace(ctx, TraceRequest{From: "default/web", To: "10.96.0.10:80", Protocol: "tcp", Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Packets) != 3 || rep.Packets[0].Translations[0].To != "10.244.0.7:8080" {
		t.Errorf("trace = %+v", rep)
	}
	bad := []struct {
		req  TraceRequest
		want string
	}{
		{TraceRequest{From: "", To: "10.96.0.10:80", Protocol: "tcp"}, "from: empty"},
		{TraceRequest{From: "not an ip", To: "10.96.0.10:80", Protocol: "tcp"}, "neither namespace/pod nor an IP"},
		{TraceRequest{From: "10.0.0.1", To: "10.96.0.10", Protocol: "tcp"}, "not ip:port"},
		{TraceRequest{From: "10.0.0.1", To: "10.96.0.10:80", Protocol: "sctp"}, "must be tcp or udp"},
		{TraceRequest{From: "10.0.0.1", To: "10.96.0.10:80", Protocol: "tcp", Count: MaxTraceCount + 1}, "count"},
		{TraceRequest{From: "default/elsewhere", To: "10.96.0.10:80", Protocol: "tcp"}, "runs on node node-b"},
	}
	for _, tt := range bad {
		if _, err := c.Trace(ctx, tt.req); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Trace(%+v) error = %v, want it to mention %q", tt.req, err, tt.want)
		}
	}
}

func TestParseDestination(t *testing.T) {
	tests := []struct {
		in, to, proto string
		bad           bool
	}{
		{in: "10.96.0.10:53/udp", to: "10.96.0.10:53", proto: "udp"},
		{in: "10.96.0.10:80/TCP", to: "10.96.0.10:80", proto: "tcp"},
		{in: "10.96.0.10:80", bad: true},
		{in: "10.96.0.10:80/sctp", bad: true},
		{in: "10.96.0.10:99999/tcp", bad: true},
		{in: "web:80/tcp", bad: true},
	}
	for _, tt := range tests {
		to, proto, err := ParseDestination(tt.in)
		if (err != nil) != tt.bad || to != tt.to || proto != tt.proto {
			t.Errorf("ParseDestination(%q) = %q, %q, %v", tt.in, to, proto, err)
		}
	}
}

func TestServicesAndEvents(t *testing.T) {
	c, _, _ := startServer(t)
	list, err := c.Services(context.Background())
	if err != nil || len(list) != 1 || list[0].Service != "default/web" {
		t.Errorf("Services = %+v, %v", list, err)
	}
	evs, err := c.Events(context.Background())
	if err != nil || len(evs) != 1 || evs[0].Reason != "ExternalIPNotAllowed" {
		t.Errorf("Events = %+v, %v", evs, err)
	}
}
