package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The fabric is one L2 segment, as in the example cluster: the ToR owns
// the bridge and .1, an optional second ToR has .2, node-X has .1N (node-a
// .11, node-b .12, ...). IPv6 reuses the same digits as the last group.
const (
	torIP    = "192.168.10.1"
	torIP6   = "fd00:192:168:10::1"
	tor2IP   = "192.168.10.2"
	tor2IP6  = "fd00:192:168:10::2"
	fabricV4 = "192.168.10.%d/24"
	fabricV6 = "fd00:192:168:10::%d/64"

	// Interface names. They need no per-test token: every one of them is
	// created directly inside the test's own namespaces (the veth peer is
	// made in its target namespace by the kernel), never in the root one.
	fabricBridge = "br0"
	fabricUplink = "eth0" // in a node's (and the second ToR's) namespace

	// netnsPrefix starts every namespace the tests create:
	// kvt-<pid>-<random>-<role>. The pid lets a later run find the
	// namespaces of a run that died without cleaning up.
	netnsPrefix = "kvt-"
	netnsDir    = "/run/netns"
)

// fabric is a set of network namespaces wired to one bridge: "tor" holds
// the bridge and the ToR address, every node has its own namespace with
// eth0 on the segment.
type fabric struct {
	t      *testing.T
	prefix string
	nodes  map[string]string // node name -> namespace
	tor2   string            // namespace of the second ToR, once added
}

// newFabric builds the namespaces for the named nodes (node-a .. node-z)
// and removes them, and every process left in them, when the test ends.
// It skips the test when network namespaces cannot be created here.
func newFabric(t *testing.T, nodes ...string) *fabric {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("fabric: needs root to create network namespaces")
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		t.Skipf("fabric: ip netns does not work here: %v: %s", err, out)
	}
	removeStaleNetns(t)

	token := make([]byte, 3)
	if _, err := rand.Read(token); err != nil {
		t.Fatal(err)
	}
	f := &fabric{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%s", netnsPrefix, os.Getpid(), hex.EncodeToString(token)),
		nodes:  make(map[string]string, len(nodes)),
	}
	t.Cleanup(f.remove)

	tor := f.torNS()
	if out, err := exec.Command("ip", "netns", "add", tor).CombinedOutput(); err != nil {
		t.Skipf("fabric: cannot create a network namespace: %v: %s", err, out)
	}
	f.prepare(tor)
	// No STP and no multicast snooping: ports forward at once and IPv6
	// neighbour discovery is flooded without a querier on the segment.
	f.ip("-n", tor, "link", "add", fabricBridge, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
	f.ip("-n", tor, "addr", "add", fmt.Sprintf(fabricV4, 1), "dev", fabricBridge)
	f.ip("-n", tor, "addr", "add", fmt.Sprintf(fabricV6, 1), "dev", fabricBridge, "nodad")
	f.ip("-n", tor, "link", "set", fabricBridge, "up")

	for _, name := range nodes {
		host, err := nodeHost(name)
		if err != nil {
			t.Fatalf("fabric: %v", err)
		}
		if _, dup := f.nodes[name]; dup {
			t.Fatalf("fabric: node %q given twice", name)
		}
		ns := f.prefix + "-" + name
		f.nodes[name] = ns
		f.attach(ns, "to-"+name, host)
	}
	return f
}

// addSecondToR adds the "tor2" namespace on the same segment with .2 and
// returns its name.
func (f *fabric) addSecondToR() string {
	f.t.Helper()
	if f.tor2 == "" {
		f.tor2 = f.prefix + "-tor2"
		f.attach(f.tor2, "to-tor2", 2)
	}
	return f.tor2
}

// attach creates namespace ns and links its eth0 to the bridge through a
// veth whose other end, port, sits in the ToR namespace.
func (f *fabric) attach(ns, port string, host int) {
	f.t.Helper()
	f.ip("netns", "add", ns)
	f.prepare(ns)
	f.ip("-n", f.torNS(), "link", "add", port, "type", "veth", "peer", "name", fabricUplink, "netns", ns)
	f.ip("-n", f.torNS(), "link", "set", port, "master", fabricBridge, "up")
	f.ip("-n", ns, "addr", "add", fmt.Sprintf(fabricV4, host), "dev", fabricUplink)
	f.ip("-n", ns, "addr", "add", fmt.Sprintf(fabricV6, host), "dev", fabricUplink, "nodad")
	f.ip("-n", ns, "link", "set", fabricUplink, "up")
}

// prepare brings lo up and turns off IPv6 duplicate address detection for
// the interfaces still to come, link-local addresses included: FRR will not
// open an IPv6 session while its interface's link-local is tentative.
func (f *fabric) prepare(ns string) {
	f.t.Helper()
	f.ip("-n", ns, "link", "set", "lo", "up")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set := "echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad && echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad"
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sh", "-c", set).CombinedOutput(); err != nil {
		f.t.Fatalf("turning off IPv6 DAD in %s: %v: %s", ns, err, out)
	}
}

// torNS is the namespace holding the bridge and the first ToR address.
func (f *fabric) torNS() string { return f.prefix + "-tor" }

// nodeNS is the namespace of a node given to newFabric.
func (f *fabric) nodeNS(name string) string {
	f.t.Helper()
	ns, ok := f.nodes[name]
	if !ok {
		f.t.Fatalf("fabric: no node %q (have %v)", name, f.nodeNames())
	}
	return ns
}

// nodeIP and nodeIP6 are a node's addresses on the segment (its InternalIPs).
func (f *fabric) nodeIP(name string) string {
	f.t.Helper()
	f.nodeNS(name)
	host, _ := nodeHost(name)
	return fmt.Sprintf("192.168.10.%d", host)
}

func (f *fabric) nodeIP6(name string) string {
	f.t.Helper()
	f.nodeNS(name)
	host, _ := nodeHost(name)
	return fmt.Sprintf("fd00:192:168:10::%d", host)
}

func (f *fabric) nodeNames() []string {
	names := make([]string, 0, len(f.nodes))
	for n := range f.nodes {
		names = append(names, n)
	}
	return names
}

// nodeHost maps node-a..node-z to the last octet 11..36.
func nodeHost(name string) (int, error) {
	if len(name) != len("node-a") || !strings.HasPrefix(name, "node-") || name[5] < 'a' || name[5] > 'z' {
		return 0, fmt.Errorf("node name %q: want node-a .. node-z (the address is derived from the letter)", name)
	}
	return 11 + int(name[5]-'a'), nil
}

func (f *fabric) namespaces() []string {
	all := []string{f.torNS()}
	if f.tor2 != "" {
		all = append(all, f.tor2)
	}
	for _, ns := range f.nodes {
		all = append(all, ns)
	}
	return all
}

// remove kills whatever still runs in the fabric's namespaces and deletes
// them. Deleting the namespaces also deletes the veths and the bridge.
func (f *fabric) remove() {
	for _, ns := range f.namespaces() {
		if err := deleteNetns(ns); err != nil {
			f.t.Errorf("fabric cleanup: %v", err)
		}
	}
}

func (f *fabric) ip(args ...string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		f.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// deleteNetns kills the processes inside ns, then deletes it. A namespace
// that is already gone, or that another test removed meanwhile (both look
// for leftovers), is not an error.
func deleteNetns(ns string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return fmt.Errorf("listing processes of namespace %s: %w", ns, err)
	}
	for _, field := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	out, err = exec.Command("ip", "netns", "del", ns).CombinedOutput()
	if _, statErr := os.Stat(filepath.Join(netnsDir, ns)); err != nil && !errors.Is(statErr, os.ErrNotExist) {
		return fmt.Errorf("deleting namespace %s: %w: %s", ns, err, out)
	}
	return nil
}

// removeStaleNetns deletes namespaces left by test processes that died
// without their cleanup (a timeout kills the binary before it runs).
func removeStaleNetns(t *testing.T) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if err := deleteNetns(e.Name()); err != nil {
			t.Logf("removing a namespace left by an earlier run: %v", err)
		}
	}
}

// startIn runs a binary inside network namespace ns, like start does:
// killed at cleanup, output printed when the test failed. A bare name is
// one of the binaries built into bin.
func startIn(t *testing.T, ns, binary string, args ...string) *proc {
	t.Helper()
	path := binary
	if !filepath.IsAbs(binary) {
		path = filepath.Join(bin, binary)
	}
	// ip netns exec execs the binary itself, so the pid is the binary's.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, path}, args...)...)
	return launch(t, filepath.Base(binary)+" in "+ns, cmd)
}

// runIn runs a command inside ns to completion and returns its combined
// output and exit code.
func runIn(t *testing.T, timeout time.Duration, ns, binary string, args ...string) (string, int) {
	t.Helper()
	return runCmd(t, timeout, "ip", append([]string{"netns", "exec", ns, binary}, args...)...)
}

func launch(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", strings.Join(cmd.Args, " "), p.out.String())
		}
	})
	return p
}

// The node addresses are the example cluster's InternalIPs
// (examples/nodes.yaml); anything else is refused, not guessed.
func TestFabricNodeAddresses(t *testing.T) {
	tests := []struct {
		name    string
		host    int
		wantErr bool
	}{
		{name: "node-a", host: 11},
		{name: "node-b", host: 12},
		{name: "node-c", host: 13},
		{name: "node-z", host: 36},
		{name: "node-1", wantErr: true},
		{name: "node-ab", wantErr: true},
		{name: "worker-a", wantErr: true},
	}
	for _, tt := range tests {
		host, err := nodeHost(tt.name)
		if (err != nil) != tt.wantErr || host != tt.host {
			t.Errorf("nodeHost(%q) = %d, %v; want %d, error %v", tt.name, host, err, tt.host, tt.wantErr)
		}
	}
}
