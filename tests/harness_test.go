// Package tests holds kube-vpp's end-to-end tests: the real binaries as
// separate processes, talking over their sockets as on a node.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin holds the binaries built once for the whole package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kube-vpp-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/kube-vpp-agent", "../cmd/kube-vppctl", "../cmd/vppsim", "../cmd/kube-vpp-cni")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a background process whose output is kept for assertions.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a binary in the background; the test's cleanup kills it and
// prints its output when the test failed.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return launch(t, name, exec.Command(filepath.Join(bin, name), args...))
}

func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop ends the process gracefully, as the kubelet does, and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.kill(syscall.SIGTERM)
	if p.err != nil {
		t.Errorf("%s exited with %v after SIGTERM", p.name, p.err)
	}
}

// wait waits for the process to exit by itself and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s still running after %s", p.name, within)
	}
	return p.cmd.ProcessState.ExitCode()
}

// run runs a binary to completion and returns its combined output and exit code.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	return runCmd(t, timeout, filepath.Join(bin, name), args...)
}

// runCmd runs a command to completion; only a failure to run it at all
// fails the test, a non-zero exit is the caller's to judge.
func runCmd(t *testing.T, timeout time.Duration, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", name, err)
	}
	return string(out), 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// node is one simulated node: a socket folder for VPP's API and the agent's
// control socket.
type node struct {
	dir     string
	apiSock string
	ctlSock string
	cniSock string
}

func newNode(t *testing.T) node {
	dir := t.TempDir()
	// Runs after the agent is stopped: its standalone pods' namespaces
	// outlive it by design (a restarted agent adopts them).
	t.Cleanup(func() { removeStandaloneNetns(t, filepath.Join(dir, "state", "ipam.json")) })
	return node{dir: dir, apiSock: filepath.Join(dir, "api.sock"), ctlSock: filepath.Join(dir, "ctl.sock"), cniSock: filepath.Join(dir, "cni.sock")}
}

func (n node) agentArgs(name, manifests string, extra ...string) []string {
	args := []string{"--node", name, "--manifests", manifests, "--vpp-socket", n.apiSock,
		"--ctl-socket", n.ctlSock, "--http-listen", "127.0.0.1:0", "--healthz-bind-address", "127.0.0.1:0", "--uplink-interface", "GigabitEthernet0/8/0",
		"--cni-socket", n.cniSock, "--state-dir", filepath.Join(n.dir, "state")}
	return append(args, extra...)
}

// vppctl runs a VPP CLI command through kube-vppctl and the agent.
func (n node) vppctl(t *testing.T, words ...string) string {
	t.Helper()
	out, code := run(t, 30*time.Second, "kube-vppctl", append([]string{"--socket", n.ctlSock, "vppctl", "--"}, words...)...)
	if code != 0 {
		t.Fatalf("kube-vppctl vppctl %v: exit %d: %s", words, code, out)
	}
	return out
}

func (n node) waitReady(t *testing.T) {
	t.Helper()
	out, code := run(t, 60*time.Second, "kube-vppctl", "--socket", n.ctlSock, "status", "--wait", "30s")
	if code != 0 {
		t.Fatalf("agent not ready: %s", out)
	}
}

// examplesDir is the repository's example cluster.
func examplesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// removeStandaloneNetns deletes the network namespaces an agent made for
// the pods of its manifests folder, as listed in its allocation state.
func removeStandaloneNetns(t *testing.T, stateFile string) {
	data, err := os.ReadFile(stateFile)
	if err != nil {
		return
	}
	var state struct {
		Records []struct {
			Extra struct {
				Netns      string `json:"netns"`
				Standalone bool   `json:"standalone"`
			} `json:"extra"`
		} `json:"records"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Logf("reading %s: %v", stateFile, err)
		return
	}
	for _, r := range state.Records {
		if r.Extra.Standalone && strings.HasPrefix(r.Extra.Netns, "/var/run/netns/kvpp-") {
			if out, err := exec.Command("ip", "netns", "del", filepath.Base(r.Extra.Netns)).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v: %s", r.Extra.Netns, err, out)
			}
		}
	}
}

// copyExamples copies the named files of the example cluster into dir, a
// manifests folder a test then adds to.
func copyExamples(t *testing.T, dir string, files ...string) {
	t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(examplesDir(t), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
