package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kube-vpp/kube-vpp/cni"
)

// buildPlugin compiles this command into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kube-vpp-cni")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type addHandler struct{}

func (addHandler) Serve(_ context.Context, req *cni.Request) (*types100.Result, error) {
	if req.Command != cni.CommandAdd {
		return nil, nil
	}
	ip, ipNet, _ := net.ParseCIDR("10.1.0.5/24")
	ipNet.IP = ip
	return &types100.Result{
		Interfaces: []*types100.Interface{{Name: req.IfName, Sandbox: req.Netns}},
		IPs:        []*types100.IPConfig{{Interface: types100.Int(0), Address: *ipNet}},
	}, nil
}

// TestBinary runs the built plugin the way kubelet (libcni) does: CNI_* variables
// in the environment, the network configuration on stdin, the answer on stdout.
func TestBinary(t *testing.T) {
	bin := buildPlugin(t)

	socket := filepath.Join(t.TempDir(), "cni.sock")
	srv := cni.NewServer(socket, addHandler{}, zaptest.NewLogger(t))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	absent := filepath.Join(t.TempDir(), "absent.sock")

	addEnv := []string{
		"CNI_COMMAND=ADD", "CNI_CONTAINERID=4b1d0c2e9f3a", "CNI_NETNS=/var/run/netns/does-not-exist",
		"CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin", "CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
	}
	confFor := func(version, socket, extra string) string {
		return `{"cniVersion":"` + version + `","name":"kube-vpp","type":"kube-vpp-cni","agentSocket":"` + socket + `"` + extra + `}`
	}
	tests := []struct {
		name     string
		env      []string
		stdin    string
		wantExit int
		wantCode uint   // CNI error code on stdout when wantExit is 1
		wantOut  string // substring of stdout on success
		wantErr  string // substring of stderr
	}{
		// skel prints the About line on stderr and exits 0 when CNI_COMMAND is unset.
		{name: "no CNI_COMMAND", env: []string{}, wantErr: "kube-vpp-cni: "},
		{name: "VERSION", env: []string{"CNI_COMMAND=VERSION"}, wantOut: `"supportedVersions"`},
		{name: "ADD", env: addEnv, stdin: confFor("1.1.0", socket, ""), wantOut: `"10.1.0.5/24"`},
		{name: "ADD as 0.4.0", env: addEnv, stdin: confFor("0.4.0", socket, ""), wantOut: `"cniVersion": "0.4.0"`},
		// skel decodes stdin before the plugin sees it and reports undecodable JSON as code 6.
		{name: "stdin not JSON", env: addEnv, stdin: "hello", wantExit: 1, wantCode: 6},
		{name: "stdin without type", env: addEnv, stdin: `{"cniVersion":"1.1.0","name":"kube-vpp"}`, wantExit: 1, wantCode: 7},
		{name: "unsupported cniVersion", env: addEnv, stdin: confFor("0.2.0", socket, ""), wantExit: 1, wantCode: 1},
		{name: "missing CNI_CONTAINERID", env: []string{"CNI_COMMAND=ADD", "CNI_NETNS=/x", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin"},
			stdin: confFor("1.1.0", socket, ""), wantExit: 1, wantCode: 4},
		{name: "agent unreachable", env: addEnv, stdin: confFor("1.1.0", absent, `,"agentTimeout":"200ms"`), wantExit: 1, wantCode: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = tt.env // never nil: nil would inherit the test's environment
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exit := 0
			var exitErr *exec.ExitError
			if errors.As(err, &exitErr) {
				exit = exitErr.ExitCode()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if exit != tt.wantExit {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", exit, tt.wantExit, stdout.Bytes(), stderr.Bytes())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("stderr %q, want it to contain %q", stderr.Bytes(), tt.wantErr)
			}
			if tt.wantExit == 0 {
				if tt.wantOut == "" {
					if stdout.Len() != 0 {
						t.Fatalf("stdout %q, want nothing", stdout.Bytes())
					}
					return
				}
				if !json.Valid(stdout.Bytes()) || !strings.Contains(stdout.String(), tt.wantOut) {
					t.Fatalf("stdout %s, want JSON containing %s", stdout.Bytes(), tt.wantOut)
				}
				return
			}
			var cniErr struct {
				Code uint   `json:"code"`
				Msg  string `json:"msg"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &cniErr); err != nil {
				t.Fatalf("stdout %q is not a CNI error: %v", stdout.Bytes(), err)
			}
			if cniErr.Code != tt.wantCode || cniErr.Msg == "" {
				t.Fatalf("CNI error %+v, want code %d", cniErr, tt.wantCode)
			}
		})
	}
}
