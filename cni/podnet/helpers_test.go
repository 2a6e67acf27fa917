package podnet

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Test fixtures are made with iproute2 so that no test thread ever changes
// namespace; what the code under test did is read back through netlink.

const netnsDir = "/run/netns"

// requireRoot skips tests that create namespaces and links.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and links")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to build fixtures")
	}
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return hex.EncodeToString(b)
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// newNetns creates a uniquely named namespace, removed when the test ends
// whatever its outcome, and returns its path.
func newNetns(t *testing.T) string {
	t.Helper()
	name := "kvpn-" + randomSuffix(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespaces here: %v: %s", err, out)
	}
	path := filepath.Join(netnsDir, name)
	t.Cleanup(func() { deleteNetns(t, path) })
	return path
}

func deleteNetns(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return
	}
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(path)).CombinedOutput(); err != nil {
		t.Errorf("delete namespace %s: %v: %s", path, err, out)
	}
}

// addTun creates a persistent TUN device inside the namespace, as VPP's tap
// v2 in TUN mode leaves it: L3, no ARP, no MAC.
func addTun(t *testing.T, nsPath, name string) {
	t.Helper()
	ipCmd(t, "-n", filepath.Base(nsPath), "tuntap", "add", "dev", name, "mode", "tun")
}

// hostName returns a unique host-side interface name and makes sure the
// link is gone when the test ends.
func hostName(t *testing.T) string {
	t.Helper()
	name := "kvh" + randomSuffix(t)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("clean up host link %s: %v", name, err)
			}
		}
	})
	return name
}

// handleIn opens a netlink handle inside nsPath for reading back state.
func handleIn(t *testing.T, nsPath string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatalf("open %s: %v", nsPath, err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", nsPath, err)
	}
	t.Cleanup(h.Close)
	return h
}

func mustLink(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }
