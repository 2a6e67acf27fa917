package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var (
	pod4 = netip.MustParseAddr("10.244.0.5")
	gw4  = netip.MustParseAddr("10.244.0.1")
	pod6 = netip.MustParseAddr("fd00:10:244::5")
	gw6  = netip.MustParseAddr("fd00:10:244::1")
)

func tunConfig(nsPath string, dual bool) Config {
	cfg := Config{Netns: nsPath, IfName: "eth0", MTU: 1450,
		Addresses: []netip.Addr{pod4}, Gateways: []netip.Addr{gw4}}
	if dual {
		cfg.Addresses = append(cfg.Addresses, pod6)
		cfg.Gateways = append(cfg.Gateways, gw6)
	}
	return cfg
}

// assertConfigured reads the namespace back and compares it with the
// addressing scheme: host prefixes without prefix routes (IPv6 also without
// DAD), gateway/32 (or /128) on-link, default via the gateway, link and lo up.
func assertConfigured(t *testing.T, cfg Config) netlink.Link {
	t.Helper()
	h := handleIn(t, cfg.Netns)
	if lo := mustLink(t, h, "lo"); !isUp(lo) {
		t.Errorf("lo is down")
	}
	link := mustLink(t, h, cfg.IfName)
	if !isUp(link) {
		t.Errorf("%s is down", cfg.IfName)
	}
	if cfg.MTU != 0 && link.Attrs().MTU != cfg.MTU {
		t.Errorf("%s MTU %d, want %d", cfg.IfName, link.Attrs().MTU, cfg.MTU)
	}
	for i, a := range cfg.Addresses {
		gw := cfg.Gateways[i]
		fam := netlink.FAMILY_V4
		wantFlags := unix.IFA_F_NOPREFIXROUTE
		if a.Is6() {
			fam = netlink.FAMILY_V6
			wantFlags |= unix.IFA_F_NODAD
		}
		addrs, err := h.AddrList(link, fam)
		if err != nil {
			t.Fatalf("list addresses: %v", err)
		}
		var found bool
		for _, have := range addrs {
			if !have.IP.Equal(a.AsSlice()) {
				continue
			}
			found = true
			if ones, bits := have.Mask.Size(); ones != bits {
				t.Errorf("address %s has prefix /%d, want a host prefix", a, ones)
			}
			if have.Flags&wantFlags != wantFlags {
				t.Errorf("address %s flags %#x, want %#x set", a, have.Flags, wantFlags)
			}
			if have.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Errorf("address %s is tentative", a)
			}
		}
		if !found {
			t.Errorf("address %s missing", a)
		}
		routes, err := h.RouteList(link, fam)
		if err != nil {
			t.Fatalf("list routes: %v", err)
		}
		var onLink, dflt int
		for _, r := range routes {
			switch {
			case r.Dst != nil && r.Dst.String() == hostPrefix(gw).String() && r.Gw == nil:
				if a.Is4() && r.Scope != netlink.SCOPE_LINK {
					t.Errorf("route %s scope %s, want link", r.Dst, r.Scope)
				}
				onLink++
			case (r.Dst == nil || r.Dst.String() == "0.0.0.0/0" || r.Dst.String() == "::/0") && r.Gw.Equal(gw.AsSlice()):
				dflt++
			case r.Dst != nil && r.Dst.Contains(a.AsSlice()) && r.Table == unix.RT_TABLE_MAIN && r.Protocol == unix.RTPROT_KERNEL:
				t.Errorf("unexpected prefix route %s for %s", r.Dst, a)
			}
		}
		if onLink != 1 || dflt != 1 {
			t.Errorf("%s routes: %d on-link route(s) to %s and %d default route(s) via it, want 1 and 1: %v",
				familyName(a.Is6()), onLink, gw, dflt, routes)
		}
	}
	return link
}

func TestConfigureTUN(t *testing.T) {
	requireRoot(t)
	for _, dual := range []bool{false, true} {
		t.Run(fmt.Sprintf("dual=%v", dual), func(t *testing.T) {
			ctx := context.Background()
			ns := newNetns(t)
			addTun(t, ns, "eth0")
			cfg := tunConfig(ns, dual)

			got, err := Configure(ctx, cfg)
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			link := assertConfigured(t, cfg)
			if got.Index != link.Attrs().Index || got.MTU != cfg.MTU || got.MAC != nil {
				t.Errorf("Configure returned %+v, want index %d, MTU %d, no MAC", got, link.Attrs().Index, cfg.MTU)
			}
			if err := Check(ctx, cfg); err != nil {
				t.Errorf("Check after Configure: %v", err)
			}

			// A second run must neither fail nor write: watch the namespace
			// for address and route changes while it runs.
			waitIPv6Settled(t, ns, cfg.Addresses)
			w := watch(t, ns)
			again, err := Configure(ctx, cfg)
			if err != nil {
				t.Fatalf("second Configure: %v", err)
			}
			if again.Index != got.Index || again.MTU != got.MTU {
				t.Errorf("second Configure returned %+v, first %+v", again, got)
			}
			w.assertQuiet(t, ns, "eth0")
			assertConfigured(t, cfg)
		})
	}
}

// waitIPv6Settled waits for the kernel to finish adding IPv6 addresses: even
// without DAD, addrconf completes them from a work queue (addrconf_dad_work),
// announcing the address again and inserting its local route afterwards,
// which a watcher would otherwise see.
func waitIPv6Settled(t *testing.T, nsPath string, addrs []netip.Addr) {
	t.Helper()
	h := handleIn(t, nsPath)
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		if !a.Is6() {
			continue
		}
		filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: ipNet(hostPrefix(a))}
		for {
			routes, err := h.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
			if err != nil {
				t.Fatalf("list local routes: %v", err)
			}
			if len(routes) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("local route for %s never appeared", a)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// watcher collects address and route notifications from one namespace.
type watcher struct {
	addrs  chan netlink.AddrUpdate
	routes chan netlink.RouteUpdate
}

func watch(t *testing.T, nsPath string) watcher {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatalf("open %s: %v", nsPath, err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	w := watcher{addrs: make(chan netlink.AddrUpdate, 64), routes: make(chan netlink.RouteUpdate, 64)}
	if err := netlink.AddrSubscribeWithOptions(w.addrs, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatalf("subscribe to addresses: %v", err)
	}
	if err := netlink.RouteSubscribeWithOptions(w.routes, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatalf("subscribe to routes: %v", err)
	}
	return w
}

// assertQuiet makes a marker change of each kind and requires it to be the
// first notification seen: anything before it was written by the code under
// test. This needs no sleeping: notifications arrive in order.
func (w watcher) assertQuiet(t *testing.T, nsPath, ifName string) {
	t.Helper()
	ns := filepath.Base(nsPath)
	ipCmd(t, "-n", ns, "route", "add", "192.0.2.0/24", "dev", ifName)
	ipCmd(t, "-n", ns, "addr", "add", "198.51.100.9/32", "dev", "lo")
	const limit = 10 * time.Second // only a guard against a lost notification
	select {
	case u := <-w.routes:
		if u.Dst == nil || u.Dst.String() != "192.0.2.0/24" {
			t.Errorf("route changed by a no-op Configure: type %d %s", u.Type, u.Route)
		}
	case <-time.After(limit):
		t.Fatal("no route notification for the marker route")
	}
	select {
	case u := <-w.addrs:
		if u.LinkAddress.String() != "198.51.100.9/32" {
			t.Errorf("address changed by a no-op Configure: new=%v %s", u.NewAddr, u.LinkAddress.String())
		}
	case <-time.After(limit):
		t.Fatal("no address notification for the marker address")
	}
}

func TestCheckReportsFirstDifference(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		dual   bool
		mangle func(t *testing.T, ns string)
		want   string // after "eth0 in <ns>: "
	}{
		{"IPv4 address deleted", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "addr", "del", "10.244.0.5/32", "dev", "eth0")
		}, "address 10.244.0.5/32 missing"},
		{"IPv6 address deleted", true, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "addr", "del", "fd00:10:244::5/128", "dev", "eth0")
		}, "address fd00:10:244::5/128 missing"},
		{"IPv4 default route deleted", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "route", "del", "default")
		}, "default route via 10.244.0.1 missing"},
		{"IPv6 default route deleted", true, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "-6", "route", "del", "default")
		}, "default route via fd00:10:244::1 missing"},
		{"default route via another gateway", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "route", "replace", "default", "via", "10.244.0.2", "dev", "eth0", "onlink")
		}, "default route via 10.244.0.1 missing"},
		{"gateway route deleted", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "route", "del", "10.244.0.1/32", "dev", "eth0")
		}, "route 10.244.0.1/32 dev eth0 scope link missing"},
		{"MTU changed", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "link", "set", "eth0", "mtu", "1400")
		}, "MTU 1400, want 1450"},
		{"link down", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "link", "set", "eth0", "down")
		}, "link eth0 is down"},
		{"lo down", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "link", "set", "lo", "down")
		}, "link lo is down"},
		{"link deleted", false, func(t *testing.T, ns string) {
			ipCmd(t, "-n", ns, "link", "del", "eth0")
		}, "link eth0 not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns := newNetns(t)
			addTun(t, ns, "eth0")
			cfg := tunConfig(ns, tc.dual)
			if _, err := Configure(ctx, cfg); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if err := Check(ctx, cfg); err != nil {
				t.Fatalf("Check before breaking: %v", err)
			}
			tc.mangle(t, filepath.Base(ns))
			want := fmt.Sprintf("eth0 in %s: %s", ns, tc.want)
			err := Check(ctx, cfg)
			if err == nil || err.Error() != want {
				t.Fatalf("Check: %v, want %q", err, want)
			}
			if tc.want == "link eth0 not found" {
				if !errors.Is(err, ErrLinkNotFound) {
					t.Errorf("Check error %v does not wrap ErrLinkNotFound", err)
				}
				return
			}
			// Configure repairs what was broken.
			if _, err := Configure(ctx, cfg); err != nil {
				t.Fatalf("Configure to repair: %v", err)
			}
			if err := Check(ctx, cfg); err != nil {
				t.Errorf("Check after repair: %v", err)
			}
		})
	}
}

func TestCallerThreadStaysInItsNamespace(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	addTun(t, ns, "eth0")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatalf("current namespace: %v", err)
	}
	defer before.Close()
	if _, err := Configure(context.Background(), tunConfig(ns, true)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatalf("current namespace: %v", err)
	}
	defer after.Close()
	if !before.Equal(after) {
		t.Errorf("Configure moved the calling thread from %s to %s", before, after)
	}
}

func TestConfigureReplacesStaleAddress(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	ns := newNetns(t)
	addTun(t, ns, "eth0")
	// The pod IP with a subnet prefix would bring a prefix route the scheme
	// does not want; IPv6 allows one prefix length per address anyway.
	ipCmd(t, "-n", filepath.Base(ns), "-6", "addr", "add", "fd00:10:244::5/64", "dev", "eth0", "nodad")
	cfg := tunConfig(ns, true)
	if _, err := Configure(ctx, cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	assertConfigured(t, cfg)
}

func TestConfigureMissing(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	ns := newNetns(t)
	cfg := tunConfig(ns, false)
	_, err := Configure(ctx, cfg)
	want := fmt.Sprintf("eth0 in %s: link eth0 not found", ns)
	if err == nil || err.Error() != want || !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("Configure without the link: %v, want %q", err, want)
	}

	cfg.Netns = filepath.Join(netnsDir, "kvpn-absent-"+randomSuffix(t))
	_, err = Configure(ctx, cfg)
	want = fmt.Sprintf("eth0: network namespace %s: no such file", cfg.Netns)
	if err == nil || err.Error() != want || !errors.Is(err, ErrNetnsNotFound) {
		t.Errorf("Configure in a missing namespace: %v, want %q", err, want)
	}
}

func TestConfigureRefusesGatewayMACOnTUN(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	addTun(t, ns, "eth0")
	cfg := tunConfig(ns, false)
	cfg.GatewayMAC = net.HardwareAddr{2, 0xfe, 0, 0, 0, 1}
	_, err := Configure(context.Background(), cfg)
	want := fmt.Sprintf("eth0 in %s: GatewayMAC 02:fe:00:00:00:01 given, but link eth0 (tuntap) has no L2 address", ns)
	if err == nil || err.Error() != want {
		t.Errorf("Configure: %v, want %q", err, want)
	}
}

func TestContextCancelled(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	addTun(t, ns, "eth0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Configure(ctx, tunConfig(ns, false)); !errors.Is(err, context.Canceled) {
		t.Errorf("Configure with a cancelled context: %v, want context.Canceled", err)
	}
	h := handleIn(t, ns)
	if isUp(mustLink(t, h, "eth0")) {
		t.Errorf("Configure with a cancelled context changed the link")
	}
}
