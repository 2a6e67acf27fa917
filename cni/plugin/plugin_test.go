package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap/zaptest"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kube-vpp/kube-vpp/cni"
)

// fakeAgent answers like the agent: ADD gives one IPv4 address on eth0, other
// commands succeed, unless failWith is set. It records what it was asked.
type fakeAgent struct {
	failWith error
	dns      types.DNS

	mu   sync.Mutex
	seen []cni.Request
}

func (a *fakeAgent) Serve(_ context.Context, req *cni.Request) (*types100.Result, error) {
	a.mu.Lock()
	a.seen = append(a.seen, *req)
	a.mu.Unlock()
	if a.failWith != nil {
		return nil, a.failWith
	}
	if req.Command != cni.CommandAdd {
		return nil, nil
	}
	_, ipNet, _ := net.ParseCIDR("10.1.0.0/24")
	ipNet.IP = net.ParseIP("10.1.0.5").To4()
	gw := net.ParseIP("10.1.0.1")
	return &types100.Result{
		CNIVersion: "1.1.0",
		Interfaces: []*types100.Interface{{Name: req.IfName, Sandbox: req.Netns}},
		IPs:        []*types100.IPConfig{{Interface: types100.Int(0), Address: *ipNet, Gateway: gw}},
		DNS:        a.dns,
	}, nil
}

func (a *fakeAgent) requests() []cni.Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

// serve runs h behind a cni.Server until the test ends and returns its socket.
func serve(t *testing.T, path string, h cni.Handler) {
	t.Helper()
	srv := cni.NewServer(path, h, zaptest.NewLogger(t))
	if err := srv.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

func conf(version, socket, extra string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":%q,"name":"kube-vpp","type":"kube-vpp-cni","agentSocket":%q,
		"dns":{"nameservers":["10.96.0.10"],"search":["svc.cluster.local"]}%s}`, version, socket, extra)
}

func cmdArgs(stdin []byte) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: "4b1d0c2e9f3a7b6c",
		Netns:       "/var/run/netns/cni-4b1d",
		IfName:      "eth0",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
		Path:        "/opt/cni/bin",
		StdinData:   stdin,
	}
}

func TestAdd(t *testing.T) {
	tests := []struct {
		name      string
		version   string
		agentDNS  types.DNS
		wantNS    []string
		want040IP bool // 0.3.x/0.4.0 results carry "version":"4" on each IP (CNI spec 0.4.0)
	}{
		{name: "1.1.0, DNS from the conf", version: "1.1.0", wantNS: []string{"10.96.0.10"}},
		{name: "1.0.0", version: "1.0.0", wantNS: []string{"10.96.0.10"}},
		{name: "0.4.0", version: "0.4.0", wantNS: []string{"10.96.0.10"}, want040IP: true},
		{name: "0.3.1", version: "0.3.1", wantNS: []string{"10.96.0.10"}, want040IP: true},
		{name: "agent's DNS wins", version: "1.1.0", agentDNS: types.DNS{Nameservers: []string{"10.0.0.53"}}, wantNS: []string{"10.0.0.53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "cni.sock")
			agent := &fakeAgent{dns: tt.agentDNS}
			serve(t, socket, agent)

			out, cniErr := Exec(context.Background(), cni.CommandAdd, cmdArgs(conf(tt.version, socket, "")))
			if cniErr != nil {
				t.Fatalf("ADD: %v", cniErr)
			}
			var got struct {
				CNIVersion string `json:"cniVersion"`
				IPs        []struct {
					Version string `json:"version"`
					Address string `json:"address"`
					Gateway string `json:"gateway"`
				} `json:"ips"`
				DNS types.DNS `json:"dns"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("ADD printed %q: %v", out, err)
			}
			if got.CNIVersion != tt.version {
				t.Errorf("cniVersion = %q, want %q", got.CNIVersion, tt.version)
			}
			if len(got.IPs) != 1 || got.IPs[0].Address != "10.1.0.5/24" || got.IPs[0].Gateway != "10.1.0.1" {
				t.Errorf("ips = %+v, want 10.1.0.5/24 via 10.1.0.1", got.IPs)
			}
			if hasVersion := len(got.IPs) == 1 && got.IPs[0].Version == "4"; hasVersion != tt.want040IP {
				t.Errorf("ips[0].version = %q, want set: %v", got.IPs[0].Version, tt.want040IP)
			}
			if !slices.Equal(got.DNS.Nameservers, tt.wantNS) {
				t.Errorf("dns.nameservers = %v, want %v", got.DNS.Nameservers, tt.wantNS)
			}

			reqs := agent.requests()
			want := cmdArgs(nil)
			if len(reqs) != 1 || reqs[0].Command != cni.CommandAdd || reqs[0].ContainerID != want.ContainerID ||
				reqs[0].Netns != want.Netns || reqs[0].IfName != want.IfName || reqs[0].Args != want.Args || reqs[0].Path != want.Path {
				t.Errorf("agent saw %+v", reqs)
			}
		})
	}
}

func TestCommandsWithoutOutput(t *testing.T) {
	for _, command := range []string{cni.CommandDel, cni.CommandCheck, cni.CommandStatus, cni.CommandGC} {
		t.Run(command, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "cni.sock")
			agent := &fakeAgent{}
			serve(t, socket, agent)
			stdin := conf("1.1.0", socket, `,"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.1.0.5/24"}]}`)
			args := cmdArgs(stdin)
			if command == cni.CommandStatus || command == cni.CommandGC {
				args = &skel.CmdArgs{Path: "/opt/cni/bin", StdinData: stdin} // kubelet sets no container for these
			}
			out, cniErr := Exec(context.Background(), command, args)
			if cniErr != nil || len(out) != 0 {
				t.Fatalf("%s = %q, %v; want no output, no error", command, out, cniErr)
			}
			reqs := agent.requests()
			// The whole stdin goes through unchanged: CHECK needs its prevResult, GC its valid attachments.
			if len(reqs) != 1 || reqs[0].Command != command || !bytes.Equal(compact(t, reqs[0].Config), compact(t, stdin)) {
				t.Fatalf("agent saw %+v", reqs)
			}
		})
	}
}

func TestAgentErrorsPassThrough(t *testing.T) {
	tests := []struct {
		name    string
		command string
		err     error
		want    uint
	}{
		{name: "IPAM exhausted on ADD", command: cni.CommandAdd, err: cni.Errorf(cni.CodeIPAM, "pool exhausted"), want: cni.CodeIPAM},
		{name: "agent not ready on STATUS", command: cni.CommandStatus, err: cni.Errorf(50, "agent not ready"), want: 50},
		{name: "VPP error on DEL", command: cni.CommandDel, err: cni.Errorf(cni.CodeVPP, "VPP unreachable"), want: cni.CodeVPP},
		{name: "plain error", command: cni.CommandAdd, err: fmt.Errorf("oops"), want: cni.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "cni.sock")
			serve(t, socket, &fakeAgent{failWith: tt.err})
			out, cniErr := Exec(context.Background(), tt.command, cmdArgs(conf("1.1.0", socket, "")))
			if cniErr == nil || cniErr.Code != tt.want || cniErr.Msg != tt.err.Error() || len(out) != 0 {
				t.Fatalf("%s = %q, %+v; want code %d %q", tt.command, out, cniErr, tt.want, tt.err.Error())
			}
		})
	}
}

func TestAgentUnreachable(t *testing.T) {
	for _, command := range []string{cni.CommandAdd, cni.CommandDel} {
		t.Run(command, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "absent.sock")
			// A short agentTimeout bounds the redials.
			stdin := conf("1.1.0", socket, `,"agentTimeout":"250ms"`)
			_, cniErr := Exec(context.Background(), command, cmdArgs(stdin))
			if cniErr == nil || cniErr.Code != types.ErrTryAgainLater || cniErr.Msg != "agent not reachable at "+socket {
				t.Fatalf("%s = %+v; want code 11 %q", command, cniErr, "agent not reachable at "+socket)
			}
			// The details say why: the socket does not exist (ENOENT), not just that time ran out.
			if !strings.Contains(cniErr.Details, "no such file or directory") {
				t.Fatalf("details = %q, want the dial error", cniErr.Details)
			}
		})
	}
}

func TestAgentComesUpDuringRedial(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "cni.sock")
	srv := cni.NewServer(socket, &fakeAgent{}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		// The agent starts after the plugin's first dial has failed.
		time.Sleep(150 * time.Millisecond)
		served <- srv.Serve(ctx) // Serve listens first
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	out, cniErr := Exec(context.Background(), cni.CommandAdd, cmdArgs(conf("1.1.0", socket, `,"agentTimeout":"10s"`)))
	if cniErr != nil || len(out) == 0 {
		t.Fatalf("ADD while the agent starts: %q, %v", out, cniErr)
	}
}

func TestBadConfiguration(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		want  uint
	}{
		{name: "not JSON", stdin: `{"cniVersion":`, want: types.ErrInvalidNetworkConfig},
		{name: "missing type", stdin: `{"cniVersion":"1.1.0","name":"kube-vpp"}`, want: types.ErrInvalidNetworkConfig},
		{name: "negative mtu", stdin: `{"cniVersion":"1.1.0","name":"kube-vpp","type":"kube-vpp-cni","mtu":-5}`, want: types.ErrInvalidNetworkConfig},
		{name: "old version", stdin: `{"cniVersion":"0.2.0","name":"kube-vpp","type":"kube-vpp-cni"}`, want: types.ErrIncompatibleCNIVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cniErr := Exec(context.Background(), cni.CommandAdd, cmdArgs([]byte(tt.stdin)))
			if cniErr == nil || cniErr.Code != tt.want {
				t.Fatalf("ADD = %+v, want code %d", cniErr, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, cniErr := Exec(context.Background(), "VERSION", &skel.CmdArgs{})
	if cniErr != nil {
		t.Fatalf("VERSION: %v", cniErr)
	}
	var got struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("VERSION printed %q: %v", out, err)
	}
	want := []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}
	if !slices.Equal(got.SupportedVersions, want) {
		t.Fatalf("supportedVersions = %v, want %v", got.SupportedVersions, want)
	}
}

func TestUnknownCommand(t *testing.T) {
	_, cniErr := Exec(context.Background(), "FROB", cmdArgs(nil))
	if cniErr == nil || cniErr.Code != types.ErrInvalidEnvironmentVariables {
		t.Fatalf("FROB = %+v, want code 4", cniErr)
	}
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact %q: %v", b, err)
	}
	return buf.Bytes()
}
